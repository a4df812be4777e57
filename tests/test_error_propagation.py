"""The final product's ERR is the real noise of its SCI: a Monte Carlo test (issue 13).

One simulated scene (4 dithered exposures of a 40 x 40 chip, no cosmic rays, no defects) is
drizzled N = 60 times, each time with a new noise realisation drawn from the simulator's noise
model (Poisson on the expected electrons plus Gaussian read noise; the inputs' ERR is that
model's sigma), through the final drizzle's own step functions (``section_sums`` and
``final_combine``, the tiled reduction's code).  For every output pixel the standard deviation
of SCI over the realisations is compared with the propagated ERR, and with the WHT-based
estimate ``1/sqrt(WHT)`` (``final_wht_type=ERR``: WHT is the summed inverse variance), for
square (pixfrac 1 and 0.6), turbo and point.

Cost: about 3 s of CPU, 10 s on the loaded 2-core test machine (240 small drizzles).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dazzle.io import ChipData
from dazzle.params import resolve
from dazzle.pipeline import plan_run
from dazzle.steps import common
from dazzle.steps.common import DrizzleSettings, section_sums, load_chip
from dazzle.steps.final_drizzle import final_combine

N_REALISATIONS = 60
SETTINGS = {"square-1.0": ("square", 1.0), "square-0.6": ("square", 0.6), "turbo": ("turbo", 1.0),
            "point": ("point", 1.0)}


@pytest.fixture(scope="module")
def scene(simulated, tmp_path_factory):
    sim = simulated(n_exposures=4, chips=1, size=40, seed=21, noise=False, cosmic_rays=False,
                    hot_pixels=False, bad_columns=0, n_stars=6, min_separation=8.0)
    params = dict(static=False, skysub=False, median=False, blot=False, driz_cr=False,
                  driz_separate=False, final_wht_type="ERR")
    values = resolve(None, output=str(tmp_path_factory.mktemp("mc") / "mc"), **params)
    plan = plan_run(sim.files, values["output"], values)
    models = [load_chip(c, None) for c in plan.chips]   # noiseless SCI (electrons) and ERR
    return values, plan, models


def monte_carlo(scene, kernel, pixfrac, monkeypatch):
    """SCI of every realisation, and the ERR and WHT (the same for all: the weights do not
    depend on the data)."""
    values, plan, models = scene
    settings = dataclasses.replace(DrizzleSettings.from_params(values, "final"), kernel=kernel,
                                   pixfrac=pixfrac)
    assert settings.err
    pixmaps = {}
    real = common.geometry.calc_pixmap

    def cached(chip_wcs, frame_wcs, shape, **kw):   # the same few pixmaps every realisation
        key = (chip_wcs.wcs.crval.tobytes(), chip_wcs.wcs.crpix.tobytes(), shape)
        if key not in pixmaps:
            pixmaps[key] = real(chip_wcs, frame_wcs, shape, **kw)
        return pixmaps[key]

    monkeypatch.setattr(common.geometry, "calc_pixmap", cached)
    ny, nx = plan.final_frame.shape
    rng = np.random.default_rng(1313)
    rn = 4.7   # simulate()'s read noise (e-): ERR = sqrt(expected + rn**2)
    scis = []
    for _ in range(N_REALISATIONS):
        parts = []
        for k, (chip, m) in enumerate(zip(plan.chips, models)):
            noisy = rng.poisson(m.sci.astype(np.float64)) + rng.normal(0.0, rn, m.sci.shape)
            data = ChipData(sci=noisy.astype(np.float32), err=m.err, dq=m.dq, n_nonfinite=0)
            parts.append((k + 1, section_sums(chip, plan.final_frame, plan.final_boxes[k], settings,
                                           bit=1, data=data)))
        sci, wht, _, err, _ = final_combine(parts, (0, nx, 0, ny), settings, nchips=len(plan.chips),
                                            texptime=plan.texptime)
        scis.append(sci)
    return np.array(scis, dtype=np.float64), err.astype(np.float64), wht.astype(np.float64)


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_err_is_the_standard_deviation_of_sci(scene, name, monkeypatch):
    kernel, pixfrac = SETTINGS[name]
    scis, err, wht = monte_carlo(scene, kernel, pixfrac, monkeypatch)
    good = (wht > 0) & np.isfinite(err)
    assert good.sum() > 0.5 * err.size
    std = scis[:, good].std(axis=0, ddof=1)
    ratio = std / err[good]
    assert abs(np.median(ratio) - 1.0) < 0.03, (name, np.median(ratio))
    # the WHT-based estimate 1/sqrt(WHT) (WHT the summed inverse variance) is not the noise of
    # a pixel once the kernel mixes input pixels: it overestimates it by the correlated-noise
    # factor (1 for point)
    naive = std * np.sqrt(wht[good])
    if kernel == "point":
        assert abs(np.median(naive) - 1.0) < 0.03
    else:
        assert np.median(naive) < 0.85, (name, np.median(naive))
    # and the neighbours' noise is correlated: a 3x3 sum is noisier than its pixels' ERR added
    # in quadrature (by about the same factor), except for point
    box = np.zeros(good.shape, bool)
    box[1:-1, 1:-1] = np.all([np.roll(np.roll(good, dy, 0), dx, 1)[1:-1, 1:-1]
                              for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)
    sums = sum(np.roll(np.roll(scis, dy, 1), dx, 2) for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    quad = np.sqrt(sum(np.roll(np.roll(err, dy, 0), dx, 1) ** 2 for dy in (-1, 0, 1) for dx in (-1, 0, 1)))
    corr = np.median(sums[:, box].std(axis=0, ddof=1) / quad[box])
    assert (abs(corr - 1.0) < 0.05) if kernel == "point" else (corr > 1.1), (name, corr)
    print(f"{name}: median std(SCI)/ERR = {np.median(ratio):.4f}, std(SCI)*sqrt(WHT) = "
          f"{np.median(naive):.4f}, 3x3 sum std / quadrature ERR = {corr:.3f}, {good.sum()} px")


def test_single_err_products_are_written_row_by_row_as_a_whole_array_gives_them(tmp_path):
    """``driz_sep_err=True``: each exposure's ``_single_err.fits`` (written a few rows at a
    time from its sums, as its SCI and WHT) is float32 over the single image's box, NaN exactly
    where the weight is 0, finite and positive elsewhere.  Cost: ~3 s."""
    from astropy.io import fits

    from dazzle.pipeline import run
    from dazzle.simulate import simulate

    files = simulate(tmp_path / "in", n_exposures=2, size=96, seed=5).files
    run([str(f) for f in files], str(tmp_path / "out" / "e"), driz_sep_err=True)
    errs = sorted((tmp_path / "out").glob("*_single_err.fits"))
    assert len(errs) == 2
    for path in errs:
        err = fits.getdata(path)
        wht = fits.getdata(str(path).replace("_err.fits", "_wht.fits"))
        assert err.dtype == np.dtype(">f4") and err.shape == wht.shape
        assert (np.isnan(err) == (wht == 0)).all() and (wht == 0).any()
        assert np.isfinite(err[wht > 0]).all() and (err[wht > 0] > 0).all()
