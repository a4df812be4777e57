"""The Dask graph: chips in, products out -- the pipeline's outline.

:func:`build` adds one layer per step, in AstroDrizzle's order, each from the :class:`Plan` and
the handles of the layers before it (``k`` a chip, ``t`` a tile of an output frame, ``root`` an
exposure)::

    add_static_mask     static-sig-<k> -> static-<shape>-<extver>-l<n>-<i> -> static-chip-<k>
    add_sky             sky-stat-<k> -> skies -> sky-<k>                       (in memory)
    add_single_drizzle  single-chip-<k> -> single-exposure-<root>             <root>_single_sci/wht.fits
    add_median          median-piece-<root> -> median-tile-<t> -> median-commit    <output>_med.fits
    add_blot_cr         blot-cr-<k> -> crmask-<k>, crclean-<root>             <root>_sci<N>_blt.fits,
                                                                               _crmask.fits, _crclean.fits
    add_final_drizzle   final-chip-<k> -> final-part-<k>-<t> -> final-tile-<t> -> final-commit
                                                                               <output>_drz.fits
    add_input_dq_update update-dq-after -> update-dq-<i>                      (the inputs' DQ, if asked)

A task is given only what it needs: a chip task its chip's small picklable description (never
its pixels, which it reads itself), an exposure task its own chips, a tile task the pieces that
reach the tile.  So the number of tasks and the size of the graph grow with chips plus tiles
touched, never chips times chips or chips times tiles.

The final drizzle is a tiled reduction: each chip is drizzled once (Numba kernel) into float64
sums over the box of output pixels it touches, the box is cut into the tiles it overlaps, and
each tile task adds the pieces of the chips that touch it *in chip order*, divides, and writes
its rectangle of SCI, WHT and CTX straight into the product file (laid out beforehand).  The
median is computed the same way, tile by tile, from only the single-drizzled images that reach
each tile.  No task ever holds an array of the whole output frame; the products are the same
bits whatever the scheduler, the number of workers or the tile size.  Nothing here does
arithmetic on pixels: that is the steps' (:mod:`dazzle.steps`) and the kernels' work.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from dask import delayed

from dazzle import products
from dazzle.geometry import sub_frame
from dazzle.steps import Settings
from dazzle.steps import blot as blot_step
from dazzle.steps import driz_cr as cr_step
from dazzle.steps import median as median_step
from dazzle.steps import sky as sky_step
from dazzle.steps import static_mask as static_step
from dazzle.steps.common import Sums
from dazzle.steps.common import load_chip as common_load_chip
from dazzle.steps.driz_separate import exposure_box, single_chip, single_exposure
from dazzle.steps.final_drizzle import final_chip, final_combine

__all__ = ["Plan", "build", "tiles", "tiles_touching", "overlaps", "cut_sums", "add_static_mask",
           "add_sky", "add_single_drizzle", "add_median", "add_blot_cr", "add_final_drizzle",
           "add_input_dq_update"]


@dataclass
class Plan:
    """Everything the graph needs, decided by the driver before any pixel is read."""

    chips: list                       # dazzle.io.Chip, in input order
    params: dict                      # resolved parameters (for the products' provenance)
    out_dir: str
    final_path: str | None            # None: no final drizzle
    settings: Settings | None = None  # every step's settings, from ``params``
    out_root: str = "final"           # <output> of <output>_med.fits, ...
    single_frame: object = None       # geometry.Frame for driz_separate (None: step off)
    final_frame: object = None        # geometry.Frame for the final drizzle
    single_boxes: list = field(default_factory=list)   # per chip (x0, x1, y0, y1) or None
    final_boxes: list = field(default_factory=list)
    user_static: list = field(default_factory=list)    # per chip user mask (True = good) or None
    ivm: list | None = None           # per chip IVM arrays (final_wht_type=IVM)
    texptime: float = 0.0
    tile_size: int = 2048
    final_canvas: object = None       # products.Canvas laid out by the driver
    median_canvas: object = None
    run_key: str = ""                 # identifies inputs + parameters, for resumed runs
    reuse: dict = field(default_factory=dict)   # products a resumed run takes as they are

    def exposures(self) -> dict:
        """``{root: [chip indices]}``, exposures in order of first appearance."""
        by_root: dict = {}
        for k, chip in enumerate(self.chips):
            by_root.setdefault(chip.root, []).append(k)
        return by_root


# ---------------------------------------------------------------------------------------------
# tiles
# ---------------------------------------------------------------------------------------------

def tiles(shape, tile_size):
    """The tiles (x0, x1, y0, y1) of a frame, row by row."""
    ny, nx = shape
    return [(x0, min(x0 + tile_size, nx), y0, min(y0 + tile_size, ny))
            for y0 in range(0, ny, tile_size) for x0 in range(0, nx, tile_size)]


def overlaps(a, b):
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def tiles_touching(box, shape, tile_size, halo=0):
    """The indices (into :func:`tiles`) of the tiles that ``box`` (x0, x1, y0, y1), widened by
    ``halo`` pixels, overlaps -- found from the grid, not by testing every tile."""
    if box is None:
        return []
    ny, nx = shape
    x0, x1 = max(0, box[0] - halo), min(nx, box[1] + halo)
    y0, y1 = max(0, box[2] - halo), min(ny, box[3] + halo)
    if x0 >= x1 or y0 >= y1:
        return []
    ntx = -(-nx // tile_size)
    return [ty * ntx + tx for ty in range(y0 // tile_size, (y1 - 1) // tile_size + 1)
            for tx in range(x0 // tile_size, (x1 - 1) // tile_size + 1)]


def cut_sums(s: Sums | None, box) -> Sums | None:
    """The part of a chip's sums inside ``box`` (a copy), or None."""
    if s is None:
        return None
    x0, x1 = max(box[0], s.x0), min(box[1], s.x1)
    y0, y1 = max(box[2], s.y0), min(box[3], s.y1)
    if x0 >= x1 or y0 >= y1:
        return None
    src = np.s_[y0 - s.y0:y1 - s.y0, x0 - s.x0:x1 - s.x0]
    return Sums(x0, y0, s.num[src].copy(), s.den[src].copy(),
                None if s.ctx is None else s.ctx[src].copy())


# ---------------------------------------------------------------------------------------------
# task bodies: wiring only (load, call a step, hand on or write)
# ---------------------------------------------------------------------------------------------

def load_chip(chip, resetbits):
    """The chip's pixels, ``resetbits`` cleared (:func:`dazzle.steps.common.load_chip`)."""
    return common_load_chip(chip, resetbits)


def _static_signature(chip, settings):
    return static_step.chip_signature(chip.load(err=False, dq=False).sci, static_sig=settings.static_sig)


def _static_and(*signatures):
    return static_step.combine(signatures)


def _and_masks(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return np.asarray(a, bool) & np.asarray(b, bool)


def _sky_stat(chip, static, settings, resetbits):
    return sky_step.chip_sky_stat(load_chip(chip, resetbits), static, settings)


def _skies(chips, stats, settings):
    user = sky_step.user_skies(chips, settings)
    if user is not None:
        return user
    return sky_step.skies_from_stats(chips, stats, settings)


def _skies_all_at_once(chips, statics, settings, resetbits):
    return sky_step.compute_skies(chips, [load_chip(c, resetbits) for c in chips], statics, settings)


def _chip_sky(skies, k):
    return skies[k]


def _single_chip(chip, frame, box, settings, sky, static):
    return single_chip(chip, frame, box, settings, sky=sky.drizzle_sky, static_mask=static)


def _write_single(parts, box, frame, settings, out_dir, root, params, exptime, bunit, skies, key):
    sci, wht = single_exposure(parts, box, settings)
    sub = sub_frame(frame, box[0], box[2], box[1] - box[0], box[3] - box[2])
    paths = products.write_single_products(out_dir, root, sci, wht, sub, box, params,
                                           exptime=exptime, bunit=bunit, skies=skies)
    products.write_manifest(paths, key)
    return paths


def _median_piece(single_paths, chips, skies):
    """The median's description of one exposure (``chips`` and ``skies`` its own): sky in e-
    (lowest over its chips), read noise squared (mean over its chips), exposure time."""
    sky_e = min(sky.drizzle_sky * cr_step.conversion_factor(
        in_units="counts", exptime=c.exptime, gain=c.gain, bunit=c.bunit) for c, sky in zip(chips, skies))
    rn2 = float(np.mean([(c.rdnoise or 0.0) ** 2 for c in chips]))
    return median_step.describe_piece(single_paths[0], single_paths[1], sky=sky_e, rn2=rn2,
                                      exptime=chips[0].exptime)


def _median_tile(pieces, box, settings, canvas, nimages):
    if products.canvas_committed(canvas):
        return box   # recomputed after a lost worker, after the commit: nothing to write
    block = median_step.median_block(pieces, box, settings, nimages=nimages)
    products.write_block(canvas, 0, block, box[2], box[0])
    return box


def _blot(chip, median_path, frame, box, sky, settings):
    """Step 5 for one chip: the median, read over the chip's box, blotted onto the chip."""
    median, mx0, my0 = blot_step.read_section(median_path, box, frame.shape)
    return blot_step.blot_chip(median, chip, frame, settings, offset=(mx0, my0), sky=sky.drizzle_sky)


def _write_blot(out_dir, chip, blotted, sky, params):
    return products.write_chip_image(out_dir, f"{chip.root}_sci{chip.extver}_blt.fits", blotted, chip,
                                     params, {"MDRIZSKY": (float(sky.value), "sky (chip units)")})


def _write_crmask(out_dir, chip, good, params, key):
    path = products.write_chip_image(out_dir, f"{chip.root}_sci{chip.extver}_crmask.fits",
                                     cr_step.crmask_product(good), chip, params, {})
    products.write_manifest(path, key)
    return path


def _blot_cr(chip, median_path, frame, box, sky, static, blot_settings, cr_settings, resetbits,
             params, out_dir, key=""):
    """Blot the median onto a chip (written as its ``_blt`` product) and, when driz_cr is on,
    find its cosmic rays (written as its ``_crmask`` product).  Returns None (no driz_cr) or
    (CR mask (True = good), CR-cleaned SCI or None)."""
    blotted = _blot(chip, median_path, frame, box, sky, blot_settings)
    _write_blot(out_dir, chip, blotted, sky, params)
    if cr_settings is None:
        return None
    data = load_chip(chip, resetbits)
    good = cr_step.chip_cr_mask(chip, data, blotted, sky.value, static, cr_settings)
    _write_crmask(out_dir, chip, good, params, key)
    return good, (cr_step.crclean(data.sci, blotted, good) if cr_settings.corr else None)


def _write_crclean(chip_path, root, chips_and_results, out_dir, params):
    return products.write_crclean(out_dir, root, chip_path, chips_and_results, params)


def _read_crmask(path):
    from astropy.io import fits

    return fits.getdata(path).astype(bool)


def _cr_only(result):
    return None if result is None else result[0]


def _final_chip(chip, frame, box, settings, sky, static, crmask, ivm):
    return final_chip(chip, frame, box, settings, sky=sky.drizzle_sky, static_mask=static, cr_mask=crmask,
                      ivm=ivm)


def _final_tile(parts, box, settings, canvas, nchips, texptime):
    if products.canvas_committed(canvas):
        return box   # recomputed after a lost worker, after the commit: nothing to write
    sci, wht, ctx = final_combine(parts, box, settings, nchips=nchips, texptime=texptime)
    x0, _, y0, _ = box
    products.write_block(canvas, 1, sci, y0, x0)
    products.write_block(canvas, 2, wht, y0, x0)
    if ctx.shape[0] == 1:
        products.write_block(canvas, 3, ctx[0], y0, x0)
    else:
        for p in range(ctx.shape[0]):
            products.write_block(canvas, 3, ctx[p], y0, x0, plane=p)
    return box


def _commit(canvas, *done):
    return products.commit_canvas(canvas)


def _commit_with_manifest(canvas, key, *done):
    path = products.commit_canvas(canvas)
    products.write_manifest(path, key)
    return path


def _after(*done):
    return None


def _update_dq(path, chips, crmasks, crbit, after):
    from dazzle.io import update_input_dq

    return update_input_dq(path, chips, crmasks, crbit=crbit)


# ---------------------------------------------------------------------------------------------
# the layers, one per step
# ---------------------------------------------------------------------------------------------

def add_static_mask(plan: Plan) -> list:
    """Step 1: per chip, its static mask (True = good) ANDed with the user's in-memory mask --
    a handle, the user's mask or None.  The chips' signatures are ANDed per mask key (shape,
    chip number) in a tree of pairs: no task holds more than two of them."""
    n = len(plan.chips)
    user = list(plan.user_static) if plan.user_static else [None] * n
    settings = plan.settings.static
    if settings is None:
        return user
    by_key: dict = {}
    for k, chip in enumerate(plan.chips):
        by_key.setdefault(static_step.mask_key(chip), []).append(k)
    combined = {}
    for key, ks in by_key.items():
        sigs = [delayed(_static_signature, pure=True)(plan.chips[k], settings, dask_key_name=f"static-sig-{k}")
                for k in ks]
        name = f"static-{key[0][0]}x{key[0][1]}-{key[1]}"
        level = 0
        while len(sigs) > 1:
            sigs = [delayed(_static_and, pure=True)(*sigs[i:i + 2], dask_key_name=f"{name}-l{level}-{i // 2}")
                    if i + 1 < len(sigs) else sigs[i] for i in range(0, len(sigs), 2)]
            level += 1
        combined[key] = sigs[0]
    return [delayed(_and_masks, pure=True)(user[k], combined[static_step.mask_key(c)],
                                           dask_key_name=f"static-chip-{k}") for k, c in enumerate(plan.chips)]


def add_sky(plan: Plan, statics) -> tuple:
    """Step 2: the skies -- ``(skies, per_chip)``: a handle on every chip's
    :class:`~dazzle.steps.sky.ChipSky` and one handle per chip (``sky-<k>``).  One statistic per
    chip, then one task combining them (localmin, globalmin); the match methods need every chip
    at once; user skies need no pixels."""
    chips, settings, resetbits = plan.chips, plan.settings.sky, plan.settings.resetbits
    if settings.needs_pixels and "match" in settings.skymethod:
        skies = delayed(_skies_all_at_once, pure=True)(chips, statics, settings, resetbits, dask_key_name="skies")
    else:
        stats = [None] * len(chips)
        if settings.needs_pixels:
            stats = [delayed(_sky_stat, pure=True)(c, statics[k], settings, resetbits, dask_key_name=f"sky-stat-{k}")
                     for k, c in enumerate(chips)]
        skies = delayed(_skies, pure=True)(chips, stats, settings, dask_key_name="skies")
    return skies, [delayed(_chip_sky, pure=True)(skies, k, dask_key_name=f"sky-{k}") for k in range(len(chips))]


def add_single_drizzle(plan: Plan, statics, skies) -> dict:
    """Step 3: each exposure drizzled on its own -- ``{root: handle of (sci path, wht path)}``
    (or the paths a resumed run reuses).  One task per chip, one per exposure adding its chips
    and writing the pair."""
    settings, frame = plan.settings.single, plan.single_frame
    singles = {}
    if settings is None or frame is None:
        return singles
    for root, ks in plan.exposures().items():
        box = exposure_box([plan.single_boxes[k] for k in ks])
        if box is None:
            continue
        if ("single", root) in plan.reuse:
            singles[root] = plan.reuse[("single", root)]
            continue
        parts = [delayed(_single_chip, pure=True)(plan.chips[k], frame, plan.single_boxes[k], settings, skies[k],
                                                  statics[k], dask_key_name=f"single-chip-{k}")
                 for k in ks]
        first = plan.chips[ks[0]]
        singles[root] = delayed(_write_single, pure=True)(
            parts, box, frame, settings, plan.out_dir, root, plan.params, first.exptime, first.bunit,
            [skies[k] for k in ks], plan.run_key, dask_key_name=f"single-exposure-{root}")
    return singles


def add_median(plan: Plan, singles, skies):
    """Step 4: the median, tile by tile -- a handle on ``<output>_med.fits`` (or the path a
    resumed run reuses, or None).  One task per exposure describes its single-drizzled pair;
    each tile task gets the exposures that reach it, in stack order."""
    if "median" in plan.reuse:
        return plan.reuse["median"]
    settings = plan.settings.median
    if settings is None or plan.median_canvas is None:
        return None
    shape, ts = plan.single_frame.shape, plan.tile_size
    tile_list = tiles(shape, ts)
    per_tile = [[] for _ in tile_list]
    pieces = 0
    for root, ks in plan.exposures().items():
        if root not in singles:
            continue
        piece = delayed(_median_piece, pure=True)(singles[root], [plan.chips[k] for k in ks], [skies[k] for k in ks],
                                                  dask_key_name=f"median-piece-{root}")
        box = exposure_box([plan.single_boxes[k] for k in ks])
        for t in tiles_touching(box, shape, ts, halo=settings.halo):
            per_tile[t].append(piece)
        pieces += 1
    done = [delayed(_median_tile, pure=True)(per_tile[t], tb, settings, plan.median_canvas, pieces,
                                             dask_key_name=f"median-tile-{t}")
            for t, tb in enumerate(tile_list)]
    return delayed(_commit_with_manifest, pure=True)(plan.median_canvas, plan.run_key, *done,
                                                     dask_key_name="median-commit")


def add_blot_cr(plan: Plan, median, statics, skies) -> tuple:
    """Steps 5 and 6: one task per chip blots the median onto it and, with driz_cr on, finds
    its cosmic rays -- ``(crmasks, other)``: per chip a handle on its CR mask (True = good), or
    None when no CR masks are made, and the handles of the other products (crclean files;
    blot-only tasks)."""
    blot_settings, cr_settings = plan.settings.blot, plan.settings.cr
    if median is None or blot_settings is None:
        return None, []
    results = [None if ("crmask", k) in plan.reuse else
               delayed(_blot_cr, pure=True)(chip, median, plan.single_frame, plan.single_boxes[k], skies[k],
                                            statics[k], blot_settings, cr_settings, plan.settings.resetbits,
                                            plan.params, plan.out_dir, plan.run_key, dask_key_name=f"blot-cr-{k}")
               for k, chip in enumerate(plan.chips)]
    if cr_settings is None:
        return None, [r for r in results if r is not None]
    crmasks = [delayed(_read_crmask, pure=True)(plan.reuse[("crmask", k)], dask_key_name=f"crmask-{k}")
               if ("crmask", k) in plan.reuse else
               delayed(_cr_only, pure=True)(r, dask_key_name=f"crmask-{k}") for k, r in enumerate(results)]
    other = []
    if cr_settings.corr:
        # (a resumed run keeps the crclean files of chips whose masks it reuses)
        other = [delayed(_write_crclean, pure=True)(plan.chips[ks[0]].path, root,
                                                    [(plan.chips[k], results[k]) for k in ks], plan.out_dir,
                                                    plan.params, dask_key_name=f"crclean-{root}")
                 for root, ks in plan.exposures().items() if all(results[k] is not None for k in ks)]
    return crmasks, other


def add_final_drizzle(plan: Plan, statics, skies, crmasks):
    """Step 7: the final drizzle, a tiled reduction -- a handle on ``<output>_drz.fits`` (or
    None).  One task per chip drizzles it into sums over its box; each piece of a box in a tile
    is cut out by its own task; each tile task adds its pieces in chip order and writes."""
    settings, frame = plan.settings.final, plan.final_frame
    if settings is None or plan.final_path is None:
        return None
    tile_list = tiles(frame.shape, plan.tile_size)
    per_tile = [[] for _ in tile_list]
    for k, chip in enumerate(plan.chips):
        box = plan.final_boxes[k]
        s = delayed(_final_chip, pure=True)(chip, frame, box, settings, skies[k], statics[k],
                                            None if crmasks is None else crmasks[k],
                                            None if plan.ivm is None else plan.ivm[k],
                                            dask_key_name=f"final-chip-{k}")
        for t in tiles_touching(box, frame.shape, plan.tile_size):
            per_tile[t].append((k + 1, delayed(cut_sums, pure=True)(s, tile_list[t],
                                                                    dask_key_name=f"final-part-{k}-{t}")))
    done = [delayed(_final_tile, pure=True)(per_tile[t], tb, settings, plan.final_canvas, len(plan.chips),
                                            plan.texptime, dask_key_name=f"final-tile-{t}")
            for t, tb in enumerate(tile_list)]
    return delayed(_commit, pure=True)(plan.final_canvas, *done, dask_key_name="final-commit")


def add_input_dq_update(plan: Plan, crmasks, after) -> list:
    """dazzle's optional last layer: the CR flags ORed into the inputs' DQ (each input backed
    up first), one task per input file, after every product is written (``after``)."""
    crbit = plan.settings.crbit
    if crbit is None or crmasks is None:
        return []
    wait = delayed(_after, pure=True)(*[x for x in after if x is not None], dask_key_name="update-dq-after")
    by_path: dict = {}
    for k, c in enumerate(plan.chips):
        by_path.setdefault(c.path, []).append(k)
    return [delayed(_update_dq, pure=True)(path, [plan.chips[k] for k in ks], [crmasks[k] for k in ks], crbit,
                                           wait, dask_key_name=f"update-dq-{i}")
            for i, (path, ks) in enumerate(by_path.items())]


# ---------------------------------------------------------------------------------------------
# the graph
# ---------------------------------------------------------------------------------------------

def build(plan: Plan) -> dict:
    """The pipeline: each step adds its layer from the plan and the layers before it.

    Returns the handles (Dask delayed objects, paths, or None) of what the run produces:
    ``{"single": [...], "median", "final", "skies", "crmasks" (None without driz_cr),
    "updated": [...], "other": [...]}``.
    """
    statics = add_static_mask(plan)
    skies, chip_skies = add_sky(plan, statics)
    singles = add_single_drizzle(plan, statics, chip_skies)
    median = add_median(plan, singles, chip_skies)
    crmasks, other = add_blot_cr(plan, median, statics, chip_skies)
    final = add_final_drizzle(plan, statics, chip_skies, crmasks)
    updated = add_input_dq_update(plan, crmasks, [final, median, *singles.values()])
    return {"single": list(singles.values()), "median": median, "final": final, "skies": skies,
            "crmasks": crmasks, "updated": updated, "other": other}
