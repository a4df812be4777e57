"""The kernels' names and reach: plain Python, no Numba.

The facts about the kernels that the layers above need without running one:
which names exist (:data:`KERNELS`, :data:`INTERPOLATORS`, :data:`COMBINE_TYPES`)
and how far a drizzle kernel spreads an input pixel (:func:`kernel_reach`),
which the pipeline needs to plan which output pixels a chip can touch
(:func:`box_pad`).  Imported without Numba: ``dazzle.kernels`` loads its Numba
modules only when a kernel is used.
"""

from __future__ import annotations

__all__ = ["KERNELS", "INTERPOLATORS", "INTERPOLATOR_ALIASES", "COMBINE_TYPES", "kernel_reach",
           "box_pad"]

#: Drizzle kernels (``drizzle_add``/``drizzle_sums``), in the order of drizzle 3.0's
#: list with dazzle's ``tophat`` (drizzle 1.x) last.
KERNELS = ("square", "point", "turbo", "gaussian", "lanczos2", "lanczos3", "tophat")

#: Blot interpolators; ``sinc`` is drizzle 2.2's (removed from drizzle 3.0).
INTERPOLATORS = ("nearest", "linear", "poly3", "poly5", "lanczos3", "lanczos5", "sinc")

#: Old interpolator names accepted as the new ones.
INTERPOLATOR_ALIASES = {"lan3": "lanczos3", "lan5": "lanczos5"}

#: ``combine_type`` values of the create-median step.
COMBINE_TYPES = ("median", "imedian", "minmed", "iminmed", "mean", "imean", "sum")


def kernel_reach(kernel: str, pixfrac: float, pixel_scale_ratio: float = 1.0,
                 lanczos_table: str = "drizzle") -> float:
    """How far beyond an input pixel's edges a drizzle kernel gives weight.

    Parameters
    ----------
    kernel : str
        One of :data:`KERNELS` (case-insensitive).
    pixfrac : float
        The drop's linear size relative to the input pixel (below 0.001 every
        kernel is ``point``, as in :func:`~dazzle.kernels.drizzle_add`).
    pixel_scale_ratio : float, optional
        Output / input linear pixel size (default 1: unit scale).
    lanczos_table : {"drizzle", "drizzlepac"}, optional
        The lanczos kernels' table (as in :func:`~dazzle.kernels.drizzle_add`).

    Returns
    -------
    float
        ``reach`` in output pixels, >= 0: every output pixel that receives
        weight from an input pixel has its centre within ``reach`` of that
        pixel's footprint (its edges as mapped to the output, axis-aligned),
        along each axis.  So the output pixels that overlap the footprint
        widened by ``reach`` hold every deposit, with half an output pixel to
        spare.

    Notes
    -----
    With ``a = 0.5 / pixel_scale_ratio``, the input pixel's half width in
    output pixels, and the mapped centre ``x``, the kernels give weight to
    output pixels ``k`` with

    * ``point``: ``k = nint(x)``, so ``|k - x| <= 0.5``;
    * ``square``, ``turbo``: overlapping the drop of half width
      ``pixfrac a``, so ``|k - x| < pixfrac a + 0.5``;
    * ``tophat``: ``|k - x| <= pixfrac a`` (the top hat's radius);
    * ``gaussian``: ``nint(x - p) <= k <= nint(x + p)`` with
      ``p = max(2.5 pixfrac / 2.3548, 1.2) / pixel_scale_ratio``, so
      ``|k - x| <= p + 0.5``;
    * ``lanczos<n>``: ``floor(x - p) + 1 <= k <= floor(x + p)`` with
      ``p = n / pixel_scale_ratio``, so ``|k - x| <= p`` (drizzle 3.0's table); with
      drizzlepac's table (``lanczos_table="drizzlepac"``) weight only where
      ``|k - x| < p = n pixfrac / pixel_scale_ratio``;

    and the reach is that bound minus ``a``, or 0 if it is less.  At unit
    scale: 0 for point, ``pixfrac/2`` for square and turbo,
    ``(pixfrac - 1)/2`` for tophat, ``max(2.5 pixfrac/2.3548, 1.2)`` for
    gaussian and ``n - 1/2`` for lanczos<n>.

    Examples
    --------
    >>> kernel_reach("square", 1.0)
    0.5
    >>> kernel_reach("lanczos3", 1.0)
    2.5
    >>> kernel_reach("lanczos3", 1.0, pixel_scale_ratio=0.5)
    5.0
    """
    name = str(kernel).lower()
    if name not in KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(KERNELS)}; got {kernel!r}")
    pixfrac = float(pixfrac)
    psr = float(pixel_scale_ratio)
    if not psr > 0.0:
        raise ValueError(f"pixel_scale_ratio must be > 0; got {pixel_scale_ratio!r}")
    a = 0.5 / psr
    if pixfrac < 0.001 or name == "point":
        bound = 0.5
    elif name in ("square", "turbo"):
        bound = pixfrac * a + 0.5
    elif name == "tophat":
        bound = pixfrac * a
    elif name == "gaussian":
        bound = max(2.5 * pixfrac / 2.3548, 1.2) / psr + 0.5
    else:  # lanczos2, lanczos3
        bound = int(name[-1]) * (pixfrac if lanczos_table == "drizzlepac" else 1.0) / psr
    return max(bound - a, 0.0)


def box_pad(kernel: str, pixfrac: float, pixel_scale_ratio: float = 1.0) -> float:
    """The margin by which the pipeline widens a chip's footprint to get its output box.

    The box is the one the chip's drizzle and blot tasks work in.  Deposits outside the box are
    lost, so the margin is at least :func:`kernel_reach` (an output pixel is in the box when it
    overlaps the widened footprint, which leaves half a pixel to spare; ``tests/test_facts.py``
    checks it for every kernel, pixfrac and scale).

    Parameters
    ----------
    kernel : str
        One of :data:`KERNELS` (case-insensitive).
    pixfrac : float
        The drop's linear size relative to the input pixel.
    pixel_scale_ratio : float, optional
        Output / input linear pixel size (default 1: unit scale).

    Returns
    -------
    float
        The margin in output pixels.

    Notes
    -----
    At unit scale and pixfrac <= 1 it is the margin the single products' shapes have always
    had (kept, so that products stay bit-identical), which also leaves the blot a guard pixel:

    * ``gaussian``: ``max(2.5 pixfrac/2.3548, 1.2) + 1`` (reach + 1);
    * ``lanczos<n>``: ``n + 1`` (reach + 3/2);
    * ``tophat``: ``pixfrac/2 + 1``;
    * ``point``, ``square``, ``turbo``: 1;

    and the reach itself where that is larger (``square`` with pixfrac > 2, ``lanczos3`` onto
    output pixels smaller than the input's, ...).

    Examples
    --------
    >>> box_pad("square", 1.0), box_pad("lanczos3", 1.0), box_pad("gaussian", 1.0)
    (1.0, 4.0, 2.2)
    >>> box_pad("square", 3.0), box_pad("lanczos3", 1.0, pixel_scale_ratio=0.5)
    (1.5, 5.0)
    """
    name = str(kernel).lower()
    if name == "gaussian":
        pad = max(2.5 * float(pixfrac) / 2.3548, 1.2) + 1.0
    elif name.startswith("lanczos"):
        pad = int(name[-1]) + 1.0
    elif name == "tophat":
        pad = float(pixfrac) / 2.0 + 1.0
    else:
        pad = 1.0
    # the reach of either lanczos table (the pipeline's is a parameter)
    return max(pad, *(kernel_reach(name, pixfrac, pixel_scale_ratio, t) for t in ("drizzle", "drizzlepac")))
