"""Never lose or corrupt data: a battery of bad inputs and faults, end to end through the CLI.

Every case runs ``python -m dazzle ...`` in a subprocess, in its own folder holding copies of
three tiny simulated exposures, and asserts

* the exit status (2 for a user's mistake, 1 for a crash, 130/143 for Ctrl-C/SIGTERM);
* one line of error on stderr naming the file (and extension) at fault, no traceback, and no
  text of a file that is not a FITS input (``--config`` of a secret file);
* the SHA-256 of every input unchanged, and for a refused run no file written at all;
* no temporary file and no lock left behind.

The fault cases kill the run (``kill -9``, through the test-only ``DAZZLE_TEST_FAULT`` hook of
:mod:`dazzle.pipeline`) at each step boundary -- static mask, sky, single drizzle, median,
blot/driz_cr, final drizzle, the final commit -- or send it SIGTERM, SIGINT or an exception;
then ``--set resume=True`` must give products bit-identical (data and headers but the write
time) to an uninterrupted run.  All cases run at once, three processes at a time, in one
module fixture.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

import dazzle
from dazzle.products import file_checksum
from helpers import copy_files
from test_pipeline import break_input

INPUTS = ["dzsim01_flt.fits", "dzsim02_flt.fits", "dzsim03_flt.fits"]
GLOB = "dzsim0*_flt.fits"
SECRET = "root:$6$S3CRETHASHxyz:19000:0:99999:7:::"
_ENV = {"PYTHONPATH": os.pathsep.join([str(Path(dazzle.__file__).resolve().parent.parent),
                                       os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def dz(args, cwd, env=None, timeout=300, wrapper=None):
    """``python -m dazzle *args`` in ``cwd``; ``wrapper``: Python code run first, in the same
    process (resource limits)."""
    e = dict(os.environ, **_ENV, **(env or {}))
    cmd = [sys.executable, "-m", "dazzle", *map(str, args)]
    if wrapper:
        cmd = [sys.executable, "-c", wrapper + "\nimport runpy, sys\nsys.argv = ['dazzle'] + sys.argv[1:]\n"
               "runpy.run_module('dazzle', run_name='__main__')", *map(str, args)]
    return subprocess.run(cmd, cwd=cwd, env=e, capture_output=True, text=True, timeout=timeout)


def snapshot(d) -> dict:
    """SHA-256 of every file under ``d`` (relative path -> digest)."""
    return {str(p.relative_to(d)): file_checksum(p, "sha256") for p in Path(d).rglob("*") if p.is_file()}


def leftovers(d) -> list:
    """Temporary and lock files under ``d`` (but the planted one of another product)."""
    return sorted(str(p.relative_to(d)) for p in Path(d).rglob("*")
                  if p.name.endswith((".tmp", ".dzlock")) and "someone_else" not in p.name)


def edit_sci(path, **cards):
    with fits.open(path, mode="update") as h:
        hdr = h["SCI", 1].header
        for k, v in cards.items():
            hdr[k] = v(hdr) if callable(v) else v


def product_digests(out) -> dict:
    """Every FITS product in ``out``: per HDU, the data's SHA-256 and the header but DATE."""
    import hashlib

    got = {}
    for p in sorted(Path(out).glob("*.fits")):
        with fits.open(p) as h:
            got[p.name] = [(hashlib.sha256(np.ascontiguousarray(x.data).tobytes()).hexdigest()
                            if x.data is not None else None,
                            [(c.keyword, str(c.value)) for c in x.header.cards if c.keyword != "DATE"])
                           for x in h]
    return got


# ---------------------------------------------------------------------------------------------
# the cases
# ---------------------------------------------------------------------------------------------

@dataclass
class Case:
    """One run of the battery.  ``setup(d)`` prepares the folder ``d`` (which holds copies of
    the three inputs) and returns the command's arguments."""

    name: str
    setup: object
    rc: int = 2
    match: str = ""                  # regex the error line must match
    env: dict = field(default_factory=dict)
    refused: bool = True             # nothing may be written (or removed) at all
    fault: bool = False              # then resumed and compared with the reference run
    wrapper: str | None = None


def _args(*extra, out="out", more=()):
    return ["run", *INPUTS, *more, "-o", out, "-q", *extra]


def _touch_secret(d, name="secret.cfg"):
    (d / name).write_text(SECRET + "\n")
    return d / name


#: set by the ``battery`` fixture: the future of the reference run, and its folder
_SHARED: dict = {}


def _run_first(d):
    """An earlier, complete run whose products lie beside the inputs: the reference run's."""
    assert _SHARED["reference"].result().returncode == 0
    for p in _SHARED["reference_dir"].iterdir():
        if p.name not in INPUTS:
            shutil.copy(p, d / p.name)


def _product_as_input(d):
    _run_first(d)
    return ["run", INPUTS[0], INPUTS[1], "dzsim01_single_sci.fits", "-o", "out", "-q",
            "--set", "products_as_input=True"]


def _input_named_like(d, name):
    shutil.move(d / INPUTS[1], d / name)
    return ["run", INPUTS[0], name, INPUTS[2], "-o", "out", "-q"]


def _degenerate(d, how):
    p = d / INPUTS[1]
    if how == "singular":
        edit_sci(p, CD1_2=lambda h: h["CD1_1"], CD2_2=lambda h: h["CD2_1"])
    elif how == "zero":
        edit_sci(p, CD1_1=0.0, CD1_2=0.0, CD2_1=0.0, CD2_2=0.0)
    elif how == "opposite":
        edit_sci(p, CRVAL1=lambda h: (h["CRVAL1"] + 180.0) % 360.0, CRVAL2=lambda h: -h["CRVAL2"])
    else:
        edit_sci(p, CRVAL2=lambda h: h["CRVAL2"] + float(how))
    return _args()


def _break(d, how):
    break_input(d / INPUTS[1], how)
    return _args()


def _truncate(d, size):
    with open(d / INPUTS[1], "r+b") as f:
        f.truncate(size)
    return _args()


def _readonly(d):
    if os.geteuid() == 0:        # root writes through permission bits: /sys is not writable
        assert not os.access("/sys", os.W_OK) or not _creatable("/sys")
        return _args(out="/sys/dazzle_out")
    (d / "ro").mkdir()
    os.chmod(d / "ro", 0o555)
    return _args(out="ro/out")


def _creatable(folder):
    try:
        fd = os.open(os.path.join(folder, ".dazzle_probe"), os.O_CREAT | os.O_WRONLY)
    except OSError:
        return False
    os.close(fd)
    os.remove(os.path.join(folder, ".dazzle_probe"))
    return True


def _profile(d):
    (d / "evil.yaml").write_text("profiles:\n  evil:\n    class: subprocess.Popen\n"
                                 "    options: {args: \"touch PWNED\", shell: true}\n")
    return _args("--profile", "evil.yaml", "--scheduler", "profile:evil")


def _stale(d):
    out = d / "out"
    out.mkdir()
    for name in (".out_drz.fits.0123456789ab.tmp", ".dzsim01_single_sci.fits.abcdef012345.tmp",
                 ".out_med.fits.fedcba987654.tmp", "out_run.json.4242.tmp"):
        (out / name).write_bytes(b"\0" * 100000)
    (out / ".someone_else.fits.0123456789ab.tmp").write_bytes(b"x")   # not this run's: kept
    (out / ".out.dzlock").write_text("999999\n")                      # a killed run's lock
    return _args(out="out/out")


def _unreadable_config(d):
    p = _touch_secret(d, "locked.cfg")
    os.chmod(p, 0)
    return _args("--config", p)


CASES = [
    # -- the bugs of issue 14 ----------------------------------------------------------------
    Case("input_named_like_the_median", lambda d: _input_named_like(d, "out_med.fits"),
         match=r"out_med\.fits: is an input, and the run would write its product out_med\.fits over it"),
    Case("input_named_like_a_crmask", lambda d: _input_named_like(d, "dzsim01_sci1_crmask.fits"),
         match=r"dzsim01_sci1_crmask\.fits: is an input, and the run would write its product"),
    Case("glob_rerun_over_earlier_products", lambda d: (_run_first(d), ["run", "dzsim0*.fits", "-o", "out2", "-q"])[1],
         match=r"dzsim01_s\w+\.fits: is a dazzle product \(DZPRODCT = '\w+'"),
    Case("product_as_input_would_be_overwritten", _product_as_input,
         match=r"dzsim01_single_sci\.fits: is an input, and the run would write its product "
               r"dzsim01_single_sci\.fits over it"),
    Case("singular_cd", lambda d: _degenerate(d, "singular"),
         match=r"dzsim02_flt\.fits\[SCI,1\]: degenerate WCS: the CD matrix is singular"),
    Case("all_zero_cd", lambda d: _degenerate(d, "zero"),
         match=r"dzsim02_flt\.fits\[SCI,1\]: degenerate WCS: the CD matrix is all zero"),
    Case("crval_off_by_1_deg", lambda d: _degenerate(d, "1.0"),
         match=r"dzsim02_flt\.fits\[SCI,1\]: footprint is 1 deg from the nearest other input"),
    Case("crval_off_by_3_deg", lambda d: _degenerate(d, "3.0"),
         match=r"dzsim02_flt\.fits\[SCI,1\]: footprint is 3 deg from the nearest other input"),
    Case("chip_on_the_opposite_side_of_the_sky", lambda d: _degenerate(d, "opposite"),
         match=r"dzsim02_flt\.fits\[SCI,1\]: footprint is 180 deg from"),
    Case("frame_over_max_frame_pixels", lambda d: _args("--set", "max_frame_pixels=1000"),
         match=r"dzsim0\d_flt\.fits\[SCI,1\]: stretches the single-drizzle output frame to \d+ x \d+ "
               r"pixels .* > max_frame_pixels = 1000"),
    Case("frame_set_too_large_by_parameters", lambda d: _args("--set", "final_wcs=True", "--set",
                                                               "final_scale=1e-6"),
         match=r"the final output frame set by final_outnx/final_outny/final_scale would be \d+ x \d+ "
               r"pixels .* > max_frame_pixels = 4000000000"),
    Case("config_missing", lambda d: _args("--config", "nope.cfg"),
         match=r"nope\.cfg: cannot read the configuration file: No such file or directory"),
    Case("config_is_a_folder", lambda d: (d / "cfgdir").mkdir() or _args("--config", "cfgdir"),
         match=r"cfgdir: cannot read the configuration file: is a folder"),
    Case("config_unreadable", _unreadable_config, match=r"locked\.cfg"),
    Case("config_is_a_secret_file", lambda d: _args("--config", _touch_secret(d)),
         match=r"secret\.cfg, line 1: expected 'name = value' \(not a configuration file\?\)$"),
    Case("config_is_binary", lambda d: (d / "bin.cfg").write_bytes(b"\x8b\xff\x00\x93" * 50) and
         _args("--config", "bin.cfg"), match=r"bin\.cfg: not a configuration file \(not UTF-8 text\)"),
    Case("at_file_is_a_secret_file", lambda d: ["run", f"@{_touch_secret(d, 'list.lst')}", "-o", "out", "-q"],
         match=r"list\.lst: line 1: not a FITS file name"),
    Case("output_names_an_input", lambda d: _args(out=INPUTS[0]),
         match=r"dzsim01_flt\.fits: output name 'dzsim01_flt\.fits' is an input file"),
    Case("report_names_an_input", lambda d: _args("--report", INPUTS[2]),
         match=r"dzsim03_flt\.fits: is an input, and the run would write its product dzsim03_flt\.fits"),
    Case("report_over_a_product", lambda d: _run_first(d) or _args("--report", "out_med.fits"),
         match=r"out_med\.fits: exists and is not an HTML report; the report would replace it"),
    Case("report_command_over_an_input", lambda d: ["report", ".", "-o", INPUTS[0]],
         match=r"dzsim01_flt\.fits: exists and is not an HTML report"),
    Case("read_only_output_folder", _readonly, match=r"cannot (write in|create) the output folder \("),
    Case("profile_class_is_not_a_cluster", _profile,
         match=r"cluster class subprocess\.Popen: a profile may name only dask_jobqueue and distributed"),
    Case("symlinked_duplicate", lambda d: os.symlink(INPUTS[0], d / "dzsim04_flt.fits") or
         _args(more=["dzsim04_flt.fits"]), match=r"dzsim04_flt\.fits: is the same file as .*dzsim01_flt\.fits"),
    Case("hard_linked_duplicate", lambda d: os.link(d / INPUTS[0], d / "dzsim04_flt.fits") or
         _args(more=["dzsim04_flt.fits"]), match=r"dzsim04_flt\.fits: is the same file as .*dzsim01_flt\.fits"),
    Case("copied_duplicate", lambda d: shutil.copy(d / INPUTS[2], d / "dzsim05_flt.fits") and
         _args(more=["dzsim05_flt.fits"]),
         match=r"dzsim05_flt\.fits: has the same content as .*dzsim03_flt\.fits"),
    Case("stale_temporary_files", _stale, rc=0, refused=False,
         match=r"removed 4 temporary file\(s\) left by an interrupted run"),
    Case("disk_full", lambda d: _args(), refused=False, match=r"File too large",
         wrapper="import resource, signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
                 "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))"),
    # -- the README's "Errors" cases ----------------------------------------------------------
    Case("missing_sci", lambda d: _break(d, "no_sci"), match=r"dzsim02_flt\.fits: no SCI extension"),
    Case("no_wcs", lambda d: _break(d, "no_wcs"), match=r"dzsim02_flt\.fits\[SCI,1\]: no celestial WCS"),
    Case("exptime_zero", lambda d: _break(d, "zero_exptime"), match=r"dzsim02_flt\.fits\[SCI,1\]: EXPTIME = 0\.0"),
    Case("sci_dq_shape_mismatch", lambda d: _break(d, "dq_shape"),
         match=r"dzsim02_flt\.fits\[DQ,1\]: shape \(61, 64\) differs from SCI,1 shape \(64, 64\)"),
    Case("chip_misses_the_output_frame", lambda d: _args("--set", "final_wcs=True", "--set", "final_ra=10",
                                                         "--set", "final_dec=10", "--set", "final_outnx=50",
                                                         "--set", "final_outny=50", "--set", "driz_separate=False",
                                                         "--set", "median=False", "--set", "blot=False",
                                                         "--set", "driz_cr=False"),
         match=r"dzsim01_flt\.fits\[SCI,1\]: does not overlap the final output frame"),
    Case("refimage_without_that_extension", lambda d: _args("--set", "final_wcs=True", "--set",
                                                            f"final_refimage={INPUTS[0]}[sci,5]"),
         match=r"final_refimage='dzsim01_flt\.fits\[sci,5\]': cannot take the final output frame from it"),
    Case("truncated_file", lambda d: _truncate(d, 9000), match=r"dzsim02_flt\.fits(\[\w+,1\])?: .*truncated"),
    Case("empty_file", lambda d: _truncate(d, 0), match=r"dzsim02_flt\.fits: (empty|cannot read)"),
    Case("not_fits", lambda d: (d / INPUTS[1]).write_text(SECRET) and _args(),
         match=r"dzsim02_flt\.fits: cannot read as FITS"),
    Case("missing_input", lambda d: _args(more=["dzsim09_flt.fits"]), match=r"dzsim09_flt\.fits: no such file"),
    Case("glob_matches_nothing", lambda d: ["run", "nothing*_flt.fits", "-o", "out", "-q"],
         match=r"nothing\*_flt\.fits: no files match this pattern"),
    Case("input_is_a_folder", lambda d: (d / "dir_flt.fits").mkdir() or _args(more=["dir_flt.fits"]),
         match=r"dir_flt\.fits: is a directory"),
    Case("input_is_a_device", lambda d: _args(more=["/dev/zero"]),
         match=r"/dev/zero: not a regular file \(a device, pipe or socket\)"),
    Case("input_is_a_pipe", lambda d: os.mkfifo(d / "pipe_flt.fits") or _args(more=["pipe_flt.fits"]),
         match=r"pipe_flt\.fits: not a regular file"),
    Case("config_is_a_device", lambda d: _args("--config", "/dev/zero"),
         match=r"/dev/zero: cannot read the configuration file: not a regular file"),
    Case("a_folder_has_a_product_name", lambda d: (d / "out_med.fits").mkdir() or _args(),
         match=r"out_med\.fits: a folder has the name of a product of this run"),
    Case("output_names_a_folder", lambda d: _args(out="sub/"),
         match=r"sub/: output names a folder; give a root name in it, e.g. sub/mosaic"),
    Case("unknown_parameter", lambda d: _args("--set", "final_pixfrak=0.5"),
         match=r"final_pixfrak.*did you mean 'final_pixfrac'"),
    Case("bad_parameter_value", lambda d: _args("--set", "final_kernel=boxcar"), match=r"final_kernel"),
    Case("no_inputs", lambda d: ["run", "-o", "out"], match=r"required: inputs"),
    Case("bad_worker_count", lambda d: _args("--workers", "0"), match=r"--workers: 0 must be >= 1"),
]

#: fault cases: a run ended at a step boundary (the first task of that step), then resumed
STEP_BOUNDARIES = {"static": "static-sigs", "sky": "sky-stats", "single": "single-chip",
                   "median": "median-tile", "blot_cr": "blot-cr", "final": "final-tile",
                   "final_commit": "final-commit"}
FAULTS = [Case(f"kill9_at_{step}", lambda d: _args(), rc=-9, env={"DAZZLE_TEST_FAULT": f"KILL:{prefix}"},
               refused=False, fault=True) for step, prefix in STEP_BOUNDARIES.items()]
FAULTS += [
    Case("sigterm_at_median", lambda d: _args(), rc=143, env={"DAZZLE_TEST_FAULT": "TERM:median-tile"},
         match=r"^dazzle: terminated \(SIGTERM\): no partial product", refused=False, fault=True),
    Case("ctrl_c_at_blot_cr", lambda d: _args(), rc=130, env={"DAZZLE_TEST_FAULT": "INT:blot-cr"},
         match=r"^dazzle: interrupted: no partial product", refused=False, fault=True),
    Case("crash_at_final", lambda d: _args(), rc=1, env={"DAZZLE_TEST_FAULT": "RAISE:final-tile"},
         match=r"^dazzle: internal error: RuntimeError: DAZZLE_TEST_FAULT at task final-tile", refused=False,
         fault=True),
]


def _concurrent(root):
    """Run A holds its lock (paused in the median step); B1 (same output, other parameters) and
    B2 (other output, same exposures) must be refused; A then finishes as if alone."""
    d = root / "concurrent"
    release = d / "release"
    env = dict(os.environ, **_ENV, DAZZLE_TEST_FAULT="WAIT:median-tile", DAZZLE_TEST_FAULT_FILE=str(release))
    a = subprocess.Popen([sys.executable, "-m", "dazzle", *_args()], cwd=d, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (d / ".out.dzlock").exists() and a.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        b1 = dz(_args("--set", "driz_cr_snr=5 4"), d)
        b2 = dz(_args(out="other"), d)
    finally:
        release.touch()
        out, err = a.communicate(timeout=300)
    return {"a": (a.returncode, err, a.pid), "b1": b1, "b2": b2}


def _run_case(case, root):
    d = root / case.name
    args = case.setup(d)
    before = snapshot(d)
    r = dz(args, d, env=case.env, wrapper=case.wrapper)
    res = {"args": args, "before": before, "first": r, "after": snapshot(d), "leftovers": leftovers(d)}
    if case.fault:
        res["temps_after_fault"] = [p for p in leftovers(d) if p.endswith(".tmp")]
        res["resumed"] = dz(_args("--set", "resume=True"), d)
        res["leftovers"] = leftovers(d)
        res["products"] = product_digests(d)
    return res


@pytest.fixture(scope="module")
def battery(simulated, tmp_path_factory):
    """Every case and fault at once (3 processes at a time), plus the uninterrupted reference."""
    root = tmp_path_factory.mktemp("safety")
    sim = simulated(n_exposures=3, chips=1, size=64, seed=11)
    for name in [c.name for c in CASES + FAULTS] + ["reference", "concurrent"]:
        copy_files(sim.files, root / name)
    jobs = {c.name: c for c in CASES + FAULTS}
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        ref = pool.submit(dz, _args(), root / "reference")
        _SHARED.update(reference=ref, reference_dir=root / "reference")
        conc = pool.submit(_concurrent, root)
        futures = {name: pool.submit(_run_case, c, root) for name, c in jobs.items()}
        results = {name: f.result() for name, f in futures.items()}
        assert ref.result().returncode == 0, ref.result().stderr
        results["concurrent"] = conc.result()
    results["reference"] = product_digests(root / "reference")
    results["root"] = root
    return results


def _assert_one_line(stderr, match):
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert re.search(match, lines[0]), lines[0]
    assert SECRET.split(":")[1] not in stderr and "S3CRET" not in stderr
    return lines[0]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_or_fault_keeps_every_byte(battery, case):
    res = battery[case.name]
    r = res["first"]
    assert r.returncode == case.rc, (r.returncode, r.stderr)
    if case.rc == 2:
        line = _assert_one_line(r.stderr, r"^dazzle: error: ")
        assert re.search(case.match, line), line
    else:
        assert "Traceback" not in r.stderr and re.search(case.match, r.stderr), r.stderr
    before, after = res["before"], res["after"]
    if case.refused:
        assert after == before, "a refused run wrote, changed or removed files"
    for name in (n for n in before if n.endswith(".fits") and "/" not in n and n.startswith("dzsim0")):
        if name in after:
            assert after[name] == before[name], f"input {name} changed"
    assert res["leftovers"] == [], res["leftovers"]
    if case.name == "profile_class_is_not_a_cluster":
        assert not (battery["root"] / case.name / "PWNED").exists()
    if case.name in ("config_unreadable", "config_is_a_secret_file", "at_file_is_a_secret_file", "not_fits"):
        assert "S3CRET" not in line


def test_stale_temporary_files_are_removed_and_reported(battery):
    d = battery["root"] / "stale_temporary_files" / "out"
    names = sorted(os.listdir(d))
    assert ".someone_else.fits.0123456789ab.tmp" in names          # another product's: kept
    assert [n for n in names if n.endswith((".tmp", ".dzlock")) and "someone_else" not in n] == []
    assert "out_drz.fits" in names and "dzsim01_single_sci.fits" in names


def test_disk_full_leaves_no_partial_product(battery):
    res = battery["disk_full"]
    line = _assert_one_line(res["first"].stderr, r"^dazzle: error: .*File too large")
    assert re.search(r"dazzle: error: (\S+/)?out_drz\.fits: File too large$", line), line
    made = {n for n in res["after"] if n not in res["before"]}
    assert not any(n.endswith(("_drz.fits", "_med.fits")) for n in made), made


def test_concurrent_runs_do_not_mix(battery):
    """Issue 14: two runs into the same output left a mix of both runs' CR masks."""
    res = battery["concurrent"]
    a_rc, a_err, a_pid = res["a"]
    assert a_rc == 0, a_err
    for b, root in ((res["b1"], "out"), (res["b2"], "dzsim01")):
        assert b.returncode == 2, b.stderr
        _assert_one_line(b.stderr, rf"^dazzle: error: .*: another dazzle run \(pid {a_pid}\) is writing the "
                                   rf"products of '{root}' here; wait for it to finish or choose another output")
    got = product_digests(battery["root"] / "concurrent")
    assert got == battery["reference"]
    assert leftovers(battery["root"] / "concurrent") == []


@pytest.mark.parametrize("case", FAULTS, ids=[c.name for c in FAULTS])
def test_interrupted_run_resumes_to_the_same_bits(battery, case):
    res = battery[case.name]
    r = res["first"]
    assert r.returncode == case.rc, (r.returncode, r.stderr)
    if case.rc > 0:
        _assert_one_line(r.stderr, case.match)
        assert res["temps_after_fault"] == [], "temporary files left on an exit Python saw"
    for name, digest in res["before"].items():
        assert res["after"].get(name) == digest, f"input {name} changed"
    resumed = res["resumed"]
    assert resumed.returncode == 0, resumed.stderr
    n = len(res["temps_after_fault"])
    if n:
        assert f"removed {n} temporary file(s) left by an interrupted run" in resumed.stderr
    else:
        assert "temporary file" not in resumed.stderr
    assert res["leftovers"] == []
    assert res["products"] == battery["reference"]
    assert set(res["products"]) >= {"out_drz.fits", "out_med.fits", "dzsim02_sci1_crmask.fits",
                                    "dzsim03_single_wht.fits"}


def test_kill9_leaves_the_temporary_files_the_resumed_run_removes(battery):
    # kill -9 before the median and final products are complete leaves their canvases
    assert any(".out_drz.fits." in t for t in battery["kill9_at_final_commit"]["temps_after_fault"])
    assert any(".out_med.fits." in t for t in battery["kill9_at_static"]["temps_after_fault"])


# ---------------------------------------------------------------------------------------------
# the pieces, in process
# ---------------------------------------------------------------------------------------------

def test_every_product_carries_its_kind(battery):
    kinds = {"out_drz.fits": "drz", "out_med.fits": "median", "dzsim02_single_sci.fits": "single_sci",
             "dzsim02_single_wht.fits": "single_wht", "dzsim02_sci1_blt.fits": "blot",
             "dzsim02_sci1_crmask.fits": "crmask"}
    ref = battery["root"] / "reference"
    for p in ref.glob("*.fits"):
        expected = kinds.get(p.name.replace("dzsim01", "dzsim02").replace("dzsim03", "dzsim02"))
        assert fits.getval(p, "DZPRODCT") == expected if expected else p.name in INPUTS, p.name


def test_profile_classes_are_limited_to_cluster_classes(monkeypatch):
    from dazzle import cluster
    from dazzle.params import ParameterError

    assert cluster._import("distributed.LocalCluster").__name__ == "LocalCluster"
    with pytest.raises(ParameterError, match="not a cluster class"):
        cluster._import("distributed.Client")
    with pytest.raises(ParameterError, match="only dask_jobqueue and distributed"):
        cluster._import("subprocess.Popen")
    with pytest.raises(ParameterError, match="only dask_jobqueue and distributed"):
        cluster._import("os.system")
    monkeypatch.setenv("DAZZLE_CLUSTER_CLASSES", "collections.OrderedDict, other.Cls")
    assert cluster._import("collections.OrderedDict").__name__ == "OrderedDict"   # the opt-in


def test_sigterm_becomes_an_exception_during_a_run_only():
    import signal

    from dazzle.products import Terminated, terminate_as_exception

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as info:
        with terminate_as_exception():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    assert info.value.signum == signal.SIGTERM and str(info.value) == "terminated by SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before


def test_stale_temporary_names(tmp_path):
    from dazzle.products import remove_stale_temps

    names = [".a_drz.fits.0123456789ab.tmp", "a_run.json.77.tmp", ".a_drz.fits.0123456789ab.tmp.keep",
             ".b_drz.fits.0123456789ab.tmp", "a_drz.fits", ".a_drz.fits.xyz.tmp"]
    for n in names:
        (tmp_path / n).write_text("x")
    removed = remove_stale_temps(tmp_path, ["a_drz.fits", "a_run.json"])
    assert [os.path.basename(p) for p in removed] == [".a_drz.fits.0123456789ab.tmp", "a_run.json.77.tmp"]
    assert sorted(os.listdir(tmp_path)) == sorted(names[2:])
