"""Graph benchmark (issue 15): plan and build the task graph for 100, 1,000 and 10,000 chips,
without computing anything, and report the time and the size of the graph.

    .venv/bin/python benchmarks/bench_graph.py                      # 100, 1000, 10000 chips
    .venv/bin/python benchmarks/bench_graph.py --chips 100 1000 --data /tmp/bg --json out.json

The inputs are tiny real exposures on a wide mosaic: 2-chip ACS/WFC-like files (the simulator's
headers, TAN-SIP distortion, 32 x 32 pixel chips) at a grid of pointings, each pointing observed
4 times with small dithers -- so ``chips / 8`` pointings.  Every step is on, with
``driz_cr_corr`` and ``update_input_dq`` (their layers too), ``tile_size=128`` (so the number
of output tiles grows with the mosaic's area, like the chips).

Reported per chip count:

* ``read``: :func:`dazzle.io.read_inputs` (the headers; each chip's WCS checked);
* ``plan``: the rest of :func:`dazzle.pipeline.plan_run` (the output frames, every chip's box
  in them, the settings);
* ``build``: :func:`dazzle.graph.build` (every layer), then the merge of its outputs into the
  one task dict a scheduler gets (``dask.base.collections_to_dsk``);
* ``tasks`` and the graph's pickled size: the whole task dict in one ``pickle.dumps`` (what a
  distributed client sends; shared objects stored once) and the sum of every task pickled on
  its own (the worst case: nothing shared).

Targets: build time and both sizes grow no faster than linearly in chips (the ``/chip``
columns stay flat), and 10,000 chips build in under 10 s.  Nothing is written besides the
inputs (the products' canvases are stand-ins).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path

POINT_STEP = (1.2, 2.2)                       # arcsec between pointings (RA, Dec)
DITHERS = ((0.0, 0.0), (0.14, 0.03), (0.03, 0.14), (0.16, 0.16))   # arcsec
SIZE = 32


def make_data(outdir: Path, nchips: int) -> list[str]:
    """Write ``nchips / 2`` two-chip exposures (4 per pointing); reuses complete sets."""
    import math

    from astropy.io import fits

    from dazzle.simulate import simulate

    outdir.mkdir(parents=True, exist_ok=True)
    nexp = nchips // 2
    files = [str(outdir / f"bg{n:05d}_flt.fits") for n in range(nexp)]
    done = outdir / f"complete-{nchips}"
    if done.exists() and all(os.path.exists(f) for f in files):
        return files
    tpl = fits.open(simulate(outdir / "template", n_exposures=1, chips=2, size=SIZE, seed=1, chip_gap=4,
                             n_stars=5, min_separation=2.0, cosmic_rays=False).files[0])
    npoint = -(-nexp // len(DITHERS))
    ncol = max(1, int(math.ceil(math.sqrt(npoint * POINT_STEP[1] / POINT_STEP[0]))))
    ra0, dec0 = tpl[("SCI", 1)].header["CRVAL1"], tpl[("SCI", 1)].header["CRVAL2"]
    cosd = math.cos(math.radians(dec0))
    for n, f in enumerate(files):
        p, d = divmod(n, len(DITHERS))
        dx = (p % ncol) * POINT_STEP[0] + DITHERS[d][0]
        dy = (p // ncol) * POINT_STEP[1] + DITHERS[d][1]
        hdus = [fits.PrimaryHDU(header=tpl[0].header.copy())]
        hdus[0].header["ROOTNAME"] = f"bg{n:05d}"
        for hdu in tpl[1:]:
            h = hdu.header.copy()
            h["CRVAL1"] = h["CRVAL1"] + dx / 3600.0 / cosd
            h["CRVAL2"] = h["CRVAL2"] + dy / 3600.0
            hdus.append(type(hdu)(hdu.data, header=h))
        fits.HDUList(hdus).writeto(f, overwrite=True)
    tpl.close()
    done.write_text("ok\n")
    return files


def measure(files, out_dir: Path) -> dict:
    from dask.base import collections_to_expr

    from dazzle import io
    from dazzle.graph import build
    from dazzle.params import resolve
    from dazzle.pipeline import plan_run

    values = resolve(None, output=str(out_dir / "bench"), tile_size=128, driz_cr_corr=True,
                     update_input_dq=True)
    read, spent = io.read_inputs, []

    def timed_read(*a, **kw):                      # the share of plan_run that reads headers
        t = time.perf_counter()
        try:
            return read(*a, **kw)
        finally:
            spent.append(time.perf_counter() - t)

    io.read_inputs = timed_read
    try:
        t0 = time.perf_counter()
        plan = plan_run(files, values["output"], values)
        t_plan = time.perf_counter() - t0
    finally:
        io.read_inputs = read
    t_read = sum(spent)
    t_plan -= t_read
    plan.final_canvas, plan.median_canvas = "final-canvas", "median-canvas"   # stand-ins
    t0 = time.perf_counter()
    g = build(plan)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    dsk = dict(collections_to_expr([g], False).__dask_graph__())   # what dask.compute hands the scheduler
    t_dict = time.perf_counter() - t0
    whole = len(pickle.dumps(dsk, protocol=pickle.HIGHEST_PROTOCOL))
    each = sum(len(pickle.dumps(v, protocol=pickle.HIGHEST_PROTOCOL)) for v in dsk.values())
    return {"chips": len(plan.chips), "exposures": len({c.path for c in plan.chips}),
            "frame": list(plan.final_frame.shape), "read_s": t_read, "plan_s": t_plan, "build_s": t_build,
            "dict_s": t_dict,
            "tasks": len(dsk), "pickle_mb": whole / 1e6, "pickle_each_mb": each / 1e6}


def table(rows) -> str:
    head = ("| chips | frame (px) | read headers (s) | plan (s) | build (s) | to one dict (s) | build ms/chip "
            "| tasks | graph pickle (MB) | KB/chip | tasks pickled one by one (MB) | KB/chip |")
    lines = [head, "|" + "|".join(["---"] * 12) + "|"]
    for r in rows:
        n = r["chips"]
        lines.append(f"| {n:,} | {r['frame'][1]} x {r['frame'][0]} | {r['read_s']:.1f} | {r['plan_s']:.1f} "
                     f"| {r['build_s']:.2f} | {r['dict_s']:.2f} | {1e3 * (r['build_s'] + r['dict_s']) / n:.2f} "
                     f"| {r['tasks']:,} "
                     f"| {r['pickle_mb']:.1f} | {1e3 * r['pickle_mb'] / n:.1f} | {r['pickle_each_mb']:.1f} "
                     f"| {1e3 * r['pickle_each_mb'] / n:.1f} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chips", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--data", help="folder for the inputs (kept; default a temporary folder)")
    ap.add_argument("--json", help="write the measurements here")
    args = ap.parse_args(argv)
    root = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="dazzle-bench-graph-"))
    rows = []
    for n in args.chips:
        t0 = time.perf_counter()
        files = make_data(root / f"in{n}", n)
        print(f"{n} chips: inputs ready ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)
        rows.append(measure(files, root / f"out{n}"))
        print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        k = b["chips"] / a["chips"]
        t = (b["build_s"] + b["dict_s"]) / (a["build_s"] + a["dict_s"])
        print(f"\nfrom {a['chips']:,} to {b['chips']:,} chips (x{k:g}): build x{t:.1f}, "
              f"graph pickle x{b['pickle_mb'] / a['pickle_mb']:.1f}, "
              f"tasks pickled one by one x{b['pickle_each_mb'] / a['pickle_each_mb']:.1f}")


if __name__ == "__main__":
    main()
