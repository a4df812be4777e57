"""The oracle sweep: dazzle against the real AstroDrizzle over many parameter settings.

One data set (3 simulated exposures x 2 chips of 128 x 128 pixels, with stars, sky, noise,
cosmic rays, hot pixels and a dead column), one AstroDrizzle run and one dazzle run per setting
(every step on unless the setting says otherwise), both with their defaults otherwise, so
dazzle's default output frame must be AstroDrizzle's.  The runs are made once per module (the
AstroDrizzle runs in two subprocesses, each importing drizzlepac once) and every setting's
assertions share them.

For every setting the sweep measures (:func:`measure`):

* the final frame: shape, CRVAL, CD and CRPIX (exact: 1e-8 deg, 1e-10 of CD, 1e-6 px);
* the final SCI and WHT where both have weight: median and 99th percentile of the relative
  difference (SCI relative to the larger of |SCI| and 1e-3 of its peak, WHT to the larger of
  |WHT| and 1e-3 of its maximum), and the pixels with weight in one product only;
* pixels where both WHT are 0 and AstroDrizzle's SCI holds a value dazzle's does not
  (``empty``: the value of a zero-weight input, README "Deliberate differences");
* the cosmic-ray masks: the largest fraction of a chip's pixels on which they differ, inside
  the outer two rows and columns (``cr``) and over the whole chip (``cr_all``);
* the skies: largest |MDRIZSKY difference| (e-);
* the final SCI's BUNIT (equal or not).

Bounds: the issue's (#17) for settings that agree -- SCI/WHT 1e-4 median and 1e-3 p99, CR
masks 99.9%, skies 1e-4 e-, frame exact -- and, tighter, about 10x what was measured
(:data:`MEASURED`, the figures of the run that recorded them).  Settings that differ by design
(:data:`DESIGN`, README "Deliberate differences") are pinned: the figure that shows the
difference must stay above a third of its measured size and below 10x, so it can neither grow
nor vanish unnoticed.

Cost (29 AstroDrizzle runs in 2 processes, 30 dazzle runs): 74 s of CPU; wall time 3 min 0 s
measured on the 2 shared cores with another test file running beside it, and under 63 s in a
quieter run (63 s for it, tests/test_frames.py and tests/kernels/test_drizzle_kernels.py together).  ``python tests/test_sweep.py [folder]`` prints the table of the README (a folder
given keeps the runs and reuses AstroDrizzle's).
"""

from __future__ import annotations

import shutil
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

import dazzle
from astrodrizzle_oracle import have_drizzlepac, run_astrodrizzle_batch, skip_or_fail
from dazzle.simulate import simulate

#: setting -> AstroDrizzle parameters (the same for dazzle); "ivm": give IVM files
SETTINGS = {
    "defaults": {},
    # the kernels without driz_cr: the CR masks' designed difference on the chips' outer rows
    # would spread over a wide kernel's footprint (measured with it: lanczos3 WHT p99 1.5e-2)
    "kernel_point": {"final_kernel": "point", "driz_cr": False},
    "kernel_gaussian": {"final_kernel": "gaussian", "driz_cr": False},
    "kernel_turbo": {"final_kernel": "turbo", "final_pixfrac": 0.8, "driz_cr": False},
    "kernel_lanczos3": {"final_kernel": "lanczos3", "driz_cr": False},
    "kernel_lanczos2": {"final_kernel": "lanczos2", "driz_cr": False},
    "units_counts": {"final_units": "counts"},
    "fillval_0": {"final_fillval": 0.0, "driz_sep_fillval": 0.0},
    "wht_err": {"final_wht_type": "ERR"},
    "wht_ivm": {"final_wht_type": "IVM"},
    "wt_scl_expsq": {"final_wt_scl": "expsq"},
    "combine_median": {"combine_type": "median"},
    "combine_imedian": {"combine_type": "imedian"},
    "combine_mean": {"combine_type": "mean"},
    "combine_imean": {"combine_type": "imean"},
    "combine_iminmed": {"combine_type": "iminmed"},
    "sky_globalmin": {"skymethod": "globalmin"},
    "sky_match": {"skymethod": "match"},
    "sky_globalmin_match": {"skymethod": "globalmin+match"},
    "skystat_mode": {"skystat": "mode"},
    "skystat_mean": {"skystat": "mean", "skywidth": 0.2},
    "cr_snr_scale": {"driz_cr_snr": "4.0 3.0", "driz_cr_scale": "1.5 1.0"},
    "cr_grow": {"driz_cr_grow": 3, "driz_cr_ctegrow": 10},
    "cr_corr": {"driz_cr_corr": True},
    "final_only_bits": {"static": False, "skysub": False, "driz_separate": False, "median": False,
                        "blot": False, "driz_cr": False, "final_bits": "16"},
    "frame_rot": {"final_wcs": True, "final_rot": 0.0},
    "frame_scale": {"final_wcs": True, "final_scale": 0.03},
    "frame_radec": "radec",
    "frame_combined": "combined",
}

#: dazzle-only variants: (the setting whose AstroDrizzle run they share, dazzle's extra parameters)
VARIANTS = {"cr_grow_legacy": ("cr_grow", {"driz_cr_legacy": True})}

#: Settings that differ from AstroDrizzle by design (README "Deliberate differences"): the
#: figure pinned at its measured size, and the figures freed from the issue's bounds (still
#: bounded at 10x their measured size).
DESIGN = {
    # AstroDrizzle's SCI where the only inputs have zero weight (dazzle: NaN)
    "kernel_point": ("empty", ()),
    "kernel_turbo": ("empty", ()),
    # drizzlepac's 0.01-step table: an index moves a step for a position change of ~1e-5 px
    "kernel_lanczos3": ("wht_p99", ("sci_p99", "wht_p99")),
    "kernel_lanczos2": ("wht_p99", ("sci_p99", "wht_p99")),
    # drizzlepac 3.11 weighs expsq as exptime
    "wt_scl_expsq": ("wht_med", ("wht_med", "wht_p99")),
    # drizzlepac 3.11 falls back to localmin (globalmin) for match (skypac fails to import)
    "sky_match": ("sci_med", ("sci_med", "sci_p99", "wht_p99", "cr")),
    "sky_globalmin_match": ("sci_med", ("sci_med", "sci_p99")),
    # the outer rows' CR difference, grown by driz_cr_grow and the CTE tail (cr_grow_legacy: none)
    "cr_grow": ("cr", ("sci_p99", "wht_p99", "cr")),
    # drizzlepac's masks: only the zero-weight pixels' values remain (large grown masks)
    "cr_grow_legacy": ("empty", ()),
}


def _frame_settings(name, centre):
    """The user-frame settings that need the data's position."""
    ra, dec = centre
    if name == "radec":
        return {"final_wcs": True, "final_ra": ra + 2e-5, "final_dec": dec - 1e-5}
    return {"final_wcs": True, "final_rot": 30.0, "final_scale": 0.028, "final_outnx": 260,
            "final_outny": 330, "final_ra": ra, "final_dec": dec}


def _ivm_files(files, outdir):
    """One IVM file per exposure: 1/ERR^2 in extensions (IVM, chip)."""
    out = []
    outdir.mkdir(parents=True, exist_ok=True)
    for f in files:
        hdus = [fits.PrimaryHDU()]
        with fits.open(f) as h:
            for ext in h:
                if ext.name == "ERR":
                    err = ext.data.astype(np.float32)
                    ivm = np.where(err > 0, 1.0 / np.maximum(err, 1e-6) ** 2, 0.0).astype(np.float32)
                    hdus.append(fits.ImageHDU(ivm, name="IVM", ver=ext.ver))
        path = outdir / (Path(f).name.replace("_flt.fits", "_ivm.fits"))
        fits.HDUList(hdus).writeto(path, overwrite=True)
        out.append(str(path))
    return out


def _centre(files):
    """The mean of the first exposure's two chips' reference points (RA, Dec)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        crvals = [WCS(fits.getheader(files[0], ("SCI", c))).wcs.crval for c in (1, 2)]
    ra, dec = np.mean(crvals, axis=0)
    return float(ra), float(dec)


def run_sweep(base, reuse=False):
    """Every setting run by AstroDrizzle and by dazzle in ``base``: {setting: (ad products,
    dazzle RunResult, params)}.  ``reuse``: AstroDrizzle runs already in ``base`` are kept."""
    sim = simulate(base / "in", n_exposures=3, chips=2, size=128, seed=17, n_stars=20,
                   min_separation=10.0, cr_rate=1.5e-5)
    files = [str(f) for f in sim.files]
    ivm = _ivm_files(files, base / "ivm")
    params = {}
    for name, p in SETTINGS.items():
        params[name] = _frame_settings(p, _centre(files)) if isinstance(p, str) else dict(p)
    jobs = [dict(inputs=files, workdir=base / "ad" / name, output="syn", params=params[name],
                 as_list=name != "wht_ivm", ivm=ivm if name == "wht_ivm" else None)
            for name in SETTINGS]
    names = list(SETTINGS)
    if reuse:
        import astrodrizzle_oracle as o
        done = [n for n, j in zip(names, jobs) if (j["workdir"] / "syn_drz.fits").exists()]
        ad = {n: o._products(dict(workdir=str(j["workdir"]), inputs=[Path(f).name for f in files],
                                  output="syn"), j["workdir"] / "astrodrizzle.log", "")
              for n, j in zip(names, jobs) if n in done}
        jobs = [j for n, j in zip(names, jobs) if n not in done]
        todo = [n for n in names if n not in done]
    else:
        ad, todo = {}, names
    with ThreadPoolExecutor(2) as pool:
        halves = list(pool.map(run_astrodrizzle_batch, [h for h in (jobs[0::2], jobs[1::2]) if h]))
    for half, products in zip((todo[0::2], todo[1::2]), halves):
        ad.update(zip(half, products))
    out = {}
    for name, (shared, extra) in VARIANTS.items():
        params[name] = dict(params[shared], **extra)
        ad[name] = ad[shared]
    for name in names + list(VARIANTS):
        kw = dict(params[name])
        if name == "wht_ivm":
            kw["ivm"] = ivm
        shutil.rmtree(base / "dz" / name, ignore_errors=True)
        r = dazzle.run(files, str(base / "dz" / name / "syn"), **kw)
        out[name] = (ad[name], r, params[name])
    return out


def _rel(a, b, floor):
    return np.abs(a - b) / np.maximum(np.abs(b), floor)


def measure(ad, r, params):
    """The figures of one setting (see the module docstring)."""
    m = {}
    with fits.open(ad["drz"]) as a, fits.open(r.output) as d:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wa, wd = WCS(a["SCI"].header), WCS(d["SCI"].header)
        m["shape"] = a["SCI"].data.shape == d["SCI"].data.shape
        m["bunit"] = a["SCI"].header.get("BUNIT") == d["SCI"].header.get("BUNIT")
        m["crval"] = float(np.abs(wd.wcs.crval - wa.wcs.crval).max())
        m["cd"] = float(np.abs(wd.wcs.cd - wa.wcs.cd).max() / np.abs(wa.wcs.cd).max())
        m["crpix"] = float(np.abs(wd.wcs.crpix - wa.wcs.crpix).max())
        if not m["shape"]:
            return m
        sa, sd = a["SCI"].data.astype(float), d["SCI"].data.astype(float)
        ha, hd = a["WHT"].data.astype(float), d["WHT"].data.astype(float)
    both = (ha != 0) & (hd != 0)
    rs = _rel(sd[both], sa[both], 1e-3 * np.nanmax(np.abs(sa[both])))
    rw = _rel(hd[both], ha[both], 1e-3 * np.abs(ha[both]).max())
    m["sci_med"], m["sci_p99"] = float(np.median(rs)), float(np.percentile(rs, 99))
    m["wht_med"], m["wht_p99"] = float(np.median(rw)), float(np.percentile(rw, 99))
    m["one_side"] = int(((ha != 0) != (hd != 0)).sum())
    empty = (ha == 0) & (hd == 0)
    m["empty"] = int((empty & np.isfinite(sa) & (sa != sd) & ~(np.isnan(sa) & np.isnan(sd))).sum())
    if r.crmasks is not None and ad["crmask"]:
        # "cr": inside the chips' outer two rows and columns, where dazzle finds the cosmic rays
        # drizzlepac misses by design; "cr_all": the whole chip
        m["cr"] = m["cr_all"] = 0.0
        for k, (root, chip) in enumerate(sorted(ad["crmask"])):
            diff = fits.getdata(ad["crmask"][(root, chip)]).astype(bool) != r.crmasks[k]
            m["cr"] = max(m["cr"], float(diff[2:-2, 2:-2].mean()))
            m["cr_all"] = max(m["cr_all"], float(diff.mean()))
    ad_sky = [fits.getheader(f, ("SCI", c)).get("MDRIZSKY") for f in ad["inputs"] for c in (1, 2)]
    if params.get("skysub", True) and None not in ad_sky:   # (skymethod=match: none written)
        m["sky"] = float(np.max(np.abs(np.subtract(r.skies, ad_sky))))
    return m


#: setting -> the figures the sweep measured (the run that set the bounds; see the module
#: docstring), from ``python tests/test_sweep.py`` (3 significant digits).
MEASURED = {
    "defaults": {"sci_med": 1.42e-05, "sci_p99": 0.000179, "wht_med": 1.95e-05, "wht_p99": 0.000447,
                 "one_side": 0, "empty": 1, "cr": 6.5e-05, "cr_all": 0.000793, "sky": 3.24e-06},
    "kernel_point": {"sci_med": 0.0, "sci_p99": 1.1e-07, "wht_med": 0.0, "wht_p99": 0.0, "one_side": 0,
                     "empty": 18, "sky": 3.24e-06},
    "kernel_gaussian": {"sci_med": 1.83e-05, "sci_p99": 0.000264, "wht_med": 2.9e-05,
                        "wht_p99": 0.00059, "one_side": 0, "empty": 2, "sky": 3.24e-06},
    "kernel_turbo": {"sci_med": 2.13e-05, "sci_p99": 0.000318, "wht_med": 2.57e-05,
                     "wht_p99": 0.000254, "one_side": 0, "empty": 7, "sky": 3.24e-06},
    "kernel_lanczos3": {"sci_med": 1.69e-07, "sci_p99": 0.00381, "wht_med": 2.38e-07,
                        "wht_p99": 0.00483, "one_side": 0, "empty": 297, "sky": 3.24e-06},
    "kernel_lanczos2": {"sci_med": 4.95e-08, "sci_p99": 0.00283, "wht_med": 1.16e-07,
                        "wht_p99": 0.00458, "one_side": 0, "empty": 309, "sky": 3.24e-06},
    "units_counts": {"sci_med": 1.41e-05, "sci_p99": 0.000179, "wht_med": 1.95e-05,
                     "wht_p99": 0.000447, "one_side": 0, "empty": 1, "cr": 6.5e-05, "cr_all": 0.000793,
                     "sky": 3.24e-06},
    "fillval_0": {"sci_med": 1.42e-05, "sci_p99": 0.000179, "wht_med": 1.95e-05, "wht_p99": 0.000447,
                  "one_side": 0, "empty": 0, "cr": 6.5e-05, "cr_all": 0.000793, "sky": 3.24e-06},
    "wht_err": {"sci_med": 1.44e-05, "sci_p99": 0.00018, "wht_med": 1.97e-05, "wht_p99": 0.000447,
                "one_side": 0, "empty": 1, "cr": 6.5e-05, "cr_all": 0.000793, "sky": 3.24e-06},
    "wht_ivm": {"sci_med": 1.44e-05, "sci_p99": 0.00018, "wht_med": 1.97e-05, "wht_p99": 0.000447,
                "one_side": 0, "empty": 1, "cr": 6.5e-05, "cr_all": 0.000793, "sky": 3.24e-06},
    "wt_scl_expsq": {"sci_med": 1.42e-05, "sci_p99": 0.000179, "wht_med": 399.0, "wht_p99": 399.0,
                     "one_side": 0, "empty": 1, "cr": 6.5e-05, "cr_all": 0.000793, "sky": 3.24e-06},
    "combine_median": {"sci_med": 1.45e-05, "sci_p99": 0.000178, "wht_med": 1.94e-05,
                       "wht_p99": 0.00034, "one_side": 0, "empty": 1, "cr": 0.00013, "cr_all": 0.00061,
                       "sky": 3.24e-06},
    "combine_imedian": {"sci_med": 1.45e-05, "sci_p99": 0.000178, "wht_med": 1.94e-05,
                        "wht_p99": 0.00034, "one_side": 0, "empty": 1, "cr": 0.00013,
                        "cr_all": 0.00061, "sky": 3.24e-06},
    "combine_mean": {"sci_med": 1.56e-05, "sci_p99": 0.000244, "wht_med": 1.95e-05,
                     "wht_p99": 0.000611, "one_side": 0, "empty": 2, "cr": 0.000325, "cr_all": 0.00116,
                     "sky": 3.24e-06},
    "combine_imean": {"sci_med": 1.56e-05, "sci_p99": 0.000244, "wht_med": 1.95e-05,
                      "wht_p99": 0.000611, "one_side": 0, "empty": 2, "cr": 0.000325,
                      "cr_all": 0.00116, "sky": 3.24e-06},
    "combine_iminmed": {"sci_med": 1.42e-05, "sci_p99": 0.000179, "wht_med": 1.95e-05,
                        "wht_p99": 0.000447, "one_side": 0, "empty": 1, "cr": 6.5e-05,
                        "cr_all": 0.000793, "sky": 3.24e-06},
    "sky_globalmin": {"sci_med": 1.42e-05, "sci_p99": 0.000179, "wht_med": 1.95e-05,
                      "wht_p99": 0.000447, "one_side": 0, "empty": 1, "cr": 6.5e-05,
                      "cr_all": 0.000793, "sky": 5.93e-07},
    "sky_match": {"sci_med": 4.98, "sci_p99": 4.98, "wht_med": 2.05e-05, "wht_p99": 0.183,
                  "one_side": 0, "empty": 1, "cr": 0.00507, "cr_all": 0.00549},
    "sky_globalmin_match": {"sci_med": 0.000205, "sci_p99": 0.00307, "wht_med": 1.95e-05,
                            "wht_p99": 0.000457, "one_side": 0, "empty": 1, "cr": 0.00013,
                            "cr_all": 0.000793},
    "skystat_mode": {"sci_med": 1.41e-05, "sci_p99": 0.000179, "wht_med": 1.96e-05,
                     "wht_p99": 0.000447, "one_side": 0, "empty": 1, "cr": 6.5e-05, "cr_all": 0.000793,
                     "sky": 0.0},
    "skystat_mean": {"sci_med": 1.41e-05, "sci_p99": 0.000181, "wht_med": 1.95e-05,
                     "wht_p99": 0.000447, "one_side": 0, "empty": 1, "cr": 6.5e-05, "cr_all": 0.000793,
                     "sky": 0.0},
    "cr_snr_scale": {"sci_med": 1.42e-05, "sci_p99": 0.000189, "wht_med": 1.95e-05, "wht_p99": 0.0005,
                     "one_side": 0, "empty": 1, "cr": 0.00013, "cr_all": 0.000793, "sky": 3.24e-06},
    "cr_grow": {"sci_med": 1.5e-05, "sci_p99": 0.0884, "wht_med": 2.21e-05, "wht_p99": 0.333,
                "one_side": 152, "empty": 440, "cr": 0.0026, "cr_all": 0.0072, "sky": 3.24e-06},
    "cr_corr": {"sci_med": 1.42e-05, "sci_p99": 0.000179, "wht_med": 1.95e-05, "wht_p99": 0.000447,
                "one_side": 0, "empty": 1, "cr": 6.5e-05, "cr_all": 0.000793, "sky": 3.24e-06},
    "final_only_bits": {"sci_med": 3.46e-06, "sci_p99": 9.51e-05, "wht_med": 1.89e-05,
                        "wht_p99": 0.000234, "one_side": 0, "empty": 0},
    "frame_rot": {"sci_med": 1.3e-05, "sci_p99": 0.000175, "wht_med": 1.98e-05, "wht_p99": 0.000987,
                  "one_side": 0, "empty": 0, "cr": 6.5e-05, "cr_all": 0.000793, "sky": 3.24e-06},
    "frame_scale": {"sci_med": 1.16e-05, "sci_p99": 0.000164, "wht_med": 1.91e-05, "wht_p99": 0.000566,
                    "one_side": 0, "empty": 0, "cr": 6.5e-05, "cr_all": 0.000793, "sky": 3.24e-06},
    "frame_radec": {"sci_med": 1.4e-05, "sci_p99": 0.00018, "wht_med": 1.91e-05, "wht_p99": 0.000386,
                    "one_side": 0, "empty": 1, "cr": 6.5e-05, "cr_all": 0.000793, "sky": 3.24e-06},
    "frame_combined": {"sci_med": 1.27e-05, "sci_p99": 0.000184, "wht_med": 1.93e-05,
                       "wht_p99": 0.000815, "one_side": 0, "empty": 1, "cr": 6.5e-05,
                       "cr_all": 0.000793, "sky": 3.24e-06},
    "cr_grow_legacy": {"sci_med": 1.46e-05, "sci_p99": 0.000144, "wht_med": 2.18e-05,
                       "wht_p99": 0.000346, "one_side": 0, "empty": 572, "cr": 0.0, "cr_all": 0.0,
                       "sky": 3.24e-06},
}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    if not have_drizzlepac():
        skip_or_fail("drizzlepac (the real AstroDrizzle, the test oracle) is not installed: make test")
    return {name: measure(*run) for name, run in run_sweep(tmp_path_factory.mktemp("sweep")).items()}


#: the issue's bounds for settings that agree
AGREE = {"sci_med": 1e-4, "sci_p99": 1e-3, "wht_med": 1e-4, "wht_p99": 1e-3, "cr": 1e-3, "sky": 1e-4}
#: below these a figure is rounding noise: its bound is 10x this floor instead of 10x the figure
NOISE = {"sci_med": 1e-7, "sci_p99": 1e-6, "wht_med": 1e-7, "wht_p99": 1e-6, "cr": 1e-5, "cr_all": 1e-5,
         "sky": 1e-7,
         "one_side": 1, "empty": 1}


def bound(name, key):
    """10x the measured figure (or 10x the noise floor), capped by the issue's bound unless the
    setting differs by design in that figure."""
    b = 10 * max(MEASURED[name].get(key, 0.0), NOISE[key])
    if key in AGREE and key not in DESIGN.get(name, (None, ()))[1]:
        b = min(b, AGREE[key])
    return b


@pytest.mark.oracle
@pytest.mark.parametrize("name", list(SETTINGS) + list(VARIANTS))
def test_setting_agrees_with_astrodrizzle(sweep, name):
    m = sweep[name]
    # the frame, exactly
    assert m["shape"], "frame shape"
    assert m["crval"] < 1e-8 and m["cd"] < 1e-10 and m["crpix"] < 1e-6, m
    assert m["bunit"], "BUNIT"
    for key in ("sci_med", "sci_p99", "wht_med", "wht_p99", "one_side", "empty", "cr", "cr_all", "sky"):
        if key not in MEASURED[name]:
            assert key not in m, key
            continue
        assert m[key] <= bound(name, key), (key, m[key], MEASURED[name][key])
    # a difference by design is pinned: it must still be there, near its measured size
    if name in DESIGN:
        key = DESIGN[name][0]
        assert m[key] >= MEASURED[name][key] / 3, (key, m[key], MEASURED[name][key])
    for key in DESIGN.get(name, (None, ()))[1]:   # freed from the bound, never by chance
        assert MEASURED[name][key] > AGREE[key], (key, MEASURED[name][key])


@pytest.mark.oracle
def test_sweep_table(sweep, capsys):
    # every setting measured, and the table the README shows
    assert set(sweep) == set(SETTINGS) | set(VARIANTS) == set(MEASURED)
    with capsys.disabled():
        print("\n" + table(sweep))


def table(results):
    """The sweep's figures as a Markdown table (README)."""
    cols = ("sci_med", "sci_p99", "wht_med", "wht_p99", "one_side", "empty", "cr", "cr_all", "sky")
    lines = ["| setting | frame | " + " | ".join(cols) + " |", "|---" * (len(cols) + 2) + "|"]
    for name, m in results.items():
        exact = m["shape"] and m["crval"] < 1e-8 and m["cd"] < 1e-10 and m["crpix"] < 1e-6
        cells = []
        for c in cols:
            v = m.get(c)
            cells.append("" if v is None else (str(v) if isinstance(v, int) else f"{v:.1e}"))
        lines.append(f"| {name}{' *' if name in DESIGN else ''} | {'exact' if exact else 'DIFFERS'} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tmp)
        res = {name: measure(*run) for name, run in run_sweep(base, reuse=len(sys.argv) > 1).items()}
    print(table(res))
    print(repr(res))
    sys.exit(0)
