"""What a command imports before it works (issue 11): ``dazzle --help`` and ``dazzle params``
start without astropy, Numba or dask, and ``distributed`` is imported only by distributed
schedulers (a local run used to import it -- about 1 s -- for dask to look for a Client).

Each check runs in a fresh interpreter: this test process has imported everything already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("distributed", "dask", "numba", "astropy")


def _modules_after(code: str) -> dict:
    """Which of HEAVY ``code`` leaves imported, run in a fresh interpreter."""
    script = (code + "\nimport sys, json\n"
              f"print(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    got = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         timeout=120, cwd=REPO)
    assert got.returncode == 0, got.stderr[-2000:]
    return json.loads(got.stdout.strip().splitlines()[-1])


def test_importing_the_cli_imports_nothing_heavy():
    assert _modules_after("import dazzle.cli") == {m: False for m in HEAVY}


def test_dazzle_params_and_help_need_no_numba_astropy_or_dask():
    code = ("import contextlib, io\nfrom dazzle.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    assert main(['params']) == 0\n"
            "assert 'final_pixfrac' in out.getvalue()\n"
            "try:\n"
            "    with contextlib.redirect_stdout(io.StringIO()):\n"
            "        main(['--help'])\n"
            "except SystemExit as e:\n"
            "    assert e.code == 0\n")
    assert _modules_after(code) == {m: False for m in HEAVY}


def test_a_bad_input_is_still_one_line_without_astropy_loaded_first(tmp_path):
    """The command line tells a user error from a bug without importing dazzle.io up front."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    missing = tmp_path / "nothere_flt.fits"
    got = subprocess.run([sys.executable, "-m", "dazzle", "run", str(missing), "-o", str(tmp_path / "o")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert got.returncode == 2
    assert got.stderr.strip().splitlines() == [f"dazzle: error: {missing}: no such file"]
    from dazzle.cli import _user_error
    from dazzle.io import InputError
    from dazzle.params import ParameterError

    assert _user_error(InputError("x")) and _user_error(ParameterError("y"))
    assert not _user_error(ValueError("a bug")) and not _user_error(KeyError("k"))


def test_local_schedulers_do_not_import_distributed():
    code = ("import dask\nfrom dazzle import cluster\n"
            "for s in ('threads', 'synchronous'):\n"
            "    assert cluster.compute([dask.delayed(sum)([1, 2])], s, progress=True) == [3]\n"
            "import sys\nassert 'distributed' not in sys.modules\n")
    got = _modules_after(code)
    assert got["dask"] and not got["distributed"]


def test_a_command_line_run_does_not_import_scipy_linalg_for_numbas_blas_probe(tmp_path):
    """``dazzle run`` loads Numba's array functions with its BLAS probe (an import of
    scipy.linalg: 0.13 s wall, 0.22 s CPU here) and its cffi typing (cffi and its C parser:
    28 ms) answered "none"; Numba still compiles ``np.dot`` with SciPy's BLAS afterwards, cffi
    still imports, and a whole run completes without scipy.linalg or cffi (its products' bits
    are held by tests/test_golden.py), and without astropy.nddata and the scipy.sparse it
    imports (0.13 s: the DQ bit functions come from astropy's bitmask file alone,
    dazzle.params._bitmask)."""
    code = (
        "import sys\nfrom dazzle.cli import _numba_without_probes\n"
        "_numba_without_probes()\n"
        "import numba.np.arraymath as am\n"
        "assert am._HAVE_BLAS is False and 'scipy.linalg' not in sys.modules\n"
        "assert 'scipy.linalg.cython_blas' not in sys.modules\n"
        "from numba.core.typing import cffi_utils\n"
        "assert cffi_utils.SUPPORTED is False and 'cffi' not in sys.modules\n"
        "import numba, numpy as np\n"
        "a = np.arange(6.0).reshape(2, 3)\n"
        "assert (numba.njit(lambda x: np.dot(x, x.T))(a) == a @ a.T).all()\n"
        "assert 'scipy.linalg.cython_blas' in sys.modules\n"
        "import importlib.util\n"
        "if importlib.util.find_spec('cffi'):\n    import cffi\n    assert cffi.FFI() is not None\n")
    _modules_after(code)
    from dazzle.simulate import simulate

    files = simulate(tmp_path / "in", n_exposures=2, size=128, seed=3).files
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    script = ("import sys, runpy\nsys.argv = ['dazzle', 'run', *sys.argv[1:]]\n"
              "try:\n    runpy.run_module('dazzle', run_name='__main__')\n"
              "except SystemExit as e:\n    assert not e.code, e.code\n"
              "assert 'scipy.linalg' not in sys.modules, 'scipy.linalg imported'\n"
              "assert 'astropy.nddata' not in sys.modules, 'astropy.nddata imported'\n"
              "assert 'scipy.sparse' not in sys.modules, 'scipy.sparse imported'\n"
              "assert 'cffi' not in sys.modules, 'cffi imported'\n")
    got = subprocess.run([sys.executable, "-c", script, *map(str, files), "-o", str(tmp_path / "out" / "m"),
                          "--quiet"], capture_output=True, text=True, env=env, timeout=300)
    assert got.returncode == 0, got.stderr[-2000:]
    assert (tmp_path / "out" / "m_drz.fits").is_file()


def test_the_program_freezes_the_collectors_objects_and_main_does_not(monkeypatch, tmp_path):
    """``dazzle`` (cli.command) moves the long-lived objects into the collector's permanent
    generation after its imports and at its end (0.38 s of a 2.8 s run on the small
    benchmark set, alternating runs); a program calling cli.main keeps its collector as it was."""
    import contextlib
    import gc
    import io

    from dazzle import cli

    calls = []
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(["params"]) == 0
    assert calls == [] and cli._PROGRAM is False
    missing = str(tmp_path / "nothere_flt.fits")
    with contextlib.redirect_stderr(io.StringIO()):
        assert cli.main(["run", missing, "-o", str(tmp_path / "o")]) == 2   # after the imports
    assert calls == []
    monkeypatch.setattr(cli, "_PROGRAM", False)
    monkeypatch.setattr(sys, "argv", ["dazzle", "run", missing, "-o", str(tmp_path / "o")])
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert cli.command() == 2
    assert "no such file" in err.getvalue()
    assert calls == ["freeze", "freeze"] and cli._PROGRAM is True
    from importlib.metadata import entry_points

    assert [e.value for e in entry_points(group="console_scripts") if e.name == "dazzle"] == ["dazzle.cli:command"]


@pytest.mark.parametrize("preset", [None, "2"])
def test_the_program_starts_numpy_with_one_openblas_thread_unless_told(preset):
    """The ``dazzle`` program (cli.command) sets OPENBLAS_NUM_THREADS=1 before numpy loads:
    OpenBLAS's threads (one per core) spin after the WCS code's small matrix products and
    take CPU from the graph's workers (0.1 s per WFC run in a profile).  A value in the
    environment is kept; cli.main, for callers of their own, leaves the environment alone.
    Seen from the process: numpy started no OpenBLAS thread (2 cores or more)."""
    code = ("import os, sys\nfrom dazzle import cli\n"
            "assert 'numpy' not in sys.modules\n"
            "sys.argv = ['dazzle', 'params']\ncli.command()\nimport numpy\n"
            "print('VALUE', os.environ['OPENBLAS_NUM_THREADS'], 'THREADS', len(os.listdir('/proc/self/task')))\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if preset is not None:
        env["OPENBLAS_NUM_THREADS"] = preset
    got = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert got.returncode == 0, got.stderr
    value, threads = got.stdout.split("VALUE ")[1].split(" THREADS ")
    assert value == (preset or "1")
    if (os.cpu_count() or 1) > 1 and sys.platform.startswith("linux"):
        assert int(threads) == (1 if preset is None else 2)


def test_cli_main_leaves_openblas_threads_alone(monkeypatch, capsys):
    """cli.main (a caller's own program) does not set OPENBLAS_NUM_THREADS; only the
    ``dazzle`` program does (above)."""
    from dazzle import cli

    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    assert cli.main(["params"]) == 0 and "OPENBLAS_NUM_THREADS" not in os.environ
    assert "final_pixfrac" in capsys.readouterr().out
