"""Tests of dazzle.io: chips from FITS inputs, validation errors, input lists (and the product
names and image HDUs dazzle.products makes from them).  Atomic writing: tests/test_atomic.py.

Synthetic files are written in tmp_path; the realistic TAN-SIP WCS comes from
tests/data/j8bt06nyq_sip_flt.fits (see tests/data/README.md for origin and licence).
"""

import dataclasses
import os
import pickle
import threading
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS, DistortionLookupTable

from dazzle import io, products
from dazzle.atomic import write_fits_atomic
from dazzle.geometry import Frame, wcs_from_header
from dazzle.io import Chip, ChipData, InputError
from dazzle.products import file_checksum

from astrodrizzle_oracle import needs_drizzlepac

DATA = Path(__file__).parent / "data"
SIP_FILE = DATA / "j8bt06nyq_sip_flt.fits"
SHAPE = (40, 50)  # (ny, nx): small chips


def sip_cards():
    """The real ACS/HRC TAN-SIP WCS cards (CRPIX moved so the small chip is mid-detector)."""
    src = fits.getheader(SIP_FILE, 1)
    h = fits.Header()
    for k in ("CTYPE1", "CTYPE2", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2",
              "CD1_1", "CD1_2", "CD2_1", "CD2_2", "A_ORDER", "B_ORDER"):
        h[k] = src[k]
    for k in src:
        if k[:2] in ("A_", "B_") and k not in h:
            h[k] = src[k]
    h["CRPIX1"], h["CRPIX2"] = 25.0, 20.0
    h["IDCSCALE"] = src["IDCSCALE"]
    return h


def rng_data(seed, shape=SHAPE):
    return np.random.default_rng(seed).normal(100.0, 5.0, shape).astype(np.float32)


def make_mef(path, *, nchips=2, exptime=100.0, bunit="ELECTRONS", sky=(12.5, 13.5),
             gains=(2.0, 0.0, 2.2, 0.0), rdnoise=(4.0, 0.0, 5.0, 0.0), wcs=True,
             dq_shape=None, sci_naxis3=False, extra_primary=None, drop=(), err=True, dq=True):
    """An HST-like MEF: PRIMARY + (SCI, ERR, DQ) x nchips; returns the SCI arrays."""
    p = fits.PrimaryHDU()
    hp = p.header
    if exptime is not None:
        hp["EXPTIME"] = exptime
    hp["INSTRUME"] = "ACS"
    hp["DETECTOR"] = "WFC"
    hp["EXPSTART"], hp["EXPEND"] = 52377.0, 52377.001
    for k, v in zip("ABCD", gains):
        hp[f"ATODGN{k}"] = v
    for k, v in zip("ABCD", rdnoise):
        hp[f"READNSE{k}"] = v
    for k, v in (extra_primary or {}).items():
        hp[k] = v
    hdus, scis = [p], []
    for v in range(1, nchips + 1):
        h = sip_cards() if wcs else fits.Header()
        if bunit is not None:
            h["BUNIT"] = bunit
        if sky is not None:
            h["MDRIZSKY"] = sky[v - 1]
        h["PHOTFLAM"] = 1.5e-19
        data = rng_data(v)
        if sci_naxis3:
            data = np.stack([data, data])
        scis.append(data)
        if ("SCI", v) not in drop:
            hdus.append(fits.ImageHDU(data, header=h, name="SCI", ver=v))
        if err:
            hdus.append(fits.ImageHDU(np.full(SHAPE, 2.0, np.float32), name="ERR", ver=v))
        if dq:
            shp = dq_shape if (dq_shape is not None and v == nchips) else SHAPE
            d = np.zeros(shp, np.int16)
            d[0, : v + 1] = [4, 64, 4096][: v + 1]
            hdus.append(fits.ImageHDU(d, name="DQ", ver=v))
    fits.HDUList(hdus).writeto(path)
    return scis


def make_simple(path, *, exptime=30.0, bunit="COUNTS/S"):
    h = sip_cards()
    h["EXPTIME"] = exptime
    if bunit is not None:
        h["BUNIT"] = bunit
    data = rng_data(7)
    fits.PrimaryHDU(data, header=h).writeto(path)
    return data


def assert_input_error(excinfo, path, ext=None):
    msg = str(excinfo.value)
    assert "\n" not in msg
    assert msg.startswith(str(path)), msg
    if ext is not None:
        assert f"[{ext}]" in msg, msg
    return msg


@pytest.fixture
def mef(tmp_path):
    path = tmp_path / "j8ab01abq_flt.fits"
    scis = make_mef(path)
    return path, scis


# --------------------------------------------------------------------------------------------
# read_chips: values
# --------------------------------------------------------------------------------------------

def test_mef_chips_values(mef):
    path, _ = mef
    before = file_checksum(path, "sha256")
    chips = io.read_chips(path)
    assert len(chips) == 2
    c1, c2 = chips
    assert c1.path == str(path.resolve()) and os.path.isabs(c1.path)
    assert c1.root == "j8ab01abq" and not c1.flc
    assert (c1.extver, c2.extver) == (1, 2)
    assert c1.sci_ext == ("SCI", 1) and c2.err_ext == ("ERR", 2) and c2.dq_ext == ("DQ", 2)
    assert c1.shape == SHAPE
    assert c1.exptime == 100.0
    assert c1.gain == pytest.approx(2.1)  # mean of the non-zero ATODGNA..D
    assert c1.rdnoise == pytest.approx(4.5)
    assert c1.bunit == "ELECTRONS" and c1.in_units == "counts"
    assert (c1.mdrizsky, c2.mdrizsky) == (12.5, 13.5)
    assert c1.idcscale == 0.025 and c1.photflam == 1.5e-19
    assert (c1.instrument, c1.detector) == ("ACS", "WFC")
    assert c1.label == f"{path.resolve()}[SCI,1]"
    assert not c1.has_lookup_distortion
    assert c1.expstart == 52377.0
    # The WCS rebuilt from the header text equals the file's (SIP included), every call fresh.
    w_file = WCS(fits.getheader(path, ("SCI", 2)))
    w = c2.wcs()
    assert w is not c2.wcs() and w.sip is not None and w.pixel_shape == (50, 40)
    y, x = np.mgrid[0:40:7, 0:50:7]
    a = np.array(w_file.all_pix2world(x.ravel(), y.ravel(), 0))
    b = np.array(w.all_pix2world(x.ravel(), y.ravel(), 0))
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    assert wcs_from_header(c2.wcs_header).sip is not None
    assert isinstance(c2.frame(), Frame) and c2.frame().shape == SHAPE
    assert file_checksum(path, "sha256") == before  # inputs are never modified


@pytest.mark.parametrize("bunit,units", [("ELECTRONS/S", "cps"), ("counts/s", "cps"),
                                         ("COUNTS", "counts"), ("electrons", "counts"),
                                         (None, "cps")])  # no BUNIT: ELECTRONS/S (drizzlepac)
def test_units_from_bunit(tmp_path, bunit, units):
    path = tmp_path / "u_flt.fits"
    make_mef(path, nchips=1, bunit=bunit)
    (c,) = io.read_chips(path)
    assert c.in_units == units
    assert c.bunit == (bunit or "")


def test_overrides_and_keywords(mef, tmp_path):
    path, _ = mef
    (c,) = io.read_chips(path, group="1", gain=1.5, rdnoise=3.0, exptime=50.0)
    assert (c.gain, c.rdnoise, c.exptime) == (1.5, 3.0, 50.0)
    (c,) = io.read_chips(path, group="1", gnkeyword="ATODGNC", rnkeyword="READNSEA,READNSEC")
    assert c.gain == pytest.approx(2.2) and c.rdnoise == pytest.approx(4.5)
    # expkeyword names another keyword; exptime overrides a bad header value.
    p2 = tmp_path / "k_flt.fits"
    make_mef(p2, nchips=1, exptime=0.0, extra_primary={"MYEXP": 42.0})
    assert io.read_chips(p2, expkeyword="MYEXP")[0].exptime == 42.0
    assert io.read_chips(p2, exptime=7.0)[0].exptime == 7.0
    # No gain keywords at all -> unknown; all zero -> unknown.
    p3 = tmp_path / "g_flt.fits"
    make_mef(p3, nchips=1, gains=(), rdnoise=())
    (c,) = io.read_chips(p3)
    assert c.gain is None and c.rdnoise is None
    p4 = tmp_path / "z_flt.fits"
    make_mef(p4, nchips=1, gains=(0.0, 0.0), sky=None)
    (c,) = io.read_chips(p4)
    assert c.gain is None and c.mdrizsky is None


def test_parameter_errors(mef):
    path, _ = mef
    with pytest.raises(ValueError, match="ambiguous"):
        io.read_chips(path, gain=2.0, gnkeyword="ATODGNA")
    with pytest.raises(ValueError, match="exptime"):
        io.read_chips(path, exptime=0.0)
    with pytest.raises(InputError) as ei:
        io.read_chips(path, gnkeyword="NOSUCHKW")
    assert "NOSUCHKW" in assert_input_error(ei, path.resolve(), "SCI,1")


@pytest.mark.parametrize("group,extvers", [
    ("", [1, 2]), (None, [1, 2]), ("4", [2]), ("1,4", [1, 2]), ("1", [1]), (4, [2]),
    ("sci,2", [2]), ("SCI, 1", [1]), (("SCI", 2), [2]), ([1, 4], [1, 2])])
def test_group_selection(mef, group, extvers):
    # AstroDrizzle's group: FITS extension numbers (HDU 1 = SCI,1, HDU 4 = SCI,2) or 'sci,n'.
    path, _ = mef
    assert [c.extver for c in io.read_chips(path, group=group)] == extvers


@pytest.mark.parametrize("group,needle", [("2", "ERR,1"), ("9", "does not exist"),
                                          ("sci,5", "SCI,5")])
def test_group_errors(mef, group, needle):
    path, _ = mef
    with pytest.raises(InputError) as ei:
        io.read_chips(path, group=group)
    assert needle in assert_input_error(ei, path.resolve())
    with pytest.raises(ValueError):
        io.read_chips(path, group="a,b,c")


def test_simple_fits(tmp_path):
    path = tmp_path / "image.fits"
    data = make_simple(path)
    (c,) = io.read_chips(path)
    assert c.sci_ext == 0 and c.err_ext is None and c.dq_ext is None
    assert c.root == "image" and c.extver == 1 and c.exptime == 30.0
    assert c.in_units == "cps" and c.gain is None
    assert c.label.endswith("image.fits[0]")
    cd = c.load()
    np.testing.assert_array_equal(cd.sci, data)
    assert cd.err is None and cd.dq is None
    assert io.read_chips(path, group="0")[0] == c


def test_gzipped_input(tmp_path, mef):
    import gzip

    path, scis = mef
    gz = tmp_path / "j8zz01zzq_flt.fits.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    chips = io.read_chips(gz)
    assert [c.root for c in chips] == ["j8zz01zzq", "j8zz01zzq"]
    np.testing.assert_array_equal(chips[1].load().sci, scis[1])


def test_lookup_table_distortion(tmp_path):
    """CPDIS lookup tables: flagged, and wcs() re-reads them from the file."""
    w = WCS(sip_cards())
    tab = np.fromfunction(lambda j, i: 0.2 * np.sin(i / 2.0) + 0.01 * j, (6, 7)).astype("f4")
    w.cpdis1 = DistortionLookupTable(tab, (1, 1), (0, 0), (10, 10))
    w.cpdis2 = DistortionLookupTable(-tab, (1, 1), (0, 0), (10, 10))
    tabs = w.to_fits(relax=True)
    h = tabs[0].header.copy()
    for k in ("SIMPLE", "BITPIX", "NAXIS", "EXTEND"):
        h.remove(k, ignore_missing=True)
    prim = fits.PrimaryHDU()
    prim.header["EXPTIME"] = 10.0
    sci = fits.ImageHDU(rng_data(3), header=h, name="SCI", ver=1)
    path = tmp_path / "lut_flc.fits"
    fits.HDUList([prim, sci, *tabs[1:]]).writeto(path)
    (c,) = io.read_chips(path)
    assert c.has_lookup_distortion and c.flc
    c = pickle.loads(pickle.dumps(c))
    w2 = c.wcs()
    assert w2.cpdis1 is not None
    x, y = np.array([0.0, 13.0, 49.0]), np.array([0.0, 21.0, 39.0])
    np.testing.assert_allclose(np.array(w2.all_pix2world(x, y, 0)),
                               np.array(w.all_pix2world(x, y, 0)), rtol=0, atol=1e-12)
    # The lookup tables do move points (so the test means something).
    no_lut = wcs_from_header(c.wcs_header)
    assert np.abs(np.array(no_lut.all_pix2world(x, y, 0))
                  - np.array(w.all_pix2world(x, y, 0))).max() > 1e-7


# --------------------------------------------------------------------------------------------
# load()
# --------------------------------------------------------------------------------------------

def test_load_data(mef):
    path, scis = mef
    c1, c2 = io.read_chips(path)
    cd = c2.load()
    assert isinstance(cd, ChipData)
    assert cd.sci.dtype == np.float32 and cd.sci.dtype.isnative
    np.testing.assert_array_equal(cd.sci, scis[1])
    assert cd.err.dtype == np.float32 and np.all(cd.err == 2.0)
    assert cd.dq.dtype.kind in "iu" and cd.dq.dtype.isnative
    assert list(cd.dq[0, :4]) == [4, 64, 4096, 0] and cd.n_nonfinite == 0
    cd = c1.load(err=False, dq=False)
    assert cd.err is None and cd.dq is None
    cd = pickle.loads(pickle.dumps(c1.load()))
    np.testing.assert_array_equal(cd.sci, scis[0])


def test_load_counts_nonfinite(tmp_path):
    path = tmp_path / "nan_flt.fits"
    make_mef(path, nchips=1)
    with fits.open(path, mode="update") as h:
        d = h["SCI", 1].data
        d[3, 4], d[5, 6], d[7, 8] = np.nan, np.inf, -np.inf
    (c,) = io.read_chips(path)
    cd = c.load()
    assert cd.n_nonfinite == 3 and np.isnan(cd.sci[3, 4])


def test_load_reads_recorded_offsets_as_astropy_does(mef, tmp_path):
    # load() reads the pixels at the offsets recorded by read_chips (no header parsed again);
    # the same arrays as through astropy, and astropy again once the file has changed or when
    # astropy would convert the values (BZERO).  Cost: ~0.2 s.
    path, scis = mef
    c1, c2 = io.read_chips(path)
    assert [e[0] for e in c2.raw[1]] == ["sci", "err", "dq"]
    for c in (c1, c2):
        fast, slow = c.load(), dataclasses.replace(c, raw=()).load()
        for name in ("sci", "err", "dq"):
            a, b = getattr(fast, name), getattr(slow, name)
            assert a.dtype == b.dtype and a.dtype.isnative and a.tobytes() == b.tobytes()
    with fits.open(path, mode="update") as h:              # rewritten in place: new pixels
        h["SCI", 2].data[1, 2] = 123.0
    assert c2.load().sci[1, 2] == 123.0
    scaled = tmp_path / "bzero_flt.fits"
    make_mef(scaled, nchips=1)
    with fits.open(scaled) as h:
        hdus = [x.copy() for x in h]
    hdus[3] = fits.ImageHDU(np.array([[1, 40000]] * SHAPE[0] * (SHAPE[1] // 2), np.uint16)
                            .reshape(SHAPE), name="DQ", ver=1)      # uint16: BZERO = 32768
    fits.HDUList(hdus).writeto(scaled, overwrite=True)
    (c,) = io.read_chips(scaled)
    assert [e[0] for e in c.raw[1]] == ["sci", "err"]
    assert c.load().dq.dtype == np.uint16 and c.load().dq[0, 1] == 40000


def test_load_detects_changed_file(mef):
    """Shape checks in load(): the file was rewritten after read_chips."""
    path, _ = mef
    c1, c2 = io.read_chips(path)
    with fits.open(path) as h:
        hdus = [x.copy() for x in h]
    hdus[6] = fits.ImageHDU(np.zeros((40, 49), np.int16), name="DQ", ver=2)
    fits.HDUList(hdus).writeto(path, overwrite=True)
    c1.load()  # chip 1 is intact
    with pytest.raises(InputError) as ei:
        c2.load()
    assert "(40, 49)" in assert_input_error(ei, path.resolve(), "DQ,2")
    assert c2.load(dq=False).sci.shape == SHAPE
    os.remove(path)
    with pytest.raises(InputError) as ei:
        c1.load()
    assert_input_error(ei, path.resolve())


def test_concurrent_loads(mef):
    """Chips are loaded and their WCSs built from many threads at once (Dask threads)."""
    from concurrent.futures import ThreadPoolExecutor

    path, scis = mef
    chips = io.read_chips(path) * 8

    def work(c):
        d = c.load()
        return c.extver, float(d.sci.sum()), c.wcs().all_pix2world([[3.0, 4.0]], 0).tolist()

    with ThreadPoolExecutor(8) as ex:
        results = list(ex.map(work, chips))
    for (v, s, sky), c in zip(results, chips):
        assert s == float(scis[v - 1].sum())
        assert sky == c.wcs().all_pix2world([[3.0, 4.0]], 0).tolist()


def test_constant_value_extension(tmp_path):
    """HST header-only DQ (NAXIS = 0 with PIXVALUE/NPIX1/NPIX2) reads as a constant array."""
    path = tmp_path / "c_flt.fits"
    make_mef(path, nchips=1, dq=False)
    dq = fits.ImageHDU(name="DQ", ver=1)
    dq.header["PIXVALUE"], dq.header["NPIX1"], dq.header["NPIX2"] = 0, 50, 40
    with fits.open(path) as h:
        hdus = [x.copy() for x in h]
    fits.HDUList(hdus + [dq]).writeto(path, overwrite=True)
    (c,) = io.read_chips(path)
    assert c.dq_ext == ("DQ", 1)
    d = c.load().dq
    assert d.shape == SHAPE and d.dtype.kind in "iu" and not d.any()


# --------------------------------------------------------------------------------------------
# read_chips: errors
# --------------------------------------------------------------------------------------------

def _table_only(path):
    t = fits.BinTableHDU.from_columns([fits.Column(name="a", format="J", array=[1, 2])])
    fits.HDUList([fits.PrimaryHDU(), t]).writeto(path)


@pytest.mark.parametrize("case,ext,needle", [
    ("no_sci", None, "no SCI extension"),
    ("no_wcs", "SCI,1", "no celestial WCS"),
    ("exptime_zero", "SCI,1", "EXPTIME = 0"),
    ("exptime_negative", "SCI,1", "EXPTIME = -5"),
    ("exptime_missing", "SCI,1", "EXPTIME"),
    ("dq_shape", "DQ,2", "differs from SCI,2"),
    ("naxis3", "SCI,1", "NAXIS = 3"),
    ("bad_ctype", "SCI,1", "WCS"),
])
def test_input_errors(tmp_path, case, ext, needle):
    path = tmp_path / f"{case}_flt.fits"
    if case == "no_sci":
        _table_only(path)
    elif case == "no_wcs":
        make_mef(path, wcs=False)
    elif case == "exptime_zero":
        make_mef(path, exptime=0.0)
    elif case == "exptime_negative":
        make_mef(path, exptime=-5.0)
    elif case == "exptime_missing":
        make_mef(path, exptime=None)
    elif case == "dq_shape":
        make_mef(path, dq_shape=(40, 51))
    elif case == "naxis3":
        make_mef(path, sci_naxis3=True, err=False, dq=False)
    elif case == "bad_ctype":
        make_mef(path, nchips=1)
        with fits.open(path, mode="update") as h:
            h["SCI", 1].header["CTYPE1"] = "RA---XYZ"
    with pytest.raises(InputError) as ei:
        io.read_chips(path)
    msg = assert_input_error(ei, path.resolve(), ext)
    assert needle in msg
    assert isinstance(ei.value, ValueError) and ei.value.path == str(path.resolve())


def test_header_only_sci_is_rejected():
    """The real ACS/HRC header in tests/data has a SCI extension without pixels (NAXIS = 0)."""
    with pytest.raises(InputError) as ei:
        io.read_chips(SIP_FILE)
    assert "no image data" in assert_input_error(ei, SIP_FILE.resolve(), "SCI,1")


def test_exptime_error_overridden(tmp_path):
    path = tmp_path / "x_flt.fits"
    make_mef(path, exptime=0.0)
    assert [c.exptime for c in io.read_chips(path, exptime=12.0)] == [12.0, 12.0]


def test_file_level_errors(tmp_path, mef):
    good, _ = mef
    raw = good.read_bytes()
    missing = tmp_path / "nope_flt.fits"
    with pytest.raises(InputError) as ei:
        io.read_chips(missing)
    assert "no such file" in assert_input_error(ei, missing.resolve())

    garbage = tmp_path / "garbage_flt.fits"
    garbage.write_bytes(b"this is not a FITS file\n" * 200)
    with pytest.raises(InputError) as ei:
        io.read_chips(garbage)
    assert_input_error(ei, garbage.resolve())

    empty = tmp_path / "empty_flt.fits"
    empty.write_bytes(b"")
    with pytest.raises(InputError) as ei:
        io.read_chips(empty)
    assert_input_error(ei, empty.resolve())

    with pytest.raises(InputError) as ei:
        io.read_chips(tmp_path)
    assert "directory" in assert_input_error(ei, tmp_path.resolve())

    # Truncated inside the last DQ data: names the extension.
    cut = tmp_path / "cut_flt.fits"
    cut.write_bytes(raw[: len(raw) - 2000])
    with pytest.raises(InputError) as ei:
        io.read_chips(cut)
    assert "truncated" in assert_input_error(ei, cut.resolve(), "DQ,2")

    # Truncated inside an extension header (astropy silently drops the rest).
    with fits.open(good) as h:
        hdr_loc = h["ERR", 2].fileinfo()["hdrLoc"]
    cut2 = tmp_path / "cut2_flt.fits"
    cut2.write_bytes(raw[: hdr_loc + 1000])
    with pytest.raises(InputError) as ei:
        io.read_chips(cut2)
    assert "truncated" in assert_input_error(ei, cut2.resolve())


# --------------------------------------------------------------------------------------------
# read_inputs
# --------------------------------------------------------------------------------------------

@pytest.fixture
def three(tmp_path):
    names = ["b_flt.fits", "a_flt.fits", "c_flt.fits"]
    for i, n in enumerate(names):
        make_mef(tmp_path / n, nchips=1 + (i == 0), extra_primary={"ROOTNAME": n[0]})  # not copies
    return tmp_path, names


def _roots(chips):
    return [(c.root, c.extver, c.index) for c in chips]


def test_read_inputs_forms(three, monkeypatch):
    d, names = three
    paths = [str(d / n) for n in names]
    # A list keeps its order; indices run over all chips.
    chips = io.read_inputs(paths)
    assert _roots(chips) == [("b", 1, 0), ("b", 2, 1), ("a", 1, 2), ("c", 1, 3)]
    # A single path (str or Path).
    assert _roots(io.read_inputs(d / "a_flt.fits")) == [("a", 1, 0)]
    # A comma-separated string is sorted by name (AstroDrizzle).
    chips = io.read_inputs(",".join(paths))
    assert [c.root for c in chips] == ["a", "b", "b", "c"]
    assert [c.index for c in chips] == [0, 1, 2, 3]
    # A glob pattern (sorted).
    assert [c.root for c in io.read_inputs(str(d / "*_flt.fits"))] == ["a", "b", "b", "c"]
    # An @file: order as listed, relative names from the current directory, comments skipped.
    monkeypatch.chdir(d)
    (d / "inputs.lst").write_text("# inputs\nc_flt.fits\n\n  a_flt.fits  a_ivm.fits\n")
    assert _roots(io.read_inputs("@inputs.lst")) == [("c", 1, 0), ("a", 1, 1)]
    assert [c.root for c in io.read_inputs(["c_flt.fits", "@inputs.lst"][:1] + ["b_flt.fits"])] \
        == ["c", "b", "b"]
    # Keyword arguments reach read_chips.
    assert _roots(io.read_inputs("b_flt.fits", group="sci,2")) == [("b", 2, 0)]


def test_read_inputs_errors(three, tmp_path):
    d, names = three
    for bad in ("", [], " , "):
        with pytest.raises(InputError, match="no input files"):
            io.read_inputs(bad)
    with pytest.raises(InputError, match="no files match"):
        io.read_inputs(str(d / "*_nothing.fits"))
    with pytest.raises(InputError) as ei:
        io.read_inputs([str(d / "a_flt.fits"), str(d / "missing_flt.fits")])
    assert "no such file" in assert_input_error(ei, (d / "missing_flt.fits").resolve())
    with pytest.raises(InputError, match="more than once"):
        io.read_inputs([str(d / "a_flt.fits"), str(d / "a_flt.fits")])
    make_mef(d / "a_flc.fits", nchips=1)
    with pytest.raises(InputError, match="same exposure root"):
        io.read_inputs([str(d / "a_flt.fits"), str(d / "a_flc.fits")])
    with pytest.raises(InputError, match="@file"):
        io.read_inputs("@" + str(d / "no_such.lst"))


# --------------------------------------------------------------------------------------------
# Product names
# --------------------------------------------------------------------------------------------

def test_product_name(three, tmp_path):
    d, _ = three
    one = io.read_inputs(str(d / "b_flt.fits"))
    many = io.read_inputs(str(d / "*_flt.fits"))
    assert products.product_name(one, "") == "b_drz.fits"  # one input file (two chips)
    assert products.product_name(many, "") == "final_drz.fits"
    assert products.product_name(many, None) == "final_drz.fits"
    assert products.product_name(many, "mosaic") == "mosaic_drz.fits"
    assert products.product_name(many, "mosaic_drz") == "mosaic_drz.fits"
    assert products.product_name(many, "out/mosaic.fits") == "out/mosaic.fits"
    make_mef(d / "e_flc.fits", nchips=1)
    flc = io.read_inputs([str(d / "e_flc.fits"), str(d / "a_flt.fits")])
    assert products.product_name(flc, "") == "final_drc.fits"
    assert products.product_name(flc[:1], "") == "e_drc.fits"
    with pytest.raises(ValueError, match="input file"):
        products.product_name(one, str(d / "b_flt.fits"))


def test_simple_image_hdu(tmp_path):
    src = fits.Header()
    src["NAXIS"], src["BITPIX"], src["EXTNAME"], src["NAXIS1"] = 2, 16, "SCI", 99
    src["TARGNAME"] = "NGC104"
    src["CRVAL1"] = 1.0  # replaced by the WCS header
    src.add_history("made by a test")
    w = WCS(sip_cards())
    data = np.zeros((4, 5), np.float32)
    hdu = products.simple_image_hdu(data, header=src, wcs_header=w, EXPTIME=12.5,
                              BUNIT=("ELECTRONS/S", "units"), **{"DATE-OBS": "2002-04-13"})
    path = tmp_path / "img.fits"
    write_fits_atomic(path, hdu)
    h = fits.getheader(path)
    assert h["NAXIS1"] == 5 and h["BITPIX"] == -32 and "EXTNAME" not in h
    assert h["TARGNAME"] == "NGC104" and h["EXPTIME"] == 12.5 and h["DATE-OBS"] == "2002-04-13"
    assert h.comments["BUNIT"] == "units"
    assert h["CRVAL1"] == pytest.approx(w.wcs.crval[0], abs=1e-12)
    assert "made by a test" in str(h["HISTORY"])
    assert WCS(h).sip is not None
    frame = Frame.from_wcs(w, (4, 5))
    h2 = products.simple_image_hdu(data, wcs_header=frame).header
    assert h2["CTYPE1"].startswith("RA---TAN")
    h3 = products.simple_image_hdu(data, wcs_header=frame.header).header
    assert h3["CRPIX1"] == h2["CRPIX1"]


@pytest.mark.parametrize("direct", [False, True])
@pytest.mark.parametrize("chunk", [None, 300])
@pytest.mark.parametrize("dtype", ["<f4", ">f4", "<f8", "<i2", "<i4", "<i8", "u1", "<u2"])
def test_write_image_atomic_writes_astropys_bytes(tmp_path, dtype, chunk, direct, monkeypatch):
    """The products' writer (swapped copies of the pixels, checksummed as written) writes the
    file astropy writes, byte for byte, leaves the array as it was and returns the file's
    checksum; uint16 (BZERO) goes through astropy.  With a small write buffer the pixels go
    a few rows at a time; ``direct`` (the blot and CR-mask products) past the page cache, here
    through a staging buffer smaller than the file.  Cost: ~0.3 s."""
    from dazzle import directwrite

    if chunk is not None:
        monkeypatch.setattr(products, "_WRITE_CHUNK", chunk)
    monkeypatch.setattr(directwrite, "CHUNK", 2 * directwrite.ALIGN)
    monkeypatch.setattr(directwrite, "_local", threading.local())
    data = (np.random.default_rng(8).normal(size=(37, 53)) * 300).astype(dtype)
    hdu = products.simple_image_hdu(data.copy(), EXPTIME=(12.5, "s"), BUNIT="ELECTRONS/S")
    hdu.header.add_history("a history card")
    mine, theirs = tmp_path / "mine.fits", tmp_path / "theirs.fits"
    digest = products.write_image_atomic(mine, hdu, direct=direct)
    assert np.array_equal(hdu.data, data) and hdu.data.dtype == data.dtype
    fits.HDUList([hdu]).writeto(theirs)
    assert mine.read_bytes() == theirs.read_bytes()
    assert digest == products.file_checksum(mine) and len(digest) == 16
    assert sorted(os.listdir(tmp_path)) == ["mine.fits", "theirs.fits"]


@pytest.mark.parametrize("chunk", [None, 300, 5 * 53 * 4])
def test_write_image_atomic_from_rows_writes_the_same_file(tmp_path, chunk, monkeypatch):
    """An image made a few rows at a time as it is written (the single products: no whole
    image in memory) gives the file, and checksum, that the whole array gives; its rows are
    asked for in order, each once; any real dtype is converted; a wrong block is refused.
    Cost: ~0.1 s."""
    if chunk is not None:
        monkeypatch.setattr(products, "_WRITE_CHUNK", chunk)
    data = (np.random.default_rng(8).normal(size=(37, 53)) * 300).astype(np.float32)
    whole = products.write_image_atomic(tmp_path / "whole.fits", fits.PrimaryHDU(data.copy()))
    asked = []

    def rows(r0, r1):
        asked.append((r0, r1))
        return data[r0:r1].astype(np.float64)   # converted back to the image's float32

    hdu, got_rows = products._image_hdu(products.RowImage(data.shape, np.float32, rows))
    assert hdu.data.shape == data.shape and hdu.data.dtype == np.float32
    digest = products.write_image_atomic(tmp_path / "rows.fits", hdu, rows=got_rows)
    assert (tmp_path / "rows.fits").read_bytes() == (tmp_path / "whole.fits").read_bytes() and digest == whole
    assert asked[0][0] == 0 and asked[-1][1] == 37 and all(a[1] == b[0] for a, b in zip(asked, asked[1:]))
    assert len(asked) == (1 if chunk is None else -(-37 // max(1, chunk * 4 // (53 * 4))))
    with pytest.raises(ValueError, match="gave shape"):
        products.write_image_atomic(tmp_path / "bad.fits", hdu, rows=lambda r0, r1: data[r0:r1, :5])
    with pytest.raises(ValueError, match="plain 2-D"):
        products.write_image_atomic(tmp_path / "bad.fits", fits.PrimaryHDU(np.zeros((2, 3, 4), np.float32)),
                                    rows=lambda r0, r1: None)
    assert sorted(os.listdir(tmp_path)) == ["rows.fits", "whole.fits"]


@pytest.mark.parametrize("direct", [False, True])
def test_write_images_atomic_interleaves_the_files_rows(tmp_path, direct, monkeypatch):
    """Several files written together (the single SCI, WHT, ERR of an exposure): each is the
    file, and checksum, that write_image_atomic writes alone; their rows are asked for block
    by block, the same rows of each file in turn (so one band of sums serves them all); a
    non-plain HDU among them is written by astropy; a failure leaves none of them and no
    temporary file.  Cost: ~0.1 s."""
    monkeypatch.setattr(products, "_WRITE_CHUNK", 7 * 53)     # blocks of 7 rows of float32
    rng = np.random.default_rng(3)
    images = [(rng.normal(size=(37, 53)) * 9).astype(np.float32) for _ in range(3)]
    alone = [products.write_image_atomic(tmp_path / f"alone{i}.fits", fits.PrimaryHDU(a.copy()))
             for i, a in enumerate(images)]
    asked = []

    def rows(i):
        def f(r0, r1):
            asked.append((i, r0, r1))
            return images[i][r0:r1]
        return f

    scaled = fits.PrimaryHDU(np.arange(12, dtype=np.uint16).reshape(3, 4))    # BZERO: astropy writes it
    items = [(tmp_path / f"together{i}.fits", fits.PrimaryHDU(np.empty_like(a)), rows(i))
             for i, a in enumerate(images)]
    items.insert(1, (tmp_path / "scaled.fits", scaled, None))
    got = products.write_images_atomic(items, direct=direct)
    assert got[0] == alone[0] and got[2:] == alone[1:]
    assert got[1] == products.file_checksum(tmp_path / "scaled.fits")
    for i in range(3):
        assert (tmp_path / f"together{i}.fits").read_bytes() == (tmp_path / f"alone{i}.fits").read_bytes()
    bands = [(r0, min(r0 + 7, 37)) for r0 in range(0, 37, 7)]
    assert asked == [(i, r0, r1) for r0, r1 in bands for i in range(3)]

    def broken(r0, r1):
        if r0 >= 14:
            raise OSError("disk on fire")
        return images[2][r0:r1]

    before = sorted(os.listdir(tmp_path))
    bad = [(tmp_path / f"bad{i}.fits", fits.PrimaryHDU(np.empty_like(a)), rows(i)) for i, a in enumerate(images[:2])]
    with pytest.raises(OSError, match="on fire"):
        products.write_images_atomic(bad + [(tmp_path / "bad2.fits", fits.PrimaryHDU(np.empty_like(images[2])), broken)],
                                     direct=direct)
    assert sorted(os.listdir(tmp_path)) == before


def test_manifests_detect_changed_and_cut_files(tmp_path):
    """A manifest is valid for its run key while its files are unchanged; a changed byte, a cut
    or a longer file, another key, an unknown checksum or a damaged manifest make it stale.
    Manifests written before XXH64 (SHA-256, no "checksum" entry) are still checked.
    Cost: ~0.1 s."""
    import json

    a, b = tmp_path / "x_single_sci.fits", tmp_path / "x_single_wht.fits"
    sums = {}
    for p, v in ((a, 1.0), (b, 2.0)):
        sums[str(p)] = products.write_image_atomic(p, fits.PrimaryHDU(np.full((50, 60), v, np.float32)))
    paths = [str(a), str(b)]
    products.write_manifest(paths, "K", sums)
    manifest = tmp_path / ("x_single_sci.fits" + products.MANIFEST_SUFFIX)
    doc = json.loads(manifest.read_text())
    assert doc["checksum"] == "xxh64" and doc["files"]["x_single_wht.fits"] == products.file_checksum(b)
    products.write_manifest(paths, "K")                      # read from the files: the same
    assert json.loads(manifest.read_text()) == doc
    assert products.manifest_valid(paths, "K") and not products.manifest_valid(paths, "other")
    good = b.read_bytes()
    for bad in (good[:-1], good[:-2880], good + b"\0" * 2880, good[:3000] + b"\1" + good[3001:]):
        b.write_bytes(bad)
        assert not products.manifest_valid(paths, "K")
    b.write_bytes(good)
    assert products.manifest_valid(paths, "K")
    old = {"key": "K", "files": {p.name: products.file_checksum(p, "sha256") for p in (a, b)}}   # before XXH64
    manifest.write_text(json.dumps(old))
    assert products.manifest_valid(paths, "K")
    b.write_bytes(good[:-1])
    assert not products.manifest_valid(paths, "K")
    b.write_bytes(good)
    for damaged in ({**doc, "checksum": "md5"}, {**doc, "checksum": ["x"]}, [1, 2], {**old, "files": 3}):
        manifest.write_text(json.dumps(damaged))
        assert not products.manifest_valid(paths, "K")


def test_canvas_blocks_land_where_astropy_reads_them(tmp_path, monkeypatch):
    """Blocks written into a canvas (the final product and the median, written tile by tile):
    part rows, whole rows, planes of a 3-D extension, a float64 block into a float32
    extension, swapped a few rows at a time (a tiny piece size here); astropy reads back
    the same values.  Cost: ~0.1 s."""
    from dazzle.atomic import FSYNC_ENV

    monkeypatch.setattr(products, "_WRITE_CHUNK", 64)
    monkeypatch.setenv(FSYNC_ENV, "1")   # durable files: each block's writeback started at once
    started = []   # the writeback each block starts (checked below: its exact byte range)
    monkeypatch.setattr(products, "_SYNC_FILE_RANGE", lambda fd, off, n, flags: started.append((off, n)))
    rng = np.random.default_rng(9)
    sci = rng.normal(size=(23, 31)).astype(np.float32)
    ctx = rng.integers(-2**31, 2**31 - 1, size=(2, 23, 31)).astype(np.int32)
    path = tmp_path / "c.fits"
    canvas = products.create_canvas(path, [("PRIMARY", (), np.float32, None), ("SCI", (23, 31), np.float32, None),
                                           ("CTX", (2, 23, 31), np.int32, None)])
    products.write_block(canvas, 1, sci[:10], 0, 0)                            # whole rows
    products.write_block(canvas, 1, sci[10:, :7].astype(np.float64), 10, 0)    # converted
    products.write_block(canvas, 1, sci[10:, 7:], 10, 7)                       # part rows
    products.write_block(canvas, 1, sci[:0, :3], 4, 4)                         # nothing
    for p in range(2):
        products.write_block(canvas, 2, ctx[p, :, :16], 0, 0, plane=p)
        products.write_block(canvas, 2, np.asfortranarray(ctx[p, :, 16:]), 0, 16, plane=p)
    with pytest.raises(ValueError, match="does not fit"):
        products.write_block(canvas, 1, sci, 1, 0)
    # each block's writeback starts at its first byte and ends at its last
    sci_at = canvas.offsets[1]
    assert started[:3] == [(sci_at, 10 * 31 * 4), (sci_at + 10 * 31 * 4, 12 * 31 * 4 + 7 * 4),
                           (sci_at + (10 * 31 + 7) * 4, 12 * 31 * 4 + 24 * 4)]
    assert len(started) == 3 + 4
    monkeypatch.delenv(FSYNC_ENV)   # the default: no file waits for the disk, none is pushed to it
    products.write_block(canvas, 1, sci[:10], 0, 0)
    assert len(started) == 3 + 4
    products.commit_canvas(canvas)
    with fits.open(path) as h:
        assert np.array_equal(h["SCI"].data, sci) and np.array_equal(h["CTX"].data, ctx)


def test_read_columns_short_read(tmp_path):
    """A section's columns are read row by row; a file cut short gives None (the caller then
    reads through astropy, which names the fault)."""
    p = tmp_path / "rows.bin"
    a = np.arange(6 * 10, dtype=">i2").reshape(6, 10)
    p.write_bytes(a.tobytes())
    with open(p, "rb") as f:
        got = io._read_columns(f.fileno(), 2 * 10 * 2, ">i2", 10, (3, 7), 4)
        assert got.dtype == np.dtype(">i2") and np.array_equal(got, a[2:6, 3:7])
        assert io._read_columns(f.fileno(), 3 * 10 * 2, ">i2", 10, (3, 7), 4) is None


# --------------------------------------------------------------------------------------------
# Pickling
# --------------------------------------------------------------------------------------------

def test_pickle_round_trips(mef):
    path, _ = mef
    chips = io.read_inputs(str(path))
    for c in chips:
        c2 = pickle.loads(pickle.dumps(c))
        assert c2 == c and hash(c2) == hash(c) and isinstance(c2, Chip)
        assert c2.wcs().wcs.compare(c.wcs().wcs)
    assert len(pickle.dumps(chips[0])) < 10_000  # small: no pixels in the graph
    with pytest.raises(InputError) as ei:
        io.read_chips(path, group="2")
    e2 = pickle.loads(pickle.dumps(ei.value))
    assert isinstance(e2, InputError) and str(e2) == str(ei.value)
    assert e2.path == ei.value.path and e2.ext == ei.value.ext


# --------------------------------------------------------------------------------------------
# Oracle: drizzlepac's own input parsing, in a subprocess (never imported into the test process)
# --------------------------------------------------------------------------------------------

_ORACLE_DRIVER = r"""
import json, os, sys
args = json.loads(sys.argv[1])
from drizzlepac import processInput, util
out = {"inputs": [], "groups": []}
for spec in args["inputs"]:
    files, output, _, _ = processInput.processFilenames(spec, "")
    out["inputs"].append([[os.path.basename(f) for f in files], output])
for g in args["groups"]:
    try:
        out["groups"].append(util._parse_ext_spec(args["group_file"], g, "SCI"))
    except ValueError:
        out["groups"].append(None)
print("ORACLE" + json.dumps(out))
"""


@pytest.mark.oracle
@needs_drizzlepac
def test_input_parsing_matches_drizzlepac(three, monkeypatch):
    import json
    import subprocess
    import sys

    d, _ = three
    monkeypatch.chdir(d)
    (d / "list.lst").write_text("c_flt.fits\nb_flt.fits\n")
    specs = ["c_flt.fits,a_flt.fits,b_flt.fits", "*_flt.fits", ["c_flt.fits", "a_flt.fits"],
             "b_flt.fits", "@list.lst"]
    # (drizzlepac refuses an upper-case 'SCI,1', a quirk dazzle does not copy.)
    groups = ["1,4", "4", "sci,2", "1", "2", "9"]
    args = json.dumps({"inputs": specs, "groups": groups, "group_file": "b_flt.fits"})
    res = subprocess.run([sys.executable, "-c", _ORACLE_DRIVER, args], cwd=d,
                         capture_output=True, text=True, timeout=120)
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("ORACLE")]
    assert res.returncode == 0 and line, res.stderr[-2000:]
    oracle = json.loads(line[-1][len("ORACLE"):])
    for spec, (files, output) in zip(specs, oracle["inputs"]):
        chips = io.read_inputs(spec)
        roots = list(dict.fromkeys(c.root for c in chips))
        assert roots == [io.exposure_root(f) for f in files], spec
        assert products.product_name(chips, "") == output + "_drz.fits", spec
    for g, extvers in zip(groups, oracle["groups"]):
        if extvers is None:
            with pytest.raises(InputError):
                io.read_chips(d / "b_flt.fits", group=g)
        else:
            assert [c.extver for c in io.read_chips(d / "b_flt.fits", group=g)] == extvers, g


def test_load_section(mef, tmp_path):
    """A section of a chip (the drizzle steps read large chips a section at a time, issue 11)
    is exactly that part of the whole chip's SCI, ERR and DQ, from a file, a gzipped file and
    in-memory pixels; a file whose chip changed shape is refused, naming it."""
    import gzip

    from dazzle.memory import read_inputs

    path, _ = mef
    gz = tmp_path / "j8zz02zzq_flt.fits.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    with fits.open(path) as h:
        mem = read_inputs([fits.HDUList([hdu.copy() for hdu in h])])
    for chips in (io.read_chips(path), io.read_chips(gz), mem):
        for c in chips:
            whole = c.load()
            for sec in [(0, c.nx, 0, c.ny), (3, 17, 5, 9), (c.nx - 1, c.nx, 0, c.ny)]:
                part = c.load(section=sec)
                cut = np.s_[sec[2]:sec[3], sec[0]:sec[1]]
                for name in ("sci", "err", "dq"):
                    a, b = getattr(whole, name), getattr(part, name)
                    assert b.dtype == a.dtype and b.dtype.isnative and np.array_equal(b, a[cut]), (name, sec)
    mem[0].load(section=(0, 4, 0, 4)).sci[:] = -1.0   # a private copy: the input is not changed
    assert not np.any(mem[0].load().sci == -1.0)
    changed = tmp_path / "changed_flt.fits"
    make_mef(changed, nchips=1)
    (c,) = io.read_chips(changed)
    with fits.open(changed, mode="update") as h:
        h["SCI", 1].data = np.zeros((c.ny + 2, c.nx), np.float32)
    with pytest.raises(InputError, match=r"changed_flt.fits\[SCI,1\].*shape"):
        c.load(section=(0, 4, 0, 4))
