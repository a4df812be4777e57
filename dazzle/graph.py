"""The Dask graph: chips in, products out.

Shape of the graph (``k`` a chip, ``t`` a tile of the output frame)::

    static-sig-<k>  -> static-<shape>-<extver>        static mask per chip number (in memory)
    sky-stat-<k>    -> skies                          one sky per chip (never written to inputs)
    single-chip-<k> -> single-exposure-<root>         <root>_single_sci/wht.fits
    median-piece-<root> -> median-tile-<t> -> median-commit        <output>_med.fits
    blot-cr-<k>                                       <root>_sci<N>_blt.fits, _crmask.fits
    final-chip-<k>  -> final-part-<k>-<t> -> final-tile-<t> -> final-commit   <output>_drz.fits

A chip task receives the chip's small picklable description (never its pixels) and reads the
pixels itself.  The final drizzle is a tiled reduction: each chip is drizzled once (Numba
kernel) into float64 sums over the box of output pixels it touches, the box is cut into the
tiles it overlaps, and each tile task adds the pieces of the chips that touch it *in chip
order*, divides, and writes its rectangle of SCI, WHT and CTX straight into the product file
(laid out beforehand).  The median is computed the same way, tile by tile, from only the
single-drizzled images that overlap each tile.  No task ever holds an array of the whole
output frame; the number of tasks grows with chips plus tiles touched, not chips times tiles;
the products are the same bits whatever the scheduler, the number of workers or the tile
size.  Nothing here does arithmetic on pixels: that is the steps' (:mod:`dazzle.steps`) and the
kernels' work.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from dask import delayed

from dazzle import products
from dazzle.geometry import sub_frame
from dazzle.steps import blot as blot_step
from dazzle.steps import driz_cr as cr_step
from dazzle.steps import median as median_step
from dazzle.steps import sky as sky_step
from dazzle.steps import static_mask as static_step
from dazzle.steps.common import DrizzleSettings, Sums
from dazzle.steps.common import load_chip as common_load_chip
from dazzle.steps.driz_separate import exposure_box, single_chip, single_exposure
from dazzle.steps.final_drizzle import final_chip, final_combine


@dataclass
class Plan:
    """Everything the graph needs, decided by the driver before any pixel is read."""

    chips: list                       # dazzle.io.Chip, in input order
    params: dict                      # resolved parameters
    out_dir: str
    final_path: str | None            # None: no final drizzle
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


def tiles(shape, tile_size):
    """The tiles (x0, x1, y0, y1) of a frame, row by row."""
    ny, nx = shape
    return [(x0, min(x0 + tile_size, nx), y0, min(y0 + tile_size, ny))
            for y0 in range(0, ny, tile_size) for x0 in range(0, nx, tile_size)]


def overlaps(a, b):
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


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

def load_chip(chip, params):
    """The chip's pixels, ``resetbits`` cleared (:func:`dazzle.steps.common.load_chip`)."""
    return common_load_chip(chip, params.get("resetbits"))


def _static_signature(chip, params):
    return static_step.chip_signature(chip.load(err=False, dq=False).sci,
                                      static_sig=params.get("static_sig", 4.0))


def _static_and(*signatures):
    return static_step.combine(signatures)


def _and_masks(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return np.asarray(a, bool) & np.asarray(b, bool)


def _sky_stat(chip, static, params):
    return sky_step.chip_sky_stat(chip, load_chip(chip, params), static, params)


def _skies(chips, stats, params):
    user = sky_step.user_skies(chips, params)
    if user is not None:
        return user
    return sky_step.skies_from_stats(chips, stats, params)


def _skies_all_at_once(chips, statics, params):
    return sky_step.compute_skies(chips, [load_chip(c, params) for c in chips], statics, params)


def _drizzle_sky(skies, k):
    return skies[k].drizzle_sky


def _write_single(parts, box, frame, settings, out_dir, root, params, exptime, bunit, skies, key):
    sci, wht = single_exposure(parts, box, settings)
    sub = sub_frame(frame, box[0], box[2], box[1] - box[0], box[3] - box[2])
    paths = products.write_single_products(out_dir, root, sci, wht, sub, box, params,
                                           exptime=exptime, bunit=bunit, skies=skies)
    products.write_manifest(paths, key)
    return paths


def _median_piece(single_paths, chips, ks, skies):
    """The median's description of one exposure: sky in e- (lowest over its chips), read
    noise squared (mean over its chips), exposure time."""
    sky_e = min(skies[k].drizzle_sky * cr_step.conversion_factor(
        in_units="counts", exptime=chips[k].exptime, gain=chips[k].gain, bunit=chips[k].bunit)
        for k in ks)
    rn2 = float(np.mean([(chips[k].rdnoise or 0.0) ** 2 for k in ks]))
    return median_step.describe_piece(single_paths[0], single_paths[1], sky=sky_e, rn2=rn2,
                                      exptime=chips[ks[0]].exptime)


def _median_tile(pieces, box, params, canvas):
    if products.canvas_committed(canvas):
        return box   # recomputed after a lost worker, after the commit: nothing to write
    block = median_step.median_block(pieces, box, params)
    products.write_block(canvas, 0, block, box[2], box[0])
    return box


def _blot_cr(chip, k, median_path, frame, box, skies, static, params, out_dir, key=""):
    """Blot the median onto chip ``k`` and find its cosmic rays: returns the CR mask (True =
    good) and writes the blot / crmask (/ crclean) products."""
    sky = skies[k]
    median, mx0, my0 = blot_step.read_section(median_path, box, frame.shape)
    blotted = blot_step.blot_chip(median, chip, frame, offset=(mx0, my0),
                                  interp=params.get("blot_interp", "poly5"),
                                  sinscl=params.get("blot_sinscl", 1.0), sky=sky.drizzle_sky,
                                  addsky=params.get("blot_addsky", True),
                                  skyval=params.get("blot_skyval", 0.0) or 0.0,
                                  stepsize=int(params.get("stepsize", 10)),
                                  exact=str(params.get("pixmap_mode", "fast")) == "exact")
    products.write_chip_image(out_dir, f"{chip.root}_sci{chip.extver}_blt.fits", blotted, chip,
                              params, {"MDRIZSKY": (float(sky.value), "sky (chip units)")})
    if not params.get("driz_cr", True):
        return None
    data = load_chip(chip, params)
    legacy = bool(params.get("driz_cr_legacy", False))
    known_bad = None if legacy else cr_step.known_bad_pixels(data.dq, static,
                                                             params.get("driz_sep_bits", 0))
    good = cr_step.cr_mask(data.sci, blotted, sky=float(sky.value), gain=chip.gain, rdnoise=chip.rdnoise,
                           exptime=chip.exptime, in_units=chip.in_units, bunit=chip.bunit,
                           driz_cr_snr=params.get("driz_cr_snr", (3.5, 3.0)),
                           driz_cr_scale=params.get("driz_cr_scale", (1.2, 0.7)),
                           driz_cr_grow=params.get("driz_cr_grow", 1),
                           driz_cr_ctegrow=params.get("driz_cr_ctegrow", 0),
                           cte_direction=cr_step.cte_direction(chip.instrument, chip.detector,
                                                               chip.extver, getattr(chip, "ccdamp", None)),
                           noise=params.get("driz_cr_noise", "astrodrizzle"),
                           legacy=legacy, known_bad=known_bad)
    crmask_path = products.write_chip_image(out_dir, f"{chip.root}_sci{chip.extver}_crmask.fits",
                                            cr_step.crmask_product(good), chip, params, {})
    products.write_manifest(crmask_path, key)
    if params.get("driz_cr_corr", False):
        return good, cr_step.crclean(data.sci, blotted, good)
    return good, None


def _write_crclean(chip_path, root, chips_and_results, out_dir, params):
    return products.write_crclean(out_dir, root, chip_path, chips_and_results, params)


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


def _read_crmask(path):
    from astropy.io import fits

    return fits.getdata(path).astype(bool)


def _cr_only(result):
    return None if result is None else result[0]


def _update_dq(path, chips, crmasks, params, *after):
    from dazzle.io import update_input_dq

    return update_input_dq(path, chips, crmasks, crbit=int(params.get("crbit", 4096)))


# ---------------------------------------------------------------------------------------------
# the graph
# ---------------------------------------------------------------------------------------------

def build(plan: Plan) -> dict:
    """The delayed objects of the run: {"single": [...], "median": path, "final": path, ...}."""
    d = delayed
    out = {"single": [], "median": None, "final": None, "crmasks": None, "updated": [], "other": []}
    chips, params = plan.chips, plan.params
    n = len(chips)
    by_root: dict[str, list[int]] = {}
    for k, chip in enumerate(chips):
        by_root.setdefault(chip.root, []).append(k)

    # -- step 1: static mask (in memory), ANDed with the user's in-memory mask ----------------
    statics = list(plan.user_static) if plan.user_static else [None] * n
    if params.get("static", True):
        by_key: dict = {}
        for k, chip in enumerate(chips):
            by_key.setdefault(static_step.mask_key(chip), []).append(k)
        combined = {}
        for key, ks in by_key.items():
            sigs = [d(_static_signature, pure=True)(chips[k], params, dask_key_name=f"static-sig-{k}")
                    for k in ks]
            # AND the signatures in a tree of pairs: no task holds more than two of them
            name = f"static-{key[0][0]}x{key[0][1]}-{key[1]}"
            level = 0
            while len(sigs) > 1:
                sigs = [d(_static_and, pure=True)(*sigs[i:i + 2], dask_key_name=f"{name}-l{level}-{i // 2}")
                        if i + 1 < len(sigs) else sigs[i] for i in range(0, len(sigs), 2)]
                level += 1
            combined[key] = sigs[0]
        statics = [d(_and_masks, pure=True)(statics[k], combined[static_step.mask_key(c)],
                                            dask_key_name=f"static-chip-{k}") for k, c in enumerate(chips)]

    # -- step 2: sky ---------------------------------------------------------------------------
    method = str(params.get("skymethod", "localmin")).lower()
    if params.get("skysub", True) and "match" in method:
        skies = d(_skies_all_at_once, pure=True)(chips, statics, params, dask_key_name="skies")
    else:
        stats = [None] * n
        if params.get("skysub", True) and sky_step.user_skies(chips, params) is None:
            stats = [d(_sky_stat, pure=True)(c, statics[k], params, dask_key_name=f"sky-stat-{k}")
                     for k, c in enumerate(chips)]
        skies = d(_skies, pure=True)(chips, stats, params, dask_key_name="skies")
    out["skies"] = skies
    drizzle_sky = [d(_drizzle_sky, pure=True)(skies, k, dask_key_name=f"sky-{k}") for k in range(n)]

    # -- step 3: drizzle separate ----------------------------------------------------------------
    singles = {}
    if plan.single_frame is not None:
        settings = DrizzleSettings.from_params(params, "single")
        for root, ks in by_root.items():
            box = exposure_box([plan.single_boxes[k] for k in ks])
            if box is None:
                continue
            if ("single", root) in plan.reuse:
                singles[root] = plan.reuse[("single", root)]
                continue
            parts = [d(single_chip, pure=True)(chips[k], plan.single_frame, plan.single_boxes[k], settings,
                                              sky=drizzle_sky[k], static_mask=statics[k],
                                              dask_key_name=f"single-chip-{k}")
                     for k in ks]
            first = chips[ks[0]]
            singles[root] = d(_write_single, pure=True)(
                parts, box, plan.single_frame, settings, plan.out_dir, root, params, first.exptime,
                first.bunit, [skies[k] for k in ks], plan.run_key, dask_key_name=f"single-exposure-{root}")
        out["single"] = list(singles.values())

    # -- step 4: median, tile by tile -------------------------------------------------------------
    median_path = plan.reuse.get("median")
    if median_path is None and plan.median_canvas is not None:
        pieces = [d(_median_piece, pure=True)(singles[root], chips, by_root[root], skies,
                                              dask_key_name=f"median-piece-{root}")
                  for root in by_root if root in singles]
        done = [d(_median_tile, pure=True)(pieces, tb, params, plan.median_canvas, dask_key_name=f"median-tile-{t}")
                for t, tb in enumerate(tiles(plan.single_frame.shape, plan.tile_size))]
        median_path = d(_commit_with_manifest, pure=True)(plan.median_canvas, plan.run_key, *done,
                                                          dask_key_name="median-commit")
    out["median"] = median_path

    # -- steps 5 and 6: blot and driz_cr, one task per chip ---------------------------------------
    crmasks = [None] * n
    if median_path is not None and params.get("blot", True):
        results = [None if ("crmask", k) in plan.reuse else
                   d(_blot_cr, pure=True)(chip, k, median_path, plan.single_frame, plan.single_boxes[k], skies,
                                          statics[k], params, plan.out_dir, plan.run_key,
                                          dask_key_name=f"blot-cr-{k}")
                   for k, chip in enumerate(chips)]
        if params.get("driz_cr", True):
            crmasks = [d(_read_crmask, pure=True)(plan.reuse[("crmask", k)], dask_key_name=f"crmask-{k}")
                       if ("crmask", k) in plan.reuse else
                       d(_cr_only, pure=True)(r, dask_key_name=f"crmask-{k}") for k, r in enumerate(results)]
            out["crmasks"] = crmasks
            if params.get("driz_cr_corr", False):
                # (a resumed run keeps the crclean files of chips whose masks it reuses)
                out["other"] += [d(_write_crclean, pure=True)(chips[ks[0]].path, root,
                                                              [(chips[k], results[k]) for k in ks],
                                                              plan.out_dir, params, dask_key_name=f"crclean-{root}")
                                  for root, ks in by_root.items() if all(results[k] is not None for k in ks)]
        else:
            out["other"] += [r for r in results if r is not None]

    # -- step 7: final drizzle, a tiled reduction ---------------------------------------------
    if plan.final_path is not None:
        settings = DrizzleSettings.from_params(params, "final")
        frame = plan.final_frame
        tile_list = tiles(frame.shape, plan.tile_size)
        per_tile = [[] for _ in tile_list]
        for k, chip in enumerate(chips):
            s = d(final_chip, pure=True)(chip, frame, plan.final_boxes[k], settings,
                                          sky=drizzle_sky[k], static_mask=statics[k], cr_mask=crmasks[k],
                                          ivm=None if plan.ivm is None else plan.ivm[k],
                                          dask_key_name=f"final-chip-{k}")
            for t, tb in enumerate(tile_list):
                if plan.final_boxes[k] is not None and overlaps(plan.final_boxes[k], tb):
                    per_tile[t].append((k + 1, d(cut_sums, pure=True)(s, tb, dask_key_name=f"final-part-{k}-{t}")))
        done = [d(_final_tile, pure=True)(per_tile[t], tb, settings, plan.final_canvas, n,
                                         plan.texptime, dask_key_name=f"final-tile-{t}")
                for t, tb in enumerate(tile_list)]
        out["final"] = d(_commit, pure=True)(plan.final_canvas, *done, dask_key_name="final-commit")

    # -- optional: CR flags into the inputs' DQ (backed up first), after everything else ------
    if params.get("update_input_dq", False) and out["crmasks"] is not None:
        after = [x for x in (out["final"], median_path) if x is not None] + out["single"]
        paths = list(dict.fromkeys(c.path for c in chips))
        out["updated"] = [d(_update_dq, pure=True)(p, [c for c in chips if c.path == p],
                                                   [crmasks[k] for k, c in enumerate(chips) if c.path == p],
                                                   params, *after, dask_key_name=f"update-dq-{i}")
                          for i, p in enumerate(paths)]
    return out
