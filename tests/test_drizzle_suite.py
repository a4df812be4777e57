"""drizzle 3.0's own test suite, run on dazzle's kernels.

``drizzle/tests/test_resample.py`` of the installed drizzle 3.0.0 (the test oracle) is run in
a subprocess with the plugin ``tests/drizzle_routing.py``, which routes ``cdrizzle.tdriz`` and
``cdrizzle.tblot`` to :func:`dazzle.kernels.drizzle_add` and :func:`dazzle.kernels.blot`
(``input2 -> var``, ``output2 -> out_var``, ``fillstr2 -> fillval_var``, ``dq -> dq``,
``outdq -> out_dq``).  Every test must pass except those that need the data files drizzle does
not ship (``drizzle/tests/data``: its wheel and sdist leave them out); the plugin counts the
adapter calls, which proves that the tests ran on dazzle.  Cost: about 15 s of CPU (the
suite's own run, most of it imports and collection).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from astrodrizzle_oracle import import_oracle

HERE = Path(__file__).resolve().parent


def test_drizzle_3_suite_passes_on_dazzle_kernels(tmp_path):
    import_oracle("drizzle.tests.test_resample",
                  "drizzle==3.0.0 and its test dependency gwcs are not installed (pip install '.[test]')")
    report = tmp_path / "routing.json"
    env = dict(os.environ, DAZZLE_ROUTING_REPORT=str(report),
               PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "drizzle_routing", "--pyargs", "drizzle.tests.test_resample",
         "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    result = json.loads(report.read_text())
    outcomes = result["outcomes"]
    passed = [k for k, (o, _) in outcomes.items() if o == "passed"]
    needs_data = [k for k, (o, nd) in outcomes.items() if o == "failed" and nd]
    other_failures = [k for k, (o, nd) in outcomes.items() if o == "failed" and not nd]
    assert not other_failures, proc.stdout[-5000:]
    # 132 pass: the co-add with squared weights (test_drizzle_weights_squared*), the DQ
    # propagation, context, fill values, flux conservation, the edge regressions ...
    assert len(passed) >= 130, proc.stdout[-3000:]
    for name in ("test_drizzle_weights_squared[square-True]", "test_drizzle_dq_propagation[True-0.0-True]",
                 "test_flux_conservation_distorted[square-True]", "test_resample_edge_sgarea_bug",
                 "test_drizzle_weights_squared_array_shape_mismatch"):
        assert outcomes["::" + name][0] == "passed", name
    # what fails needs drizzle/tests/data (reference images, the NIRCam WCS headers)
    assert len(needs_data) <= 100
    assert result["calls"]["tdriz"] > 250   # the tests ran on dazzle's kernels
