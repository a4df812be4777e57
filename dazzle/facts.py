"""Facts the whole package shares, each kept here once (no Numba, no dask).

* :data:`STEPS` -- AstroDrizzle's seven steps in order: number, parameter group
  (:data:`dazzle.params.STEPS`), on/off switch, title and the module holding the step's arithmetic.
* :data:`LAYERS` -- the layers of the task graph (:mod:`dazzle.graph`), in order: the name a
  layer is logged, timed and reported under, the steps it runs, the prefixes of its task keys
  and the ``graph`` function that adds it.  :func:`step_of` maps a task key to its layer.
* :data:`KERNELS` -- the drizzle kernels' names (``driz_sep_kernel``, ``final_kernel``); the
  sky methods and statistics, driz_cr's noise terms: the choices the parameter table and the
  steps share.
* Context bits: chip ``n`` (1-based, input order) sets bit ``(n-1) % 32`` of context plane
  ``(n-1) // 32`` (:func:`context_plane`, :func:`context_bit`, :func:`context_planes`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dazzle.kernels import catalog as _catalog

__all__ = ["Step", "Layer", "STEPS", "LAYERS", "OTHER", "KERNELS", "SKY_METHODS", "SKY_STATS",
           "NOISE_MODELS", "step_of", "prefix_of", "context_planes", "context_plane", "context_bit"]


@dataclass(frozen=True)
class Step:
    """One of AstroDrizzle's seven steps.

    Attributes
    ----------
    number : int
        1 to 7, AstroDrizzle's order.
    key : str
        Its parameter group in :data:`dazzle.params.STEPS` (``"driz_sep"``).
    switch : str
        The boolean parameter that switches it on (``"driz_separate"``).
    title : str
        What the command line calls it (``"drizzle separate"``).
    module : str
        Where its arithmetic lives (``"dazzle.steps.driz_separate"``).
    """

    number: int
    key: str
    switch: str
    title: str
    module: str


@dataclass(frozen=True)
class Layer:
    """One layer of the task graph.

    Attributes
    ----------
    name : str
        The name its time is logged and reported under (``"blot+driz_cr"``).
    steps : tuple of str
        The :class:`Step` keys it runs (blot and driz_cr share one task per chip).
    prefixes : tuple of str
        The prefixes of its task keys (``"blot-cr"`` for ``blot-cr-3``).
    function : str
        The :mod:`dazzle.graph` function that adds the layer.
    """

    name: str
    steps: tuple
    prefixes: tuple
    function: str


#: AstroDrizzle's steps, in order.
STEPS = (
    Step(1, "static", "static", "static mask", "dazzle.steps.static_mask"),
    Step(2, "sky", "skysub", "sky", "dazzle.steps.sky"),
    Step(3, "driz_sep", "driz_separate", "drizzle separate", "dazzle.steps.driz_separate"),
    Step(4, "median", "median", "median", "dazzle.steps.median"),
    Step(5, "blot", "blot", "blot", "dazzle.steps.blot"),
    Step(6, "driz_cr", "driz_cr", "driz_cr", "dazzle.steps.driz_cr"),
    Step(7, "final", "driz_combine", "final drizzle", "dazzle.steps.final_drizzle"),
)

#: The graph's layers, in order (``update_input_dq`` is dazzle's optional last layer).
LAYERS = (
    Layer("static mask", ("static",), ("static-sigs", "static-sig", "static-chip", "static"), "add_static_mask"),
    Layer("sky", ("sky",), ("sky-stats", "sky-stat", "skies", "sky"), "add_sky"),
    Layer("driz_separate", ("driz_sep",), ("single-chip", "single-section", "single-part", "single-exposure"), "add_single_drizzle"),
    Layer("median", ("median",), ("median-piece", "median-tile", "median-commit"), "add_median"),
    Layer("blot+driz_cr", ("blot", "driz_cr"), ("blot-cr", "crmask", "crclean"), "add_blot_cr"),
    Layer("final drizzle", ("final",), ("final-chip", "final-section", "final-part", "final-added", "final-tile", "final-commit"),
          "add_final_drizzle"),
    Layer("update_input_dq", (), ("update-dq",), "add_input_dq_update"),
)

#: The layer name of tasks no layer owns (dask's own small tasks: getitem, finalize ...).
OTHER = "other"

_PREFIX_LAYER = {p: layer.name for layer in LAYERS for p in layer.prefixes}
_BY_LENGTH = sorted(_PREFIX_LAYER, key=len, reverse=True)


def _key_text(key) -> str:
    k = key[0] if isinstance(key, tuple) and key else key
    return k.decode() if isinstance(k, bytes) else str(k)


def prefix_of(key) -> str | None:
    """The layer prefix of a task key (``final-part-3-7`` -> ``final-part``), None if none."""
    k = _key_text(key)
    for p in _BY_LENGTH:
        if k == p or k.startswith(p + "-"):
            return p
    return None


def step_of(key) -> str:
    """The layer a task key belongs to (``final-chip-3`` -> ``final drizzle``), else
    :data:`OTHER`."""
    return _PREFIX_LAYER.get(prefix_of(key), OTHER)


#: Drizzle kernels accepted by ``driz_sep_kernel`` and ``final_kernel``: the kernels' own list
#: (:mod:`dazzle.kernels.catalog`, plain Python: importing it does not load Numba).
KERNELS = _catalog.KERNELS

#: The sky step's methods (``skymethod``) and statistics (``skystat``).
SKY_METHODS = ("localmin", "globalmin", "match", "globalmin+match")
SKY_STATS = ("median", "mode", "mean")

#: driz_cr's noise terms (``driz_cr_noise``; :mod:`dazzle.steps.driz_cr`).
NOISE_MODELS = ("astrodrizzle", "sky_once")

_CONTEXT_BITS = 32


def context_planes(nchips: int) -> int:
    """How many 32-bit context planes ``nchips`` chips need (at least 1)."""
    return max(1, (int(nchips) - 1) // _CONTEXT_BITS + 1)


def context_plane(n: int) -> int:
    """The context plane (0-based) of chip ``n`` (1-based)."""
    return (int(n) - 1) // _CONTEXT_BITS


def context_bit(n: int) -> np.int32:
    """The bit chip ``n`` (1-based) sets in its context plane, as an int32 value (chip 32's bit
    is the sign bit)."""
    return np.array([1 << ((int(n) - 1) % _CONTEXT_BITS)], dtype=np.uint32).view(np.int32)[0]
