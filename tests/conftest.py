"""Shared fixtures: simulated data sets, made once per test session.

Test files ask for a data set with :func:`simulated`, giving :func:`dazzle.simulate.simulate`'s
keyword arguments; the same arguments give the same (cached) set anywhere in the session.  The
files are shared: a test that changes an input copies it first (:func:`helpers.copy_files`).
Shared helper functions live in ``tests/helpers.py``.
"""

from __future__ import annotations

import json

import pytest

from dazzle.simulate import simulate


@pytest.fixture(scope="session")
def simulated(tmp_path_factory):
    """``simulated(**kw)``: ``simulate(<a session folder>, **kw)``, made once per distinct ``kw``."""
    cache = {}

    def make(**kw):
        key = json.dumps(kw, sort_keys=True, default=repr)
        if key not in cache:
            cache[key] = simulate(tmp_path_factory.mktemp("sim"), **kw)
        return cache[key]

    return make
