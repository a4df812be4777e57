"""Tests of dazzle.simulate: file layout, truth, determinism, and the real AstroDrizzle as an
oracle (it must run on the files, and recover the truth fluxes at the IDCSCALE output scale)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from astrodrizzle_oracle import needs_drizzlepac, run_astrodrizzle
from photometry import aperture_fluxes
from dazzle.geometry import pixel_scale, read_wcs
from dazzle.simulate import DQ_BAD_DETECTOR, DQ_HOT, SimulatedSet, reference_header, simulate

IDCSCALE = 0.025


def _clean(**kw):
    """Arguments for a simulation without defects or noise (exact checks)."""
    base = dict(noise=False, cosmic_rays=False, hot_pixels=False, bad_columns=0)
    base.update(kw)
    return base


# --------------------------------------------------------------------------------------------
# Files and keywords
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_chip_set(tmp_path_factory):
    return simulate(tmp_path_factory.mktemp("sim2"), n_exposures=2, chips=2, size=(96, 128),
                    seed=5, n_stars=12, exptime=[300.0, 500.0])


def test_files_extensions_and_keywords(two_chip_set):
    s = two_chip_set
    assert len(s.files) == 2 and all(p.name.endswith("_flt.fits") for p in s.files)
    for k, path in enumerate(s.files):
        with fits.open(path) as h:
            assert [(x.name, x.ver) for x in h[1:]] == [
                ("SCI", 1), ("ERR", 1), ("DQ", 1), ("SCI", 2), ("ERR", 2), ("DQ", 2)]
            p = h[0].header
            assert h[0].data is None
            assert p["INSTRUME"] == "ACS" and p["DETECTOR"] == "WFC"
            assert p["EXPTIME"] == [300.0, 500.0][k]
            assert p["ROOTNAME"] == s.roots[k]
            for key in ("PA_V3", "CCDAMP", "FILTER1", "FILTER2", "EXPSTART", "EXPEND"):
                assert key in p
            for a in "ABCD":
                assert p[f"ATODGN{a}"] > 0 and p[f"READNSE{a}"] > 0
            for key in ("IDCTAB", "DGEOFILE", "NPOLFILE", "D2IMFILE", "PFLTFILE"):
                assert p[key] == "N/A"
            for c in (1, 2):
                sci, err, dq = h["SCI", c], h["ERR", c], h["DQ", c]
                assert sci.data.shape == err.data.shape == dq.data.shape == (96, 128)
                assert sci.data.dtype == np.dtype(">f4") and err.data.dtype == np.dtype(">f4")
                assert dq.data.dtype == np.dtype(">i2")
                hd = sci.header
                assert hd["BUNIT"] == "ELECTRONS" and hd["CCDCHIP"] == c
                assert hd["CTYPE1"] == "RA---TAN-SIP" and hd["A_ORDER"] == 4
                assert hd["IDCSCALE"] == IDCSCALE
                # the simple make_orthogonal_cd path: no V2/V3 reference, no IDCTHETA
                for key in ("IDCV2REF", "IDCV3REF", "IDCTHETA"):
                    assert key not in hd
                assert hd["NGOODPIX"] == np.count_nonzero(dq.data == 0)
                assert "MEANDARK" in hd
                assert hd["LTV1"] == -(1024 - 128) // 2 and hd["LTV2"] == -(1024 - 96) // 2
                assert hd["ORIENTAT"] == pytest.approx(
                    math.degrees(math.atan2(hd["CD1_2"], hd["CD2_2"])), abs=1e-10)
                assert np.all(err.data > 0)
                for other in (err.header, dq.header):
                    for key in ("CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CD1_1", "A_2_0",
                                "B_0_2", "IDCSCALE"):
                        assert other[key] == hd[key]
    assert s.truth_stars_path.exists() and s.params_path.exists()
    assert all(p.exists() for p in s.crtruth_paths + s.star_table_paths)
    truth = Table.read(s.truth_stars_path)
    assert truth.colnames == ["id", "ra", "dec", "flux_eps"] and len(truth) == 12
    assert np.all((truth["flux_eps"] >= 30) & (truth["flux_eps"] <= 3000))
    params = json.loads(s.params_path.read_text())
    assert params["chips"] == 2 and params["shape"] == [96, 128] and params["seed"] == 5
    with fits.open(s.crtruth_paths[0]) as h:
        assert h["CRMASK", 2].data.dtype == np.uint8 and h["CRMASK", 2].data.shape == (96, 128)


def test_sip_coefficients_are_the_reference_ones(two_chip_set):
    ref = reference_header()
    hd = fits.getheader(two_chip_set.files[0], ("SCI", 2))
    sip = [k for k in ref if k[:2] in ("A_", "B_")]
    assert len(sip) == 2 + 2 * 12  # orders + 12 coefficients each (orders 2..4)
    for k in sip + ["CD1_1", "CD1_2", "CD2_1", "CD2_2"]:
        assert hd[k] == ref[k]
    assert ref["CRPIX1"] == 512.0 and ref["CD1_1"] == pytest.approx(-7.3535609772738e-06)


def test_two_chips_do_not_overlap(two_chip_set):
    w1, shape = read_wcs(f"{two_chip_set.files[0]}[SCI,1]")
    w2, _ = read_wcs(f"{two_chip_set.files[0]}[SCI,2]")
    ny, nx = shape
    x = np.arange(nx, dtype=float)
    ra, dec = w2.all_pix2world(x, np.zeros(nx), 0)           # bottom row of chip 2
    x1, y1 = w1.all_world2pix(ra, dec, 0, tolerance=1e-8)
    gap = 50
    assert np.all(y1 > ny - 1 + 0.8 * gap) and np.all(y1 < ny - 1 + 1.2 * gap + 1)
    assert np.all(np.abs(x1 - x) < 3.0)


def test_dither_offsets_move_the_stars(tmp_path):
    s = simulate(tmp_path, n_exposures=4, size=160, seed=2, n_stars=15, **_clean())
    ref = {int(r["id"]): (r["x"], r["y"]) for r in s.star_pixels[0]}
    for k in range(1, 4):
        dx, dy = s.params["dither"][k]
        d = np.array([(r["x"] - ref[int(r["id"])][0], r["y"] - ref[int(r["id"])][1])
                      for r in s.star_pixels[k] if int(r["id"]) in ref])
        assert len(d) >= 8
        # distortion changes the local scale by < 1 %: a shift of ~6 px moves by ~6 px +- 0.06
        np.testing.assert_allclose(d[:, 0], -dx, atol=0.08)
        np.testing.assert_allclose(d[:, 1], -dy, atol=0.08)


# --------------------------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------------------------

def test_deterministic(tmp_path):
    a = simulate(tmp_path / "a", n_exposures=2, size=64, seed=11, n_stars=4)
    b = simulate(tmp_path / "b", n_exposures=2, size=64, seed=11, n_stars=4)
    c = simulate(tmp_path / "c", n_exposures=2, size=64, seed=12, n_stars=4)
    for fa, fb, fc in zip(a.files, b.files, c.files):
        with fits.open(fa) as ha, fits.open(fb) as hb, fits.open(fc) as hc:
            for ext in (("SCI", 1), ("ERR", 1), ("DQ", 1)):
                np.testing.assert_array_equal(ha[ext].data, hb[ext].data)
            assert not np.array_equal(ha["SCI", 1].data, hc["SCI", 1].data)
    np.testing.assert_array_equal(a.stars, b.stars)
    assert not np.array_equal(a.stars["ra"], c.stars["ra"])
    # read back from disk
    ld = SimulatedSet.load(tmp_path / "a")
    np.testing.assert_array_equal(ld.stars, a.stars)
    np.testing.assert_array_equal(ld.star_pixels[1], a.star_pixels[1])
    np.testing.assert_array_equal(ld.cr_masks[1][0], a.cr_masks[1][0])
    assert [p.name for p in ld.files] == [p.name for p in a.files]


# --------------------------------------------------------------------------------------------
# Stars and the flux convention
# --------------------------------------------------------------------------------------------

def test_star_counts_noiseless_exact(tmp_path):
    s = simulate(tmp_path, n_exposures=1, size=200, seed=3, n_stars=20, sky=0.0, **_clean())
    sci = fits.getdata(s.files[0], ("SCI", 1)).astype(np.float64)
    w, _ = read_wcs(f"{s.files[0]}[SCI,1]")
    n = 0
    for r in s.star_pixels[0]:
        ix, iy = int(round(r["x"])), int(round(r["y"]))
        if not (9 <= ix < 200 - 9 and 9 <= iy < 200 - 9):
            continue
        box = sci[iy - 8: iy + 9, ix - 8: ix + 9]   # +-8.5 px = 7 sigma: all the flux
        # counts = F * t * IDCSCALE^2 / local pixel area, area checked with dazzle.geometry
        area = pixel_scale(w, at=(r["x"], r["y"])) ** 2
        f = s.stars["flux_eps"][s.stars["id"] == r["id"]][0]
        assert r["counts"] == pytest.approx(f * 400.0 * IDCSCALE ** 2 / area, rel=1e-6)
        assert 0.86 < r["area_ratio"] < 0.92
        assert box.sum() == pytest.approx(r["counts"], rel=2e-5)
        yy, xx = np.mgrid[iy - 8: iy + 9, ix - 8: ix + 9]
        assert (box * xx).sum() / box.sum() == pytest.approx(r["x"], abs=2e-3)
        assert (box * yy).sum() / box.sum() == pytest.approx(r["y"], abs=2e-3)
        n += 1
    assert n >= 10


def test_star_aperture_sums_in_flt(tmp_path):
    """Noisy FLT: sky-subtracted aperture sums of isolated stars = F * t * area_ratio."""
    s = simulate(tmp_path, n_exposures=1, size=384, seed=4, n_stars=40)
    with fits.open(s.files[0]) as h:
        sci = h["SCI", 1].data.astype(np.float64)
        dq = h["DQ", 1].data
    cr = s.cr_masks[0][0]
    sky = s.params["sky"][0] * s.params["exptime"][0]
    ny, nx = sci.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    ratios = []
    for r in s.star_pixels[0]:
        x, y = r["x"], r["y"]
        if not (8 < x < nx - 9 and 8 < y < ny - 9):
            continue
        rr = np.hypot(xx - x, yy - y)
        ap = rr <= 6.0                                    # 5 sigma
        if np.any(dq[ap] != 0) or np.any(cr[ap]):
            continue
        ratios.append((sci[ap].sum() - sky * ap.sum()) / r["counts"])
    ratios = np.array(ratios)
    assert len(ratios) >= 20
    assert abs(np.median(ratios) - 1.0) < 0.01
    assert np.all(np.abs(ratios - 1.0) < 0.15)


def test_crop_keeps_the_wcs(tmp_path):
    full = simulate(tmp_path / "full", n_exposures=2, seed=6, n_stars=30, **_clean())
    crop = simulate(tmp_path / "crop", n_exposures=2, size=(200, 300), seed=6, n_stars=6,
                    **_clean())
    x0, y0 = crop.params["crop_origin"]
    assert (x0, y0) == ((1024 - 300) // 2, (1024 - 200) // 2)
    for k in range(2):
        wf, sf = read_wcs(f"{full.files[k]}[SCI,1]")
        wc, sc = read_wcs(f"{crop.files[k]}[SCI,1]")
        assert sf == (1024, 1024) and sc == (200, 300)
        # every pixel of the crop sees what the same detector pixel of the full chip sees
        x = np.array([0.0, 299.0, 150.3, 17.0])
        y = np.array([0.0, 199.0, 99.7, 180.0])
        np.testing.assert_allclose(wc.all_pix2world(x, y, 0), wf.all_pix2world(x + x0, y + y0, 0),
                                   rtol=0, atol=1e-11)
        # the star positions of the cropped set, through the full-chip WCS, hit the truth
        for r in crop.star_pixels[k]:
            st = crop.stars[crop.stars["id"] == r["id"]][0]
            ra, dec = wf.all_pix2world([r["x"] + x0], [r["y"] + y0], 0)
            assert abs((ra[0] - st["ra"]) * math.cos(math.radians(st["dec"]))) * 3600 < 1e-6
            assert abs(dec[0] - st["dec"]) * 3600 < 1e-6


def test_chips_larger_than_the_hrc_chip_stretch_its_distortion(tmp_path):
    """ACS/WFC-sized chips (benchmarks): along an axis longer than 1024 the SIP field is the
    HRC one stretched over the chip; along a shorter one the chip is still a crop."""
    s = simulate(tmp_path, n_exposures=1, chips=2, size=(64, 2048), seed=5, n_stars=12, **_clean())
    ref = reference_header()
    with fits.open(s.files[0]) as h:
        hdr = h["SCI", 1].header
        assert h["SCI", 2].data.shape == (64, 2048) and h[0].header["SUBARRAY"]
    assert hdr["LTV1"] == 0 and hdr["LTV2"] == -(1024 - 64) // 2
    assert hdr["CRPIX1"] == (ref["CRPIX1"] - 0.5) * 2 + 0.5
    assert hdr["CRPIX2"] == ref["CRPIX2"] - (1024 - 64) // 2
    w, shape = read_wcs(f"{s.files[0]}[SCI,1]")
    wref = WCS(ref)
    # the displacement at pixel u (from CRPIX) is twice the HRC one at u / 2 along x
    u = np.array([[-1000.0, -20.0], [900.0, 25.0], [37.0, -30.0], [1020.0, 30.0]])
    got = w.sip_pix2foc(u + w.wcs.crpix, 1) - u          # (focal-plane offsets from CRPIX)
    want = wref.sip_pix2foc(u / [2.0, 1.0] + wref.wcs.crpix, 1) - u / [2.0, 1.0]
    np.testing.assert_allclose(got, want * [2.0, 1.0], rtol=1e-12, atol=1e-12)
    assert np.abs(got).max() > 1.0                       # (a real distortion is being compared)
    ratios = np.concatenate([t["area_ratio"] for t in s.star_pixels])
    assert len(ratios) >= 6 and 0.86 < ratios.min() and ratios.max() < 0.92   # the HRC range
    with pytest.raises(ValueError, match="size must be between"):
        simulate(tmp_path / "big", n_exposures=1, size=(2049, 64))


# --------------------------------------------------------------------------------------------
# Cosmic rays and hot pixels
# --------------------------------------------------------------------------------------------

def test_cosmic_rays_truth(tmp_path):
    kw = dict(n_exposures=2, size=256, seed=8, n_stars=10)
    with_cr = simulate(tmp_path / "cr", **kw)
    no_cr = simulate(tmp_path / "nocr", cosmic_rays=False, **kw)
    for k in range(2):
        a = fits.getdata(with_cr.files[k], ("SCI", 1)).astype(np.float64)
        b = fits.getdata(no_cr.files[k], ("SCI", 1)).astype(np.float64)
        charge = with_cr.cr_charge[k][0].astype(np.float64)
        mask = with_cr.cr_masks[k][0]
        # the same image plus exactly the deposited charge (float32 rounding)
        np.testing.assert_allclose(a - b, charge, atol=1e-6 * np.abs(a).max() + 0.05)
        np.testing.assert_array_equal(mask, charge > 0)
        assert not no_cr.cr_masks[k][0].any()
        assert 0.008 < mask.mean() < 0.03                        # ~1-2 % of pixels hit
        assert np.all(a[mask] > b[mask])                          # CR pixels brighter
        strong = charge > 50
        assert charge.max() > 2000 and strong.sum() > 0.4 * mask.sum()
        # strong hits stand out of the noise of the no-CR image
        sky = with_cr.params["sky"][k] * with_cr.params["exptime"][k]
        assert np.median(a[strong]) > sky + 10 * math.sqrt(sky)


def test_hot_pixels_and_bad_columns(tmp_path):
    s = simulate(tmp_path, n_exposures=2, size=256, seed=9, n_stars=5, cosmic_rays=False,
                 bad_columns=2)
    dqs = [fits.getdata(p, ("DQ", 1)) for p in s.files]
    np.testing.assert_array_equal(dqs[0], dqs[1])                 # defects are fixed
    hot = (dqs[0] & DQ_HOT) != 0
    np.testing.assert_array_equal(hot, s.hot_masks[0])
    assert 0.001 < hot.mean() < 0.004
    sci = fits.getdata(s.files[0], ("SCI", 1)).astype(np.float64)
    sky = s.params["sky"][0] * s.params["exptime"][0]
    assert np.median(sci[hot]) > sky + 5 * math.sqrt(sky)          # dark current: 20..800 e-
    cols = s.params["dead_columns"][0]
    assert len(cols) == 2
    for col in cols:
        assert np.all(dqs[0][:, col] & DQ_BAD_DETECTOR)
        assert abs(np.median(sci[:, col])) < 3 * s.params["read_noise"]
    good = dqs[0] == 0
    assert fits.getval(s.files[0], "NGOODPIX", ("SCI", 1)) == good.sum()
    assert abs(np.median(sci[good]) - sky) < 3


# --------------------------------------------------------------------------------------------
# The real AstroDrizzle as oracle
# --------------------------------------------------------------------------------------------

def _check_astrodrizzle(s, products, min_cr_frac):
    drz = products["drz"]
    with fits.open(drz) as h:
        assert [x.name for x in h[1:4]] == ["SCI", "WHT", "CTX"]
        sci = h["SCI"].data
        cd = WCS(h["SCI"].header).wcs.cd
    finite = np.isfinite(sci)
    assert finite.mean() > 0.5
    # output frame: scale = IDCSCALE, orientation = that of the first chip's CD matrix
    assert math.sqrt(abs(np.linalg.det(cd))) * 3600 == pytest.approx(IDCSCALE, rel=1e-9)
    h1 = fits.getheader(s.files[0], ("SCI", 1))
    assert math.degrees(math.atan2(cd[0, 1], cd[1, 1])) == pytest.approx(
        math.degrees(math.atan2(h1["CD1_2"], h1["CD2_2"])), abs=1e-7)
    # photometry: the flux convention makes drizzled fluxes equal the truth
    ratios = aperture_fluxes(drz, s.stars)
    assert len(ratios) >= 12
    assert abs(np.median(ratios) - 1.0) < 0.005, np.median(ratios)   # measured within 0.1 %
    # sky and cosmic rays found where they are
    for k, root in enumerate(s.roots):
        sky = s.params["sky"][k] * s.params["exptime"][k]
        for c in range(1, s.chips + 1):
            assert fits.getval(products["inputs"][k], "MDRIZSKY", ("SCI", c)) == pytest.approx(
                sky, rel=0.01)
            flagged = fits.getdata(products["crmask"][(root, c)]) == 0
            dq = fits.getdata(s.files[k], ("DQ", c))
            charge = s.cr_charge[k][c - 1]
            strong = (charge > 100) & (dq == 0)
            assert flagged[strong].mean() > min_cr_frac
            # (hot pixels and dead columns, DQ != 0, are missing from the median and get
            # flagged too, as in real data; only count flags on good pixels)
            false = flagged & (charge == 0) & (dq == 0)
            assert false.sum() <= 0.02 * max((flagged & (dq == 0)).sum(), 1)



@pytest.mark.oracle
@needs_drizzlepac
def test_astrodrizzle_one_chip(tmp_path):
    s = simulate(tmp_path / "sim", n_exposures=4, chips=1, size=384, seed=21, n_stars=40)
    products = run_astrodrizzle(s.files, tmp_path / "ad", output="syn")
    assert products["drz"].name == "syn_drz.fits"
    assert set(products["single_sci"]) == set(s.roots)
    assert products["med"] is not None and len(products["blt"]) == 4
    _check_astrodrizzle(s, products, min_cr_frac=0.9)


@pytest.mark.oracle
@needs_drizzlepac
def test_astrodrizzle_two_chips(tmp_path):
    s = simulate(tmp_path / "sim", n_exposures=2, chips=2, size=256, seed=22, n_stars=36)
    products = run_astrodrizzle(s.files, tmp_path / "ad", output="syn")
    assert len(products["crmask"]) == 4 and len(products["static_masks"]) == 2
    _check_astrodrizzle(s, products, min_cr_frac=0.8)
