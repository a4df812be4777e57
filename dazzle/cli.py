"""Command-line interface: ``dazzle <command> ...`` (also ``python -m dazzle``)."""

from __future__ import annotations

import argparse
import sys


def _cmd_params(args) -> int:
    from dazzle.params import format_help

    print(format_help())
    return 0


def _cmd_demo(args) -> int:
    # Until the pipeline lands, the demo measures the kernels on generated data.
    from pathlib import Path

    bench = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_kernels.py"
    if not bench.exists():  # installed without the source tree
        print("the kernel benchmark needs the source checkout (benchmarks/bench_kernels.py)", file=sys.stderr)
        return 2
    import runpy

    mod = runpy.run_path(str(bench))
    argv = ["--size", str(args.size), "--repeat", str(args.repeat)]
    if args.quick:
        argv.append("--quick")
    return mod["main"](argv)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dazzle", description="Numba-accelerated, distributed AstroDrizzle.")
    sub = p.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("params", help="list every parameter with its default and one line of help")
    sp.set_defaults(func=_cmd_params)

    sp = sub.add_parser("demo", help="run dazzle on built-in generated data")
    sp.add_argument("--size", type=int, default=2048, help="input image size for the kernel run")
    sp.add_argument("--repeat", type=int, default=3)
    sp.add_argument("--quick", action="store_true")
    sp.set_defaults(func=_cmd_demo)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
