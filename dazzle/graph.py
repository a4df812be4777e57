"""The Dask graph: chips in, single and final drizzle products out.

Shape of the graph (one task per chip for each drizzle step, then the combinations)::

    single-chip-<k>  ->  single-exposure-<root>          (writes <root>_single_sci/wht.fits)
    final-chip-<k>   ->  final-combine                   (writes <output>_drz.fits)

A chip task receives the chip's small picklable description (never its pixels), reads the
pixels itself and returns float64 sums over the box of output pixels it touches.  The
combination tasks add those sums in chip order, so the products are the same bits whatever the
scheduler or the number of workers.  Nothing here does arithmetic on pixels: that is the steps'
(:mod:`dazzle.steps`) and the kernels' work.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dask import delayed

from dazzle import products
from dazzle.geometry import sub_frame
from dazzle.steps.common import DrizzleSettings
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


def _write_single(parts, box, frame, settings, out_dir, root, params, exptime, bunit):
    sci, wht = single_exposure(parts, box, settings)
    sub = sub_frame(frame, box[0], box[2], box[1] - box[0], box[3] - box[2])
    return products.write_single_products(out_dir, root, sci, wht, sub, box, params,
                                          exptime=exptime, bunit=bunit)


def _write_final(parts, frame, settings, path, params, nchips, texptime, bunit, primary_cards):
    box = (0, frame.nx, 0, frame.ny)
    sci, wht, ctx = final_combine(parts, box, settings, nchips=nchips, texptime=texptime)
    return products.write_drizzle_product(path, sci, wht, ctx, frame, params, texptime=texptime,
                                          ndrizim=nchips, bunit=bunit, primary_cards=primary_cards)


def _primary_cards(chip):
    return {"INSTRUME": chip.instrument or "", "DETECTOR": chip.detector or ""}


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
        parts = []
        for k, chip in enumerate(chips):
            s = delayed(final_chip, pure=True)(chip, plan.final_frame, plan.final_boxes[k], settings,
                                              sky=plan.skies[k], static_mask=plan.static_masks[k],
                                              ivm=None if plan.ivm is None else plan.ivm[k],
                                              dask_key_name=f"final-chip-{k}")
            parts.append((k + 1, s))
        out["final"] = delayed(_write_final, pure=True)(
            parts, plan.final_frame, settings, plan.final_path, params, len(chips), plan.texptime,
            chips[0].bunit, _primary_cards(chips[0]), dask_key_name="final-combine")
    return out
