"""What both drizzle steps (separate and final) do to one chip.

A chip becomes, inside its own task:

* data    = SCI - sky                        (sky: what the sky step says to subtract, see
                                              dazzle.steps.sky; the input is never changed)
* mask    = (DQ & ~bits) == 0  AND  static mask  AND  CR mask  AND  finite(SCI)
            (DQ read with the ``resetbits`` flags cleared, see :func:`load_chip`)
* weights = EXPTIME * mask                   (driz_separate, final_wht_type=EXP)
            (EXPTIME / ERR)**2 * mask        (final_wht_type=ERR; plain EXP weights when the
                                              chip has no ERR array)
            IVM * mask                       (final_wht_type=IVM, the user's IVM image)
* wt_scl  = "exptime" -> 1 (the exposure time is already in the weights),
            "expsq" -> EXPTIME, or the number given;  ERR: 1/pix_ratio**4;
            IVM: EXPTIME**2/pix_ratio**4 (as drizzlepac does)
* pixmap  = the chip's full WCS (SIP, lookup tables) -> the output frame, exact on a grid
            every ``stepsize`` pixels and interpolated between (or exact everywhere)
* pix_ratio = output nominal scale / chip nominal scale (IDCSCALE, else sqrt|det CD|):
            the data are multiplied by pix_ratio**2 and turbo/gaussian/lanczos kernels are
            sized by it (AstroDrizzle's convention)

and is drizzled with :func:`dazzle.kernels.drizzle_sums` into float64 sums (Σ w·d, Σ w) over
the box of output pixels it touches.  Sums from several chips are added in chip order
(:func:`add_sums`) so results do not depend on the scheduler.

Deliberate difference: for ``wt_scl="expsq"`` drizzlepac 3.11 multiplies by 1 (its code
hard-codes the exposure time to 1 there); dazzle weights by EXPTIME**2 as AstroDrizzle's
documentation says.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from dazzle import geometry
from dazzle.kernels import drizzle_sums, tilesums
from dazzle.kernels.inputs import prepare as prepare_inputs
from dazzle.params import bad_dq_bits, bits_to_mask, good_pixel_mask, resolve

__all__ = ["StepSettings", "DrizzleSettings", "Sums", "load_chip", "sky_value", "chip_pix_ratio",
           "resolve_wt_scl", "chip_weights", "chip_variance", "ChipInputs", "chip_inputs", "section_halo",
           "section_sums", "overlap", "TileSums",
           "new_tile_sums", "add_part", "add_sums", "finish", "finish_error"]


def load_chip(chip, resetbits=None, *, err=True, section=None):
    """The chip's pixels, with the ``resetbits`` flags cleared from its DQ.

    AstroDrizzle clears them in the input file; dazzle only in memory.  Every step that reads
    DQ loads its chip through this.

    Parameters
    ----------
    chip : dazzle.io.Chip
        The chip (its pixels are read here).
    resetbits : str, int or None
        DQ bit specification (:func:`dazzle.params.bits_to_mask`); None or 0: nothing cleared.
    err : bool
        Read the ERR array too (only ``final_wht_type=ERR`` weights use it).
    section : (x0, x1, y0, y1), optional
        Half-open input pixels: read only those.

    Returns
    -------
    dazzle.io.ChipData
        SCI (float32), ERR (None when absent or not asked for) and DQ (or None when absent).
    """
    data = chip.load(err=err) if section is None else chip.load(err=err, section=section)
    reset = bits_to_mask(resetbits)
    if data.dq is not None and reset:
        data.dq = data.dq & ~np.asarray(reset, dtype=np.int64).astype(data.dq.dtype)
    return data


class StepSettings:
    """Base of the steps' frozen settings objects.

    Each step's settings are built once, by :meth:`from_params`, from the *validated* parameters
    (:func:`dazzle.params.resolve`, which holds every default and every check): the settings
    classes have no defaults of their own and check nothing again.  :meth:`of` is the short way
    to AstroDrizzle's defaults with a few values changed.
    """

    @classmethod
    def from_params(cls, params: Mapping):
        """The settings from validated parameters (every name present)."""
        raise NotImplementedError

    @classmethod
    def of(cls, **overrides):
        """The settings for AstroDrizzle's defaults with ``overrides`` (AstroDrizzle names,
        validated by :func:`dazzle.params.resolve`; raises
        :class:`~dazzle.params.ParameterError`)."""
        return cls.from_params(resolve(**overrides))


@dataclass(frozen=True)
class DrizzleSettings:
    """One drizzle step's parameters (AstroDrizzle's ``driz_sep_*`` or ``final_*``)."""

    step: str                # "single" or "final"
    kernel: str
    pixfrac: float
    fillval: float | None    # None = INDEF
    bits: str | None
    wt_scl: object           # "exptime", "expsq" or a float
    wht_type: str | None     # None (single: EXPTIME * mask), "EXP", "ERR", "IVM"
    units: str               # "cps" or "counts"
    maskval: float           # value of output pixels no input reaches (when fillval is INDEF)
    stepsize: int
    exact: bool
    resetbits: str | None    # DQ flags cleared before use (AstroDrizzle's resetbits)
    lanczos_table: str       # the lanczos kernels' table (dazzle.kernels.LANCZOS_TABLES)
    err: bool = False        # propagate the variance (the product's ERR; final_err)
    dq: bool = False         # propagate the DQ flags (the product's DQ; final_dq)

    @classmethod
    def from_params(cls, params: Mapping, step: str) -> "DrizzleSettings":
        """``step`` ``"single"`` (the ``driz_sep_*`` parameters) or ``"final"`` (``final_*``)
        from validated parameters."""
        common = dict(stepsize=params["stepsize"], exact=params["pixmap_mode"] == "exact",
                      resetbits=params["resetbits"], lanczos_table=params["lanczos_table"])
        if step == "single":
            return cls(step="single", kernel=params["driz_sep_kernel"], pixfrac=float(params["driz_sep_pixfrac"]),
                       fillval=params["driz_sep_fillval"], bits=params["driz_sep_bits"],
                       wt_scl=params["driz_sep_wt_scl"], wht_type=None, units="cps", maskval=0.0,
                       err=bool(params["driz_sep_err"]), **common)
        if step == "final":
            maskval = params["final_maskval"]
            return cls(step="final", kernel=params["final_kernel"], pixfrac=float(params["final_pixfrac"]),
                       fillval=params["final_fillval"], bits=params["final_bits"],
                       wt_scl=params["final_wt_scl"], wht_type=params["final_wht_type"],
                       units=params["final_units"], maskval=np.nan if maskval is None else float(maskval),
                       err=bool(params["final_err"]), dq=bool(params["final_dq"]), **common)
        raise ValueError(f"step must be 'single' or 'final'; got {step!r}")


#: Kernels whose every deposit is the pixel's weight times a non-negative share (not the
#: lanczos kernels, whose lobes are negative)
ONE_SIGN_KERNELS = frozenset({"square", "point", "turbo", "gaussian", "tophat"})


@dataclass
class Sums:
    """Weighted sums of one or more chips over the output box ``[y0:y1, x0:x1]``."""

    x0: int
    y0: int
    num: np.ndarray          # float64, Σ w·d
    den: np.ndarray          # float64, Σ w
    ctx: np.ndarray | None   # where the chip contributed: int32 bits (bit k: chip k) or bool
    var: np.ndarray | None = None   # float64, Σ w²·var (settings.err)
    dq: np.ndarray | None = None    # uint32, OR of the DQ of the contributing pixels (settings.dq)

    @property
    def x1(self):
        return self.x0 + self.num.shape[1]

    @property
    def y1(self):
        return self.y0 + self.num.shape[0]


def sky_value(chip, sky=None) -> float:
    """The sky to subtract from a chip, in the chip's own units.

    Parameters
    ----------
    chip : dazzle.io.Chip
        The chip (not used: the sky is the value given).
    sky : float or None, optional
        The chip's sky (``MDRIZSKY``), chip units.

    Returns
    -------
    float
        ``float(sky)``; 0 for None.
    """
    return 0.0 if sky is None else float(sky)


def chip_pix_ratio(chip, frame_wcs) -> float:
    """drizzlepac's ``pix_ratio``: the output frame's pixel scale over the chip's nominal scale.

    Parameters
    ----------
    chip : dazzle.io.Chip
        The input chip; its nominal scale is ``IDCSCALE``, else ``sqrt|det CD|`` (arcsec).
    frame_wcs : astropy.wcs.WCS
        The output frame's WCS; its scale is the length of the first column of its pixel scale
        matrix (arcsec).

    Returns
    -------
    float
        Output / input pixel size (2.0 for output pixels twice as large).
    """
    chip_scale, _, _ = geometry.nominal_scale_orientation(chip.wcs(), getattr(chip, "idcscale", None))
    out_cd = np.asarray(frame_wcs.pixel_scale_matrix)
    out_scale = math.hypot(out_cd[0, 0], out_cd[1, 0]) * 3600.0
    return out_scale / chip_scale


def resolve_wt_scl(wt_scl, exptime: float) -> float:
    """The weight scale of ``wt_scl`` for one chip.

    Parameters
    ----------
    wt_scl : str or float
        ``"exptime"`` (case-insensitive), ``"expsq"``, or a number (also as a string).
    exptime : float
        The chip's exposure time (seconds).

    Returns
    -------
    float
        ``"exptime"`` -> 1 (the exposure time is already in the weights), ``"expsq"`` ->
        ``exptime``, a number -> that number.

    Raises
    ------
    ValueError
        If ``wt_scl`` is a string that is neither of the names nor a number.
    """
    if isinstance(wt_scl, str):
        key = wt_scl.lower()
        if key == "exptime":
            return 1.0
        if key == "expsq":
            return float(exptime)
        return float(wt_scl)
    return float(wt_scl)


def chip_weights(chip, data, settings: DrizzleSettings, pix_ratio: float, *, static_mask=None,
                 cr_mask=None, ivm=None):
    """Per-pixel weights and the weight scale of one chip's drizzle (see the module notes).

    Parameters
    ----------
    chip : dazzle.io.Chip
    data : dazzle.io.ChipData
        The chip's pixels (:func:`load_chip`).
    settings : DrizzleSettings
        ``bits`` select the good DQ flags; ``wht_type`` the weighting (EXP, ERR, IVM).
    pix_ratio : float
        :func:`chip_pix_ratio`.
    static_mask, cr_mask : 2-D bool arrays, optional
        True = good; ANDed into the mask.
    ivm : 2-D array, optional
        The inverse-variance map (``wht_type="IVM"``).

    Returns
    -------
    weights : 2-D float32 array
        Zero where the pixel is masked.
    wt_scl : float
        The kernel's weight scale.
    """
    mask = np.isfinite(data.sci)
    if data.dq is not None:
        mask &= good_pixel_mask(data.dq, settings.bits)
    if static_mask is not None:
        mask &= np.asarray(static_mask, dtype=bool)
    if cr_mask is not None:
        mask &= np.asarray(cr_mask, dtype=bool)
    exptime = float(chip.exptime)
    wht_type = settings.wht_type
    if wht_type == "ERR" and data.err is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            w = (exptime / data.err.astype(np.float64)) ** 2
        w[~np.isfinite(w)] = 0.0
        return (w * mask).astype(np.float32), 1.0 / pix_ratio ** 4
    if wht_type == "IVM":
        if ivm is None:
            raise ValueError(f"{chip.label}: final_wht_type=IVM needs an IVM image for every chip")
        ivm = np.asarray(ivm, dtype=np.float32)
        if ivm.shape != data.sci.shape:
            raise ValueError(f"{chip.label}: IVM shape {ivm.shape} != SCI shape {data.sci.shape}")
        w = np.where(np.isfinite(ivm), ivm, 0.0) * mask
        return w.astype(np.float32), exptime ** 2 / pix_ratio ** 4
    w = mask.astype(np.float32)
    w *= np.float32(exptime)     # the same bits as float32(exptime * mask)
    return w, resolve_wt_scl(settings.wt_scl, exptime)


def chip_variance(chip, data, settings: DrizzleSettings, ivm=None):
    """The variance of each of the chip's pixels, in the units of its SCI.

    Parameters
    ----------
    chip : dazzle.io.Chip
    data : dazzle.io.ChipData
        The chip's pixels (:func:`load_chip`, with ERR).
    settings : DrizzleSettings
        ``wht_type`` chooses the source.
    ivm : 2-D array, optional
        The inverse-variance map (``wht_type="IVM"``).

    Returns
    -------
    2-D float32 array
        ``1/IVM`` with ``wht_type="IVM"`` (0 where the IVM is not positive: those pixels
        have zero weight), else ``ERR**2``.
    """
    if settings.wht_type == "IVM":
        ivm = np.asarray(ivm, dtype=np.float64)
        with np.errstate(divide="ignore"):
            var = np.where(np.isfinite(ivm) & (ivm > 0), 1.0 / ivm, 0.0)
        return var.astype(np.float32)
    if data.err is None:
        raise ValueError(f"{chip.label}: the ERR extension is needed for final_err")
    err = data.err.astype(np.float32)
    return err * err


@dataclass
class ChipInputs:
    """One chip ready to drizzle: what the kernel takes besides the pixel map and the output."""

    sci: np.ndarray                # float32, SCI - sky, 0 where not finite (zero weight there)
    weights: np.ndarray            # float32, 0 where masked
    wt_scl: float
    pix_ratio: float
    var: np.ndarray | None         # float32 (settings.err)
    dq: np.ndarray | None          # the DQ (settings.dq)
    ctx_from_den: bool             # the context is ``den > 0`` (one-signed kernel and weights)


def chip_inputs(chip, frame, settings: DrizzleSettings, *, sky=None, static_mask=None, cr_mask=None, ivm=None,
                data=None, window=None) -> ChipInputs:
    """A chip's pixels, weights and variances as the drizzle kernel takes them.

    Parameters
    ----------
    chip : dazzle.io.Chip
    frame : dazzle.geometry.Frame
        The output frame (its scale sets ``pix_ratio``).
    settings : DrizzleSettings
        The drizzle step's settings.
    sky : float, optional
        Sky to subtract, chip units.
    static_mask, cr_mask : 2-D bool arrays, optional
        True = good.
    ivm : 2-D array, optional
        Inverse-variance map (``final_wht_type="IVM"``).
    data : dazzle.io.ChipData, optional
        The chip's pixels (default: read here with :func:`load_chip`).
    window : (y0, y1, x0, x1), optional
        Half-open rows and columns of ``data`` that may have weight (a section's pixels
        without the halo read around them); zero weight outside.  Default: every pixel.

    Returns
    -------
    ChipInputs
    """
    if data is None:
        data = load_chip(chip, settings.resetbits, err=settings.wht_type == "ERR" or settings.err)
    pix_ratio = chip_pix_ratio(chip, frame.wcs())
    if settings.wht_type in (None, "EXP") or (settings.wht_type == "ERR" and data.err is None):
        if settings.err and data.err is None:
            chip_variance(chip, data, settings)   # raises, before any work: final_err needs ERR
        # EXP weights: every term in one pass (kernels.inputs), the same bits as the numpy below
        sci, weights, var = prepare_inputs(
            data.sci, sky_value(chip, sky), chip.exptime, dq=data.dq,
            bad=0 if data.dq is None else bad_dq_bits(data.dq.dtype, settings.bits),
            static=static_mask, cr=cr_mask, err=data.err if settings.err else None, window=window)
        wt_scl = resolve_wt_scl(settings.wt_scl, chip.exptime)
    else:
        weights, wt_scl = chip_weights(chip, data, settings, pix_ratio, static_mask=static_mask,
                                       cr_mask=cr_mask, ivm=ivm)
        if window is not None:
            _zero_outside(weights, window)
        sci = np.asarray(data.sci, dtype=np.float32) - np.float32(sky_value(chip, sky))   # a new array
        sci[~np.isfinite(sci)] = 0.0   # masked by zero weight already
        var = chip_variance(chip, data, settings, ivm) if settings.err else None
    dq = data.dq if settings.dq and data.dq is not None else None
    # the single-drizzled images have no context: their chips' sums need none.  Where every
    # weight a kernel deposits has one sign, the context (a positive weight was added) is
    # exactly ``den > 0``: found from the sums afterwards, not kept by the kernel
    ctx_from_den = settings.step == "final" and settings.kernel in ONE_SIGN_KERNELS and not (weights < 0).any()
    return ChipInputs(sci, weights, wt_scl, pix_ratio, var, dq, ctx_from_den)


def _zero_outside(weights, window):
    """Zero ``weights`` outside rows ``y0:y1`` and columns ``x0:x1`` (``window``)."""
    y0, y1, x0, x1 = window
    weights[:y0] = 0.0
    weights[y1:] = 0.0
    weights[:, :x0] = 0.0
    weights[:, x1:] = 0.0


def section_halo(settings: DrizzleSettings) -> int:
    """Input pixels around a section that its drizzle reads but does not deposit: the square
    kernel interpolates a pixel's corners, ``pixfrac/2`` away, from its neighbours' positions."""
    return int(math.floor(0.5 * settings.pixfrac)) + 1


def _widened(section, halo, shape):
    """``section`` (x0, x1, y0, y1) widened by ``halo`` pixels within a chip of ``shape``."""
    x0, x1, y0, y1 = section
    return max(0, x0 - halo), min(shape[1], x1 + halo), max(0, y0 - halo), min(shape[0], y1 + halo)


def section_sums(chip, frame, box, settings: DrizzleSettings, *, bit=1, section=None, sky=None,
                 static_mask=None, cr_mask=None, ivm=None, data=None) -> Sums | None:
    """Drizzle a chip, or one section of its pixels, into float64 sums over a box of the
    output frame.

    Parameters
    ----------
    chip : dazzle.io.Chip
    frame : dazzle.geometry.Frame
        The output frame.
    box : (x0, x1, y0, y1) or None
        Half-open box of output pixels the chip (section) reaches (None: it misses the frame).
    settings : DrizzleSettings
        The drizzle step's settings.
    bit : int
        Context bit set where the chip contributes.
    section : (x0, x1, y0, y1), optional
        Half-open input pixels: only they are read (with a halo of :func:`section_halo`
        neighbours, whose positions shape their drops as in the whole chip) and drizzled.
        Default: the whole chip.
    sky, static_mask, cr_mask, ivm
        As :func:`chip_inputs`; the masks and the IVM are the whole chip's.
    data : dazzle.io.ChipData, optional
        The whole chip's pixels (default: read here); not with ``section``.

    Returns
    -------
    Sums or None
        Σ w·d, Σ w and context (None for the single drizzle) over ``box`` (and with
        ``settings.err`` Σ w²·var, with ``settings.dq`` the OR of the contributing pixels' DQ);
        None when ``box`` is None.
    """
    if box is None:
        return None
    x0, x1, y0, y1 = box
    wide = window = None
    if section is not None:
        wide = _widened(section, section_halo(settings), tuple(chip.shape))
        cut = np.s_[wide[2]:wide[3], wide[0]:wide[1]]
        part = (lambda a: None if a is None else np.asarray(a)[cut])
        static_mask, cr_mask, ivm = part(static_mask), part(cr_mask), part(ivm)
        data = load_chip(chip, settings.resetbits, err=settings.wht_type == "ERR" or settings.err, section=wide)
        # the halo is read, not drizzled
        window = (section[2] - wide[2], section[3] - wide[2], section[0] - wide[0], section[1] - wide[0])
    inputs = chip_inputs(chip, frame, settings, sky=sky, static_mask=static_mask, cr_mask=cr_mask, ivm=ivm,
                         data=data, window=window)
    del data
    pixmap = geometry.calc_pixmap(chip.wcs(), frame.wcs(), tuple(chip.shape), stepsize=settings.stepsize,
                                  exact=settings.exact, section=wide, grid_key=geometry.map_key(chip, frame))
    shape = (y1 - y0, x1 - x0)
    num = np.zeros(shape)
    den = np.zeros(shape)
    ctx = np.zeros(shape, np.int32) if settings.step == "final" and not inputs.ctx_from_den else None
    var_sums = None if inputs.var is None else np.zeros(shape)
    dq_sums = None if inputs.dq is None else np.zeros(shape, np.uint32)
    pix_ratio = inputs.pix_ratio
    drizzle_sums(inputs.sci, pixmap, num, den, ctx, x0=x0, y0=y0, weights=inputs.weights, kernel=settings.kernel,
                 pixfrac=settings.pixfrac, iscale=pix_ratio ** 2, pixel_scale_ratio=pix_ratio,
                 wt_scl=inputs.wt_scl, exptime=chip.exptime, in_units=chip.in_units, bit=bit,
                 var=inputs.var, out_var=var_sums, dq=inputs.dq, out_dq=dq_sums,
                 lanczos_table=settings.lanczos_table)
    if settings.step == "final" and inputs.ctx_from_den:
        ctx = den > 0
    return Sums(x0, y0, num, den, ctx, var_sums, dq_sums)


def overlap(s: Sums, box):
    """Where chips' sums and an output box overlap.

    Parameters
    ----------
    s : Sums
    box : (x0, x1, y0, y1)
        Half-open box of the output frame.

    Returns
    -------
    (dst, src) or None
        Slices of the overlap in the box and in ``s``; None when they do not overlap.
    """
    x0, x1, y0, y1 = box
    ax0, ax1 = max(x0, s.x0), min(x1, s.x1)
    ay0, ay1 = max(y0, s.y0), min(y1, s.y1)
    if ax0 >= ax1 or ay0 >= ay1:
        return None
    return (np.s_[ay0 - y0:ay1 - y0, ax0 - x0:ax1 - x0], np.s_[ay0 - s.y0:ay1 - s.y0, ax0 - s.x0:ax1 - s.x0])


@dataclass
class TileSums:
    """Running sums of chips over one output box, chips added one at a time in increasing chip
    number (:func:`add_part`) -- the tiled reductions' accumulator.

    Adding chip after chip into the same arrays does exactly the operations of adding all
    the chips' sums at once in chip order (:func:`add_sums`): the same bits, whatever the
    scheduler, while each chip's sums can be dropped as soon as they are added."""

    box: tuple                       # (x0, x1, y0, y1) of the output frame
    num: np.ndarray                  # float64 Σ w·d
    den: np.ndarray                  # float64 Σ w
    ctx: np.ndarray | None           # uint8 (ceil(nchips / 8), ny, nx): bit (n-1) % 8 of byte plane
                                     # (n-1) // 8 for chip n; None: no context kept
    var: np.ndarray | None = None    # float64 Σ w²·var
    dq: np.ndarray | None = None     # uint32 OR of the DQ
    last: tuple = (0, 0)             # the last (chip number, piece) added ((0, 0): none)

    def context(self, nplanes: int) -> np.ndarray:
        """The context as the products hold it: int32 planes, chip ``n`` (1-based) bit
        ``(n-1) % 32`` of plane ``(n-1) // 32`` (:func:`dazzle.facts.context_bit`)."""
        ny, nx = self.num.shape
        out = np.zeros((nplanes, ny, nx), np.uint32)
        for b in range(0 if self.ctx is None else self.ctx.shape[0]):
            out[b // 4] |= self.ctx[b].astype(np.uint32) << np.uint32(8 * (b % 4))
        return out.view(np.int32)


def new_tile_sums(box, *, nchips=1, var=False, dq=False) -> TileSums:
    """Zero sums over ``box`` (x0, x1, y0, y1).

    Parameters
    ----------
    box : (x0, x1, y0, y1)
        The output box, half-open.
    nchips : int
        Chips whose context is kept (one bit each, 1 byte per 8 chips); 0 for none.
    var, dq : bool
        Keep variance sums, DQ flags.

    Returns
    -------
    TileSums
    """
    x0, x1, y0, y1 = box
    shape = (y1 - y0, x1 - x0)
    return TileSums(tuple(box), np.zeros(shape), np.zeros(shape),
                    np.zeros((-(-nchips // 8),) + shape, np.uint8) if nchips else None,
                    np.zeros(shape) if var else None, np.zeros(shape, np.uint32) if dq else None)


def add_part(acc: TileSums, n: int, s: Sums | None, piece: int = 0) -> TileSums:
    """Add chip ``n``'s sums (or those of its section ``piece``) to ``acc``, in place, and
    return it.

    Parameters
    ----------
    acc : TileSums
        The sums of chips numbered below ``n``.
    n : int
        The chip's number, 1-based in input order: context bit ``(n-1) % 32`` of plane
        ``(n-1) // 32`` (:func:`dazzle.facts.context_bit`) is set where it contributed.
    s : Sums or None
        The chip's sums (any box; only their overlap with ``acc.box`` is added).
    piece : int
        The section of the chip (0 for the whole chip): a chip's sections are added in order.

    Returns
    -------
    TileSums
        ``acc``.

    Raises
    ------
    RuntimeError
        If this piece or a later one was already added (a repeated task: adding twice would
        count it twice).
    """
    if (n, piece) <= acc.last:
        raise RuntimeError(f"chip {n} (piece {piece}) added to the sums of box {acc.box} after chip "
                           f"{acc.last[0]} (piece {acc.last[1]})")
    acc.last = (n, piece)
    cut = None if s is None else overlap(s, acc.box)
    if cut is None:
        return acc
    dst, src = cut
    size = (dst[0].stop - dst[0].start, dst[1].stop - dst[1].start)
    keep_ctx = s.ctx is not None and acc.ctx is not None
    keep_var = acc.var is not None and s.var is not None
    keep_dq = acc.dq is not None and s.dq is not None
    tilesums.add_into(acc.num, acc.den, acc.var if keep_var else None,
                      acc.ctx[(n - 1) // 8] if keep_ctx else None, acc.dq if keep_dq else None, 1 << ((n - 1) % 8),
                      s.num, s.den, s.var if keep_var else None, s.ctx if keep_ctx else None,
                      s.dq if keep_dq else None, (dst[0].start, dst[1].start) + size,
                      (src[0].start, src[1].start) + size)
    return acc


def add_sums(parts, box, *, nchips=None, var=False, dq=False) -> TileSums:
    """Add chips' sums into one box, in the order given.

    A fixed order: bit-identical results whatever the scheduler.

    Parameters
    ----------
    parts : sequence of (int, Sums or None)
        ``(chip number n, 1-based, increasing; its sums)``.  Context bit ``(n-1) % 32`` of
        plane ``(n-1) // 32`` is set where chip ``n`` contributed
        (:func:`dazzle.facts.context_bit`).
    box : (x0, x1, y0, y1)
        The output box, half-open, output pixels.
    nchips : int, optional
        Chips whose context is kept (default: the highest chip number; 0: no context).
    var, dq : bool
        Add the variance sums, OR the DQ.

    Returns
    -------
    TileSums
        Over ``box``: ``num``, ``den`` (float64, shape ``(y1 - y0, x1 - x0)``), ``ctx``
        (uint8 bits, :meth:`TileSums.context`), ``var``, ``dq``.
    """
    if nchips is None:
        nchips = max((n for n, _ in parts), default=1)
    acc = new_tile_sums(box, nchips=nchips, var=var, dq=dq)
    for n, s in parts:
        add_part(acc, n, s)
    return acc


def finish(num, den, settings: DrizzleSettings, *, texptime=1.0):
    """Science and weight images from the sums: ``num / den`` and ``den``.

    Output pixels with zero weight get ``fillval``, or when it is INDEF the step's ``maskval``
    (NaN for the final image unless ``final_maskval`` is set; 0 for single drizzles), as
    drizzlepac does.  One pass over the pixels (:func:`dazzle.kernels.tilesums.finish_sci`).

    Parameters
    ----------
    num, den : 2-D float64 arrays
        Σ w·d and Σ w (:class:`TileSums`).
    settings : DrizzleSettings
    texptime : float
        Total exposure time; ``final_units="counts"`` multiplies the science by it.

    Returns
    -------
    sci, wht : 2-D float32 arrays
    """
    fill = settings.fillval if settings.fillval is not None else settings.maskval
    return tilesums.finish_sci(num, den, fill, texptime if settings.units == "counts" else None)


def finish_error(var, den, settings: DrizzleSettings, *, texptime=1.0):
    """The ERR image from the variance sums: ``sqrt(Σ w²·var) / Σ w``.

    Parameters
    ----------
    var, den : 2-D float64 arrays
        Σ w²·var and Σ w (:class:`TileSums`).
    settings : DrizzleSettings
    texptime : float
        Total exposure time; ``final_units="counts"`` multiplies the error by it.

    Returns
    -------
    2-D float32 array
        In the units of the science; NaN where the weight is zero.
    """
    return tilesums.finish_err(var, den, texptime if settings.units == "counts" else None)
