"""Under CI (``CI=true``, set by ``.ci/run``) a missing test oracle or browser fails its test
instead of skipping it (issue 12: no oracle test may skip in CI)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent

PROBE = '''
from astrodrizzle_oracle import import_oracle, skip_or_fail

def test_missing_module():
    import_oracle("dazzle_no_such_oracle", "the oracle is not installed")

def test_missing_tool():
    skip_or_fail("the browser is not installed")
'''


@pytest.mark.parametrize("ci, outcome", [("true", "2 failed"), ("", "2 skipped")])
def test_missing_oracle_fails_under_ci(ci, outcome, tmp_path):
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = dict(os.environ, CI=ci, PYTHONPATH=os.pathsep.join(
        [str(HERE), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(tmp_path / "test_probe.py")], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert outcome in proc.stdout, proc.stdout[-2000:]
    if ci:
        assert "under CI a missing oracle fails the test" in proc.stdout


def test_ci_script_sets_ci_and_stops_without_chromium():
    text = (HERE.parent / ".ci" / "run").read_text()
    assert "export CI=true" in text
    assert "exit 1" in text and "will skip" not in text
