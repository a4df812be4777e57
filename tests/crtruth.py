"""Cosmic-ray rejection measured against the simulator's truth (a test helper, not a test).

:func:`cr_stats` scores the CR masks of a run; :func:`cr_residual` measures what the cosmic
rays left in the final image; :func:`study` does both on one freshly simulated data set.  The
tests in ``test_crreject.py`` and ``benchmarks/crreject_seeds.py`` use them.

The CR residual is the final image made from the exposures *with* cosmic rays minus the final
image made, with the same parameters, from the *same* exposures without them
(``dazzle.simulate(..., cosmic_rays=False)`` with the same seed gives the same pixels minus
exactly the CR charge).  That difference is the charge the rejection let through, plus a little
noise where flagged pixels changed the weights; it is divided by the final image's own noise
at each pixel.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from astropy.io import fits

import dazzle
from dazzle.simulate import simulate
from photometry import aperture_fluxes


def cr_stats(sim, result):
    """(detection rate of CR pixels > 50 e-, purity of the flags, number of flags)."""
    hit, big, true_flags, flags = _cr_counts(sim, result)
    return hit / big, true_flags / max(flags, 1), flags


def _cr_counts(sim, result):
    nchips = sim.chips
    big = hit = flags = true_flags = 0
    for k, f in enumerate(sim.files):
        for c in range(nchips):
            flagged = ~result.crmasks[k * nchips + c]
            charge = sim.cr_charge[k][c]
            dq = fits.getdata(f, ("DQ", c + 1))
            big += int((charge > 50).sum())
            hit += int((flagged & (charge > 50)).sum())
            flags += int(flagged.sum())
            true_flags += int((flagged & ((charge > 0) | (dq != 0))).sum())
    return hit, big, true_flags, flags


def purity_dq_good(sim, result):
    """Purity over the pixels DQ leaves good (``DQ == 0``): of the flags there, the fraction
    on cosmic-ray pixels.  :func:`cr_stats`'s purity also counts a flag on a DQ-bad pixel as
    correct (the final drizzle leaves those pixels out either way)."""
    flags = real = 0
    for k, f in enumerate(sim.files):
        for c in range(sim.chips):
            good = fits.getdata(f, ("DQ", c + 1)) == 0
            flagged = ~result.crmasks[k * sim.chips + c] & good
            flags += int(flagged.sum())
            real += int((flagged & (sim.cr_charge[k][c] > 0)).sum())
    return real / max(flags, 1)


def star_core_flags(sim, result):
    """(clean star-core pixels flagged, star cores checked): the 3x3 core of every star on
    every chip, leaving out pixels a cosmic ray hit and pixels DQ already flags."""
    flagged = checked = 0
    for k, f in enumerate(sim.files):
        for row in sim.star_pixels[k]:
            c = int(row["chip"])
            good = result.crmasks[k * sim.chips + c - 1]
            x, y = int(round(row["x"])), int(round(row["y"]))
            if 1 <= x < good.shape[1] - 1 and 1 <= y < good.shape[0] - 1:
                box = np.s_[y - 1:y + 2, x - 1:x + 2]
                clean = ((fits.getdata(f, ("DQ", c))[box] == 0)
                         & (sim.cr_charge[k][c - 1][box] == 0))
                flagged += int((~good[box] & clean).sum())
                checked += 1
    return flagged, checked


def _final(result):
    with fits.open(result.output) as h:
        return h["SCI"].data.astype(float), h["WHT"].data.astype(float)


def cr_residual(run, run_nocr, truth_run):
    """The cosmic rays' residual in the final image, in units of the noise.

    ``run``: the pipeline on the exposures with cosmic rays; ``run_nocr``: the same pipeline on
    the same exposures without them; ``truth_run``: the final drizzle alone of the noiseless,
    CR-free exposures (``static=skysub=median=blot=driz_cr=False``).

    Measured where every exposure covers the pixel and the scene is sky (no star light above
    0.005 e-/s).  The noise ``sigma`` is the robust standard deviation of ``run_nocr`` minus the
    truth there; at a pixel whose weight rejection lowered it grows as ``sqrt(w_nocr / w)``.
    Returns ``(z, sigma)``: ``z`` the absolute residual per measured pixel, in sigma.
    """
    sci, wht = _final(run)
    sci0, wht0 = _final(run_nocr)
    model, wm = _final(truth_run)
    sky = np.median(model[wm > 0])
    full = wm > 0.9 * np.median(wm[wm > 0])
    use = full & (model < sky + 0.005) & (wht > 0)
    noise = sci0[use] - (model[use] - sky)      # the truth run subtracted no sky
    sigma = 1.4826 * np.median(np.abs(noise - np.median(noise)))
    z = np.abs(sci[use] - sci0[use]) / (sigma * np.sqrt(wht0[use] / wht[use]))
    return z, float(sigma)


@dataclasses.dataclass
class Study:
    """The scores of one simulated data set (see :func:`study`)."""
    seed: int
    hit: int          # CR pixels > 50 e- flagged
    big: int          # CR pixels > 50 e-
    true_flags: int   # flags on CR (or DQ-bad) pixels
    flags: int
    n_pix: int        # pixels where the residual is measured
    n_over5: int      # of those, beyond 5 sigma
    z_max: float
    core_flags: int   # clean star-core pixels flagged
    photometry: float  # median final/true flux of the stars brighter than 100 e-/s

    @property
    def detection(self):
        return self.hit / self.big

    @property
    def purity(self):
        return self.true_flags / max(self.flags, 1)


def study(path, *, n_exposures, chips, size, seed, sky=0.1, **params):
    """Simulate one data set (with and without cosmic rays, and the noiseless truth), run the
    pipeline with ``params`` on both, and score it."""
    path = Path(path)
    # the rates of the tests and the README were measured on dazzle's own frame (the default
    # until issue 17); on AstroDrizzle's, 8x1 seed 101 flags 6 star-core pixels
    params.setdefault("output_frame", "dazzle")
    kw = dict(n_exposures=n_exposures, chips=chips, size=size, seed=seed, sky=sky)
    sim = simulate(path / "cr", **kw)
    sim0 = simulate(path / "nocr", cosmic_rays=False, **kw)
    truth = simulate(path / "truth", noise=False, cosmic_rays=False, hot_pixels=False, **kw)
    run = dazzle.run(sim.files, str(path / "out" / "syn"), **params)
    run0 = dazzle.run(sim0.files, str(path / "out0" / "syn"), **params)
    t = dazzle.run(truth.files, str(path / "outt" / "syn"), static=False, skysub=False,
                   median=False, blot=False, driz_cr=False, output_frame=params["output_frame"])
    z, _ = cr_residual(run, run0, t)
    hit, big, true_flags, flags = _cr_counts(sim, run)
    ratios = aperture_fluxes(run.output, sim.stars[sim.stars["flux_eps"] > 100.0])
    return Study(seed, hit, big, true_flags, flags, int(z.size), int((z > 5).sum()),
                 float(z.max()), star_core_flags(sim, run)[0], float(np.median(ratios)))
