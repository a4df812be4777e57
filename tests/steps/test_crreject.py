"""Cosmic-ray rejection end to end (AstroDrizzle steps 1, 2, 4, 5, 6 feeding step 7).

The whole pipeline runs on simulated exposures with injected cosmic rays and known truth:
pixel noise about 8 e- (sky 40 e-, read noise 4.7 e-), as in the reference measurements of
AstroDrizzle.  The comparison with the real AstroDrizzle is at the end (skipped without it).
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

import dazzle
from astrodrizzle_oracle import needs_drizzlepac, run_astrodrizzle
from crtruth import cr_residual, cr_stats, purity_dq_good, star_core_flags, study
from helpers import copy_files, file_digests
from photometry import aperture_fluxes


#: The four test sets of the acceptance: 4 and 8 exposures, one (ACS/HRC-like) and two
#: (WFC-like) chips per exposure, the real HRC SIP distortion: (n_exposures, chips, size, seed).
SETS = {"4x1": (4, 1, 384, 11), "4x2": (4, 2, 256, 21), "8x1": (8, 1, 384, 14), "8x2": (8, 2, 256, 12)}
#: the rates below were measured on dazzle's own frame (the default before issue 17)
FRAME = {"output_frame": "dazzle"}


def _simulate(simulated, which, **kw):
    n, chips, size, seed = SETS[which]
    return simulated(n_exposures=n, chips=chips, size=size, seed=seed, sky=0.1, **kw)


@pytest.fixture(scope="module")
def sims(simulated):
    return {w: _simulate(simulated, w) for w in SETS}


@pytest.fixture(scope="module")
def runs(sims, tmp_path_factory):
    return {w: dazzle.run(sims[w].files, str(tmp_path_factory.mktemp(f"out{w}") / "syn"), **FRAME) for w in SETS}


@pytest.fixture(scope="module")
def sim4(sims):
    return sims["4x1"]


@pytest.fixture(scope="module")
def run4(runs):
    return runs["4x1"]


# ---------------------------------------------------------------------------------------------
# science quality against the truth
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", list(SETS))
def test_cosmic_rays_are_found(which, sims, runs):
    detection, purity, flags = cr_stats(sims[which], runs[which])
    good = purity_dq_good(sims[which], runs[which])
    print(f"\n{which}: detection (> 50 e-) {detection:.4f}, purity {purity:.4f} (on DQ-good "
          f"pixels {good:.4f}), {flags} flags")
    # measured: detection 99.06 / 98.74 / 98.87 / 99.23 %, purity 99.98 / 99.97 / 99.87 /
    # 99.91 % (4x1, 4x2, 8x1, 8x2); AstroDrizzle on the same data 98.98 / 98.68 / 98.76 /
    # 99.08 % and 99.81-99.97 % purity
    assert detection >= 0.985, detection
    assert purity >= 0.995, purity
    # the same over the pixels DQ leaves good (a flag on a DQ-bad pixel counts as neither):
    # measured 99.98 / 99.95 / 99.83 / 99.88 %
    assert good >= 0.995, good
    assert flags > 1000


def test_sky_once_noise_finds_more_and_flags_clean_pixels(sim4, tmp_path, run4):
    """driz_cr_noise='sky_once' (the sky not counted a second time): a smaller sigma, so more
    faint cosmic rays and ~3e-4 of the clean pixels are flagged; a higher snr brings the
    purity back."""
    once = dazzle.run(sim4.files, str(tmp_path / "once" / "syn"), driz_cr_noise="sky_once", **FRAME)
    d0, p0, f0 = cr_stats(sim4, run4)
    d1, p1, f1 = cr_stats(sim4, once)
    assert f1 > f0 + 500                 # measured 7557 vs 6372 flags
    assert d1 > d0 and p1 < 0.995        # measured 99.21 % / 98.99 %
    n_clean = 4 * 384 * 384
    assert 1e-4 < (f1 - p1 * f1) / n_clean < 6e-4
    high = dazzle.run(sim4.files, str(tmp_path / "high" / "syn"), driz_cr_noise="sky_once",
                      driz_cr_snr="4.5 3.5", **FRAME)
    d2, p2, _ = cr_stats(sim4, high)
    assert p2 >= 0.995 and d2 >= 0.985   # measured 99.88 % / 99.08 %


def test_no_star_core_is_flagged(sims, runs):
    """No clean pixel of a star's 3x3 core is flagged.  Left out: pixels a cosmic ray did hit
    (those must be flagged) and pixels already flagged bad in DQ (a dead column crossing a star
    reads low against the blot and is flagged, as AstroDrizzle does; the final drizzle leaves
    them out either way)."""
    n_checked = 0
    for which in SETS:
        flagged, checked = star_core_flags(sims[which], runs[which])
        assert flagged == 0, which
        n_checked += checked
    assert n_checked > 200


def test_dead_column_through_a_star_does_not_flag_its_core(simulated, tmp_path):
    """Regression, found on random sets: in this one a dead column (DQ 4) crosses a bright
    star's core.  The column fails pass 1, and drizzlepac's test then flags the clean core
    pixels beside it, where the blot misses the peak by more than the pass-2 allowance.  dazzle
    keeps known-bad pixels from condemning good neighbours (``driz_cr.known_bad_pixels``);
    ``driz_cr_legacy`` shows drizzlepac's result."""
    sim = simulated(n_exposures=4, chips=2, size=256, seed=110, sky=0.1)
    default = dazzle.run(sim.files, str(tmp_path / "dz" / "syn"), **FRAME)
    legacy = dazzle.run(sim.files, str(tmp_path / "ad" / "syn"), **FRAME, driz_cr_legacy=True)
    # AstroDrizzle itself flags 1 clean core pixel on these exposures, and so does its rule in
    # dazzle on AstroDrizzle's frame (test_dead_column_case_in_astrodrizzle); on dazzle's frame
    # the rule flags 3 (measured)
    assert star_core_flags(sim, legacy)[0] >= 1
    assert star_core_flags(sim, default)[0] == 0
    # the column itself stays flagged, as in drizzlepac
    k, chip = 0, 2
    dq = fits.getdata(sim.files[k], ("DQ", chip))
    col = (dq & 4).any(axis=0).nonzero()[0]
    assert len(col) == 1
    assert np.array_equal(default.crmasks[k * 2 + chip - 1][:, col],
                          legacy.crmasks[k * 2 + chip - 1][:, col])


@pytest.mark.oracle
@needs_drizzlepac
def test_dead_column_case_in_astrodrizzle(simulated, tmp_path):
    """AstroDrizzle's own figure for the case above: its masks flag clean star-core pixels
    beside the dead column too, as dazzle's ``driz_cr_legacy`` does."""
    sim = simulated(n_exposures=4, chips=2, size=256, seed=110, sky=0.1)
    ad = run_astrodrizzle(sim.files, tmp_path / "ad", output="syn")
    masks = [fits.getdata(ad["crmask"][(root, c + 1)]).astype(bool)
             for root in sim.roots for c in range(sim.chips)]
    legacy = dazzle.run(sim.files, str(tmp_path / "dzl" / "syn"), output_frame="astrodrizzle",
                        driz_cr_legacy=True)
    n_ad = star_core_flags(sim, SimpleNamespace(crmasks=masks))[0]
    n_legacy = star_core_flags(sim, legacy)[0]
    print(f"\nstar-core flags beside the dead column: AstroDrizzle {n_ad}, driz_cr_legacy {n_legacy}")
    assert n_ad >= 1 and n_legacy == n_ad


def test_final_photometry_matches_truth(sims, runs):
    for sim, r in ((sims[w], runs[w]) for w in SETS):
        bright = sim.stars[sim.stars["flux_eps"] > 100.0]      # stars brighter than 100 e-/s
        ratios = aperture_fluxes(r.output, bright)
        assert len(ratios) >= 8
        assert abs(np.median(ratios) - 1) < 0.003, np.median(ratios)


@pytest.fixture(scope="module")
def twins(sims, simulated, tmp_path_factory):
    """Per set: (the pipeline on the same exposures without cosmic rays, the final drizzle of
    the noiseless truth) -- what :func:`crtruth.cr_residual` compares the runs with."""
    out = {}
    for w in SETS:
        d = tmp_path_factory.mktemp(f"twin{w}")
        nocr = _simulate(simulated, w, cosmic_rays=False)
        truth = _simulate(simulated, w, noise=False, cosmic_rays=False, hot_pixels=False)
        out[w] = (dazzle.run(nocr.files, str(d / "o0" / "syn"), **FRAME),
                  dazzle.run(truth.files, str(d / "ot" / "syn"), static=False, skysub=False,
                             median=False, blot=False, driz_cr=False, **FRAME))
    return out


@pytest.mark.parametrize("which", list(SETS))
def test_cosmic_ray_residual(which, sims, runs, twins, tmp_path):
    """What the cosmic rays leave in the final image: the final image minus the final image of
    the same exposures without cosmic rays, in units of the final image's noise, on the sky
    where every exposure covers the pixel (:func:`crtruth.cr_residual`).

    With 8 exposures nothing is left at 5 sigma (here, and on 60 random sets at most 4.6
    sigma: ``benchmarks/crreject_seeds.py``).  With 4 exposures 29 of 60 random sets keep 1-3
    pixels beyond 5 sigma, up to 7.4 (this test's 4x1: one pixel at 5.2; 4x2: one at 6.9).
    They are faint cosmic-ray charge in one exposure that the test passes: tails of 30-60 e-
    next to a flagged track, under the 3.0-sigma pass-2 threshold, and tracks on a star's
    wing, where the blot's gradient raises the threshold.  AstroDrizzle's algorithm and
    defaults, which dazzle keeps, leave the same pixels; with 4 exposures the issue's "no
    residual above 5 sigma" does not hold (README, "Agreement with AstroDrizzle")."""
    run0, truth = twins[which]
    z, sigma = cr_residual(runs[which], run0, truth)
    # without rejection the cosmic rays are all there
    raw = dazzle.run(sims[which].files, str(tmp_path / "raw" / "syn"), **FRAME, median=False, blot=False,
                     driz_cr=False)
    z_raw, _ = cr_residual(raw, run0, truth)
    n_over, n_raw = int((z > 5).sum()), int((z_raw > 5).sum())
    print(f"\n{which}: {n_over} of {z.size} pixels beyond 5 sigma, max {z.max():.2f} "
          f"(without CR rejection {n_raw}, max {z_raw.max():.0f})")
    assert z.size > 100000 and 0.003 < sigma < 0.01     # e-/s: 0.0067 (4), 0.0048 (8)
    assert n_raw > 1000
    if which.startswith("8"):
        assert n_over == 0 and z.max() < 5.0, (n_over, z.max())
    else:
        # measured here: 1 pixel (5.2 sigma, 4x1), 1 (6.9, 4x2).  The bound is not this set's
        # figure: it is the worst of 60 random sets never used to tune anything (3 pixels,
        # 7.4 sigma), where AstroDrizzle's own masks (driz_cr_legacy) leave more
        assert n_over <= 3 and z.max() < 7.5, (n_over, z.max())


#: Seeds never used to tune anything: the rates over several random data sets, so that no
#: claim rests on a lucky draw.  ``benchmarks/crreject_seeds.py`` runs more of them.
RANDOM_SEEDS = range(100, 106)


@pytest.mark.parametrize("which", ["4x1", "4x2", "8x1"])
def test_rates_over_random_sets(which, tmp_path):
    """The acceptance's rates on fresh random data sets (seeds used for nothing else): the
    detection rate pooled over the sets, the purity of every set, and the CR residual."""
    n, chips, size, _ = SETS[which]
    res = [study(tmp_path / str(s), n_exposures=n, chips=chips, size=size, seed=s, sky=0.1)
           for s in (RANDOM_SEEDS if n == 4 else RANDOM_SEEDS[:3])]
    for r in res:
        print(f"\n{which} seed {r.seed}: detection {r.detection:.4f}, purity {r.purity:.4f}, "
              f"{r.n_over5} pixels beyond 5 sigma, max {r.z_max:.2f}, star-core flags "
              f"{r.core_flags}, photometry {r.photometry:.4f}")
    detection = sum(r.hit for r in res) / sum(r.big for r in res)
    print(f"{which}: pooled detection {detection:.4f}")
    # measured, pooled: 4x1 98.90 %, 4x2 98.66 %, 8x1 99.10 %; single sets 98.1-99.3 %
    assert detection >= 0.985, detection
    assert all(r.purity >= 0.995 for r in res)      # measured >= 99.80 %
    assert all(r.core_flags == 0 for r in res)
    assert all(abs(r.photometry - 1) < 0.003 for r in res)
    if n == 8:
        assert all(r.n_over5 == 0 for r in res)     # measured max 3.9 sigma
    else:
        # measured: 2 and 3 pixels, max 6.2.  The bound is AstroDrizzle's rate: its masks
        # (driz_cr_legacy) leave 30 pixels on 30 random 4x1 sets, 1 a set, 6 for these 6
        # (README, the 30-set table; dazzle's leave 26)
        assert sum(r.n_over5 for r in res) <= 6 and max(r.z_max for r in res) < 7.5


# ---------------------------------------------------------------------------------------------
# products and inputs
# ---------------------------------------------------------------------------------------------


def test_products(sim4, run4):
    out = os.path.dirname(run4.output)
    assert run4.median == os.path.join(out, "syn_med.fits")
    with fits.open(run4.median) as h:
        med = h[0].data
        assert WCS(h[0].header).has_celestial
    # the median of the sky-subtracted singles: ~0 in the sky, stars positive
    assert abs(np.median(med[med != 0])) < 0.02
    for k, root in enumerate(sim4.roots):
        blt = fits.getdata(os.path.join(out, f"{root}_sci1_blt.fits"))
        crm = fits.getdata(os.path.join(out, f"{root}_sci1_crmask.fits"))
        assert blt.shape == crm.shape == (384, 384)
        assert crm.dtype == np.uint8 and set(np.unique(crm)) == {0, 1}
        np.testing.assert_array_equal(crm.astype(bool), run4.crmasks[k])
        # the blot is in the chip's units with the sky added back (40 e-)
        assert abs(np.median(blt) - 40.0) < 2.0
    assert not os.path.exists(os.path.join(out, f"{sim4.roots[0]}_crclean.fits"))


def test_inputs_untouched_unless_asked(sim4, run4, tmp_path):
    files = copy_files(sim4.files, tmp_path)
    before = file_digests(files)
    dazzle.run(files, str(tmp_path / "a" / "syn"), **FRAME)
    assert file_digests(files) == before
    assert not os.path.exists(tmp_path / "OrIg")
    # asked: originals backed up to OrIg/ first, then crbit ORed in where CRs were found
    r = dazzle.run(files, str(tmp_path / "b" / "syn"), **FRAME, update_input_dq=True, crbit=8192)
    for k, f in enumerate(files):
        backup = tmp_path / "OrIg" / os.path.basename(f)
        assert file_digests([backup]) == file_digests([sim4.files[k]])
        dq_old = fits.getdata(backup, ("DQ", 1))
        dq_new = fits.getdata(f, ("DQ", 1))
        cr = ~r.crmasks[k]
        np.testing.assert_array_equal(dq_new[cr], dq_old[cr] | 8192)
        np.testing.assert_array_equal(dq_new[~cr], dq_old[~cr])
        np.testing.assert_array_equal(fits.getdata(f, ("SCI", 1)), fits.getdata(backup, ("SCI", 1)))


def test_update_input_dq_without_preserve_keeps_no_backup(sim4, run4, tmp_path):
    # preserve=False (AstroDrizzle's parameter): the DQ is updated as with preserve=True, but
    # no copy of the original goes to OrIg/
    files = copy_files(sim4.files, tmp_path)
    r = dazzle.run(files, str(tmp_path / "b" / "syn"), **FRAME, update_input_dq=True, preserve=False)
    assert not os.path.exists(tmp_path / "OrIg")
    for k, f in enumerate(files):
        cr = ~r.crmasks[k]
        assert cr.any()
        dq_old = fits.getdata(sim4.files[k], ("DQ", 1))
        np.testing.assert_array_equal(fits.getdata(f, ("DQ", 1))[cr], dq_old[cr] | 4096)


# ---------------------------------------------------------------------------------------------
# parameters of the steps (their effect in the whole pipeline; each step's own tests go deeper)
# ---------------------------------------------------------------------------------------------


def test_driz_cr_parameters(sim4, run4, tmp_path):
    _, _, flags0 = cr_stats(sim4, run4)
    r = dazzle.run(sim4.files, str(tmp_path / "snr" / "syn"), **FRAME, driz_cr_snr="5.0 4.5")
    assert cr_stats(sim4, r)[2] < flags0            # higher thresholds: fewer flags
    r = dazzle.run(sim4.files, str(tmp_path / "grow" / "syn"), **FRAME, driz_cr_grow=3)
    assert cr_stats(sim4, r)[2] > 2 * flags0        # grown masks
    r = dazzle.run(sim4.files, str(tmp_path / "scale" / "syn"), **FRAME, driz_cr_scale="3.0 2.0")
    assert cr_stats(sim4, r)[2] < flags0            # more room for interpolation errors
    r = dazzle.run(sim4.files, str(tmp_path / "corr" / "syn"), **FRAME, driz_cr_corr=True)
    out = os.path.dirname(r.output)
    root = sim4.roots[0]
    clean = fits.getdata(os.path.join(out, f"{root}_crclean.fits"), ("SCI", 1))
    sci = fits.getdata(sim4.files[0], ("SCI", 1))
    blt = fits.getdata(os.path.join(out, f"{root}_sci1_blt.fits"))
    cr = ~r.crmasks[0]
    np.testing.assert_allclose(clean[cr], blt[cr], rtol=1e-6)
    np.testing.assert_array_equal(clean[~cr], sci[~cr])


def test_blot_parameters(sim4, run4, tmp_path):
    out0 = os.path.dirname(run4.output)
    root = sim4.roots[1]
    b0 = fits.getdata(os.path.join(out0, f"{root}_sci1_blt.fits")).astype(float)
    r = dazzle.run(sim4.files, str(tmp_path / "nosky" / "syn"), **FRAME, blot_addsky=False, blot_skyval=5.0,
                   driz_cr=False)
    b1 = fits.getdata(os.path.join(os.path.dirname(r.output), f"{root}_sci1_blt.fits")).astype(float)
    sky = run4.skies[1]
    # blot_addsky=False adds blot_skyval instead of the chip's sky
    inner = np.s_[20:-20, 20:-20]
    np.testing.assert_allclose(b1[inner], b0[inner] - sky + 5.0, atol=1e-3)
    r = dazzle.run(sim4.files, str(tmp_path / "lin" / "syn"), **FRAME, blot_interp="linear", driz_cr=False)
    b2 = fits.getdata(os.path.join(os.path.dirname(r.output), f"{root}_sci1_blt.fits")).astype(float)
    d = np.abs(b2[inner] - b0[inner])
    assert d.max() > 1.0 and np.median(d) < 0.5   # different interpolation, same image


def test_median_parameters(sim4, run4, tmp_path):
    m0 = fits.getdata(run4.median)
    r = dazzle.run(sim4.files, str(tmp_path / "med" / "syn"), **FRAME, combine_type="median", blot=False,
                   driz_cr=False, driz_combine=False)
    m1 = fits.getdata(r.median)
    r = dazzle.run(sim4.files, str(tmp_path / "mean" / "syn"), **FRAME, combine_type="mean", blot=False,
                   driz_cr=False, driz_combine=False)
    m2 = fits.getdata(r.median)
    # a mean keeps the cosmic rays, the median (and minmed) reject them
    assert (m2 > 0.5).sum() > 1.5 * (m1 > 0.5).sum()
    assert np.abs(m1 - m0).max() > 0


def test_static_and_sky_steps(sim4, run4, tmp_path):
    assert np.allclose(run4.skies, 40.0, atol=0.5)      # truth: 0.1 e-/s x 400 s
    r = dazzle.run(sim4.files, str(tmp_path / "nosky" / "syn"), **FRAME, skysub=False, median=False, blot=False,
                   driz_cr=False)
    assert r.skies == [0.0] * 4
    with fits.open(r.output) as h, fits.open(run4.output) as h0:
        diff = np.nanmedian(h["SCI"].data - h0["SCI"].data)
    assert diff == pytest.approx(40.0 / 400.0, rel=0.02)   # the sky rate is left in


def test_one_exposure_turns_the_cr_steps_off(sim4, tmp_path):
    r = dazzle.run(sim4.files[:1], str(tmp_path / "one" / "syn"), **FRAME)
    assert r.median is None and r.crmasks is None and os.path.exists(r.output)


# ---------------------------------------------------------------------------------------------
# the real AstroDrizzle (oracle)
# ---------------------------------------------------------------------------------------------


def _rel(a, b):
    """|a - b| relative to |b| (floored at 1e-3 of b's largest value), over pixels both cover."""
    cov = (a != 0) & (b != 0) & np.isfinite(a) & np.isfinite(b)
    return np.abs(a[cov] - b[cov]) / np.maximum(np.abs(b[cov]), 1e-3 * np.abs(b[cov]).max())


def _single_in_frame(path, shape):
    """dazzle's single-drizzle image (the exposure's footprint box, at DZ_X0/DZ_Y0) placed in
    the whole single frame, as drizzlepac writes it."""
    with fits.open(path) as h:
        data, hdr = h[0].data.astype(np.float64), h[0].header
    out = np.zeros(shape)
    x0, y0 = int(hdr.get("DZ_X0", 0)), int(hdr.get("DZ_Y0", 0))
    out[y0:y0 + data.shape[0], x0:x0 + data.shape[1]] = data
    return out


@pytest.mark.oracle
@needs_drizzlepac
@pytest.mark.parametrize("which", ["4x1", "4x2"])
def test_same_products_as_astrodrizzle(which, sims, tmp_path):
    """Every intermediate product against AstroDrizzle's on the same exposures: the skies, the
    single-drizzle images, the median, the blots and the cosmic-ray masks.  Each bound is about
    10x what is measured (figures beside it; the two sets' larger one), so a regression of
    10x fails."""
    sim = sims[which]
    ad = run_astrodrizzle(sim.files, tmp_path / "ad", output="syn")
    r = dazzle.run(sim.files, str(tmp_path / "dz" / "syn"), output_frame="astrodrizzle")
    legacy = dazzle.run(sim.files, str(tmp_path / "dzl" / "syn"), output_frame="astrodrizzle",
                        driz_cr_legacy=True)
    out = os.path.dirname(r.output)
    ad_sky = [fits.getval(f, "MDRIZSKY", ("SCI", c + 1)) for f in ad["inputs"] for c in range(sim.chips)]
    sky = np.max(np.abs(np.subtract(r.skies, ad_sky)))
    ma, md = fits.getdata(ad["med"]), fits.getdata(r.median)
    assert ma.shape == md.shape
    med = np.median(_rel(md, ma))
    single = blot = 0.0
    cr_diff = cr_legacy = 0.0
    for k, root in enumerate(sim.roots):
        sa = fits.getdata(ad["single_sci"][root]).astype(np.float64)
        sd = _single_in_frame(os.path.join(out, f"{root}_single_sci.fits"), sa.shape)
        single = max(single, np.median(_rel(sd, sa)))
        for c in range(sim.chips):
            ba = fits.getdata(ad["blt"][(root, c + 1)]).astype(np.float64)
            bd = fits.getdata(os.path.join(out, f"{root}_sci{c + 1}_blt.fits")).astype(np.float64)
            assert ba.shape == bd.shape
            inner = np.s_[3:-3, 3:-3]     # the blot's edge rows: kernel cut at the frame's edge
            blot = max(blot, np.median(np.abs(bd[inner] - ba[inner]) / np.abs(ba[inner])))
            a = fits.getdata(ad["crmask"][(root, c + 1)]).astype(bool)
            cr_diff = max(cr_diff, (a != r.crmasks[k * sim.chips + c]).mean())
            cr_legacy = max(cr_legacy, (a != legacy.crmasks[k * sim.chips + c]).mean())
    print(f"\n{which}: sky {sky:.2e} e-, single {single:.2e}, median {med:.2e}, blot {blot:.2e} "
          f"(median relative), CR masks differ on {cr_diff:.2e} (legacy {cr_legacy:.2e}) of a chip")
    assert sky < 2e-5                 # e-; measured 1.5e-6 (4x1), 1.6e-6 (4x2)
    assert single < 8e-5              # measured 3.7e-6, 8.4e-6
    assert med < 8e-5                 # measured 3.5e-6, 8.1e-6
    assert blot < 9e-5                # measured 8.6e-6, 8.7e-6 (the blot holds the sky)
    # CR masks (measured 5.4e-5 (4x1) and 1.2e-4 (4x2) of a chip's pixels at most: dazzle also finds the cosmic rays
    # in the outer rows and columns, which drizzlepac's derivative misses; README "Deliberate
    # differences"); driz_cr_legacy reproduces drizzlepac's masks (measured 1.4e-5 = 2 pixels
    # of 384^2 on 4x1, 0 on 4x2)
    assert cr_diff < 1.2e-3
    assert cr_legacy < 1.4e-4


# ---------------------------------------------------------------------------------------------
# resuming an interrupted run
# ---------------------------------------------------------------------------------------------


def test_resume_reuses_complete_products_and_redoes_the_rest(sim4, run4, tmp_path, monkeypatch):
    import dazzle.graph as graph
    import dazzle.products as products

    out = tmp_path / "res"
    real_write = products.write_block

    def dies_in_final(canvas, hdu, *a, **kw):
        if canvas.path.endswith("_drz.fits"):
            raise RuntimeError("node lost")
        return real_write(canvas, hdu, *a, **kw)

    monkeypatch.setattr(products, "write_block", dies_in_final)
    with pytest.raises(RuntimeError, match="node lost"):
        dazzle.run(sim4.files, str(out / "syn"), **FRAME)
    monkeypatch.setattr(products, "write_block", real_write)
    assert not (out / "syn_drz.fits").exists()
    assert (out / "syn_med.fits").exists()

    # corrupt one single-drizzled image: its exposure must be redone, nothing else
    bad = out / f"{sim4.roots[2]}_single_sci.fits"
    with open(bad, "r+b") as f:
        f.seek(-100, 2)
        f.write(b"\x7f" * 8)

    calls = {"single": 0, "blot": 0}
    real_single, real_blot = graph.single_chip, graph._blot_cr

    def counting_single(*a, **kw):
        calls["single"] += 1
        return real_single(*a, **kw)

    def counting_blot(*a, **kw):
        calls["blot"] += 1
        return real_blot(*a, **kw)

    monkeypatch.setattr(graph, "single_chip", counting_single)
    monkeypatch.setattr(graph, "_blot_cr", counting_blot)
    r = dazzle.run(sim4.files, str(out / "syn"), **FRAME, resume=True)
    assert calls == {"single": 1, "blot": 0}
    assert "median" in r.reused and len(r.reused) == 1 + 3 + 4   # median, 3 singles, 4 CR masks
    # and the products are those of an uninterrupted run
    with fits.open(r.output) as a, fits.open(run4.output) as b:
        for ext in ("SCI", "WHT", "CTX"):
            np.testing.assert_array_equal(a[ext].data, b[ext].data)
    # a changed parameter invalidates everything
    calls.update(single=0, blot=0)
    dazzle.run(sim4.files, str(out / "syn"), **FRAME, resume=True, driz_sep_pixfrac=0.9)
    assert calls == {"single": 4, "blot": 4}
