"""Command-line interface: ``dazzle <command> ...`` (also ``python -m dazzle``).

Commands:

* ``dazzle run INPUT... -o OUTPUT [--config FILE] [--set NAME=VALUE ...]``
* ``dazzle params``                      -- every parameter, its default and one line of help
* ``dazzle simulate OUTDIR [...]``       -- dithered HST-like exposures with known truth
* ``dazzle demo [OUTDIR]``               -- simulate a small set and run the pipeline on it
* ``dazzle report RUN_DIR``              -- the HTML report of a run
* ``dazzle --version``

``-v`` (``-vv``), ``-q`` and ``--log-file FILE`` go before or after the command.  Log lines
read ``HH:MM:SS dazzle: ...`` (:class:`LogFormat`: one prefix); ``--log-file`` of ``run`` is
AstroDrizzle's ``runfile``.  The end summaries give absolute paths.  A missing folder of
``run -o`` is created by the run after its checks, and the command says so.

Errors in the inputs, the outputs or the parameters end the command with one line on stderr
naming the file and extension (or the parameter) and exit status 2; so do a file that cannot
be read or written (a missing ``--config``, a read-only output folder, a full disk) and a bad
command line.  Ctrl-C ends with status 130, SIGTERM with 143 and SIGHUP with 129, after the
run removed its temporary files.  Anything else is a bug: one line and status 1 (``-v`` shows the traceback).
No message quotes a file's contents.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import sys
import time
from pathlib import Path

__all__ = ["LogFormat", "build_parser", "main"]


def _cmd_params(args) -> int:
    from dazzle.params import format_help

    print(format_help())
    return 0


def _parse_params(args) -> dict:
    from dazzle.params import ParameterError, parse_set_args

    params = parse_set_args(args.set or [])
    if args.scheduler:
        params["scheduler"] = args.scheduler
    if args.log_file:   # AstroDrizzle's runfile: the run's log
        if "runfile" in params:
            raise ParameterError("give --log-file or --set runfile=..., not both", name="runfile")
        params["runfile"] = os.path.abspath(args.log_file)
    return params


def _missing_folder(output) -> str | None:
    """The folder of ``-o`` if it does not exist yet (the run creates it, once every check has
    passed, and the command says so), else None."""
    if not output or output.endswith(("/", os.sep)):
        return None   # AstroDrizzle's rule (beside the inputs), or a folder: the run refuses it
    folder = os.path.dirname(os.path.abspath(output))
    return None if os.path.isdir(folder) else folder


def _summary(result, elapsed) -> str:
    lines = []
    if result.output:
        lines.append(f"final product : {os.path.abspath(result.output)}  (frame {result.frame_shape[1]} x "
                     f"{result.frame_shape[0]} pixels, {result.nchips} chip(s))")
    for sci, _wht in result.single:
        lines.append(f"single        : {os.path.abspath(sci)}")
    lines.append(f"time          : {elapsed:.1f} s  ("
                 + ", ".join(f"{k} {v:.2f} s" for k, v in result.timings.items()) + ")")
    return "\n".join(lines)


def _numba_without_probes() -> None:
    """Load Numba's array functions and its typing of values with two probes answered "none",
    in this process.

    A process's first Numba compilation (or cache load) imports ``numba.np.arraymath``, which
    probes for a BLAS by importing ``scipy.linalg`` when SciPy is installed (0.13 s wall and
    0.22 s of CPU here), and ``numba.core.typing.cffi_utils``, which imports ``cffi`` and its C
    parser when cffi is installed and makes an FFI (28 ms), before the first kernel runs, while
    every worker waits.  The BLAS probe only decides how Numba compiles
    ``np.convolve``/``np.correlate``, and cffi only lets Numba call cffi functions: no dazzle
    kernel uses either (``np.dot`` and ``np.linalg`` still find SciPy when something compiles
    them; a cffi import afterwards works as before).  Only the command line does this: it owns
    its process.  Nothing for a module already loaded.
    """
    blocked = [name for name, first in (("scipy.linalg.cython_blas", "numba.np.arraymath"),
                                        ("cffi", "numba.core.typing.cffi_utils"))
               if first not in sys.modules and name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None   # an import of it fails, the package untouched
    try:
        import numba.core.typing.cffi_utils  # noqa: F401
        import numba.np.arraymath  # noqa: F401
    finally:
        for name in blocked:
            del sys.modules[name]


def _cmd_run(args) -> int:
    from dazzle.pipeline import run

    params = _parse_params(args)
    new_folder = _missing_folder(args.output)
    if args.fsync:   # read at each write, here and in worker processes started from this one
        from dazzle.atomic import FSYNC_ENV

        os.environ[FSYNC_ENV] = "1"
    _numba_without_probes()
    if _PROGRAM:   # the modules' objects out of the collector's way (see command())
        gc.freeze()
    t0 = time.perf_counter()
    result = run(args.inputs, args.output, args.config, ivm=args.ivm, progress=not args.quiet,
                 workers=args.workers, profile=args.profile, report=args.report, **params)
    if new_folder and os.path.isdir(new_folder) and not args.quiet:
        print(f"dazzle: created the output folder {new_folder}", file=sys.stderr)
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
    from dazzle.resources import shipped_dir

    show = os.path.abspath   # every path printed in full (the summary is copied from)

    outdir = Path(args.outdir)
    params = parse_set_args(args.set or [])
    _numba_without_probes()
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
    result = run(sim.files, str(outdir / "products" / "demo"), args.config, progress=not args.quiet,
                 summary=False, **params)
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
    from astropy.io import fits

    with fits.open(result.output) as h:   # the extensions the product has (ERR, DQ when made)
        names = ", ".join(hdu.name for hdu in h[1:])
    rows = [(f"final image ({names})", result.output), ("median", result.median)]
    if result.single:
        rows.append((f"single-drizzled ({len(result.single)} exp.)", result.single[0][0]))
    crm = [c.get("crmask") for c in info.chips if c.get("crmask")]
    if crm:
        rows.append((f"CR masks ({len(crm)}, 1 good / 0 CR)", crm[0]))
    rows += [("run summary", summary), ("preview of the final image", pngs.get("drz")),
             ("chip 1 with its CR mask", pngs.get("chip")), ("report (open in a browser)", html)]
    width = max(len(what) for what, p in rows if p)
    for what, p in rows:
        if p:
            print(f"  {what:<{width}} {show(p)}")
    inputs = show(outdir / "inputs")
    workflows = shipped_dir("workflows")
    print()
    print("try next:")
    tips = [("dazzle params", "every parameter, its default and meaning"),
            (f"dazzle run {inputs}/*_flt.fits -o mine --set final_pixfrac=0.8", "change a parameter"),
            (f"dazzle run {inputs}/*_flt.fits -o mine --config {show(workflows / 'demo.cfg')}",
             "edit a workflow file"),
            ("dazzle run my_*_flt.fits -o mymosaic", "your own FLT/FLC files (any HST MEF)"),
            (f"dazzle report {show(outdir)}", "rebuild the HTML report"),
            (show(workflows / "README.md"), "ACS/WFC, WFC3/IR and SLURM mosaic settings")]
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


def _common_options(top: bool) -> argparse.ArgumentParser:
    """-v, -q and --log-file, accepted before and after the command.  On the commands their
    default is SUPPRESS, so that ``dazzle -v run ...`` is not undone by the command's default."""
    p = argparse.ArgumentParser(add_help=False)
    keep = {} if top else {"default": argparse.SUPPRESS}
    p.add_argument("-v", "--verbose", action="count", help="log each step (INFO) and show the traceback of an "
                   "internal error; -vv: debug messages too", **({"default": 0} if top else keep))
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar and no notes (warnings and errors stay)", **keep)
    p.add_argument("--log-file", metavar="FILE",
                   help="also write the log (INFO and up, and the closing error) to FILE, replaced; for "
                   "'run' this is AstroDrizzle's runfile (default: astrodrizzle.log beside the products)",
                   **keep)
    return p


RUN_HELP = ("run AstroDrizzle's seven steps on the inputs: static mask, sky, drizzle separate, "
            "create median, blot, driz_cr and final drizzle (each switchable: see 'dazzle params')")


def build_parser() -> argparse.ArgumentParser:
    """The ``dazzle`` command line: its subcommands and options.

    Returns
    -------
    argparse.ArgumentParser
        Its errors are one line on stderr, exit status 2.
    """
    from dazzle import __version__

    p = _Parser(prog="dazzle", description="Numba-accelerated, distributed AstroDrizzle.",
                parents=[_common_options(top=True)])
    p.add_argument("--version", action="version", version=f"dazzle {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    common = [_common_options(top=False)]

    sp = sub.add_parser("run", help=RUN_HELP, description=RUN_HELP + ".", parents=common)
    sp.add_argument("inputs", nargs="+", help="FITS files (*_flt.fits, *_flc.fits, any MEF), globs or @lists")
    sp.add_argument("-o", "--output", default="", help="output root, e.g. out/mosaic for out/mosaic_drz.fits "
                    "(default: AstroDrizzle's rule); a missing folder is created once the inputs and "
                    "parameters passed their checks, and the command says so")
    sp.add_argument("--config", help="dazzle or AstroDrizzle .cfg file with parameters")
    sp.add_argument("--set", action="append", metavar="NAME=VALUE",
                    help="set a parameter (AstroDrizzle's names), e.g. --set final_kernel=turbo")
    sp.add_argument("--scheduler", help="where the graph runs: threads (default), processes, synchronous, "
                    "local (a LocalCluster), tcp://host:port, a scheduler file .json, or a cluster "
                    "profile (profile:NAME, e.g. profile:slurm: dazzle's deploy/profiles.yaml, or a "
                    "dask-jobqueue section of your dask config such as ~/.config/dask/jobqueue.yaml)")
    sp.add_argument("--workers", type=_positive_int, metavar="N",
                    help="worker processes of --scheduler local (default: one per core), threads of "
                    "threads, processes of processes, or workers of a cluster profile")
    sp.add_argument("--profile", metavar="FILE|NAME",
                    help="cluster profiles file (YAML; default $DAZZLE_PROFILES, "
                    "~/.config/dazzle/profiles.yaml, then the profiles.yaml shipped with dazzle), "
                    "or a profile name")
    sp.add_argument("--report", metavar="FILE.html", help="write Dask's performance report (HTML)")
    sp.add_argument("--ivm", nargs="+", help="IVM files, one per input (final_wht_type=IVM)")
    sp.add_argument("--fsync", action="store_true",
                    help="make every file durable against a power cut: fsync it before its rename "
                    "(slower: each product waits for the disk; same as DAZZLE_FSYNC=1 in the environment). "
                    "Without it products are still renamed into place whole, never left half written")
    sp.set_defaults(func=_cmd_run)

    sp = sub.add_parser("params", help="list every parameter with its default and one line of help",
                        parents=common)
    sp.set_defaults(func=_cmd_params)

    sp = sub.add_parser("simulate", help="write dithered HST-like exposures with known truth",
                        description="Write dithered HST ACS-like exposures (*_flt.fits: SCI, ERR, DQ per "
                        "chip, real SIP distortion, stars, sky, noise, hot pixels, cosmic rays) and "
                        "their truth tables into OUTDIR.", parents=common)
    sp.add_argument("outdir", help="folder to write into (created if needed)")
    sp.add_argument("--exposures", type=_positive_int, default=4, help="number of exposures (default 4)")
    sp.add_argument("--chips", type=int, choices=(1, 2), default=1,
                    help="chips per exposure: 1 (ACS/HRC-like) or 2 (ACS/WFC-like) (default 1)")
    sp.add_argument("--size", type=int, default=None, help="chip size in pixels (default 1024)")
    sp.add_argument("--seed", type=int, default=0, help="seed of every random stream (default 0)")
    sp.add_argument("--no-cosmic-rays", action="store_true", help="leave the cosmic rays out")
    sp.set_defaults(func=_cmd_simulate)

    sp = sub.add_parser("demo", help="simulate a small data set, run the whole pipeline, write PNGs and a "
                        "report", parents=common)
    sp.add_argument("outdir", nargs="?", default="demo_output",
                    help="where to write everything (default demo_output)")
    sp.add_argument("--exposures", type=_positive_int, default=4, help="number of exposures (default 4)")
    sp.add_argument("--size", type=int, default=512, help="chip size in pixels (default 512)")
    sp.add_argument("--seed", type=int, default=1, help="seed of the simulation (default 1)")
    sp.add_argument("--config", help="dazzle or AstroDrizzle .cfg file (e.g. the demo.cfg of dazzle's "
                    "workflows folder)")
    sp.add_argument("--set", action="append", metavar="NAME=VALUE",
                    help="set a parameter, e.g. --set final_pixfrac=0.8")
    sp.set_defaults(func=_cmd_demo)

    sp = sub.add_parser("report", help="write a self-contained HTML report of a run (images, timings, sky, "
                                       "CRs, parameters)", parents=common)
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


class LogFormat(logging.Formatter):
    """``HH:MM:SS name: message`` with one prefix: the logger's name is left out when the
    message already starts with it (dazzle's messages say ``dazzle: ...`` themselves)."""

    def __init__(self, fmt="%(asctime)s %(message)s", datefmt="%H:%M:%S"):
        super().__init__(fmt, datefmt)

    def formatMessage(self, record):
        top = record.name.split(".")[0]
        if not record.message.startswith((f"{record.name}:", f"{top}:")):
            record.message = f"{record.name}: {record.message}"
        return super().formatMessage(record)


def _set_up_logging(args):
    """The level from -v, the console handler (unless the process already has one: pytest,
    an embedding program) and the --log-file handler of commands other than ``run`` (whose
    log file is its runfile).  Returns the handlers to remove at the end."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    root = logging.getLogger()
    added = []
    if not root.handlers:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(LogFormat())
        root.addHandler(console)
        added.append((root, console))
    root.setLevel(logging.WARNING)
    lg = logging.getLogger("dazzle")
    lg.setLevel(level)
    if args.log_file and args.command != "run":
        fh = logging.FileHandler(args.log_file, mode="w", encoding="utf-8")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        fh.setLevel(logging.INFO)
        lg.addHandler(fh)
        lg.setLevel(min(level, logging.INFO))
        if level > logging.INFO:   # the console stays as quiet as asked
            for _, h in added:
                h.setLevel(level)
        added.append((lg, fh))
    return added


def _closing_line(args, line: str) -> None:
    """The one line an ending command prints on stderr, also appended to --log-file."""
    print(line, file=sys.stderr)
    if getattr(args, "log_file", None):
        with contextlib.suppress(OSError):
            with open(args.log_file, "a", encoding="utf-8") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")


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
    parser = build_parser()
    args = parser.parse_args(argv)
    args.quiet = getattr(args, "quiet", False)
    args.log_file = getattr(args, "log_file", None)
    handlers = []
    try:
        if args.log_file:
            _check_folder(args.log_file, "--log-file")
        handlers = _set_up_logging(args)
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
        _closing_line(args, f"dazzle: {what}{tail}")
        return status
    except Exception as exc:  # noqa: BLE001
        if _user_error(exc):
            _closing_line(args, f"dazzle: error: {_one_line(exc)}")
            return 2
        if isinstance(exc, OSError):
            _closing_line(args, f"dazzle: error: {_os_error(exc)}")
            return 2
        # a bug: one line, the traceback with -vv
        if args.verbose:
            import traceback

            traceback.print_exc()
        _closing_line(args, f"dazzle: internal error: {type(exc).__name__}: {_one_line(exc)} (run with -v "
                      "for the traceback, and please report it)")
        return 1
    finally:
        for logger, h in handlers:
            logger.removeHandler(h)
            h.close()


#: Whether this process is the ``dazzle`` program (:func:`command`), not a caller of :func:`main`
_PROGRAM = False


def command() -> int:
    """The ``dazzle`` program (the console script and ``python -m dazzle``): :func:`main`,
    with CPython's garbage collector set for a process that ends when the command does.

    A run imports astropy, Numba and dask: several hundred thousand objects that live until
    the process ends.  Every full collection walks them all, and CPython's exit makes one more
    pass over them: measured on the small benchmark set (``dazzle run``, 2.6 s) about 0.35 s
    at exit and 0.1-0.2 s during the run.  The program moves them into the collector's
    permanent generation (``gc.freeze``) once its modules are imported (:func:`_cmd_run`) and
    again when the command ends, so that the collector no longer visits them; garbage made
    during the run is collected as usual, and exit still runs ``atexit`` handlers, flushes
    and closes files.  It also sets ``OPENBLAS_NUM_THREADS=1`` unless the environment sets
    it (before numpy is imported).  :func:`main`, called by a program of the user's, changes
    nothing.
    """
    global _PROGRAM
    _PROGRAM = True
    # numpy's OpenBLAS starts a thread per core, which spins after any small matrix product
    # (the WCS code makes some): 0.1 s of CPU per WFC run in a profile, taken from the
    # workers.  dazzle's parallelism is its graph's; the user's setting wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    status = main()
    gc.freeze()
    return status


def _check_folder(path, what) -> None:
    """A file's folder must exist (a one-line error naming it otherwise)."""
    from dazzle.params import ParameterError

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ParameterError(f"{what} {path}: the folder {folder} does not exist")


def _user_error(exc) -> bool:
    """A bad input or parameter (one line on stderr, status 2), not a bug.  dazzle.errors
    imports nothing heavy, so ``dazzle params`` / ``--help`` still start without astropy."""
    from dazzle.errors import InputError, ParameterError

    return isinstance(exc, (ParameterError, InputError))


if __name__ == "__main__":
    sys.exit(main())
