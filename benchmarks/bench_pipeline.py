"""Whole-process benchmark: ``dazzle run`` against the real AstroDrizzle (drizzlepac 3.11).

    .venv/bin/python benchmarks/bench_pipeline.py                  # the small set, 3 pairs
    .venv/bin/python benchmarks/bench_pipeline.py --set wfc --pairs 1
    .venv/bin/python benchmarks/bench_pipeline.py --inputs 'mydata/*_flt.fits'   # your own data

What is timed is what a user waits for: a whole process from start to exit, imports included.

* dazzle: the ``dazzle run INPUTS -o syn`` command, as the README gives it (every step on,
  the progress display on, its stderr going to a log file, i.e. not a terminal), on the
  threaded scheduler with one thread per core, and on one thread (``--scheduler
  synchronous``).
* AstroDrizzle: a Python process calling ``drizzlepac.astrodrizzle.AstroDrizzle`` (every step
  on, offline: ``updatewcs=False, mdriztab=False``; ``build=True, preserve=False``) with
  ``num_cores=1`` and with ``num_cores`` = every core, as tests/astrodrizzle_oracle.py runs it.

Every run gets its own fresh copy of the same inputs (AstroDrizzle modifies its inputs), made
before its clock starts.  The four rows are run in alternation (dazzle, AstroDrizzle, dazzle,
AstroDrizzle; the order reversed every other pair), ``--pairs`` times; the table gives the
median of each.  Per run: wall time; CPU time = user + system of the child and the children it
waited for (``os.wait4``); peak RSS = ``ru_maxrss`` of the largest single process (the worker
processes of AstroDrizzle ``num_cores`` > 1 are not summed).  dazzle's Numba cache lives in the
work directory: the first dazzle run compiles every kernel (reported on its own line, not in
the medians), the others find the cache warm.  Before the pairs, one untimed
``import drizzlepac.astrodrizzle`` warms the file cache for AstroDrizzle's import, and dazzle's
modules are compiled to bytecode, as installing a wheel compiles them (an editable install does
not, and with PYTHONDONTWRITEBYTECODE set every run would compile them again).

Data sets (``dazzle.simulate``: dithered ACS exposures with stars, sky, noise, hot pixels and
cosmic rays; made once in the work directory, reused by ``--workdir DIR`` next time):

* ``small``: 4 exposures x 2 chips of 1024 x 1024;
* ``wfc``: 4 exposures x 2 chips of 4096 x 2048 (ACS/WFC size; about 1 GB of inputs; about
  20 s to simulate).  AstroDrizzle takes minutes per run here: ``--pairs 1`` to look.
* ``six``: 6 exposures x 1 chip of 2048 x 2048 (a shape the other two do not have: one chip
  per file, an even chip count in an odd number of pairs, chips drizzled in 4 sections).

Other work on the machine shows up in wall time (and in the CPU time of a busy cache):
compare runs made on a quiet machine.  Without drizzlepac only the dazzle rows are timed.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SETS = {"small": dict(n_exposures=4, chips=2, size=1024, seed=3),
        "wfc": dict(n_exposures=4, chips=2, size=(2048, 4096), seed=3),
        "six": dict(n_exposures=6, chips=1, size=2048, seed=11)}
#: AstroDrizzle's parameters besides num_cores (as tests/astrodrizzle_oracle.py)
AD_PARAMS = dict(mdriztab=False, updatewcs=False, preserve=False, build=True, context=True,
                 clean=False, runfile="astrodrizzle.log")
AD_DRIVER = r"""
import json, sys
args = json.loads(sys.argv[1])
from drizzlepac import astrodrizzle
astrodrizzle.AstroDrizzle(input=",".join(args["inputs"]), output="syn", **args["params"])
"""


@dataclass
class Row:
    label: str
    tool: str                       # "dazzle" or "astrodrizzle"
    args: list                      # dazzle: extra CLI arguments; astrodrizzle: [num_cores]
    runs: list = field(default_factory=list)   # (wall, cpu, rss_bytes)

    def median(self, i):
        return statistics.median(r[i] for r in self.runs)


def child_env(numba_cache):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env["NUMBA_CACHE_DIR"] = str(numba_cache)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[var] = "1"
    env.setdefault("jref", str(numba_cache) + os.sep)   # never resolved: IDCTAB etc. are N/A
    return env


def timed_process(cmd, cwd, env, log):
    """Run ``cmd`` to its end; (wall s, CPU s, peak RSS bytes).  Raises if it fails."""
    with open(log, "w") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = "".join(Path(log).read_text(errors="replace").splitlines(True)[-15:])
        raise RuntimeError(f"{' '.join(map(str, cmd[:3]))} ... failed (exit {proc.returncode}); "
                           f"log {log}:\n{tail}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024


def run_once(row, inputs, work, env, n):
    """One run of ``row`` on fresh copies of ``inputs`` in its own directory."""
    d = work / f"run{n:02d}_{row.tool}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    names = []
    for f in inputs:
        shutil.copyfile(f, d / Path(f).name)
        names.append(Path(f).name)
    if row.tool == "dazzle":
        cmd = [sys.executable, "-m", "dazzle", "run", *names, "-o", "syn", *row.args]
    else:
        params = dict(AD_PARAMS, num_cores=row.args[0])
        cmd = [sys.executable, "-c", AD_DRIVER, json.dumps({"inputs": names, "params": params})]
    try:
        got = timed_process(cmd, d, env, d / "run.log")
        if not (d / "syn_drz.fits").is_file():
            raise RuntimeError(f"{row.label}: no syn_drz.fits in {d}")
    finally:                   # inputs and products go at once (GBs per run for the wfc set)
        for f in d.glob("*.fits"):
            f.unlink()
    return got


def make_inputs(args, work):
    if args.inputs:
        files = sorted(f for pattern in args.inputs for f in glob.glob(os.path.expanduser(pattern)))
        if not files:
            raise SystemExit(f"no file matches {args.inputs}")
        return files, f"{len(files)} input file(s) from {args.inputs}"
    spec = SETS[args.set]
    data = work / f"data_{args.set}"
    files = sorted(str(p) for p in data.glob("*_flt.fits"))
    if len(files) != spec["n_exposures"] or not (data / "simulation.json").is_file():
        sys.path.insert(0, str(REPO))
        from dazzle.simulate import simulate

        t0 = time.perf_counter()
        shutil.rmtree(data, ignore_errors=True)
        files = [str(p) for p in simulate(data, **spec).files]
        print(f"simulated the {args.set} set in {time.perf_counter() - t0:.1f} s ({data})")
    size = spec["size"]
    ny, nx = (size, size) if isinstance(size, int) else size
    mpix = spec["n_exposures"] * spec["chips"] * nx * ny / 1e6
    return files, (f"set {args.set}: {spec['n_exposures']} exposures x {spec['chips']} chips of "
                   f"{nx} x {ny} ({mpix:.0f} Mpix)")


def compile_dazzle(env):
    """Write the bytecode of the dazzle package the runs import, as installing a wheel does
    (and ``make install``): an editable install has none, and with PYTHONDONTWRITEBYTECODE set
    every run would compile dazzle's modules again (0.14 s per run), while AstroDrizzle's,
    installed from a wheel, are compiled.  Modules already compiled and unchanged are skipped."""
    where = subprocess.run([sys.executable, "-c", "import dazzle, os; print(os.path.dirname(dazzle.__file__))"],
                           env=env, capture_output=True, text=True)
    if where.returncode == 0 and where.stdout.strip():
        subprocess.run([sys.executable, "-m", "compileall", "-q", where.stdout.strip()], env=env,
                       capture_output=True)


def fmt_row(label, wall, cpu, rss, ref=None):
    speed = f"{ref / wall:9.2f}x" if ref else ""
    return f"{label:<46}{wall:8.2f}{cpu:8.2f}{cpu / wall:9.2f}{rss / 2**20:10.0f}{speed}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", choices=sorted(SETS), default="small", help="simulated data set (default small)")
    ap.add_argument("--inputs", nargs="+", metavar="GLOB", help="time these files instead of a simulated set")
    ap.add_argument("--pairs", type=int, default=3, help="alternating pairs of runs per row (default 3)")
    ap.add_argument("--workdir", help="keep data and runs here (default: a temporary directory, removed)")
    ap.add_argument("--no-astrodrizzle", action="store_true", help="time dazzle only")
    args = ap.parse_args(argv)
    if args.pairs < 1:
        ap.error("--pairs must be at least 1")

    cores = os.cpu_count() or 1
    work = Path(args.workdir or tempfile.mkdtemp(prefix="dzbench_")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    numba_cache = work / "numba_cache"
    shutil.rmtree(numba_cache, ignore_errors=True)      # the first dazzle run is cold
    env = child_env(numba_cache)
    rows = [Row(f"dazzle, threads ({cores} cores)", "dazzle", []),
            Row(f"AstroDrizzle num_cores=1", "astrodrizzle", [1]),
            Row("dazzle, 1 thread (synchronous)", "dazzle", ["--scheduler", "synchronous"]),
            Row(f"AstroDrizzle num_cores={cores} (all)", "astrodrizzle", [cores])]
    have_ad = importlib.util.find_spec("drizzlepac") is not None and not args.no_astrodrizzle
    if not have_ad:
        rows = [r for r in rows if r.tool == "dazzle"]
    try:
        inputs, what = make_inputs(args, work)
        load = os.getloadavg()[0]
        print(f"whole-process benchmark, {what}; every step on")
        print(f"{cores} CPU(s), load average {load:.1f} at the start"
              + (" -- other work is running: expect noisy timings" if load > 0.5 else ""))
        compile_dazzle(env)
        n = 0
        cold = run_once(rows[0], inputs, work, env, n)
        if have_ad:
            subprocess.run([sys.executable, "-c", "import drizzlepac.astrodrizzle"], env=env,
                           capture_output=True, cwd=work)
        for p in range(args.pairs):
            for row in (rows if p % 2 == 0 else rows[::-1]):
                n += 1
                row.runs.append(run_once(row, inputs, work, env, n))
                print(f"  pair {p + 1}: {row.label:<36} {row.runs[-1][0]:7.2f} s", flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)

    ad1 = next((r for r in rows if r.args == [1]), None)
    ref = ad1.median(0) if ad1 else None
    print()
    print(f"median of {args.pairs} alternating pair(s); whole processes, imports included")
    print(f"{'run':<46}{'wall s':>8}{'CPU s':>8}{'CPU/wall':>9}{'RSS MiB':>10}"
          + (f"{'AD(1)/run':>10}" if ref else ""))
    for row in rows:
        print(fmt_row(row.label, row.median(0), row.median(1), row.median(2), ref))
    print(fmt_row(f"{rows[0].label}, cold Numba cache", *cold, ref) + "   (first run, not a median)")
    if ref and len(rows) == 4:
        dz, ad_all, dz1 = rows[0].median(0), rows[3].median(0), rows[2].median(0)
        print(f"\ndazzle threads: {ref / dz:.2f}x AstroDrizzle num_cores=1, {ad_all / dz:.2f}x num_cores={cores}; "
              f"dazzle 1 thread: {ref / dz1:.2f}x AstroDrizzle num_cores=1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
