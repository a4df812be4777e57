"""Scale benchmark (issue 5): a mosaic of 32 chips of 2048x2048 onto a frame of more than
8000x8000 pixels, on a 1-worker and a 2-worker ``distributed.LocalCluster`` (one thread and
4 GiB per worker).

    .venv/bin/python benchmarks/bench_scale.py                 # make the data in a temp dir, run
    .venv/bin/python benchmarks/bench_scale.py --data /tmp/big --keep --json out.json

Reports

* the wall time of the whole pipeline (every step; the data have no cosmic rays but the CR
  steps run) on 1 and 2 workers and the ratio (target: 2 workers >= 1.7x faster),
* the peak RSS of every process: each worker, and this process (client, scheduler and the
  LocalCluster's nannies, which live here) -- target: each under 4 GiB,
* the task count of the graph against chips and tiles, for several chip counts and tile
  sizes (target: linear in chips + chip-tile overlaps + tiles, not chips x tiles),
* that the 1- and 2-worker products are bit-identical.

The data: ``dazzle.simulate`` stops at 1024x1024 chips, so the benchmark writes its own
2048x2048 ACS/WFC-like chips with the simulator's header layout (ACS/WFC primary keywords,
SCI/ERR/DQ, gain and read noise) and a plain TAN WCS at 0.05"/pixel (no SIP; distortion does
not change the cost): 8 pointings (4 x 2) of a 2-chip camera (chips stacked with a 50-pixel
gap), each observed twice with a (5.5, 3.5) pixel dither = 16 exposures, 32 chips, about
8050 x 8250 output pixels.  Sky 120 e-, Gaussian noise, 400 stars per chip at fixed sky
positions, no cosmic rays.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHIP = 2048
GAP = 50
STEP_X, STEP_Y = 2000, 2 * CHIP + GAP + 4     # pointing grid (a 48 px overlap in x)
DITHER = (5.5, 3.5)
SCALE = 0.05 / 3600.0                         # deg / pixel
CRVAL = (150.0, 2.0)
CRPIX_G = (4000.0, 4150.0)                    # the global tangent plane's reference pixel
EXPTIME, SKY_E, RDNOISE, GAIN = 400.0, 120.0, 4.7, 2.0


def _layout():
    """[(root, [(X0, Y0) of chip 1, of chip 2])] for 16 exposures."""
    out = []
    n = 0
    for j in range(2):
        for i in range(4):
            for d in range(2):
                n += 1
                x0 = i * STEP_X + d * DITHER[0]
                y0 = j * STEP_Y + d * DITHER[1]
                out.append((f"bzs{n:02d}", [(x0, y0), (x0, y0 + CHIP + GAP)]))
    return out


def make_data(outdir: Path, seed=1) -> list[str]:
    """Write the 16 exposures (2 chips each); returns the file names.  Reuses complete files."""
    from astropy.io import fits

    from dazzle.simulate import simulate

    outdir.mkdir(parents=True, exist_ok=True)
    layout = _layout()
    files = [str(outdir / f"{root}_flt.fits") for root, _ in layout]
    if all(os.path.exists(f) for f in files) and (outdir / "complete").exists():
        return files
    # the simulator's header layout, from a tiny 2-chip exposure
    tpl = fits.open(simulate(outdir / "template", n_exposures=1, chips=2, size=64, seed=seed,
                             cosmic_rays=False).files[0])
    rng = np.random.default_rng(seed)
    xs = np.array([0.0, STEP_X * 3 + CHIP + 10])
    ys = np.array([0.0, STEP_Y + 2 * CHIP + GAP + 10])
    nstar = 400 * 32
    stars_x = rng.uniform(xs[0], xs[1], nstar)
    stars_y = rng.uniform(ys[0], ys[1], nstar)
    stars_f = np.exp(rng.uniform(np.log(200.0), np.log(20000.0), nstar)) * EXPTIME / 100.0
    sigma, hw = 1.2, 5
    yy, xx = np.mgrid[-hw:hw + 1, -hw:hw + 1]
    for f, (root, chips) in zip(files, layout):
        prim = tpl[0].header.copy()
        prim["ROOTNAME"] = root
        prim["FILENAME"] = os.path.basename(f)
        prim["SUBARRAY"] = False
        prim["EXPTIME"] = EXPTIME
        prim["NEXTEND"] = 6
        for k in ("DZDITHX", "DZDITHY"):
            prim.remove(k, ignore_missing=True)
        hdus = [fits.PrimaryHDU(header=prim)]
        for c, (x0, y0) in enumerate(chips, start=1):
            sci = (SKY_E + rng.normal(0.0, np.sqrt(SKY_E + RDNOISE ** 2), (CHIP, CHIP))).astype(np.float32)
            inside = (stars_x > x0 - hw) & (stars_x < x0 + CHIP + hw) & (stars_y > y0 - hw) & (stars_y < y0 + CHIP + hw)
            for sx, sy, sf in zip(stars_x[inside] - x0, stars_y[inside] - y0, stars_f[inside]):
                ix, iy = int(round(sx)), int(round(sy))
                a0, a1 = max(iy - hw, 0), min(iy + hw + 1, CHIP)
                b0, b1 = max(ix - hw, 0), min(ix + hw + 1, CHIP)
                if a0 >= a1 or b0 >= b1:
                    continue
                g = np.exp(-((xx + ix - sx) ** 2 + (yy + iy - sy) ** 2) / (2 * sigma ** 2)) * sf / (2 * np.pi * sigma ** 2)
                sci[a0:a1, b0:b1] += g[a0 - iy + hw:a1 - iy + hw, b0 - ix + hw:b1 - ix + hw].astype(np.float32)
            err = np.sqrt(np.maximum(sci, 0) + RDNOISE ** 2).astype(np.float32)
            dq = np.zeros((CHIP, CHIP), np.int16)
            for name, data in (("SCI", sci), ("ERR", err), ("DQ", dq)):
                h = tpl[(name, c)].header.copy()
                for key in list(h.keys()):
                    if key[:2] in ("A_", "B_") or key.startswith(("AP_", "BP_", "LTV", "LTM")) or key in (
                            "A_ORDER", "B_ORDER", "OCX10", "OCX11", "OCY10", "OCY11", "IDCXREF", "IDCYREF"):
                        h.remove(key, ignore_missing=True, remove_all=True)
                h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
                h["CRVAL1"], h["CRVAL2"] = CRVAL
                h["CRPIX1"], h["CRPIX2"] = CRPIX_G[0] - x0, CRPIX_G[1] - y0
                h["CD1_1"], h["CD1_2"], h["CD2_1"], h["CD2_2"] = -SCALE, 0.0, 0.0, SCALE
                h["IDCSCALE"] = 0.05
                h["ORIENTAT"] = 0.0
                h["EXPNAME"] = root
                hdus.append(fits.ImageHDU(data, header=h, name=name, ver=c))
        fits.HDUList(hdus).writeto(f, overwrite=True)
    tpl.close()
    shutil.rmtree(outdir / "template", ignore_errors=True)
    (outdir / "complete").write_text("ok\n")
    return files


# ---------------------------------------------------------------------------------------------
# graph size
# ---------------------------------------------------------------------------------------------

def graph_stats(files, out, tile_size, params):
    """Task counts of the pipeline's graph for ``files`` (no pixel is read)."""
    from dazzle.cluster import task_prefix as prefix_of
    from dazzle.graph import build, overlaps, tiles
    from dazzle.params import resolve
    from dazzle.pipeline import plan_run

    values = resolve(None, output=str(out), tile_size=tile_size, **params)
    plan = plan_run(files, values["output"], values)
    plan.final_canvas = "final-canvas"             # stand-ins: nothing is written
    if values.get("median", True):
        plan.median_canvas = "median-canvas"
    dsk = dict(build(plan).__dask_graph__())
    by = {}
    for k in dsk:
        p = prefix_of(k)
        by[p] = by.get(p, 0) + 1
    final_tiles = tiles(plan.final_frame.shape, plan.tile_size)
    pairs = sum(1 for b in plan.final_boxes for t in final_tiles if b is not None and overlaps(b, t))
    touched = sum(1 for t in final_tiles if any(b is not None and overlaps(b, t) for b in plan.final_boxes))
    med_tiles = len(tiles(plan.single_frame.shape, plan.tile_size)) if plan.single_frame is not None else 0
    return {"chips": len(plan.chips), "frame": list(plan.final_frame.shape), "tile_size": tile_size,
            "tiles": len(final_tiles), "tiles_touched": touched, "chip_tile_pairs": pairs,
            "median_tiles": med_tiles, "tasks": len(dsk), "by_prefix": by,
            "chips_x_tiles": len(plan.chips) * len(final_tiles)}


# ---------------------------------------------------------------------------------------------
# runs
# ---------------------------------------------------------------------------------------------

class _StepLog(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        msg = record.getMessage()
        if msg.startswith("dazzle: step "):
            self.lines.append(msg[len("dazzle: "):])


def _pid_and_peak():
    return os.getpid(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _maxrss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_on(n_workers, files, out: Path, params, warm_files):
    import dazzle
    from distributed import Client, LocalCluster

    log = logging.getLogger("dazzle")
    handler = _StepLog()
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, memory_limit="4GiB",
                      dashboard_address=":0") as lc, Client(lc, set_as_default=False) as client:
        # warm up: import dazzle and load the Numba kernels in every worker (not timed)
        dazzle.run(warm_files, str(out / "warm" / "w"), scheduler=lc.scheduler_address)
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        t0 = time.perf_counter()
        r = dazzle.run(files, str(out / "m"), scheduler=lc.scheduler_address, **params)
        wall = time.perf_counter() - t0
        log.removeHandler(handler)
        workers = client.run(_pid_and_peak)
        nannies = client.run(_pid_and_peak, nanny=True)
    return {"workers": n_workers, "wall_s": wall, "timings": r.timings, "frame": list(r.frame_shape),
            # a LocalCluster's nannies live in this process (the client and scheduler's)
            "peak_rss_mib": {"workers": sorted(v[1] for v in workers.values()),
                             "nannies": sorted(v[1] for v in nannies.values() if v[0] != os.getpid()),
                             "client+scheduler+nannies": _maxrss_mib()},
            "steps": handler.lines, "output": r.output}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="folder for the inputs (default: a temporary folder); reused when complete")
    ap.add_argument("--out", help="folder for the products (default: a temporary folder)")
    ap.add_argument("--workers", default="1,2", help="worker counts to run, e.g. 1,2")
    ap.add_argument("--final-only", action="store_true", help="only the final drizzle (no separate/median/CR)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folders")
    ap.add_argument("--json", help="write the results here too")
    ap.add_argument("--graph-only", action="store_true", help="only count tasks (no run)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")

    tmp = Path(tempfile.mkdtemp(prefix="dazzle-bench-scale-"))
    data = Path(args.data) if args.data else tmp / "inputs"
    outdir = Path(args.out) if args.out else tmp / "products"
    params = dict(driz_separate=False, static=False, skysub=False, median=False, blot=False,
                  driz_cr=False) if args.final_only else {}
    results = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}, "params": params}
    try:
        t0 = time.perf_counter()
        files = make_data(data)
        results["make_data_s"] = time.perf_counter() - t0
        print(f"data: {len(files)} exposures x 2 chips of {CHIP}x{CHIP} in {data} ({results['make_data_s']:.0f} s)",
              flush=True)

        # -- graph size: chips x tile sizes --------------------------------------------------
        rows = []
        for nfiles in (4, 8, 16):
            for tile in (1024, 2048, 4096):
                if nfiles != 16 and tile != 2048:
                    continue
                rows.append(graph_stats(files[:nfiles], outdir / "plan" / "p", tile, params))
        results["graph"] = rows
        print("\ngraph size (tasks of the whole pipeline):")
        print(f"{'chips':>5} {'tile':>5} {'frame':>11} {'tiles':>5} {'touched':>7} {'chip-tile':>9} "
              f"{'chips*tiles':>11} {'tasks':>6} {'final tasks':>11}")
        for r in rows:
            fin = sum(v for k, v in r["by_prefix"].items() if k.startswith("final-"))
            print(f"{r['chips']:>5} {r['tile_size']:>5} {r['frame'][1]:>5}x{r['frame'][0]:<5} {r['tiles']:>5} "
                  f"{r['tiles_touched']:>7} {r['chip_tile_pairs']:>9} {r['chips_x_tiles']:>11} {r['tasks']:>6} {fin:>11}")
        print("  final drizzle tasks = chips (final-chip) + chip-tile pairs (final-part) + tiles (final-tile) + 1")
        if args.graph_only:
            return 0

        # -- runs ------------------------------------------------------------------------------
        from dazzle.simulate import simulate

        warm = simulate(tmp / "warm-inputs", n_exposures=2, chips=2, size=64, seed=2, cosmic_rays=False).files
        runs = []
        for n in [int(x) for x in args.workers.split(",")]:
            print(f"\nrunning on a LocalCluster of {n} worker(s) x 1 thread, 4 GiB each ...", flush=True)
            r = run_on(n, files, outdir / f"w{n}", params, warm)
            runs.append(r)
            print(f"  wall {r['wall_s']:.1f} s (plan {r['timings'].get('plan', 0):.1f} s), frame "
                  f"{r['frame'][1]}x{r['frame'][0]}")
            for line in r["steps"]:
                print("   ", line)
            p = r["peak_rss_mib"]
            other = f", nannies {[round(x) for x in p['nannies']]}" if p["nannies"] else ""
            print(f"  peak RSS (MiB): workers {[round(x) for x in p['workers']]}{other}, "
                  f"client+scheduler+nannies {p['client+scheduler+nannies']:.0f}", flush=True)
        results["runs"] = runs
        if len(runs) >= 2:
            ratio = runs[0]["wall_s"] / runs[1]["wall_s"]
            results["speedup"] = ratio
            print(f"\nspeed-up {runs[1]['workers']} vs {runs[0]['workers']} worker(s): {ratio:.2f}x (target >= 1.7x)")
            from astropy.io import fits

            same = True
            with fits.open(runs[0]["output"]) as a, fits.open(runs[1]["output"]) as b:
                for e in ("SCI", "WHT", "CTX"):
                    same &= a[e].data.tobytes() == b[e].data.tobytes()
            results["identical"] = bool(same)
            print(f"products bit-identical between the runs: {same}")
        peak = max(max(r["peak_rss_mib"]["workers"] + r["peak_rss_mib"]["nannies"]
                       + [r["peak_rss_mib"]["client+scheduler+nannies"]]) for r in runs)
        results["peak_rss_mib_max"] = peak
        print(f"largest peak RSS of any process: {peak:.0f} MiB (target < 4096)")
    finally:
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1, default=str))
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
