"""AstroDrizzle's ``in_memory``: the intermediates are passed between tasks, never written, and
the products are the same bits as with them on disk."""

from __future__ import annotations

import os

import numpy as np
import pytest
from astropy.io import fits

import dazzle
from helpers import final_arrays


@pytest.fixture(scope="module")
def sim(simulated):
    """3 exposures of two 96x96 chips, with cosmic rays (every step has work to do)."""
    return simulated(n_exposures=3, chips=2, size=96, seed=11, n_stars=12, min_separation=12.0)


# small tiles: the median comes in several tiles and each chip's blot reads across them
PARAMS = dict(driz_cr_corr=True, tile_size=48)


def _files(folder):
    return sorted(f for f in os.listdir(folder) if not f.startswith("."))


@pytest.mark.parametrize("combine_type", ["minmed", "median"])
def test_in_memory_writes_no_intermediates_and_gives_the_same_bits(sim, tmp_path, combine_type):
    disk, mem = tmp_path / "disk", tmp_path / "mem"
    disk.mkdir()
    mem.mkdir()
    r0 = dazzle.run(sim.files, str(disk / "syn"), combine_type=combine_type, **PARAMS)
    r1 = dazzle.run(sim.files, str(mem / "syn"), combine_type=combine_type, in_memory=True, **PARAMS)
    on_disk = _files(disk)
    assert any(f.endswith("_single_sci.fits") for f in on_disk)
    assert "syn_med.fits" in on_disk and any(f.endswith("_blt.fits") for f in on_disk)
    # only what is not an intermediate: the final image, the CR-cleaned images, summary and log
    intermediate = ("_single_sci.fits", "_single_wht.fits", "_med.fits", "_blt.fits", "_crmask.fits")
    kept = [f for f in on_disk if not f.replace(".dzsum", "").endswith(intermediate)]
    assert "syn_drz.fits" in kept and any(f.endswith("_crclean.fits") for f in kept)
    assert _files(mem) == kept
    assert r1.single == [] and r1.median is None
    a0, a1 = final_arrays(r0), final_arrays(r1)
    for ext in ("SCI", "WHT", "CTX"):
        assert a0[ext].tobytes() == a1[ext].tobytes(), ext
    for f in _files(mem):
        if f.endswith("_crclean.fits"):
            assert fits.getdata(disk / f).tobytes() == fits.getdata(mem / f).tobytes()
    # the CR masks (in the result) are the same, and some cosmic rays were found
    masks0, masks1 = r0.crmasks, r1.crmasks
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(masks0, masks1))
    assert sum(int((~np.asarray(m, bool)).sum()) for m in masks1) > 0


def test_in_memory_resume_reuses_nothing(sim, tmp_path):
    dazzle.run(sim.files, str(tmp_path / "syn"), **PARAMS)
    r = dazzle.run(sim.files, str(tmp_path / "syn"), in_memory=True, resume=True, **PARAMS)
    assert r.reused == []
