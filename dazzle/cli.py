"""Command-line interface: ``dazzle <command> ...`` (also ``python -m dazzle``).

Commands:

* ``dazzle run INPUT... -o OUTPUT [--config FILE] [--set NAME=VALUE ...]``
* ``dazzle params``                      -- every parameter, its default and one line of help
* ``dazzle simulate OUTDIR [...]``       -- dithered HST-like exposures with known truth
* ``dazzle demo [OUTDIR]``               -- simulate a small set and run the pipeline on it

Errors in the inputs or the parameters end the command with one line on stderr naming the
file and extension (or the parameter) and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path


def _cmd_params(args) -> int:
    from dazzle.params import format_help

    print(format_help())
    return 0


def _parse_params(args) -> dict:
    from dazzle.params import parse_set_args

    params = parse_set_args(args.set or [])
    if args.scheduler:
        params["scheduler"] = args.scheduler
    return params


def _summary(result, elapsed) -> str:
    lines = []
    if result.output:
        lines.append(f"final product : {result.output}  (frame {result.frame_shape[1]} x "
                     f"{result.frame_shape[0]} pixels, {result.nchips} chip(s))")
    for sci, _wht in result.single:
        lines.append(f"single        : {sci}")
    lines.append(f"time          : {elapsed:.1f} s  ("
                 + ", ".join(f"{k} {v:.2f} s" for k, v in result.timings.items()) + ")")
    return "\n".join(lines)


def _cmd_run(args) -> int:
    from dazzle.pipeline import run

    params = _parse_params(args)
    t0 = time.perf_counter()
    result = run(args.inputs, args.output, args.config, ivm=args.ivm, progress=not args.quiet, **params)
    print(_summary(result, time.perf_counter() - t0))
    return 0


def _cmd_simulate(args) -> int:
    from dazzle.simulate import simulate

    sim = simulate(args.outdir, n_exposures=args.exposures, chips=args.chips, size=args.size,
                   seed=args.seed, cosmic_rays=not args.no_cosmic_rays)
    for f in sim.files:
        print(f)
    print(f"truth: {sim.truth_stars_path}")
    return 0


def _cmd_demo(args) -> int:
    from dazzle.pipeline import run
    from dazzle.simulate import simulate

    outdir = Path(args.outdir)
    t0 = time.perf_counter()
    print(f"dazzle demo: simulating {args.exposures} dithered exposures of a {args.size}x{args.size} "
          f"HST ACS/HRC-like chip (real SIP distortion) in {outdir}/ ...")
    sim = simulate(outdir / "inputs", n_exposures=args.exposures, chips=1, size=args.size, seed=args.seed)
    t_sim = time.perf_counter() - t0
    print(f"  {len(sim.files)} files, {len(sim.stars)} stars ({t_sim:.1f} s)")
    print("running the pipeline (drizzle separate, final drizzle) on the threaded scheduler ...")
    t1 = time.perf_counter()
    result = run(sim.files, str(outdir / "products" / "demo"), progress=True)
    print(_summary(result, time.perf_counter() - t1))
    print("next: open the _drz.fits in ds9, run `dazzle params` to see every parameter, or "
          "`dazzle run your_flt.fits ... -o out` on your own data")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dazzle", description="Numba-accelerated, distributed AstroDrizzle.")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress of each step")
    sub = p.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("run", help="drizzle the inputs (separate and final drizzle)")
    sp.add_argument("inputs", nargs="+", help="FITS files (*_flt.fits, *_flc.fits, any MEF), globs or @lists")
    sp.add_argument("-o", "--output", default="", help="output root (default: AstroDrizzle's rule)")
    sp.add_argument("--config", help="dazzle or AstroDrizzle .cfg file with parameters")
    sp.add_argument("--set", action="append", metavar="NAME=VALUE",
                    help="set a parameter (AstroDrizzle's names), e.g. --set final_kernel=turbo")
    sp.add_argument("--scheduler", help="threads (default), processes, synchronous, or tcp://host:port")
    sp.add_argument("--ivm", nargs="+", help="IVM files, one per input (final_wht_type=IVM)")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=_cmd_run)

    sp = sub.add_parser("params", help="list every parameter with its default and one line of help")
    sp.set_defaults(func=_cmd_params)

    sp = sub.add_parser("simulate", help="write dithered HST-like exposures with known truth")
    sp.add_argument("outdir")
    sp.add_argument("--exposures", type=int, default=4)
    sp.add_argument("--chips", type=int, choices=(1, 2), default=1)
    sp.add_argument("--size", type=int, default=None, help="chip size in pixels (default 1024)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--no-cosmic-rays", action="store_true")
    sp.set_defaults(func=_cmd_simulate)

    sp = sub.add_parser("demo", help="simulate a small data set and run the pipeline on it")
    sp.add_argument("outdir", nargs="?", default="demo_output")
    sp.add_argument("--exposures", type=int, default=4)
    sp.add_argument("--size", type=int, default=512)
    sp.add_argument("--seed", type=int, default=1)
    sp.set_defaults(func=_cmd_demo)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s")
    from dazzle.io import InputError
    from dazzle.params import ParameterError

    try:
        return args.func(args)
    except (InputError, ParameterError) as exc:
        print(f"dazzle: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
