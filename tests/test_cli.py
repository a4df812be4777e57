"""The command line (dazzle/cli.py): --version, -v/-q/--log-file before or after the command,
the log file (AstroDrizzle's runfile for `run`), one prefix per log line, absolute paths in the
summaries, an output folder that does not exist, and help texts that say what runs.

Cost: about 20 s (short runs of the final drizzle alone on 3 chips of 96^2, two of
them in a Python process of their own, where the command line sets up the console log)."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import dazzle
from dazzle.cli import LogFormat, build_parser, main
from dazzle.facts import STEPS

REPO = Path(__file__).resolve().parent.parent
FAST = ["--set", "driz_separate=no", "--set", "median=no", "--set", "blot=no", "--set", "driz_cr=no"]


@pytest.fixture(scope="module")
def sim(simulated):
    return simulated(n_exposures=3, chips=1, size=96, seed=5, cosmic_rays=False)


def _cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "dazzle", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"dazzle {dazzle.__version__}"


@pytest.mark.parametrize("argv, verbose, quiet, log_file", [
    (["run", "a.fits"], 0, False, None),
    (["-v", "run", "a.fits"], 1, False, None),
    (["run", "a.fits", "-v"], 1, False, None),
    (["run", "-vv", "a.fits"], 2, False, None),
    (["-q", "demo"], 0, True, None),
    (["demo", "x", "-q", "--log-file", "l.log"], 0, True, "l.log"),
    (["--log-file", "l.log", "simulate", "x"], 0, False, "l.log"),
    (["-v", "params"], 1, False, None),
    (["-v", "run", "a.fits", "-q"], 1, True, None),                   # step logs without the bar
])
def test_common_options_go_before_or_after_the_command(argv, verbose, quiet, log_file):
    args = build_parser().parse_args(argv)
    assert (args.verbose, getattr(args, "quiet", False), getattr(args, "log_file", None)) == \
        (verbose, quiet, log_file)


def test_help_texts_say_what_runs():
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices
    run_help = sub["run"].format_help()
    assert "seven steps" in run_help and len(STEPS) == 7
    for step in STEPS:                                           # every step named
        assert step.title in " ".join(run_help.split()), step.title
    assert "separate and final drizzle" not in parser.format_help()
    for name in ("simulate", "demo", "report", "run"):
        for action in sub[name]._actions:
            assert action.help, (name, action.dest)              # every option has a help text


def test_log_format_has_one_prefix():
    fmt = LogFormat()

    def line(name, msg):
        return fmt.format(logging.LogRecord(name, logging.INFO, __file__, 1, msg, (), None))

    assert re.fullmatch(r"\d\d:\d\d:\d\d dazzle: step sky: 3 task\(s\)", line("dazzle", "dazzle: step sky: 3 task(s)"))
    assert line("dazzle", "no prefix").endswith(" dazzle: no prefix")
    assert line("distributed.scheduler", "Receive client").endswith(" distributed.scheduler: Receive client")


def test_run_verbose_after_the_command_logs_each_step_with_one_prefix(sim, tmp_path):
    proc = _cli("run", *map(str, sim.files), "-o", "m", *FAST, "-v", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    steps = [ln for ln in proc.stderr.splitlines() if " dazzle: step " in ln]
    assert any("final drizzle" in ln for ln in steps), proc.stderr
    assert "dazzle: dazzle:" not in proc.stderr
    for ln in proc.stderr.splitlines():
        if "dazzle:" in ln:
            assert re.match(r"\d\d:\d\d:\d\d dazzle: ", ln), ln
    # the summary: absolute paths only
    summary = dict(ln.split(" : ", 1) for ln in proc.stdout.splitlines() if " : " in ln)
    assert summary["final product"].split()[0] == str(tmp_path / "m_drz.fits")
    # -q: nothing on stderr (no bar; a clean run has no warning), the summary still printed
    quiet = _cli("-q", "run", *map(str, sim.files), "-o", "q", *FAST, cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    assert str(tmp_path / "q_drz.fits") in quiet.stdout


def test_log_file_is_the_runfile_of_run_and_gets_the_closing_error(sim, tmp_path, capsys):
    log = tmp_path / "logs" / "run.log"
    log.parent.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    assert main(["run", *map(str, sim.files), "-o", str(out / "m"), *FAST, "-q", "--log-file", str(log)]) == 0
    text = log.read_text()
    assert "INFO dazzle: step final drizzle" in text
    assert not (out / "astrodrizzle.log").exists()               # the runfile went to --log-file
    from astropy.io import fits

    assert fits.getheader(out / "m_drz.fits")["DRIZPARS"] == str(log)
    # an error: its one line on stderr and at the end of the log file
    assert main(["run", str(tmp_path / "missing_flt.fits"), "-o", str(out / "x"), "--log-file", str(log)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dazzle: error: ") and log.read_text().rstrip().endswith(err)
    # both ways of naming the runfile: refused
    assert main(["run", *map(str, sim.files), "--log-file", str(log), "--set", "runfile=x.log"]) == 2
    assert "not both" in capsys.readouterr().err
    # a log file in a folder that does not exist: one line, status 2, nothing written
    assert main(["simulate", str(tmp_path / "s"), "--log-file", str(tmp_path / "no" / "l.log")]) == 2
    assert "the folder" in capsys.readouterr().err and not (tmp_path / "s").exists()


def test_log_file_of_other_commands(tmp_path, capsys):
    log = tmp_path / "sim.log"
    assert main(["simulate", str(tmp_path / "s"), "--size", "64", "--exposures", "1", "--log-file", str(log)]) == 0
    assert log.exists()                                          # created (the simulator logs nothing at INFO)
    assert main(["params", "--log-file", str(log), "-q"]) == 0
    assert log.read_text() == ""                                 # replaced, not appended to


def test_output_folder_that_does_not_exist(sim, tmp_path, capsys):
    """Created after the checks, and said so; a refused run creates nothing."""
    missing = tmp_path / "no" / "such"
    assert main(["run", *map(str, sim.files), str(tmp_path / "nothing_flt.fits"), "-o", str(missing / "m"),
                 *FAST]) == 2
    assert capsys.readouterr().err.count("\n") == 1 and not (tmp_path / "no").exists()
    assert main(["run", *map(str, sim.files), "-o", str(missing / "m"), *FAST]) == 0
    assert f"dazzle: created the output folder {missing}\n" in capsys.readouterr().err
    assert (missing / "m_drz.fits").is_file()
    assert main(["run", *map(str, sim.files), "-o", str(missing / "m2"), *FAST]) == 0     # existing: no note
    assert "created" not in capsys.readouterr().err
