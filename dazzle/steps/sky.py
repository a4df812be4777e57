"""AstroDrizzle step 2: the sky of every chip (``skysub``, ``skymethod``, ``skystat`` ...).

Inputs are never changed: the step returns one :class:`ChipSky` per chip, and the pipeline
subtracts it on the fly and records it as ``MDRIZSKY`` in its products.

What drizzlepac 3.11 does (``drizzlepac.sky.subtractSky`` -> ``stsci.skypac.skymatch`` 1.0.12)
-----------------------------------------------------------------------------------------------
**Pixels** of a chip used for its sky: ``good_pixel_mask(DQ, sky_bits)`` (``sky_bits=None``: DQ
not used) AND the static mask (``use_static``, when the static step ran) -- drizzlepac's
``_buildStaticDQUserMask``.  dazzle also drops non-finite pixels (see differences).

**Statistic** (:func:`chip_sky_statistic`): ``stsci.imagestats.ImageStats`` of those pixels with
``lower=skylower``, ``upper=skyupper``, ``nclip=skyclip``, ``lsig=skylsigma``,
``usig=skyusigma``, ``binwidth=skywidth``; ``skystat`` picks ``median`` (numpy median of the
pixels within the final clip limits), ``mode`` (histogram peak) or ``mean`` (clipped mean).
:func:`dazzle.stats.imagestats` reproduces ImageStats exactly.  A chip without usable pixels
(none left, or ImageStats fails) has no statistic (NaN here) and is skipped.

**Brightness** (:func:`brightness_factor`): skypac compares chips in "brightness" units,
``value * conv`` with ``conv = 1 / pscale**2`` (``pscale`` = ``IDCSCALE``, else
``sqrt|det CD|``), divided by ``EXPTIME`` for data in counts.  AstroDrizzle calls skymatch
without ``invsens_kwd``, so **PHOTFLAM is never used** (whether present or not) -- chips of
different sensitivity are compared in e-/s/arcsec**2.

**Methods** (:func:`exposure_skies`, :func:`match_skies`):

* ``localmin``: per exposure (input file), the minimum brightness over its chips; each chip
  gets that brightness converted back to its own units (``b / conv_chip``).  No statistic in
  any chip -> 0.
* ``globalmin``: the same with the minimum over all chips of all exposures.
* ``match``: for every pair of exposures and every pair of their chips that overlap on the sky,
  the statistic of each chip's pixels inside the common region, in brightness, and its
  ``npix`` (pixels left after clipping) as weight; per exposure pair the weighted means
  ``A[j, i]`` (exposure i in the region shared with j) and weights ``W``.  With
  ``Wm = (W + W.T)/2``, one equation per pair with both weights > 0:
  ``Wm_ij (d_i - d_j) = Wm_ij (A[j, i] - A[i, j])``, solved by ``pinv(K, rcond=1e-12) @ F``
  (minimum-norm least squares).  Exposures in no equation are undetermined.  The lowest
  determined ``d`` (or 0 if all are > 0) is subtracted, so the lowest exposure gets 0
  (``match_down=True``).  Each chip gets ``d / conv_chip``.
* ``globalmin+match``: ``match`` first; then ``m = min over chips of conv*(stat - d/conv)``
  (the global minimum of the matched skies) and each chip gets ``(d + m) / conv_chip``
  (undetermined exposures: ``d = 0``).
* ``match`` and ``globalmin+match`` with fewer than two exposures do nothing in skypac: the
  chips keep the ``MDRIZSKY`` already in their headers (0 when absent).  Reproduced, with a
  warning.  Undetermined exposures under ``match`` likewise keep their header value.

**User values** (:func:`user_skies`), which replace the computation:

* ``skysub=True`` and ``skyfile``: lines ``filename sky`` or ``filename sky1 sky2 ...`` (one
  value for every chip, or one per chip by EXTVER); ``#`` comments; a comment line containing
  ``applied`` and ``= yes`` (or ``: yes``/``true``/``y``/``t``) says the values are already
  subtracted from the data (recorded, not subtracted again).  Values are in the chip's units.
  A file not listed keeps its header ``MDRIZSKY`` (0 when absent).  ``skyuser`` is ignored.
* ``skysub=False`` and ``skyuser`` = a SCI header keyword: its value is the sky the user already
  subtracted: recorded as MDRIZSKY and used as the background by median/driz_cr, *not*
  subtracted when drizzling.  ``skyuser = "MDRIZSKY"`` keeps the header value and it *is*
  subtracted (drizzlepac reads MDRIZSKY as a sky still to apply).  ``skyuser = "@file"``
  reads a skyfile (never "applied": the values *are* subtracted -- as read).
* ``skysub=False`` without ``skyuser``: nothing is subtracted; the recorded/background sky is
  the header ``MDRIZSKY`` (0 when absent).

:class:`ChipSky` carries both of drizzlepac's numbers: ``value`` (its ``subtractedSky``, what
``MDRIZSKY`` holds: the background for median and driz_cr) and ``subtract`` (its
``computedSky`` is not None: drizzle subtracts ``value`` and blot adds it back).

How dazzle finds the common region for ``match`` (an approximation)
--------------------------------------------------------------------
skypac intersects spherical polygons of the chips' 4 outer pixel corners (straight edges) and
scan-fills the intersection, with vertices rounded to whole pixels, in each chip.  dazzle maps
every pixel centre of one chip into the other chip's pixel grid through the full distorted WCSs
(:func:`dazzle.geometry.calc_pixmap`: exact on a grid every ``stepsize`` = 10 pixels, bilinear
between, < 1e-3 px on HST SIP) and keeps the pixels whose nearest pixel of the other chip
exists (``-0.5 <= x < nx - 0.5``, same for y) -- :func:`overlap_mask`.  The two regions differ
only along the overlap's edges (distortion bending the chip edges, vertex rounding): a rim at
most a pixel or two wide, which moves a clipped sky statistic by a negligible amount.

Deliberate differences (listed in the README)
---------------------------------------------
* Non-finite SCI pixels are excluded from the sky statistics.  In drizzlepac a single NaN among
  a chip's sky pixels (with ``skylower`` unset) makes ImageStats' lower limit NaN and the chip's
  sky fails (it is skipped; an exposure with no valid chip gets 0).
* Units: counts vs count rate come from :attr:`dazzle.io.Chip.in_units` (``BUNIT`` containing
  ``/s``; missing BUNIT = rate, as drizzlepac's imageObject).  skypac reads BUNIT itself
  (``ELECTRONS``/``COUNTS``/``DN`` optionally ``/S``/``SEC``/``SECOND``; otherwise it guesses
  from the instrument or treats unknown units as counts).  Same answer for HST data.
* ``skymask_cat`` (user sky masks) is not supported: :func:`compute_skies` refuses it; pass
  ``user_masks`` instead.
* A skyfile entry matches a chip's file by its exact name, its absolute path, or (for an entry
  without a directory) its base name; drizzlepac compares the name as given on its input list.

Layers for the pipeline
-----------------------
* per chip (parallel): ``m = sky_pixel_mask(data.dq, sky_bits, static, use_static, data.sci)``;
  ``s = chip_sky_statistic(data.sci, m, **settings.stat_kwargs())``;
* once: ``exposure_skies(chips, stats, skymethod=...)`` (localmin / globalmin), or for the
  match methods :func:`pair_statistic` per overlapping chip pair and :func:`solve_sky_deltas`
  (:func:`match_skies` does both);
* or everything at once: :func:`compute_skies` (user values, methods, fallbacks).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np

from dazzle import facts, geometry
from dazzle.params import good_pixel_mask
from dazzle.steps.common import StepSettings
from dazzle.stats import finite_values, imagestats_many

__all__ = [
    "SKY_METHODS",
    "SKY_STATS",
    "ChipSky",
    "SkySettings",
    "brightness_factor",
    "chip_sky_statistic",
    "chip_sky_stats",
    "compute_skies",
    "exposure_groups",
    "exposure_skies",
    "match_skies",
    "overlap_mask",
    "pair_statistic",
    "read_skyfile",
    "sky_pixel_mask",
    "sky_statistic",
    "sky_statistic_many",
    "solve_sky_deltas",
    "user_skies",
]

SKY_METHODS = facts.SKY_METHODS
SKY_STATS = facts.SKY_STATS


# --------------------------------------------------------------------------------------------
# Results and settings
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ChipSky:
    """The sky of one chip, in the chip's own units.

    ``value``: what AstroDrizzle records as ``MDRIZSKY`` (its ``subtractedSky``): the background
    the median and driz_cr steps use.  ``subtract``: whether the drizzle steps subtract
    ``value`` from the data (and blot adds it back) -- AstroDrizzle's ``computedSky`` is not
    None.  ``source``: ``"computed"``, ``"skyfile"``, ``"skyuser"`` or ``"header"`` (the
    input's existing MDRIZSKY, 0 when absent).
    """

    value: float
    subtract: bool = True
    source: str = "computed"

    @property
    def drizzle_sky(self) -> float:
        """The value to subtract when drizzling (and to add back after blot): ``value`` or 0."""
        return float(self.value) if self.subtract else 0.0

    def __float__(self):
        return float(self.value)


@dataclass(frozen=True)
class SkySettings(StepSettings):
    """The sky step's parameters (AstroDrizzle's names, from validated parameters:
    :meth:`from_params`, or :meth:`of` for the defaults with a few changed)."""

    skysub: bool
    skymethod: str
    skystat: str
    skywidth: float
    skylower: float | None
    skyupper: float | None
    skyclip: int
    skylsigma: float
    skyusigma: float
    skymask_cat: str
    use_static: bool
    sky_bits: str | None
    skyfile: str
    skyuser: str

    @classmethod
    def from_params(cls, params: Mapping) -> "SkySettings":
        return cls(**{f.name: params[f.name] for f in fields(cls)})

    @property
    def needs_pixels(self) -> bool:
        """Whether the skies are computed from the chips' pixels (else :func:`user_skies`
        gives them: a skyfile, a header keyword, or nothing subtracted)."""
        return self.skysub and not self.skyfile

    def stat_kwargs(self) -> dict:
        return dict(skystat=self.skystat, skywidth=self.skywidth, skylower=self.skylower,
                    skyupper=self.skyupper, skyclip=self.skyclip, skylsigma=self.skylsigma,
                    skyusigma=self.skyusigma)


# --------------------------------------------------------------------------------------------
# Per-chip pieces
# --------------------------------------------------------------------------------------------

def sky_pixel_mask(dq=None, sky_bits="0", static_mask=None, use_static=True, sci=None):
    """Pixels of a chip usable for its sky.

    Parameters
    ----------
    dq : 2-D integer array, optional
        The chip's DQ array; ``good_pixel_mask(dq, sky_bits)`` is used when given.
    sky_bits : int, str or None, optional
        DQ flags still counted as good (None: the DQ array is not used).
    static_mask : 2-D bool array, optional
        The chip's static mask (True = good).
    use_static : bool, optional
        Use ``static_mask`` (AstroDrizzle's ``use_static``).
    sci : 2-D array, optional
        The chip's SCI data: its non-finite pixels are left out.

    Returns
    -------
    2-D bool array or None
        True where the pixel is usable; None when nothing restricts the pixels.
    """
    mask = None
    if dq is not None and sky_bits is not None:
        mask = np.asarray(good_pixel_mask(dq, sky_bits), dtype=bool)
    if use_static and static_mask is not None:
        sm = np.asarray(static_mask, dtype=bool)
        mask = sm.copy() if mask is None else (mask & sm)
    if sci is not None:
        fin = np.isfinite(sci)
        if not fin.all():
            mask = fin if mask is None else (mask & fin)
    return mask


def _check_stat(skystat):
    s = str(skystat).lower()
    if s not in SKY_STATS:
        raise ValueError(f"skystat must be one of {', '.join(SKY_STATS)}; got {skystat!r}")
    return s


def sky_statistic(values, *, skystat="median", skywidth=0.1, skylower=None, skyupper=None,
                  skyclip=5, skylsigma=4.0, skyusigma=4.0):
    """The sky statistic of some pixel values, as skypac's ``SkyStats``.

    ImageStats (:func:`dazzle.stats.imagestats`) with ``fields = "npix," + skystat``.

    Parameters
    ----------
    values : array_like
        The pixel values (any shape, used in C order).
    skystat : {"median", "mode", "mean"}, optional
        The statistic (case-insensitive).
    skywidth : float, optional
        Histogram bin width (``binwidth``), data units.
    skylower, skyupper : float, optional
        Limits of the usable values, data units (None: unlimited).
    skyclip : int, optional
        Number of sigma-clipping iterations.
    skylsigma, skyusigma : float, optional
        Lower and upper clipping limits, in sigma.

    Returns
    -------
    value : float
        The statistic, data units; NaN when there is no pixel or ImageStats gives up ("Not enough
        data points").
    npix : int
        Pixels left after clipping; 0 with a NaN value.

    Raises
    ------
    ValueError
        If ``skystat`` is not one of :data:`SKY_STATS`.
    """
    return sky_statistic_many([values], skystat=skystat, skywidth=skywidth, skylower=skylower,
                              skyupper=skyupper, skyclip=skyclip, skylsigma=skylsigma,
                              skyusigma=skyusigma)[0]


def sky_statistic_many(values, *, skystat="median", skywidth=0.1, skylower=None, skyupper=None,
                       skyclip=5, skylsigma=4.0, skyusigma=4.0) -> list:
    """:func:`sky_statistic` of several sets of pixel values, the same numbers: their clipping
    passes run two at a time (:func:`dazzle.stats.imagestats_many`).

    Parameters
    ----------
    values : sequence of array_like
        Per set, its pixel values (any shape, used in C order).
    skystat, skywidth, skylower, skyupper, skyclip, skylsigma, skyusigma
        As in :func:`sky_statistic`, the same for every set.

    Returns
    -------
    list of (float, int)
        Per set :func:`sky_statistic`'s ``(value, npix)``.

    Raises
    ------
    ValueError
        If ``skystat`` is not one of :data:`SKY_STATS`.
    """
    stat = _check_stat(skystat)
    vs = [np.asarray(v) for v in values]
    use = [i for i, v in enumerate(vs) if v.size >= 1]
    out = [(math.nan, 0)] * len(vs)
    got = imagestats_many([vs[i] for i in use], fields=(stat,) if stat != "mean" else (), lower=skylower,
                          upper=skyupper, nclip=int(skyclip), lsig=float(skylsigma),
                          usig=float(skyusigma), binwidth=float(skywidth))
    for i, r in zip(use, got):
        if isinstance(r, ValueError):
            continue
        value = {"median": r.median, "mode": r.mode, "mean": r.mean}[stat]
        if r.npix >= 1 and value is not None:
            out[i] = (float(value), int(r.npix))
    return out


def chip_sky_statistic(sci, mask=None, *, skystat="median", skywidth=0.1, skylower=None,
                       skyupper=None, skyclip=5, skylsigma=4.0, skyusigma=4.0) -> float:
    """The sky statistic of one chip, in its own units.

    Parameters
    ----------
    sci : 2-D array
        The chip's SCI data.  Non-finite pixels are always left out.
    mask : 2-D bool array, optional
        True = use the pixel (see :func:`sky_pixel_mask`); None: all pixels.
    skystat, skywidth, skylower, skyupper, skyclip, skylsigma, skyusigma
        As in :func:`sky_statistic`.

    Returns
    -------
    float
        The statistic, chip units; NaN when the chip has no usable pixel.

    Raises
    ------
    ValueError
        If ``mask`` has another shape than ``sci``, or ``skystat`` is unknown.
    """
    return _chip_stat(sci, mask, dict(skystat=skystat, skywidth=skywidth, skylower=skylower,
                                      skyupper=skyupper, skyclip=skyclip, skylsigma=skylsigma,
                                      skyusigma=skyusigma))[0]


def _chip_stat(sci, mask, stat_kw):
    return sky_statistic(_chip_values(sci, mask), **stat_kw)


def _chip_values(sci, mask):
    """The finite SCI values ``mask`` selects (None: all), in C order."""
    sci = np.asarray(sci)
    if mask is not None and np.shape(mask) != sci.shape:
        raise ValueError(f"sky mask shape {np.shape(mask)} != SCI shape {sci.shape}")
    return finite_values(sci, mask)


def brightness_factor(chip) -> float:
    """skypac's data -> brightness factor of a chip: ``1 / pscale**2`` (``IDCSCALE``, else
    ``sqrt|det CD|``, arcsec), ``/ EXPTIME`` for data in counts.  PHOTFLAM is not used (see the
    module notes)."""
    idc = getattr(chip, "idcscale", None)
    if idc is not None and idc > 0:
        pscale = float(idc)
    else:
        pscale = geometry.nominal_scale_orientation(chip.wcs(), None)[0]
    conv = 1.0 / pscale ** 2
    if str(getattr(chip, "in_units", "cps")).lower() != "cps":
        conv /= float(chip.exptime)
    return conv


def exposure_groups(chips) -> list[list[int]]:
    """Indices of the chips of each exposure (input file), in order of first appearance."""
    groups: dict = {}
    for k, c in enumerate(chips):
        groups.setdefault(c.path, []).append(k)
    return list(groups.values())


# --------------------------------------------------------------------------------------------
# localmin / globalmin
# --------------------------------------------------------------------------------------------

def exposure_skies(chips, stats, *, skymethod="localmin", factors=None) -> list[float]:
    """Per-chip skies for ``localmin`` or ``globalmin`` from the chips' statistics.

    Parameters
    ----------
    chips : sequence of dazzle.io.Chip
        The association's chips (an exposure is a ``chip.path``).
    stats : sequence of float
        Each chip's statistic, chip units (NaN or None: none).
    skymethod : {"localmin", "globalmin"}, optional
        Minimum brightness per exposure or over all chips.
    factors : sequence of float, optional
        Brightness factors (default :func:`brightness_factor` of each chip).

    Returns
    -------
    list of float
        Each chip's sky, chip units: the minimum brightness converted back with the chip's
        factor; 0 where no chip of the group has a statistic.

    Raises
    ------
    ValueError
        If ``skymethod`` is another method, or ``stats`` does not have one value per chip.
    """
    method = str(skymethod).lower()
    if method not in ("localmin", "globalmin"):
        raise ValueError(f"exposure_skies handles localmin and globalmin; got {skymethod!r}")
    if len(stats) != len(chips):
        raise ValueError("one statistic per chip is needed")
    conv = list(factors) if factors is not None else [brightness_factor(c) for c in chips]
    bright = [conv[k] * float(s) if s is not None and math.isfinite(s) else None
              for k, s in enumerate(stats)]
    out = [0.0] * len(chips)
    if method == "localmin":
        for idx in exposure_groups(chips):
            vals = [bright[k] for k in idx if bright[k] is not None]
            b = min(vals) if vals else 0.0
            for k in idx:
                out[k] = b / conv[k]
    else:
        vals = [b for b in bright if b is not None]
        b = min(vals) if vals else 0.0
        out = [b / conv[k] for k in range(len(chips))]
    return out


# --------------------------------------------------------------------------------------------
# match
# --------------------------------------------------------------------------------------------

def _wcs_shape(chip_or_wcs, shape=None):
    if hasattr(chip_or_wcs, "load") and hasattr(chip_or_wcs, "wcs"):
        return chip_or_wcs.wcs(), tuple(chip_or_wcs.shape)
    return chip_or_wcs, tuple(shape)


def overlap_mask(wcs, shape, other_wcs, other_shape, *, stepsize=10, block_rows=512):
    """Pixels of a chip whose centre falls on another chip.

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        The chip's WCS.
    shape : tuple of int
        The chip's shape ``(ny, nx)``.
    other_wcs : astropy.wcs.WCS
        The other chip's WCS.
    other_shape : tuple of int
        The other chip's shape ``(ny, nx)``.
    stepsize : int, optional
        Exact-transform grid spacing of the pixmap (pixels; see
        :func:`dazzle.geometry.calc_pixmap`).
    block_rows : int, optional
        Rows mapped at a time (bounds memory).

    Returns
    -------
    2-D bool array
        Of ``shape``: True where the nearest pixel of the other chip exists
        (``-0.5 <= x < nx - 0.5``, same for y); all False when the chips do not overlap.  See the
        module notes for how this compares with skypac.
    """
    ny, nx = int(shape[0]), int(shape[1])
    ony, onx = int(other_shape[0]), int(other_shape[1])
    out = np.zeros((ny, nx), dtype=bool)
    # quick rejection from the outer edges
    ex, ey = geometry.edge_points((ny, nx), 32)
    px, py = geometry.transform_points(wcs, other_wcs, ex, ey)
    ok = np.isfinite(px) & np.isfinite(py)
    if ok.all():
        if (px.max() < -0.5 or px.min() >= onx - 0.5 or py.max() < -0.5
                or py.min() >= ony - 0.5):
            return out
    for y0 in range(0, ny, block_rows):
        y1 = min(ny, y0 + block_rows) - 1
        pm = geometry.calc_pixmap(wcs, other_wcs, (ny, nx), stepsize=stepsize,
                                  box=(0, nx - 1, y0, y1))
        x, y = pm[..., 0], pm[..., 1]
        with np.errstate(invalid="ignore"):
            out[y0:y1 + 1] = (x >= -0.5) & (x < onx - 0.5) & (y >= -0.5) & (y < ony - 0.5)
    return out


def pair_statistic(chip, sci, mask, other, *, stepsize=10, factor=None, overlap=None,
                   **stat_kw):
    """The sky of a chip in the region it shares with another chip.

    Parameters
    ----------
    chip, other : dazzle.io.Chip
        The chip and the chip it is compared with.
    sci : 2-D array
        ``chip``'s SCI data.
    mask : 2-D bool array or None
        ``chip``'s sky mask (:func:`sky_pixel_mask`).
    stepsize : int, optional
        Pixmap grid spacing for :func:`overlap_mask`.
    factor : float, optional
        ``chip``'s brightness factor (default :func:`brightness_factor`).
    overlap : 2-D bool array, optional
        A precomputed :func:`overlap_mask` of ``chip`` on ``other``.
    **stat_kw
        The statistic's parameters (:func:`sky_statistic`).

    Returns
    -------
    brightness : float or None
        The statistic in brightness units; None when the chips do not overlap or no statistic is
        possible.
    npix : int
        Pixels left after clipping (the pair's weight); 0 with None.
    """
    if overlap is None:
        w1, s1 = _wcs_shape(chip)
        w2, s2 = _wcs_shape(other)
        overlap = overlap_mask(w1, s1, w2, s2, stepsize=stepsize)
    if not overlap.any():
        return None, 0
    m = overlap if mask is None else (overlap & np.asarray(mask, dtype=bool))
    value, npix = _chip_stat(sci, m, stat_kw)
    if npix < 1 or not math.isfinite(value):
        return None, 0
    conv = brightness_factor(chip) if factor is None else factor
    return conv * value, npix


def solve_sky_deltas(A, W):
    """Per-exposure sky offsets from the overlap matrices.

    skypac's ``_find_optimum_sky_deltas`` and the ``match_down`` reference (see the module notes).

    Parameters
    ----------
    A : array_like
        ``(n, n)``; ``A[j, i]`` is the sky of exposure i where it overlaps j, brightness units.
    W : array_like
        ``(n, n)`` weights ``W[j, i]`` (pixels after clipping); 0 where there is no overlap.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` offsets, brightness units.  The lowest determined offset, when negative, is
        subtracted from all (so it becomes 0); undetermined exposures (in no valid pair) are NaN.
    """
    A = np.asarray(A, dtype=float)
    W = np.asarray(W, dtype=float)
    ns = A.shape[0]
    pairs = [(i, j) for i in range(ns) for j in range(i + 1, ns) if W[i, j] > 0 and W[j, i] > 0]
    Wm = 0.5 * (W + W.T)
    K = np.zeros((len(pairs), ns))
    F = np.zeros(len(pairs))
    invalid = np.ones(ns, dtype=bool)
    for e, (i, j) in enumerate(pairs):
        K[e, i] = Wm[i, j]
        K[e, j] = -Wm[i, j]
        F[e] = Wm[i, j] * (A[j, i] - A[i, j])
        invalid[i] = invalid[j] = False
    if len(pairs) == 0:
        return np.full(ns, np.nan)
    try:
        deltas = np.linalg.pinv(K, rcond=1.0e-12) @ F
    except np.linalg.LinAlgError:
        return np.full(ns, np.nan)
    deltas[invalid] = np.nan
    good = np.isfinite(deltas)
    ref = np.amin(deltas[good], initial=0.0)
    deltas[good] -= ref
    return deltas


def match_skies(chips, datas, masks=None, *, stepsize=10, factors=None, **stat_kw):
    """Sky matching (skypac ``match``): per-chip sky offsets relative to the lowest exposure.

    Parameters
    ----------
    chips : sequence of dazzle.io.Chip
        The association's chips.
    datas : sequence
        Per chip a SCI array or a :class:`dazzle.io.ChipData`.
    masks : sequence, optional
        Per chip the sky mask (:func:`sky_pixel_mask`) or None.
    stepsize : int, optional
        Pixmap grid spacing for :func:`overlap_mask`.
    factors : sequence of float, optional
        Brightness factors (default :func:`brightness_factor` of each chip).
    **stat_kw
        The statistic's parameters (:meth:`SkySettings.stat_kwargs`).

    Returns
    -------
    offsets : list of float
        Per chip, chip units; 0 for the lowest exposure, NaN for chips of exposures that overlap
        no other exposure.
    deltas : numpy.ndarray
        Per exposure (order of :func:`exposure_groups`), brightness units.
    """
    n = len(chips)
    if masks is None:
        masks = [None] * n
    conv = list(factors) if factors is not None else [brightness_factor(c) for c in chips]
    scis = [getattr(d, "sci", d) for d in datas]
    groups = exposure_groups(chips)
    ne = len(groups)
    wcss = [c.wcs() for c in chips]
    A = np.zeros((ne, ne))
    W = np.zeros((ne, ne))
    for i in range(ne):
        for j in range(i + 1, ne):
            ws1 = ww1 = ws2 = ww2 = 0.0
            for k1 in groups[i]:
                for k2 in groups[j]:
                    o1 = overlap_mask(wcss[k1], chips[k1].shape, wcss[k2], chips[k2].shape,
                                      stepsize=stepsize)
                    if not o1.any():
                        continue
                    o2 = overlap_mask(wcss[k2], chips[k2].shape, wcss[k1], chips[k1].shape,
                                      stepsize=stepsize)
                    if not o2.any():
                        continue
                    b1, w1 = pair_statistic(chips[k1], scis[k1], masks[k1], chips[k2],
                                            overlap=o1, factor=conv[k1], **stat_kw)
                    b2, w2 = pair_statistic(chips[k2], scis[k2], masks[k2], chips[k1],
                                            overlap=o2, factor=conv[k2], **stat_kw)
                    if b1 is not None and w1 > 0:
                        ws1 += b1 * w1
                        ww1 += w1
                    if b2 is not None and w2 > 0:
                        ws2 += b2 * w2
                        ww2 += w2
            if ww1 == 0 or ww2 == 0:
                continue
            A[j, i] = ws1 / ww1
            W[j, i] = ww1
            A[i, j] = ws2 / ww2
            W[i, j] = ww2
    deltas = solve_sky_deltas(A, W)
    offsets = [math.nan] * n
    for e, idx in enumerate(groups):
        for k in idx:
            offsets[k] = deltas[e] / conv[k] if math.isfinite(deltas[e]) else math.nan
    return offsets, deltas


# --------------------------------------------------------------------------------------------
# User-provided skies
# --------------------------------------------------------------------------------------------

def read_skyfile(path):
    """Parse an AstroDrizzle skyfile: ``({name: [values]}, applied)``.  ``applied`` is True
    when a ``#`` comment line containing ``applied`` says yes/true/y/t after ``=`` or ``:``."""
    values: dict = {}
    applied = False
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if line[:1] == "#" and "applied" in line:
                sep = ":" if ":" in line else ("=" if "=" in line else None)
                if sep is not None:
                    flag = line.split(sep)[1].strip().lower()
                    if flag in ("yes", "true", "y", "t"):
                        applied = True
            if not line.strip() or line[:1] == "#":
                continue
            parts = line.split()
            try:
                vals = [float(v) for v in parts[1:]]
            except ValueError:
                raise ValueError(f"{path}, line {lineno}: sky values must be numbers: "
                                 f"{line.strip()!r}") from None
            if not vals:
                raise ValueError(f"{path}, line {lineno}: no sky value for {parts[0]!r}")
            values[parts[0]] = vals
    return values, applied


def _skyfile_entry(values: dict, chip, base_dir=None):
    path = os.path.abspath(chip.path)
    base = os.path.basename(path)
    for name, vals in values.items():
        if name == chip.path:
            return vals
        cand = name if os.path.isabs(name) else os.path.join(base_dir or os.getcwd(), name)
        if os.path.abspath(cand) == path:
            return vals
    for name, vals in values.items():
        if os.path.dirname(name) == "" and name == base:
            return vals
    return None


def _header_sky(chip):
    """The input's existing MDRIZSKY (0 when absent) and whether drizzlepac would subtract it."""
    v = getattr(chip, "mdrizsky", None)
    return (0.0, False) if v is None else (float(v), True)


def _read_keyword(chip, keyword):
    from dazzle.io import InputError

    hdr = chip.header("sci")
    if keyword not in hdr:
        raise InputError(f"{chip.label}: skyuser keyword {keyword!r} not found in the "
                         "SCI header", path=chip.path, ext=chip.sci_ext)
    raw = hdr[keyword]
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise InputError(f"{chip.label}: skyuser keyword {keyword}={raw!r} is not a number",
                         path=chip.path, ext=chip.sci_ext) from None


def _from_skyfile(chips, path, *, apply_sky):
    values, applied = read_skyfile(path)
    if apply_sky is not None:
        applied = False       # skyuser='@file': the "applied" comment is not looked at
    base_dir = None
    out = []
    for c in chips:
        vals = _skyfile_entry(values, c, base_dir)
        if vals is None:
            warnings.warn(f"skyfile {path}: no sky value for {c.path}; keeping its MDRIZSKY "
                          "(0 when absent), as AstroDrizzle", UserWarning, stacklevel=3)
            v, sub = _header_sky(c)
            out.append(ChipSky(v, sub, "header"))
            continue
        if len(vals) == 1:
            v = vals[0]
        else:
            if c.extver - 1 >= len(vals):
                raise ValueError(f"skyfile {path}: {len(vals)} sky values for {c.path}, "
                                 f"but it has a chip with EXTVER {c.extver}")
            v = vals[c.extver - 1]
        out.append(ChipSky(float(v), not applied, "skyfile"))
    return out


def user_skies(chips, settings: SkySettings):
    """The skies that need no pixels: a skyfile, a header keyword, or nothing subtracted (see
    the module notes).

    Parameters
    ----------
    chips : list of dazzle.io.Chip
    settings : SkySettings

    Returns
    -------
    list of ChipSky or None
        None when the skies must be computed from the pixels (``settings.needs_pixels``).
    """
    if settings.skysub:
        if settings.skyfile:
            return _from_skyfile(chips, settings.skyfile, apply_sky=None)
        return None
    kwd = settings.skyuser
    if not kwd:
        return [ChipSky(_header_sky(c)[0], False, "header") for c in chips]
    if kwd.startswith("@"):
        return _from_skyfile(chips, kwd[1:], apply_sky=False)
    if kwd.upper() == "MDRIZSKY":
        return [ChipSky(*_header_sky(c), "header") for c in chips]
    return [ChipSky(_read_keyword(c, kwd), False, "skyuser") for c in chips]


# --------------------------------------------------------------------------------------------
# The whole step
# --------------------------------------------------------------------------------------------

def _static_for(static_masks, k, chip):
    if static_masks is None:
        return None
    if isinstance(static_masks, Mapping):
        from dazzle.steps.static_mask import mask_key

        return static_masks.get(mask_key(chip))
    return static_masks[k]


def compute_skies(chips, datas, static_masks, settings: SkySettings, *, user_masks=None,
                  stepsize=10) -> list[ChipSky]:
    """AstroDrizzle's sky step for ``chips``, all at once.

    Parameters
    ----------
    chips : list of dazzle.io.Chip
    datas : list of dazzle.io.ChipData or None
        Per chip its pixels (None, or a None entry: read with ``chip.load()``).
    static_masks : list, dict or None
        Per chip (aligned with ``chips``) or per :func:`dazzle.steps.static_mask.mask_key` the
        static mask (True = good); None: no static mask.
    settings : SkySettings
        The step's settings.
    user_masks : list of 2-D bool arrays, optional
        Per chip, True = use; ANDed into the sky mask.
    stepsize : int
        Grid step of the pixel maps that find the overlaps (``match``).

    Returns
    -------
    list of ChipSky
        One per chip.
    """
    if settings.skymask_cat:
        raise NotImplementedError("skymask_cat (user sky masks from a catalog) is not supported "
                                  "by dazzle; pass user_masks to compute_skies instead")
    user = user_skies(chips, settings)
    if user is not None:
        return user
    method = settings.skymethod
    stat_kw = settings.stat_kwargs()
    sky_bits, use_static = settings.sky_bits, settings.use_static
    n = len(chips)
    groups = exposure_groups(chips)

    if "match" in method and len(groups) < 2:
        warnings.warn(f"skymethod={method} needs at least 2 exposures; as AstroDrizzle, the "
                      "skies are left at the inputs' MDRIZSKY (0 when absent)", UserWarning,
                      stacklevel=2)
        return [ChipSky(*_header_sky(c), "header") for c in chips]

    def data_of(k):
        d = None if datas is None else datas[k]
        return chips[k].load() if d is None else d

    scis, masks, stats = [], [], []
    for k, c in enumerate(chips):
        d = data_of(k)
        sci = getattr(d, "sci", d)
        dq = getattr(d, "dq", None)
        m = sky_pixel_mask(dq, sky_bits, _static_for(static_masks, k, c), use_static, sci)
        if user_masks is not None and user_masks[k] is not None:
            um = np.asarray(user_masks[k], dtype=bool)
            m = um.copy() if m is None else (m & um)
        stats.append(_chip_stat(sci, m, stat_kw)[0])
        if "match" in method:
            scis.append(sci)
            masks.append(m)
    conv = [brightness_factor(c) for c in chips]

    if method in ("localmin", "globalmin"):
        vals = exposure_skies(chips, stats, skymethod=method, factors=conv)
        return [ChipSky(float(v), True, "computed") for v in vals]

    offsets, _ = match_skies(chips, scis, masks, stepsize=stepsize, factors=conv, **stat_kw)
    if method == "match":
        out = []
        for k, c in enumerate(chips):
            if math.isfinite(offsets[k]):
                out.append(ChipSky(float(offsets[k]), True, "computed"))
            else:
                out.append(ChipSky(*_header_sky(c), "header"))
        return out
    # globalmin+match: the global minimum of the matched skies, added to every offset
    d = [o if math.isfinite(o) else 0.0 for o in offsets]
    cand = [conv[k] * (stats[k] - d[k]) for k in range(n) if math.isfinite(stats[k])]
    minsky = min(cand) if cand else 0.0
    return [ChipSky(float(d[k] + minsky / conv[k]), True, "computed") for k in range(n)]


# --------------------------------------------------------------------------------------------
# The step in two layers, for a task graph: one statistic per chip, then the combination
# --------------------------------------------------------------------------------------------

def chip_sky_stat(data, static_mask, settings: SkySettings) -> float:
    """The sky statistic of one chip: the per-chip half of :func:`compute_skies` for
    ``localmin``/``globalmin``.

    Parameters
    ----------
    data : dazzle.io.ChipData
        The chip's pixels (``resetbits`` cleared).
    static_mask : 2-D bool array or None
        True = good (used when ``settings.use_static``).
    settings : SkySettings

    Returns
    -------
    float
        Chip units; NaN when no pixel is usable.
    """
    return chip_sky_stats([data], [static_mask], settings)[0]


def chip_sky_stats(datas, static_masks, settings: SkySettings) -> list:
    """:func:`chip_sky_stat` of several chips (one task's), the same numbers: their statistics
    are computed together (:func:`sky_statistic_many`, two chips at a time: 1.4x on WFC
    chips).

    Parameters
    ----------
    datas : sequence of dazzle.io.ChipData
        The chips' pixels (``resetbits`` cleared).
    static_masks : sequence of (2-D bool array or None)
        Per chip, True = good (used when ``settings.use_static``).
    settings : SkySettings

    Returns
    -------
    list of float
        Per chip, chip units; NaN when no pixel is usable.
    """
    values = []
    for data, static_mask in zip(datas, static_masks):
        # (no sci: finite_values leaves the non-finite pixels out itself)
        m = sky_pixel_mask(data.dq, settings.sky_bits, static_mask, settings.use_static)
        values.append(_chip_values(data.sci, m))
    return [float(v) for v, _ in sky_statistic_many(values, **settings.stat_kwargs())]


def skies_from_stats(chips, stats, settings: SkySettings) -> list[ChipSky]:
    """The other half of :func:`compute_skies` for ``localmin``/``globalmin``: every chip's
    sky from the chips' statistics.

    Parameters
    ----------
    chips : list of dazzle.io.Chip
    stats : list of float
        Per chip :func:`chip_sky_stat` (NaN = none).
    settings : SkySettings

    Returns
    -------
    list of ChipSky
    """
    vals = exposure_skies(chips, stats, skymethod=settings.skymethod)
    return [ChipSky(float(v), True, "computed") for v in vals]
