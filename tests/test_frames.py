"""The output frame of ``output_frame="astrodrizzle"`` against the real AstroDrizzle.

AstroDrizzle (drizzlepac 3.11 with stwcs 1.7) builds its default frame from the reference chip
-- the first chip (lowest EXTVER) of the first input -- in one of two ways:

* chips with ``IDCV2REF`` (every calibrated ACS/WFC3 FLT/FLC) and ``PA_V3``: the orientation is
  the telescope roll at the aperture (``troll(PA_V3, CRVAL2, IDCV2REF, IDCV3REF) + IDCTHETA``)
  through the detector's parity matrix, the scale ``IDCSCALE``;
* chips without: the orientation of the CD matrix, the scale ``IDCSCALE`` or ``sqrt|det CD|``;

and then applies the ``final_*`` / ``driz_sep_*`` parameters by its own rule (``mergeWCS``).
Here both are checked on small chips built from the real ACS/HRC header in ``tests/data``
(one chip per exposure, and a two-chip WFC-like exposure made from it with the chips in three
orders), with and without the IDC keywords, and every WCS parameter alone and combined.

Bounds (those of the issue, not fitted to dazzle): the frame's shape exactly, CRVAL to 1e-8 deg,
CD to 1e-10 of its largest element, CRPIX to 1e-6 px.  Measured over the 18 frames below: shape
and CRPIX identical, CRVAL identical, CD within 1.5e-14 (floating-point noise of the same
formulas in another order).

Each AstroDrizzle run (all steps off except the two drizzles; 2 exposures of 64x80 chips)
checks two frames at once -- the single-drizzle frame and the final one, each with its own
parameters -- and the runs are shared by the whole module (two at a time).
"""

from __future__ import annotations

import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from astrodrizzle_oracle import have_drizzlepac, run_astrodrizzle_batch
from dazzle import geometry
from dazzle.params import ParameterError, resolve
from dazzle.pipeline import plan_run
from dazzle.simulate import simulate

REAL = Path(__file__).parent / "data" / "j8bt06nyq_sip_flt.fits"   # real ACS/HRC header
SIZE = (64, 80)                                                     # (ny, nx): not square
IDC_KEYS = ("IDCV2REF", "IDCV3REF", "IDCTHETA")
#: chip 2 of the WFC-like exposure: its own V2/V3 reference point and IDCTHETA (so that the
#: choice of the reference chip changes the frame)
CHIP2_IDC_OFFSET = {"IDCV2REF": 1.2, "IDCV3REF": 2.9, "IDCTHETA": 0.2}
#: without IDC keywords, chip 2's CD matrix is turned by this much (degrees) for the same reason
CHIP2_CD_TURN = 0.25
OFF = dict(static=False, skysub=False, median=False, blot=False, driz_cr=False)


def _require_drizzlepac():
    """The oracle must be there: a failure in CI, a skip (with the reason) elsewhere."""
    if have_drizzlepac():
        return
    msg = "drizzlepac (the real AstroDrizzle, the test oracle) is not installed: make test"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


# ---------------------------------------------------------------------------------------------
# inputs: small chips with the real HRC header, with and without the IDC keywords
# ---------------------------------------------------------------------------------------------

def _turn_cd(header, degrees):
    cd = np.array([[header["CD1_1"], header["CD1_2"]], [header["CD2_1"], header["CD2_2"]]])
    t = math.radians(degrees)
    cd = cd @ np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
    for (i, j), v in np.ndenumerate(cd):
        header[f"CD{i + 1}_{j + 1}"] = float(v)


def _reorder(hdus, order):
    """``"natural"``: SCI,1 (the lower chip) first; ``"extver"``: the chips' EXTVERs (and
    CCDCHIP) swapped, so the upper chip is SCI,1, stored first (as in real ACS/WFC files);
    ``"hdus"``: EXTVERs kept, the extensions of SCI,2 stored before those of SCI,1."""
    primary, ext = hdus[0], hdus[1:]
    if order == "extver":
        for h in ext:
            h.ver = 3 - h.ver
            if "CCDCHIP" in h.header:
                h.header["CCDCHIP"] = 3 - h.header["CCDCHIP"]
        ext = sorted(ext, key=lambda h: h.ver)
    elif order == "hdus":
        ext = sorted(ext, key=lambda h: -h.ver)
    return fits.HDUList([primary, *ext])


def make_exposures(outdir, *, chips, idc, order="natural"):
    """Two dithered exposures of ``chips`` 64x80 chips (HRC for one, WFC-like for two)."""
    sim = simulate(outdir, n_exposures=2, chips=chips, size=SIZE, seed=11, noise=False,
                   cosmic_rays=False, hot_pixels=False, bad_columns=0, n_stars=4,
                   min_separation=4.0)
    real = fits.getheader(REAL, 1)
    for f in sim.files:
        with fits.open(f) as h:
            hdus = [hdu.copy() for hdu in h]
        for hdu in hdus[1:]:
            if hdu.name != "SCI":
                continue
            if idc:
                for k in IDC_KEYS:
                    hdu.header[k] = real[k] + (CHIP2_IDC_OFFSET[k] if hdu.ver == 2 else 0.0)
            elif hdu.ver == 2:
                _turn_cd(hdu.header, CHIP2_CD_TURN)
        _reorder(hdus, order).writeto(f, overwrite=True)
    return sim.files


# ---------------------------------------------------------------------------------------------
# the runs: (data set, input order, driz_sep_* parameters, final_* parameters)
# ---------------------------------------------------------------------------------------------

RA, DEC = 6.0272, -72.0832   # near the data (the frames' CRVAL are 6.0271..6.0275, -72.0830..1)
REF_CD = (-1.2e-5, 3.0e-6, 2.0e-6, 1.1e-5)  # a skewed reference image CD (deg/px)

DATA = {   # name: (chips, IDC keywords, chip order)
    "hrc_idc": (1, True, "natural"),
    "hrc_cd": (1, False, "natural"),
    "wfc_idc": (2, True, "natural"),
    "wfc_idc_extver": (2, True, "extver"),
    "wfc_idc_hdus": (2, True, "hdus"),
    "wfc_cd": (2, False, "natural"),
    "wfc_cd_hdus": (2, False, "hdus"),
}

# Inputs go to both as a Python list, whose order both keep (a comma-separated string both sort
# by name): "reversed" makes the second exposure the reference.
RUNS = {   # name: (data set, inputs reversed, driz_sep_* (None = default), final_* (idem))
    "hrc_idc": ("hrc_idc", False, None, {"rot": 0.0}),
    "hrc_cd": ("hrc_cd", False, None, {"scale": 0.05}),
    "wfc_idc": ("wfc_idc", False, None, {"ra": RA, "dec": DEC}),
    "wfc_idc_extver": ("wfc_idc_extver", False, {"rot": 0.0, "scale": 0.04}, None),
    "wfc_idc_hdus": ("wfc_idc_hdus", True, None, {"outnx": 90, "outny": 70}),
    "wfc_cd": ("wfc_cd", False, {"crpix1": 30.5, "crpix2": 60.25}, None),
    "wfc_cd_hdus": ("wfc_cd_hdus", False, None,
                    {"rot": -45.0, "scale": 0.03, "outnx": 120, "outny": 100, "ra": RA,
                     "dec": DEC, "crpix1": 50.0, "crpix2": 40.5}),
    "combined": ("hrc_idc", False,
                 {"rot": 100.0, "ra": RA, "dec": DEC, "scale": 0.02},
                 {"refimage": True, "rot": 30.0, "scale": 0.045}),
    "combined2": ("wfc_idc", True, {"scale": 0.035},
                  {"rot": 200.0, "crpix1": 40.0, "crpix2": 120.0}),
}
CASES = [(run, step) for run in RUNS for step in ("driz_sep", "final")]


def _write_refimage(path):
    h = fits.Header()
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CRVAL1"], h["CRVAL2"] = RA, DEC
    h["CRPIX1"], h["CRPIX2"] = 35.5, 25.0
    for (i, j), v in zip(((1, 1), (1, 2), (2, 1), (2, 2)), REF_CD):
        h[f"CD{i}_{j}"] = v
    fits.HDUList([fits.PrimaryHDU(),
                  fits.ImageHDU(np.zeros((50, 70), np.float32), h, name="SCI")]).writeto(path)
    return f"{path}[sci,1]"


def _params(run, refimage):
    _, _, sep, fin = RUNS[run]
    p = dict(OFF)
    for prefix, pars in (("driz_sep_", sep), ("final_", fin)):
        if pars is None:
            continue
        p[prefix + "wcs"] = True
        for k, v in pars.items():
            p[prefix + k] = refimage if k == "refimage" else v
    return p


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """For every run: AstroDrizzle's single-drizzle and final headers, dazzle's frames, and the
    inputs (in the order given)."""
    _require_drizzlepac()
    base = tmp_path_factory.mktemp("frames")
    data = {name: make_exposures(base / "in" / name, chips=c, idc=i, order=o)
            for name, (c, i, o) in DATA.items()}
    refimage = _write_refimage(base / "ref.fits")
    jobs, files = [], {}
    for run, (name, reverse, _, _) in RUNS.items():
        files[run] = data[name][::-1] if reverse else data[name]
        jobs.append(dict(inputs=files[run], workdir=base / "ad" / run, output="syn",
                         params=_params(run, refimage), as_list=True))
    # two subprocesses, each running half of the jobs (drizzlepac imported once in each)
    with ThreadPoolExecutor(2) as pool:
        halves = list(pool.map(run_astrodrizzle_batch, (jobs[0::2], jobs[1::2])))
    products = dict(zip(list(RUNS)[0::2], halves[0]))
    products.update(zip(list(RUNS)[1::2], halves[1]))
    out = {}
    for run, job in zip(RUNS, jobs):
        ad = products[run]
        first = Path(files[run][0]).name[: -len("_flt.fits")]
        ad_frames = {"driz_sep": fits.getheader(ad["single_sci"][first], 0),
                     "final": fits.getheader(ad["drz"], "SCI")}
        plan = plan_run(files[run], str(base / "dz" / run / "syn"),
                        resolve(None, output_frame="astrodrizzle", **job["params"]))
        out[run] = (ad_frames, {"driz_sep": plan.single_frame, "final": plan.final_frame},
                    files[run])
    return out


def frame_difference(header, frame):
    """(shape equal, max |dCRVAL| deg, max |dCD| / max |CD|, max |dCRPIX| px)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)   # AstroDrizzle's DATE-OBS
        wa, wd = WCS(header), frame.wcs()
    shape = (header["NAXIS2"], header["NAXIS1"]) == tuple(frame.shape)
    cd = np.abs(wd.wcs.cd - wa.wcs.cd).max() / np.abs(wa.wcs.cd).max()
    return (shape, float(np.abs(wd.wcs.crval - wa.wcs.crval).max()), float(cd),
            float(np.abs(wd.wcs.crpix - wa.wcs.crpix).max()))


@pytest.mark.oracle
@pytest.mark.parametrize("run,step", CASES, ids=[f"{r}-{s}" for r, s in CASES])
def test_frame_is_astrodrizzles(frames, run, step):
    ad, dz, _ = frames[run]
    shape, dcrval, dcd, dcrpix = frame_difference(ad[step], dz[step])
    assert shape, (ad[step]["NAXIS1"], ad[step]["NAXIS2"], dz[step].shape)
    assert dcrval < 1e-8
    assert dcd < 1e-10
    assert dcrpix < 1e-6


def _orientation(header):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        w = WCS(header)
    return math.degrees(math.atan2(w.wcs.cd[0, 1], w.wcs.cd[1, 1]))


@pytest.mark.oracle
def test_the_roll_orients_calibrated_chips(frames):
    # The cases above would not tell the two rules apart if they gave the same frame: they do
    # not.  The HRC chip's CD matrix points its +y axis at 15.593 deg, the roll at 15.512 deg;
    # ACS/WFC's parity adds 180 deg.
    hrc_idc = _orientation(frames["hrc_idc"][0]["driz_sep"])
    hrc_cd = _orientation(frames["hrc_cd"][0]["driz_sep"])
    wfc_idc = _orientation(frames["wfc_idc"][0]["driz_sep"])
    assert hrc_idc == pytest.approx(15.51192, abs=1e-5)
    assert hrc_cd == pytest.approx(15.59264, abs=1e-5)
    assert (wfc_idc - hrc_idc) % 360 == pytest.approx(180.0, abs=0.01)


@pytest.mark.oracle
@pytest.mark.parametrize("run", ["wfc_idc_hdus", "wfc_idc_extver", "wfc_cd_hdus"])
def test_the_reference_chip_matters(frames, run, tmp_path):
    # The frame built on the other chip of the first exposure is not AstroDrizzle's: the
    # two-chip cases above do check which chip is the reference.
    ad, _, files = frames[run]
    chips = plan_run(files, str(tmp_path / "syn"),
                     resolve(None, output_frame="astrodrizzle", **OFF)).chips
    pairs = [(c.wcs(), c.shape) for c in chips]
    first = [i for i, c in enumerate(chips) if c.path == chips[0].path]
    other = max(first, key=lambda i: chips[i].extver)  # SCI,2 of the first input
    w, shape = geometry.astrodrizzle_output_wcs(pairs, reference=other,
                                                idcscale=chips[other].idcscale,
                                                aperture=chips[other].aperture)
    step = "driz_sep" if RUNS[run][2] is None else "final"
    _, dcrval, dcd, _ = frame_difference(ad[step], geometry.Frame.from_wcs(w, shape))
    assert dcd > 1e-4 or dcrval > 1e-6


def test_half_a_pair_is_refused(tmp_path):
    # AstroDrizzle's mergeWCS raises for ra without dec, crpix1 without crpix2, outnx without
    # outny; in its mode dazzle refuses them too, naming the parameters
    files = make_exposures(tmp_path / "in", chips=1, idc=True)
    for given, missing in (("ra", "dec"), ("crpix2", "crpix1"), ("outnx", "outny")):
        p = dict(OFF, final_wcs=True, output_frame="astrodrizzle", **{f"final_{given}": 10.0})
        with pytest.raises(ParameterError, match=f"final_{given} is given without final_{missing}"):
            plan_run(files, str(tmp_path / "dz" / "syn"), resolve(None, **p))
    # dazzle's own frame takes either alone
    p = dict(OFF, final_wcs=True, final_ra=RA, output_frame="dazzle")
    assert plan_run(files, str(tmp_path / "dz2" / "syn"), resolve(None, **p)).final_frame


def _plan_frame(files, tmp_path, mode, **params):
    return plan_run(files, str(tmp_path / "dz" / "syn"),
                    resolve(None, output_frame=mode, **OFF, **params)).final_frame


def test_dazzle_frame_differs_as_the_readme_says(tmp_path):
    # output_frame="dazzle" (the default): oriented by the first chip's CD matrix even on chips
    # with IDCV2REF and PA_V3, sized to hold every input pixel, and custom frames re-fitted to
    # the inputs (README, "Deliberate differences")
    files = make_exposures(tmp_path / "in", chips=2, idc=True)
    dz = _plan_frame(files, tmp_path, "dazzle")
    ad = _plan_frame(files, tmp_path, "astrodrizzle")
    assert math.degrees(math.atan2(*dz.wcs().wcs.cd[:, 1])) == pytest.approx(15.59264, abs=1e-5)
    assert math.degrees(math.atan2(*ad.wcs().wcs.cd[:, 1])) == pytest.approx(-164.48808, abs=1e-5)
    assert (dz.shape, ad.shape) == ((188, 97), (187, 96))
    # final_ra/dec: dazzle re-centres the frame on the inputs, AstroDrizzle moves CRVAL only
    dz_rd = _plan_frame(files, tmp_path, "dazzle", final_wcs=True, final_ra=RA, final_dec=DEC)
    ad_rd = _plan_frame(files, tmp_path, "astrodrizzle", final_wcs=True, final_ra=RA,
                        final_dec=DEC)
    assert dz_rd.shape == dz.shape
    for f in (dz, dz_rd):   # every chip whole inside (to 1e-5 px: the default frame's CRVAL
        # shift, a tangent-plane translation only to first order, leaves 3e-6 px on one side)
        for c in plan_run(files, str(tmp_path / "c" / "syn"), resolve(None, **OFF)).chips:
            xo, yo = geometry.transform_points(c.wcs(), f.wcs(), *geometry.edge_points(c.shape))
            assert min(xo.min(), yo.min()) > -0.5 - 1e-5
            assert xo.max() < f.nx - 0.5 + 1e-5 and yo.max() < f.ny - 0.5 + 1e-5
    assert ad_rd.shape == ad.shape
    np.testing.assert_array_equal(ad_rd.wcs().wcs.crpix, ad.wcs().wcs.crpix)
    # final_rot=0: re-fitted to the inputs (dazzle) / the turned default frame's box
    dz_r = _plan_frame(files, tmp_path, "dazzle", final_wcs=True, final_rot=0.0)
    ad_r = _plan_frame(files, tmp_path, "astrodrizzle", final_wcs=True, final_rot=0.0)
    assert (dz_r.shape, ad_r.shape) == ((207, 138), (206, 143))


# ---------------------------------------------------------------------------------------------
# the rule's pieces, without the oracle
# ---------------------------------------------------------------------------------------------

def test_aperture_roll():
    # on the V3 axis, close to V1, the roll at the aperture is the telescope roll (to 1e-5 deg:
    # asin(~1) of the formula loses half the digits there)
    for pa, dec in ((15.8, -72.1), (200.0, 10.0), (330.0, 60.0)):
        assert geometry.aperture_roll(pa, dec, 0.0, 1e-3) == pytest.approx(pa, abs=1e-5)
    # the real HRC header: AstroDrizzle's frame orientation (measured, tests above), HRC's
    # parity keeping the angle
    real = fits.getheader(REAL, 1)
    roll = geometry.aperture_roll(fits.getheader(REAL, 0)["PA_V3"], real["CRVAL2"],
                                  real["IDCV2REF"], real["IDCV3REF"])
    assert roll == pytest.approx(15.51192, abs=1e-5)
    assert geometry.detector_parity("ACS", "HRC") == ((-1.0, 0.0), (0.0, 1.0))
    assert geometry.detector_parity("ACS", "WFC") == geometry.detector_parity("NEW", "X")
    ap = geometry.Aperture.from_keywords(15.0, 207.0, 471.0, None, "ACS", "WFC")
    assert ap.theta == 0.0 and geometry.Aperture.from_keywords(None, 207.0, 471.0) is None


def _perfect(orient=20.0, scale=0.05, shape=(90, 120), crpix=(60.0, 45.0)):
    w = geometry._tan_wcs((150.0, 2.0), crpix, scale, orient)
    w.pixel_shape = (shape[1], shape[0])
    return w


def test_merge_user_wcs_rule():
    w0 = _perfect()
    # scale alone: same orientation and CRVAL, CRPIX and size scaled by old / new
    w, shape = geometry.merge_user_wcs(w0, scale=0.1)
    assert shape == (45, 60)
    np.testing.assert_allclose(w.wcs.cd, w0.wcs.cd * 2, rtol=1e-15)
    np.testing.assert_allclose(w.wcs.crpix, [30.5, 23.0])
    # a scale within 10 ulp of the frame's changes nothing
    w, shape = geometry.merge_user_wcs(w0, scale=0.05 * (1 + 1e-15))
    assert shape == (90, 120) and np.array_equal(w.wcs.cd, w0.wcs.cd)
    # rot: the new orientation, and the old frame's corners inside the new one's edges
    w, (ny, nx) = geometry.merge_user_wcs(w0, rot=-25.0)
    assert math.degrees(math.atan2(w.wcs.cd[0, 1], w.wcs.cd[1, 1])) == pytest.approx(-25.0)
    corners = w0.wcs_pix2world([[-0.5, -0.5], [119.5, -0.5], [-0.5, 89.5], [119.5, 89.5]], 0)
    x, y = w.wcs_world2pix(corners, 0).T
    assert x.min() >= -0.5 - 1e-9 and y.min() >= -0.5 - 1e-9
    assert x.max() <= nx - 0.5 + 1e-9 and y.max() <= ny - 0.5 + 1e-9
    assert min(x.min(), y.min()) < -0.49    # tight: the box starts at the first pixel's edge
    # ra/dec: CRVAL only
    w, shape = geometry.merge_user_wcs(w0, ra=150.01, dec=2.01)
    assert shape == (90, 120) and list(w.wcs.crpix) == [60.0, 45.0]
    assert list(w.wcs.crval) == [150.01, 2.01]
    # outnx/outny: CRPIX at the centre unless given
    w, shape = geometry.merge_user_wcs(w0, outnx=11, outny=20)
    assert shape == (20, 11) and list(w.wcs.crpix) == [6.0, 10.5]
    w, _ = geometry.merge_user_wcs(w0, outnx=11, outny=20, crpix1=1.0, crpix2=2.0)
    assert list(w.wcs.crpix) == [1.0, 2.0]
    with pytest.raises(ValueError, match="final_outny is given without final_outnx"):
        geometry.merge_user_wcs(w0, outny=3, prefix="final_")
