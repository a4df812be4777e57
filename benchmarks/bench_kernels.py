"""Kernel benchmark: dazzle's Numba kernels against drizzle 3.0 (C) on the same data.

Geometry (issue #2): a 2048x2048 float32 input drizzled onto a 2100x2100 output,
rotated by 0.5 deg with a sub-pixel shift, a weight map, context on.  Blot goes
the other way (2100x2100 image onto the 2048x2048 frame).  Every figure is the
median of ``--repeat`` runs (default 3) in this one process; numba compile time
is measured separately (first call) and reported apart.

Tables:
1. Mpix/s of input (drizzle) or output (blot), dazzle vs drizzle 3.0, and ratio.
2. Two chips drizzled concurrently from two threads vs one after the other.

Run:  python benchmarks/bench_kernels.py [--size 2048] [--repeat 3] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from dazzle.kernels import blot, drizzle_add

try:  # the oracle is optional: without it only dazzle's numbers are printed
    from drizzle import cdrizzle  # noqa: F401
    from drizzle.resample import Drizzle, blot_image
except ImportError:  # pragma: no cover
    Drizzle = None


def make_geometry(n_in: int, n_out: int, angle_deg=0.5, shift=(0.37, -0.21)):
    a = np.deg2rad(angle_deg)
    j, i = np.indices((n_in, n_in), dtype=np.float64)
    xc, yc = i - (n_in - 1) / 2, j - (n_in - 1) / 2
    x = np.cos(a) * xc - np.sin(a) * yc + (n_out - 1) / 2 + shift[0]
    y = np.sin(a) * xc + np.cos(a) * yc + (n_out - 1) / 2 + shift[1]
    return np.dstack([x, y])


def inverse_geometry(n_in: int, n_out: int, angle_deg=0.5, shift=(0.37, -0.21)):
    """Pixmap for blot: for every pixel of the n_in frame, where it is in n_out."""
    return make_geometry(n_in, n_out, angle_deg, shift)


def timeit(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def dazzle_drizzle(data, wht, pixmap, n_out, kernel, pixfrac):
    sci = np.zeros((n_out, n_out), np.float32)
    w = np.zeros((n_out, n_out), np.float32)
    ctx = np.zeros((n_out, n_out), np.int32)
    drizzle_add(data, pixmap, sci, w, ctx, weights=wht, kernel=kernel, pixfrac=pixfrac)
    return sci, w


def ref_drizzle(data, wht, pixmap, n_out, kernel, pixfrac):
    d = Drizzle(kernel=kernel, out_shape=(n_out, n_out))
    d.add_image(data, exptime=1.0, pixmap=pixmap, weight_map=wht, pixfrac=pixfrac)
    return d.out_img, d.out_wht


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=2048, help="input size (output is size*2100/2048)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="square/point/poly5 only")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")

    n_in = args.size
    n_out = int(round(n_in * 2100 / 2048))
    rng = np.random.default_rng(42)
    data = rng.normal(100.0, 10.0, (n_in, n_in)).astype(np.float32)
    wht = rng.uniform(0.5, 1.5, (n_in, n_in)).astype(np.float32)
    pixmap = make_geometry(n_in, n_out)
    mpix_in = n_in * n_in / 1e6

    cases = [("square", 1.0), ("square", 0.8), ("turbo", 1.0), ("turbo", 0.8),
             ("point", 1.0), ("point", 0.8), ("gaussian", 1.0), ("lanczos3", 1.0)]
    interps = ["poly5", "linear"]
    if args.quick:
        cases = [("square", 1.0), ("point", 1.0)]
        interps = ["poly5"]

    print(f"dazzle kernel benchmark: {n_in}x{n_in} float32 -> {n_out}x{n_out}, "
          f"rotation 0.5 deg, shift (0.37, -0.21), weights, context on; median of {args.repeat}")
    have_ref = Drizzle is not None
    if not have_ref:
        print("drizzle 3.0 is not installed: reference columns are empty")

    print()
    print(f"{'kernel':<10}{'pixfrac':>8}{'compile s':>11}{'dazzle Mpix/s':>15}"
          f"{'drizzle Mpix/s':>16}{'ratio':>8}")
    for kernel, pixfrac in cases:
        t0 = time.perf_counter()
        dazzle_drizzle(data[:64, :64], wht[:64, :64], pixmap[:64, :64], n_out, kernel, pixfrac)
        t_compile = time.perf_counter() - t0
        t_me = timeit(lambda: dazzle_drizzle(data, wht, pixmap, n_out, kernel, pixfrac), args.repeat)
        line = f"{kernel:<10}{pixfrac:>8.1f}{t_compile:>11.2f}{mpix_in / t_me:>15.2f}"
        if have_ref:
            t_ref = timeit(lambda: ref_drizzle(data, wht, pixmap, n_out, kernel, pixfrac), args.repeat)
            line += f"{mpix_in / t_ref:>16.2f}{t_ref / t_me:>8.2f}"
        print(line, flush=True)

    # blot: an n_out image onto the n_in frame
    image = rng.normal(100.0, 10.0, (n_out, n_out)).astype(np.float32)
    bpix = inverse_geometry(n_in, n_out)
    mpix_out = n_in * n_in / 1e6
    print()
    print(f"{'blot':<10}{'':>8}{'compile s':>11}{'dazzle Mpix/s':>15}{'drizzle Mpix/s':>16}{'ratio':>8}")
    for interp in interps:
        t0 = time.perf_counter()
        blot(image, bpix[:64, :64], interp=interp)
        t_compile = time.perf_counter() - t0
        t_me = timeit(lambda: blot(image, bpix, interp=interp), args.repeat)
        line = f"{interp:<10}{'':>8}{t_compile:>11.2f}{mpix_out / t_me:>15.2f}"
        if have_ref:
            t_ref = timeit(lambda: blot_image(image, bpix, interp=interp), args.repeat)
            line += f"{mpix_out / t_ref:>16.2f}{t_ref / t_me:>8.2f}"
        print(line, flush=True)

    # two chips at once from two threads (the nogil kernels release the GIL)
    data2 = rng.normal(100.0, 10.0, (n_in, n_in)).astype(np.float32)
    print()
    print("two chips, square pixfrac 1.0, each onto its own output")
    print(f"{'mode':<22}{'wall s':>9}{'Mpix/s total':>14}{'gain':>7}")
    chips = [(data, wht), (data2, wht)]
    t_serial = timeit(lambda: [dazzle_drizzle(d, w, pixmap, n_out, "square", 1.0) for d, w in chips], args.repeat)
    with ThreadPoolExecutor(2) as pool:
        t_threads = timeit(lambda: list(pool.map(
            lambda c: dazzle_drizzle(c[0], c[1], pixmap, n_out, "square", 1.0), chips)), args.repeat)
    print(f"{'1 thread, in turn':<22}{t_serial:>9.3f}{2 * mpix_in / t_serial:>14.2f}{1.0:>7.2f}")
    print(f"{'2 threads, at once':<22}{t_threads:>9.3f}{2 * mpix_in / t_threads:>14.2f}{t_serial / t_threads:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
