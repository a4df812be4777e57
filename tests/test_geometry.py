"""Tests of dazzle.geometry: pixmaps, scales, footprints and the output frame.

Real distortion comes from tests/data/ (see tests/data/README.md for origin and licence).
"""

import copy
import math
import pickle
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS, DistortionLookupTable

from dazzle import geometry as geo

DATA = Path(__file__).parent / "data"
SIP_FILE = DATA / "j8bt06nyq_sip_flt.fits"
NIRCAM_HDR = DATA / "nrcb5_sip_wcs.hdr"

EDGE_TOL = 1e-6  # px: float noise allowed on "inside the frame"


def tan_wcs(crval=(150.0, 2.0), crpix=(50.5, 40.5), scale=0.05, rot=0.0, shape=None):
    """Undistorted TAN WCS; scale arcsec/px, rot = PA of +y (deg E of N)."""
    t = math.radians(rot)
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = list(crval)
    w.wcs.crpix = list(crpix)
    w.wcs.cd = scale / 3600.0 * np.array([[-math.cos(t), math.sin(t)], [math.sin(t), math.cos(t)]])
    w.wcs.set()
    if shape is not None:
        w.pixel_shape = (shape[1], shape[0])
    return w


@pytest.fixture(scope="module")
def sip_chip():
    w, shape = geo.read_wcs(f"{SIP_FILE}[sci,1]")
    assert shape == (1024, 1024)
    assert w.sip is not None
    return w, shape


@pytest.fixture(scope="module")
def default_frame(sip_chip):
    w, shape = sip_chip
    return geo.make_output_wcs([(w, shape)])


@pytest.fixture(scope="module")
def exact_sip_pixmap(sip_chip, default_frame):
    w, shape = sip_chip
    out, _ = default_frame
    return geo.calc_pixmap(w, out, shape, exact=True)


def other_chips(w):
    """Two more chips made from the SIP chip: shifted on the sky, and shifted + rotated 30 deg."""
    a = copy.deepcopy(w)
    a.wcs.crval = [w.wcs.crval[0], w.wcs.crval[1] + 15.0 / 3600.0]
    b = copy.deepcopy(w)
    t = math.radians(30.0)
    rotm = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    b.wcs.cd = rotm @ w.wcs.cd
    b.wcs.crval = [w.wcs.crval[0] + 20.0 / 3600.0 / math.cos(math.radians(w.wcs.crval[1])),
                   w.wcs.crval[1] - 10.0 / 3600.0]
    a.wcs.set()
    b.wcs.set()
    return a, b


def assert_edges_inside(chips, out, oshape):
    ny, nx = oshape
    for w, shape in chips:
        x, y = geo.edge_points(shape, step=1)  # every pixel corner along the perimeter
        xo, yo = geo.transform_points(w, out, x, y)
        assert np.all(np.isfinite(xo)) and np.all(np.isfinite(yo))
        assert xo.min() >= -0.5 - EDGE_TOL and xo.max() <= nx - 0.5 + EDGE_TOL
        assert yo.min() >= -0.5 - EDGE_TOL and yo.max() <= ny - 0.5 + EDGE_TOL


# ------------------------------------------------------------------------------------------
# Pixmaps
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("exact", [True, False])
def test_identity_pixmap(exact):
    w = tan_wcs()
    shape = (80, 100)
    pm = geo.calc_pixmap(w, w, shape, exact=exact)
    assert pm.shape == (80, 100, 2) and pm.dtype == np.float64
    yy, xx = np.mgrid[0:80, 0:100]
    np.testing.assert_allclose(pm[..., 0], xx, atol=1e-8)
    np.testing.assert_allclose(pm[..., 1], yy, atol=1e-8)


@pytest.mark.parametrize("exact", [True, False])
def test_shifted_rotated_scaled_tan_pair(exact):
    # Same tangent point -> the map between the two pixel grids is exactly affine:
    # p_out = crpix_out + CD_out^-1 CD_in (p_in - crpix_in)  (0-based: crpix - 1).
    shape = (90, 130)
    win = tan_wcs(crpix=(60.3, 45.7), scale=0.05, rot=12.0)
    wout = tan_wcs(crpix=(210.0, -33.5), scale=0.1, rot=-25.0)
    pm = geo.calc_pixmap(win, wout, shape, exact=exact, stepsize=10)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    m = np.linalg.inv(wout.wcs.cd) @ win.wcs.cd
    dx, dy = xx - (60.3 - 1), yy - (45.7 - 1)
    ex = (210.0 - 1) + m[0, 0] * dx + m[0, 1] * dy
    ey = (-33.5 - 1) + m[1, 0] * dx + m[1, 1] * dy
    np.testing.assert_allclose(pm[..., 0], ex, atol=1e-7)
    np.testing.assert_allclose(pm[..., 1], ey, atol=1e-7)
    # the linear part: half-size (2x larger output pixels) rotated by 37 deg
    c, s = math.cos(math.radians(37)), math.sin(math.radians(37))
    np.testing.assert_allclose(m, 0.5 * np.array([[c, -s], [s, c]]), atol=1e-12)
    # pure shift of the output reference pixel
    wshift = tan_wcs(crpix=(50.5 + 7.25, 40.5 - 3.5))
    pm = geo.calc_pixmap(tan_wcs(), wshift, shape, exact=exact)
    np.testing.assert_allclose(pm[..., 0], xx + 7.25, atol=1e-8)
    np.testing.assert_allclose(pm[..., 1], yy - 3.5, atol=1e-8)


def test_fast_pixmap_error_on_real_hst_sip_chip(sip_chip, default_frame, exact_sip_pixmap,
                                                record_property):
    w, shape = sip_chip
    out, _ = default_frame
    errors = {s: geo.pixmap_error(w, out, shape, s, exact_pixmap=exact_sip_pixmap)
              for s in (5, 10, 16, 32)}
    print("\nfast pixmap max error vs exact (px), ACS/HRC SIP chip onto its default frame:",
          {s: f"{e:.3g}" for s, e in errors.items()})
    record_property("pixmap_error_px", errors)
    assert errors[10] < 0.01
    assert errors[10] < 1e-3  # measured 3.5e-4 (theory for 4th-order SIP: h^2/8 * f'' ~ 3e-4)
    assert errors[5] < errors[10] < errors[16] < errors[32]
    # pixmap_error without a precomputed exact pixmap gives the same number
    assert geo.pixmap_error(w, out, shape, 10) == pytest.approx(errors[10], rel=1e-9)


def test_fast_pixmap_error_on_nircam_sip():
    hdr = fits.Header.fromtextfile(NIRCAM_HDR)
    w = geo.wcs_from_header(hdr)
    shape = (2048, 2048)
    out, _ = geo.make_output_wcs([(w, shape)], rot=0)
    box = (0, 511, 0, 511)  # a corner, where the 5th-order distortion is strongest
    exact = geo.calc_pixmap(w, out, shape, exact=True, box=box)
    fast = geo.calc_pixmap(w, out, shape, stepsize=10, box=box)
    err = float(np.hypot(*(fast - exact).transpose(2, 0, 1)).max())
    print(f"\nNIRCam B5 SIP corner: fast pixmap max error at stepsize 10 = {err:.3g} px")
    assert err < 0.01


def test_box_matches_full_pixmap(sip_chip, default_frame, exact_sip_pixmap):
    w, shape = sip_chip
    out, _ = default_frame
    box = (100, 227, 900, 1023)  # includes the last row
    sub = geo.calc_pixmap(w, out, shape, exact=True, box=box)
    assert sub.shape == (124, 128, 2)
    np.testing.assert_allclose(sub, exact_sip_pixmap[900:1024, 100:228], atol=1e-9)
    fast = geo.calc_pixmap(w, out, shape, box=box)
    assert np.abs(fast - sub).max() < 1e-3


def test_exact_pixmap_round_trips(sip_chip, default_frame, exact_sip_pixmap):
    w, shape = sip_chip
    out, _ = default_frame
    # output pixel -> sky -> input pixel, through the iterative inverse of the SIP chip
    pm = exact_sip_pixmap[::7, ::7]
    xb, yb = geo.transform_points(out, w, pm[..., 0], pm[..., 1])
    yy, xx = np.mgrid[0:shape[0]:7, 0:shape[1]:7]
    assert np.abs(xb - xx).max() < 1e-6
    assert np.abs(yb - yy).max() < 1e-6
    # chip onto itself is the identity
    ident = geo.calc_pixmap(w, w, shape, exact=True, box=(0, 1023, 0, 99))
    yy, xx = np.mgrid[0:100, 0:1024]
    assert np.abs(ident[..., 0] - xx).max() < 1e-6
    assert np.abs(ident[..., 1] - yy).max() < 1e-6


def test_lookup_table_distortion_is_loaded(tmp_path):
    # CPDIS lookup tables live in WCSDVARR extensions: read_wcs must pass the file object.
    w = tan_wcs()
    tab = np.full((5, 5), 0.25, dtype=np.float32)
    w.cpdis1 = DistortionLookupTable(tab, (1.0, 1.0), (1.0, 1.0), (30.0, 30.0))
    w.cpdis2 = DistortionLookupTable(-tab, (1.0, 1.0), (1.0, 1.0), (30.0, 30.0))
    hdul = w.to_fits()
    hdul[0].header["WCSNAX1"], hdul[0].header["WCSNAX2"] = 100, 80
    path = tmp_path / "lookup.fits"
    hdul.writeto(path)
    wl, shape = geo.read_wcs(f"{path}[0]")
    assert shape == (80, 100) and wl.cpdis1 is not None
    pm = geo.calc_pixmap(wl, tan_wcs(), shape, exact=True)
    yy, xx = np.mgrid[0:80, 0:100]
    np.testing.assert_allclose(pm[..., 0], xx + 0.25, atol=1e-6)
    np.testing.assert_allclose(pm[..., 1], yy - 0.25, atol=1e-6)
    with fits.open(path) as f:
        wh = geo.wcs_from_header(f[0].header, f)
    assert wh.cpdis2 is not None
    with pytest.raises(ValueError, match="lookup-table"):
        geo.Frame.from_wcs(wl, shape)


def test_concurrent_pixmaps_share_one_wcs(sip_chip, default_frame):
    w, shape = sip_chip
    out, _ = default_frame
    boxes = [(0, 255, j, j + 63) for j in range(0, 512, 64)]
    serial = [geo.calc_pixmap(w, out, shape, box=b) for b in boxes]
    with ThreadPoolExecutor(4) as ex:
        threaded = list(ex.map(lambda b: geo.calc_pixmap(w, out, shape, box=b), boxes))
    for a, b in zip(serial, threaded):
        np.testing.assert_array_equal(a, b)


def _transforms(w, n=64):
    """Forward and inverse transforms of a few pixels (exact bits to compare)."""
    x = np.linspace(-20.0, 1040.0, n)
    y = np.linspace(1030.0, -10.0, n)
    ra, dec = w.all_pix2world(x, y, 0)
    return np.concatenate([ra, dec, *w.all_world2pix(ra, dec, 0, tolerance=1e-10, maxiter=50)])


def test_each_wcs_is_parsed_once_and_handed_out_as_private_copies(sip_chip, default_frame, monkeypatch):
    """Issue 11: a run built ~256 WCSs from header text for 8 chips (12 ms each); now each
    header is parsed once and every caller gets its own deep copy, with the same bits."""
    from dazzle import io

    with fits.open(SIP_FILE) as f:
        text = f[1].header.tostring(sep="\n")
    chip = io.Chip(path=str(SIP_FILE), root="j8bt06nyq", extver=1, sci_ext=("SCI", 1), err_ext=None,
                   dq_ext=None, shape=(1024, 1024), exptime=1.0, bunit="", in_units="counts", gain=None,
                   rdnoise=None, mdrizsky=None, idcscale=None, wcs_header=text, instrument="",
                   detector="", flc=False)
    frame = geo.Frame.from_wcs(*default_frame)
    parsed = []
    real = geo.wcs_from_header
    monkeypatch.setattr(io, "wcs_from_header", lambda *a: parsed.append(1) or real(*a))
    monkeypatch.setattr(geo, "_WCS_CACHE", type(geo._WCS_CACHE)())
    fresh_chip, fresh_frame = real(text), geo.WCS(frame.fits_header())
    copies = [chip.wcs() for _ in range(5)]
    frames = [frame.wcs() for _ in range(5)]
    assert len(parsed) == 1 and len(geo._WCS_CACHE) == 2
    assert len({id(w) for w in copies + frames + list(geo._WCS_CACHE.values())}) == 12
    for w in copies:
        assert w.pixel_shape == (1024, 1024) and w.sip is not None
        np.testing.assert_array_equal(_transforms(w), _transforms(fresh_chip))
    for w in frames:
        assert w.pixel_shape == (frame.nx, frame.ny)
        np.testing.assert_array_equal(_transforms(w), _transforms(fresh_frame))
    # a caller changing its copy changes nobody else's
    copies[0].wcs.crval = [10.0, 20.0]
    assert not np.array_equal(_transforms(copies[0]), _transforms(fresh_chip))
    np.testing.assert_array_equal(_transforms(chip.wcs()), _transforms(fresh_chip))
    np.testing.assert_array_equal(_transforms(copies[1]), _transforms(fresh_chip))


def test_cached_wcs_copies_are_safe_across_threads(sip_chip):
    """Threads taking copies of one cached WCS and transforming with them concurrently get
    the serial answer (the original is never used for transforms)."""
    w, _ = sip_chip
    text = w.to_header(relax=True).tostring()
    key = ("test-threads", text)
    serial = _transforms(geo.cached_wcs(key, lambda: geo.wcs_from_header(text)))

    def work(_):
        return _transforms(geo.cached_wcs(key, lambda: geo.wcs_from_header(text)))

    with ThreadPoolExecutor(4) as ex:
        for got in ex.map(work, range(32)):
            np.testing.assert_array_equal(got, serial)


def test_a_chip_whose_lookup_tables_changed_on_disk_is_parsed_again(tmp_path):
    """Lookup-table WCSs are read from the file: cached per file version (mtime, size)."""
    import os

    from dazzle import io

    path = tmp_path / "lut_flt.fits"

    def write(shift):
        w = tan_wcs()
        tab = np.full((5, 5), shift, dtype=np.float32)
        w.cpdis1 = DistortionLookupTable(tab, (1.0, 1.0), (1.0, 1.0), (30.0, 30.0))
        w.cpdis2 = DistortionLookupTable(-tab, (1.0, 1.0), (1.0, 1.0), (30.0, 30.0))
        hdul = w.to_fits(relax=True)            # a simple image: WCS and tables in the file
        hdul[0].data = np.zeros((80, 100), np.float32)
        hdul[0].header["EXPTIME"] = 10.0
        hdul.writeto(path, overwrite=True)

    write(0.25)
    (chip,) = io.read_chips(path)
    assert chip.has_lookup_distortion
    first = chip.wcs().all_pix2world([10.0], [10.0], 0)
    assert chip.wcs().all_pix2world([10.0], [10.0], 0) == first
    t = os.stat(path).st_mtime_ns
    write(0.5)
    os.utime(path, ns=(t + 10**9, t + 10**9))
    second = chip.wcs().all_pix2world([10.0], [10.0], 0)
    np.testing.assert_allclose(second[0] - first[0], -0.25 * 0.05 / 3600 / math.cos(math.radians(2.0)),
                               rtol=1e-3)


def test_cached_wcs_is_bounded(monkeypatch):
    monkeypatch.setattr(geo, "_WCS_CACHE", type(geo._WCS_CACHE)())
    monkeypatch.setattr(geo, "WCS_CACHE_SIZE", 3)
    for i in range(5):
        w = geo.cached_wcs(("bounded", i), lambda i=i: tan_wcs(crval=(150.0 + i, 2.0)))
        assert w.wcs.crval[0] == 150.0 + i
    assert list(geo._WCS_CACHE) == [("bounded", 2), ("bounded", 3), ("bounded", 4)]


# ------------------------------------------------------------------------------------------
# Scales and orientation
# ------------------------------------------------------------------------------------------

def test_pixel_scale_and_ratio_not_inverted():
    shape = (80, 100)
    win = tan_wcs(scale=0.05, shape=shape)
    assert geo.pixel_scale(win) == pytest.approx(0.05, rel=1e-6)
    big = tan_wcs(scale=0.10, crpix=(20.0, 20.0))
    small = tan_wcs(scale=0.025, crpix=(300.0, 300.0), rot=40.0)
    assert geo.pixel_scale_ratio(win, big, shape) == pytest.approx(2.0, rel=1e-6)
    assert geo.pixel_scale_ratio(win, small, shape) == pytest.approx(0.5, rel=1e-6)
    assert geo.pixel_scale_ratio(win, win, shape) == pytest.approx(1.0, rel=1e-9)


def test_pixel_scale_of_real_chip(sip_chip):
    w, shape = sip_chip
    s = geo.pixel_scale(w, shape)
    # ACS/HRC pixels are about 0.028" x 0.025": sqrt(area) ~ 0.0265", equal to sqrt|det CD| at CRPIX
    assert s == pytest.approx(math.sqrt(abs(np.linalg.det(w.wcs.cd))) * 3600, rel=2e-3)
    assert 0.026 < s < 0.027
    # ORIENTAT-like angle: header ORIENTAT 15.51 deg; from the CD matrix atan2(CD1_2, CD2_2) = 15.59
    assert geo.orientation(w, shape) == pytest.approx(
        math.degrees(math.atan2(w.wcs.cd[0, 1], w.wcs.cd[1, 1])), abs=0.05)
    out2, _ = geo.make_output_wcs([(w, shape)], scale=2 * s)
    assert geo.pixel_scale_ratio(w, out2, shape) == pytest.approx(2.0, rel=1e-6)


# ------------------------------------------------------------------------------------------
# Footprints
# ------------------------------------------------------------------------------------------

def test_edge_points_and_footprint():
    x, y = geo.edge_points((80, 100), step=64)
    for corner in [(-0.5, -0.5), (99.5, -0.5), (99.5, 79.5), (-0.5, 79.5)]:
        assert np.any((x == corner[0]) & (y == corner[1]))
    on_edge = np.isclose(x, -0.5) | np.isclose(x, 99.5) | np.isclose(y, -0.5) | np.isclose(y, 79.5)
    assert on_edge.all()
    assert len(x) == 2 * 2 + 2 * 2  # sides of 100 and 80 px -> 2 segments each at step 64
    assert np.max(np.hypot(np.diff(x), np.diff(y))) <= 64
    x1, _ = geo.edge_points((80, 100), step=1)
    assert len(x1) == 2 * (100 + 80)
    w = tan_wcs(shape=(80, 100))
    fp = geo.footprint(w)
    ra, dec = w.all_pix2world(x, y, 0)
    np.testing.assert_allclose(fp, np.column_stack([ra, dec]), rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------------
# Output frame
# ------------------------------------------------------------------------------------------

def test_default_frame_contains_every_pixel_edge(sip_chip):
    w, shape = sip_chip
    a, b = other_chips(w)
    chips = [(w, shape), (a, shape), (b, shape)]
    out, oshape = geo.make_output_wcs(chips)
    assert out.pixel_shape == (oshape[1], oshape[0])
    assert not out.has_distortion and list(out.wcs.ctype) == ["RA---TAN", "DEC--TAN"]
    assert_edges_inside(chips, out, oshape)
    # ... and the frame is tight (ceil of the extent: less than one pixel of slack per axis)
    pts = [geo.transform_points(c, out, *geo.edge_points(s, step=1)) for c, s in chips]
    xs = np.concatenate([p[0] for p in pts])
    ys = np.concatenate([p[1] for p in pts])
    assert xs.max() - xs.min() > oshape[1] - 1
    assert ys.max() - ys.min() > oshape[0] - 1
    # scale and orientation of the first chip, "perfect" CD
    s, t = geo.pixel_scale(w, shape), geo.orientation(w, shape)
    cd = out.wcs.cd
    assert cd[0, 1] == pytest.approx(cd[1, 0], abs=1e-18)
    assert cd[0, 0] == pytest.approx(-cd[1, 1], abs=1e-18)
    assert math.sqrt(abs(np.linalg.det(cd))) * 3600 == pytest.approx(s, rel=1e-12)
    # (at the tangent point: elsewhere North turns by the convergence of meridians)
    assert geo.orientation(out, at=tuple(out.wcs.crpix - 1)) == pytest.approx(t, abs=1e-6)
    # CRVAL = normalised mean of the footprint unit vectors
    fp = np.concatenate([geo.footprint(c, sh) for c, sh in chips])
    r, d = np.radians(fp[:, 0]), np.radians(fp[:, 1])
    v = np.column_stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)]).mean(axis=0)
    ra0 = math.degrees(math.atan2(v[1], v[0])) % 360
    dec0 = math.degrees(math.asin(v[2] / np.linalg.norm(v)))
    np.testing.assert_allclose(out.wcs.crval, [ra0, dec0], rtol=0, atol=1e-10)


def test_default_frame_contains_nircam_chip():
    hdr = fits.Header.fromtextfile(NIRCAM_HDR)
    w = geo.wcs_from_header(hdr)
    assert w.pixel_shape == (2048, 2048)
    out, oshape = geo.make_output_wcs([w])
    assert_edges_inside([(w, (2048, 2048))], out, oshape)


def test_rot_zero_is_north_up(sip_chip):
    w, shape = sip_chip
    out, oshape = geo.make_output_wcs([(w, shape)], rot=0)
    cd = out.wcs.cd
    assert abs(cd[0, 1]) < 1e-20 and abs(cd[1, 0]) < 1e-20
    assert cd[0, 0] < 0 and cd[1, 1] > 0
    cx, cy = (oshape[1] - 1) / 2, (oshape[0] - 1) / 2
    (ra0, ra1), (d0, d1) = out.all_pix2world([cx, cx], [cy, cy + 10], 0)
    assert d1 > d0 and abs(ra1 - ra0) < 1e-9                       # +y is North
    ra2, _ = out.all_pix2world([cx + 10], [cy], 0)
    assert ra2[0] < ra0                                             # +x is West (East left)
    assert_edges_inside([(w, shape)], out, oshape)
    # rot=90: +y points East
    out90, _ = geo.make_output_wcs([(w, shape)], rot=90)
    (r0, r1), (e0, e1) = out90.all_pix2world([0, 0], [0, 10], 0)
    assert r1 > r0 and abs(e1 - e0) < 1e-6
    # the default orientation is not North up for this chip (ORIENTAT ~15.5 deg)
    dflt, _ = geo.make_output_wcs([(w, shape)])
    assert abs(dflt.wcs.cd[0, 1]) > 1e-7


def test_scale_override_changes_shape(sip_chip, default_frame):
    w, shape = sip_chip
    out, oshape = default_frame
    s = geo.pixel_scale(w, shape)
    out2, oshape2 = geo.make_output_wcs([(w, shape)], scale=2 * s)
    assert geo.pixel_scale(out2, oshape2) == pytest.approx(2 * s, rel=1e-6)
    for n1, n2 in zip(oshape, oshape2):
        assert abs(n2 - n1 / 2) <= 1.0
    assert_edges_inside([(w, shape)], out2, oshape2)
    out3, oshape3 = geo.make_output_wcs([(w, shape)], scale=s / 2)
    for n1, n3 in zip(oshape, oshape3):
        assert abs(n3 - 2 * n1) <= 2.0
    np.testing.assert_allclose(out2.wcs.crval, out.wcs.crval, atol=1e-12)


def test_size_center_and_crpix_overrides(sip_chip, default_frame):
    w, shape = sip_chip
    out, oshape = default_frame
    o, sh = geo.make_output_wcs([(w, shape)], outnx=2001, outny=1500)
    assert sh == (1500, 2001) and o.pixel_shape == (2001, 1500)
    np.testing.assert_allclose(o.wcs.crpix, [1001.0, 750.5])
    np.testing.assert_allclose(o.wcs.crval, out.wcs.crval, atol=1e-12)
    o, sh = geo.make_output_wcs([(w, shape)], ra=6.03, dec=-72.08)
    np.testing.assert_allclose(o.wcs.crval, [6.03, -72.08])
    assert_edges_inside([(w, shape)], o, sh)   # still sized and centred on the chips
    o, sh = geo.make_output_wcs([(w, shape)], crpix1=10.5, crpix2=-20.0)
    np.testing.assert_allclose(o.wcs.crpix, [10.5, -20.0])
    assert sh == oshape
    o, sh = geo.make_output_wcs([(w, shape)], outnx=300, crpix2=7.0)
    assert sh == (oshape[0], 300)
    np.testing.assert_allclose(o.wcs.crpix, [150.5, 7.0])


def test_refimage_supplies_wcs_and_shape(tmp_path, sip_chip):
    w, shape = sip_chip
    ref = tan_wcs(crval=(6.02, -72.09), crpix=(30.5, 25.0), scale=0.04, rot=33.0)
    hdr = geo.wcs_to_header(ref)
    path = tmp_path / "ref_drz.fits"
    fits.HDUList([fits.PrimaryHDU(),
                  fits.ImageHDU(np.zeros((60, 50), np.float32), header=hdr, name="SCI")]
                 ).writeto(path)
    for spec in (f"{path}[sci,1]", f"{path}[1]", f"{path}[SCI]", str(path)):
        o, sh = geo.make_output_wcs([(w, shape)], refimage=spec)
        assert sh == (60, 50)
        np.testing.assert_allclose(o.wcs.crval, ref.wcs.crval, rtol=0, atol=1e-13)
        np.testing.assert_allclose(o.wcs.crpix, ref.wcs.crpix, rtol=0, atol=1e-12)
        np.testing.assert_allclose(o.pixel_scale_matrix, ref.wcs.cd, rtol=1e-12, atol=0)
    # a WCS object as refimage, with explicit overrides applied on top
    ref.pixel_shape = (50, 60)
    o, sh = geo.make_output_wcs(refimage=ref, ra=6.0, crpix2=3.0)
    assert sh == (60, 50)
    np.testing.assert_allclose(o.wcs.crval, [6.0, -72.09])
    np.testing.assert_allclose(o.wcs.crpix, [30.5, 3.0])
    assert ref.wcs.crval[0] == 6.02  # the caller's WCS is untouched
    with pytest.warns(UserWarning, match="ignored"):
        geo.make_output_wcs(refimage=ref, rot=0.0)


# ------------------------------------------------------------------------------------------
# Frame, sub-frames and bounding boxes
# ------------------------------------------------------------------------------------------

def test_frame_pickles_and_rebuilds_same_wcs(default_frame):
    out, oshape = default_frame
    frame = geo.Frame.from_wcs(out, oshape)
    frame2 = pickle.loads(pickle.dumps(frame))
    assert frame2 == frame and hash(frame2) == hash(frame)
    assert frame2.shape == oshape and (frame2.ny, frame2.nx) == oshape
    w2 = frame2.wcs()
    assert w2.pixel_shape == out.pixel_shape
    np.testing.assert_array_equal(w2.wcs.crval, out.wcs.crval)
    np.testing.assert_array_equal(w2.wcs.crpix, out.wcs.crpix)
    np.testing.assert_allclose(w2.pixel_scale_matrix, out.pixel_scale_matrix, rtol=1e-13)
    x = np.array([-0.5, 0.0, 500.0, oshape[1] - 0.5])
    y = np.array([-0.5, 300.0, 10.0, oshape[0] - 0.5])
    np.testing.assert_allclose(np.array(w2.all_pix2world(x, y, 0)),
                               np.array(out.all_pix2world(x, y, 0)), rtol=0, atol=1e-12)
    assert isinstance(frame.fits_header(), fits.Header) and "CD1_1" in frame.fits_header()
    # a Frame can be used wherever a WCS is expected
    assert geo.pixel_scale(frame) == pytest.approx(geo.pixel_scale(out, oshape), rel=1e-12)


def test_sub_frame_is_shifted_parent(sip_chip, default_frame):
    w, shape = sip_chip
    out, oshape = default_frame
    frame = geo.Frame.from_wcs(out, oshape)
    x0, y0, nx, ny = 300, 120, 256, 200
    sub = geo.sub_frame(frame, x0, y0, nx, ny)
    assert isinstance(sub, geo.Frame) and sub.shape == (ny, nx)
    rng = np.random.default_rng(1)
    xs, ys = rng.uniform(-10, nx + 10, 50), rng.uniform(-10, ny + 10, 50)
    sky = sub.wcs().all_pix2world(xs, ys, 0)
    xp, yp = out.all_world2pix(*sky, 0)
    np.testing.assert_allclose(xp, xs + x0, atol=1e-8)
    np.testing.assert_allclose(yp, ys + y0, atol=1e-8)
    box = (0, 1023, 0, 63)
    pm_parent = geo.calc_pixmap(w, out, shape, box=box)
    pm_sub = geo.calc_pixmap(w, sub, shape, box=box)
    np.testing.assert_allclose(pm_sub, pm_parent - np.array([x0, y0]), atol=1e-7)
    wsub = geo.sub_frame(out, x0, y0, nx, ny)  # WCS in, WCS out
    assert isinstance(wsub, WCS) and wsub.pixel_shape == (nx, ny)
    np.testing.assert_allclose(wsub.wcs.crpix, out.wcs.crpix - [x0, y0])


def test_bounding_box(sip_chip, default_frame, exact_sip_pixmap):
    w, shape = sip_chip
    out, oshape = default_frame
    # the default frame is exactly the chip's pixel-edge extent: the whole frame is touched
    assert geo.bounding_box(exact_sip_pixmap, oshape) == (0, oshape[1], 0, oshape[0])
    assert geo.chip_bounding_box(w, shape, out) == (0, oshape[1], 0, oshape[0])
    # an affine case with known answer: 10x10 input at 0.05"/px onto 0.1"/px, centred at 20,20
    win = tan_wcs(crpix=(5.5, 5.5), scale=0.05)
    wo = tan_wcs(crpix=(21.0, 21.0), scale=0.10)
    pm = geo.calc_pixmap(win, wo, (10, 10), exact=True)
    # input edges at -0.5..9.5 -> output 20 +- 2.5 -> pixels 17.5..22.5 -> 18..22 inclusive
    assert geo.bounding_box(pm, (100, 100)) == (18, 23, 18, 23)
    assert geo.chip_bounding_box(win, (10, 10), wo, (100, 100)) == (18, 23, 18, 23)
    assert geo.bounding_box(pm, (100, 100), pad=1.0) == (17, 24, 17, 24)
    assert geo.bounding_box(pm, (21, 100)) == (18, 23, 18, 21)           # clipped
    assert geo.bounding_box(pm - 30.0, (100, 100)) is None               # no overlap
    assert geo.bounding_box(np.full((4, 4, 2), np.nan), (100, 100)) is None
    # bounding box of a sub-frame tile
    tile = geo.sub_frame(geo.Frame.from_wcs(wo, (100, 100)), 20, 0, 50, 50)
    assert geo.chip_bounding_box(win, (10, 10), tile) == (0, 3, 18, 23)


def test_wcs_to_header_round_trip(sip_chip):
    w, _ = sip_chip
    h = geo.wcs_to_header(w)
    assert "CD1_1" in h and "PC1_1" not in h and "A_2_0" in h and h["CTYPE1"] == "RA---TAN-SIP"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w2 = geo.wcs_from_header(h)
    x, y = np.array([0.0, 1023.0, 400.0]), np.array([0.0, 1023.0, 700.0])
    np.testing.assert_allclose(np.array(w2.all_pix2world(x, y, 0)),
                               np.array(w.all_pix2world(x, y, 0)), rtol=0, atol=1e-11)


@pytest.mark.parametrize("stepsize", [10, 7, 1])
def test_pixmap_section_is_the_whole_maps_bits(sip_chip, default_frame, stepsize):
    """A section's pixel map (the final drizzle's input blocks, issue 11) is the very values of
    the whole chip's map there, for sections starting and ending on and off the grid and at
    the chip's edges; with an offset too."""
    w, shape = sip_chip
    out, _ = default_frame
    whole = geo.calc_pixmap(w, out, shape, stepsize=stepsize)
    ny, nx = shape
    for sec in [(0, nx, 0, ny), (0, 37, 0, 41), (13, 200, 500, 521), (300, nx, 990, ny), (510, 511, 20, 21),
                (0, nx, 70, 71), (19, 31, 9, 11)]:
        part = geo.calc_pixmap(w, out, shape, stepsize=stepsize, section=sec)
        assert part.shape == (sec[3] - sec[2], sec[1] - sec[0], 2)
        assert np.array_equal(part, whole[sec[2]:sec[3], sec[0]:sec[1]]), sec
    shifted = geo.calc_pixmap(w, out, shape, stepsize=stepsize, section=(5, 60, 7, 90), offset=(3, -2))
    assert np.array_equal(shifted, geo.calc_pixmap(w, out, shape, stepsize=stepsize, offset=(3, -2))[7:90, 5:60])
    with pytest.raises(ValueError, match="not inside"):
        geo.calc_pixmap(w, out, shape, section=(0, nx + 1, 0, 10))


@pytest.mark.parametrize("stepsize", [10, 7])
def test_pixmap_grid_key_shares_the_nodes_same_bits(sip_chip, default_frame, stepsize, monkeypatch):
    """With ``grid_key`` the exact transform at the whole chip's grid nodes is computed once
    (issue 11: the single drizzle, blot and final drizzle map a chip onto the same frame, a
    WFC chip in 8 sections each) and every map interpolated from it is the same bits as
    without it: whole chip, sections, with an offset."""
    w, shape = sip_chip
    out, _ = default_frame
    ny, nx = shape
    calls = []
    real = geo._nodes
    monkeypatch.setattr(geo, "_nodes", lambda *a: calls.append(a[2].size * a[3].size) or real(*a))
    key = ("test-grid-key", stepsize, id(w))
    whole = geo.calc_pixmap(w, out, shape, stepsize=stepsize)
    whole_shifted = geo.calc_pixmap(w, out, shape, stepsize=stepsize, offset=(3, -2))
    from dazzle.kernels.pixmap import _fill

    n_signatures = len(_fill.signatures)
    assert np.array_equal(geo.calc_pixmap(w, out, shape, stepsize=stepsize, grid_key=key), whole)
    n_after_first = len(calls)
    for sec in [(0, nx, 0, ny), (0, 37, 0, 41), (13, 200, 500, 521), (300, nx, 990, ny), (19, 31, 9, 11)]:
        part = geo.calc_pixmap(w, out, shape, stepsize=stepsize, section=sec, grid_key=key)
        assert np.array_equal(part, whole[sec[2]:sec[3], sec[0]:sec[1]]), sec
    shifted = geo.calc_pixmap(w, out, shape, stepsize=stepsize, section=(5, 60, 7, 90), offset=(3, -2),
                              grid_key=key)
    assert np.array_equal(shifted, whole_shifted[7:90, 5:60])
    assert len(calls) == n_after_first      # no node computed again
    assert len(_fill.signatures) == n_signatures   # the shared nodes compile no other version
    nodes = geo.grid_nodes(w, out, shape, stepsize, key)
    assert not nodes.flags.writeable
    assert nodes.shape == (len(geo._grid(0, ny - 1, stepsize)), len(geo._grid(0, nx - 1, stepsize)), 2)
    # another key: its own nodes (here another frame: a shifted output)
    out2 = copy.deepcopy(out)
    out2.wcs.crpix = out2.wcs.crpix + np.array([3.0, -1.0])
    other = geo.calc_pixmap(w, out2, shape, stepsize=stepsize, grid_key=key + ("shifted",))
    assert np.array_equal(other, geo.calc_pixmap(w, out2, shape, stepsize=stepsize))
    assert not np.array_equal(other, whole)


def test_map_key_identifies_chip_wcs_and_frame():
    """map_key: the chip's WCS key and the frame's header; None when the chip's WCS has no key
    (an in-memory WCS object)."""
    from types import SimpleNamespace

    from dazzle.memory import MemoryChip

    frame = geo.Frame(header="CTYPE1  = 'RA---TAN'", shape=(10, 10))
    chip = SimpleNamespace(wcs_key=lambda: ("chip", "CTYPE1  = 'RA---TAN-SIP'"))
    assert geo.map_key(chip, frame) == (("chip", "CTYPE1  = 'RA---TAN-SIP'"), ("frame", frame.header))
    assert geo.map_key(SimpleNamespace(wcs_key=lambda: None), frame) is None
    assert MemoryChip.wcs_key(SimpleNamespace(wcs_object=object())) is None


def test_section_bounding_box_holds_the_section(sip_chip, default_frame, exact_sip_pixmap):
    """A section's box holds its pixels' footprints and is inside the chip's box."""
    w, shape = sip_chip
    out, oshape = default_frame
    whole = geo.chip_bounding_box(w, shape, out, oshape)
    for sec in [(0, 512, 0, 512), (512, 1024, 300, 1024), (100, 101, 200, 201)]:
        box = geo.chip_bounding_box(w, shape, out, oshape, section=sec)
        pm = exact_sip_pixmap[sec[2]:sec[3], sec[0]:sec[1]]
        assert box == geo.bounding_box(pm, oshape) or (
            box[0] <= np.floor(pm[..., 0].min()) and box[1] >= np.ceil(pm[..., 0].max())
            and box[2] <= np.floor(pm[..., 1].min()) and box[3] >= np.ceil(pm[..., 1].max()))
        assert whole[0] <= box[0] and box[1] <= whole[1] and whole[2] <= box[2] and box[3] <= whole[3]
        assert (box[1] - box[0]) * (box[3] - box[2]) < 0.5 * (whole[1] - whole[0]) * (whole[3] - whole[2])
