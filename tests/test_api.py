"""The Python API (#16): in-memory inputs (HDUList, (data, wcs), dicts, NDData/CCDData) give
the same bits as the same data in files; output=None returns the product in memory;
scheduler=Client; compute=False inside a larger graph; dazzle.AstroDrizzle with a .cfg; a gwcs
WCS.  Cost: small chips (3 exposures of 64x64, or of two 48x48 chips), about 30 runs of
~0.3 s, one LocalCluster (processes=False) and one processes run: about 20 s in all."""

from __future__ import annotations

import os

import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData, NDData, StdDevUncertainty, VarianceUncertainty

import dazzle
from dazzle.geometry import wcs_from_header, wcs_to_header
from dazzle.drizzled import Drizzled
from dazzle.memory import MASK_DQ, MemoryChip, read_inputs
from dazzle.params import ParameterError
from helpers import final_arrays

# the quick path: no separate drizzle, median or CR steps (the in-memory inputs go through
# those in test_hdulist_inputs_every_step)
FINAL_ONLY = dict(driz_separate=False, median=False, blot=False, driz_cr=False)


@pytest.fixture(scope="module")
def sim(simulated):
    """3 exposures of one 64x64 chip, with cosmic rays."""
    return simulated(n_exposures=3, chips=1, size=64, seed=5, n_stars=8, min_separation=10.0)


@pytest.fixture(scope="module")
def sim2(simulated):
    """3 exposures of two 48x48 chips."""
    return simulated(n_exposures=3, chips=2, size=48, seed=6, n_stars=8, min_separation=10.0)


def _chip(path, extver=1):
    with fits.open(path) as h:
        return dict(data=np.array(h["SCI", extver].data, dtype=np.float32),
                    err=np.array(h["ERR", extver].data, dtype=np.float32),
                    dq=np.array(h["DQ", extver].data, dtype=np.int16),
                    wcs=wcs_from_header(h["SCI", extver].header, h), exptime=float(h[0].header["EXPTIME"]),
                    gain=2.0, rdnoise=4.7, bunit=h["SCI", extver].header["BUNIT"])


def _write_simple(path, rec, header_cards=()):
    """The FITS file a record stands for: SCI/ERR/DQ extensions, its keywords."""
    ph = fits.Header()
    for key, rkey in (("EXPTIME", "exptime"), ("ATODGAIN", "gain"), ("READNSE", "rdnoise")):
        if rec.get(rkey) is not None:
            ph[key] = rec[rkey]
    sh = wcs_to_header(rec["wcs"])
    if rec.get("bunit"):
        sh["BUNIT"] = rec["bunit"]
    hdus = [fits.PrimaryHDU(header=ph), fits.ImageHDU(rec["data"], header=sh, name="SCI")]
    if rec.get("err") is not None:
        hdus.append(fits.ImageHDU(rec["err"], name="ERR"))
    if rec.get("dq") is not None:
        hdus.append(fits.ImageHDU(rec["dq"], name="DQ"))
    fits.HDUList(hdus).writeto(path)
    return str(path)


def _same(a: dict, img: Drizzled):
    got = {"SCI": img.data, "WHT": img.wht, "CTX": img.ctx}
    for ext, x in got.items():
        assert x.dtype == a[ext].dtype.newbyteorder("="), ext
        assert x.astype(a[ext].dtype).tobytes() == a[ext].tobytes(), ext


def test_hdulist_inputs_every_step(sim2, tmp_path):
    """HDULists (two chips each, every step, cosmic rays found) give the file run's bits, in
    a file and in memory; nothing is written with output=None and the HDULists are unchanged."""
    (tmp_path / "f").mkdir()
    (tmp_path / "m").mkdir()
    r_file = dazzle.run(sim2.files, str(tmp_path / "f" / "syn"))
    hduls = [fits.open(f) for f in sim2.files]
    before = [np.array(h["SCI", 1].data) for h in hduls]
    r_mem = dazzle.run(hduls, str(tmp_path / "m" / "syn"))
    a = final_arrays(r_file)
    b = final_arrays(r_mem)
    for ext in ("SCI", "WHT", "CTX"):
        assert a[ext].tobytes() == b[ext].tobytes(), ext
    assert [c.root for c in r_mem.chips] == [c.root for c in r_file.chips]   # roots from the file names
    assert sum(int((~np.asarray(m, bool)).sum()) for m in r_mem.crmasks) > 0
    cwd = os.getcwd()
    os.chdir(tmp_path / "m")
    try:
        listing = sorted(os.listdir("."))
        img = dazzle.run(hduls, None)
        assert sorted(os.listdir(".")) == listing
    finally:
        os.chdir(cwd)
    assert isinstance(img, Drizzled) and img.run.output is None
    _same(a, img)
    assert img.wcs.pixel_shape == a["SCI"].shape[::-1]
    assert img.header["NDRIZIM"] == 6 and img.header["EXPTIME"] == pytest.approx(3 * 400.0)
    assert [np.array_equal(h["SCI", 1].data, b0) for h, b0 in zip(hduls, before)] == [True] * 3
    with fits.open(r_file.output) as h:
        assert img.to_hdulist()["SCI"].data.tobytes() == h["SCI"].data.astype(np.float32).tobytes()


@pytest.mark.parametrize("kind", ["pair", "dict", "nddata", "ccddata", "hdu"])
def test_each_input_kind_gives_the_file_bits(sim, tmp_path, kind):
    recs = [_chip(f) for f in sim.files]
    if kind == "pair":   # no header: 1 s, ELECTRONS/S, no ERR/DQ
        recs = [dict(data=r["data"], wcs=r["wcs"], exptime=1.0) for r in recs]
        items = [(r["data"], r["wcs"]) for r in recs]
    elif kind == "dict":
        items = recs
    elif kind == "hdu":
        items = [fits.open(f)["SCI", 1].copy() for f in sim.files]   # one image HDU: its own header only
        for hdu in items:
            hdu.header["EXPTIME"] = 1.0
    else:   # NDData: a mask (True = bad) becomes DQ = MASK_DQ; CCDData: flags are the DQ
        meta = {"EXPTIME": 400.0, "ATODGAIN": 2.0, "READNSE": 4.7}
        items = [NDData(r["data"], wcs=r["wcs"], unit="electron", uncertainty=StdDevUncertainty(r["err"]),
                        meta=meta, mask=r["dq"] != 0) if kind == "nddata" else
                 CCDData(r["data"], wcs=r["wcs"], unit="electron", uncertainty=StdDevUncertainty(r["err"]),
                         meta=meta, flags=r["dq"]) for r in recs]
        for r in recs:
            r["bunit"] = "electron"
            if kind == "nddata":
                r["dq"] = ((r["dq"] != 0) * MASK_DQ).astype(np.int16)
    files = [_write_simple(tmp_path / f"in{k}.fits", r) for k, r in enumerate(recs)]
    if kind == "hdu":   # the file it stands for: a blank primary header, the HDU
        for f, hdu in zip(files, items):
            fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(f, overwrite=True)
    params = dict(final_wht_type="ERR") if kind in ("dict", "nddata", "ccddata") else {}
    a = final_arrays(dazzle.run(files, str(tmp_path / "f"), **params, **FINAL_ONLY))
    img = dazzle.run(items, None, **params, **FINAL_ONLY)
    _same(a, img)
    assert np.isfinite(img.data).sum() > 1000 and float(img.wht.max()) > 0
    assert [c.root for c in img.run.chips] == ["mem01", "mem02", "mem03"]


def test_uncertainty_kinds_and_mixed_inputs(sim, tmp_path):
    """A variance is taken as its square root; files and in-memory inputs mix in one list."""
    r = _chip(sim.files[0])
    sd = NDData(r["data"], wcs=r["wcs"], uncertainty=StdDevUncertainty(r["err"]), meta={"EXPTIME": 400.0})
    var = NDData(r["data"], wcs=r["wcs"], uncertainty=VarianceUncertainty(r["err"].astype(np.float64) ** 2),
                 meta={"EXPTIME": 400.0})
    c_sd = read_inputs([sd])[0]
    c_var = read_inputs([var])[0]
    np.testing.assert_allclose(c_var.load().err, c_sd.load().err, rtol=1e-6)
    # a header whose WCS cards are stale (SIP) does not mix into the record's linear WCS
    lin = r["wcs"].deepcopy()
    lin.sip = None
    lin.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    stale = NDData(r["data"], wcs=lin, meta={"EXPTIME": 400.0, "CTYPE1": "RA---TAN-SIP", "A_ORDER": 2,
                                              "A_0_2": 1e-3, "B_ORDER": 2, "B_2_0": 1e-3})
    w = read_inputs([stale])[0].wcs()
    assert w.sip is None and np.allclose(w.all_pix2world([[5.0, 7.0]], 0), lin.all_pix2world([[5.0, 7.0]], 0),
                                         rtol=0, atol=1e-12)
    chips = read_inputs([sim.files[1], sd, sim.files[2]])
    assert [c.root for c in chips] == ["dzsim02", "mem01", "dzsim03"]
    assert isinstance(chips[1], MemoryChip) and chips[1].label == "<mem01>[0]"


def test_in_memory_input_errors(sim):
    r = _chip(sim.files[0])
    with pytest.raises(dazzle.io.InputError, match=r"<mem01>\[0\]: no WCS"):
        read_inputs([(r["data"], None)])
    with pytest.raises(dazzle.io.InputError, match="dq shape"):
        read_inputs([dict(data=r["data"], wcs=r["wcs"], dq=r["dq"][:10])])
    with pytest.raises(ValueError, match="unknown key"):
        read_inputs([dict(data=r["data"], wcs=r["wcs"], exposure=3)])
    item = (r["data"], r["wcs"])
    with pytest.raises(dazzle.io.InputError, match="listed more than once"):
        read_inputs([item, item])
    with pytest.raises(ParameterError, match="driz_cr_corr"):
        dazzle.run([item, (r["data"] + 1, r["wcs"])], None, driz_cr_corr=True)
    with pytest.raises(ParameterError, match="update_input_dq"):
        dazzle.run([item], "x", update_input_dq=True)


def _gwcs_of(w):
    """A gwcs WCS with the same (linear TAN) transform as the astropy WCS ``w``."""
    from astropy import coordinates as coord
    from astropy import units as u
    from astropy.modeling import models
    from gwcs import coordinate_frames as cf
    from gwcs import wcs as gw

    crpix, crval = w.wcs.crpix, w.wcs.crval
    t = ((models.Shift(-(crpix[0] - 1)) & models.Shift(-(crpix[1] - 1)))
         | models.AffineTransformation2D(matrix=w.wcs.cd) | models.Pix2Sky_TAN()
         | models.RotateNative2Celestial(crval[0], crval[1], 180.0))
    sky = cf.CelestialFrame(reference_frame=coord.ICRS(), name="icrs", unit=(u.deg, u.deg))
    return gw.WCS([(cf.Frame2D(name="detector"), t), (sky, None)])


def test_gwcs_wcs_matches_the_astropy_wcs(sim):
    """The same chips with a gwcs WCS and with the equivalent astropy WCS (SIP dropped from
    both): the same frame, and the drizzled images agree to float32 rounding."""
    recs = []
    for f in sim.files:
        r = _chip(f)
        w = r["wcs"].deepcopy()
        w.sip = None
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        w.wcs.set()
        recs.append(dict(r, wcs=w))
    g = [_gwcs_of(r["wcs"]) for r in recs]
    x = np.array([0.0, 63.0, 10.5])
    ra_a, dec_a = recs[0]["wcs"].all_pix2world(x, x, 0)
    ra_g, dec_g = g[0].pixel_to_world_values(x, x)
    assert np.max(np.abs(ra_a - ra_g)) < 1e-10 and np.max(np.abs(dec_a - dec_g)) < 1e-10
    a = dazzle.run(recs, None, **FINAL_ONLY)
    b = dazzle.run([dict(r, wcs=w) for r, w in zip(recs, g)], None, **FINAL_ONLY)
    assert b.data.shape == a.data.shape
    np.testing.assert_allclose(b.wcs.wcs.crval, a.wcs.wcs.crval, rtol=0, atol=1e-10)
    assert np.array_equal(np.isfinite(a.data), np.isfinite(b.data))
    ok = np.isfinite(a.data)
    np.testing.assert_allclose(b.data[ok], a.data[ok], rtol=1e-4, atol=1e-4 * float(np.abs(a.data[ok]).max()))
    np.testing.assert_allclose(b.wht, a.wht, rtol=0, atol=1e-5 * float(a.wht.max()))   # edges: ~1e-5 px
    assert np.array_equal(a.ctx, b.ctx)
    # the user's gwcs object is not changed (the chip holds its own copy)
    assert g[0].pixel_shape is None


def test_client_and_processes_schedulers(sim, tmp_path, monkeypatch):
    import distributed

    import dazzle.memory

    shipped = []

    def spy(chips, client):
        out = scatter(chips, client)
        shipped.append([type(getattr(c, "pixels", None)).__name__ for c in out[0]])
        return out

    scatter = dazzle.memory.scatter_chips
    monkeypatch.setattr(dazzle.memory, "scatter_chips", spy)
    recs = [_chip(f) for f in sim.files]
    ref = dazzle.run(recs, None, **FINAL_ONLY)
    ref_file = final_arrays(dazzle.run(sim.files, str(tmp_path / "t"), **FINAL_ONLY))
    with distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0") \
            as cluster, distributed.Client(cluster, set_as_default=False) as client:
        img = dazzle.run(recs, None, scheduler=client, **FINAL_ONLY)
        on_files = dazzle.run(sim.files, str(tmp_path / "c"), scheduler=client, **FINAL_ONLY)
        later = dazzle.run(recs, None, scheduler=client, compute=False, **FINAL_ONLY)
        img2 = client.compute(later).result()
    in_processes = dazzle.run(recs, None, scheduler="processes", workers=2, **FINAL_ONLY)   # pickled chips
    for x in (img, img2, in_processes):
        for attr in ("data", "wht", "ctx"):
            assert getattr(x, attr).tobytes() == getattr(ref, attr).tobytes(), attr
    # the graph's chips carry keys of pixels scattered once, not the arrays; the result's
    # chips hold their arrays again
    assert shipped[0] == ["Scattered"] * 3 and shipped[1] == ["NoneType"] * 3
    assert img.run.chips[0].load().sci.tobytes() == recs[0]["data"].tobytes()
    b = final_arrays(on_files)
    for ext in ("SCI", "WHT", "CTX"):
        assert b[ext].tobytes() == ref_file[ext].tobytes()
    with pytest.raises(Exception, match="scheduler must be"):
        dazzle.run(recs, None, scheduler=object(), **FINAL_ONLY)


def test_compute_false_inside_a_larger_graph(sim, tmp_path):
    """Two deferred runs (one to a file, one in memory) feed further delayed steps; computed
    together they give what run gives."""
    import dask

    recs = [_chip(f) for f in sim.files]
    ref = dazzle.run(recs, None, **FINAL_ONLY)
    ref_file = final_arrays(dazzle.run(sim.files, str(tmp_path / "a"), **FINAL_ONLY))
    mem = dazzle.run(recs, None, compute=False, **FINAL_ONLY)
    half = dazzle.run(recs[:2], None, compute=False, **FINAL_ONLY)
    on_disk = dazzle.run(sim.files, str(tmp_path / "b"), compute=False, **FINAL_ONLY)
    assert not os.path.exists(tmp_path / "b_drz.fits")   # nothing computed yet

    @dask.delayed
    def flux(img):
        return float(np.nansum(img.data * (img.wht > 0)))

    @dask.delayed
    def read(result):
        return final_arrays(result)

    f_all, f_half, arrays, img = dask.compute(flux(mem), flux(half), read(on_disk), mem)
    assert f_all == pytest.approx(float(np.nansum(ref.data * (ref.wht > 0))), rel=0, abs=0)
    assert f_half != f_all
    assert img.data.tobytes() == ref.data.tobytes()
    for ext in ("SCI", "WHT", "CTX"):
        assert arrays[ext].tobytes() == ref_file[ext].tobytes()


def test_astrodrizzle_entry_point_with_a_cfg(sim, tmp_path):
    """drizzlepac's call with an AstroDrizzle .cfg (its input line used when input is None;
    keywords win over the file) gives dazzle.run's product."""
    cfg = tmp_path / "astrodrizzle.cfg"
    cfg.write_text("_task_name_ = astrodrizzle\ninput = " + ",".join(str(f) for f in sim.files) + "\n"
                   "output = ''\nmdriztab = False\n[STEP 3: DRIZZLE SEPARATE IMAGES]\ndriz_separate = False\n"
                   "[STEP 4: CREATE MEDIAN IMAGE]\nmedian = False\n[STEP 5: BLOT BACK THE MEDIAN IMAGE]\n"
                   "blot = False\n[STEP 6: REMOVE COSMIC RAYS WITH DERIV, DRIZ_CR]\ndriz_cr = False\n"
                   "[STEP 7: DRIZZLE FINAL COMBINED IMAGE]\nfinal_pixfrac = 0.8\nfinal_scale = 0.06\n"
                   "final_wcs = True\n")
    with pytest.warns(UserWarning, match="input"):
        r = dazzle.AstroDrizzle(configobj=str(cfg), output=str(tmp_path / "ad"), final_pixfrac=0.7)
    ref = dazzle.run(sim.files, str(tmp_path / "ref"), driz_separate=False, median=False, blot=False,
                     driz_cr=False, final_pixfrac=0.7, final_scale=0.06, final_wcs=True)
    a, b = final_arrays(r), final_arrays(ref)
    for ext in ("SCI", "WHT", "CTX"):
        assert a[ext].tobytes() == b[ext].tobytes(), ext
    assert r.params["final_pixfrac"] == 0.7 and r.params["final_scale"] == 0.06
    with pytest.raises(ParameterError, match="editpars"):
        dazzle.AstroDrizzle(sim.files, editpars=True)
    with pytest.raises(ParameterError, match="no input"):
        dazzle.AstroDrizzle(output="x")


def test_in_memory_products_never_replace_a_file_read(sim, tmp_path):
    """The safety checks hold for in-memory inputs: a product of an in-memory input (root
    mem01) would replace a file input, or the file an HDUList was read from: refused before
    anything is written."""
    import shutil

    r = _chip(sim.files[0])
    clash = tmp_path / "mem01_single_sci.fits"   # an input whose name is a product of <mem01>
    shutil.copy(sim.files[1], clash)
    with pytest.raises(dazzle.io.OutputError, match="mem01_single_sci.fits: is an input"):
        dazzle.run([(r["data"], r["wcs"]), str(clash), sim.files[2]], str(tmp_path / "out"))
    src = tmp_path / "syn_drz.fits"   # an HDUList read from the file the product would replace
    shutil.copy(sim.files[0], src)
    with fits.open(src) as h, pytest.raises(dazzle.io.OutputError, match="syn_drz.fits: is an input"):
        dazzle.run([h, sim.files[1]], str(tmp_path / "syn"), **FINAL_ONLY)
    assert sorted(os.listdir(tmp_path)) == ["mem01_single_sci.fits", "syn_drz.fits"]


def test_in_memory_product_has_the_files_dq_and_units(sim, tmp_path):
    """Regression: output=None dropped the propagated DQ (final_dq=True) and wrote BUNIT = None
    for final_units=counts from inputs in counts.  The in-memory product now carries the file's
    DQ bit for bit, and no BUNIT where the file has none."""
    from dazzle.simulate import DQ_HOT

    # hot pixels counted as good, so their flag is propagated
    params = dict(final_dq=True, final_units="counts", final_bits=str(DQ_HOT), **FINAL_ONLY)
    r_file = dazzle.run(sim.files, str(tmp_path / "f"), **params)
    img = dazzle.run([fits.open(f) for f in sim.files], None, **params)
    with fits.open(r_file.output) as h:
        assert img.dq.dtype == np.int32 and img.dq.tobytes() == h["DQ"].data.astype(np.int32).tobytes()
        assert ((img.dq & DQ_HOT) != 0).sum() > 3   # the simulated hot pixels reach the output
        assert ("BUNIT" in h["SCI"].header) == ("BUNIT" in img.header)
        assert img.err.tobytes() == h["ERR"].data.astype(np.float32).tobytes()
    assert img.to_hdulist()["DQ"].data.tobytes() == img.dq.tobytes()
