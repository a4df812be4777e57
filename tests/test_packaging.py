"""The wheel: built in an isolated environment from a copy of the repository, installed in a
fresh virtual environment, and run from there (``dazzle --version``, the shipped cluster
profiles and workflows, ``dazzle demo``).

Cost: about 55 s of CPU time (94 s of wall time measured on 2 busy cores): about 10 s for the
build (pip fetches setuptools>=77 into its isolated build environment: from pip's cache, or the
package index; without either the test skips, and under CI fails), the rest the demo, whose
Numba kernels compile afresh in the new environment.  The fresh
environment gets the wheel with ``--no-deps``; numpy, astropy, dask, distributed and numba come
from this interpreter's site-packages through a ``.pth`` file (installing them from the index
would download about 150 MB), and the test checks that they are the wheel's declared
requirements.
"""

from __future__ import annotations

import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

from astrodrizzle_oracle import skip_or_fail

REPO = Path(__file__).resolve().parent.parent
SOURCES = ["dazzle", "deploy", "workflows", "pyproject.toml", "setup.py", "README.md", "LICENSE"]


def _clean_env(**extra):
    """The environment without this checkout on PYTHONPATH (the installed wheel must be used)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        p = REPO / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(p, src / name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp / "dist"), str(src)],
                          capture_output=True, text=True, env=_clean_env(), timeout=600)
    if proc.returncode != 0:
        if "satisfies the requirement setuptools" in proc.stdout + proc.stderr:
            skip_or_fail("the isolated build could not fetch setuptools>=77 (no network, no pip cache)")
        pytest.fail(f"pip wheel failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    (whl,) = (tmp / "dist").glob("*.whl")
    return whl


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """A fresh venv with the wheel; the dependencies from this interpreter (see the module's doc)."""
    root = tmp_path_factory.mktemp("venv") / "v"
    venv.create(root, with_pip=False)
    py = root / "bin" / "python"
    purelib = Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                           text=True).strip())
    ours = [p for p in {sysconfig.get_path("purelib"), sysconfig.get_path("platlib"), *site.getsitepackages()}
            if os.path.isdir(p)]
    (purelib / "zz_dazzle_test_deps.pth").write_text("\n".join(sorted(ours)) + "\n")
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index",
                           str(wheel)], capture_output=True, text=True, env=_clean_env(), timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return root, purelib


def _run(root, *args, cwd, timeout=600):
    return subprocess.run([str(root / "bin" / "dazzle"), *args], capture_output=True, text=True, cwd=cwd,
                          env=_clean_env(), timeout=timeout)


def test_the_wheel_ships_the_package_its_data_and_the_declared_metadata(wheel):
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        (md,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = z.read(md).decode()
    for f in ["dazzle/__init__.py", "dazzle/cli.py", "dazzle/kernels/drizzle.py", "dazzle/steps/median.py",
              "dazzle/data/j8bt06nyq_sip_flt.fits", "dazzle/deploy/profiles.yaml", "dazzle/deploy/slurm-batch.sh",
              "dazzle/workflows/demo.cfg", "dazzle/workflows/README.md"]:
        assert f in names, f
    shipped = {p.relative_to(REPO).as_posix() for d in ("deploy", "workflows") for p in (REPO / d).iterdir()}
    assert {f"dazzle/{s}" for s in shipped} <= names          # every shipped file, none forgotten
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)
    assert "Name: dazzle-drizzle" in metadata
    from dazzle import __version__

    assert f"Version: {__version__}\n" in metadata
    assert "License-Expression: BSD-3-Clause" in metadata
    assert f"Requires-Python: {meta['project']['requires-python']}" in metadata
    for dep in meta["project"]["dependencies"]:
        assert f"Requires-Dist: {dep}" in metadata, dep
    assert "Classifier: Topic :: Scientific/Engineering :: Astronomy" in metadata


def test_the_installed_wheel_finds_its_profiles_and_workflows_and_runs_the_demo(installed, tmp_path):
    root, purelib = installed
    proc = _run(root, "--version", cwd=tmp_path)
    from dazzle import __version__

    assert proc.returncode == 0 and proc.stdout.strip() == f"dazzle {__version__}", proc.stderr
    where = subprocess.run([str(root / "bin" / "python"), "-c",
                            "import dazzle, dazzle.cluster as c, dazzle.resources as r; "
                            "print(dazzle.__file__); print(c.profiles_file()); print(r.shipped_dir('workflows'))"],
                           capture_output=True, text=True, cwd=tmp_path, env=_clean_env(HOME=str(tmp_path)))
    assert where.returncode == 0, where.stderr
    pkg, profiles, workflows = map(Path, where.stdout.split())
    assert pkg == purelib / "dazzle" / "__init__.py"           # the wheel's copy, not this checkout
    assert profiles == purelib / "dazzle" / "deploy" / "profiles.yaml" and profiles.is_file()
    assert workflows == purelib / "dazzle" / "workflows" and (workflows / "demo.cfg").is_file()

    # a profile name is looked up in the shipped file: the error lists its profiles
    sim = _run(root, "simulate", "sim", "--size", "96", "--exposures", "2", "-q", cwd=tmp_path)
    assert sim.returncode == 0, sim.stderr
    bad = _run(root, "run", "sim/dzsim01_flt.fits", "-o", "x", "--scheduler", "profile:nosuch", cwd=tmp_path)
    assert bad.returncode == 2 and str(profiles) in bad.stderr and "slurm" in bad.stderr, bad.stderr

    demo = _run(root, "demo", "out", "--size", "128", "--exposures", "3", "--config", str(workflows / "demo.cfg"),
                cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert (tmp_path / "out" / "products" / "demo_drz.fits").is_file()
    assert (tmp_path / "out" / "report.html").is_file()
    assert str(workflows / "demo.cfg") in demo.stdout          # the tip names the installed workflow


def test_requires_python_and_classifiers_state_the_tested_python():
    """CI runs the machine's one CPython (README: Set up): requires-python starts at it and the
    classifiers name it, and no other minor version is claimed as tested."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"
    minors = {c.rsplit(" ", 1)[1] for c in project["classifiers"]
              if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)}
    assert minors == {"3.11"} and sys.version_info[:2] >= (3, 11)


def test_shipped_folders_in_a_checkout():
    from dazzle import resources

    assert resources.shipped_dir("deploy") == REPO / "deploy"
    assert resources.shipped_file("workflows", "demo.cfg") == REPO / "workflows" / "demo.cfg"
    with pytest.raises(ValueError, match="shipped folders"):
        resources.shipped_dir("tests")
