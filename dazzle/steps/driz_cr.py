"""AstroDrizzle step 6, ``driz_cr``: find cosmic rays by comparing each chip with its blot.

Plain functions over arrays.  For each chip the pipeline calls :func:`cr_mask` with the chip's
SCI array and the median image blotted back onto the chip (step 5), writes the result as
``<root>_sci<N>_crmask.fits`` (:func:`crmask_product`: uint8, 1 = good, 0 = cosmic ray) and
uses it in the final drizzle; with ``driz_cr_corr`` it also writes ``<root>_crclean.fits``
(:func:`crclean`, :func:`crclean_dq`).  :func:`flag_dq` ORs ``crbit`` into a DQ array.

Units contract
--------------
``sci`` and ``blot`` are in the chip's own units (``BUNIT``) and ``blot`` **includes the sky**:
it is what AstroDrizzle's blot step produces with ``blot_addsky=True``, i.e. the median
(e-/s, sky-subtracted) resampled onto the chip, times ``EXPTIME / pix_ratio**2``, divided by
the conversion factor below, plus the chip's sky (``MDRIZSKY``, chip units).  ``sky`` is that
same sky value in chip units.  The conversion factor to electrons is::

    cf = (1 if BUNIT counts electrons else gain) * (EXPTIME if in_units == "cps" else 1)

so ``BUNIT='ELECTRONS'`` -> ``cf = 1`` (the blot is in e-); ``'ELECTRONS/S'`` -> ``cf =
EXPTIME`` (the blot is in e-/s); ``'COUNTS'``/``'DN'`` -> ``cf = gain``.  A missing BUNIT is
taken as ``ELECTRONS/S`` (as :mod:`dazzle.io` and drizzlepac do).  ``rdnoise`` is in electrons.
``gain`` (e-/DN) is used only for data in DN; for electron data the effective gain is 1, as
drizzlepac's ACS and WFC3 classes set it (``acsData.py``: ``chip._effGain = 1.0``;
``wfc3Data.py`` likewise), whatever ``ATODGN*`` say.

The test (drizzlepac 3.11 ``drizCR._driz_cr``, lines 280-377)
-------------------------------------------------------------
With ``s = cf*sci``, ``b = cf*blot``, ``D = derivative(cf*blot)`` (``quickDeriv.qderiv``)::

    s, b  = SCI*cf, blot*cf                                   drizCR.py:280, 286
    D     = qderiv(b)                                         drizCR.py:289 (quickDeriv.py:31-54)
    g, rn, bg = _effGain, _rdnoise, subtractedSky*cf          drizCR.py:307-309
    delta = |s - b|                                           drizCR.py:317
    N     = sqrt(g*|b + bg| + rn**2)                          drizCR.py:319
    pass1 = delta <= scale1*D + snr1*N/g                      drizCR.py:320-321
    cnt   = 3x3 box sum of pass1, boundary 'symm'             drizCR.py:324-326
    good  = (delta <= scale2*D + snr2*N/g) | (cnt >= 9)       drizCR.py:330-331
    good  = (grow x grow box sum of good >= grow**2)          drizCR.py:344-347, 368
            & (CTE tail box sum of good >= ctegrow)           drizCR.py:349-369, 370
    crclean = where(good & dq_mask, s, b) / cf                drizCR.py:376-377

(:mod:`dazzle.kernels.cr` has the details: which pixels the grow box and the CTE tail cover.)
So a pixel is a cosmic ray when it fails the pass-2 threshold and it, or one of its 8
neighbours, fails the pass-1 threshold.

Noise term (``noise``, the pipeline's ``driz_cr_noise``)
-------------------------------------------------------
* ``"astrodrizzle"`` (**default**): drizzlepac's ``N = sqrt(|b| + sky*cf + rn**2)`` (electron
  data).  drizzlepac's blot already contains the sky (``blot_addsky=True``), so the sky enters
  ``N`` a second time.  That is kept on purpose: AstroDrizzle's ``driz_cr_snr`` defaults, and
  every ``driz_cr_snr`` users have tuned, are calibrated against this term.  Measured on
  simulated HST data (8 e- per pixel, ~1 % of the pixels hit; 30 random sets each of 4 and 8
  exposures, 1 and 2 chips, ``benchmarks/crreject_seeds.py``): 99.9-99.95 % of the flags are
  real cosmic rays, 98.7-99.1 % of the CR pixels above 50 e- are found, and the masks are
  AstroDrizzle's on >= 99.98 % of the pixels.
* ``"sky_once"``: ``N = sqrt(|b| + rn**2)``, the Poisson noise of the expected electrons.
  With the true sigma, clean pixels are flagged at the Gaussian-tail rate of the 3.5-sigma test
  (about 3e-4 of them, symmetric in sign, so no flux bias), which at a realistic cosmic-ray
  density puts 1-3 % of the flags on clean pixels; slightly more faint cosmic rays are found
  (+0.1 to +0.2 points).  Use it with a higher ``driz_cr_snr`` ("4.5 3.5" gives about
  AstroDrizzle's false-flag rate).

Deliberate differences from drizzlepac (``legacy=True`` reproduces drizzlepac)
------------------------------------------------------------------------------
* **Effective gain 1 for every data unit**: everything is compared in electrons, so
  ``N/g`` with ``g = 1``.  drizzlepac uses ``g = gain`` for DN data (WFPC2, STIS, NICMOS),
  mixing units (``b`` is already in electrons there); ``legacy_gain`` reproduces that for DN
  data.  For electron data (ACS, WFC3) both give ``g = 1``.  Measured against the truth
  (``tests/steps/test_driz_cr.py::test_oracle_dn_gain_rule``, README "Deliberate differences"): on DN
  data drizzlepac's rule differs from dazzle's on 5.7 % of the pixels, with purity 67 % where
  dazzle's is 100 %, at 1.9 points less detection for dazzle.
* **Edges**: the derivative ignores missing neighbours (drizzlepac compares the first row and
  column and the last *two* rows and columns with zeros, so cosmic rays there are missed); the
  CTE tail stops at the image edge (drizzlepac's kernel reflects there).
* ``cte_direction = 0`` with ``driz_cr_ctegrow > 0`` masks no tail (drizzlepac masks the whole
  chip), in both modes.
* Pixels that are not finite in ``sci`` or ``blot``, and pixels where ``dq_good`` is False (only
  when the caller passes ``dq_good``), are not tested: they are never flagged (crmask 1; they
  are excluded from the final drizzle by their DQ / non-finite value anyway) and never turn a
  neighbour into a cosmic ray.  drizzlepac tests every pixel, so e.g. a hot pixel missing from
  the median is flagged and gets ``crbit`` in its DQ.  With ``dq_good=None`` and finite data
  the results are drizzlepac's.
* **Known-bad pixels do not make cosmic rays of their neighbours** (``known_bad``; the
  pipeline passes the pixels its drizzle steps leave out: DQ flags outside ``driz_sep_bits``
  and the static mask; not with ``legacy``).  They are tested and flagged as before, but their
  failing pass 1 does not put their good neighbours under the lower pass-2 threshold.  drizzlepac
  lets them: a dead column through a bright star then flags clean pixels of the star's core
  beside it, where the blot misses the peak by more than the pass-2 allowance (measured on
  simulated data: 3 to 8 core pixels in 6 of 120 random data sets, all of them beside a dead
  column).

Parameters (AstroDrizzle names and defaults): ``driz_cr`` (step on), ``driz_cr_corr=False``,
``driz_cr_snr="3.5 3.0"``, ``driz_cr_scale="1.2 0.7"``, ``driz_cr_grow=1``,
``driz_cr_ctegrow=0``, ``crbit=4096``.

Public API: :class:`CRSettings`, :class:`CRChip`, :func:`cr_mask`, :func:`chip_cr_mask`,
:func:`crclean`, :func:`crclean_dq`, :func:`crmask_product`, :func:`flag_dq`,
:func:`known_bad_pixels`, :func:`conversion_factor`, :func:`cte_direction`, :data:`NOISE_MODELS`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dazzle import facts
from dazzle.kernels.cr import cr_test, derivative
from dazzle.params import good_pixel_mask
from dazzle.steps.common import StepSettings

__all__ = [
    "CRChip",
    "CRSettings",
    "NOISE_MODELS",
    "chip_cr_mask",
    "conversion_factor",
    "cr_mask",
    "crclean",
    "crclean_dq",
    "crmask_product",
    "cte_direction",
    "flag_dq",
    "known_bad_pixels",
]

#: The noise terms of the test (:func:`cr_mask`'s ``settings.noise``; the pipeline's
#: ``driz_cr_noise``).
NOISE_MODELS = facts.NOISE_MODELS


@dataclass(frozen=True)
class CRSettings(StepSettings):
    """The driz_cr step's parameters, from validated parameters (:meth:`from_params`, or
    :meth:`of` for AstroDrizzle's defaults with a few changed).

    ``snr``, ``scale``: ``driz_cr_snr``, ``driz_cr_scale`` (pairs); ``grow``, ``ctegrow``:
    ``driz_cr_grow``, ``driz_cr_ctegrow``; ``noise``: ``driz_cr_noise`` (module notes);
    ``legacy``: ``driz_cr_legacy`` -- drizzlepac 3.11 exactly: its derivative and CTE-tail
    edges (``legacy_edges``) and its effective gain for DN data (``legacy_gain``), both set
    from ``legacy`` (change them apart with :func:`dataclasses.replace`), and no
    ``known_bad`` pixels; ``corr``: ``driz_cr_corr``; ``sep_bits``: ``driz_sep_bits`` (the DQ
    flags the median was made with: the other flags are known bad, :func:`known_bad_pixels`).
    """

    snr: tuple[float, float]
    scale: tuple[float, float]
    grow: int
    ctegrow: int
    noise: str
    legacy: bool
    legacy_edges: bool
    legacy_gain: bool
    corr: bool
    sep_bits: str | None

    @classmethod
    def from_params(cls, params) -> "CRSettings":
        legacy = params["driz_cr_legacy"]
        return cls(snr=params["driz_cr_snr"], scale=params["driz_cr_scale"], grow=params["driz_cr_grow"],
                   ctegrow=params["driz_cr_ctegrow"], noise=params["driz_cr_noise"], legacy=legacy,
                   legacy_edges=legacy, legacy_gain=legacy, corr=params["driz_cr_corr"],
                   sep_bits=params["driz_sep_bits"])


@dataclass(frozen=True)
class CRChip:
    """What the test needs to know of one chip: its sky (``MDRIZSKY``, chip units; enters only
    the ``"astrodrizzle"`` noise term), gain (e-/DN; needed only when ``bunit`` is not
    electrons), read noise (electrons), EXPTIME, ``in_units`` (``"cps"``/``"counts"``), BUNIT
    and CTE direction (:func:`cte_direction`).  :meth:`of` reads them from a
    :class:`dazzle.io.Chip`."""

    sky: float = 0.0
    gain: float | None = None
    rdnoise: float | None = 0.0
    exptime: float = 1.0
    in_units: str = "counts"
    bunit: str = "ELECTRONS"
    cte_direction: int = 0

    @classmethod
    def of(cls, chip, sky) -> "CRChip":
        """A :class:`dazzle.io.Chip`'s units and noise, with its sky ``sky`` (chip units)."""
        return cls(sky=float(sky), gain=chip.gain, rdnoise=chip.rdnoise, exptime=chip.exptime,
                   in_units=chip.in_units, bunit=chip.bunit,
                   cte_direction=cte_direction(chip.instrument, chip.detector, chip.extver,
                                               getattr(chip, "ccdamp", None)))


def _electron_units(bunit) -> bool:
    if bunit is None:
        return True
    b = str(bunit).strip().upper()
    return b == "" or "ELECTRON" in b or "ERGS" in b


def conversion_factor(*, in_units, exptime, gain=None, bunit=None) -> float:
    """Electrons per unit of a chip's data (see the module notes).

    Parameters
    ----------
    in_units : {"cps", "counts"}
        Whether the data are a count rate or counts (case-insensitive).
    exptime : float
        Exposure time, s (used for ``"cps"``).
    gain : float, optional
        e-/DN; needed only when ``bunit`` is not electrons.
    bunit : str, optional
        The chip's BUNIT (None or blank: electrons).

    Returns
    -------
    float
        ``(1 or gain) * (exptime if in_units == "cps" else 1)``.

    Raises
    ------
    ValueError
        A DN chip without a gain > 0, ``"cps"`` without ``exptime > 0``, or other ``in_units``.
    """
    cf = 1.0
    if not _electron_units(bunit):
        if gain is None or not (float(gain) > 0):
            raise ValueError(f"BUNIT {bunit!r} is not electrons: a gain > 0 is needed, "
                             f"got {gain!r}")
        cf = float(gain)
    units = str(in_units).lower()
    if units == "cps":
        if exptime is None or not (float(exptime) > 0):
            raise ValueError(f"in_units='cps' needs EXPTIME > 0, got {exptime!r}")
        cf *= float(exptime)
    elif units != "counts":
        raise ValueError(f"in_units must be 'cps' or 'counts'; got {in_units!r}")
    return cf


def cte_direction(instrument, detector, chip=1, ccdamp=None) -> int:
    """drizzlepac's CTE direction of a chip (``cte_dir``).

    Parameters
    ----------
    instrument, detector : str or None
        ``INSTRUME`` and ``DETECTOR`` (case-insensitive).
    chip : int, optional
        The chip's ``EXTVER`` (``SCI,<chip>``).
    ccdamp : str, optional
        ``CCDAMP`` (used for ACS/HRC only).

    Returns
    -------
    int
        ACS/WFC and WFC3/UVIS: ``SCI,1`` -> -1, ``SCI,2`` -> +1; ACS/HRC: amplifier A or B -> +1,
        C or D -> -1; WFPC2 -> -1; STIS/CCD -> +1; everything else (ACS/SBC, WFC3/IR, MAMAs,
        NICMOS, unknown) -> 0 (no CTE tail).

    Notes
    -----
    From drizzlepac ``acsData``, ``wfc3Data``, ``wfpc2Data``, ``stisData``; the comments in
    ``drizCR.py`` disagree with that code; the code is followed.
    """
    inst = str(instrument or "").strip().upper()
    det = str(detector or "").strip().upper()
    chip = int(chip)
    if (inst, det) in (("ACS", "WFC"), ("WFC3", "UVIS")):
        return -1 if chip == 1 else (1 if chip == 2 else 0)
    if (inst, det) == ("ACS", "HRC"):
        amp = str(ccdamp or "").strip().upper()[:1]
        return 1 if amp in ("A", "B") else (-1 if amp in ("C", "D") else 0)
    if inst == "WFPC2":
        return -1
    if inst == "STIS" and det == "CCD":
        return 1
    return 0


def cr_mask(sci, blot, settings: CRSettings, chip: CRChip = CRChip(), *, dq_good=None, known_bad=None):
    """Cosmic-ray mask of one chip: **True = good**, False = cosmic ray.

    Parameters
    ----------
    sci : 2-D array
        The chip's SCI data, chip units, sky *not* subtracted.
    blot : 2-D array
        The median blotted onto the chip, chip units, sky added back (see the module notes).
    settings : CRSettings
        The step's parameters (thresholds, grow, noise term, legacy behaviour).
    chip : CRChip
        The chip's sky, units, noise and CTE direction.
    dq_good : 2-D bool array, optional
        Where False the pixel is not tested (never flagged, never flags a neighbour).
    known_bad : 2-D bool array, optional
        True where the pixel is known bad before the test (DQ, static mask): flagged as usual,
        but never the reason a good neighbour is flagged (see the module notes).

    Returns
    -------
    2-D bool array
        The mask, of ``sci``'s shape.

    Raises
    ------
    ValueError
        If the arrays are not 2-D of one shape, or the chip's units cannot be converted to
        electrons (:func:`conversion_factor`).
    """
    sci = np.asarray(sci)
    blot = np.asarray(blot)
    if sci.ndim != 2 or sci.shape != blot.shape:
        raise ValueError(f"sci {sci.shape} and blot {blot.shape} must be 2-D arrays of one shape")
    rdnoise = 0.0 if chip.rdnoise is None else float(chip.rdnoise)
    cf = conversion_factor(in_units=chip.in_units, exptime=chip.exptime, gain=chip.gain, bunit=chip.bunit)
    g = float(chip.gain) if settings.legacy_gain and not _electron_units(chip.bunit) else 1.0
    sky = 0.0 if chip.sky is None else float(chip.sky)
    background = sky * cf if settings.noise == "astrodrizzle" else 0.0
    untested = None
    if dq_good is not None:
        dq_good = np.asarray(dq_good, dtype=bool)
        if dq_good.shape != sci.shape:
            raise ValueError(f"dq_good {dq_good.shape} must have the shape of sci {sci.shape}")
        untested = ~dq_good
    if known_bad is not None:
        known_bad = np.asarray(known_bad, dtype=bool)
        if known_bad.shape != sci.shape:
            raise ValueError(f"known_bad {known_bad.shape} must have the shape of sci {sci.shape}")
    deriv = derivative(blot, legacy_edges=settings.legacy_edges)
    good = cr_test(sci, blot, deriv, cf=cf, gain=g, rdnoise=rdnoise, background=background,
                   snr=tuple(settings.snr), scale=tuple(settings.scale), grow=int(settings.grow),
                   ctegrow=int(settings.ctegrow), cte_dir=int(chip.cte_direction), untested=untested,
                   legacy_edges=settings.legacy_edges, noseed=known_bad)
    return good.view(bool)


def chip_cr_mask(chip, data, blot, sky, static, settings: CRSettings):
    """The step for one input chip: its cosmic-ray mask.

    Known-bad pixels (DQ flags outside ``driz_sep_bits``, the static mask) are passed on to
    :func:`cr_mask` as ``known_bad``, unless ``settings.legacy``.

    Parameters
    ----------
    chip : dazzle.io.Chip
    data : dazzle.io.ChipData
        The chip's pixels, ``resetbits`` cleared.
    blot : 2-D array
        The median blotted onto the chip (chip units, sky added back).
    sky : float
        The chip's sky (``MDRIZSKY``), chip units.
    static : 2-D bool array or None
        The chip's static mask (True = good).
    settings : CRSettings

    Returns
    -------
    2-D bool array
        True = good, False = cosmic ray.
    """
    known_bad = None if settings.legacy else known_bad_pixels(data.dq, static, settings.sep_bits)
    return cr_mask(data.sci, blot, settings, CRChip.of(chip, sky), known_bad=known_bad)


def known_bad_pixels(dq, static=None, bits=0):
    """The ``known_bad`` input of :func:`cr_mask` for a chip.

    Parameters
    ----------
    dq : 2-D integer array or None
        The chip's DQ array.
    static : 2-D bool array, optional
        The chip's static mask (True = good).
    bits : int, str or None, optional
        ``driz_sep_bits``: the DQ flags the median was made with (the other flags are bad).

    Returns
    -------
    2-D bool array or None
        True where the drizzle steps leave the pixel out -- DQ flags outside ``bits`` or False in
        ``static``; None when neither says anything.
    """
    bad = None
    if dq is not None:
        good = good_pixel_mask(dq, bits)
        if good is not None:
            bad = ~good
    if static is not None:
        static_bad = ~np.asarray(static, dtype=bool)
        bad = static_bad if bad is None else bad | static_bad
    return bad


def crmask_product(good) -> np.ndarray:
    """The ``_crmask`` product array: uint8, 1 = good, 0 = cosmic ray."""
    return np.asarray(good, dtype=bool).astype(np.uint8)


def crclean(sci, blot, mask) -> np.ndarray:
    """``driz_cr_corr``'s cleaned image: ``sci`` where ``mask`` is True, the blot elsewhere.

    Parameters
    ----------
    sci, blot : 2-D array
        The chip's SCI data and the median blotted onto it (chip units, sky included).
    mask : 2-D bool array
        True where ``sci`` is kept.  drizzlepac replaces every pixel outside
        ``crmask AND (DQ & ~crbit) == 0``; pass that combined mask to reproduce its ``_crclean``
        SCI.

    Returns
    -------
    numpy.ndarray
        float32, chip units.

    Raises
    ------
    ValueError
        If the three shapes differ.
    """
    sci = np.asarray(sci)
    blot = np.asarray(blot)
    mask = np.asarray(mask, dtype=bool)
    if not (sci.shape == blot.shape == mask.shape):
        raise ValueError(f"sci {sci.shape}, blot {blot.shape} and mask {mask.shape} differ")
    return np.where(mask, sci, blot).astype(np.float32)


def crclean_dq(mask, crbit=4096) -> np.ndarray:
    """The DQ array drizzlepac writes into ``_crclean``.

    Parameters
    ----------
    mask : 2-D bool array
        True where the pixel is kept (as given to :func:`crclean`).
    crbit : int, optional
        The DQ flag of a replaced pixel.

    Returns
    -------
    numpy.ndarray
        uint16: 0 where ``mask`` is True, ``crbit`` elsewhere.
    """
    return np.where(np.asarray(mask, dtype=bool), 0, int(crbit)).astype(np.uint16)


def flag_dq(dq, good, crbit=4096) -> np.ndarray:
    """``dq | crbit`` where ``good`` is False (AstroDrizzle's ``updateInputDQArray``).

    Parameters
    ----------
    dq : 2-D integer array
        The chip's DQ array (not modified).
    good : 2-D bool array
        The cosmic-ray mask, True = good.
    crbit : int, optional
        The flag to set (0: none).

    Returns
    -------
    numpy.ndarray
        A new array of ``dq``'s dtype.

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    dq = np.asarray(dq)
    good = np.asarray(good, dtype=bool)
    if dq.shape != good.shape:
        raise ValueError(f"dq {dq.shape} and mask {good.shape} differ")
    out = dq.copy()
    if crbit:
        out[~good] |= np.asarray(crbit).astype(dq.dtype)
    return out
