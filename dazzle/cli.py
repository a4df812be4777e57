"""Command-line interface: ``dazzle <command> ...`` (also ``python -m dazzle``).

Commands:

* ``dazzle run INPUT... -o OUTPUT [--config FILE] [--set NAME=VALUE ...]``
* ``dazzle params``                      -- every parameter, its default and one line of help
* ``dazzle simulate OUTDIR [...]``       -- dithered HST-like exposures with known truth
* ``dazzle demo [OUTDIR]``               -- simulate a small set and run the pipeline on it

Errors in the inputs, the outputs or the parameters end the command with one line on stderr
naming the file and extension (or the parameter) and exit status 2; so do a file that cannot
be read or written (a missing ``--config``, a read-only output folder, a full disk) and a bad
command line.  Ctrl-C ends with status 130, SIGTERM with 143 and SIGHUP with 129, after the
run removed its temporary files.  Anything else is a bug: one line and status 1 (``-v`` shows the traceback).
No message quotes a file's contents.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

__all__ = ["build_parser", "main"]


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
    result = run(args.inputs, args.output, args.config, ivm=args.ivm, progress=not args.quiet,
                 workers=args.workers, profile=args.profile, report=args.report, **params)
    print(_summary(result, time.perf_counter() - t0))
    return 0


def _simulate(outdir, **kw):
    """:func:`dazzle.simulate.simulate`, its checks of the arguments as parameter errors."""
    from dazzle.params import ParameterError
    from dazzle.simulate import simulate

    try:
        return simulate(outdir, **kw)
    except ValueError as exc:
        raise ParameterError(str(exc)) from None


def _cmd_simulate(args) -> int:
    sim = _simulate(args.outdir, n_exposures=args.exposures, chips=args.chips, size=args.size,
                    seed=args.seed, cosmic_rays=not args.no_cosmic_rays)
    for f in sim.files:
        print(f)
    print(f"truth: {sim.truth_stars_path}")
    return 0


def _cmd_demo(args) -> int:
    """Simulate a small dithered set, run every step on it, write products, PNGs and a report."""
    import numpy as np
    from astropy.io import fits

    from dazzle import report
    from dazzle.facts import STEPS
    from dazzle.params import parse_set_args, resolve
    from dazzle.pipeline import run

    def show(p):
        rel = os.path.relpath(p)
        return rel if not rel.startswith("..") else os.path.abspath(p)

    outdir = Path(args.outdir)
    params = parse_set_args(args.set or [])
    t0 = time.perf_counter()
    print(f"dazzle demo: {args.exposures} dithered exposures of one {args.size}x{args.size} HST ACS/HRC-like "
          f"chip (real SIP distortion, stars, sky, noise, cosmic rays, hot pixels) in {show(outdir)}/")
    sim = _simulate(outdir / "inputs", n_exposures=args.exposures, chips=1, size=args.size, seed=args.seed,
                    cosmic_rays=True, hot_pixels=True)
    t_sim = time.perf_counter() - t0
    print(f"  inputs : {show(sim.files[0])} ... {os.path.basename(sim.files[-1])}  ({len(sim.files)} files, "
          f"{len(sim.stars)} stars, truth in {show(sim.truth_stars_path)}; {t_sim:.1f} s)")
    values = resolve(args.config, **params)
    on = [step.title for step in STEPS if values[step.switch]]
    count = f"all {len(STEPS)} steps" if len(on) == len(STEPS) else f"{len(on)} of the {len(STEPS)} steps"
    print(f"running {count} ({', '.join(on)}) on the {values['scheduler']} scheduler; "
          "a first run compiles the Numba kernels ...", flush=True)
    t1 = time.perf_counter()
    result = run(sim.files, str(outdir / "products" / "demo"), args.config, progress=True, summary=False,
                 **params)
    t_run = time.perf_counter() - t1

    # cosmic rays found against the simulator's truth (pixels with more than 50 e- of CR charge)
    columns, per_chip = [], []
    if result.crmasks is not None:
        columns = [["truth_cr_pixels", "CR pixels > 50 e- (truth)"], ["truth_found", "of them flagged"],
                   ["clean_flagged", "flags on clean pixels"]]
        files = [os.path.abspath(f) for f in sim.files]
        for k, chip in enumerate(result.chips):
            e, c = files.index(os.path.abspath(chip.path)), chip.extver - 1
            flagged = ~np.asarray(result.crmasks[k], dtype=bool)
            charge = sim.cr_charge[e][c]
            dq = fits.getdata(chip.path, ("DQ", chip.extver))
            big = charge > 50
            per_chip.append({"truth_cr_pixels": int(big.sum()),
                             "truth_found": f"{100.0 * (flagged & big).sum() / max(big.sum(), 1):.1f} %",
                             "clean_flagged": int((flagged & (charge <= 0) & (dq == 0)).sum())})
    command = " ".join(["dazzle demo", str(args.outdir)] + ([f"--config {args.config}"] if args.config else [])
                       + [f"--set {x}" for x in (args.set or [])])
    summary = report.save_run_summary(result, wall_time=t_sim + t_run,
                                      chip_columns=columns, chip_extra=per_chip, command=command)
    t2 = time.perf_counter()
    info = report.collect_run(summary)
    pngs = report.write_previews(info, outdir)
    html = report.render_report(summary, outdir / "report.html")
    t_pics = time.perf_counter() - t2

    print()
    print(report.text_summary(info))
    print(f"total: {time.perf_counter() - t0:.1f} s (simulate {t_sim:.1f} s, pipeline {t_run:.1f} s, "
          f"pictures and report {t_pics:.1f} s)")
    print()
    print("products:")
    rows = [("final image (SCI, WHT, CTX)", result.output), ("median", result.median)]
    if result.single:
        rows.append((f"single-drizzled ({len(result.single)} exp.)", result.single[0][0]))
    crm = [c.get("crmask") for c in info.chips if c.get("crmask")]
    if crm:
        rows.append((f"CR masks ({len(crm)}, 1 good / 0 CR)", crm[0]))
    rows += [("run summary", summary), ("preview of the final image", pngs.get("drz")),
             ("chip 1 with its CR mask", pngs.get("chip")), ("report (open in a browser)", html)]
    for what, p in rows:
        if p:
            print(f"  {what:<30} {show(p)}")
    inputs = show(outdir / "inputs")
    print()
    print("try next:")
    tips = [("dazzle params", "every parameter, its default and meaning"),
            (f"dazzle run {inputs}/*_flt.fits -o mine --set final_pixfrac=0.8", "change a parameter"),
            (f"dazzle run {inputs}/*_flt.fits -o mine --config workflows/demo.cfg", "edit a workflow file"),
            ("dazzle run my_*_flt.fits -o mymosaic", "your own FLT/FLC files (any HST MEF)"),
            (f"dazzle report {show(outdir)}", "rebuild the HTML report"),
            ("workflows/README.md", "ACS/WFC, WFC3/IR and SLURM mosaic settings")]
    width = max(len(a) for a, _ in tips)
    for a, b in tips:
        print(f"  {a:<{width}}  {b}")
    return 0


def _cmd_report(args) -> int:
    """Write the HTML report of a run folder and print a short summary."""
    from dazzle import report
    from dazzle.products import check_html_target

    check_html_target(args.output)
    path = report.render_report(args.run_dir, args.output, max_chips=args.max_chips)
    print(report.text_summary(report.collect_run(args.run_dir)))
    print(f"report: {path}")
    return 0


def _positive_int(text):
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} must be >= 1")
    return n


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (exit status 2, as argparse's own)."""

    def error(self, message):
        print(f"dazzle: error: {' '.join(str(message).split())} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    """The ``dazzle`` command line: its subcommands and options.

    Returns
    -------
    argparse.ArgumentParser
        Its errors are one line on stderr, exit status 2.
    """
    p = _Parser(prog="dazzle", description="Numba-accelerated, distributed AstroDrizzle.")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress of each step")
    sub = p.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("run", help="drizzle the inputs (separate and final drizzle)")
    sp.add_argument("inputs", nargs="+", help="FITS files (*_flt.fits, *_flc.fits, any MEF), globs or @lists")
    sp.add_argument("-o", "--output", default="", help="output root (default: AstroDrizzle's rule)")
    sp.add_argument("--config", help="dazzle or AstroDrizzle .cfg file with parameters")
    sp.add_argument("--set", action="append", metavar="NAME=VALUE",
                    help="set a parameter (AstroDrizzle's names), e.g. --set final_kernel=turbo")
    sp.add_argument("--scheduler", help="where the graph runs: threads (default), processes, synchronous, "
                    "local (a LocalCluster), tcp://host:port, a scheduler file .json, or a cluster "
                    "profile (profile:NAME, e.g. profile:slurm; see deploy/profiles.yaml)")
    sp.add_argument("--workers", type=_positive_int, metavar="N",
                    help="worker processes of --scheduler local (default: one per core), threads of "
                    "threads, processes of processes, or workers of a cluster profile")
    sp.add_argument("--profile", metavar="FILE|NAME",
                    help="cluster profiles file (YAML; default $DAZZLE_PROFILES, "
                    "~/.config/dazzle/profiles.yaml, deploy/profiles.yaml), or a profile name")
    sp.add_argument("--report", metavar="FILE.html", help="write Dask's performance report (HTML)")
    sp.add_argument("--ivm", nargs="+", help="IVM files, one per input (final_wht_type=IVM)")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=_cmd_run)

    sp = sub.add_parser("params", help="list every parameter with its default and one line of help")
    sp.set_defaults(func=_cmd_params)

    sp = sub.add_parser("simulate", help="write dithered HST-like exposures with known truth")
    sp.add_argument("outdir")
    sp.add_argument("--exposures", type=_positive_int, default=4)
    sp.add_argument("--chips", type=int, choices=(1, 2), default=1)
    sp.add_argument("--size", type=int, default=None, help="chip size in pixels (default 1024)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--no-cosmic-rays", action="store_true")
    sp.set_defaults(func=_cmd_simulate)

    sp = sub.add_parser("demo",
                        help="simulate a small data set, run the whole pipeline, write PNGs and a report")
    sp.add_argument("outdir", nargs="?", default="demo_output",
                    help="where to write everything (default demo_output)")
    sp.add_argument("--exposures", type=_positive_int, default=4)
    sp.add_argument("--size", type=int, default=512, help="chip size in pixels (default 512)")
    sp.add_argument("--seed", type=int, default=1)
    sp.add_argument("--config", help="dazzle or AstroDrizzle .cfg file (e.g. workflows/demo.cfg)")
    sp.add_argument("--set", action="append", metavar="NAME=VALUE",
                    help="set a parameter, e.g. --set final_pixfrac=0.8")
    sp.set_defaults(func=_cmd_demo)

    sp = sub.add_parser("report", help="write a self-contained HTML report of a run (images, timings, sky, "
                                       "CRs, parameters)")
    sp.add_argument("run_dir", help="folder of the run (its *_run.json or *_drz.fits, up to two levels down), "
                                    "or the file")
    sp.add_argument("-o", "--output", help="HTML file to write (default RUN_DIR/report.html)")
    sp.add_argument("--max-chips", type=_positive_int, default=16, help="picture at most this many chips (default 16)")
    sp.set_defaults(func=_cmd_report)
    return p


def _one_line(exc) -> str:
    return " ".join(str(exc).split())


def _os_error(exc: OSError) -> str:
    """An OSError as ``path: reason`` (never the file's contents)."""
    where = exc.filename if exc.filename is not None else ""
    what = exc.strerror or _one_line(exc) or type(exc).__name__
    return f"{where}: {what}" if where else what


def main(argv=None) -> int:
    """Run one ``dazzle`` command.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 done; 2 a bad input, parameter, file or command line (one line on
        stderr, naming the file or parameter); 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP; 141 a closed
        pipe; 1 an internal error (``-v`` shows the traceback).
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("dazzle").setLevel(logging.INFO if args.verbose else logging.WARNING)
    try:
        return args.func(args)
    except BrokenPipeError:   # `dazzle params | head`: the reader left; end quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", None)   # products.Terminated: SIGTERM during a run
        if signum is not None:
            import signal

            what, status = f"terminated ({signal.Signals(signum).name})", 128 + signum
        else:
            what, status = "interrupted", 130
        tail = (": no partial product was left; --set resume=True reuses the finished steps"
                if args.command == "run" else "")
        print(f"dazzle: {what}{tail}", file=sys.stderr)
        return status
    except Exception as exc:  # noqa: BLE001
        if _user_error(exc):
            print(f"dazzle: error: {_one_line(exc)}", file=sys.stderr)
            return 2
        if isinstance(exc, OSError):
            print(f"dazzle: error: {_os_error(exc)}", file=sys.stderr)
            return 2
        # a bug: one line, the traceback with -v
        if args.verbose:
            import traceback

            traceback.print_exc()
        print(f"dazzle: internal error: {type(exc).__name__}: {_one_line(exc)} (run with -v for the "
              "traceback, and please report it)", file=sys.stderr)
        return 1


def _user_error(exc) -> bool:
    """A bad input or parameter (one line on stderr, status 2), not a bug.  dazzle.errors
    imports nothing heavy, so ``dazzle params`` / ``--help`` still start without astropy."""
    from dazzle.errors import InputError, ParameterError

    return isinstance(exc, (ParameterError, InputError))


if __name__ == "__main__":
    sys.exit(main())
