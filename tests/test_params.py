"""Tests for dazzle.params: the AstroDrizzle parameter table, parsing and config files."""

import math
import warnings

import numpy as np
import pytest

from dazzle import params as P
from dazzle.params import IgnoredParameterWarning, ParameterError

# Defaults as documented for AstroDrizzle (drizzlepac 3.11 astrodrizzle.cfg /
# shared/reference/astrodrizzle-pipeline.md), in dazzle's normalised form.
ASTRODRIZZLE_DEFAULTS = {
    "output": "",
    "runfile": "astrodrizzle.log",
    "proc_unit": "native",
    "coeffs": True,
    "context": True,
    "crbit": 4096,
    "stepsize": 10,
    "resetbits": "4096",
    "num_cores": None,
    "in_memory": False,
    "clean": False,
    "preserve": True,
    "static": True,
    "static_sig": 4.0,
    "skysub": True,
    "skymethod": "localmin",
    "skystat": "median",
    "skywidth": 0.1,
    "skylower": None,
    "skyupper": None,
    "skyclip": 5,
    "skylsigma": 4.0,
    "skyusigma": 4.0,
    "use_static": True,
    "sky_bits": "0",
    "driz_separate": True,
    "driz_sep_kernel": "turbo",
    "driz_sep_pixfrac": 1.0,
    "driz_sep_fillval": None,
    "driz_sep_bits": "0",
    "driz_sep_wt_scl": "exptime",
    "driz_sep_wcs": False,
    "median": True,
    "median_newmasks": True,
    "combine_maskpt": 0.3,
    "combine_type": "minmed",
    "combine_nsigma": (4.0, 3.0),
    "combine_nlow": 0,
    "combine_nhigh": 0,
    "combine_lthresh": None,
    "combine_hthresh": None,
    "combine_grow": 1,
    "combine_bufsize": None,
    "blot": True,
    "blot_interp": "poly5",
    "blot_sinscl": 1.0,
    "blot_addsky": True,
    "blot_skyval": 0.0,
    "driz_cr": True,
    "driz_cr_corr": False,
    "driz_cr_snr": (3.5, 3.0),
    "driz_cr_scale": (1.2, 0.7),
    "driz_cr_grow": 1,
    "driz_cr_ctegrow": 0,
    "driz_combine": True,
    "final_wht_type": "EXP",
    "final_kernel": "square",
    "final_wt_scl": "exptime",
    "final_pixfrac": 1.0,
    "final_fillval": None,
    "final_maskval": None,
    "final_bits": "0",
    "final_units": "cps",
    "final_wcs": False,
    "final_rot": None,
    "final_scale": None,
    "final_outnx": None,
    "final_ra": None,
    "final_crpix2": None,
    "gain": None,
    "gnkeyword": "",
}

REQUIRED_NAMES = """
output runfile wcskey proc_unit coeffs context group build crbit stepsize resetbits num_cores
in_memory clean preserve gain gnkeyword rdnoise rnkeyword exptime expkeyword static static_sig
skysub skymethod skystat skywidth skylower skyupper skyclip skylsigma skyusigma sky_bits
use_static skyuser skyfile skymask_cat driz_separate driz_sep_kernel driz_sep_wt_scl
driz_sep_pixfrac driz_sep_fillval driz_sep_bits driz_sep_compress driz_sep_wcs
driz_sep_refimage driz_sep_rot driz_sep_scale driz_sep_outnx driz_sep_outny driz_sep_ra
driz_sep_dec driz_sep_crpix1 driz_sep_crpix2 median median_newmasks combine_maskpt combine_type
combine_nsigma combine_nlow combine_nhigh combine_lthresh combine_hthresh combine_grow
combine_bufsize blot blot_interp blot_sinscl blot_addsky blot_skyval driz_cr driz_cr_corr
driz_cr_snr driz_cr_grow driz_cr_ctegrow driz_cr_scale driz_combine final_wht_type final_kernel
final_wt_scl final_pixfrac final_fillval final_maskval final_bits final_units final_wcs
final_refimage final_rot final_scale final_outnx final_outny final_ra final_dec final_crpix1
final_crpix2 update_input_dq scheduler tile_size pixmap_mode
""".split()


# ---------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------


def test_table_covers_required_names():
    missing = [n for n in REQUIRED_NAMES if n not in P.PARAMETERS]
    assert missing == []


def test_build_default_is_a_deliberate_difference():
    # AstroDrizzle's default is build=False (three files); dazzle's product is one
    # multi-extension file unless build=False is asked for (README: Deliberate differences)
    assert P.defaults()["build"] is True
    assert P.parse_value("build", "no") is False


@pytest.mark.parametrize("name,expected", sorted(ASTRODRIZZLE_DEFAULTS.items()))
def test_defaults_match_astrodrizzle(name, expected):
    d = P.defaults()
    assert d[name] == expected
    assert type(d[name]) is type(expected)


def test_defaults_are_fresh_and_complete():
    d = P.defaults()
    assert list(d) == list(P.PARAMETERS)
    d["final_kernel"] = "point"
    assert P.defaults()["final_kernel"] == "square"


def test_every_default_is_valid_and_normalised():
    for name, p in P.PARAMETERS.items():
        assert P.parse_value(name, p.default) == p.default, name
        assert p.step in P.STEPS
        assert p.help and "\n" not in p.help, name


def test_dazzle_only_parameters_are_marked():
    only = {n for n, p in P.PARAMETERS.items() if p.dazzle_only}
    assert only == {"update_input_dq", "scheduler", "tile_size", "pixmap_mode", "output_frame", "driz_cr_noise",
                    "driz_cr_legacy", "resume", "max_frame_pixels", "products_as_input", "final_err",
                    "final_dq", "driz_sep_err", "lanczos_table"}
    d = P.defaults()
    assert d["final_err"] is True and d["final_dq"] is False
    assert d["update_input_dq"] is False
    assert d["scheduler"] == "threads"
    assert d["tile_size"] == 2048
    assert d["pixmap_mode"] == "fast"
    assert d["output_frame"] == "astrodrizzle"
    assert d["driz_cr_noise"] == "astrodrizzle" and d["driz_cr_legacy"] is False
    assert d["lanczos_table"] == "drizzlepac"


def test_kernel_and_enum_choices():
    kernels = {"square", "point", "turbo", "gaussian", "lanczos2", "lanczos3", "tophat"}
    assert set(P.PARAMETERS["final_kernel"].choices) == kernels
    assert set(P.PARAMETERS["driz_sep_kernel"].choices) == kernels
    assert set(P.PARAMETERS["combine_type"].choices) == {
        "median", "imedian", "minmed", "iminmed", "mean", "imean", "sum"}
    assert set(P.PARAMETERS["skymethod"].choices) == {
        "localmin", "globalmin", "match", "globalmin+match"}
    assert set(P.PARAMETERS["final_wht_type"].choices) == {"EXP", "ERR", "IVM"}
    assert {"nearest", "linear", "poly3", "poly5", "sinc"} <= set(
        P.PARAMETERS["blot_interp"].choices)


def test_switches_are_boolean_parameters():
    for step, switch in P.SWITCHES.items():
        assert P.PARAMETERS[switch].kind == "bool"
        assert P.PARAMETERS[switch].step == step


# ---------------------------------------------------------------------------------------
# Value parsing
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text,expected", [
    ("True", True), ("true", True), ("YES", True), ("yes", True), ("y", True), (1, True),
    ("False", False), ("false", False), ("No", False), ("no", False), (0, False),
    (np.bool_(True), True), (False, False),
])
def test_parse_bool(text, expected):
    assert P.parse_value("clean", text) is expected


@pytest.mark.parametrize("bad", ["maybe", "2", 2, 1.5, None, ""])
def test_parse_bool_rejects(bad):
    with pytest.raises(ParameterError, match="clean"):
        P.parse_value("clean", bad)


@pytest.mark.parametrize("text", ["INDEF", "indef", "None", "none", "", "  ", None])
def test_indef_and_none_give_none(text):
    assert P.parse_value("final_fillval", text) is None
    assert P.parse_value("combine_lthresh", text) is None
    assert P.parse_value("final_outnx", text) is None
    assert P.parse_value("num_cores", text) is None


def test_numbers():
    assert P.parse_value("final_pixfrac", "0.8") == 0.8
    assert P.parse_value("final_pixfrac", 1) == 1.0
    assert isinstance(P.parse_value("final_pixfrac", 1), float)
    assert P.parse_value("final_fillval", "-1.5") == -1.5
    assert math.isnan(P.parse_value("final_fillval", "NaN"))
    assert P.parse_value("stepsize", "5") == 5
    assert P.parse_value("final_outnx", "4096") == 4096
    assert P.parse_value("final_outnx", 4096.0) == 4096
    assert P.parse_value("crbit", np.int64(8192)) == 8192
    assert P.parse_value("combine_bufsize", "2.5") == 2.5
    assert P.parse_value("gain", "2.0") == 2.0


@pytest.mark.parametrize("name,bad", [
    ("stepsize", "ten"), ("stepsize", 2.5), ("stepsize", 0), ("stepsize", True),
    ("final_pixfrac", "big"), ("final_pixfrac", -0.5), ("final_pixfrac", None),
    ("static_sig", "INDEF"), ("final_dec", 95.0), ("final_outnx", 0), ("combine_nlow", -1),
    ("final_scale", 0.0), ("final_pixfrac", "nan"), ("final_rot", "inf"),
])
def test_bad_numbers(name, bad):
    with pytest.raises(ParameterError) as exc:
        P.parse_value(name, bad)
    msg = str(exc.value)
    assert name in msg and repr(bad) in msg
    assert exc.value.name == name


@pytest.mark.parametrize("name,text,expected", [
    ("combine_nsigma", "4 3", (4.0, 3.0)),
    ("combine_nsigma", "5,4", (5.0, 4.0)),
    ("combine_nsigma", " 6 ,  5 ", (6.0, 5.0)),
    ("driz_cr_snr", "3.5 3.0", (3.5, 3.0)),
    ("driz_cr_snr", [5, 4], (5.0, 4.0)),
    ("driz_cr_scale", "1.2 0.7", (1.2, 0.7)),
    ("driz_cr_scale", (1.5, 1.0), (1.5, 1.0)),
])
def test_two_number_parameters(name, text, expected):
    value = P.parse_value(name, text)
    assert value == expected
    assert isinstance(value, tuple) and all(isinstance(v, float) for v in value)


@pytest.mark.parametrize("name,bad,count", [("combine_nsigma", "4 3 2", 3), ("combine_nsigma", "", 0),
                                            ("driz_cr_snr", "4", 1), ("driz_cr_scale", 1.2, 1)])
def test_two_number_parameters_reject_wrong_count(name, bad, count):
    with pytest.raises(ParameterError, match=f"two numbers.*got {count}") as exc:
        P.parse_value(name, bad)
    assert name in str(exc.value)


@pytest.mark.parametrize("value", ["4", 4.0, "4.0"])
def test_combine_nsigma_accepts_one_number_for_both(value):
    # a deliberate fix: AstroDrizzle needs two numbers here and crashes on one
    assert P.parse_value("combine_nsigma", value) == (4.0, 4.0)


def test_two_number_parameters_reject_text():
    with pytest.raises(ParameterError, match="driz_cr_snr"):
        P.parse_value("driz_cr_snr", "high low")


@pytest.mark.parametrize("given,spec,mask", [
    ("4096", "4096", 4096),
    (4096, "4096", 4096),
    ("64,32", "64,32", 96),
    ("64, 32", "64,32", 96),
    ("64+32", "64,32", 96),
    ("~4096", "~4096", ~4096),
    ("0", "0", 0),
    (0, "0", 0),
    ("96", "96", 96),
    ("INDEF", None, None),
    ("", None, None),
    (None, None, None),
])
def test_bits(given, spec, mask):
    assert P.parse_value("final_bits", given) == spec
    assert P.bits_to_mask(spec) == mask


def test_bits_reject_invalid():
    for bad in ("3,5", "abc", "64,,32", 1.5, True):
        with pytest.raises(ParameterError, match="final_bits"):
            P.parse_value("final_bits", bad)


def test_bit_functions_are_astropys_own_without_its_package(monkeypatch):
    """dazzle.params loads astropy's bitmask file on its own (astropy.nddata's package imports
    SciPy's sparse matrices): the same answers as the module imported as usual, on every spec
    and DQ value here; a failure to load it that way falls back to the package."""
    import sys

    from astropy.nddata import bitmask as theirs

    monkeypatch.delitem(sys.modules, "dazzle._astropy_bitmask", raising=False)
    monkeypatch.delitem(sys.modules, "astropy.nddata.bitmask")
    ours = P._bitmask()
    assert ours is not theirs and ours.__name__ == "dazzle._astropy_bitmask"
    assert ours.__file__ == theirs.__file__
    dq = np.arange(-40, 9000, 7, dtype=np.int16)
    for spec in ("64,32", "4096", "~4096", "0", 96, "1+2+4", "~(64,32)", None):
        want = None if spec is None else theirs.interpret_bit_flags(spec)
        assert ours.interpret_bit_flags(spec) == want
        got = ours.bitfield_to_boolean_mask(dq, ignore_flags=want, good_mask_value=True)
        assert np.array_equal(got, theirs.bitfield_to_boolean_mask(dq, ignore_flags=want, good_mask_value=True))
    assert P.good_pixel_mask(dq, "~4096").tolist() == (((dq.astype(np.int64) & 4096) == 0)).tolist()
    # the fallback: the module from its package
    monkeypatch.delitem(sys.modules, "dazzle._astropy_bitmask")
    monkeypatch.setattr("importlib.util.spec_from_file_location", lambda *a, **k: None)
    assert P._bitmask().__name__ == "astropy.nddata.bitmask"


def test_good_pixel_mask_semantics():
    dq = np.array([0, 32, 64, 4096, 4096 + 32, 8], dtype=np.int16)
    assert P.good_pixel_mask(dq, "0").tolist() == [True, False, False, False, False, False]
    assert P.good_pixel_mask(dq, "64,32").tolist() == [True, True, True, False, False, False]
    assert P.good_pixel_mask(dq, "~4096").tolist() == [True, True, True, False, False, True]
    assert P.good_pixel_mask(dq, None).all()


def test_wt_scl():
    assert P.parse_value("final_wt_scl", "EXPTIME") == "exptime"
    assert P.parse_value("final_wt_scl", "expsq") == "expsq"
    assert P.parse_value("driz_sep_wt_scl", "2.5") == 2.5
    assert P.parse_value("driz_sep_wt_scl", 1) == 1.0
    with pytest.raises(ParameterError, match="exptime.*expsq"):
        P.parse_value("final_wt_scl", "exposure")


def test_enum_case_normalisation():
    assert P.parse_value("final_kernel", "Lanczos3") == "lanczos3"
    assert P.parse_value("driz_sep_kernel", " TURBO ") == "turbo"
    assert P.parse_value("final_wht_type", "ivm") == "IVM"
    assert P.parse_value("combine_type", "IMinMed") == "iminmed"
    assert P.parse_value("skymethod", "GlobalMin+Match") == "globalmin+match"
    assert P.parse_value("blot_interp", "lanczos5") == "lanczos5"
    assert P.parse_value("final_units", "COUNTS") == "counts"
    assert P.parse_value("pixmap_mode", "Exact") == "exact"


def test_bad_enum_names_allowed_values():
    with pytest.raises(ParameterError) as exc:
        P.parse_value("final_kernel", "boxcar")
    msg = str(exc.value)
    assert "final_kernel" in msg and "'boxcar'" in msg
    for k in ("square", "point", "turbo", "gaussian", "lanczos2", "lanczos3", "tophat"):
        assert k in msg
    with pytest.raises(ParameterError, match="EXP, ERR, IVM"):
        P.parse_value("final_wht_type", "WHT")


def test_strings():
    assert P.parse_value("output", " final ") == "final"
    assert P.parse_value("final_refimage", None) == ""
    assert P.parse_value("final_refimage", "INDEF") == ""
    assert P.parse_value("final_refimage", "ref.fits[sci,1]") == "ref.fits[sci,1]"
    assert P.parse_value("group", 1) == "1"


def test_scheduler():
    assert P.parse_value("scheduler", "Threads") == "threads"
    assert P.parse_value("scheduler", "sync") == "synchronous"
    assert P.parse_value("scheduler", "tcp://10.0.0.1:8786") == "tcp://10.0.0.1:8786"
    assert P.parse_value("scheduler", "sched.json") == "sched.json"
    with pytest.raises(ParameterError, match="scheduler"):
        P.parse_value("scheduler", "gpu")


# ---------------------------------------------------------------------------------------
# Unknown names
# ---------------------------------------------------------------------------------------


def test_unknown_name_suggests_closest():
    with pytest.raises(ParameterError, match=r"'final_pixfrc'.*did you mean 'final_pixfrac'"):
        P.parse_value("final_pixfrc", 1.0)
    with pytest.raises(ParameterError, match="did you mean 'combine_nsigma'"):
        P.resolve(combine_nsgima="4 3")


def test_unknown_name_is_value_error_without_suggestion():
    with pytest.raises(ValueError, match="'zzzz'.*dazzle params"):
        P.parse_value("zzzz", 1)


def test_names_are_case_insensitive():
    assert P.parse_value("Final_Kernel", "point") == "point"
    assert P.resolve(FINAL_PIXFRAC=0.5)["final_pixfrac"] == 0.5


# ---------------------------------------------------------------------------------------
# resolve / configs
# ---------------------------------------------------------------------------------------


def test_resolve_layers():
    r = P.resolve({"final_kernel": "Gaussian", "final_pixfrac": "0.6"}, final_pixfrac=0.7)
    assert r["final_kernel"] == "gaussian"
    assert r["final_pixfrac"] == 0.7
    assert r["driz_sep_kernel"] == "turbo"
    assert set(r) == set(P.PARAMETERS)
    assert P.resolve() == P.defaults()


def test_resolve_validates_overrides():
    with pytest.raises(ParameterError, match="combine_type"):
        P.resolve(combine_type="average")


def test_resolve_ignored_names_warn():
    with pytest.warns(IgnoredParameterWarning, match="mdriztab"):
        r = P.resolve({"mdriztab": False, "_task_name_": "astrodrizzle"})
    assert "mdriztab" not in r


ASTRODRIZZLE_CFG = """\
_task_name_ = astrodrizzle
input = "*flt.fits"
output = "m31_f814w"
runfile = "astrodrizzle.log"
wcskey = ""
proc_unit = native
coeffs = True
context = False
group = ""
build = True
crbit = 4096
stepsize = 10
resetbits = "4096"
num_cores = None
in_memory = False
rules_file = ""

[STATE OF INPUT FILES]
restore = False
preserve = False
overwrite = False
clean = True

[STEP 1: STATIC MASK ]
static = True
static_sig = 4.0

[STEP 2: SKY SUBTRACTION]
skysub = yes
skymethod = "globalmin+match"
skystat = "mode"
skywidth = 0.1
skylower = None
skyupper = None
skyclip = 5
skylsigma = 4.0
skyusigma = 4.0
skymask_cat = ""
use_static = True
sky_bits = "64,32"
skyfile = ""
skyuser = ""

[STEP 3: DRIZZLE SEPARATE IMAGES]
driz_separate = True
driz_sep_kernel = turbo
driz_sep_wt_scl = exptime
driz_sep_pixfrac = 1.0
driz_sep_fillval = INDEF
driz_sep_bits = 96
driz_sep_compress = False

[STEP 3a: CUSTOM WCS FOR SEPARATE OUTPUTS]
driz_sep_wcs = True
driz_sep_refimage = ""
driz_sep_rot = 0.0
driz_sep_scale = 0.05
driz_sep_outnx = None
driz_sep_outny = None
driz_sep_ra = None
driz_sep_dec = None
driz_sep_crpix1 = None
driz_sep_crpix2 = None

[STEP 4: CREATE MEDIAN IMAGE]
median = True
median_newmasks = True
combine_maskpt = 0.3
combine_type = imedian
combine_nsigma = 4 3
combine_nlow = 0
combine_nhigh = 1
combine_lthresh = None
combine_hthresh = None
combine_grow = 1
combine_bufsize = None

[STEP 5: BLOT BACK THE MEDIAN IMAGE]
blot = True
blot_interp = poly5
blot_sinscl = 1.0
blot_addsky = True
blot_skyval = 0.0

[STEP 6: REMOVE COSMIC RAYS WITH DERIV, DRIZ_CR]
driz_cr = True
driz_cr_corr = False
driz_cr_snr = 5.0 4.0
driz_cr_grow = 1
driz_cr_ctegrow = 0
driz_cr_scale = 1.2 0.7

[STEP 7: DRIZZLE FINAL COMBINED IMAGE]
driz_combine = True
final_wht_type = IVM
final_kernel = lanczos3  # sharper
final_wt_scl = "exptime"
final_pixfrac = 0.8
final_fillval = None
final_maskval = None
final_bits = "~4096"
final_units = counts

[STEP 7a: CUSTOM WCS FOR FINAL OUTPUT]
final_wcs = True
final_refimage = ""
final_rot = 0.0
final_scale = 0.04
final_outnx = 5000
final_outny = 5200
final_ra = 10.6847
final_dec = 41.2690
final_crpix1 = None
final_crpix2 = None

[INSTRUMENT PARAMETERS]
gain = ""
gnkeyword = ""
rdnoise = ""
rnkeyword = ""
exptime  = ""
expkeyword = ""

[ _RULES_ ]
_rule1_ = string_kw(default='', when='entry', code='OUT = VAL')
"""


def test_load_astrodrizzle_cfg(tmp_path):
    path = tmp_path / "m31.cfg"
    # context=False (no CTX image) is refused in one line naming it: dazzle always writes CTX
    path.write_text(ASTRODRIZZLE_CFG)
    with pytest.raises(ParameterError, match=r"context=False is not supported") as e:
        P.load_config(path)
    assert e.value.name == "context"
    path.write_text(ASTRODRIZZLE_CFG.replace("context = False", "context = True"))
    with pytest.warns(IgnoredParameterWarning) as rec:
        cfg = P.load_config(path)
    text = " ".join(str(w.message) for w in rec)
    for name in ("input", "rules_file", "restore", "overwrite"):
        assert name in text
    assert "_task_name_" not in cfg and "input" not in cfg and "_rule1_" not in cfg
    assert cfg["output"] == "m31_f814w"
    assert cfg["context"] is True and cfg["build"] is True
    assert cfg["preserve"] is False and cfg["clean"] is True
    assert cfg["skysub"] is True and cfg["skymethod"] == "globalmin+match"
    assert cfg["skystat"] == "mode"
    assert cfg["sky_bits"] == "64,32" and P.bits_to_mask(cfg["sky_bits"]) == 96
    assert cfg["driz_sep_fillval"] is None
    assert cfg["driz_sep_bits"] == "96"
    assert cfg["driz_sep_wcs"] is True and cfg["driz_sep_scale"] == 0.05
    assert cfg["combine_type"] == "imedian"
    assert cfg["combine_nsigma"] == (4.0, 3.0)
    assert cfg["combine_nhigh"] == 1
    assert cfg["driz_cr_snr"] == (5.0, 4.0)
    assert cfg["final_wht_type"] == "IVM"
    assert cfg["final_kernel"] == "lanczos3"
    assert cfg["final_bits"] == "~4096"
    assert cfg["final_units"] == "counts"
    assert cfg["final_outnx"] == 5000 and cfg["final_ra"] == 10.6847
    assert cfg["gain"] is None and cfg["exptime"] is None and cfg["gnkeyword"] == ""
    # every switch is understood
    for switch in P.SWITCHES.values():
        assert switch in cfg

    with pytest.warns(IgnoredParameterWarning):
        full = P.resolve(str(path), final_pixfrac=1.0)
    assert full["final_pixfrac"] == 1.0
    assert full["final_kernel"] == "lanczos3"
    assert full["scheduler"] == "threads"


def test_load_cfg_rejects_bad_value_with_location(tmp_path):
    path = tmp_path / "bad.cfg"
    path.write_text("_task_name_ = astrodrizzle\n[STEP 4: CREATE MEDIAN IMAGE]\n"
                    "combine_nsigma = 4 3 2\n")
    with pytest.raises(ParameterError, match=r"bad\.cfg.*combine_nsigma.*two numbers"):
        P.load_config(path)


def test_load_cfg_rejects_unknown_and_other_task(tmp_path):
    path = tmp_path / "typo.cfg"
    path.write_text("final_kernal = square\n")
    with pytest.raises(ParameterError, match="did you mean 'final_kernel'"):
        P.load_config(path)
    path = tmp_path / "tweak.cfg"
    path.write_text("_task_name_ = tweakreg\nthreshold = 4.0\n")
    with pytest.raises(ParameterError, match="tweakreg"):
        P.load_config(path)
    path = tmp_path / "dup.cfg"
    path.write_text("final_bits = 0\n[X]\nfinal_bits = 64\n")
    with pytest.raises(ParameterError, match="twice"):
        P.load_config(path)


def test_load_simple_config(tmp_path):
    path = tmp_path / "run.conf"
    path.write_text(
        "# dazzle run configuration\n"
        "final_kernel = Gaussian\n"
        "final_pixfrac = 0.7   # inline comment\n"
        "\n"
        "[cluster]\n"
        "scheduler = tcp://head:8786\n"
        "tile_size = 1024\n"
        "update_input_dq = yes\n"
        "combine_nsigma = '5 4'\n"
        "final_refimage = \"ref.fits[sci,1]\"\n"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg = P.load_config(path)
    assert cfg == {
        "final_kernel": "gaussian",
        "final_pixfrac": 0.7,
        "scheduler": "tcp://head:8786",
        "tile_size": 1024,
        "update_input_dq": True,
        "combine_nsigma": (5.0, 4.0),
        "final_refimage": "ref.fits[sci,1]",
    }


def test_format_config_round_trip(tmp_path):
    values = {"final_kernel": "point", "driz_cr_snr": "5 4", "final_bits": "64,32",
              "final_fillval": "NaN", "output": "out"}
    path = tmp_path / "round.cfg"
    path.write_text(P.format_config(values))
    loaded = P.load_config(path)
    expected = P.resolve(values)
    assert set(loaded) == set(P.PARAMETERS)
    for name in P.PARAMETERS:
        a, b = loaded[name], expected[name]
        if isinstance(b, float) and math.isnan(b):
            assert math.isnan(a)
        else:
            assert a == b, name
    assert "[STEP 3: DRIZZLE SEPARATE IMAGES]" in P.format_config()
    assert "scheduler" not in P.format_config(include_dazzle=False)


# ---------------------------------------------------------------------------------------
# CLI helpers
# ---------------------------------------------------------------------------------------


def test_parse_set_args():
    got = P.parse_set_args([
        "final_kernel=Lanczos3",
        "combine_nsigma=5 4",
        "driz_cr_scale='1.5 1.0'",
        "final_bits=~4096",
        "final_fillval=INDEF",
        "num_cores=8",
        "skysub=no",
        "final_pixfrac=0.5",
        "final_pixfrac=0.6",
    ])
    assert got == {
        "final_kernel": "lanczos3",
        "combine_nsigma": (5.0, 4.0),
        "driz_cr_scale": (1.5, 1.0),
        "final_bits": "~4096",
        "final_fillval": None,
        "num_cores": 8,
        "skysub": False,
        "final_pixfrac": 0.6,
    }
    assert P.parse_set_args([]) == {} and P.parse_set_args(None) == {}


def test_parse_set_args_errors():
    with pytest.raises(ParameterError, match="name=value"):
        P.parse_set_args(["final_kernel"])
    with pytest.raises(ParameterError, match="did you mean 'final_kernel'"):
        P.parse_set_args(["final_kernl=square"])
    with pytest.raises(ParameterError, match="stepsize"):
        P.parse_set_args(["stepsize=fast"])


def test_format_help_lists_everything():
    text = P.format_help()
    for name, p in P.PARAMETERS.items():
        line = next((ln for ln in text.splitlines() if ln.split()[:1] == [name]), None)
        assert line is not None, name
        assert P.format_value(p.default) in line
        assert p.help in line
    for title in P.STEPS.values():
        assert title in text
    assert "[dazzle]" in text
    for name in P.IGNORED_PARAMETERS:
        assert name in text
    # grouped: the final step's parameters come after the median step's
    assert text.index("final_kernel") > text.index("combine_type") > text.index("skysub")
