"""Tests of step 6, ``driz_cr``: dazzle.kernels.cr and dazzle.steps.driz_cr.

* The derivative, analytically, with correct and drizzlepac (legacy) edges.
* Detection and purity against known cosmic rays with a *perfect* blot (the noiseless truth),
  on arrays and on ``dazzle.simulate`` exposures: this isolates the test itself from the
  median/blot steps.
* Each parameter's documented effect (snr, scale, grow, ctegrow and its direction, units,
  legacy flags, untested pixels) and the small product helpers.
* Oracle: drizzlepac 3.11's own ``drizCR._driz_cr`` run (in a subprocess) on the same arrays,
  and a complete AstroDrizzle run on simulated exposures: dazzle with ``legacy=True`` must
  agree >= 99.99 %.  Skipped without drizzlepac.

Note on purity and the noise term.  With a perfect blot the only false flags are noise
excursions beyond the thresholds: a clean pixel is flagged when ``|delta| > snr1 * sigma`` (or
> snr2 sigma next to such a pixel), about ``2 Q(3.5) = 4.65e-4`` of the pixels when the noise
term is the true sigma (``noise="sky_once"``).  At a realistic cosmic-ray density (~0.7 % of
the pixels above 50 e-) that caps purity near 95 %, whatever the implementation; the tests pin
that mode's false-flag rate to the statistical floor.  The default noise term is drizzlepac's
(``noise="astrodrizzle"``: the sky counted a second time), which inflates sigma; at
AstroDrizzle's reference noise level (about 8 e- per pixel) it reaches both >= 98.5 %
detection and >= 99.5 % purity, which is pinned too.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from astropy.io import fits

from astrodrizzle_oracle import have_drizzlepac, needs_drizzlepac, skip_or_fail
from dazzle.kernels.cr import cr_test, cte_grow_mask, derivative, grow_mask
from dazzle.params import defaults, parse_value
from dazzle.steps.driz_cr import (CRChip, CRSettings, chip_cr_mask, conversion_factor, cr_mask, crclean,
                                  crclean_dq, crmask_product, cte_direction, flag_dq, known_bad_pixels)

RN = 4.7
#: 2 Q(3.5) + the small pass-2-next-to-pass-1 term: the false-flag floor with a perfect blot.
_Q35 = math.erfc(3.5 / math.sqrt(2))
FLOOR = _Q35 + math.erfc(3.0 / math.sqrt(2)) * 8 * _Q35


def mask_of(sci, blot, *, noise=None, legacy=None, legacy_edges=None, legacy_gain=None, dq_good=None,
            known_bad=None, **kw):
    """:func:`cr_mask` with everything as keywords: AstroDrizzle's parameters (``driz_cr_snr=``
    ...; ``noise``/``legacy`` for ``driz_cr_noise``/``driz_cr_legacy``; the rest defaults),
    ``legacy_edges``/``legacy_gain`` apart, and the chip's fields (:class:`CRChip`: ``sky``,
    ``gain``, ``rdnoise`` ...)."""
    chip = CRChip(**{k: kw.pop(k) for k in list(kw) if k in CRChip.__dataclass_fields__})
    if noise is not None:
        kw["driz_cr_noise"] = noise
    if legacy is not None:
        kw["driz_cr_legacy"] = legacy
    settings = CRSettings.of(**kw)
    if legacy_edges is not None:
        settings = replace(settings, legacy_edges=legacy_edges)
    if legacy_gain is not None:
        settings = replace(settings, legacy_gain=legacy_gain)
    return cr_mask(sci, blot, settings, chip, dq_good=dq_good, known_bad=known_bad)


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def _qderiv_numpy(a):
    """drizzlepac quickDeriv.qderiv's slices, restated in numpy (independent of the kernel)."""
    a = np.asarray(a, np.float64)
    n1, n2 = a.shape
    out = np.zeros_like(a)
    for sl_dst, sl_src in (
            ((slice(0, n1 - 1), slice(1, n2 - 1)), (slice(0, n1 - 1), slice(0, n2 - 2))),
            ((slice(0, n1 - 1), slice(0, n2 - 2)), (slice(0, n1 - 1), slice(1, n2 - 1))),
            ((slice(1, n1 - 1), slice(0, n2 - 1)), (slice(0, n1 - 2), slice(0, n2 - 1))),
            ((slice(0, n1 - 2), slice(0, n2 - 1)), (slice(1, n1 - 1), slice(0, n2 - 1)))):
        tmp = np.zeros_like(a)
        tmp[sl_dst] = a[sl_src]
        out = np.maximum(out, np.abs(a - tmp))
    return out.astype(np.float32)


def _cosmic_rays(rng, shape, n_events, *, deposit=(20.0, 3000.0), spill=0.04):
    """Short straight tracks (1-6 px, 8 directions), charge log-uniform per pixel, ``spill``
    of it into the 4 side neighbours.  Returns the charge map (e-)."""
    ny, nx = shape
    charge = np.zeros(shape)
    dirs = [(1, 0), (0, 1), (1, 1), (1, -1), (-1, 0), (0, -1), (-1, -1), (-1, 1)]
    for _ in range(n_events):
        x, y = int(rng.integers(0, nx)), int(rng.integers(0, ny))
        dx, dy = dirs[int(rng.integers(0, 8))]
        q = math.exp(rng.uniform(math.log(deposit[0]), math.log(deposit[1])))
        for _ in range(int(rng.integers(1, 7))):
            if not (0 <= x < nx and 0 <= y < ny):
                break
            c = q * rng.uniform(0.6, 1.4)
            charge[y, x] += c * (1 - 4 * spill)
            for ex, ey in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                if 0 <= x + ex < nx and 0 <= y + ey < ny:
                    charge[y + ey, x + ex] += c * spill
            x += dx
            y += dy
    return charge


def _scene(rng, shape, sky, n_stars, flux=(2e3, 3e5), sigma=1.2, shift=(0.0, 0.0)):
    """Smooth sky (+-30 %) and Gaussian stars; returns (image, star centres)."""
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    img = sky * (1.0 + 0.3 * np.sin(xx / 37.0) * np.cos(yy / 29.0))
    centres = []
    for _ in range(n_stars):
        cx, cy = rng.uniform(4, nx - 5), rng.uniform(4, ny - 5)
        f = math.exp(rng.uniform(math.log(flux[0]), math.log(flux[1])))
        img += f / (2 * math.pi * sigma ** 2) * np.exp(
            -((xx - cx - shift[0]) ** 2 + (yy - cy - shift[1]) ** 2) / (2 * sigma ** 2))
        centres.append((cx, cy))
    return img, centres


def _core_mask(shape, centres, radius=2):
    m = np.zeros(shape, bool)
    for cx, cy in centres:
        ix, iy = int(round(cx)), int(round(cy))
        m[max(iy - radius, 0):iy + radius + 1, max(ix - radius, 0):ix + radius + 1] = True
    return m


def _stats(flag, charge, ok=None):
    ok = np.ones(flag.shape, bool) if ok is None else ok
    cr = charge > 0
    big = (charge > 50) & ok
    det = np.count_nonzero(flag & big) / np.count_nonzero(big)
    pur = np.count_nonzero(flag & cr & ok) / max(np.count_nonzero(flag & ok), 1)
    false = np.count_nonzero(flag & ~cr & ok) / np.count_nonzero(~cr & ok)
    return det, pur, false


# ---------------------------------------------------------------------------------------------
# derivative
# ---------------------------------------------------------------------------------------------

def test_derivative_ramp_interior_and_edges():
    ny, nx = 7, 9
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    b = 100.0 + 2.0 * xx - 3.0 * yy
    d = derivative(b)
    assert d.dtype == np.float32 and d.shape == b.shape
    # correct edges: every pixel sees at least one neighbour along each axis -> max(|2|, |3|)
    np.testing.assert_array_equal(d, np.full(b.shape, 3.0, np.float32))
    legacy = derivative(b, legacy_edges=True)
    np.testing.assert_array_equal(legacy, _qderiv_numpy(b))
    # drizzlepac: rows 0, ny-2, ny-1 and columns 0, nx-2, nx-1 compare with zeros -> D >= |b|
    edge = np.zeros(b.shape, bool)
    edge[[0, ny - 2, ny - 1], :] = True
    edge[:, [0, nx - 2, nx - 1]] = True
    assert np.all(legacy[edge] >= np.abs(b[edge]).astype(np.float32))
    np.testing.assert_array_equal(legacy[~edge], 3.0)


def test_derivative_spike_corner_and_tiny_images():
    b = np.zeros((5, 6), np.float32)
    b[2, 3] = 10.0
    d = derivative(b)
    expect = np.zeros_like(b)
    expect[2, 3] = 10
    expect[1, 3] = expect[3, 3] = expect[2, 2] = expect[2, 4] = 10
    np.testing.assert_array_equal(d, expect)
    # a corner has 2 neighbours, its value compared only with them
    c = np.full((4, 4), 5.0)
    c[0, 0] = 7.0
    dc = derivative(c)
    assert dc[0, 0] == 2.0 and dc[0, 1] == 2.0 and dc[1, 0] == 2.0 and dc[1, 1] == 0.0
    assert derivative(np.full((1, 1), 9.0))[0, 0] == 0.0
    np.testing.assert_array_equal(derivative(np.array([[1.0, 4.0, 2.0]])), [[3.0, 3.0, 2.0]])
    assert derivative(np.zeros((0, 3))).shape == (0, 3)
    for shape in ((1, 1), (1, 3), (2, 2), (3, 2), (4, 5), (6, 3)):
        r = np.random.default_rng(7).normal(50, 10, shape)
        np.testing.assert_array_equal(derivative(r, legacy_edges=True), _qderiv_numpy(r))


def test_derivative_random_matches_bruteforce_and_ignores_nan():
    rng = np.random.default_rng(3)
    b = rng.normal(100, 20, (23, 31)).astype(np.float32)
    ny, nx = b.shape
    ref = np.zeros(b.shape)
    for j in range(ny):
        for i in range(nx):
            for dj, di in ((0, 1), (0, -1), (1, 0), (-1, 0)):
                if 0 <= j + dj < ny and 0 <= i + di < nx:
                    ref[j, i] = max(ref[j, i], abs(float(b[j, i]) - float(b[j + dj, i + di])))
    np.testing.assert_array_equal(derivative(b), ref.astype(np.float32))
    b[5, 5] = np.nan
    d = derivative(b)
    assert np.all(np.isfinite(d)) and d[5, 5] == 0.0
    assert d[5, 6] == np.float32(max(abs(float(b[5, 6]) - float(b[5, 7])),
                                     abs(float(b[5, 6]) - float(b[4, 6])),
                                     abs(float(b[5, 6]) - float(b[6, 6]))))


# ---------------------------------------------------------------------------------------------
# detection and purity with a perfect blot
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def perfect_blot_case():
    """512^2: sky ~40 e- (AstroDrizzle's reference noise, ~8 e- per pixel), 60 stars, ~1.4 %
    of the pixels hit by cosmic rays; blot = the noiseless truth."""
    rng = np.random.default_rng(11)
    shape = (512, 512)
    truth, centres = _scene(rng, shape, 40.0, 60)
    charge = _cosmic_rays(rng, shape, 1400)
    sci = (rng.poisson(truth) + rng.normal(0.0, RN, shape) + charge).astype(np.float32)
    return sci, truth.astype(np.float32), charge, _core_mask(shape, centres)


def test_detection_and_purity_perfect_blot(perfect_blot_case):
    sci, blot, charge, core = perfect_blot_case
    flag = ~mask_of(sci, blot, sky=40.0, rdnoise=RN, noise="sky_once")
    det, pur, false = _stats(flag, charge)
    print(f"\nperfect blot, sky once: detection(>50 e-) {det:.4f}  purity {pur:.4f}  "
          f"false-flag rate {false:.2e} (floor {FLOOR:.2e})")
    assert det >= 0.985
    assert false <= 1.35 * FLOOR           # nothing beyond the statistical floor
    assert pur >= 0.93
    assert not np.any(flag & core & (charge == 0)), "a star core was flagged"
    # the default, drizzlepac's noise term (sky twice): the AstroDrizzle operating point
    flag_l = ~mask_of(sci, blot, sky=40.0, rdnoise=RN)
    det_l, pur_l, false_l = _stats(flag_l, charge)
    print(f"perfect blot, default noise (sky twice): detection {det_l:.4f}  purity {pur_l:.4f}  "
          f"false-flag rate {false_l:.2e}")
    assert det_l >= 0.985 and pur_l >= 0.995
    assert not np.any(flag_l & core & (charge == 0))


def test_star_peaks_with_matching_blot_never_flagged():
    rng = np.random.default_rng(5)
    shape = (200, 200)
    truth, centres = _scene(rng, shape, 30.0, 40, flux=(1e4, 3e6), sigma=1.0)
    core = _core_mask(shape, centres, radius=3)
    for trial in range(3):
        sci = (rng.poisson(truth) + rng.normal(0.0, RN, shape)).astype(np.float32)
        for legacy in (False, True):
            flag = ~mask_of(sci, truth, sky=30.0, rdnoise=RN, legacy=legacy)
            assert not np.any(flag & core)
    # noiseless identical images: nothing at all is flagged
    assert mask_of(truth, truth, sky=30.0, rdnoise=0.0).all()


@pytest.fixture(scope="module")
def simulated_pair(simulated):
    """dazzle.simulate: 4 exposures of 256^2 with cosmic rays, and the same seed without noise
    and cosmic rays.  The noiseless files hold the expected electrons per pixel: sky*EXPTIME +
    stars.  Hot pixels and dead columns are left out of the truth blot (a median never has
    them: they are DQ-flagged and excluded before the median) and tested as ``dq_good``.
    Sky 0.1 e-/s * 400 s = 40 e-: AstroDrizzle's reference noise level (~8 e- per pixel)."""
    kw = dict(size=256, n_exposures=4, seed=0, sky=0.1, exptime=400.0, read_noise=RN)
    noisy = simulated(**kw)
    clean = simulated(noise=False, cosmic_rays=False, hot_pixels=False, bad_columns=0, **kw)
    return noisy, clean


def test_detection_and_purity_simulated(simulated_pair):
    noisy, clean = simulated_pair
    totals = {False: np.zeros(4), True: np.zeros(4)}
    n_core_flags = {False: 0, True: 0}
    for k in range(noisy.n_exposures):
        with fits.open(noisy.files[k]) as h:
            sci = h["SCI", 1].data.astype(np.float32)
            dq = h["DQ", 1].data
            gain = h[0].header["ATODGNC"]
        blot = fits.getdata(clean.files[k], ("SCI", 1)).astype(np.float32)
        sky = noisy.params["sky"][k] * noisy.params["exptime"][k]
        # the truth blot really is sky + stars, in electrons
        assert abs(np.median(blot) - sky) < 0.5
        charge = noisy.cr_charge[k][0]
        ok = dq == 0
        core = np.zeros(sci.shape, bool)
        for s in noisy.star_pixels[k]:
            if s["counts"] > 2000:
                core |= _core_mask(sci.shape, [(s["x"], s["y"])], radius=1)
        for legacy in (False, True):
            # gain (ATODGN = 2) must not matter: the data are electrons (effective gain 1)
            flag = ~mask_of(sci, blot, sky=sky, gain=gain, rdnoise=RN, exptime=400.0,
                            in_units="counts", bunit="ELECTRONS", dq_good=ok,
                            noise="astrodrizzle" if legacy else "sky_once")
            assert not np.any(flag & ~ok), "untested (DQ-flagged) pixels are never flagged"
            cr = charge > 0
            big = (charge > 50) & ok
            totals[legacy] += [np.count_nonzero(flag & big), np.count_nonzero(big),
                               np.count_nonzero(flag & cr), np.count_nonzero(flag)]
            n_core_flags[legacy] += int(np.count_nonzero(flag & core & ~cr))
    for legacy in (False, True):
        t = totals[legacy]
        print(f"\nsimulated, truth blot, sky twice={legacy}: detection(>50 e-) "
              f"{t[0] / t[1]:.4f} of {int(t[1])}, purity {t[2] / t[3]:.4f} of {int(t[3])} flags")
        assert t[0] / t[1] >= 0.985
        assert n_core_flags[legacy] == 0, "star-core pixels were flagged"
    assert totals[True][2] / totals[True][3] >= 0.995
    n_clean = 4 * 256 * 256 - totals[False][2]
    assert (totals[False][3] - totals[False][2]) / n_clean <= 1.35 * FLOOR


# ---------------------------------------------------------------------------------------------
# parameters
# ---------------------------------------------------------------------------------------------

def _flat(n=21, level=100.0):
    return np.full((n, n), level, np.float32)


def test_threshold_is_exact_and_snr_scale_effects():
    blot = _flat()
    # N = sqrt(100 + rn^2) with rn = 0 -> 10 e-; D = 0 on the flat blot
    # '<=': exactly at the pass-1 threshold is good (and an isolated pass-1 pass is good)
    for amp, snr, good in ((35.0, (3.5, 3.0), True), (35.01, (3.5, 3.0), False),
                           (34.9, (4.0, 3.5), True),
                           (30.0, (3.5, 3.0), True), (35.5, (3.5, 3.0), False),
                           (40.0, (4.5, 3.0), True)):
        sci = blot.copy()
        sci[10, 10] += amp
        m = mask_of(sci, blot, rdnoise=0.0, driz_cr_snr=snr)
        assert bool(m[10, 10]) is good, (amp, snr)
        assert m.sum() == m.size - (0 if good else 1)
    # a pixel between the pass-2 and pass-1 thresholds is a CR only next to a pass-1 failure
    sci = blot.copy()
    sci[10, 10] += 32.0     # fails pass 2 (30), passes pass 1 (35)
    assert mask_of(sci, blot, rdnoise=0.0).all()
    sci[10, 11] += 80.0     # fails pass 1: both are cosmic rays now
    m = mask_of(sci, blot, rdnoise=0.0)
    assert not m[10, 10] and not m[10, 11] and m.sum() == m.size - 2
    sci[10, 13] += 32.0     # two pixels away from the pass-1 failure: stays good
    assert mask_of(sci, blot, rdnoise=0.0)[10, 13]
    # scale: a blot with structure raises the threshold by scale*D
    blot2 = blot.copy()
    blot2[:, 11:] += 50.0   # an edge: D = 50 on columns 10 and 11
    sci = blot2.copy()
    sci[5, 10] += 50.0      # +50 e-: > 3.5 N = 35 but < 1.2*50 + 35 ...
    assert mask_of(sci, blot2, rdnoise=0.0)[5, 10]
    assert not mask_of(sci, blot2, rdnoise=0.0, driz_cr_scale="0 0")[5, 10]
    assert not mask_of(sci, blot2, rdnoise=0.0, driz_cr_scale=(0.2, 0.1))[5, 10]


def test_scale_absorbs_subpixel_misregistration():
    rng = np.random.default_rng(8)
    shape = (160, 160)
    truth, centres = _scene(rng, shape, 40.0, 25, flux=(2e4, 5e5))
    shifted, _ = _scene(np.random.default_rng(8), shape, 40.0, 25, flux=(2e4, 5e5),
                        shift=(0.12, -0.08))
    sci = (rng.poisson(shifted) + rng.normal(0, RN, shape)).astype(np.float32)
    core = _core_mask(shape, centres, 3)
    assert not np.any(~mask_of(sci, truth, sky=40.0, rdnoise=RN) & core)
    assert np.count_nonzero(~mask_of(sci, truth, sky=40.0, rdnoise=RN,
                                     driz_cr_scale="0 0") & core) > 10


def test_grow():
    good = np.ones((9, 10), np.uint8)
    good[4, 5] = 0
    np.testing.assert_array_equal(grow_mask(good, 1), good)
    np.testing.assert_array_equal(grow_mask(good, 0), good)
    g3 = grow_mask(good, 3)
    exp3 = np.ones_like(good)
    exp3[3:6, 4:7] = 0
    np.testing.assert_array_equal(g3, exp3)
    # even box: scipy 'same' alignment, rows/cols -(g//2)..(g-1)//2 -> CR spreads to +1 side
    g2 = grow_mask(good, 2)
    exp2 = np.ones_like(good)
    exp2[4:6, 5:7] = 0
    np.testing.assert_array_equal(g2, exp2)
    g4 = grow_mask(good, 4)
    exp4 = np.ones_like(good)
    exp4[3:7, 4:8] = 0
    np.testing.assert_array_equal(g4, exp4)
    # at the corner the box is cut by the image
    c = np.ones((5, 5), np.uint8)
    c[0, 0] = 0
    e = np.ones_like(c)
    e[0:2, 0:2] = 0
    np.testing.assert_array_equal(grow_mask(c, 3), e)
    # through the step function
    blot = _flat()
    sci = blot.copy()
    sci[10, 10] += 500
    m = mask_of(sci, blot, rdnoise=0.0, driz_cr_grow=3)
    assert np.count_nonzero(~m) == 9 and not m[9:12, 9:12].any()


def test_ctegrow_direction_and_edges():
    good = np.ones((12, 5), np.uint8)
    good[6, 2] = 0
    up = cte_grow_mask(good, 3, +1)
    down = cte_grow_mask(good, 3, -1)
    # cte_dir=+1: a pixel is masked if a CR lies in the 3 pixels above it -> rows 3..5
    assert sorted(zip(*np.nonzero(up == 0))) == [(3, 2), (4, 2), (5, 2)]
    # cte_dir=-1: rows 7..9
    assert sorted(zip(*np.nonzero(down == 0))) == [(7, 2), (8, 2), (9, 2)]
    assert cte_grow_mask(good, 3, 0).all() and cte_grow_mask(good, 0, 1).all()
    with pytest.raises(ValueError):
        cte_grow_mask(good, 3, 2)
    # near the top edge drizzlepac's kernel reflects: a CR at row ny-2 masks row ny-1 too
    top = np.ones((8, 3), np.uint8)
    top[6, 1] = 0
    assert sorted(zip(*np.nonzero(cte_grow_mask(top, 2, 1) == 0))) == [(4, 1), (5, 1)]
    assert sorted(zip(*np.nonzero(cte_grow_mask(top, 2, 1, legacy_edges=True) == 0))) == [
        (4, 1), (5, 1), (7, 1)]
    # through the step function: the CR itself and its tail
    blot = _flat()
    sci = blot.copy()
    sci[10, 10] += 500
    m = mask_of(sci, blot, rdnoise=0.0, driz_cr_ctegrow=4, cte_direction=-1)
    assert sorted(zip(*np.nonzero(~m))) == [(r, 10) for r in range(10, 15)]
    m = mask_of(sci, blot, rdnoise=0.0, driz_cr_ctegrow=4, cte_direction=1)
    assert sorted(zip(*np.nonzero(~m))) == [(r, 10) for r in range(6, 11)]
    # no CTE direction (SBC, IR, ...): no tail (drizzlepac would mask the whole chip)
    m = mask_of(sci, blot, rdnoise=0.0, driz_cr_ctegrow=4, cte_direction=0)
    assert np.count_nonzero(~m) == 1


def test_cte_direction_table():
    assert cte_direction("ACS", "WFC", 1) == -1 and cte_direction("ACS", "WFC", 2) == 1
    assert cte_direction("WFC3", "UVIS", 1) == -1 and cte_direction("WFC3", "UVIS", 2) == 1
    assert cte_direction("ACS", "HRC", 1, "A") == 1 and cte_direction("ACS", "HRC", 1, "C") == -1
    assert cte_direction("WFPC2", "", 3) == -1 and cte_direction("STIS", "CCD") == 1
    for inst, det in (("ACS", "SBC"), ("WFC3", "IR"), ("NICMOS", ""), ("", "")):
        assert cte_direction(inst, det) == 0


def test_edges_correct_vs_legacy():
    rng = np.random.default_rng(4)
    blot = np.full((40, 50), 1000.0, np.float32)
    sci = (blot + rng.normal(0, 1.0, blot.shape)).astype(np.float32)
    hits = [(0, 20), (39, 20), (38, 25), (20, 0), (20, 49), (20, 48), (0, 0), (39, 49)]
    for y, x in hits:
        sci[y, x] += 400.0
    m = mask_of(sci, blot, rdnoise=3.0)
    assert all(not m[y, x] for y, x in hits) and np.count_nonzero(~m) == len(hits)
    # drizzlepac: D >= |b| = 1000 on rows 0, ny-2, ny-1 and columns 0, nx-2, nx-1: the
    # thresholds rise by 1200 / 700 e- there -> missed
    ml = mask_of(sci, blot, rdnoise=3.0, legacy_edges=True)
    assert all(ml[y, x] for y, x in hits)
    sci[20, 25] += 400.0   # an interior CR is found either way
    assert not mask_of(sci, blot, rdnoise=3.0, legacy=True)[20, 25]


def test_sky_counted_once_or_twice():
    blot = _flat(level=100.0)        # 100 e- including a sky of 100
    sci = blot.copy()
    sci[10, 10] += 45.0              # N = 10 (once) or sqrt(200) = 14.1 (twice)
    # default, drizzlepac's term: 45 < 3.5 * 14.1 -> not a cosmic ray
    assert mask_of(sci, blot, sky=100.0, rdnoise=0.0)[10, 10]
    assert mask_of(sci, blot, sky=100.0, rdnoise=0.0, noise="astrodrizzle")[10, 10]
    assert mask_of(sci, blot, sky=100.0, rdnoise=0.0, legacy=True)[10, 10]
    # sky once: 45 > 3.5 * 10 -> a cosmic ray, whatever the legacy flags
    assert not mask_of(sci, blot, sky=100.0, rdnoise=0.0, noise="sky_once")[10, 10]
    assert not mask_of(sci, blot, sky=100.0, rdnoise=0.0, noise="sky_once", legacy=True)[10, 10]
    # with sky once the sky value is irrelevant; with drizzlepac's term it raises N
    assert not mask_of(sci, blot, sky=1e6, rdnoise=0.0, noise="sky_once")[10, 10]
    sci[10, 10] += 1000.0
    assert mask_of(sci, blot, sky=1e6, rdnoise=0.0)[10, 10]
    with pytest.raises(ValueError, match="noise"):
        mask_of(sci, blot, noise="twice")


def test_units_are_converted_to_electrons():
    rng = np.random.default_rng(9)
    shape = (96, 96)
    truth, _ = _scene(rng, shape, 60.0, 8)
    charge = _cosmic_rays(rng, shape, 80)
    sci = (rng.poisson(truth) + rng.normal(0, RN, shape) + charge)
    ref = mask_of(sci.astype(np.float32), truth.astype(np.float32), sky=60.0, rdnoise=RN)
    assert np.count_nonzero(~ref) > 50
    t, g = 500.0, 2.5
    for kw, scale in ((dict(in_units="cps", exptime=t, bunit="ELECTRONS/S"), 1 / t),
                      (dict(in_units="counts", gain=g, bunit="COUNTS"), 1 / g),
                      (dict(in_units="cps", exptime=t, gain=g, bunit="DN/S"), 1 / (g * t)),
                      (dict(in_units="counts", gain=7.0, bunit="ELECTRONS"), 1.0)):
        m = mask_of((sci * scale).astype(np.float32), (truth * scale).astype(np.float32),
                    sky=60.0 * scale, rdnoise=RN, **kw)
        assert np.count_nonzero(m != ref) <= 2, kw
    assert conversion_factor(in_units="counts", exptime=400, bunit="ELECTRONS") == 1.0
    assert conversion_factor(in_units="cps", exptime=400, bunit="ELECTRONS/S") == 400.0
    assert conversion_factor(in_units="cps", exptime=400, bunit="") == 400.0
    assert conversion_factor(in_units="counts", exptime=400, gain=7, bunit="COUNTS") == 7.0
    with pytest.raises(ValueError):
        conversion_factor(in_units="counts", exptime=400, gain=None, bunit="DN")
    with pytest.raises(ValueError):
        conversion_factor(in_units="rate", exptime=400)
    # legacy noise for DN data: drizzlepac's effective gain = gain -> threshold snr*N/g
    # DN; gain 4 -> 400 e-; N = 20 e-; legacy N/g = sqrt(4*400)/4 = 10 e-
    blot = _flat(level=100.0)
    sci = blot.copy()
    sci[10, 10] += 14.0              # 56 e-: < 3*20 by default, > 3.5*10 in legacy
    kw = dict(in_units="counts", gain=4.0, bunit="COUNTS", rdnoise=0.0, sky=0.0)
    assert mask_of(sci, blot, **kw)[10, 10]
    assert not mask_of(sci, blot, legacy_gain=True, **kw)[10, 10]
    assert not mask_of(sci, blot, legacy=True, **kw)[10, 10]


def test_untested_pixels_and_nonfinite():
    blot = _flat()
    sci = blot.copy()
    sci[10, 10] += 1000.0            # e.g. a hot pixel missing from the median
    sci[10, 11] += 32.0              # between the thresholds, next to it
    m = mask_of(sci, blot, rdnoise=0.0)
    assert not m[10, 10] and not m[10, 11]
    dq_good = np.ones(sci.shape, bool)
    dq_good[10, 10] = False
    m = mask_of(sci, blot, rdnoise=0.0, dq_good=dq_good)
    assert m.all()                   # untested, and it no longer condemns its neighbour
    sci2 = sci.copy()
    sci2[10, 10] = np.nan
    assert mask_of(sci2, blot, rdnoise=0.0).all()
    blot2 = blot.copy()
    blot2[3, 3] = np.inf
    sci3 = blot.copy()
    sci3[3, 4] += 500
    m = mask_of(sci3, blot2, rdnoise=0.0)
    assert m[3, 3] and not m[3, 4]


def test_known_bad_pixels_do_not_condemn_good_neighbours():
    """Regression: a dead column (DQ-bad, reading 0) through a bright star failed pass 1 and so
    put the star's clean core pixels beside it under the pass-2 threshold, which the blot's
    miss of the peak exceeds (found on random simulated sets; drizzlepac does the same)."""
    blot = _flat()
    sci = blot.copy()
    sci[5:15, 10] = 0.0              # a dead column, reads 0
    sci[9, 11] += 32.0               # between the thresholds, beside it: e.g. a star peak
    sci[3, 3] += 1000.0              # a cosmic ray
    sci[3, 4] += 32.0                # its tail, between the thresholds
    m = mask_of(sci, blot, rdnoise=0.0)
    assert not m[5:15, 10].any() and not m[9, 11] and not m[3, 3] and not m[3, 4]
    bad = np.zeros(sci.shape, bool)
    bad[5:15, 10] = True
    k = mask_of(sci, blot, rdnoise=0.0, known_bad=bad)
    assert k[9, 11]                  # no longer condemned by the column
    assert not k[5:15, 10].any()     # the column itself is flagged as before (drizzlepac too)
    assert not k[3, 3] and not k[3, 4]
    assert (k != m).sum() == 1
    # a known-bad pixel is still condemned by its known-bad neighbours: the middle of a column
    # that fails only pass 2 (its neighbours fail pass 1)
    sci2 = blot.copy()
    sci2[5:15, 10] -= 1000.0
    sci2[9, 10] = blot[9, 10] - 32.0
    assert not mask_of(sci2, blot, rdnoise=0.0, known_bad=bad)[9, 10]
    with pytest.raises(ValueError, match="known_bad"):
        mask_of(sci, blot, known_bad=bad[:5])
    # the step for one chip: its DQ flags outside driz_sep_bits, and its static mask, are the
    # known-bad pixels -- not with driz_cr_legacy
    chip = SimpleNamespace(gain=None, rdnoise=0.0, exptime=1.0, in_units="counts", bunit="ELECTRONS",
                           instrument="", detector="", extver=1, ccdamp=None)
    data = SimpleNamespace(sci=sci, dq=np.where(bad, 4, 0).astype(np.int16))
    np.testing.assert_array_equal(chip_cr_mask(chip, data, blot, 0.0, None, CRSettings.of()), k)
    np.testing.assert_array_equal(chip_cr_mask(chip, SimpleNamespace(sci=sci, dq=None), blot, 0.0, ~bad,
                                               CRSettings.of()), k)
    np.testing.assert_array_equal(chip_cr_mask(chip, data, blot, 0.0, None, CRSettings.of(driz_sep_bits="4")), m)
    np.testing.assert_array_equal(chip_cr_mask(chip, data, blot, 0.0, None, CRSettings.of(driz_cr_legacy=True)),
                                  mask_of(sci, blot, rdnoise=0.0, legacy=True))
    # which pixels are known bad: DQ outside the bits, and the static mask
    dq = np.zeros((3, 3), np.int16)
    dq[0, 0], dq[1, 1] = 4, 64
    static = np.ones((3, 3), bool)
    static[2, 2] = False
    assert known_bad_pixels(None, None) is None
    np.testing.assert_array_equal(known_bad_pixels(dq, None, 0), dq != 0)
    np.testing.assert_array_equal(known_bad_pixels(dq, static, "64"),
                                  (dq == 4) | ~static)
    np.testing.assert_array_equal(known_bad_pixels(None, static), ~static)


def test_products_and_helpers():
    sci = np.arange(12, dtype=np.float32).reshape(3, 4)
    blot = np.full((3, 4), -1.0)
    mask = np.ones((3, 4), bool)
    mask[1, 2] = False
    c = crclean(sci, blot, mask)
    assert c.dtype == np.float32 and c[1, 2] == -1.0 and c[0, 0] == 0.0 and c[2, 3] == 11.0
    p = crmask_product(mask)
    assert p.dtype == np.uint8 and p[1, 2] == 0 and p.sum() == 11
    dqc = crclean_dq(mask)
    assert dqc.dtype == np.uint16 and dqc[1, 2] == 4096 and dqc.sum() == 4096
    dq = np.full((3, 4), 16, np.int16)
    f = flag_dq(dq, mask, 4096)
    assert f.dtype == np.int16 and f[1, 2] == 16 | 4096 and f[0, 0] == 16 and dq[1, 2] == 16
    # the pairs are parsed once, by dazzle.params (drizzlepac's separators)
    pair = parse_value
    assert (pair("driz_cr_snr", "3.5 3.0") == (3.5, 3.0) == pair("driz_cr_snr", "3.5,3.0")
            == pair("driz_cr_snr", "3.5;3.0") == pair("driz_cr_scale", (3.5, 3)))
    with pytest.raises(ValueError):
        pair("driz_cr_snr", "3.5")
    with pytest.raises(ValueError):
        mask_of(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(ValueError):
        mask_of(np.zeros((3, 3)), np.zeros((3, 3)), driz_cr_grow=-1)
    step6 = ("driz_cr", "driz_cr_corr", "driz_cr_snr", "driz_cr_scale", "driz_cr_grow", "driz_cr_ctegrow",
             "crbit")
    assert {k: defaults()[k] for k in step6} == {
        "driz_cr": True, "driz_cr_corr": False, "driz_cr_snr": (3.5, 3.0), "driz_cr_scale": (1.2, 0.7),
        "driz_cr_grow": 1, "driz_cr_ctegrow": 0, "crbit": 4096}
    s = CRSettings.of()
    assert (s.snr, s.scale, s.grow, s.ctegrow, s.noise, s.legacy, s.corr) == (
        (3.5, 3.0), (1.2, 0.7), 1, 0, "astrodrizzle", False, False)
    m = mask_of(np.zeros((4, 4), np.float32), np.zeros((4, 4), np.float32), rdnoise=1.0)
    assert m.dtype == bool and m.all()


def test_kernel_cr_test_direct_and_threads():
    rng = np.random.default_rng(12)
    blot = rng.normal(200, 30, (300, 280)).astype(np.float32)
    sci = blot + rng.normal(0, 15, blot.shape).astype(np.float32)
    sci[rng.integers(0, 300, 400), rng.integers(0, 280, 400)] += 800
    d = derivative(blot)
    kw = dict(cf=1.0, gain=1.0, rdnoise=RN, grow=2, ctegrow=2, cte_dir=1)
    ref = cr_test(sci, blot, d, **kw)
    assert ref.dtype == np.uint8
    with ThreadPoolExecutor(2) as ex:
        outs = list(ex.map(lambda _: cr_test(sci, blot, d, **kw), range(4)))
    for o in outs:
        np.testing.assert_array_equal(o, ref)
    with pytest.raises(ValueError):
        cr_test(sci, blot, d[:-1])
    with pytest.raises(ValueError):
        cr_test(sci, blot, d, gain=0.0)


# ---------------------------------------------------------------------------------------------
# oracle: drizzlepac's drizCR on the same arrays, and a full AstroDrizzle run
# ---------------------------------------------------------------------------------------------

_DRIVER = textwrap.dedent(r"""
    import json, sys
    import numpy as np
    from astropy.io import fits
    from drizzlepac import drizCR, quickDeriv
    from drizzlepac.buildmask import buildMask

    class _Chip:
        pass

    class FakeImage:
        # the attributes drizCR._driz_cr reads from an imageObject (in-memory mode)
        def __init__(self, sci, blot, c):
            self._numchips = 1
            self.scienceExt = "SCI"
            self.inmemory = True
            self._filename = "fake_flt.fits"
            self.outputNames = {"crcorImage": "fake_crclean.fits"}
            ch = _Chip()
            ch.group_member = True
            ch.outputNames = {"blotImage": "fake_blt.fits", "crmaskImage": "fake_crmask.fits"}
            ch._conversionFactor = c["cf"]
            ch._effGain = c["gain"]
            ch._rdnoise = c["rn"]
            ch.subtractedSky = c["sky"]
            ch.cte_dir = c["cte_dir"]
            ch.dq_extn = "DQ"
            self.chip = ch
            self._sci = sci
            self.virtualOutputs = {"fake_blt.fits": fits.HDUList([fits.PrimaryHDU(blot)])}
            self.saved = {}
        def __getitem__(self, exten):
            return self.chip
        def getData(self, exten):
            return self._sci.copy()
        def buildMask(self, chip, bits):
            return buildMask(np.zeros(self._sci.shape, np.int16), bits)
        def saveVirtualOutputs(self, d):
            self.saved.update(d)

    args = json.loads(sys.argv[1])
    for case in args["cases"]:
        sci = np.load(case["sci"])
        blot = np.load(case["blot"])
        if case.get("deriv_out"):
            np.save(case["deriv_out"], quickDeriv.qderiv(blot.copy()))
        img = FakeImage(sci, blot.copy(), case)
        pars = {"driz_cr_grow": case["grow"], "driz_cr_ctegrow": case["ctegrow"],
                "driz_cr_snr": case["snr"], "driz_cr_scale": case["scale"], "crbit": 4096,
                "inmemory": True, "driz_cr_corr": False}
        drizCR._driz_cr(img, {}, pars)
        np.save(case["out"], np.asarray(img.saved["fake_crmask.fits"][0].data))
    print("done", len(args["cases"]))
""")

# (name, unit kind, grow, ctegrow, cte_dir, snr, scale)
_ORACLE_CASES = [
    ("defaults", "e", 1, 0, 0, "3.5 3.0", "1.2 0.7"),
    ("grow2", "e", 2, 0, 0, "3.5 3.0", "1.2 0.7"),
    ("grow3", "e", 3, 0, 0, "3.5 3.0", "1.2 0.7"),
    ("cte+", "e", 1, 3, 1, "3.5 3.0", "1.2 0.7"),
    ("cte-", "e", 1, 3, -1, "3.5 3.0", "1.2 0.7"),
    ("grow2cte", "e", 2, 2, 1, "4.0,2.5", "0.5 0.4"),
    ("cps", "cps", 1, 0, 0, "3.5 3.0", "1.2 0.7"),
    ("dn", "dn", 1, 0, 0, "3.5 3.0", "1.2 0.7"),
]
_T, _G = 350.0, 7.0


@pytest.fixture(scope="module")
def oracle_arrays(tmp_path_factory):
    """One subprocess runs drizzlepac's drizCR._driz_cr on every case."""
    if not have_drizzlepac():
        skip_or_fail("drizzlepac (==3.11, the AstroDrizzle reference oracle) is not installed")
    d = tmp_path_factory.mktemp("cr_oracle")
    rng = np.random.default_rng(21)
    shape = (160, 144)
    sky = 90.0
    truth, _ = _scene(rng, shape, sky, 15, flux=(2e3, 2e5))
    charge = _cosmic_rays(rng, shape, 220)
    for y, x in ((0, 30), (159, 40), (158, 50), (70, 0), (80, 143), (90, 142), (0, 0),
                 (1, 70), (157, 20), (60, 1)):
        charge[y, x] += 150.0                       # faint cosmic rays on the edge rows/columns
    sci_e = rng.poisson(truth) + rng.normal(0, RN, shape) + charge
    blot_e = truth + rng.normal(0, 3.0, shape)      # a blot with some noise, as a median has
    arrays = {"e": (1.0, 1.0, 1.0), "cps": (1.0 / _T, _T, 1.0), "dn": (1.0 / _G, _G, _G)}
    cases = []
    for name, kind, grow, ctegrow, cte_dir, snr, scale in _ORACLE_CASES:
        f, cf, effgain = arrays[kind]
        sp, bp = d / f"sci_{kind}.npy", d / f"blot_{kind}.npy"
        if not sp.exists():
            np.save(sp, (sci_e * f).astype(np.float32))
            np.save(bp, (blot_e * f).astype(np.float32))
        cases.append(dict(name=name, kind=kind, sci=str(sp), blot=str(bp), cf=cf, gain=effgain,
                          rn=RN, sky=sky * f, cte_dir=cte_dir, grow=grow, ctegrow=ctegrow,
                          snr=snr, scale=scale, out=str(d / f"mask_{name}.npy"),
                          deriv_out=str(d / f"deriv_{kind}.npy")))
    proc = subprocess.run([sys.executable, "-c", _DRIVER, json.dumps({"cases": cases})],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return cases, charge


def _dazzle_for_case(case, **kw):
    sci, blot = np.load(case["sci"]), np.load(case["blot"])
    units = {"e": dict(in_units="counts", bunit="ELECTRONS"),
             "cps": dict(in_units="cps", exptime=_T, bunit="ELECTRONS/S"),
             "dn": dict(in_units="counts", gain=_G, bunit="COUNTS")}[case["kind"]]
    return mask_of(sci, blot, sky=case["sky"], rdnoise=case["rn"], driz_cr_snr=case["snr"],
                   driz_cr_scale=case["scale"], driz_cr_grow=case["grow"],
                   driz_cr_ctegrow=case["ctegrow"], cte_direction=case["cte_dir"],
                   **units, **kw)


@pytest.mark.oracle
@needs_drizzlepac
def test_oracle_drizcr_core(oracle_arrays):
    cases, charge = oracle_arrays
    for case in cases:
        ref = np.load(case["out"]).astype(bool)
        if case["name"] == "defaults":
            np.testing.assert_array_equal(
                derivative(np.load(case["blot"]), legacy_edges=True), np.load(case["deriv_out"]))
        legacy = _dazzle_for_case(case, legacy=True)
        agree = np.mean(legacy == ref)
        default = _dazzle_for_case(case)
        agree_default = np.mean(default == ref)
        print(f"\n{case['name']:>9}: drizzlepac flags {np.count_nonzero(~ref):5d}; "
              f"legacy agreement {agree:.6f} ({np.count_nonzero(legacy != ref)} px); "
              f"default agreement {agree_default:.4f} (dazzle flags {np.count_nonzero(~default)})")
        assert agree >= 0.9999, case["name"]
    # the edge cosmic rays: missed by drizzlepac (and legacy), found by default
    case = cases[0]
    ref = np.load(case["out"]).astype(bool)
    default = _dazzle_for_case(case)
    edge = np.zeros(ref.shape, bool)
    ny, nx = ref.shape
    edge[[0, ny - 2, ny - 1], :] = True
    edge[:, [0, nx - 2, nx - 1]] = True
    big = edge & (charge > 100)
    assert np.count_nonzero(~default & big) > np.count_nonzero(~ref & big)
    assert np.mean(~default[big]) > 0.9


@pytest.mark.oracle
@needs_drizzlepac
def test_oracle_full_astrodrizzle_run(simulated, tmp_path):
    """AstroDrizzle end to end on simulated exposures; dazzle (legacy) recomputes every
    _crmask from AstroDrizzle's own inputs (MDRIZSKY in the headers) and _blt images."""
    from astrodrizzle_oracle import run_astrodrizzle
    sim = simulated(size=256, n_exposures=4, seed=3)
    ad = run_astrodrizzle(sim.files, tmp_path / "ad", output="syn")
    lines = []
    for k, root in enumerate(sim.roots):
        with fits.open(ad["inputs"][k]) as h:
            sci = h["SCI", 1].data.astype(np.float32)
            hdr = h["SCI", 1].header
            sky = float(hdr["MDRIZSKY"])
            rn = float(h[0].header["READNSEC"])
            dq = h["DQ", 1].data & ~4096
        blot = fits.getdata(ad["blt"][(root, 1)]).astype(np.float32)
        ref = fits.getdata(ad["crmask"][(root, 1)]).astype(bool)
        kw = dict(sky=sky, rdnoise=rn, gain=2.0, exptime=400.0, in_units="counts",
                  bunit="ELECTRONS", cte_direction=cte_direction("ACS", "HRC", 1, "C"))
        legacy = mask_of(sci, blot, legacy=True, **kw)
        default = mask_of(sci, blot, **kw)
        agree = np.mean(legacy == ref)
        charge = sim.cr_charge[k][0]
        ok = dq == 0
        det_ad, pur_ad, _ = _stats(~ref, charge, ok)
        det_dz, pur_dz, _ = _stats(~default, charge, ok)
        lines.append(f"{root}: legacy agreement {agree:.6f}, "
                     f"default {np.mean(default == ref):.4f}; "
                     f"AstroDrizzle det {det_ad:.3f} pur {pur_ad:.4f}; "
                     f"dazzle default det {det_dz:.3f} pur {pur_dz:.4f}")
        assert agree >= 0.9999
    print("\n" + "\n".join(lines))


@pytest.mark.oracle
@needs_drizzlepac
def test_oracle_dn_gain_rule(oracle_arrays):
    """DN data (BUNIT counts): drizzlepac divides the noise by the gain (e-/DN) although the
    data are already in electrons there; dazzle's default does not (README "Deliberate
    differences"); ``driz_cr_legacy`` (here ``legacy_gain``) reproduces drizzlepac."""
    cases, charge = oracle_arrays
    case = next(c for c in cases if c["name"] == "dn")
    ref = ~np.load(case["out"]).astype(bool)                 # drizzlepac's flags
    own = ~_dazzle_for_case(case)
    gain = ~_dazzle_for_case(case, legacy_gain=True)
    e_case = next(c for c in cases if c["name"] == "defaults")
    electrons = ~_dazzle_for_case(e_case)
    differ = np.mean(own != ref)
    det_ad, pur_ad, false_ad = _stats(ref, charge)
    det_dz, pur_dz, false_dz = _stats(own, charge)
    print(f"\nDN data: dazzle default differs from drizzlepac on {differ:.4f} of the pixels; "
          f"drizzlepac det {det_ad:.4f} pur {pur_ad:.4f} false {false_ad:.2e}; "
          f"dazzle det {det_dz:.4f} pur {pur_dz:.4f} false {false_dz:.2e}; "
          f"legacy_gain vs drizzlepac {np.count_nonzero(gain != ref)} px, "
          f"vs the same data in electrons {np.count_nonzero(own != electrons)} px")
    # the documented difference (README: 5.7% of the pixels): measured 0.0566
    assert 0.05 < differ < 0.065
    # drizzlepac's rule on DN data: a third of its flags on clean pixels (measured purity
    # 0.670, 3.8e-2 of the clean pixels flagged); dazzle's: measured purity 1.0000, none
    assert pur_ad < 0.72 and false_ad > 0.03
    assert pur_dz >= 0.999 and false_dz <= 1e-4
    # at a detection cost of 1.9 points (measured 0.9437 vs 0.9622)
    assert det_dz >= det_ad - 0.03
    # dazzle's rule makes DN data behave as the same data in electrons (measured 0 px differ)
    assert np.count_nonzero(own != electrons) <= 10
