"""The driver: parameters and inputs in, the Dask graph built and run, products out.

``dazzle.run(inputs, output, config=None, **params)`` runs AstroDrizzle's steps (static mask,
sky, drizzle separate, median, blot, driz_cr, final drizzle; each switchable by its
parameter); ``dazzle.drizzle(input, outdata, **params)`` is AstroDrizzle's
``adrizzle.drizzle``: the separate or the final drizzle, by ``driz_separate``.

The driver reads only headers: it decides the output frames, the chips' boxes and the
intermediate products a resumed run can reuse, lays out the tiled products, builds the graph
(:mod:`dazzle.graph`) and runs it where the ``scheduler`` says (:mod:`dazzle.cluster`).

Before anything is written it refuses (one line, :class:`dazzle.io.InputError`):

* a product that would replace an input (same name, real path or inode; the IVM, sky, config
  and reference-image files count as inputs too), and inputs that are dazzle's own products
  (``products_as_input``) or the same file twice (link or copy) -- :mod:`dazzle.io`;
* a chip whose footprint lies far from all the others (a wrong CRVAL), chips whose pixel
  areas differ by more than :data:`MAX_PIXEL_AREA_RATIO`, and an output frame larger than
  ``max_frame_pixels`` (the message names the chip that stretches it most);
* a second run writing the same products: a run holds a lock per output root and per exposure
  root (``.<root>.dzlock`` in the output folder) while it runs.

Temporary files of an interrupted run (``kill -9``) are removed and reported by the next run
of the same products; a run's own are removed on every exit Python sees (SIGTERM included).
For tests only, ``DAZZLE_TEST_FAULT=FAULT:PREFIX`` delivers a fault the moment the first task
whose key starts with ``PREFIX`` is started by a local scheduler: ``KILL``, ``TERM`` or ``INT``
(that signal), ``RAISE`` (an exception), or ``WAIT`` (wait, at most 120 s, until the file named
by ``DAZZLE_TEST_FAULT_FILE`` exists: a run held in the middle).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from dazzle import geometry, io, memory, products
from dazzle.facts import context_planes
from dazzle.kernels.catalog import box_pad
from dazzle.memory import is_memory_chip
from dazzle.params import ParameterError, resolve

# dazzle.graph (Numba kernels) and dazzle.cluster (dask) are imported where a run needs them,
# so that a refused run stops in a second

log = logging.getLogger("dazzle")

_WCS_KEYS = ("rot", "scale", "outnx", "outny", "ra", "dec", "crpix1", "crpix2")

__all__ = ["RunResult", "run", "drizzle", "plan_run", "output_frame", "MAX_PIXEL_AREA_RATIO"]


@dataclass
class RunResult:
    """What a run produced.

    Attributes
    ----------
    output : str or None
        The final product's path (None: not made).
    single : list of tuple of str
        ``(sci, wht)`` paths per exposure of the separate drizzle.
    median : str or None
        ``<output>_med.fits``.
    skies : list of float
        Per chip sky (``MDRIZSKY``, chip units).
    crmasks : list of numpy.ndarray or None
        Per chip bool cosmic-ray masks (True = good), or None.
    chips : list of dazzle.io.Chip
    reused : list of str
        Intermediate products a resumed run reused.
    steps : dict
        Per step: tasks, summed seconds, start, end.
    summary : str or None
        ``<output>_run.json`` (what ``dazzle report`` reads).
    frame_shape : tuple of int or None
        The final frame's ``(ny, nx)``.
    nchips : int
    timings : dict
        Wall seconds of ``"plan"`` and ``"run"``.
    params : dict
        The parameters the run used (steps that could not run switched off).
    removed_temps : list of str
        Stale temporary files removed at the start.
    """

    output: str | None                      # the final product's path (None: not made)
    single: list = field(default_factory=list)   # (sci, wht) paths per exposure
    median: str | None = None               # <output>_med.fits
    skies: list = field(default_factory=list)    # per chip sky (MDRIZSKY, chip units)
    crmasks: list | None = None             # per chip bool CR masks (True = good), or None
    chips: list = field(default_factory=list)
    reused: list = field(default_factory=list)   # intermediate products a resumed run reused
    steps: dict = field(default_factory=dict)    # per step: tasks, summed seconds, start, end
    summary: str | None = None              # <output>_run.json (what `dazzle report` reads)
    frame_shape: tuple | None = None
    nchips: int = 0
    timings: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    removed_temps: list = field(default_factory=list)   # stale temporary files removed at the start


#: Input pixels a side of the sections a larger chip is drizzled in, one task each (the sums of
#: a section, not of a whole chip, are held at a time): 1024 keeps the ~2.5 ms cost of a task
#: below 1 % of its kernel time while an ACS/WFC chip's final sums shrink from ~330 MB to ~40 MB
#: per section.  A chip that fits in one section is drizzled whole (the same bits as before).
SECTION_SIZE = 1024


def _frame_spec(params, prefix: str):
    """What defines a drizzle step's output frame: (custom, refimage, custom values)."""
    custom = params[prefix + "wcs"]
    over = {k: params[prefix + k] for k in _WCS_KEYS} if custom else {}
    return custom, params[prefix + "refimage"] if custom else "", over


def output_frame(chips, params, prefix: str, wcss=None):
    """The output frame of one drizzle step.

    Parameters
    ----------
    chips : list of dazzle.io.Chip
        The association's chips.
    params : dict
        Validated parameters (:func:`dazzle.params.resolve`): ``output_frame`` and the step's
        ``<prefix>wcs``, ``<prefix>refimage``, ``<prefix>rot`` ... ``<prefix>crpix2``.
    prefix : {"driz_sep_", "final_"}
        Which drizzle step.
    wcss : list of astropy.wcs.WCS, optional
        The chips' WCSs, if already built (planning builds each chip's WCS once).

    Returns
    -------
    dazzle.geometry.Frame

    Raises
    ------
    dazzle.params.ParameterError
        If the user's frame parameters are incomplete (``ra`` without ``dec``, ...).
    """
    wcss = [c.wcs() for c in chips] if wcss is None else wcss
    pairs = [(w, c.shape) for w, c in zip(wcss, chips)]
    _, refimage, over = _frame_spec(params, prefix)
    if params["output_frame"] == "astrodrizzle":
        # AstroDrizzle's reference chip: the first (lowest EXTVER) of the first input
        k = min((i for i, c in enumerate(chips) if c.path == chips[0].path),
                key=lambda i: chips[i].extver)
        try:
            w, shape = geometry.astrodrizzle_output_wcs(
                pairs, reference=k, idcscale=chips[k].idcscale, aperture=chips[k].aperture,
                refimage=refimage, prefix=prefix, **over)
        except ValueError as exc:  # half of a pair (ra without dec, ...)
            from dazzle.params import ParameterError

            raise ParameterError(str(exc)) from None
    elif refimage:
        w, shape = geometry.make_output_wcs(refimage=refimage, **{k: over.get(k) for k in
                                                                 ("outnx", "outny", "ra", "dec", "crpix1", "crpix2")})
    elif any(v is not None for v in over.values()):
        scale, orient, _ = geometry.nominal_scale_orientation(wcss[0], chips[0].idcscale)
        w, shape = geometry.make_output_wcs(
            pairs, rot=over["rot"] if over["rot"] is not None else orient,
            scale=over["scale"] if over["scale"] is not None else scale,
            outnx=over["outnx"], outny=over["outny"], ra=over["ra"], dec=over["dec"],
            crpix1=over["crpix1"], crpix2=over["crpix2"])
    else:
        w, shape = geometry.default_output_wcs(pairs, idcscale=chips[0].idcscale)
    return geometry.Frame.from_wcs(w, shape)


def _ratios(chips, frame, wcss):
    """Each chip's output / input pixel size in ``frame`` (the kernels' reach scales with it)."""
    wf = frame.wcs()
    return [geometry.pixel_scale_ratio(w, wf, chip.shape) for chip, w in zip(chips, wcss)]


def _boxes(chips, frame, pads, what, wcss):
    """Each chip's box in ``frame``: its footprint widened by its ``pads`` (catalog.box_pad)."""
    boxes = []
    wf = frame.wcs()
    for chip, w, pad in zip(chips, wcss, pads):
        box = geometry.chip_bounding_box(w, chip.shape, wf, frame.shape, pad=pad)
        if box is None:
            raise io.InputError(f"{chip.label}: does not overlap the {what} output frame "
                                f"({frame.shape[1]}x{frame.shape[0]} pixels)")
        boxes.append(box)
    return boxes


def _sections(chips, frame, pads, wcss, size):
    """Per chip, None when it fits in one section of ``size`` input pixels a side, else its
    sections (x0, x1, y0, y1), row by row, each with its box in ``frame`` (None: it misses
    the frame): a large chip is drizzled a section at a time (memory: the sections' sums)."""
    out = []
    wf = frame.wcs()
    for chip, w, pad in zip(chips, wcss, pads):
        ny, nx = chip.shape
        if ny <= size and nx <= size:
            out.append(None)
            continue
        secs = [(x0, min(nx, x0 + size), y0, min(ny, y0 + size)) for y0 in range(0, ny, size)
                for x0 in range(0, nx, size)]
        out.append([(sec, geometry.chip_bounding_box(w, chip.shape, wf, frame.shape, pad=pad, section=sec))
                    for sec in secs])
    return out


def _output_names(chips, output):
    path = products.product_name(chips, output)
    out_dir = os.path.dirname(os.path.abspath(path))
    return path, out_dir


def _static_masks(chips, static_mask):
    """One boolean mask (True = good) or None per chip, from the user's in-memory mask(s).

    ``static_mask`` is one array (used for every chip of that shape), or a dict keyed by the
    chip number (EXTVER, as AstroDrizzle keeps one static mask per chip number), by
    ``(root, extver)`` or by the chip's label ``"path[SCI,n]"``.
    """
    if static_mask is None:
        return [None] * len(chips)
    out = []
    for c in chips:
        if isinstance(static_mask, dict):
            m = None
            for key in (c.label, (c.root, c.extver), c.extver):
                if key in static_mask:
                    m = static_mask[key]
                    break
        else:
            m = static_mask
        if m is not None:
            m = np.asarray(m).astype(bool)
            if m.shape != tuple(c.shape):
                raise io.InputError(f"{c.label}: static mask shape {m.shape} != chip shape {tuple(c.shape)}")
        out.append(m)
    return out


# ---------------------------------------------------------------------------------------------
# planning-time checks: nothing is written before they pass
# ---------------------------------------------------------------------------------------------

#: chips whose pixel areas differ by more than this factor are refused (a wrong CD matrix)
MAX_PIXEL_AREA_RATIO = 100.0
#: a group of chips is "far" from the others when the gap between their footprints exceeds
#: this many times the largest chip's diameter, and at least FAR_GAP_MIN_ARCSEC
FAR_GAP_DIAMETERS = 10.0
FAR_GAP_MIN_ARCSEC = 300.0


def product_paths(plan, *, every=False) -> list:
    """The files the run writes in ``plan.out_dir`` (``every``: of every step, on or off)."""
    p, d, sums = plan.params, plan.out_dir, products.MANIFEST_SUFFIX
    out = [plan.out_root + "_run.json"]
    if runfile_path(plan) is not None:
        out.append(os.path.abspath(runfile_path(plan)))
    if every:
        out += [plan.out_root + x for x in ("_drz.fits", "_drc.fits", "_drw.fits")]
    if plan.final_path is not None:
        final = os.path.abspath(plan.final_path)
        exts = products.final_extensions(True, True) if every else products.final_extensions(p["final_err"], p["final_dq"])
        out += ([final] if p["build"] else []) + (products.split_names(final, exts) if every or not p["build"] else [])
    if every or p["median"]:
        out += [plan.out_root + "_med.fits", plan.out_root + "_med.fits" + sums]
    for root in dict.fromkeys(c.root for c in plan.chips):
        if every or p["driz_separate"]:
            out += [os.path.join(d, f"{root}_single_{x}") for x in ("sci.fits", "sci.fits" + sums, "wht.fits")]
        if every or (p["driz_separate"] and p["driz_sep_err"]):
            out.append(os.path.join(d, f"{root}_single_err.fits"))
        if every or (p["driz_cr"] and p["driz_cr_corr"]):
            out.append(os.path.join(d, f"{root}_crclean.fits"))
    for c in plan.chips:
        if every or p["blot"]:
            out.append(os.path.join(d, f"{c.root}_sci{c.extver}_blt.fits"))
        if every or p["driz_cr"]:
            out += [os.path.join(d, f"{c.root}_sci{c.extver}_crmask.fits{x}") for x in ("", sums)]
    return out


def intermediate_paths(plan) -> list:
    """The intermediate products ``clean=True`` removes after a successful run, as AstroDrizzle
    does: the single-drizzled images, the median, the blotted images and the CR masks (with
    their manifests).  The final product, ``_crclean`` files and the run summary stay."""
    sums = products.MANIFEST_SUFFIX
    out = [plan.out_root + "_med.fits", plan.out_root + "_med.fits" + sums]
    for root in dict.fromkeys(c.root for c in plan.chips):
        out += [os.path.join(plan.out_dir, f"{root}_single_{x}")
                for x in ("sci.fits", "sci.fits" + sums, "wht.fits", "err.fits")]
    for c in plan.chips:
        out += [os.path.join(plan.out_dir, f"{c.root}_sci{c.extver}_{x}") for x in ("blt.fits", "crmask.fits",
                                                                                  "crmask.fits" + sums)]
    return out


def remove_intermediates(plan) -> list:
    removed = []
    for path in intermediate_paths(plan):
        try:
            os.remove(path)
            removed.append(path)
        except FileNotFoundError:
            pass
    return removed


def runfile_path(plan) -> str | None:
    """Where the run's log goes (``runfile``; a relative name is in the output folder)."""
    name = str(plan.params["runfile"] or "").strip()
    return os.path.join(plan.out_dir, name) if name else None


class _Forward(logging.Handler):
    """Passes the records the ``dazzle`` logger let through before ``runfile`` lowered its
    level on to the parent's handlers, so that a run file does not make the console chattier."""

    def __init__(self, logger, level):
        super().__init__(level)
        self.parent = logger.parent

    def emit(self, record):
        if self.parent is not None:
            self.parent.handle(record)


@contextlib.contextmanager
def _runfile_log(path):
    """While the block runs, the ``dazzle`` log (INFO and up) is also written to ``path``
    (replaced; AstroDrizzle's ``runfile``)."""
    if path is None:
        yield
        return
    lg = logging.getLogger("dazzle")
    level, propagate = lg.level, lg.propagate
    before = lg.getEffectiveLevel()
    try:
        fh = logging.FileHandler(path, mode="w", encoding="utf-8")
    except OSError as exc:
        raise io.OutputError(f"{path}: cannot write the run file ({exc.strerror})", path=path) from None
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    fh.setLevel(logging.INFO)
    forward = _Forward(lg, before) if propagate else None
    lg.addHandler(fh)
    if forward is not None:
        lg.addHandler(forward)
        lg.propagate = False
    lg.setLevel(min(before, logging.INFO))
    try:
        yield
    finally:
        lg.setLevel(level)
        lg.propagate = propagate
        for h in (fh, forward):
            if h is not None:
                lg.removeHandler(h)
        fh.close()


def lock_roots(plan) -> list:
    """The names a run locks: its output root, then the exposure roots (per-exposure products)."""
    out = os.path.basename(plan.out_root)
    return [out] + sorted({c.root for c in plan.chips} - {out})


def _files_read(plan, ivm, config=None) -> list:
    """Every file the run reads: the inputs, IVM images, sky file, reference images, config."""
    files = [getattr(c, "source", c.path) for c in plan.chips]
    files = [f for f in files if f]
    files += [ivm] if isinstance(ivm, (str, os.PathLike)) else list(ivm or [])
    for name in ("skyfile", "skymask_cat", "driz_sep_refimage", "final_refimage"):
        value = plan.params[name]
        if isinstance(value, str) and value.strip():
            files.append(value.strip().split("[")[0])
    if isinstance(config, (str, os.PathLike)):
        files.append(config)
    return [os.path.abspath(os.fspath(f)) for f in files]


def _explicit_frame(params, prefix) -> bool:
    """Whether the user fixed the frame of a drizzle step (size and place)."""
    if not params[prefix + "wcs"]:
        return False
    return bool(params[prefix + "refimage"]) or (params[prefix + "outnx"] is not None
                                                 and params[prefix + "outny"] is not None)


def _chip_geometry(chips, wcss=None):
    """Per chip: the unit vector of its centre, its radius (rad) and its pixel area (arcsec^2)."""
    centres, radii, areas = [], [], []
    for c, w in zip(chips, [c.wcs() for c in chips] if wcss is None else wcss):
        ny, nx = c.shape
        x = np.array([(nx - 1) / 2.0, -0.5, nx - 0.5, nx - 0.5, -0.5])
        y = np.array([(ny - 1) / 2.0, -0.5, -0.5, ny - 0.5, ny - 0.5])
        with io._quiet():
            ra, dec = geometry._pix2world(w, x, y)   # any WCS (astropy, gwcs)
        v = geometry._unit(ra, dec)
        ok = np.all(np.isfinite(v), axis=1)
        cos = np.clip(v[1:][ok[1:]] @ v[0], -1.0, 1.0)
        centres.append(v[0])
        radii.append(float(np.arccos(cos).max()) if cos.size else 0.0)
        areas.append(geometry.pixel_scale(w, c.shape) ** 2)
    return np.array(centres), np.array(radii), np.array(areas)


def _groups(centres, radii, link):
    """Single-linkage groups of chips whose footprints (circles) are within ``link`` rad: a
    group label per chip (the label is the group's first chip)."""
    n = len(centres)
    label = np.full(n, -1)
    for start in range(n):
        if label[start] >= 0:
            continue
        label[start] = start
        frontier = [start]
        while frontier:
            i = frontier.pop()
            gap = np.arccos(np.clip(centres @ centres[i], -1.0, 1.0)) - radii - radii[i]
            new = np.nonzero((gap <= link) & (label < 0))[0]
            label[new] = start
            frontier.extend(new.tolist())
    return label.tolist()


def check_chip_geometry(chips, params, wcss=None) -> None:
    """Refuse chips whose pixel area is far from the others' and footprints far from the rest
    (a wrong CRVAL would blow the output frame up to the whole distance)."""
    if len(chips) < 2:
        return
    centres, radii, areas = _chip_geometry(chips, wcss)
    median_area = float(np.median(areas))
    for c, a in zip(chips, areas):
        if not (median_area / MAX_PIXEL_AREA_RATIO <= a <= median_area * MAX_PIXEL_AREA_RATIO):
            raise io.InputError(f"{c.label}: pixel area {a:.3g} arcsec^2 is {a / median_area:.3g} times the "
                                f"other chips' ({median_area:.3g}): check its CD matrix", path=c.path)
    if all(_explicit_frame(params, pre) for pre, on in (("driz_sep_", params["driz_separate"]),
                                                         ("final_", params["driz_combine"])) if on):
        return   # the user placed the frames: a chip outside them is reported as not overlapping
    link = max(math.radians(FAR_GAP_MIN_ARCSEC / 3600.0), FAR_GAP_DIAMETERS * 2.0 * float(radii.max()))
    group = _groups(centres, radii, link)
    if len(set(group)) == 1:
        return
    sizes = {g: group.count(g) for g in group}
    main = max(sizes, key=lambda g: (sizes[g], g == group[0]))
    k = next(i for i, g in enumerate(group) if g != main)
    others = [i for i, g in enumerate(group) if g == main]
    ang = np.degrees(np.arccos(np.clip(centres[others] @ centres[k], -1.0, 1.0)))
    m = others[int(np.argmin(ang))]
    raise io.InputError(f"{chips[k].label}: footprint is {ang.min():.3g} deg from the nearest other input "
                        f"({chips[m].label}), far outside the mosaic: a wrong WCS (CRVAL)? Drizzle "
                        "far-apart fields separately", path=chips[k].path)


def _frame_culprit(chips, frame):
    """The chip without which the frame shrinks most, and the frame's size without it."""
    wf = frame.wcs()
    ext = []
    for c in chips:
        x, y = geometry.edge_points(c.shape, max(c.shape) / 4.0)
        with io._quiet(), np.errstate(all="ignore"):
            fx, fy = geometry.transform_points(c.wcs(), wf, x, y)
        fx, fy = fx[np.isfinite(fx) & np.isfinite(fy)], fy[np.isfinite(fx) & np.isfinite(fy)]
        ext.append((fx.min(), fx.max(), fy.min(), fy.max()) if fx.size else (np.inf, -np.inf, np.inf, -np.inf))
    ext = np.array(ext)
    if len(chips) == 1:
        return chips[0], None
    lo = [np.sort(ext[:, i])[:2] for i in (0, 2)]
    hi = [np.sort(ext[:, i])[-2:] for i in (1, 3)]
    best = (chips[0], None, math.inf)
    for k in range(len(chips)):
        size = []
        for (a, b), (c, d), col_lo, col_hi in ((lo[0], hi[0], 0, 1), (lo[1], hi[1], 2, 3)):
            low = b if ext[k, col_lo] == a else a
            high = c if ext[k, col_hi] == d else d
            size.append(max(0.0, float(high - low)))
        area = size[0] * size[1]
        if np.isfinite(area) and area < best[2]:
            best = (chips[k], tuple(int(math.ceil(v)) for v in size), area)
    return best[:2]


def _size(n, unit):
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.3g} {prefix}{unit}"
    return f"{n} {unit}"


def check_frame_size(frame, chips, params, prefix, what) -> None:
    """Refuse an output frame of more than ``max_frame_pixels`` pixels, naming the chip that
    stretches it most (or the parameters that set its size)."""
    limit = int(params["max_frame_pixels"] or 0)
    ny, nx = frame.shape
    if not limit or nx * ny <= limit:
        return
    size = f"{nx} x {ny} pixels ({_size(nx * ny, 'pix')}, {_size(nx * ny * 12, 'B')} of SCI+WHT+CTX)"
    if params[prefix + "wcs"] and (params[prefix + "outnx"] is not None
                                   or params[prefix + "scale"] is not None):
        raise io.InputError(f"the {what} output frame set by {prefix}outnx/{prefix}outny/{prefix}scale would "
                            f"be {size} > max_frame_pixels = {limit}; raise max_frame_pixels if this is meant")
    chip, rest = _frame_culprit(chips, frame)
    without = f"; without it about {rest[0]} x {rest[1]}" if rest else ""
    raise io.InputError(f"{chip.label}: stretches the {what} output frame to {size} > max_frame_pixels = "
                        f"{limit}{without}: check that chip's WCS (CRVAL, CD), or raise max_frame_pixels",
                        path=chip.path)


def _frame(chips, params, prefix, what, wcss=None):
    """The output frame of a drizzle step, checked against ``max_frame_pixels``."""
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # chips far off a user's frame: NaN
            frame = output_frame(chips, params, prefix, wcss)
    except (ValueError, OverflowError, ZeroDivisionError, KeyError, IndexError, OSError) as exc:
        if isinstance(exc, (io.InputError, ParameterError)):
            raise   # already names the file or the parameter
        ref = params[prefix + "refimage"] if params[prefix + "wcs"] else ""
        if ref:
            raise io.InputError(f"{prefix}refimage={ref!r}: cannot take the {what} output frame from it "
                                f"({io._exc_text(exc)})") from exc
        if isinstance(exc, OSError):
            raise
        raise io.InputError(f"cannot build the {what} output frame from the inputs' WCS "
                            f"({io._exc_text(exc)})") from exc
    check_frame_size(frame, chips, params, prefix, what)
    return frame


def resolve_inputs(inputs, output, ivm, params):
    """``(inputs, output, ivm)`` with what the input list itself says: an association table's
    product name when ``output`` is blank, and an @-list's IVM column (AstroDrizzle's
    ``processFilenames``).  The IVM column is used as ``ivm`` when ``final_wht_type`` is IVM
    (giving ``ivm`` as well is an error) and is otherwise not used, with a warning, as in
    AstroDrizzle.  Idempotent: the returned list carries no IVM column."""
    listing = memory.expand_inputs(inputs)
    if (output is None or not str(output).strip()) and listing.output:
        output = listing.output
        log.info("dazzle: output %r from the association table's product row", output)
    if listing.ivm is not None:
        missing = [f for f, v in zip(listing.files, listing.ivm) if v is None]
        if ivm is not None:
            raise io.InputError("IVM files given twice: ivm= (--ivm) and the @-list's second column")
        if params.get("final_wht_type") != "IVM":
            log.warning("dazzle: the @-list names IVM files but final_wht_type=%s: they are not "
                        "used (set final_wht_type=IVM to use them)", params.get("final_wht_type"))
        elif missing:
            raise io.InputError(f"{missing[0]}: no IVM file for this input (the @-list names one "
                                "for other inputs; final_wht_type=IVM needs one per input)",
                                path=missing[0])
        else:
            ivm = list(listing.ivm)
        listing = io.InputList(listing.files, None, listing.output)
    return listing, output, ivm


def _switches(chips, params) -> dict:
    """``params`` with the steps that cannot run switched off (as AstroDrizzle): with one input
    there is nothing to compare, so no median, blot or driz_cr; nor without driz_separate."""
    params = dict(params)
    no_err = [c.label for c in chips if c.err_ext is None]
    for name, needs_err in (("final_err", params["final_wht_type"] != "IVM"), ("driz_sep_err", True)):
        if params[name] and needs_err and no_err:
            log.info("dazzle: %s: %s has no ERR extension; no ERR is written", name, no_err[0])
            params[name] = False
    if len({c.path for c in chips}) < 2:
        why, level = "one input only: %s switched off (as AstroDrizzle)", logging.INFO
    elif not params["driz_separate"]:
        why, level = "%s needs driz_separate; switched off", logging.WARNING
    else:
        return params
    for name in ("median", "blot", "driz_cr"):
        if params[name]:
            log.log(level, "dazzle: " + why, name)
        params[name] = False
    return params


def _plan_frames(plan, wcss):
    """The single-drizzle and final frames and every chip's box in them; a frame (and the
    boxes, when the kernels reach as far) computed once when both steps use the same."""
    chips, params = plan.chips, plan.params
    sep = (params["driz_sep_kernel"], params["driz_sep_pixfrac"])
    final = (params["final_kernel"], params["final_pixfrac"])
    if params["driz_separate"]:
        plan.single_frame = _frame(chips, params, "driz_sep_", "single-drizzle", wcss)
        ratios = _ratios(chips, plan.single_frame, wcss)
        sep_pads = [box_pad(*sep, r) for r in ratios]
        plan.single_boxes = _boxes(chips, plan.single_frame, sep_pads, "single-drizzle", wcss)
        plan.single_sections = _sections(chips, plan.single_frame, sep_pads, wcss, plan.section_size)
    if plan.final_path is None:
        return
    if plan.single_frame is not None and _frame_spec(params, "final_") == _frame_spec(params, "driz_sep_"):
        plan.final_frame = plan.single_frame
        final_pads = [box_pad(*final, r) for r in ratios]
        if final_pads == sep_pads:
            plan.final_boxes = list(plan.single_boxes)
            plan.final_sections = list(plan.single_sections)
            return
    else:
        plan.final_frame = _frame(chips, params, "final_", "final", wcss)
        final_pads = [box_pad(*final, r) for r in _ratios(chips, plan.final_frame, wcss)]
    plan.final_boxes = _boxes(chips, plan.final_frame, final_pads, "final", wcss)
    plan.final_sections = _sections(chips, plan.final_frame, final_pads, wcss, plan.section_size)


def plan_run(inputs, output, params, *, ivm=None, static_mask=None, config=None):
    """Read the inputs' headers and decide the frames and the chips' boxes.

    Refuses a run that would overwrite an input or plan an absurd frame; nothing is written but
    the output folder, created last.

    Parameters
    ----------
    inputs : str or list of str
        Input files (paths, a glob, ``@list``, comma-separated, or an association table).
    output : str
        The final product's name or root ("" : from the inputs).
    params : dict
        Validated parameters (:func:`dazzle.params.resolve`); not changed: the plan holds a copy
        with the steps that cannot run switched off, and the steps' settings built from it.
    ivm : str or list of str, optional
        One IVM file per input (``final_wht_type="IVM"``).
    static_mask : numpy.ndarray or dict, optional
        User static mask kept in memory (True = good), as in :func:`run`.
    config : str or dict, optional
        The configuration file, counted among the files read (never overwritten).

    Returns
    -------
    dazzle.graph.Plan

    Raises
    ------
    dazzle.io.InputError
        A bad input, a product that would replace an input, far-apart chips or an absurd frame.
    dazzle.io.OutputError
        If the output folder cannot be created.
    """
    inputs, output, ivm = resolve_inputs(inputs, output, ivm, params)
    chips = memory.read_inputs(inputs, group=params["group"] or None, gain=params["gain"],
                           rdnoise=params["rdnoise"], exptime=params["exptime"],
                           gnkeyword=params["gnkeyword"] or None,
                           rnkeyword=params["rnkeyword"] or None,
                           expkeyword=params["expkeyword"] or None,
                           allow_products=params["products_as_input"],
                           wcskey=params["wcskey"] or None)
    from dazzle.graph import Plan
    from dazzle.steps import Settings

    if params["update_input_dq"] and any(is_memory_chip(c) for c in chips):
        raise ParameterError("update_input_dq=True updates the inputs' files: in-memory inputs have none")
    final_path, out_dir = _output_names(chips, output)
    params = _switches(chips, params)
    plan = Plan(chips=chips, params=params, out_dir=out_dir, settings=Settings.from_params(params),
                section_size=SECTION_SIZE,
                final_path=final_path if params["driz_combine"] else None)
    plan.user_static = _static_masks(chips, static_mask)
    base = os.path.basename(final_path)
    for suffix in ("_drz.fits", "_drc.fits", "_drw.fits"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    plan.out_root = os.path.join(out_dir, base)
    products.check_overwrites(product_paths(plan) + [os.path.join(out_dir, f".{r}.dzlock") for r in lock_roots(plan)],
                        _files_read(plan, ivm, config))
    wcss = [c.wcs() for c in chips]          # each chip's WCS built once for the whole planning
    check_chip_geometry(chips, params, wcss)
    _plan_frames(plan, wcss)
    if plan.final_path is not None and params["final_wht_type"] == "IVM":
        plan.ivm = _read_ivm(chips, ivm)
    seen = {}
    for c in chips:
        seen.setdefault(c.path, c.exptime)
    plan.texptime = float(sum(seen.values()))
    plan.tile_size = params["tile_size"]
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise io.OutputError(f"{out_dir}: cannot create the output folder ({exc.strerror})",
                             path=out_dir) from None
    return plan


# parameters that do not change any product's pixels
_NOT_IN_KEY = {"scheduler", "resume", "tile_size", "update_input_dq", "runfile", "num_cores", "clean",
               "preserve", "in_memory", "max_frame_pixels", "products_as_input"}


def run_key(plan) -> str:
    """What a product of this run depends on: the inputs (path, size, modification time), the
    parameters and the frames.  A resumed run reuses only products with the same key."""
    import hashlib
    import json

    from dazzle.params import format_value

    inputs = []
    for path in dict.fromkeys(c.path for c in plan.chips if not is_memory_chip(c)):
        st = os.stat(path)
        inputs.append([path, st.st_size, st.st_mtime_ns])
    doc = {"inputs": inputs,
           "params": {k: format_value(v) for k, v in sorted(plan.params.items()) if k not in _NOT_IN_KEY},
           "single_frame": None if plan.single_frame is None else [plan.single_frame.header, plan.single_frame.shape],
           "final_frame": None if plan.final_frame is None else [plan.final_frame.header, plan.final_frame.shape]}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def find_reusable(plan) -> dict:
    """The intermediate products a resumed run can take as they are."""
    reuse = {}
    key = plan.run_key
    for root in dict.fromkeys(c.root for c in plan.chips):
        paths = (os.path.join(plan.out_dir, f"{root}_single_sci.fits"),
                 os.path.join(plan.out_dir, f"{root}_single_wht.fits"))
        if plan.single_frame is not None and products.manifest_valid(paths, key):
            reuse[("single", root)] = paths
    med = plan.out_root + "_med.fits"
    if plan.params["median"] and products.manifest_valid(med, key):
        reuse["median"] = med
    if plan.params["driz_cr"]:
        for k, c in enumerate(plan.chips):
            p = os.path.join(plan.out_dir, f"{c.root}_sci{c.extver}_crmask.fits")
            if products.manifest_valid(p, key):
                reuse[("crmask", k)] = p
    return reuse


def _lay_out_median(plan):
    plan.median_canvas = products.median_canvas(plan.out_root + "_med.fits", plan.single_frame, plan.params)


def _lay_out_final(plan):
    c0 = plan.chips[0]
    primary, sci = products.final_headers(plan.chips, plan.params, plan.final_path, plan.final_frame)
    plan.final_canvas = products.final_product_canvas(
        plan.final_path, plan.final_frame, plan.params, texptime=plan.texptime, ndrizim=len(plan.chips),
        nplanes=context_planes(len(plan.chips)), bunit=c0.bunit, primary_cards=primary, sci_cards=sci,
        err=plan.params["final_err"], dq=plan.params["final_dq"])


def _read_ivm(chips, ivm):
    if ivm is None:
        raise io.InputError("final_wht_type=IVM needs IVM images: pass ivm=[...] (one file per input) "
                            "or name each in the @-list's second column")
    files = [ivm] if isinstance(ivm, str) else list(ivm)
    paths = list(dict.fromkeys(c.path for c in chips))
    if len(files) != len(paths):
        raise io.InputError(f"final_wht_type=IVM: {len(files)} IVM file(s) for {len(paths)} input(s)")
    by_input = dict(zip(paths, files))
    from astropy.io import fits
    arrays = []
    for c in chips:
        f = by_input[c.path]
        try:
            with fits.open(f) as h:
                # drizzlepac reads extension (IVM, chip) (imageObject.buildIVMmask)
                ext = next((e for e in (("IVM", c.extver), ("SCI", c.extver)) if e in h),
                           c.extver if len(h) > 1 else 0)
                arrays.append(np.asarray(h[ext].data, dtype=np.float32))
        except Exception as exc:  # noqa: BLE001
            raise io.InputError(f"{f}: cannot read the IVM image for {c.label}: {exc}") from exc
    return arrays


def _lock_holder(fd) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").split()
    except OSError:
        return ""
    return f" (pid {int(text[0])})" if text and text[0].isdigit() else ""


def _acquire(path, root, out_dir):
    """Open and lock ``path`` (exclusive, not waiting); returns its descriptor."""
    import fcntl

    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise io.OutputError(f"{out_dir}: cannot write in the output folder ({exc.strerror})",
                                 path=out_dir) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(fd)
            os.close(fd)
            raise io.OutputError(f"{out_dir}: another dazzle run{holder} is writing the products of "
                                 f"'{root}' here; wait for it to finish or choose another output (-o)",
                                 path=out_dir) from None
        except OSError as exc:   # a file system without locks: run, unprotected
            log.warning("dazzle: cannot lock %s (%s): a concurrent run into this folder would go "
                        "undetected", path, exc.strerror)
            return fd
        try:   # the previous holder may have removed the file between our open and flock
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


@contextlib.contextmanager
def run_lock(out_dir, roots):
    """Hold ``.<root>.dzlock`` in ``out_dir`` for every root while the block runs: a second run
    writing any of the same products is refused with :class:`dazzle.io.OutputError`.  The
    locks (``flock``) die with the process: the file a killed run leaves is taken over by the
    next run."""
    held = []
    try:
        if os.name == "posix":
            for root in roots:
                path = os.path.join(out_dir, f".{root}.dzlock")
                held.append((path, _acquire(path, root, out_dir)))
        yield
    finally:
        for path, fd in reversed(held):
            with contextlib.suppress(OSError):
                os.unlink(path)
            os.close(fd)


def _check_scheduler(scheduler, profile):
    """Refuse a scheduler or cluster profile that cannot be used before anything is written
    (the cluster itself is started only when the graph runs)."""
    from dazzle import cluster

    if scheduler in cluster.LOCAL_SCHEDULERS and not profile:
        return
    kind, value = cluster.normalize(None if scheduler == "threads" else scheduler, profile)
    if kind == "profile":
        cluster._import(value.cls)


@contextlib.contextmanager
def _fault_hook():
    """Tests only: ``DAZZLE_TEST_FAULT=FAULT:PREFIX`` (see the module notes)."""
    spec = os.environ.get("DAZZLE_TEST_FAULT", "")
    if not spec:
        yield
        return
    from dask.callbacks import Callback

    kind, _, prefix = spec.partition(":")

    def pretask(key, dsk, state):
        name = str(key[0] if isinstance(key, tuple) else key)
        if not name.startswith(prefix):
            return
        if kind == "RAISE":
            raise RuntimeError(f"DAZZLE_TEST_FAULT at task {name}")
        if kind == "WAIT":
            until = time.monotonic() + 120.0
            while not os.path.exists(os.environ.get("DAZZLE_TEST_FAULT_FILE", "")) and time.monotonic() < until:
                time.sleep(0.05)
            return
        os.kill(os.getpid(), getattr(signal, "SIG" + kind))
        if kind in ("INT", "TERM"):
            # Python runs the handler in the main thread at its next check: hold this task
            # (at most 2 s) so that the rest of the graph cannot finish first (a flaky
            # "interrupted" test when the remaining tasks were quick)
            time.sleep(2.0)

    with Callback(pretask=pretask):
        yield


def run(inputs, output="", config=None, *, ivm=None, static_mask=None, progress=False,
        workers=None, profile=None, report=None, summary=True, compute=True, **params):
    """Run the pipeline: every AstroDrizzle step whose switch is on.

    The steps are ``static``, ``skysub``, ``driz_separate``, ``median``, ``blot``, ``driz_cr``
    and ``driz_combine``.

    Parameters
    ----------
    inputs : str, list, or in-memory data
        Paths, a glob, ``@list`` or comma-separated names, or an association table
        (``*_asn.fits``; its product row names the output when ``output`` is blank); or
        in-memory data (:mod:`dazzle.memory`: ``HDUList``, ``(data, wcs)``, a dict,
        ``NDData``/``CCDData``), alone or in a list with names.
    output : str or None, optional
        The final product's name or root ("": from the inputs, as AstroDrizzle).  None keeps
        everything in memory, writes no file and returns the final image as a
        :class:`dazzle.drizzled.Drizzled` (SCI with its WCS, ``.wht``, ``.ctx``, ``.run``).
    config : str, os.PathLike or dict, optional
        A dazzle or AstroDrizzle ``.cfg`` file (or a dict); AstroDrizzle's ``configobj=`` is the
        same.  Keyword arguments win over the file.
    ivm : list of str, optional
        One IVM file per input for ``final_wht_type="IVM"`` (or give them in an @-list's second
        column).
    static_mask : numpy.ndarray or dict, optional
        Boolean mask kept in memory (True = good; one array, or a dict by chip number,
        ``(root, extver)`` or chip label), ANDed into every drizzle's weights.
    progress : bool, optional
        Show a progress bar.
    workers, profile, report
        Go to :func:`dazzle.cluster.compute` (worker count, cluster profiles file, performance
        report).  ``workers`` defaults to ``num_cores``.
    summary : bool, optional
        Write the run summary ``<output>_run.json``; False leaves it to the caller.
    compute : bool, optional
        False: plan the run and return a ``dask.delayed`` object, computed by the caller
        (``.compute()``, ``client.compute``, or as a part of a larger graph), whose value is
        what the call would have returned (``scheduler``, ``workers`` and ``progress`` are then
        the caller's business).  Its task keys are unique to the call.  No lock is
        held on the products and no run file is written then; temporary files of a graph never
        computed are removed by the next run of the same products.
    **params
        AstroDrizzle's parameters by name (``dazzle params`` lists them).  ``scheduler`` may be
        a ``distributed.Client``; when it is not given and a ``distributed`` Client is active in
        the caller's process, the run uses that client.

    Returns
    -------
    RunResult, dazzle.drizzled.Drizzled or dask.delayed.Delayed
        A ``Drizzled`` with ``output=None``; a ``Delayed`` of either with ``compute=False``.

    Raises
    ------
    dazzle.params.ParameterError
        An unknown or invalid parameter (a bad scheduler included).
    dazzle.io.InputError, dazzle.io.OutputError
        A bad input or a product that cannot be written (one line, naming the file).

    Notes
    -----
    The run holds the lock of its products (:func:`run_lock`) and, in the main thread, turns
    SIGTERM into :class:`dazzle.products.Terminated`; whatever ends it, its temporary files
    are removed.
    """
    to_memory = output is None
    client = _client_param(params)
    if output:
        params["output"] = output
    config = _configobj(config, params)
    values = resolve(config, **params)
    if to_memory:
        _memory_values(values, summary, report)
        summary = False
    t0 = time.perf_counter()
    if client is None:
        _check_scheduler(values["scheduler"], profile)
    inputs, values["output"], ivm = resolve_inputs(inputs, values["output"], ivm, values)
    plan = plan_run(inputs, values["output"], values, ivm=ivm, static_mask=static_mask, config=config)
    plan.to_memory = to_memory
    if report:
        products.check_overwrites([os.path.abspath(report)], _files_read(plan, ivm, config))
        products.check_html_target(report, product_paths(plan, every=True))
    log.info("dazzle: %d chip(s) from %d input(s); final frame %s", len(plan.chips),
             len({c.path for c in plan.chips}), None if plan.final_frame is None else plan.final_frame.shape)
    if workers is None and values["num_cores"] is not None:
        workers = max(1, int(values["num_cores"]))   # AstroDrizzle: < 2 = serial
    how = dict(progress=progress, workers=workers, profile=profile, report=report, summary=summary,
               client=client)
    if not compute:
        return _deferred(plan, values, params, t0, how)
    if to_memory:   # nothing written: no lock, no temporary files
        return _execute(plan, values, params, t0, **how)
    names = [os.path.basename(p) for p in product_paths(plan, every=True)]
    with products.terminate_as_exception(), run_lock(plan.out_dir, lock_roots(plan)), \
            _runfile_log(runfile_path(plan)):
        removed = products.remove_stale_temps(plan.out_dir, names)
        if removed:
            log.warning("dazzle: removed %d temporary file(s) left by an interrupted run: %s", len(removed),
                        ", ".join(os.path.basename(p) for p in removed))
        try:
            result = _execute(plan, values, params, t0, **how)
        finally:
            products.remove_stale_temps(plan.out_dir, names)   # this run's own, however it ended
    result.removed_temps = removed
    return result


def _client_param(params):
    """A ``distributed.Client`` given as ``scheduler=`` (taken out of ``params``: the parameter
    table checks names and addresses), else None."""
    value = params.get("scheduler")
    if value is None or isinstance(value, str):
        return None
    from dazzle import cluster

    kind, client = cluster.normalize(value)   # refuses anything but a Client
    del params["scheduler"]
    return client


def _memory_values(values, summary, report):
    """``output=None``: the intermediates kept in memory too, and nothing else written."""
    for name, why in (("driz_cr_corr", "writes the _crclean images"),
                      ("update_input_dq", "writes into the input files")):
        if values[name]:
            raise ParameterError(f"output=None writes no file, but {name}=True {why}")
    if report:
        raise ParameterError("output=None writes no file: no report= either")
    if not values["driz_combine"]:
        raise ParameterError("output=None returns the final drizzle's image: driz_combine must be on "
                             "(for the separate drizzle alone give an output name)")
    values.update(in_memory=True, runfile="", resume=False)


def _prepare(plan, values, client=None, suffix="", threads=0):
    """Lay out the products and build the graph (its task keys end with ``suffix``); ``threads``:
    those of a local threaded (1: synchronous) run, else 0 (graph.add_final_drizzle)."""
    from dazzle.graph import build

    plan.run_key = run_key(plan)
    # dask's processes scheduler copies every task's inputs to a worker process and its result
    # back: a chain of adds would copy a tile's running sums twice per add
    plan.gather_sums = values["scheduler"] == "processes" and client is None
    plan.final_threads = int(threads) if client is None else 0
    if values["resume"] and not plan.in_memory:   # in_memory: nothing on disk to reuse
        if any(is_memory_chip(c) for c in plan.chips):
            log.info("dazzle: resume: in-memory inputs, nothing reused")
        else:
            plan.reuse = find_reusable(plan)
            log.info("dazzle: resuming, %d intermediate product(s) reused", len(plan.reuse))
    if client is not None:
        from dazzle.memory import scatter_chips

        plan.chips, plan.scattered = scatter_chips(plan.chips, client)
    if plan.final_path is not None and not plan.to_memory:
        _lay_out_final(plan)
    if plan.params["median"] and "median" not in plan.reuse and not plan.in_memory:
        _lay_out_median(plan)
    return build(plan, suffix=suffix)


def _abort(plan):
    for canvas in (plan.final_canvas, plan.median_canvas):
        if canvas is not None:
            products.abort_canvas(canvas)   # no-op once committed


def _execute(plan, values, params, t0, *, progress, workers, profile, report, summary, client) -> RunResult:
    """Lay out the products, build the graph, run it, write the run summary (``summary``)."""
    from dazzle import cluster

    t_plan = time.perf_counter() - t0
    scheduler = client if client is not None else values["scheduler"]
    if scheduler == "threads" and not any(str(k).lower() == "scheduler" for k in params):
        scheduler = None   # the default: the caller's active Client if any, else threads
    kind, value = cluster.normalize(scheduler, profile) if scheduler is None or client else (None, None)
    chips = plan.chips
    try:
        on_client = value if kind == "client" else None
        graph = _prepare(plan, values, on_client, threads=_local_threads(values["scheduler"], workers))
        t1 = time.perf_counter()
        steps: dict = {}
        with _fault_hook():
            res = cluster.compute([graph], scheduler, progress=progress, workers=workers, profile=profile,
                                  report=report, steps=steps)[0]
        t_run = time.perf_counter() - t1
    finally:
        _abort(plan)
        plan.chips, plan.scattered = chips, []   # the scattered pixels released
    return _finish(plan, values, res, t0, {"plan": t_plan, "run": t_run}, steps, summary)


def _local_threads(scheduler, workers) -> int:
    """Threads of a local threaded run (``workers``, else dask's count of this machine's
    cores), 1 for the synchronous scheduler, 0 for any other (processes, a cluster, a Client)."""
    if scheduler == "synchronous":
        return 1
    if scheduler != "threads":
        return 0
    if workers:
        return int(workers)
    from dask.system import CPU_COUNT

    return int(CPU_COUNT)


def _deferred(plan, values, params, t0, how):
    """``compute=False``: the run's graph, finished by a last task into what ``run`` returns."""
    import uuid
    from functools import partial

    import dask

    graph = _prepare(plan, values, None, suffix="-" + uuid.uuid4().hex[:8])
    t_plan = time.perf_counter() - t0
    finish = partial(_finish, plan, values, t0=t0, timings={"plan": t_plan}, steps={}, summary=how["summary"])
    return dask.delayed(finish, pure=False)(graph, dask_key_name="dazzle-result" + graph.key[len("outputs"):])


def _finish(plan, values, res, t0, timings, steps, summary):
    """What a run returns, from the graph's value: a RunResult (the run summary written with
    ``summary``), or with ``output=None`` the product in memory."""
    skies = res["skies"]
    if values["clean"]:
        res["single"], res["median"] = [], None
        removed = remove_intermediates(plan)
        log.info("dazzle: clean: removed %d intermediate file(s)", len(removed))
    final = res["final"]
    result = RunResult(output=None if plan.to_memory else final, single=list(res["single"]), median=res["median"],
                       skies=[float(s.value) for s in skies] if skies is not None else [],
                       crmasks=res["crmasks"],
                       frame_shape=None if plan.final_frame is None else plan.final_frame.shape,
                       nchips=len(plan.chips), timings=timings, params=plan.params,
                       chips=plan.chips, reused=sorted(str(k) for k in plan.reuse), steps=steps)
    if plan.to_memory:
        from dazzle.drizzled import drizzled

        return drizzled(plan, final, result)
    # what `dazzle report` reads; a run is not failed by its summary
    if not summary:
        return result
    try:
        from dazzle.report import save_run_summary

        result.summary = save_run_summary(result, wall_time=time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001
        log.warning("dazzle: could not write the run summary: %s", exc)
    return result


def _configobj(config, params):
    """AstroDrizzle's ``configobj=`` (a ``.cfg`` file or a mapping) is ``config``; giving
    both is an error.  Removed from ``params``."""
    if "configobj" not in params:
        return config
    value = params.pop("configobj")
    if value is None or (isinstance(value, str) and not value.strip()):
        return config
    if config is not None:
        raise ParameterError("configobj= and config= both given: pass the configuration once")
    if not isinstance(value, (str, os.PathLike, dict)) and not hasattr(value, "keys"):
        raise ParameterError(f"configobj must be a .cfg file name or a mapping, not {type(value).__name__}")
    return value


def drizzle(input, outdata="", config=None, **params) -> RunResult:
    """AstroDrizzle's ``adrizzle.drizzle``: one drizzle step of :func:`run`.

    Parameters
    ----------
    input : str or list of str
        The inputs, as :func:`run`'s ``inputs``.
    outdata : str, optional
        The output name, as :func:`run`'s ``output``.
    config : str, os.PathLike or dict, optional
        A ``.cfg`` file or a dict (or ``configobj=``).
    **params
        :func:`run`'s keyword arguments.  With ``driz_separate=True`` (the default) the separate
        drizzle only, else the final drizzle only (``driz_combine`` is set accordingly).

    Returns
    -------
    RunResult
    """
    params = dict(params)
    config = _configobj(config, params)
    values = resolve(config, **{k: v for k, v in params.items()
                                if k not in ("ivm", "progress", "static_mask", "workers", "profile",
                                             "report", "summary", "compute")
                                and not (k == "scheduler" and not isinstance(v, (str, type(None))))})
    separate = values["driz_separate"]
    params = dict(params)
    params["driz_separate"] = bool(separate)
    params["driz_combine"] = not separate
    return run(input, outdata, config, **params)
