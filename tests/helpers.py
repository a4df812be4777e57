"""Helpers shared by the test files (the fixtures are in ``conftest.py``)."""

from __future__ import annotations

import os
import shutil

import numpy as np
from astropy.io import fits

from dazzle.products import file_checksum


def copy_files(files, dest) -> list[str]:
    """Copies of ``files`` in the folder ``dest`` (created), for tests that change inputs."""
    os.makedirs(dest, exist_ok=True)
    out = []
    for f in files:
        path = os.path.join(dest, os.path.basename(f))
        shutil.copyfile(f, path)
        out.append(str(path))
    return out


def file_digests(paths) -> list[str]:
    """SHA-256 of each file, in order."""
    return [file_checksum(p, "sha256") for p in paths]


def final_arrays(result) -> dict:
    """The final product's SCI, WHT and CTX arrays of a run."""
    with fits.open(result.output) as h:
        return {e: np.array(h[e].data) for e in ("SCI", "WHT", "CTX")}
