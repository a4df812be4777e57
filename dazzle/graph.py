"""The Dask graph: chips in, products out.

Shape of the graph::

    single-chip-<k>          -> single-exposure-<root>     (<root>_single_sci/wht.fits)
    final-chip-<k>           -> final-part-<k>-<t>  (the chip's sums cut to tile t)
    final-part-*-<t>         -> final-tile-<t>      (sums added in chip order, divided, written)
    final-tile-*             -> final-commit        (<output>_drz.fits renamed into place)

A chip task receives the chip's small picklable description (never its pixels), reads the
pixels itself, drizzles them once (Numba kernel) into float64 sums over the box of output
pixels it touches, and the box is then cut into the output tiles it overlaps.  Each tile task
adds the pieces of the chips that touch it, in chip order, divides, and writes its rectangle of
the SCI, WHT and CTX extensions straight into the product file (laid out beforehand; no task
ever holds the whole output frame).  The number of tasks grows with chips plus tiles touched,
not chips times tiles; the products are the same bits whatever the scheduler, the number of
workers or the tile size.  Nothing here does arithmetic on pixels: that is the steps'
(:mod:`dazzle.steps`) and the kernels' work.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from dask import delayed

from dazzle import products
from dazzle.geometry import sub_frame
from dazzle.steps.common import DrizzleSettings, Sums
from dazzle.steps.driz_separate import exposure_box, single_chip, single_exposure
from dazzle.steps.final_drizzle import final_chip, final_combine


@dataclass
class Plan:
    """Everything the graph needs, decided by the driver before any pixel is read."""

    chips: list                       # dazzle.io.Chip, in input order
    params: dict                      # resolved parameters
    out_dir: str
    final_path: str | None            # None: no final drizzle
    single_frame: object = None       # geometry.Frame for driz_separate (None: step off)
    final_frame: object = None        # geometry.Frame for the final drizzle
    single_boxes: list = field(default_factory=list)   # per chip (x0, x1, y0, y1) or None
    final_boxes: list = field(default_factory=list)
    skies: list = field(default_factory=list)          # per chip sky (None: MDRIZSKY or 0)
    static_masks: list = field(default_factory=list)   # per chip bool mask (True = good) or None
    ivm: list | None = None           # per chip IVM arrays (final_wht_type=IVM)
    texptime: float = 0.0
    tile_size: int = 2048
    final_canvas: object = None       # products.Canvas laid out by the driver


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


def _write_single(parts, box, frame, settings, out_dir, root, params, exptime, bunit):
    sci, wht = single_exposure(parts, box, settings)
    sub = sub_frame(frame, box[0], box[2], box[1] - box[0], box[3] - box[2])
    return products.write_single_products(out_dir, root, sci, wht, sub, box, params,
                                          exptime=exptime, bunit=bunit)


def _final_tile(parts, box, settings, canvas, nchips, texptime):
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


def build(plan: Plan) -> dict:
    """The delayed objects of the run: {"single": [...], "final": ...} (products' paths)."""
    out = {"single": [], "final": None}
    chips, params = plan.chips, plan.params
    if plan.single_frame is not None:
        settings = DrizzleSettings.from_params(params, "single")
        by_root: dict[str, list[int]] = {}
        for k, chip in enumerate(chips):
            by_root.setdefault(chip.root, []).append(k)
        for root, ks in by_root.items():
            box = exposure_box([plan.single_boxes[k] for k in ks])
            if box is None:
                continue
            parts = [delayed(single_chip, pure=True)(chips[k], plan.single_frame, plan.single_boxes[k], settings,
                                                    sky=plan.skies[k], static_mask=plan.static_masks[k],
                                                    dask_key_name=f"single-chip-{k}")
                     for k in ks]
            first = chips[ks[0]]
            out["single"].append(delayed(_write_single, pure=True)(
                parts, box, plan.single_frame, settings, plan.out_dir, root, params, first.exptime, first.bunit,
                dask_key_name=f"single-exposure-{root}"))
    if plan.final_path is not None:
        settings = DrizzleSettings.from_params(params, "final")
        frame = plan.final_frame
        tile_list = tiles(frame.shape, plan.tile_size)
        per_tile = [[] for _ in tile_list]
        for k, chip in enumerate(chips):
            s = delayed(final_chip, pure=True)(chip, frame, plan.final_boxes[k], settings,
                                              sky=plan.skies[k], static_mask=plan.static_masks[k],
                                              ivm=None if plan.ivm is None else plan.ivm[k],
                                              dask_key_name=f"final-chip-{k}")
            for t, tb in enumerate(tile_list):
                if plan.final_boxes[k] is not None and overlaps(plan.final_boxes[k], tb):
                    per_tile[t].append((k + 1, delayed(cut_sums, pure=True)(
                        s, tb, dask_key_name=f"final-part-{k}-{t}")))
        done = [delayed(_final_tile, pure=True)(per_tile[t], tb, settings, plan.final_canvas, len(chips),
                                               plan.texptime, dask_key_name=f"final-tile-{t}")
                for t, tb in enumerate(tile_list)]
        out["final"] = delayed(_commit, pure=True)(plan.final_canvas, *done, dask_key_name="final-commit")
    return out
