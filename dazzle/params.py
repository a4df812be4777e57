"""The dazzle parameter table: AstroDrizzle's parameter names, defaults and meaning.

Every parameter dazzle understands is listed in :data:`PARAMETERS` under AstroDrizzle's
exact name and with AstroDrizzle's default (drizzlepac 3.11, ``astrodrizzle.cfg``).  A few
parameters exist only in dazzle; they are flagged ``dazzle_only=True`` and grouped in their
own ``dazzle`` step.

Value conventions (what :func:`parse_value` returns -- "normalised" values):

* booleans: ``True``/``False``; strings ``true/false/yes/no/y/n/on/off/1/0`` (any case).
* optional numbers (``*_fillval``, ``combine_lthresh``, ``final_rot``, ``gain``...): ``None``
  when given as ``None``, ``"None"``, ``"INDEF"`` or ``""``; fill values may also be NaN.
* text (``output``, ``final_refimage``, ``gnkeyword``...): ``str``; ``None``/``"INDEF"`` -> ``""``.
* enumerations: canonical spelling -- kernels, ``blot_interp``, ``combine_type``,
  ``skymethod``, ``skystat``, ``final_units``, ``proc_unit`` lower case; ``final_wht_type``
  upper case (``EXP``, ``ERR``, ``IVM``).
* DQ bit specifications (``*_bits``, ``resetbits``): a canonical *string* spec such as
  ``"0"``, ``"4096"``, ``"64,32"`` or ``"~4096"`` (whitespace removed, ``+``/``|`` written
  as ``,``), or ``None`` (empty/INDEF: DQ ignored, every pixel good).  The spec is checked
  with :func:`astropy.nddata.bitmask.interpret_bit_flags`; turn it into an integer with
  :func:`bits_to_mask` and into a good-pixel array with :func:`good_pixel_mask`.
* two-number parameters (``combine_nsigma``, ``driz_cr_snr``, ``driz_cr_scale``): a tuple of
  two floats, from ``"4 3"``, ``"4,3"``, ``"4;3"`` or a 2-sequence (the one parser of such pairs).
* ``*_wt_scl``: ``"exptime"``, ``"expsq"`` or a float.

Public API: :data:`PARAMETERS`, :data:`STEPS`, :data:`SWITCHES`, :data:`IGNORED_PARAMETERS`,
:func:`defaults`, :func:`parse_value`, :func:`resolve`, :func:`load_config`,
:func:`parse_set_args`, :func:`format_help`, :func:`format_config`, :func:`format_value`,
:func:`bits_to_mask`, :func:`good_pixel_mask`, :class:`ParameterError`,
:class:`IgnoredParameterWarning`.
"""

from __future__ import annotations

import difflib
import math
import numbers
import os
import re
import warnings
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Iterable, Mapping

import numpy as np

from dazzle import facts
from dazzle.errors import ParameterError

__all__ = [
    "Param",
    "PARAMETERS",
    "STEPS",
    "SWITCHES",
    "IGNORED_PARAMETERS",
    "KERNELS",
    "ParameterError",
    "IgnoredParameterWarning",
    "defaults",
    "parse_value",
    "resolve",
    "load_config",
    "parse_set_args",
    "format_help",
    "format_config",
    "format_value",
    "bits_to_mask",
    "good_pixel_mask",
]


class IgnoredParameterWarning(UserWarning):
    """An AstroDrizzle parameter that dazzle accepts but does not act on."""


# --------------------------------------------------------------------------------------
# Parameter description
# --------------------------------------------------------------------------------------

#: Steps in pipeline order: step key -> title (used to group :func:`format_help`).
STEPS: Mapping[str, str] = MappingProxyType(
    {
        "init": "Initialization and global parameters",
        "static": "Step 1: static mask",
        "sky": "Step 2: sky subtraction",
        "driz_sep": "Step 3: drizzle separate images",
        "median": "Step 4: create median image",
        "blot": "Step 5: blot the median back to the input frames",
        "driz_cr": "Step 6: cosmic-ray identification (driz_cr)",
        "final": "Step 7: final drizzle combination",
        "instrument": "Instrument parameters",
        "dazzle": "dazzle-only parameters (not in AstroDrizzle)",
    }
)

#: Step key -> the boolean parameter that switches the step on or off (:data:`dazzle.facts.STEPS`).
SWITCHES: Mapping[str, str] = MappingProxyType({s.key: s.switch for s in facts.STEPS})

#: Drizzle kernels accepted by ``driz_sep_kernel`` and ``final_kernel`` (:data:`dazzle.facts.KERNELS`).
KERNELS = facts.KERNELS

_KINDS = ("bool", "int", "float", "str", "choice", "bits", "pair", "wt_scl", "scheduler")


@dataclass(frozen=True)
class Param:
    """One parameter: AstroDrizzle name, default, step and how values are checked.

    ``kind`` is one of ``bool``, ``int``, ``float``, ``str``, ``choice`` (see ``choices``),
    ``bits`` (DQ bit-flag spec), ``pair`` (two floats), ``wt_scl`` (``exptime``/``expsq``/
    number) or ``scheduler``.  ``optional`` numbers accept None/INDEF.  ``section`` is the
    AstroDrizzle ``.cfg`` section the parameter is written under (None: top level).
    """

    name: str
    default: Any
    step: str
    kind: str
    help: str
    choices: tuple[str, ...] | None = None
    optional: bool = False
    minimum: float | None = None
    maximum: float | None = None
    min_exclusive: bool = False
    allow_nan: bool = False
    case: str = "lower"  # for choices: "lower" or "upper"
    aliases: Mapping[str, str] | None = None  # extra accepted spellings -> canonical
    section: str | None = None
    dazzle_only: bool = False

    @property
    def type_desc(self) -> str:
        """Human-readable description of the accepted values."""
        if self.kind == "choice":
            extra = ""
            if self.aliases:
                extra = " (also " + ", ".join(sorted(self.aliases)) + ")"
            return "one of " + ", ".join(self.choices) + extra
        if self.kind == "bits":
            return "DQ bit flags: int or string like '4096', '64,32', '~4096'; None = ignore DQ"
        if self.kind == "pair":
            return "two numbers, e.g. '4 3'"
        if self.kind == "wt_scl":
            return "'exptime', 'expsq' or a number"
        if self.kind == "scheduler":
            return ("'threads', 'processes', 'synchronous', 'local', 'distributed', "
                    "a scheduler address (tcp://host:port), a scheduler-file .json, or a "
                    "cluster profile (profile:NAME, or NAME from the profiles file)")
        base = {"bool": "boolean (True/False/yes/no)", "int": "integer",
                "float": "number", "str": "string"}[self.kind]
        if self.kind in ("int", "float"):
            lo, hi = self.minimum, self.maximum
            if lo is not None and hi is not None:
                base += f" in [{_fmt_num(lo)}, {_fmt_num(hi)}]"
            elif lo is not None:
                base += f" {'>' if self.min_exclusive else '>='} {_fmt_num(lo)}"
            elif hi is not None:
                base += f" <= {_fmt_num(hi)}"
            if self.optional:
                base += " or None/INDEF"
        return base

    def parse(self, value: Any) -> Any:
        """Validate and normalise ``value`` (see the module docstring)."""
        return parse_value(self.name, value)


def _fmt_num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


# Section names used by AstroDrizzle's astrodrizzle.cfg
_S_STATE = "STATE OF INPUT FILES"
_S_STATIC = "STEP 1: STATIC MASK"
_S_SKY = "STEP 2: SKY SUBTRACTION"
_S_SEP = "STEP 3: DRIZZLE SEPARATE IMAGES"
_S_SEPWCS = "STEP 3a: CUSTOM WCS FOR SEPARATE OUTPUTS"
_S_MED = "STEP 4: CREATE MEDIAN IMAGE"
_S_BLOT = "STEP 5: BLOT BACK THE MEDIAN IMAGE"
_S_CR = "STEP 6: REMOVE COSMIC RAYS WITH DERIV, DRIZ_CR"
_S_FINAL = "STEP 7: DRIZZLE FINAL COMBINED IMAGE"
_S_FINWCS = "STEP 7a: CUSTOM WCS FOR FINAL OUTPUT"
_S_INSTR = "INSTRUMENT PARAMETERS"
_S_DAZZLE = "DAZZLE"


def _wcs_params(prefix: str, step: str, section: str, what: str) -> list[Param]:
    """The custom-output-WCS block shared by driz_sep_* and final_*.

    How each applies depends on ``output_frame``: 'astrodrizzle' changes the default (or
    reference) frame by drizzlepac's rule (``geometry.merge_user_wcs``); 'dazzle' re-fits the
    frame to the inputs (``geometry.make_output_wcs``)."""
    return [
        Param(f"{prefix}_refimage", "", step, "str",
              f"Reference image whose WCS defines the {what} frame, e.g. 'ref.fits[sci,1]' "
              "('' = none); output_frame=astrodrizzle applies the other parameters to it, "
              "dazzle ignores rot and scale with it", section=section),
        Param(f"{prefix}_rot", None, step, "float",
              f"Position angle of the {what} image's Y axis, degrees east of north (None = "
              "the default frame's); astrodrizzle: the default frame turned, sized to hold it; "
              "dazzle: the frame re-fitted to the inputs", optional=True, section=section),
        Param(f"{prefix}_scale", None, step, "float",
              f"Pixel scale of the {what} image, arcsec/pixel (None = IDCSCALE of the "
              "first chip, else sqrt|det CD|); astrodrizzle: the default frame rescaled "
              "about CRPIX; dazzle: re-fitted to the inputs", optional=True, minimum=0.0,
              min_exclusive=True, section=section),
        Param(f"{prefix}_outnx", None, step, "int",
              f"Size of the {what} image along X, pixels (None = from the inputs); CRPIX is "
              "then the image centre unless crpix1/2 are given", optional=True, minimum=1,
              section=section),
        Param(f"{prefix}_outny", None, step, "int",
              f"Size of the {what} image along Y, pixels (None = from the inputs; "
              "astrodrizzle: give outnx and outny together)", optional=True, minimum=1,
              section=section),
        Param(f"{prefix}_ra", None, step, "float",
              f"Right ascension (CRVAL1) of the {what} frame's reference pixel, decimal "
              "degrees (None = the inputs' centre); astrodrizzle: CRVAL only, CRPIX and size "
              "stay (inputs may fall off); dazzle: the frame re-fitted around the inputs",
              optional=True, minimum=-360.0, maximum=360.0, section=section),
        Param(f"{prefix}_dec", None, step, "float",
              f"Declination (CRVAL2) of the {what} frame's reference pixel, decimal degrees "
              "(None = the inputs' centre; astrodrizzle: give ra and dec together)",
              optional=True, minimum=-90.0, maximum=90.0, section=section),
        Param(f"{prefix}_crpix1", None, step, "float",
              f"Reference pixel X position (CRPIX1) of the {what} image (None = by the "
              "output_frame rule; the image centre with outnx/outny)", optional=True, section=section),
        Param(f"{prefix}_crpix2", None, step, "float",
              f"Reference pixel Y position (CRPIX2) of the {what} image (None = as crpix1; "
              "astrodrizzle: give crpix1 and crpix2 together)", optional=True, section=section),
    ]


_BLOT_INTERP = ("nearest", "linear", "poly3", "poly5", "sinc", "lanczos3", "lanczos5")

_TABLE: list[Param] = [
    # ---- initialization / global ------------------------------------------------------
    Param("output", "", "init", "str",
          "Rootname for the output drizzled products ('' = derived from the first input)"),
    Param("runfile", "astrodrizzle.log", "init", "str",
          "File to which the processing log is written (a relative name: in the output folder; "
          "'' = none)"),
    Param("wcskey", "", "init", "str",
          "Alternate WCS key (A-Z) of the inputs to use ('' = the primary WCS)"),
    Param("proc_unit", "native", "init", "choice",
          "Units used during processing: 'native' (as stored); 'electrons' is refused",
          choices=("native", "electrons")),
    Param("coeffs", True, "init", "bool",
          "Apply the header-based distortion model when mapping pixels (False is refused)"),
    Param("context", True, "init", "bool",
          "Create the context image (which chips contributed to each output pixel; False is "
          "refused)"),
    Param("group", "", "init", "str",
          "Process only these chips/extensions, e.g. '1,4' or 'sci,1' ('' = all)"),
    Param("build", True, "init", "bool",
          "Write the final product as one multi-extension FITS file <output>_drz.fits (SCI, WHT, "
          "CTX); False: AstroDrizzle's separate _drz_sci/_wht/_ctx.fits (AstroDrizzle's default: "
          "False; README: Deliberate differences)"),
    Param("crbit", 4096, "init", "int",
          "DQ bit value used to flag cosmic rays in the input DQ arrays",
          minimum=0),
    Param("stepsize", 10, "init", "int",
          "Grid spacing (pixels) at which the distorted WCS is evaluated and interpolated",
          minimum=1),
    Param("resetbits", "4096", "init", "bits",
          "DQ bit values cleared in all input DQ arrays before processing ('0' = none)"),
    Param("num_cores", None, "init", "int",
          "Maximum number of CPU cores of a local run (None = all available; < 2 = serial; the "
          "workers argument wins)",
          optional=True, minimum=0),
    Param("in_memory", False, "init", "bool",
          "Keep intermediate products in memory instead of writing them to disk"),
    Param("preserve", True, "init", "bool",
          "Copy input files to OrIg/ before update_input_dq modifies them, if not already "
          "archived", section=_S_STATE),
    Param("clean", False, "init", "bool",
          "Delete the intermediate products (single, median, blot, CR masks) after a successful run",
          section=_S_STATE),
    # ---- instrument -----------------------------------------------------------------
    Param("gain", None, "instrument", "float",
          "Detector gain in e-/DN overriding the header value (None = from header)",
          optional=True, minimum=0.0, min_exclusive=True, section=_S_INSTR),
    Param("gnkeyword", "", "instrument", "str",
          "Header keyword(s) holding the gain, e.g. 'ATODGNA,ATODGNB' ('' = instrument "
          "default)", section=_S_INSTR),
    Param("rdnoise", None, "instrument", "float",
          "Read noise in electrons overriding the header value (None = from header)",
          optional=True, minimum=0.0, section=_S_INSTR),
    Param("rnkeyword", "", "instrument", "str",
          "Header keyword(s) holding the read noise, e.g. 'READNSEA,READNSEB' ('' = "
          "instrument default)", section=_S_INSTR),
    Param("exptime", None, "instrument", "float",
          "Exposure time in seconds overriding the header value (None = from header)",
          optional=True, minimum=0.0, section=_S_INSTR),
    Param("expkeyword", "", "instrument", "str",
          "Header keyword holding the exposure time ('' = EXPTIME)", section=_S_INSTR),
    # ---- step 1: static mask --------------------------------------------------------
    Param("static", True, "static", "bool",
          "Create a static bad-pixel mask from the data", section=_S_STATIC),
    Param("static_sig", 4.0, "static", "float",
          "Pixels below mode - static_sig * rms of their chip are flagged in the static mask",
          minimum=0.0, section=_S_STATIC),
    # ---- step 2: sky ----------------------------------------------------------------
    Param("skysub", True, "sky", "bool",
          "Compute the sky of each chip (stored as MDRIZSKY, subtracted when drizzling)",
          section=_S_SKY),
    Param("skymethod", "localmin", "sky", "choice",
          "Sky method: per-exposure minimum over chips, global minimum, matching of "
          "overlaps, or both", choices=facts.SKY_METHODS,
          section=_S_SKY),
    Param("skystat", "median", "sky", "choice",
          "Statistic of the clipped pixel values used as the sky value",
          choices=facts.SKY_STATS, section=_S_SKY),
    Param("skywidth", 0.1, "sky", "float",
          "Histogram bin width for the sky statistics, in units of sigma",
          optional=True, minimum=0.0, min_exclusive=True, section=_S_SKY),
    Param("skylower", None, "sky", "float",
          "Lower limit of usable pixel values for the sky (None = no limit)",
          optional=True, section=_S_SKY),
    Param("skyupper", None, "sky", "float",
          "Upper limit of usable pixel values for the sky (None = no limit)",
          optional=True, section=_S_SKY),
    Param("skyclip", 5, "sky", "int",
          "Number of sigma-clipping iterations for the sky statistics",
          minimum=0, section=_S_SKY),
    Param("skylsigma", 4.0, "sky", "float",
          "Lower clipping limit for the sky statistics, in sigma",
          minimum=0.0, section=_S_SKY),
    Param("skyusigma", 4.0, "sky", "float",
          "Upper clipping limit for the sky statistics, in sigma",
          minimum=0.0, section=_S_SKY),
    Param("skymask_cat", "", "sky", "str",
          "Catalog file listing a user mask for each input image for the sky computation",
          section=_S_SKY),
    Param("use_static", True, "sky", "bool",
          "Exclude pixels flagged in the static mask from the sky computation",
          section=_S_SKY),
    Param("sky_bits", "0", "sky", "bits",
          "DQ bit flags treated as good when selecting pixels for the sky computation",
          section=_S_SKY),
    Param("skyfile", "", "sky", "str",
          "File of user-computed sky values (one line per image) used instead of computing "
          "the sky", section=_S_SKY),
    Param("skyuser", "", "sky", "str",
          "Header keyword holding a sky value the user already subtracted (used when "
          "skysub=False)", section=_S_SKY),
    # ---- step 3: drizzle separate ---------------------------------------------------
    Param("driz_separate", True, "driz_sep", "bool",
          "Drizzle each input exposure onto its own output frame (for the median)",
          section=_S_SEP),
    Param("driz_sep_kernel", "turbo", "driz_sep", "choice",
          "Drizzle kernel (footprint shape of a dropped input pixel) for separate drizzling",
          choices=KERNELS, section=_S_SEP),
    Param("driz_sep_wt_scl", "exptime", "driz_sep", "wt_scl",
          "Weighting factor for the input data: 'exptime', 'expsq' (exptime squared) or a "
          "number", section=_S_SEP),
    Param("driz_sep_pixfrac", 1.0, "driz_sep", "float",
          "Linear size of the drop as a fraction of an input pixel (<= 0.001 = point "
          "kernel)", minimum=0.0, section=_S_SEP),
    Param("driz_sep_fillval", None, "driz_sep", "float",
          "Value for output pixels that received no input (None/INDEF = no fill, left 0)",
          optional=True, allow_nan=True, section=_S_SEP),
    Param("driz_sep_bits", "0", "driz_sep", "bits",
          "DQ bit flags treated as good when drizzling separate images", section=_S_SEP),
    Param("driz_sep_err", False, "driz_sep", "bool",
          "Also write <root>_single_err.fits: the error of each single-drizzled image, "
          "propagated from the inputs' ERR as the final product's ERR (left out, with a log "
          "line, when an input has no ERR array)", section=_S_SEP, dazzle_only=True),
    Param("driz_sep_compress", False, "driz_sep", "bool",
          "Compress the separately drizzled products (True is refused: written uncompressed)",
          section=_S_SEP),
    Param("driz_sep_wcs", False, "driz_sep", "bool",
          "Use the custom WCS given by the driz_sep_* WCS parameters for separate drizzling",
          section=_S_SEPWCS),
    *_wcs_params("driz_sep", "driz_sep", _S_SEPWCS, "separately drizzled"),
    # ---- step 4: median -------------------------------------------------------------
    Param("median", True, "median", "bool",
          "Combine the separately drizzled images into a median (CR-free) image",
          section=_S_MED),
    Param("median_newmasks", True, "median", "bool",
          "Mask low-weight pixels of each separately drizzled image when combining",
          section=_S_MED),
    Param("combine_maskpt", 0.3, "median", "float",
          "Pixels with weight below this fraction of the image's mean weight are masked",
          minimum=0.0, section=_S_MED),
    Param("combine_type", "minmed", "median", "choice",
          "Algorithm used to combine the separately drizzled images",
          choices=("minmed", "iminmed", "median", "imedian", "mean", "imean", "sum"),
          section=_S_MED),
    Param("combine_nsigma", (4.0, 3.0), "median", "pair",
          "minmed significances 'n1 n2' for taking the minimum instead of the median "
          "(n2 next to flagged pixels)", minimum=0.0, section=_S_MED),
    Param("combine_nlow", 0, "median", "int",
          "Number of lowest values rejected at each pixel before combining",
          minimum=0, section=_S_MED),
    Param("combine_nhigh", 0, "median", "int",
          "Number of highest values rejected at each pixel before combining",
          minimum=0, section=_S_MED),
    Param("combine_lthresh", None, "median", "float",
          "Input values below this threshold are rejected (None = no threshold)",
          optional=True, section=_S_MED),
    Param("combine_hthresh", None, "median", "float",
          "Input values above this threshold are rejected (None = no threshold)",
          optional=True, section=_S_MED),
    Param("combine_grow", 1, "median", "int",
          "Radius in pixels around minmed-flagged pixels where the second nsigma applies",
          minimum=0, section=_S_MED),
    Param("combine_bufsize", None, "median", "float",
          "AstroDrizzle's buffer size in MB per input image for sectioned reading; accepted for "
          "its .cfg files but without effect in dazzle, whose median is computed tile by tile "
          "(memory bounded by tile_size)",
          optional=True, minimum=0.0, min_exclusive=True, section=_S_MED),
    # ---- step 5: blot ---------------------------------------------------------------
    Param("blot", True, "blot", "bool",
          "Blot (reverse-drizzle) the median image back onto each input chip",
          section=_S_BLOT),
    Param("blot_interp", "poly5", "blot", "choice",
          "Interpolation method used for blotting", choices=_BLOT_INTERP, section=_S_BLOT),
    Param("blot_sinscl", 1.0, "blot", "float",
          "Scale of the sinc interpolation kernel (blot_interp=sinc)",
          minimum=0.0, min_exclusive=True, section=_S_BLOT),
    Param("blot_addsky", True, "blot", "bool",
          "Add each chip's sky (MDRIZSKY) back to its blotted image", section=_S_BLOT),
    Param("blot_skyval", 0.0, "blot", "float",
          "Sky value added to the blotted image when blot_addsky=False", section=_S_BLOT),
    # ---- step 6: driz_cr ------------------------------------------------------------
    Param("driz_cr", True, "driz_cr", "bool",
          "Identify cosmic rays by comparing each input chip with its blotted median",
          section=_S_CR),
    Param("driz_cr_corr", False, "driz_cr", "bool",
          "Also write CR-cleaned input images (_crclean) and CR masks", section=_S_CR),
    Param("driz_cr_snr", (3.5, 3.0), "driz_cr", "pair",
          "Signal-to-noise thresholds 'snr1 snr2': snr1 detects CRs, snr2 applies next to "
          "them", minimum=0.0, section=_S_CR),
    Param("driz_cr_grow", 1, "driz_cr", "int",
          "Width in pixels of the box by which detected CRs are grown (1 = no growth)",
          minimum=0, section=_S_CR),
    Param("driz_cr_ctegrow", 0, "driz_cr", "int",
          "Length in pixels of the CTE tail masked along the readout direction (0 = none)",
          minimum=0, section=_S_CR),
    Param("driz_cr_scale", (1.2, 0.7), "driz_cr", "pair",
          "Multipliers 'scale1 scale2' of the blotted image's derivative added to the "
          "noise threshold", minimum=0.0, section=_S_CR),
    # ---- step 7: final drizzle ------------------------------------------------------
    Param("driz_combine", True, "final", "bool",
          "Drizzle all inputs (with CRs masked) into the final combined image",
          section=_S_FINAL),
    Param("final_wht_type", "EXP", "final", "choice",
          "Final weighting: EXP exposure time, ERR (exptime/ERR)^2, IVM inverse-variance map",
          choices=("EXP", "ERR", "IVM"), case="upper", section=_S_FINAL),
    Param("final_kernel", "square", "final", "choice",
          "Drizzle kernel (footprint shape of a dropped input pixel) for the final image",
          choices=KERNELS, section=_S_FINAL),
    Param("final_wt_scl", "exptime", "final", "wt_scl",
          "Weighting factor for the input data: 'exptime', 'expsq' (exptime squared) or a "
          "number", section=_S_FINAL),
    Param("final_pixfrac", 1.0, "final", "float",
          "Linear size of the drop as a fraction of an input pixel (<= 0.001 = point "
          "kernel)", minimum=0.0, section=_S_FINAL),
    Param("final_fillval", None, "final", "float",
          "Value for output pixels that received no input (None/INDEF = no fill, left 0)",
          optional=True, allow_nan=True, section=_S_FINAL),
    Param("final_maskval", None, "final", "float",
          "Value assigned to regions outside the SCI image (None/INDEF = not applied)",
          optional=True, allow_nan=True, section=_S_FINAL),
    Param("final_bits", "0", "final", "bits",
          "DQ bit flags treated as good in the final drizzle", section=_S_FINAL),
    Param("final_units", "cps", "final", "choice",
          "Units of the final image: 'cps' (count rate) or 'counts' (times total exptime)",
          choices=("cps", "counts"), section=_S_FINAL),
    Param("final_err", True, "final", "bool",
          "Write an ERR extension in the final product: sqrt of the variance propagated from "
          "the inputs' ERR arrays (1/IVM with final_wht_type=IVM), same units as SCI; left out, "
          "with a log line, when an input has no ERR array", section=_S_FINAL, dazzle_only=True),
    Param("final_dq", False, "final", "bool",
          "Write a DQ extension in the final product: the OR of the DQ flags of every input "
          "pixel that contributes to an output pixel (as drizzle 3.0 and JWST)",
          section=_S_FINAL, dazzle_only=True),
    Param("final_wcs", False, "final", "bool",
          "Use the custom WCS given by the final_* WCS parameters for the final image",
          section=_S_FINWCS),
    *_wcs_params("final", "final", _S_FINWCS, "final"),
    # ---- dazzle only ----------------------------------------------------------------
    Param("update_input_dq", False, "dazzle", "bool",
          "Write crbit into the input files' DQ where CRs were found (AstroDrizzle always "
          "does; dazzle only when asked)", section=_S_DAZZLE, dazzle_only=True),
    Param("scheduler", "threads", "dazzle", "scheduler",
          "Where the graph runs: threads (default; when left at the default and the caller "
          "has an active distributed Client, that client), processes, synchronous, local "
          "(a LocalCluster of --workers processes), distributed, tcp://host:port, a "
          "scheduler-file .json, a cluster profile: profile:NAME (deploy/profiles.yaml, "
          "$DAZZLE_PROFILES or --profile FILE), or a batch system without a profile (slurm, "
          "pbs, sge, lsf, htcondor, moab, oar: one dask-jobqueue job configured by dask's "
          "jobqueue settings); from Python also a distributed.Client",
          section=_S_DAZZLE, dazzle_only=True),
    Param("tile_size", 2048, "dazzle", "int",
          "Edge length in output pixels of the tiles processed as independent tasks",
          minimum=1, section=_S_DAZZLE, dazzle_only=True),
    Param("pixmap_mode", "fast", "dazzle", "choice",
          "Pixel map: 'fast' evaluates the WCS every stepsize pixels and interpolates "
          "(AstroDrizzle); 'exact' evaluates every pixel",
          choices=("fast", "exact"), section=_S_DAZZLE, dazzle_only=True),
    Param("resume", False, "dazzle", "bool",
          "Reuse the intermediate products (single drizzles, median, CR masks) that a previous "
          "run with the same inputs and parameters completed (checksums verified)",
          section=_S_DAZZLE, dazzle_only=True),
    Param("driz_cr_noise", "astrodrizzle", "dazzle", "choice",
          "driz_cr's noise term: 'astrodrizzle' is drizzlepac's sqrt(|blot| + sky + RN^2), "
          "which counts the sky a second time (the blot already holds it) and which "
          "driz_cr_snr's values are calibrated against; 'sky_once' is sqrt(|blot| + RN^2), "
          "the Poisson noise alone: more faint cosmic rays found, but ~3e-4 of the clean "
          "pixels flagged at snr 3.5 (use a higher driz_cr_snr with it, e.g. '4.5 3.5')",
          choices=facts.NOISE_MODELS, section=_S_DAZZLE, dazzle_only=True),
    Param("driz_cr_legacy", False, "dazzle", "bool",
          "driz_cr exactly as drizzlepac 3.11: derivative zero-filled at the image edges (CRs "
          "in the outer rows and columns missed), gain mixed into the noise of DN data, and "
          "DQ-bad pixels condemning their good neighbours (dazzle's default fixes all three)",
          section=_S_DAZZLE, dazzle_only=True),
    Param("lanczos_table", "drizzlepac", "dazzle", "choice",
          "Look-up table of the lanczos2/lanczos3 drizzle kernels: 'drizzlepac' is AstroDrizzle's "
          "(drizzlepac 3.11: spacing 0.01, indexed one step too far, window grows with pixfrac; "
          "weights sum to ~0.953 per input pixel); 'drizzle' is drizzle 3.0's (spacing 0.003, "
          "pixfrac ignored; ~0.994): final WHT ~4% higher, SCI 1.7e-2 different (median)",
          choices=("drizzlepac", "drizzle"), section=_S_DAZZLE, dazzle_only=True),
    Param("output_frame", "astrodrizzle", "dazzle", "choice",
          "Output frame rule: 'astrodrizzle' is drizzlepac's exactly, the same grid as "
          "AstroDrizzle's products (4 pixel-centre corners, edge pixels can hang half outside; "
          "calibrated HST chips oriented by the telescope roll PA_V3; final_*/driz_sep_* by "
          "drizzlepac's rule); 'dazzle' holds every input pixel whole, takes the first chip's "
          "CD orientation (+y of the chips up) and re-fits custom frames to the inputs "
          "(README: Deliberate differences)",
          choices=("astrodrizzle", "dazzle"), section=_S_DAZZLE, dazzle_only=True),
    Param("max_frame_pixels", 4_000_000_000, "dazzle", "int",
          "Largest output frame (pixels) a run may plan; a bigger one, usually a chip with a "
          "wrong WCS, stops the run before anything is written and names that chip (4e9 = a "
          "63,000^2 mosaic, 48 GB of SCI+WHT+CTX)", minimum=1, section=_S_DAZZLE, dazzle_only=True),
    Param("products_as_input", False, "dazzle", "bool",
          "Accept files that dazzle wrote (header DZPRODCT: single, median, blot, crmask, crclean, "
          "drz) as inputs; refused by default, so that a glob cannot take an earlier run's products "
          "for exposures", section=_S_DAZZLE, dazzle_only=True),
]

#: Ordered, read-only mapping of parameter name -> :class:`Param`, grouped by step.
PARAMETERS: Mapping[str, Param] = MappingProxyType(
    {p.name: p for step in STEPS for p in _TABLE if p.step == step}
)
assert len(PARAMETERS) == len(_TABLE), "duplicate parameter name or unknown step in the table"
assert all(p.kind in _KINDS for p in _TABLE), "unknown parameter kind in the table"

#: AstroDrizzle parameters that dazzle accepts (so a user's .cfg loads) but ignores,
#: with the reason shown in the warning.
IGNORED_PARAMETERS: Mapping[str, str] = MappingProxyType(
    {
        "input": "input files are given on the dazzle command line",
        "mdriztab": "dazzle does not read parameters from MDRIZTAB reference tables",
        "editpars": "there is no interactive (TEAL) parameter editor",
        "configobj": "inside a .cfg file it means nothing; dazzle.run(configobj=...) reads the file",
        "wcsmap": "custom WCS mapping objects are not supported",
        "updatewcs": "dazzle uses the WCS in the headers as is (run stwcs updatewcs beforehand)",
        "restore": "restoring inputs from the archive directory is not supported",
        "overwrite": "overwriting archived copies of the inputs is not supported",
        "rules_file": "HAP pipeline rules files are not used",
    }
)

#: values of dazzle parameters that AstroDrizzle has and dazzle refuses (a ParameterError
#: naming the parameter) rather than ignore: name -> (value, why)
UNSUPPORTED_VALUES: Mapping[str, tuple] = MappingProxyType(
    {
        "proc_unit": ("electrons", "dazzle processes the data in their native units (leave "
                                   "proc_unit=native)"),
        "driz_sep_compress": (True, "the separately drizzled products are written uncompressed"),
        "coeffs": (False, "dazzle always applies the distortion model of the inputs' headers"),
        "context": (False, "dazzle always writes the context image (CTX)"),
    }
)

_NONE_STRINGS = frozenset({"", "none", "indef"})
_TRUE = frozenset({"true", "yes", "y", "t", "on", "1"})
_FALSE = frozenset({"false", "no", "n", "f", "off", "0"})


# --------------------------------------------------------------------------------------
# Value parsing
# --------------------------------------------------------------------------------------


class _Bad(Exception):
    """Internal: value rejected; the message says why (optional)."""


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def _is_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in _NONE_STRINGS)


def _parse_bool(p: Param, value: Any) -> bool:
    if _is_bool(value):
        return bool(value)
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return bool(int(value))
    if isinstance(value, str):
        s = value.strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
    raise _Bad()


def _check_range(p: Param, x: float) -> None:
    if p.minimum is not None:
        if x < p.minimum or (p.min_exclusive and x == p.minimum):
            raise _Bad("out of range")
    if p.maximum is not None and x > p.maximum:
        raise _Bad("out of range")


def _to_float(value: Any, allow_nan: bool) -> float:
    if _is_bool(value):
        raise _Bad()
    if isinstance(value, numbers.Real):
        x = float(value)
    elif isinstance(value, str):
        try:
            x = float(value.strip())
        except ValueError:
            raise _Bad() from None
    else:
        raise _Bad()
    if math.isnan(x) and not allow_nan:
        raise _Bad("NaN not allowed")
    if math.isinf(x):
        raise _Bad("must be finite")
    return x


def _parse_float(p: Param, value: Any) -> float | None:
    if p.optional and _is_none(value):
        return None
    x = _to_float(value, p.allow_nan)
    if not math.isnan(x):
        _check_range(p, x)
    return x


def _parse_int(p: Param, value: Any) -> int | None:
    if p.optional and _is_none(value):
        return None
    if _is_bool(value):
        raise _Bad()
    if isinstance(value, numbers.Integral):
        n = int(value)
    else:
        if isinstance(value, str):
            s = value.strip()
            try:
                n = int(s)
            except ValueError:
                x = _to_float(s, allow_nan=False)
                if not x.is_integer():
                    raise _Bad("not an integer") from None
                n = int(x)
        elif isinstance(value, numbers.Real):
            x = float(value)
            if not (math.isfinite(x) and x.is_integer()):
                raise _Bad("not an integer")
            n = int(x)
        else:
            raise _Bad()
    _check_range(p, n)
    return n


def _parse_str(p: Param, value: Any) -> str:
    if _is_none(value):
        return ""
    if _is_bool(value) or isinstance(value, bytes) or not isinstance(value, (str, numbers.Number)):
        raise _Bad()
    return str(value).strip()


def _parse_choice(p: Param, value: Any) -> str:
    if not isinstance(value, str):
        raise _Bad()
    s = value.strip()
    s = s.upper() if p.case == "upper" else s.lower()
    if p.aliases and s in p.aliases:
        s = p.aliases[s]
    if s not in p.choices:
        raise _Bad()
    return s


def _parse_bits(p: Param, value: Any) -> str | None:
    if _is_none(value):
        return None
    if _is_bool(value):
        raise _Bad()
    if isinstance(value, numbers.Integral):
        spec = str(int(value))
    elif isinstance(value, str):
        spec = re.sub(r"\s+", "", value).replace("+", ",").replace("|", ",")
    elif isinstance(value, (list, tuple)) and value and all(
        isinstance(v, numbers.Integral) and not _is_bool(v) for v in value
    ):
        spec = ",".join(str(int(v)) for v in value)
    else:
        raise _Bad()
    try:
        bits_to_mask(spec)
    except (ValueError, TypeError) as exc:
        raise _Bad(str(exc)) from None
    return spec


#: separators of a pair's two numbers: spaces, commas, semicolons (drizzlepac splits ``[,;\s]+``)
_PAIR_SPLIT = re.compile(r"[,;\s]+")


def _parse_pair(p: Param, value: Any) -> tuple[float, float]:
    if isinstance(value, str):
        parts = [t for t in _PAIR_SPLIT.split(value.strip()) if t]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    elif isinstance(value, numbers.Real) and not _is_bool(value):
        parts = [value]
    else:
        raise _Bad()
    if len(parts) == 1 and p.name == "combine_nsigma":
        # AstroDrizzle requires two numbers here (one crashes it); one means the same for both
        parts = [parts[0], parts[0]]
    if len(parts) != 2:
        raise _Bad(f"exactly two numbers are required, got {len(parts)}")
    out = []
    for part in parts:
        x = _to_float(part, allow_nan=False)
        _check_range(p, x)
        out.append(x)
    return (out[0], out[1])


def _parse_wt_scl(p: Param, value: Any) -> str | float:
    if isinstance(value, str):
        s = value.strip().lower()
        if s in ("exptime", "expsq"):
            return s
    x = _to_float(value, allow_nan=False)
    if x < 0:
        raise _Bad("must be >= 0")
    return x


_SCHEDULER_ALIASES = {"sync": "synchronous", "single-threaded": "synchronous",
                      "threading": "threads", "multiprocessing": "processes"}
_SCHEDULERS = ("threads", "processes", "synchronous", "distributed", "local")


def _parse_scheduler(p: Param, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Bad()
    s = value.strip()
    low = _SCHEDULER_ALIASES.get(s.lower(), s.lower())
    if low in _SCHEDULERS:
        return low
    if "://" in s or s.lower().endswith(".json") or re.fullmatch(r"[\w.\-]+:\d+", s):
        return s
    if re.fullmatch(r"profile:[\w.\-]+", s, flags=re.IGNORECASE):
        return "profile:" + s.split(":", 1)[1]   # checked against the profiles file when the run starts
    if re.fullmatch(r"[A-Za-z_][\w.\-]*", s):
        from dazzle.cluster import profile_names   # lazy: cluster imports dask

        if s in profile_names():                     # a profile of $DAZZLE_PROFILES / the defaults
            return s
    raise _Bad()


_PARSERS = {
    "bool": _parse_bool,
    "int": _parse_int,
    "float": _parse_float,
    "str": _parse_str,
    "choice": _parse_choice,
    "bits": _parse_bits,
    "pair": _parse_pair,
    "wt_scl": _parse_wt_scl,
    "scheduler": _parse_scheduler,
}


def _canonical_name(name: Any) -> str:
    if not isinstance(name, str):
        raise ParameterError(f"Parameter names must be strings, got {name!r}", name=name)
    return name.strip().lower()


def _unknown(name: str) -> ParameterError:
    candidates = list(PARAMETERS) + list(IGNORED_PARAMETERS)
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    hint = (f"; did you mean '{close[0]}'?" if close
            else "; run 'dazzle params' for the list of parameters")
    return ParameterError(f"Unknown parameter '{name}'{hint}", name=name)


def _lookup(name: Any) -> Param:
    key = _canonical_name(name)
    try:
        return PARAMETERS[key]
    except KeyError:
        raise _unknown(key) from None


def parse_value(name: str, value: Any) -> Any:
    """Validate ``value`` for parameter ``name`` and return its normalised form.

    Strings are parsed as AstroDrizzle does (``"yes"``, ``"INDEF"``, ``"4 3"``...); already
    typed Python values are checked.  Raises :class:`ParameterError` for an unknown name
    (with a suggestion) or an invalid value (naming the value and what is allowed).
    """
    p = _lookup(name)
    try:
        parsed = _PARSERS[p.kind](p, value)
    except _Bad as exc:
        why = f" ({exc})" if str(exc) else ""
        raise ParameterError(
            f"Invalid value {value!r} for parameter '{p.name}'{why}: expected {p.type_desc}",
            name=p.name, value=value,
        ) from None
    refused = UNSUPPORTED_VALUES.get(p.name)
    if refused is not None and parsed == refused[0]:
        raise ParameterError(f"{p.name}={format_value(parsed)} is not supported: {refused[1]}",
                             name=p.name, value=value)
    return parsed


# --------------------------------------------------------------------------------------
# DQ bits
# --------------------------------------------------------------------------------------


def _bitmask():
    """astropy's ``astropy.nddata.bitmask`` module, without importing ``astropy.nddata``.

    The module needs only numpy, but importing it through its package runs
    ``astropy.nddata/__init__``, which imports SciPy's sparse matrices (0.13 s of a run's start,
    for two small functions).  So astropy's own file is loaded on its own, under a private name:
    the same code, the same answers.  Where that fails (a future astropy whose module needs its
    package) or the package is already imported, the module comes from the package as usual."""
    import sys

    mod = sys.modules.get("astropy.nddata.bitmask") or sys.modules.get("dazzle._astropy_bitmask")
    if mod is not None:
        return mod
    try:
        import importlib.util

        import astropy

        path = os.path.join(os.path.dirname(astropy.__file__), "nddata", "bitmask.py")
        spec = importlib.util.spec_from_file_location("dazzle._astropy_bitmask", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mod.interpret_bit_flags, mod.bitfield_to_boolean_mask   # noqa: B018 (both there)
    except Exception:  # noqa: BLE001
        import astropy.nddata.bitmask as mod
    sys.modules["dazzle._astropy_bitmask"] = mod
    return mod


def bits_to_mask(bits: Any) -> int | None:
    """Turn a DQ bit specification into an integer mask of *good* (ignored) DQ bits.

    Uses :func:`astropy.nddata.bitmask.interpret_bit_flags`, as drizzlepac does:
    ``"64,32"``/``"64+32"`` -> 96, ``"4096"`` -> 4096, ``"~4096"`` -> ``~4096`` (-4097: every
    flag except 4096 is good), ``0`` -> 0 (only DQ == 0 is good), ``None``/``""``/``"INDEF"``
    -> None (DQ ignored: every pixel good).  Comma lists must contain powers of two.
    """
    interpret_bit_flags = _bitmask().interpret_bit_flags
    if isinstance(bits, str):
        if bits.strip().lower() in _NONE_STRINGS:
            return None
        bits = re.sub(r"\s+", "", bits).replace("|", ",")
    elif _is_bool(bits):
        raise TypeError(f"Invalid bit specification {bits!r}")
    elif isinstance(bits, numbers.Integral):
        bits = int(bits)
    return interpret_bit_flags(bits)


def good_pixel_mask(dq, bits: Any):
    """Boolean array, True where a pixel is good: ``(dq & ~mask) == 0`` for ``bits``.

    Semantics of astropy's ``bitfield_to_boolean_mask`` (as drizzlepac uses it).  With
    ``bits`` None every pixel is good; with ``dq`` None (chip without a DQ array) None is
    returned and the caller treats every pixel as good.
    """
    if dq is None:
        return None
    return _bitmask().bitfield_to_boolean_mask(dq, ignore_flags=bits_to_mask(bits), good_mask_value=True)


def bad_dq_bits(dtype, bits: Any) -> int:
    """The DQ flags that make a pixel bad for ``bits``, as an unsigned bit pattern of ``dtype``'s
    width: :func:`good_pixel_mask` is ``(dq & bad) == 0``.  Found by asking
    :func:`good_pixel_mask` about each single flag, so that the two agree by construction (0:
    every pixel is good)."""
    dtype = np.dtype(dtype)
    key = (dtype.str, bits if isinstance(bits, (str, int, type(None))) else repr(bits))
    if key not in _BAD_BITS:
        one_bit = np.array([1 << k for k in range(8 * dtype.itemsize)], dtype=np.uint64)
        probes = one_bit.astype(f"u{dtype.itemsize}").view(dtype)
        _BAD_BITS[key] = int(one_bit[~good_pixel_mask(probes, bits)].sum())
    return _BAD_BITS[key]


_BAD_BITS: dict = {}


# --------------------------------------------------------------------------------------
# Defaults, resolution, configuration files
# --------------------------------------------------------------------------------------


def defaults() -> dict:
    """A fresh dict of every parameter name -> its default (AstroDrizzle's for AD names)."""
    return {name: p.default for name, p in PARAMETERS.items()}


def _warn_ignored(names: Iterable[str], source: str) -> None:
    names = list(dict.fromkeys(names))
    if not names:
        return
    detail = "; ".join(f"{n}: {IGNORED_PARAMETERS[n]}" for n in names)
    warnings.warn(
        f"AstroDrizzle parameter(s) accepted but ignored by dazzle{source}: {detail}",
        IgnoredParameterWarning,
        stacklevel=3,
    )


def _apply(values: dict, updates: Mapping[str, Any], source: str) -> None:
    ignored = []
    for raw_name, raw_value in updates.items():
        name = _canonical_name(raw_name)
        if name.startswith("_") and name.endswith("_"):
            continue  # _task_name_, _rules_...
        if name in IGNORED_PARAMETERS:
            ignored.append(name)
            continue
        values[_lookup(name).name] = parse_value(name, raw_value)
    _warn_ignored(ignored, source)


def resolve(config: str | os.PathLike | Mapping[str, Any] | None = None, **overrides) -> dict:
    """All parameters: defaults, then ``config`` (a file path or a dict), then ``overrides``.

    Every value is validated and normalised with :func:`parse_value`.  Unknown names raise
    :class:`ParameterError`; AstroDrizzle names dazzle does not implement (see
    :data:`IGNORED_PARAMETERS`) are dropped with an :class:`IgnoredParameterWarning`.
    """
    values = defaults()
    if config is not None:
        if isinstance(config, (str, os.PathLike)):
            values.update(load_config(config))
        elif isinstance(config, Mapping):
            _apply(values, config, "")
        else:
            raise TypeError(f"config must be a path or a mapping, not {type(config).__name__}")
    _apply(values, overrides, "")
    return values


def _strip_quotes(s: str) -> str:
    s = s.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'":
        return s[1:-1]
    return s


def _split_value(raw: str, where: str) -> str:
    """Value part of a ``key = value`` line: handle quotes and trailing ``# comments``."""
    s = raw.strip()
    if s[:1] in ("'", '"'):
        q = s[0]
        end = s.find(q, 1)
        if end < 0:
            raise ParameterError(f"{where}: unterminated quoted value")
        rest = s[end + 1:].strip()
        if rest and not rest.startswith("#"):
            raise ParameterError(f"{where}: unexpected text after the quoted value")
        return s[1:end]
    hash_at = s.find("#")
    if hash_at >= 0:
        s = s[:hash_at]
    return s.strip()


def _read_config_lines(text: str, source: str) -> dict[str, str]:
    raw: dict[str, str] = {}
    seen_at: dict[str, int] = {}
    section = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        where = f"{source}, line {lineno}"
        s = line.strip()
        if not s or s.startswith("#") or s.startswith(";"):
            continue
        if s.startswith("["):
            m = re.fullmatch(r"\[+\s*(.*?)\s*\]+\s*(#.*)?", s)
            if not m:
                raise ParameterError(f"{where}: malformed section header")
            section = m.group(1)
            continue
        if section is not None and section.startswith("_") and section.endswith("_"):
            continue  # [_RULES_] and similar TEAL bookkeeping sections
        if "=" not in s:
            # the line is not echoed: a file named by mistake (--config /etc/shadow) may hold secrets
            raise ParameterError(f"{where}: expected 'name = value' (not a configuration file?)")
        key, _, value = s.partition("=")
        key = _strip_quotes(key).strip().lower()
        if not key:
            raise ParameterError(f"{where}: missing parameter name")
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,39}", key):   # not echoed: it is no parameter name
            raise ParameterError(f"{where}: not a parameter name (not a configuration file?)")
        if key in seen_at:
            raise ParameterError(
                f"{where}: parameter '{key}' is set twice (first on line {seen_at[key]})",
                name=key,
            )
        seen_at[key] = lineno
        raw[key] = _split_value(value, where)
    return raw


def load_config(path: str | os.PathLike) -> dict:
    """Read a dazzle config or an AstroDrizzle ``.cfg`` file into validated parameters.

    Both formats are ``name = value`` lines with ``#`` comments; ``[section]`` headers (e.g.
    ``[STEP 3: DRIZZLE SEPARATE IMAGES]``) are flattened, so step switches such as
    ``driz_separate`` are read like any other parameter.  Values may be quoted.  TEAL keys
    like ``_task_name_`` and ``[_RULES_]`` sections are skipped; a ``_task_name_`` other than
    ``astrodrizzle`` is an error.  AstroDrizzle parameters dazzle does not implement are
    dropped with an :class:`IgnoredParameterWarning`.  Returns only the names present in the
    file (use :func:`resolve` for a complete set).
    """
    source = os.fspath(path)
    if os.path.exists(source) and not os.path.isfile(source) and not os.path.isdir(source):
        raise ParameterError(f"{source}: cannot read the configuration file: not a regular file")
    try:
        with open(source, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        what = "is a folder, not a file" if os.path.isdir(source) else (exc.strerror or type(exc).__name__)
        raise ParameterError(f"{source}: cannot read the configuration file: {what}") from None
    except UnicodeDecodeError:
        raise ParameterError(f"{source}: not a configuration file (not UTF-8 text)") from None
    raw = _read_config_lines(text, source)
    task = raw.get("_task_name_")
    if task is not None and task.strip().lower() not in ("astrodrizzle", "dazzle"):
        raise ParameterError(
            f"{source} is a configuration for task '{task}', not for astrodrizzle/dazzle"
        )
    values: dict = {}
    ignored = []
    for key, value in raw.items():
        if key.startswith("_") and key.endswith("_"):
            continue
        if key in IGNORED_PARAMETERS:
            ignored.append(key)
            continue
        if key not in PARAMETERS:
            err = _unknown(key)
            raise ParameterError(f"{source}: {err}", name=key) from None
        try:
            values[key] = parse_value(key, value)
        except ParameterError as exc:
            raise ParameterError(f"{source}: {exc}", name=exc.name, value=exc.value) from None
    _warn_ignored(ignored, f" (in {source})")
    return values


def parse_set_args(items: Iterable[str] | None) -> dict:
    """Parse CLI ``--set name=value`` strings into validated, normalised parameters.

    Later items win.  Quotes around the value are removed (``combine_nsigma='5 4'``).
    """
    out: dict = {}
    ignored = []
    for item in items or ():
        if not isinstance(item, str) or "=" not in item:
            raise ParameterError(f"Expected name=value, got {item!r}")
        name, _, value = item.partition("=")
        name = name.strip().lower()
        if not name:
            raise ParameterError(f"Missing parameter name in {item!r}")
        if name in IGNORED_PARAMETERS:
            ignored.append(name)
            continue
        out[_lookup(name).name] = parse_value(name, _strip_quotes(value))
    _warn_ignored(ignored, " (in --set)")
    return out


# --------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------


def format_value(value: Any) -> str:
    """Format a normalised value the way AstroDrizzle ``.cfg`` files spell it."""
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, tuple):
        return " ".join(format_value(v) for v in value)
    if isinstance(value, float):
        return repr(value) if not math.isnan(value) else "NaN"
    if isinstance(value, str):
        return value if value else '""'
    return str(value)


def format_help(width: int | None = None) -> str:
    """Every parameter with its default and one-line help, grouped by step.

    This is what ``dazzle params`` prints.  ``width`` is the name/default column width
    (computed when None).
    """
    name_w = max(len(n) for n in PARAMETERS)
    def_w = max(len(format_value(p.default)) for p in PARAMETERS.values())
    if width is not None:
        name_w = max(name_w, width)
    lines = ["dazzle parameters (AstroDrizzle names and defaults; [dazzle] = dazzle only)", ""]
    for step, title in STEPS.items():
        params = [p for p in PARAMETERS.values() if p.step == step]
        if not params:
            continue
        switch = SWITCHES.get(step)
        lines.append(title + (f"  (switch: {switch})" if switch else ""))
        for p in params:
            text = p.help
            if p.kind == "choice":
                text += " {" + ", ".join(p.choices) + "}"
            if p.dazzle_only:
                text = "[dazzle] " + text
            lines.append(f"  {p.name:<{name_w}}  {format_value(p.default):<{def_w}}  {text}")
        lines.append("")
    lines.append("Accepted from AstroDrizzle .cfg files but ignored by dazzle:")
    for name, why in IGNORED_PARAMETERS.items():
        lines.append(f"  {name:<{name_w}}  {why}")
    return "\n".join(lines) + "\n"


def _cfg_value(p: Param, value: Any) -> str:
    s = format_value(value)
    if p.kind in ("str", "bits") and value is not None:
        return '"' + value + '"'
    return s


def format_config(values: Mapping[str, Any] | None = None, include_dazzle: bool = True) -> str:
    """An AstroDrizzle-style ``.cfg`` text for ``values`` (default: the defaults).

    The result can be read back with :func:`load_config`; with ``include_dazzle=False`` the
    dazzle-only parameters are left out so the file also suits AstroDrizzle itself.
    """
    full = resolve(values) if values is not None else defaults()
    out = ["_task_name_ = astrodrizzle"]
    current = None
    for name, p in PARAMETERS.items():
        if p.dazzle_only and not include_dazzle:
            continue
        if p.section != current and p.section is not None:
            out.append("")
            out.append(f"[{p.section}]")
            current = p.section
        out.append(f"{name} = {_cfg_value(p, full[name])}")
    return "\n".join(out) + "\n"
