"""Whole-pipeline benchmark: dazzle vs the real AstroDrizzle (drizzlepac 3.11), same data.

Simulates dithered ACS-like exposures (``--exposures`` x ``--chips`` chips of ``--size``^2
pixels, cosmic rays on), then times, in this one process and after one warm-up run each:

* ``dazzle.run`` with all steps on, on one thread (``synchronous``) and on all cores (threads);
* ``drizzlepac.astrodrizzle.AstroDrizzle`` with all steps on, ``num_cores=1`` and ``2``
  (on fresh copies each time: it modifies its inputs), import time excluded.

Prints the median of ``--repeat`` runs and the ratio.  drizzlepac is optional: without it only
dazzle's time is printed.

Run:  python benchmarks/bench_pipeline.py [--exposures 4] [--chips 2] [--size 1024] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import statistics
import sys
import tempfile
import time


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exposures", type=int, default=4)
    ap.add_argument("--chips", type=int, default=2)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    import dazzle
    from dazzle.simulate import simulate

    work = tempfile.mkdtemp(prefix="dzbench_")
    try:
        sim = simulate(os.path.join(work, "in"), n_exposures=args.exposures, chips=args.chips,
                       size=args.size, seed=3)
        files = [str(f) for f in sim.files]
        npix = args.exposures * args.chips * args.size ** 2
        print(f"pipeline benchmark: {args.exposures} exposures x {args.chips} chip(s) of {args.size}^2 "
              f"({npix / 1e6:.1f} Mpix), all steps on; median of {args.repeat}")

        def run_dazzle(i, scheduler):
            dazzle.run(files, os.path.join(work, f"dz{i}_{scheduler}", "syn"), scheduler=scheduler)

        run_dazzle("warm", "threads")
        timings = {}
        for scheduler in ("synchronous", "threads"):
            t_dz = []
            for i in range(args.repeat):
                t0 = time.perf_counter()
                run_dazzle(i, scheduler)
                t_dz.append(time.perf_counter() - t0)
            timings[scheduler] = statistics.median(t_dz)
        print(f"{'dazzle, one thread (synchronous)':<34}{timings['synchronous']:8.2f} s")
        print(f"{'dazzle, threads (all cores)':<34}{timings['threads']:8.2f} s")
        dz = timings["threads"]

        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                from drizzlepac import astrodrizzle
        except ImportError:
            print("drizzlepac is not installed: no reference timing")
            return 0

        def run_ad(tag, cores):
            d = os.path.join(work, f"ad_{tag}")
            os.makedirs(d)
            copies = []
            for f in files:
                shutil.copy(f, d)
                copies.append(os.path.join(d, os.path.basename(f)))
            cwd = os.getcwd()
            os.chdir(d)
            try:
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    t0 = time.perf_counter()
                    astrodrizzle.AstroDrizzle(input=",".join(copies), output="syn", mdriztab=False,
                                              updatewcs=False, preserve=False, num_cores=cores, build=True,
                                              runfile=os.path.join(d, "ad.log"))
                    return time.perf_counter() - t0
            finally:
                os.chdir(cwd)

        for cores in (1, 2):
            run_ad(f"warm{cores}", cores)
            t_ad = statistics.median(run_ad(f"{cores}_{i}", cores) for i in range(args.repeat))
            print(f"{'AstroDrizzle num_cores=' + str(cores):<34}{t_ad:8.2f} s   dazzle one thread "
                  f"{t_ad / timings['synchronous']:5.2f}x, all cores {t_ad / dz:5.2f}x faster")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
