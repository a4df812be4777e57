"""Run the real AstroDrizzle (drizzlepac) as a test oracle, in a subprocess, on copies.

Test helper, not a test module.  drizzlepac is a test-only reference: it is never imported into
the test process (its import is slow and it reconfigures logging); :func:`run_astrodrizzle`
starts ``sys.executable`` with a small driver script instead.

AstroDrizzle modifies its inputs in place (``MDRIZSKY`` in the SCI headers, DQ |= 4096 where it
found cosmic rays), so the inputs are always copied into the work directory first and the copies
are processed.

Usage::

    from astrodrizzle_oracle import have_drizzlepac, run_astrodrizzle
    products = run_astrodrizzle(files, tmp_path / "ad", output="syn")
    products["drz"]            # syn_drz.fits (build=True)
    products["crmask"][("dzsim01", 1)]
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

__all__ = ["AstroDrizzleError", "DEFAULTS", "IN_CI", "have_drizzlepac", "import_oracle", "needs_drizzlepac",
           "run_astrodrizzle", "skip_or_fail",
           "run_astrodrizzle_batch", "load_cdriz"]

#: Parameters always passed (overridable through ``**params``): offline (no ``updatewcs``, no
#: MDRIZTAB), serial, keep the intermediate products, one ``_drz.fits`` with SCI/WHT/CTX.
DEFAULTS = dict(mdriztab=False, updatewcs=False, preserve=False, num_cores=1, build=True,
                context=True, clean=False)

_DRIVER = r"""
import json, os, sys, traceback
jobs = json.loads(sys.argv[1])
from drizzlepac import astrodrizzle
status = 0
for job in jobs:
    os.chdir(job["workdir"])
    try:
        inputs = job["inputs"] if job["as_list"] else ",".join(job["inputs"])
        if job.get("atfile"):
            inputs = "@" + job["atfile"]
        astrodrizzle.AstroDrizzle(input=inputs, output=job["output"], **job["params"])
    except BaseException:
        traceback.print_exc()
        status = 3
sys.exit(status)
"""

_SUFFIXES = ("_flt.fits", "_flc.fits")


class AstroDrizzleError(RuntimeError):
    """AstroDrizzle failed, timed out or produced no final image."""


def have_drizzlepac():
    """True if drizzlepac can be found (without importing it into this process)."""
    try:
        return importlib.util.find_spec("drizzlepac") is not None
    except (ImportError, ValueError):
        return False


#: Under CI (the ``CI`` environment variable set and not false/0, as CI services set it) a
#: missing oracle or tool is a failure, never a skip: ``.ci/run`` installs every one.
IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def skip_or_fail(reason):
    """Skip the test (with ``reason``) outside CI; fail it under CI."""
    if IN_CI:
        pytest.fail(f"{reason} (under CI a missing oracle fails the test)", pytrace=False)
    pytest.skip(reason)


def import_oracle(name, reason):
    """``pytest.importorskip`` for a test oracle, except that under CI a missing one fails."""
    try:
        return importlib.import_module(name)
    except ImportError:
        skip_or_fail(reason)


def load_cdriz():
    """drizzlepac's C drizzle extension (``cdriz``, with ``tdriz``) loaded on its own, without
    importing the drizzlepac package (slow, and it reconfigures logging); skipped (failed under
    CI) without drizzlepac."""
    spec = importlib.util.find_spec("drizzlepac") if have_drizzlepac() else None
    if spec is None or spec.origin is None:
        skip_or_fail("drizzlepac (the real AstroDrizzle, test-only oracle) is not installed")
    folder = Path(spec.origin).parent
    found = sorted(folder.glob("cdriz.*.so")) + sorted(folder.glob("cdriz.*.pyd"))
    if not found:
        skip_or_fail(f"drizzlepac's C extension cdriz is not in {folder}")
    ext = importlib.util.spec_from_file_location("drizzlepac.cdriz", found[0])
    module = importlib.util.module_from_spec(ext)
    ext.loader.exec_module(module)
    return module


#: pytest mark for tests that need the real AstroDrizzle: skipped, with the reason, without it
#: (under CI they run, and fail).
needs_drizzlepac = pytest.mark.skipif(
    not have_drizzlepac() and not IN_CI,
    reason="drizzlepac (the real AstroDrizzle, test-only oracle) is not installed: "
           "pip install drizzlepac==3.11.0 (or make test)")


def _root(name):
    for suf in _SUFFIXES:
        if name.endswith(suf):
            return name[: -len(suf)]
    return name[:-5] if name.endswith(".fits") else name


def _tail(path_or_text, n=60):
    if path_or_text is None:
        return ""
    if isinstance(path_or_text, Path):
        if not path_or_text.exists():
            return ""
        text = path_or_text.read_text(errors="replace")
    else:
        text = path_or_text
    return "\n".join(text.splitlines()[-n:])


def _existing(p):
    return p if p.exists() else None


def run_astrodrizzle(inputs, workdir, output="syn", *, timeout=600, **params):
    """Run ``drizzlepac.astrodrizzle.AstroDrizzle`` on copies of ``inputs`` in ``workdir``.

    Parameters
    ----------
    inputs : sequence of paths
        Exposure files (``*_flt.fits``); copied into ``workdir`` (which must not exist or be
        empty).
    workdir : path
        Fresh working directory; AstroDrizzle runs with it as the current directory.
    output : str
        Output root name.
    timeout : float
        Seconds before the subprocess is killed.
    **params
        AstroDrizzle parameters, on top of :data:`DEFAULTS` (e.g. ``driz_cr=False``,
        ``final_wht_type="ERR"``, ``skysub=False``).

    Returns
    -------
    dict
        ``workdir``, ``log``, ``inputs`` (the processed copies, modified by AstroDrizzle),
        ``drz`` (``<output>_drz.fits`` or ``_drc``, with build=True), ``drz_sci``, ``drz_wht``,
        ``drz_ctx`` (build=False), ``med``, ``static_masks`` (list),
        ``single_sci`` / ``single_wht`` (dict root -> path), ``blt`` / ``crmask`` (dict
        (root, chip) -> path), ``stdout``.  Missing products are None / absent.

    Raises
    ------
    AstroDrizzleError
        With the tail of AstroDrizzle's log and of the subprocess output.
    """
    job = dict(inputs=inputs, workdir=workdir, output=output, params=params)
    return run_astrodrizzle_batch([job], timeout=timeout)[0]


def run_astrodrizzle_batch(jobs, *, timeout=600):
    """Several AstroDrizzle runs, one after the other in one subprocess (drizzlepac's import,
    about 4 s, paid once).  ``jobs``: dicts with the arguments of :func:`run_astrodrizzle`
    (``inputs``, ``workdir``, optional ``output`` and ``params``), optionally ``ivm`` (one IVM
    file per input, given to AstroDrizzle in an @-file), and optionally
    ``as_list=True``: pass the inputs as a Python list, whose order AstroDrizzle keeps (a
    comma-separated string, the default, it sorts by name).  Returns their products, in order;
    raises :class:`AstroDrizzleError` if any run fails or the batch times out."""
    prepared = []
    for job in jobs:
        workdir = Path(job["workdir"])
        names = _copy_inputs(job["inputs"], workdir)
        if job.get("ivm"):   # one IVM file per input: copied, and named in an @-file beside it
            ivms = [_copy_one(Path(f), workdir) for f in job["ivm"]]
            (workdir / "inputs.lst").write_text("".join(f"{n} {v}\n" for n, v in zip(names, ivms)))
        kw = dict(DEFAULTS)
        kw.update(job.get("params") or {})
        kw.setdefault("runfile", "astrodrizzle.log")
        prepared.append(dict(workdir=str(workdir), inputs=names, output=job.get("output", "syn"),
                             params=kw, as_list=bool(job.get("as_list")),
                             atfile="inputs.lst" if job.get("ivm") else None))
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMEXPR_NUM_THREADS"):
        env[var] = "1"
    env.setdefault("jref", prepared[0]["workdir"] + os.sep)  # never resolved: IDCTAB is N/A
    logs = [Path(j["workdir"]) / j["params"]["runfile"] for j in prepared]
    try:
        proc = subprocess.run([sys.executable, "-c", _DRIVER, json.dumps(prepared)],
                              cwd=prepared[0]["workdir"], env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"")
        out = out.decode(errors="replace") if isinstance(out, bytes) else out
        raise AstroDrizzleError(f"AstroDrizzle timed out after {timeout} s\n--- log tail ---\n"
                                f"{_tail(logs[-1])}\n--- output tail ---\n{_tail(out)}") from None
    outputs = proc.stdout + "\n" + proc.stderr
    results = [_products(j, log, outputs) for j, log in zip(prepared, logs)]
    for res, log in zip(results, logs):
        final = res["drz"] or res["drz_sci"]
        if proc.returncode != 0 or final is None:
            raise AstroDrizzleError(
                f"AstroDrizzle failed (exit code {proc.returncode}, final product in "
                f"{res['workdir']} {'present' if final else 'missing'})\n--- log tail ---\n"
                f"{_tail(log)}\n--- output tail ---\n{_tail(outputs)}")
    return results


def _copy_inputs(inputs, workdir):
    if workdir.exists() and any(workdir.iterdir()):
        raise ValueError(f"{workdir} is not empty; run_astrodrizzle needs a fresh directory")
    workdir.mkdir(parents=True, exist_ok=True)
    return [_copy_one(Path(src), workdir) for src in inputs]


def _copy_one(src, workdir):
    dst = workdir / src.name
    if dst.exists():
        raise ValueError(f"two inputs named {src.name}")
    shutil.copyfile(src, dst)
    return src.name


def _products(job, log, outputs):
    workdir, names, output = Path(job["workdir"]), job["inputs"], job["output"]
    ext = "_drc" if names and names[0].endswith("_flc.fits") else "_drz"
    products = {
        "workdir": workdir,
        "log": _existing(log),
        "inputs": [workdir / n for n in names],
        "drz": _existing(workdir / f"{output}{ext}.fits"),
        "drz_sci": _existing(workdir / f"{output}{ext}_sci.fits"),
        "drz_wht": _existing(workdir / f"{output}{ext}_wht.fits"),
        "drz_ctx": _existing(workdir / f"{output}{ext}_ctx.fits"),
        "med": _existing(workdir / f"{output}_med.fits"),
        "static_masks": sorted(workdir.glob("*_staticMask.fits")),
        "single_sci": {},
        "single_wht": {},
        "blt": {},
        "crmask": {},
        "stdout": outputs,
    }
    for r in (_root(n) for n in names):
        for key in ("single_sci", "single_wht"):
            p = workdir / f"{r}_{key}.fits"
            if p.exists():
                products[key][r] = p
        for key, suffix in (("blt", "blt"), ("crmask", "crmask")):
            for p in sorted(workdir.glob(f"{r}_sci*_{suffix}.fits")):
                chip = p.name[len(r) + 4: -len(f"_{suffix}.fits")]
                if chip.isdigit():
                    products[key][(r, int(chip))] = p
    return products
