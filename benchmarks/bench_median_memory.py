"""Memory benchmark of the median step: a stack larger than the memory budget, block by block.

Writes ``--pieces`` synthetic single-drizzled exposures (``<root>_single_sci.fits`` and
``_single_wht.fits`` with ``DZ_X0``/``DZ_Y0``, sizes ``--min-size``..``--max-size`` square,
placed at random across a ``--frame`` x ``--frame`` output frame) into a temporary folder,
streaming them in row chunks so that generating them stays within the budget too.  Then it
describes the pieces (weight means, streamed), and combines every ``--block`` x ``--block``
block of the frame with :func:`dazzle.steps.median.median_block` (AstroDrizzle defaults:
minmed, grow 1, maskpt 0.3) on ``--threads`` threads.  The median image itself is held in
memory (frame x 4 bytes) and written to a FITS file at the end.

Reported: data volume (files on disk, and what drizzlepac would hold: whole-frame float32
sci + wht per exposure), peak resident memory per phase (a thread samples /proc/self/statm
every 10 ms) and over the whole run (``getrusage`` ``ru_maxrss``), the largest block stack,
and wall times.  Exit status 1 if the peak exceeds ``--budget-gb``.

Run:  python benchmarks/bench_median_memory.py [--frame 6000] [--pieces 24] [--block 1024]
                                               [--threads 2] [--budget-gb 2] [--quick]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from astropy.io import fits

from dazzle.steps.median import (MedianSettings, block_bytes, describe_piece, frame_blocks,
                                 median_block)

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


class PeakSampler:
    """Samples the resident set size every ``interval`` s; ``phase()`` starts a new phase."""

    def __init__(self, interval=0.01):
        self.interval = interval
        self.peaks: dict[str, int] = {}
        self._phase = "start"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self):
        r = rss_bytes()
        with self._lock:
            self.peaks[self._phase] = max(self.peaks.get(self._phase, 0), r)

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            time.sleep(self.interval)

    def phase(self, name):
        self._sample()
        with self._lock:
            self._phase = name
        self._sample()

    def stop(self):
        self._sample()
        self._stop.set()
        self._thread.join()


def gb(x) -> str:
    return f"{x / 1024**3:.2f} GB"


def write_piece(folder, k, box, rng, *, chunk_rows=256):
    """One synthetic exposure, written in row chunks (never whole in memory)."""
    x0, x1, y0, y1 = box
    ny, nx = y1 - y0, x1 - x0
    exptime = float(rng.uniform(400, 1200))
    sky = float(rng.uniform(20, 80))
    paths = {}
    for kind in ("sci", "wht"):
        hdr = fits.Header()
        hdr["SIMPLE"] = True
        hdr["BITPIX"] = -32
        hdr["NAXIS"] = 2
        hdr["NAXIS1"] = nx
        hdr["NAXIS2"] = ny
        hdr["DZ_X0"] = x0
        hdr["DZ_Y0"] = y0
        hdr["EXPTIME"] = exptime
        paths[kind] = os.path.join(folder, f"bench{k:03d}_single_{kind}.fits")
        if os.path.exists(paths[kind]):
            os.remove(paths[kind])
        paths[kind + "_stream"] = fits.StreamingHDU(paths[kind], hdr)
    yy_c = rng.uniform(0, ny, 40)
    xx_c = rng.uniform(0, nx, 40)
    amp = rng.uniform(0.5, 20, 40)
    xs = np.arange(nx, dtype=np.float32)
    for r0 in range(0, ny, chunk_rows):
        r1 = min(ny, r0 + chunk_rows)
        crng = np.random.default_rng([k, r0])
        rows = np.arange(r0, r1, dtype=np.float32)[:, None]
        img = np.full((r1 - r0, nx), 0.05, np.float32)
        for yc, xc, a in zip(yy_c, xx_c, amp):                # a few broad "galaxies"
            if abs(yc - (r0 + r1) / 2) < chunk_rows + 30:
                img += np.float32(a) * np.exp(-((rows - yc) ** 2 + (xs - xc) ** 2) / 50.0).astype(np.float32)
        img += crng.normal(0, 0.02, img.shape).astype(np.float32)
        cr = crng.random(img.shape) < 0.002
        img[cr] += crng.uniform(1, 50, int(cr.sum())).astype(np.float32)
        wht = np.full(img.shape, exptime, np.float32)
        wht[:, :3] = 0                                         # footprint edges
        wht[:, -3:] = 0
        wht[(np.arange(r0, r1) % 512) < 2, :] *= np.float32(0.1)   # low-weight rows (maskpt)
        img[wht == 0] = 0
        paths["sci_stream"].write(img)
        paths["wht_stream"].write(wht)
        del img, wht, cr
    paths["sci_stream"].close()
    paths["wht_stream"].close()
    return paths["sci"], paths["wht"], sky, exptime


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frame", type=int, default=6000)
    ap.add_argument("--pieces", type=int, default=24)
    ap.add_argument("--min-size", type=int, default=3000)
    ap.add_argument("--max-size", type=int, default=4000)
    ap.add_argument("--block", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget-gb", type=float, default=2.0)
    ap.add_argument("--dir", default=None, help="work folder (default: a temporary one, removed)")
    ap.add_argument("--quick", action="store_true", help="small run: frame 1500, 6 pieces of 500-800")
    args = ap.parse_args(argv)
    if args.quick:
        args.frame, args.pieces, args.min_size, args.max_size, args.block = 1500, 6, 500, 800, 256
    budget = int(args.budget_gb * 1024**3)

    sampler = PeakSampler()
    sampler.phase("imports+compile")
    # compile the kernels outside the timed phases (tiny stack)
    from dazzle.kernels.combine import combine_stack
    z = np.zeros((2, 4, 4), np.float32)
    combine_stack(z, z == 0, combine_type="minmed", weights=z + 1)
    base = rss_bytes()

    work = args.dir or tempfile.mkdtemp(prefix="dazzle_bench_median_")
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(12345)
    try:
        sampler.phase("generate")
        t0 = time.perf_counter()
        specs = []
        for k in range(args.pieces):
            w = int(rng.integers(args.min_size, args.max_size + 1))
            h = int(rng.integers(args.min_size, args.max_size + 1))
            x0 = int(rng.integers(0, args.frame - w + 1))
            y0 = int(rng.integers(0, args.frame - h + 1))
            specs.append(write_piece(work, k, (x0, x0 + w, y0, y0 + h), rng))
        t_gen = time.perf_counter() - t0
        files = sum(os.path.getsize(p) for s in specs for p in s[:2])

        sampler.phase("describe")
        t0 = time.perf_counter()
        pieces = [describe_piece(s, w, sky=sky, rn2=25.0, exptime=t) for s, w, sky, t in specs]
        t_desc = time.perf_counter() - t0

        sampler.phase("median")
        settings = MedianSettings.of()                     # AstroDrizzle defaults
        blocks = frame_blocks((args.frame, args.frame), args.block)
        out = np.zeros((args.frame, args.frame), np.float32)
        max_stack = [0, 0]
        lock = threading.Lock()
        g = settings.halo

        def one(b):
            ex = (b[0] - g, b[1] + g, b[2] - g, b[3] + g)
            nov = sum(1 for p in pieces if p.box[0] < ex[1] and p.box[1] > ex[0]
                      and p.box[2] < ex[3] and p.box[3] > ex[2])
            nbytes = nov * (ex[1] - ex[0]) * (ex[3] - ex[2]) * 9
            with lock:
                if nbytes > max_stack[0]:
                    max_stack[:] = [nbytes, nov]
            out[b[2]:b[3], b[0]:b[1]] = median_block(pieces, b, settings)

        t0 = time.perf_counter()
        if args.threads > 1:
            with ThreadPoolExecutor(args.threads) as ex:
                list(ex.map(one, blocks))
        else:
            for b in blocks:
                one(b)
        t_med = time.perf_counter() - t0

        sampler.phase("write")
        med_path = os.path.join(work, "bench_med.fits")
        fits.PrimaryHDU(out).writeto(med_path, overwrite=True)
        sampler.stop()
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)

    ru_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024     # Linux: KiB
    full = args.pieces * args.frame * args.frame * 8
    mpix_in = sum(p.shape[0] * p.shape[1] for p in pieces) / 1e6
    cover = mpix_in * 1e6 / args.frame**2

    print(f"median memory benchmark: frame {args.frame}x{args.frame}, {args.pieces} pieces "
          f"{args.min_size}-{args.max_size} px, blocks {args.block}^2 (halo {g}), "
          f"{args.threads} thread(s), combine_type={settings.combine_type}")
    print(f"  data: pieces sci+wht {gb(files)} ({mpix_in:.0f} Mpix per image kind, mean coverage "
          f"{cover:.1f} exposures/pixel); drizzlepac's whole-frame singles would be {gb(full)}")
    est = block_bytes(max_stack[1], (args.block, args.block), g)
    print(f"  largest block stack: {max_stack[1]} pieces, {max_stack[0] / 1024**2:.0f} MiB "
          f"(block_bytes estimate per task {est / 1024**2:.0f} MiB; + the median image "
          f"{out.nbytes / 1024**2:.0f} MiB)")
    print(f"  wall: generate {t_gen:.1f} s, describe {t_desc:.1f} s, median {t_med:.1f} s "
          f"({args.frame**2 / 1e6 / t_med:.1f} Mpix/s of frame, {len(blocks)} blocks)")
    print(f"  RSS after imports+compile {gb(base)}; peak per phase: "
          + ", ".join(f"{k} {gb(v)}" for k, v in sampler.peaks.items() if k != "start"))
    print(f"  peak RSS (ru_maxrss) {gb(ru_peak)} vs budget {gb(budget)}: "
          + ("OK" if ru_peak <= budget else "EXCEEDED"))
    return 0 if ru_peak <= budget else 1


if __name__ == "__main__":
    sys.exit(main())
