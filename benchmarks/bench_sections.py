"""The square and turbo kernels as the pipeline calls them on an ACS/WFC-size chip.

``dazzle run`` drizzles a chip larger than 1024 input pixels a side one 1024x1024
section at a time (``dazzle.steps.common.section_sums``): the section plus a halo of
one pixel whose weights are zeroed, into float64 sums over the section's box of the
output frame.  This script times :func:`dazzle.kernels.drizzle.drizzle_sums` called
that way, for

* the final drizzle: ``square``, pixfrac 1, a weight map, one variance array (the
  ERR product: ``var``/``out_var``), no context (the pipeline derives it from the
  weights), and
* the single drizzle: ``turbo`` (``driz_sep_kernel``'s default), a weight map only,

on a section of a simulated 4096x2048 chip rotated by ``--angle`` degrees (default
20) with skew and a smooth quadratic distortion of a few pixels.

Timing: the CPU time of the calling thread, median of ``--repeat`` calls (default
7), the first (compiling) call excluded.  ``--save FILE`` stores the sums of each
case (``.npz``); ``--check FILE`` compares them with a saved file, bit for bit, and
prints the largest relative difference when they differ.

Run:  python benchmarks/bench_sections.py [--angle 20] [--repeat 7] [--save F | --check F]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

from dazzle.kernels.drizzle import drizzle_sums

CHIP = (2048, 4096)          # (ny, nx) of an ACS/WFC chip
SECTION = (1024, 2048, 0, 1024)   # (x0, x1, y0, y1): an interior section
HALO = 1                     # the pipeline's section_halo for pixfrac <= 1


def chip_pixmap(j, i, angle_deg):
    """Output position of input pixels (i, j): rotation, skew and a quadratic distortion."""
    a = np.deg2rad(angle_deg)
    u = (i - CHIP[1] / 2) / CHIP[1]
    v = (j - CHIP[0] / 2) / CHIP[0]
    # a smooth distortion of a few pixels across the chip, plus skew
    xd = i + 0.02 * (j - CHIP[0] / 2) + 6.0 * u * u - 3.0 * u * v + 2.0 * v * v
    yd = j * 0.985 + 4.0 * u * v - 5.0 * v * v + 1.5 * u * u
    x = np.cos(a) * xd - np.sin(a) * yd + 600.37
    y = np.sin(a) * xd + np.cos(a) * yd + 100.21
    return x, y


def section_inputs(angle_deg, seed=7):
    """The widened section's arrays as ``section_sums`` passes them, and the output box."""
    x0, x1, y0, y1 = SECTION
    wx0, wx1 = max(0, x0 - HALO), min(CHIP[1], x1 + HALO)
    wy0, wy1 = max(0, y0 - HALO), min(CHIP[0], y1 + HALO)
    j, i = np.mgrid[wy0:wy1, wx0:wx1].astype(np.float64)
    x, y = chip_pixmap(j, i, angle_deg)
    rng = np.random.default_rng(seed)
    shape = j.shape
    data = rng.normal(100.0, 10.0, shape).astype(np.float32)
    wht = rng.uniform(400.0, 600.0, shape).astype(np.float32)
    wht[:y0 - wy0] = 0.0       # the halo is read, not drizzled
    wht[y1 - wy0:] = 0.0
    wht[:, :x0 - wx0] = 0.0
    wht[:, x1 - wx0:] = 0.0
    var = rng.uniform(20.0, 40.0, shape).astype(np.float32)
    bx0 = int(np.floor(x.min())) - 2
    by0 = int(np.floor(y.min())) - 2
    box = (bx0, int(np.ceil(x.max())) + 3, by0, int(np.ceil(y.max())) + 3)
    return data, wht, var, np.dstack([x, y]), box


def run_case(case, inputs):
    """One drizzle_sums call as the pipeline's final (``square``) or single (``turbo``)
    step makes it; returns the sums."""
    data, wht, var, pixmap, (bx0, bx1, by0, by1) = inputs
    shape = (by1 - by0, bx1 - bx0)
    num = np.zeros(shape)
    den = np.zeros(shape)
    if case == "square":
        out_var = np.zeros(shape)
        drizzle_sums(data, pixmap, num, den, None, x0=bx0, y0=by0, weights=wht, kernel="square",
                     pixfrac=1.0, var=var, out_var=out_var)
        return {"num": num, "den": den, "var": out_var}
    drizzle_sums(data, pixmap, num, den, None, x0=bx0, y0=by0, weights=wht, kernel="turbo", pixfrac=1.0)
    return {"num": num, "den": den}


def compare(name, got, ref):
    """'identical', or the largest relative difference where they differ."""
    if got.shape != ref.shape:
        return f"{name}: shape {got.shape} != {ref.shape}"
    if np.array_equal(got, ref):
        return f"{name}: identical"
    scale = np.maximum(np.abs(ref), np.abs(got))
    rel = np.abs(got - ref) / np.where(scale > 0, scale, 1.0)
    return f"{name}: DIFFERENT, max rel diff {rel.max():.3g} in {np.count_nonzero(got != ref)} pixels"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--angle", type=float, default=20.0)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--only", default="square,turbo")
    ap.add_argument("--save", help="store the sums in this .npz")
    ap.add_argument("--check", help="compare the sums with this .npz")
    args = ap.parse_args(argv)
    inputs = section_inputs(args.angle)
    npix = (SECTION[1] - SECTION[0]) * (SECTION[3] - SECTION[2])
    print(f"section {SECTION} of a {CHIP[1]}x{CHIP[0]} chip, rotation {args.angle:g} deg, "
          f"box {inputs[4]}; CPU time of this thread, median of {args.repeat}")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    saved = {}
    ref = np.load(args.check) if args.check else None
    for case in [c.strip() for c in args.only.split(",") if c.strip()]:
        sums = run_case(case, inputs)   # compiles (or loads the cache)
        times = []
        for _ in range(args.repeat):
            t0 = time.thread_time()
            run_case(case, inputs)
            times.append(time.thread_time() - t0)
        t = statistics.median(times)
        print(f"{case:<7} {t * 1e3:8.1f} ms per call  {npix / t / 1e6:6.2f} Mpix/s  "
              f"(min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f})", flush=True)
        for k, v in sums.items():
            saved[f"{case}_{k}"] = v
            if ref is not None:
                print("   ", compare(f"{case} {k}", v, ref[f"{case}_{k}"]))
    if args.save:
        np.savez(args.save, **saved)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
