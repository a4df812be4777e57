"""The driver: parameters and inputs in, the Dask graph built and run, products out.

``dazzle.run(inputs, output, config=None, **params)`` runs AstroDrizzle's steps (static mask,
sky, drizzle separate, median, blot, driz_cr, final drizzle; each switchable by its
parameter); ``dazzle.drizzle(input, outdata, **params)`` is AstroDrizzle's
``adrizzle.drizzle``: the separate or the final drizzle, by ``driz_separate``.

The driver reads only headers: it decides the output frames, the chips' boxes and the
intermediate products a resumed run can reuse, lays out the tiled products, builds the graph
(:mod:`dazzle.graph`) and runs it where the ``scheduler`` says (:mod:`dazzle.cluster`).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

import numpy as np

from dazzle import geometry, io, products
from dazzle.cluster import compute
from dazzle.facts import context_planes
from dazzle.graph import Plan, build
from dazzle.params import resolve
from dazzle.steps import Settings

log = logging.getLogger("dazzle")

_WCS_KEYS = ("rot", "scale", "outnx", "outny", "ra", "dec", "crpix1", "crpix2")


@dataclass
class RunResult:
    """What a run produced."""

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


def _kernel_pad(kernel: str, pixfrac: float) -> float:
    """How far (output pixels, at unit scale) a kernel reaches beyond a pixel's edges."""
    if kernel == "gaussian":
        return max(2.5 * pixfrac / 2.3548, 1.2) + 1.0
    if kernel.startswith("lanczos"):
        return int(kernel[-1]) + 1.0
    if kernel == "tophat":
        return pixfrac / 2.0 + 1.0
    return 1.0


def _frame_spec(params, prefix: str):
    """What defines a drizzle step's output frame: (custom, refimage, custom values)."""
    custom = params[prefix + "wcs"]
    over = {k: params[prefix + k] for k in _WCS_KEYS} if custom else {}
    return custom, params[prefix + "refimage"] if custom else "", over


def output_frame(chips, params, prefix: str, wcss=None):
    """The output frame of one drizzle step (``prefix`` "driz_sep_" or "final_"); ``wcss``:
    the chips' WCSs, if already built (planning builds each chip's WCS once)."""
    wcss = [c.wcs() for c in chips] if wcss is None else wcss
    pairs = [(w, c.shape) for w, c in zip(wcss, chips)]
    _, refimage, over = _frame_spec(params, prefix)
    if refimage:
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
        mode = params["output_frame"]
        w, shape = geometry.default_output_wcs(pairs, idcscale=chips[0].idcscale,
                                               footprint_mode="corners" if mode == "astrodrizzle" else "edges")
    return geometry.Frame.from_wcs(w, shape)


def _boxes(chips, frame, kernel, pixfrac, what, wcss):
    boxes = []
    wf = frame.wcs()
    for chip, w in zip(chips, wcss):
        box = geometry.chip_bounding_box(w, chip.shape, wf, frame.shape,
                                         pad=_kernel_pad(kernel, pixfrac))
        if box is None:
            raise io.InputError(f"{chip.label}: does not overlap the {what} output frame "
                                f"({frame.shape[1]}x{frame.shape[0]} pixels)")
        boxes.append(box)
    return boxes


def _output_names(chips, output):
    path = io.product_name(chips, output)
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


def _switches(chips, params) -> dict:
    """``params`` with the steps that cannot run switched off (as AstroDrizzle): with one input
    there is nothing to compare, so no median, blot or driz_cr; nor without driz_separate."""
    params = dict(params)
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
    sep_pad = _kernel_pad(params["driz_sep_kernel"], params["driz_sep_pixfrac"])
    if params["driz_separate"]:
        plan.single_frame = output_frame(chips, params, "driz_sep_", wcss)
        plan.single_boxes = _boxes(chips, plan.single_frame, params["driz_sep_kernel"],
                                   params["driz_sep_pixfrac"], "single-drizzle", wcss)
    if plan.final_path is None:
        return
    if plan.single_frame is not None and _frame_spec(params, "final_") == _frame_spec(params, "driz_sep_"):
        plan.final_frame = plan.single_frame
        if _kernel_pad(params["final_kernel"], params["final_pixfrac"]) == sep_pad:
            plan.final_boxes = list(plan.single_boxes)
            return
    else:
        plan.final_frame = output_frame(chips, params, "final_", wcss)
    plan.final_boxes = _boxes(chips, plan.final_frame, params["final_kernel"], params["final_pixfrac"],
                              "final", wcss)


def plan_run(inputs, output, params, *, ivm=None, static_mask=None) -> Plan:
    """Read the inputs' headers, decide the frames and the chips' boxes.  ``params`` (validated,
    :func:`dazzle.params.resolve`) is not changed: the plan holds a copy with the steps that
    cannot run switched off, and the steps' settings built from it."""
    chips = io.read_inputs(inputs, group=params["group"] or None, gain=params["gain"],
                           rdnoise=params["rdnoise"], exptime=params["exptime"],
                           gnkeyword=params["gnkeyword"] or None,
                           rnkeyword=params["rnkeyword"] or None,
                           expkeyword=params["expkeyword"] or None)
    final_path, out_dir = _output_names(chips, output)
    os.makedirs(out_dir, exist_ok=True)
    params = _switches(chips, params)
    plan = Plan(chips=chips, params=params, out_dir=out_dir, settings=Settings.from_params(params),
                final_path=final_path if params["driz_combine"] else None)
    plan.user_static = _static_masks(chips, static_mask)
    base = os.path.basename(final_path)
    for suffix in ("_drz.fits", "_drc.fits", "_drw.fits"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    plan.out_root = os.path.join(out_dir, base)
    _plan_frames(plan, wcss=[c.wcs() for c in chips])
    if plan.final_path is not None and params["final_wht_type"] == "IVM":
        plan.ivm = _read_ivm(chips, ivm)
    seen = {}
    for c in chips:
        seen.setdefault(c.path, c.exptime)
    plan.texptime = float(sum(seen.values()))
    plan.tile_size = params["tile_size"]
    return plan


# parameters that do not change any product's pixels
_NOT_IN_KEY = {"scheduler", "resume", "tile_size", "update_input_dq", "runfile", "num_cores", "clean",
               "preserve", "in_memory"}


def run_key(plan) -> str:
    """What a product of this run depends on: the inputs (path, size, modification time), the
    parameters and the frames.  A resumed run reuses only products with the same key."""
    import hashlib
    import json

    from dazzle.params import format_value

    inputs = []
    for path in dict.fromkeys(c.path for c in plan.chips):
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
    plan.final_canvas = products.final_product_canvas(
        plan.final_path, plan.final_frame, plan.params, texptime=plan.texptime, ndrizim=len(plan.chips),
        nplanes=context_planes(len(plan.chips)), bunit=c0.bunit,
        primary_cards={"INSTRUME": c0.instrument or "", "DETECTOR": c0.detector or ""})


def _read_ivm(chips, ivm):
    if ivm is None:
        raise io.InputError("final_wht_type=IVM needs IVM images: pass ivm=[...] (one file per input)")
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
                ext = ("SCI", c.extver) if ("SCI", c.extver) in h else (c.extver if len(h) > 1 else 0)
                arrays.append(np.asarray(h[ext].data, dtype=np.float32))
        except Exception as exc:  # noqa: BLE001
            raise io.InputError(f"{f}: cannot read the IVM image for {c.label}: {exc}") from exc
    return arrays


def run(inputs, output="", config=None, *, ivm=None, static_mask=None, progress=False,
        workers=None, profile=None, report=None, summary=True, **params) -> RunResult:
    """Run the pipeline on ``inputs`` (paths, a glob, ``@list`` or comma-separated): every
    AstroDrizzle step whose switch is on (``static``, ``skysub``, ``driz_separate``, ``median``,
    ``blot``, ``driz_cr``, ``driz_combine``).

    ``config`` is a dazzle or AstroDrizzle ``.cfg`` file (or a dict); keyword arguments use
    AstroDrizzle's parameter names and win over the file.  ``ivm`` lists one IVM file per
    input for ``final_wht_type="IVM"``.  ``static_mask`` is a boolean mask kept in memory
    (True = good; one array, or a dict by chip number, ``(root, extver)`` or chip label) that is
    ANDed into every drizzle's weights.  ``workers``, ``profile`` and ``report`` go to
    :func:`dazzle.cluster.compute` (worker count, cluster profiles file, performance report).
    ``summary=False`` leaves the run summary (``<output>_run.json``) to the caller.
    When ``scheduler`` is not given and a ``distributed`` Client is active in the caller's
    process, the run uses that client.  Returns a :class:`RunResult`.
    """
    if output:
        params["output"] = output
    values = resolve(config, **params)
    t0 = time.perf_counter()
    plan = plan_run(inputs, values["output"], values, ivm=ivm, static_mask=static_mask)
    t_plan = time.perf_counter() - t0
    log.info("dazzle: %d chip(s) from %d file(s); final frame %s", len(plan.chips),
             len({c.path for c in plan.chips}), None if plan.final_frame is None else plan.final_frame.shape)
    plan.run_key = run_key(plan)
    if values["resume"]:
        plan.reuse = find_reusable(plan)
        log.info("dazzle: resuming, %d intermediate product(s) reused", len(plan.reuse))
    try:
        if plan.final_path is not None:
            _lay_out_final(plan)
        if plan.params["median"] and "median" not in plan.reuse:
            _lay_out_median(plan)
        graph = build(plan)
        t1 = time.perf_counter()
        scheduler = values["scheduler"]
        if scheduler == "threads" and not any(str(k).lower() == "scheduler" for k in params):
            scheduler = None   # the default: the caller's active Client if any, else threads
        steps: dict = {}
        res = compute([graph], scheduler, progress=progress, workers=workers, profile=profile, report=report,
                      steps=steps)[0]
        t_run = time.perf_counter() - t1
    finally:
        for canvas in (plan.final_canvas, plan.median_canvas):
            if canvas is not None:
                products.abort_canvas(canvas)   # no-op once committed
    skies = res["skies"]
    result = RunResult(output=res["final"], single=list(res["single"]), median=res["median"],
                       skies=[float(s.value) for s in skies] if skies is not None else [],
                       crmasks=res["crmasks"],
                       frame_shape=None if plan.final_frame is None else plan.final_frame.shape,
                       nchips=len(plan.chips), timings={"plan": t_plan, "run": t_run}, params=plan.params,
                       chips=plan.chips, reused=sorted(str(k) for k in plan.reuse), steps=steps)
    # what `dazzle report` reads; a run is not failed by its summary
    if not summary:
        return result
    try:
        from dazzle.report import save_run_summary

        result.summary = save_run_summary(result, wall_time=time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001
        log.warning("dazzle: could not write the run summary: %s", exc)
    return result


def drizzle(input, outdata="", config=None, **params) -> RunResult:
    """AstroDrizzle's ``adrizzle.drizzle``: with ``driz_separate=True`` (the default) the
    separate drizzle only, else the final drizzle only."""
    values = resolve(config, **{k: v for k, v in params.items()
                                if k not in ("ivm", "progress", "static_mask", "workers", "profile",
                                             "report", "summary")})
    separate = values["driz_separate"]
    params = dict(params)
    params["driz_separate"] = bool(separate)
    params["driz_combine"] = not separate
    return run(input, outdata, config, **params)
