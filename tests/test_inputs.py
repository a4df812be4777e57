"""Inputs AstroDrizzle takes (issue 12, item 4): association tables, the IVM column of an
@-list, and ``configobj=`` from Python; each through the Python API and the CLI."""

from __future__ import annotations

import logging
import os
import shutil
import warnings

import numpy as np
import pytest
from astropy.io import fits

import dazzle
from dazzle import io
from dazzle.cli import main as cli_main
from dazzle.io import InputError
from dazzle.params import ParameterError

OFF = dict(static=False, skysub=False, median=False, blot=False, driz_cr=False)


@pytest.fixture(scope="module")
def sim(simulated):
    """3 dithered exposures of one 96x96 chip, no cosmic rays."""
    return simulated(n_exposures=3, chips=1, size=96, seed=11, n_stars=12, min_separation=12.0,
                     cosmic_rays=False)


@pytest.fixture(scope="module")
def two(sim, tmp_path_factory):
    """dazzle's final image of the first two exposures (what the association lists)."""
    return dazzle.run(sim.files[:2], str(tmp_path_factory.mktemp("two") / "two"), **OFF)


def write_asn(path, rows):
    """An association table: rows of (MEMNAME, MEMTYPE, MEMPRSNT)."""
    cols = [fits.Column("MEMNAME", "14A", array=[r[0] for r in rows]),
            fits.Column("MEMTYPE", "14A", array=[r[1] for r in rows]),
            fits.Column("MEMPRSNT", "L", array=[r[2] for r in rows])]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols, name="ASN")]).writeto(path)
    return str(path)


def _pixels(path):
    with fits.open(path) as h:
        return h["SCI"].data.copy(), h["WHT"].data.copy()


def _asn_rows(sim):
    r = [s.upper() for s in sim.roots]
    # the third exposure is not present (MEMPRSNT F): left out, as asnutil does
    return [(r[0], "EXP-DTH", True), (r[1], "EXP-DTH", True), (r[2], "EXP-DTH", False),
            ("DZSIMPRD", "PROD-DTH", True)]


def test_association_members_and_product_name(sim, monkeypatch):
    monkeypatch.chdir(sim.outdir)                   # asnutil looks for the members here
    asn = write_asn(sim.outdir / "dzsim_asn.fits", _asn_rows(sim))
    got = io.expand_inputs(asn)
    assert got.files == [str(f) for f in sim.files[:2]]
    assert got.output == "dzsimprd"
    # the same rule as stsci.tools (installed with the AstroDrizzle oracle)
    from stsci.tools import asnutil
    ref = asnutil.readASNTable(asn)
    assert ref["order"] == [r.lower() for r in sim.roots[:2]] and ref["output"] == "DZSIMPRD"
    # without a product row: the table's name up to its first '_' (asnutil's fallback)
    asn2 = write_asn(sim.outdir / "other_x_asn.fits", _asn_rows(sim)[:3])
    assert io.expand_inputs(asn2).output == "other"
    # PROD-RPT is used when there is no PROD-DTH
    asn3 = write_asn(sim.outdir / "rpt_asn.fits", _asn_rows(sim)[:3] + [("XRPT", "PROD-RPT", True)])
    assert io.expand_inputs(asn3).output == "xrpt"


def test_association_run_api_and_cli(sim, two, tmp_path, monkeypatch, capsys):
    asn = write_asn(tmp_path / "dzsim_asn.fits", _asn_rows(sim))
    for f in sim.files:
        shutil.copy(f, tmp_path)                     # the members beside the table
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    r = dazzle.run(asn, **OFF)
    # the output name comes from the PROD-DTH row, in the current directory (AstroDrizzle)
    assert os.path.abspath(r.output) == str(work / "dzsimprd_drz.fits")
    assert r.nchips == 2
    sci, wht = _pixels(r.output)
    ref_sci, ref_wht = _pixels(two.output)
    np.testing.assert_array_equal(sci, ref_sci)
    np.testing.assert_array_equal(wht, ref_wht)
    # the user's output name wins over the table's
    assert os.path.abspath(dazzle.run(asn, "mine", **OFF).output) == str(work / "mine_drz.fits")
    # the CLI
    rc = cli_main(["run", asn, "-o", "cli", "-q", *sum((["--set", f"{k}={v}"] for k, v in OFF.items()), [])])
    assert rc == 0, capsys.readouterr().err
    np.testing.assert_array_equal(_pixels(work / "cli_drz.fits")[0], ref_sci)


def test_association_errors(sim, tmp_path, capsys):
    rows = _asn_rows(sim)
    # a member with no file beside the table
    asn = write_asn(tmp_path / "a_asn.fits", rows)
    with pytest.raises(InputError, match=r"a_asn.fits: member DZSIM01 \(EXP-DTH\): no dzsim01_flt.fits"):
        io.expand_inputs(asn)
    # both _flt and _flc: drizzlepac refuses too (buildASNList)
    shutil.copy(sim.files[0], tmp_path)
    shutil.copy(sim.files[1], tmp_path)
    shutil.copy(sim.files[0], tmp_path / f"{sim.roots[0]}_flc.fits")
    with pytest.raises(InputError, match="both dzsim01_flt.fits and dzsim01_flc.fits"):
        io.expand_inputs(asn)
    (tmp_path / f"{sim.roots[0]}_flc.fits").unlink()
    assert len(io.expand_inputs(asn).files) == 2
    # _flc alone is taken
    (tmp_path / f"{sim.roots[1]}_flt.fits").rename(tmp_path / f"{sim.roots[1]}_flc.fits")
    assert io.expand_inputs(asn).files[1].endswith("dzsim02_flc.fits")
    # no exposure present; not a table
    none = write_asn(tmp_path / "n_asn.fits", [(r[0], r[1], False) for r in rows[:3]])
    with pytest.raises(InputError, match="no present exposure"):
        io.expand_inputs(none)
    fits.HDUList([fits.PrimaryHDU(np.zeros((2, 2)))]).writeto(tmp_path / "bad_asn.fits")
    with pytest.raises(InputError, match="bad_asn.fits.*not an association table"):
        io.expand_inputs(str(tmp_path / "bad_asn.fits"))
    rc = cli_main(["run", str(tmp_path / "bad_asn.fits"), "-o", str(tmp_path / "x")])
    assert rc == 2 and "not an association table" in capsys.readouterr().err


def _ivm_files(sim, tmp_path, values=(2.0, 3.0, 5.0)):
    out = []
    for k, v in enumerate(values):
        p = tmp_path / f"w{k}_ivm.fits"
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.full((96, 96), v, np.float32),
                                                       name="IVM", ver=1)]).writeto(p)
        out.append(str(p))
    return out


def test_at_list_ivm_column(sim, tmp_path, monkeypatch, capsys, caplog):
    ivms = _ivm_files(sim, tmp_path)
    lst = tmp_path / "in.lst"
    lst.write_text("".join(f"{f}  {i}\n" for f, i in zip(sim.files, ivms)))
    got = io.expand_inputs(f"@{lst}")
    assert got.files == [str(f) for f in sim.files] and got.ivm == ivms
    # the column feeds final_wht_type=IVM exactly as ivm=[...] does
    by_kw = dazzle.run(sim.files, str(tmp_path / "kw"), ivm=ivms, final_wht_type="IVM", **OFF)
    by_col = dazzle.run(f"@{lst}", str(tmp_path / "col"), final_wht_type="IVM", **OFF)
    wk, wc = _pixels(by_kw.output)[1], _pixels(by_col.output)[1]
    np.testing.assert_array_equal(wc, wk)
    # and it changes the weights: the IVM values 2, 3, 5 times EXPTIME^2 (pix_ratio 1)
    exp = dazzle.run(f"@{lst}", str(tmp_path / "exp"), **OFF)
    w_exp = _pixels(exp.output)[1]
    # IVM weights are ivm * EXPTIME^2 = (2..5) * 400^2 per input, EXP weights 400 each
    cov = w_exp > 0
    assert np.all(wc[cov] >= 2.0 * 400.0 * w_exp[cov] * 0.999)
    # the CLI
    rc = cli_main(["run", f"@{lst}", "-o", str(tmp_path / "cli"), "-q", "--set", "final_wht_type=IVM",
                   *sum((["--set", f"{k}={v}"] for k, v in OFF.items()), [])])
    assert rc == 0, capsys.readouterr().err
    np.testing.assert_array_equal(_pixels(tmp_path / "cli_drz.fits")[1], wk)
    # without final_wht_type=IVM the column is not used, and the run says so
    with caplog.at_level(logging.WARNING, logger="dazzle"):
        dazzle.run(f"@{lst}", str(tmp_path / "exp2"), **OFF)
    assert "names IVM files but final_wht_type=EXP" in caplog.text
    # given twice; a line without one; too many columns
    with pytest.raises(InputError, match="IVM files given twice"):
        dazzle.run(f"@{lst}", str(tmp_path / "t"), ivm=ivms, final_wht_type="IVM", **OFF)
    lst.write_text(f"{sim.files[0]} {ivms[0]}\n{sim.files[1]}\n")
    with pytest.raises(InputError, match="dzsim02_flt.fits: no IVM file for this input"):
        dazzle.run(f"@{lst}", str(tmp_path / "m"), final_wht_type="IVM", **OFF)
    lst.write_text(f"{sim.files[0]} {ivms[0]} extra\n")
    with pytest.raises(InputError, match="line 1: 3 columns"):
        io.expand_inputs(f"@{lst}")


def test_configobj_from_python(sim, tmp_path):
    cfg = tmp_path / "x.cfg"
    cfg.write_text("_task_name_ = astrodrizzle\n[STEP 7: DRIZZLE FINAL COMBINED IMAGE]\n"
                   "final_kernel = point\nfinal_pixfrac = 1.0\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")              # no IgnoredParameterWarning any more
        r = dazzle.run(sim.files, str(tmp_path / "co"), configobj=str(cfg), **OFF)
    assert r.params["final_kernel"] == "point"
    ref = dazzle.run(sim.files, str(tmp_path / "cf"), config=str(cfg), **OFF)
    np.testing.assert_array_equal(_pixels(r.output)[0], _pixels(ref.output)[0])
    sq = dazzle.run(sim.files, str(tmp_path / "sq"), **OFF)
    assert not np.array_equal(_pixels(r.output)[1], _pixels(sq.output)[1])
    # keyword arguments win over it, as over config=
    assert dazzle.run(sim.files, str(tmp_path / "kw"), configobj=str(cfg), final_kernel="turbo",
                      **OFF).params["final_kernel"] == "turbo"
    # a mapping, as AstroDrizzle's ConfigObj
    assert dazzle.run(sim.files, str(tmp_path / "d"), configobj={"final_kernel": "gaussian"},
                      **OFF).params["final_kernel"] == "gaussian"
    with pytest.raises(ParameterError, match="configobj= and config= both given"):
        dazzle.run(sim.files, str(tmp_path / "b"), config=str(cfg), configobj=str(cfg), **OFF)
    # adrizzle.drizzle's entry point takes it too
    assert dazzle.drizzle(sim.files, str(tmp_path / "dr"), configobj=str(cfg), driz_separate=False,
                          **OFF).params["final_kernel"] == "point"
