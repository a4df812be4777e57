"""A pytest plugin that runs drizzle 3.0's own tests on dazzle's kernels.

Loaded with ``-p drizzle_routing`` (this folder on ``sys.path``), it replaces
``drizzle.cdrizzle.tdriz`` and ``drizzle.cdrizzle.tblot`` (the C entry points that
``drizzle.resample`` and the tests call) by adapters to
:func:`dazzle.kernels.drizzle_add` and :func:`dazzle.kernels.blot` for the whole
session, counts the calls, and writes them with every test's outcome to the JSON
file named by ``DAZZLE_ROUTING_REPORT``.  ``tests/test_drizzle_suite.py`` runs it.

The adapters map the C signature onto dazzle's: ``input2 -> var``, ``output2 ->
out_var``, ``fillstr2 -> fillval_var``, ``dq -> dq``, ``outdq -> out_dq``,
``wtscale -> wt_scl``, ``expscale -> exptime``, ``"INDEF" -> None``; the input
section ``xmin..ymax`` becomes zero weight outside it.  They give the C kernels'
warnings (non-flux-conserving kernels, pixfrac ignored by Lanczos) so that the
tests that expect them see them.
"""

from __future__ import annotations

import json
import math
import os
import warnings

import numpy as np

import drizzle.cdrizzle as cdrizzle
from dazzle.kernels import blot, drizzle_add

CALLS = {"tdriz": 0, "tblot": 0}
_OUTCOMES = {}


def _fill(value):
    """drizzle's fill string ("INDEF" or a number) as dazzle's fill value (None: INDEF)."""
    if value is None or str(value).strip().upper() == "INDEF":
        return None
    return float(value)


def _pairs(input2, output2, shape):
    """The variance arrays and their outputs as two lists; an input given as None adds
    zero variance (its output is still re-weighted), as in drizzle's C code."""
    if input2 is None:
        return None, None
    ins = [input2] if isinstance(input2, np.ndarray) else list(input2)
    outs = [output2] if isinstance(output2, np.ndarray) else list(output2)
    ins = [np.zeros(shape, np.float32) if a is None else a for a in ins]
    return ins or None, outs or None


def tdriz(input, weights, pixmap, output, counts, context, input2=None, output2=None, dq=None,
          outdq=None, uniqid=1, xmin=0, xmax=0, ymin=0, ymax=0, iscale=1.0, pscale_ratio=float("nan"),
          scale=None, pixfrac=1.0, kernel="square", in_units="cps", expscale=1.0, wtscale=1.0,
          fillstr="INDEF", fillstr2="INDEF"):
    """drizzle 3.0's ``cdrizzle.tdriz`` on :func:`dazzle.kernels.drizzle_add`; returns (0, 0)
    for (nmiss, nskip), which drizzle itself miscounts."""
    CALLS["tdriz"] += 1
    data = np.asarray(input, dtype=np.float32)
    ny, nx = data.shape
    w = np.ones_like(data) if weights is None else np.array(weights, dtype=np.float32)
    xmax = nx - 1 if xmax == 0 or xmax > nx - 1 else xmax
    ymax = ny - 1 if ymax == 0 or ymax > ny - 1 else ymax
    section = np.zeros_like(w)
    section[ymin:ymax + 1, xmin:xmax + 1] = 1.0
    w *= section
    if kernel in ("gaussian", "lanczos2", "lanczos3"):
        warnings.warn(f"Kernel '{kernel}' is not a flux-conserving kernel.", Warning, stacklevel=2)
    if kernel.startswith("lanczos") and pixfrac != 1.0:
        warnings.warn("In lanczos kernel, pixel_fraction is ignored and assumed to be 1.0",
                      Warning, stacklevel=2)
    psr = None if pscale_ratio is None or math.isnan(pscale_ratio) else pscale_ratio
    var, out_var = _pairs(input2, output2, data.shape)
    drizzle_add(data, pixmap, output, counts, context, weights=w, kernel=kernel, pixfrac=pixfrac,
                iscale=iscale, pixel_scale_ratio=psr, wt_scl=wtscale, exptime=expscale, in_units=in_units,
                uniqid=uniqid, fillval=_fill(fillstr), var=var, out_var=out_var,
                fillval_var=_fill(fillstr2), dq=dq, out_dq=outdq if dq is not None else None)
    return 0, 0


def tblot(source, pixmap, output, xmin=0, xmax=0, ymin=0, ymax=0, iscale=1.0, kscale=1.0, scale=1.0,
          interp="poly5", exptime=1.0, fillval=0.0, misval=0.0):
    """drizzle 3.0's ``cdrizzle.tblot`` on :func:`dazzle.kernels.blot`, into ``output``."""
    CALLS["tblot"] += 1
    output[...] = blot(source, pixmap, interp=interp, iscale=iscale * exptime, fillval=fillval)


def pytest_configure(config):
    cdrizzle.tdriz = tdriz
    cdrizzle.tblot = tblot


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":
        text = str(report.longrepr) if report.failed else ""
        needs_data = "tests/data" in text and ("No such file" in text or "FileNotFound" in text)
        _OUTCOMES.setdefault(report.nodeid, (report.outcome, needs_data))
        if report.when == "call":
            _OUTCOMES[report.nodeid] = (report.outcome, needs_data)


def pytest_sessionfinish(session):
    path = os.environ.get("DAZZLE_ROUTING_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump({"calls": CALLS, "outcomes": _OUTCOMES}, f)
