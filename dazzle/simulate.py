"""Simulated dithered HST exposures with known truth, readable by dazzle *and* AstroDrizzle.

:func:`simulate` writes ``<root>_flt.fits`` files shaped like calibrated HST ACS exposures (a
header-only PRIMARY, then ``SCI,n`` / ``ERR,n`` / ``DQ,n`` per chip, counts in electrons), plus
truth tables: the stars' sky positions and fluxes, their expected pixel positions and counts in
every exposure, and the cosmic-ray charge deposited in every chip.  The real AstroDrizzle
(drizzlepac 3.11, ``updatewcs=False``) runs end-to-end on them with no reference files.

Geometry
--------
* **Distortion**: the real TAN-SIP solution of HST ACS/HRC exposure ``j8bt06nyq`` (IDCTAB
  ``n721640fj``): its ``CD`` matrix, its 4th-order ``A_p_q``/``B_p_q`` coefficients, ``CRPIX``
  (512, 512), ``IDCSCALE`` = 0.025 and the linear IDC terms ``OCX10/OCX11/OCY10/OCY11`` are read
  from extension 1 of ``dazzle/data/j8bt06nyq_sip_flt.fits`` (a header-only file from the public
  test data of the ``drizzle`` package; see ``dazzle/data/README.md``).  ``PA_V3`` is taken from
  its primary header.  Pixels are about 0.028" x 0.025" and skewed; the on-sky pixel area
  varies by about +-2 % over the full chip (``area_ratio`` below: 0.872 .. 0.906).
* **Cropping** (``size`` < 1024): the chip is a centred sub-window of the 1024 x 1024 detector.
  SIP is defined relative to ``CRPIX``, so cropping only shifts ``CRPIX`` by the crop offset
  ``(x0, y0)`` and records it as ``LTV1 = -x0``, ``LTV2 = -y0`` (the HST subarray convention);
  a pixel of the crop sees exactly the sky the same detector pixel of the full chip sees.
* **Larger chips** (up to 2048 x 4096, ACS/WFC's size, for benchmarks): along an axis longer
  than 1024 the SIP distortion is stretched over the chip (coefficients and CRPIX rescaled, CD
  unchanged: the pixel scale and pixel-area ratios stay those of the HRC chip).
* **Dithers**: exposure ``k`` gets a deterministic offset ``(dx, dy)`` in pixels (default: a
  4-point box of ~5 px with half-pixel steps, ``(0,0) (5.5,1) (1,5.5) (6.5,6.5)``, repeated with a
  ``(2.25, 3.75)`` shift per further cycle of 4).  Its ``CRVAL`` is the sky position (full
  distorted WCS) of pixel ``CRPIX + (dx, dy)`` of the undithered pointing; ``CD`` and SIP are
  unchanged, so a source moves by about ``-(dx, dy)`` pixels.
* **Two chips** (``chips=2``, written as ACS ``DETECTOR='WFC'``): chip 2 is a copy of chip 1
  (same crop, same ``CRPIX``, ``CD`` and SIP coefficients, i.e. the same distortion pattern about
  its own centre) placed ``ny + chip_gap`` pixels above chip 1: its ``CRVAL`` is the sky
  position of chip 1's *undistorted* (CD-only) pixel ``CRPIX + (0, ny + chip_gap)``.  Each chip
  therefore has its own tangent point, as real multi-chip HST FLT files do.  Giving chip 2 the
  same ``CRVAL`` with ``CRPIX2`` shifted by ``ny + gap`` instead would evaluate chip 1's SIP
  polynomial far outside the region it was fitted on (tens of pixels of extrapolated
  distortion at the far edge), so that was not done.  ``CCDCHIP`` = ``EXTVER`` = 1, 2.

Header keywords and the output frame AstroDrizzle builds
--------------------------------------------------------
Primary: ``TELESCOP='HST'``, ``INSTRUME='ACS'``, ``DETECTOR`` ('HRC' for one chip, 'WFC' for
two), ``ROOTNAME``, ``EXPTIME``, ``EXPSTART/EXPEND``, ``DATE-OBS/TIME-OBS``, ``PA_V3``,
``FILTER1/2``, ``CCDAMP`` ('C' for HRC, 'ABCD' for WFC), ``CCDGAIN``, ``ATODGNA..D`` and
``READNSEA..D`` (the used amplifiers carry ``gain`` and ``read_noise``, the others 0, which
drizzlepac ignores in its averages), ``IDCTAB = DGEOFILE = NPOLFILE = D2IMFILE = PFLTFILE =
'N/A'`` (nothing to look up; ``updatewcs=False`` keeps the SIP WCS as written).

Each ``SCI,n``: ``BUNIT='ELECTRONS'`` (counts, not a rate), the TAN-SIP WCS, ``LTV1/2``,
``LTM1_1/LTM2_2``, ``ORIENTAT`` (= ``atan2(CD1_2, CD2_2)``), ``CCDCHIP``, ``NGOODPIX`` (pixels
with ``DQ == 0``), ``MEANDARK`` (0: the data are dark-free apart from the flagged hot pixels),
and of the IDC keywords only ``IDCSCALE``, ``IDCXREF``, ``IDCYREF`` and ``OCX10/OCX11/OCY10/
OCY11``.  ``IDCV2REF``, ``IDCV3REF`` and ``IDCTHETA`` are deliberately **not** written: in
stwcs 1.x ``distortion.utils.make_orthogonal_cd`` (used for the default output frame *and* for
every chip's "natural" scale ``wcslin_pscale``) takes, when ``idcv2ref`` is present, the
orientation from ``PA_V3`` through ``troll()`` at the aperture's V2/V3 reference point (which
for synthetic data need not agree with the CD matrix); without it, it takes the simple path:
scale = ``IDCSCALE`` and orientation = the chip's ``ORIENTAT`` computed from its CD matrix,
``atan2(CD1_2, CD2_2)``.  So, with these headers and no user overrides, AstroDrizzle's output
frame has pixel scale ``IDCSCALE`` (0.025"), a "perfect" CD matrix with the orientation of the
first chip of the first exposure (~15.5 deg), and ``pix_ratio = out_pscale / wcslin_pscale = 1``
for every chip (``wcslin_pscale`` = ``IDCSCALE`` too).  ``IDCSCALE`` must be present: without
it the scale falls back to ``sqrt|det CD|`` (0.0265") and the flux scale of every chip changes
by the pixel-area ratio.  Verified with AstroDrizzle on these files (``tests/test_simulate.py``
checks scale and orientation): output scale 0.025000000" and orientation 15.59264 deg (=
``ORIENTAT`` of the CD matrix); the same files with ``IDCV2REF/IDCV3REF/IDCTHETA`` added give
orientation 15.51192 deg (from ``PA_V3``), and without ``IDCSCALE`` scale 0.026510".

Each ``ERR,n`` (float32, electrons) and ``DQ,n`` (int16) carries the same WCS.

Scene, detector and flux convention
-----------------------------------
* Stars at fixed sky positions (truth RA/Dec), centres drawn uniformly over the chips of the
  undithered pointing with a minimum separation of ``min_separation`` pixels (isolated
  stars), fluxes log-uniform over ``flux_range`` (e-/s).  PSF: a circular Gaussian of
  ``psf_sigma`` detector pixels, integrated exactly over each pixel (products of ``erf``
  differences), centred on the star's pixel position from the full distorted WCS.
* **Flux convention.**  Calibrated HST data are flat-fielded to uniform surface brightness per
  pixel, and AstroDrizzle scales input values by the *constant* ``pix_ratio**2`` (here 1), so a
  drizzled image reproduces a star's flux only if its summed counts in the FLT are::

      counts = F * EXPTIME * area_ratio,   area_ratio = IDCSCALE**2 / A_local

  where ``A_local`` is the on-sky area (arcsec^2) of a detector pixel at the star, from the
  Jacobian of the full distorted WCS (SIP included), and ``IDCSCALE**2`` is the nominal pixel
  area AstroDrizzle uses for the chip (``wcslin_pscale = IDCSCALE``, see above).  That is what
  is rendered (``area_ratio`` is about 0.89 for HRC); a star's aperture flux measured in the
  drizzled image (e-/s) then equals its truth ``flux_eps``.  Sky is uniform per pixel,
  ``sky * EXPTIME`` electrons (also flat-fielded surface brightness).
* Noise: Poisson on the expected electrons (stars + sky + hot-pixel dark), plus Gaussian read
  noise ``read_noise``.  ``ERR`` is the model sigma ``sqrt(expected + read_noise**2)`` (computed
  from the noiseless expectation, without cosmic rays, so it is an unbiased weight).
* Cosmic rays: straight tracks (uniform angle, length 1..15 px, mostly short) with a linear
  charge deposit log-uniform over 50..5000 e- per pixel of path, plus 2-8 % of the charge
  spilled into each of the four side neighbours of every hit pixel.  ``cr_rate`` events per
  pixel per second; the default hits (charge > 0) about 1.5-1.8 % of the pixels in 400 s
  (about 1 % get more than 25 e-).  Truth:
  the deposited charge and its mask (charge > 0).  Cosmic rays use their own random stream, so
  ``cosmic_rays=False`` with the same seed gives the same image minus exactly the CR charge.
* Hot pixels: a fixed (per chip, same in every exposure) fraction ``hot_fraction`` of pixels
  with extra dark current log-uniform over 0.05..2 e-/s, flagged ``DQ = 16`` (ACS "hot pixel").
  ``bad_columns`` dead columns per chip (read noise only), flagged ``DQ = 4`` ("bad detector
  pixel").

Products in ``outdir``
----------------------
``<root>_flt.fits`` per exposure; ``truth_stars.ecsv`` (``id, ra, dec, flux_eps``);
``<root>_stars.ecsv`` (per exposure: ``id, chip, x, y`` (0-based pixel of the star centre),
``counts`` (expected total e-), ``area_ratio``); ``<root>_crtruth.fits`` (per chip
``CRMASK,n`` uint8 and ``CRCHARGE,n`` float32 e-); ``simulation.json`` (all parameters and
derived values).  :meth:`SimulatedSet.load` reads a set back.

Deterministic for a given seed (every random stream is a ``numpy`` ``SeedSequence`` with an
explicit spawn key).  Runtime deps only: numpy, astropy.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.time import Time
from astropy.wcs import FITSFixedWarning

from dazzle.geometry import wcs_from_header

__all__ = [
    "DEFAULT_DITHER",
    "FULL_SHAPE",
    "MAX_SHAPE",
    "SimulatedSet",
    "dither_offsets",
    "pixel_area",
    "reference_header",
    "simulate",
]

DATA_DIR = Path(__file__).resolve().parent / "data"
REFERENCE_FILE = "j8bt06nyq_sip_flt.fits"
#: Shape (ny, nx) of the full ACS/HRC chip the SIP solution belongs to.
FULL_SHAPE = (1024, 1024)
#: Largest chip shape (ny, nx): ACS/WFC's; chips larger than FULL_SHAPE stretch its distortion.
MAX_SHAPE = (2048, 4096)
#: Default dither pattern (pixels): a ~5 px box with half-pixel steps.
DEFAULT_DITHER = ((0.0, 0.0), (5.5, 1.0), (1.0, 5.5), (6.5, 6.5))
_DITHER_CYCLE_SHIFT = (2.25, 3.75)

#: DQ flags (ACS conventions).
DQ_BAD_DETECTOR = 4
DQ_HOT = 16

#: IDC keywords copied from the reference header (see the module docstring for why
#: IDCV2REF/IDCV3REF/IDCTHETA are left out).
_IDC_KEYS = ("IDCSCALE", "IDCXREF", "IDCYREF", "OCX10", "OCX11", "OCY10", "OCY11")
_WCS_KEYS = ("CTYPE1", "CTYPE2", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2",
             "CD1_1", "CD1_2", "CD2_1", "CD2_2")

_MJD0 = 52377.5          # start of the first exposure (2002-04-13, as j8bt06nyq)
_OVERHEAD_S = 120.0      # gap between exposures
_SQRT2 = math.sqrt(2.0)
_ARCSEC_PER_RAD = 180.0 * 3600.0 / math.pi
_erf = np.vectorize(math.erf, otypes=[np.float64])

# random streams (first element of the SeedSequence spawn key)
_S_SCENE, _S_DETECTOR, _S_NOISE, _S_CR = 0, 1, 2, 3


# --------------------------------------------------------------------------------------------
# Reference header
# --------------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _reference_cards():
    with fits.open(DATA_DIR / REFERENCE_FILE, memmap=False) as hdul:
        sci, prim = hdul[1].header, hdul[0].header
        cards = [(k, sci[k]) for k in _WCS_KEYS]
        sip = sorted(k for k in sci if (k.startswith("A_") or k.startswith("B_"))
                     and k[2:3].isdigit())
        cards += [("A_ORDER", int(sci["A_ORDER"])), ("B_ORDER", int(sci["B_ORDER"]))]
        cards += [(k, float(sci[k])) for k in sip]
        cards += [(k, float(sci[k])) for k in _IDC_KEYS]
        pa_v3 = float(prim["PA_V3"])
    return tuple(cards), pa_v3


def reference_header():
    """The SCI WCS cards (TAN-SIP, IDC terms) of the real ACS/HRC chip, for the full 1024^2 chip."""
    cards, _ = _reference_cards()
    h = fits.Header()
    h["WCSAXES"] = 2
    for k, v in cards:
        h[k] = v
    return h


def dither_offsets(n, dither=None):
    """``(n, 2)`` array of per-exposure pixel offsets ``(dx, dy)``.

    ``dither=None`` uses :data:`DEFAULT_DITHER`, repeated with a ``(2.25, 3.75)`` px shift per
    further cycle; otherwise ``dither`` is a sequence of at least ``n`` pairs.
    """
    if dither is None:
        p = np.asarray(DEFAULT_DITHER, dtype=np.float64)
        k = np.arange(n)
        return p[k % len(p)] + (k // len(p))[:, None] * np.asarray(_DITHER_CYCLE_SHIFT)
    d = np.asarray(dither, dtype=np.float64).reshape(-1, 2)
    if len(d) < n:
        raise ValueError(f"dither gives {len(d)} offsets for {n} exposures")
    return d[:n].copy()


# --------------------------------------------------------------------------------------------
# WCS helpers
# --------------------------------------------------------------------------------------------

def _crop_origin(shape):
    ny, nx = shape
    return max(0, (FULL_SHAPE[1] - nx) // 2), max(0, (FULL_SHAPE[0] - ny) // 2)


def _stretch_distortion(h, shape):
    """Stretch the reference distortion over a chip larger than the HRC chip (e.g. ACS/WFC's
    2048 x 4096), in place: by ``sx = nx / 1024`` along x and ``sy = ny / 1024`` along y (each
    at least 1).  The SIP displacement field becomes ``(sx f(u / sx, v / sy), sy g(u / sx,
    v / sy))``, i.e. ``A_p_q * sx / (sx**p sy**q)`` and ``B_p_q * sy / (sx**p sy**q)``, and
    CRPIX moves to the same relative place; CD (the pixel scale) is unchanged, so the on-sky
    pixel-area ratios stay those of the HRC chip and the displacements grow by ``sx, sy``."""
    sx, sy = max(1.0, shape[1] / FULL_SHAPE[1]), max(1.0, shape[0] / FULL_SHAPE[0])
    if sx == 1.0 and sy == 1.0:
        return
    for k in list(h.keys()):
        if k[:2] in ("A_", "B_") and k[2:3].isdigit():
            p, q = (int(n) for n in k[2:].split("_"))
            h[k] = float(h[k]) * (sx if k[0] == "A" else sy) / (sx ** p * sy ** q)
    h["CRPIX1"] = (float(h["CRPIX1"]) - 0.5) * sx + 0.5
    h["CRPIX2"] = (float(h["CRPIX2"]) - 0.5) * sy + 0.5


def _chip_header(shape, crval):
    """WCS cards of a (cropped, or for a chip larger than 1024 stretched) chip with the given
    CRVAL."""
    h = reference_header()
    _stretch_distortion(h, shape)
    x0, y0 = _crop_origin(shape)
    h["CRPIX1"] = float(h["CRPIX1"]) - x0
    h["CRPIX2"] = float(h["CRPIX2"]) - y0
    h["CRVAL1"] = float(crval[0])
    h["CRVAL2"] = float(crval[1])
    return h


def _make_wcs(header, shape):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        w = wcs_from_header(header)
    w.pixel_shape = (shape[1], shape[0])
    return w


def _unit(ra, dec):
    a, d = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)], axis=-1)


def _tangent(ra, dec, ra0, dec0):
    """Gnomonic (east, north) offsets in arcsec of (ra, dec) about (ra0, dec0)."""
    q = _unit(np.atleast_1d(ra), np.atleast_1d(dec))
    a, d = math.radians(ra0), math.radians(dec0)
    c = np.array([math.cos(d) * math.cos(a), math.cos(d) * math.sin(a), math.sin(d)])
    e = np.array([-math.sin(a), math.cos(a), 0.0])
    n = np.array([-math.sin(d) * math.cos(a), -math.sin(d) * math.sin(a), math.cos(d)])
    qc = q @ c
    return (q @ e) / qc * _ARCSEC_PER_RAD, (q @ n) / qc * _ARCSEC_PER_RAD


def pixel_area(w, x, y, h=0.5):
    """On-sky area (arcsec^2) of the pixels centred at 0-based ``(x, y)`` of WCS ``w``.

    From the Jacobian of the full (distorted) WCS by central differences over +-``h`` pixels,
    in the gnomonic plane tangent at each point.  Vectorised over ``x, y``.
    """
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    y = np.atleast_1d(np.asarray(y, dtype=np.float64))
    px = np.stack([x, x + h, x - h, x, x])
    py = np.stack([y, y, y, y + h, y - h])
    ra, dec = w.all_pix2world(px.ravel(), py.ravel(), 0)
    q = _unit(ra, dec).reshape(5, -1, 3)
    c = q[0]
    a, d = np.radians(ra.reshape(5, -1)[0]), np.radians(dec.reshape(5, -1)[0])
    e = np.stack([-np.sin(a), np.cos(a), np.zeros_like(a)], axis=-1)
    n = np.stack([-np.sin(d) * np.cos(a), -np.sin(d) * np.sin(a), np.cos(d)], axis=-1)
    qc = np.einsum("kij,ij->ki", q, c)
    east = np.einsum("kij,ij->ki", q, e) / qc * _ARCSEC_PER_RAD
    north = np.einsum("kij,ij->ki", q, n) / qc * _ARCSEC_PER_RAD
    j11 = (east[1] - east[2]) / (2 * h)
    j12 = (east[3] - east[4]) / (2 * h)
    j21 = (north[1] - north[2]) / (2 * h)
    j22 = (north[3] - north[4]) / (2 * h)
    return np.abs(j11 * j22 - j12 * j21)


def _world2pix(w, ra, dec, nx, ny, margin):
    """0-based pixel positions of sky points on a chip; NaN for points far off the chip.

    A linear (CD-only) pre-selection keeps the iterative SIP inverse away from points it might
    not converge for.
    """
    ra = np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    x = np.full(ra.shape, np.nan)
    y = np.full(ra.shape, np.nan)
    if ra.size == 0:
        return x, y
    xl, yl = w.wcs_world2pix(ra, dec, 0)
    pad = margin + 60.0  # SIP displacements of this chip are < ~6 px
    near = (xl > -pad) & (xl < nx - 1 + pad) & (yl > -pad) & (yl < ny - 1 + pad)
    if near.any():
        xs, ys = w.all_world2pix(ra[near], dec[near], 0, tolerance=1e-10, maxiter=100,
                                 adaptive=False, detect_divergence=True, quiet=True)
        x[near], y[near] = xs, ys
    return x, y


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------

def _pixel_integrals(centre, lo, n, sigma):
    """Fraction of a unit 1-D Gaussian (centre, sigma) falling in pixels lo..lo+n-1."""
    edges = (np.arange(lo, lo + n + 1, dtype=np.float64) - 0.5 - centre) / (sigma * _SQRT2)
    return 0.5 * np.diff(_erf(edges))


def _add_star(img, x, y, counts, sigma, hw):
    ny, nx = img.shape
    ix, iy = int(math.floor(x + 0.5)), int(math.floor(y + 0.5))
    x_lo, x_hi = max(ix - hw, 0), min(ix + hw + 1, nx)
    y_lo, y_hi = max(iy - hw, 0), min(iy + hw + 1, ny)
    if x_lo >= x_hi or y_lo >= y_hi:
        return
    fx = _pixel_integrals(x, x_lo, x_hi - x_lo, sigma)
    fy = _pixel_integrals(y, y_lo, y_hi - y_lo, sigma)
    img[y_lo:y_hi, x_lo:x_hi] += counts * np.outer(fy, fx)


def _cosmic_rays(rng, shape, exptime, rate, max_length=15.0, mean_extra_length=2.5,
                 deposit=(50.0, 5000.0), spill=(0.02, 0.08), step=0.1):
    """Deposited CR charge (e-) in a chip of ``shape`` during ``exptime`` seconds."""
    ny, nx = shape
    charge = np.zeros(shape, dtype=np.float64)
    n_ev = int(rng.poisson(rate * exptime * nx * ny))
    if n_ev == 0:
        return charge
    x0 = rng.uniform(-0.5, nx - 0.5, n_ev)
    y0 = rng.uniform(-0.5, ny - 0.5, n_ev)
    theta = rng.uniform(0.0, 2.0 * math.pi, n_ev)
    length = 1.0 + np.minimum(rng.exponential(mean_extra_length, n_ev), max_length - 1.0)
    dedl = np.exp(rng.uniform(math.log(deposit[0]), math.log(deposit[1]), n_ev))
    s_frac = rng.uniform(spill[0], spill[1], n_ev)

    nsamp = np.ceil(length / step).astype(np.int64)
    ev = np.repeat(np.arange(n_ev), nsamp)
    first = np.cumsum(nsamp) - nsamp
    j = np.arange(ev.size) - first[ev]
    ds = length[ev] / nsamp[ev]
    s = (j + 0.5) * ds - 0.5 * length[ev]          # track centred on (x0, y0)
    xs = x0[ev] + s * np.cos(theta[ev])
    ys = y0[ev] + s * np.sin(theta[ev])
    q = dedl[ev] * ds
    sf = s_frac[ev]
    ix = np.floor(xs + 0.5).astype(np.int64)
    iy = np.floor(ys + 0.5).astype(np.int64)
    for dx, dy, wgt in ((0, 0, 1.0 - 4.0 * sf), (1, 0, sf), (-1, 0, sf), (0, 1, sf), (0, -1, sf)):
        jx, jy = ix + dx, iy + dy
        ok = (jx >= 0) & (jx < nx) & (jy >= 0) & (jy < ny)
        np.add.at(charge, (jy[ok], jx[ok]), (q * wgt)[ok])
    return charge


# --------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------

@dataclass
class SimulatedSet:
    """What :func:`simulate` wrote, with the truth it was made from.

    ``stars`` is a structured array (``id, ra, dec, flux_eps``); ``star_pixels[k]`` a structured
    array (``id, chip, x, y, counts, area_ratio``) for exposure ``k``, one row per star whose
    centre falls on a chip (``x, y`` 0-based); ``cr_masks[k][c - 1]`` / ``cr_charge[k][c - 1]``
    the truth of exposure ``k``, chip ``c``; ``hot_masks[c - 1]`` the hot-pixel map of chip
    ``c`` (the same in every exposure).
    """

    outdir: Path
    files: list
    roots: list
    truth_stars_path: Path
    star_table_paths: list
    crtruth_paths: list
    params_path: Path
    stars: np.ndarray
    star_pixels: list
    cr_masks: list
    cr_charge: list
    hot_masks: list
    params: dict = field(default_factory=dict)

    @property
    def n_exposures(self):
        return len(self.files)

    @property
    def chips(self):
        return int(self.params["chips"])

    @property
    def idcscale(self):
        return float(self.params["idcscale"])

    @property
    def exptimes(self):
        return list(self.params["exptime"])

    @classmethod
    def load(cls, outdir):
        """Read back a set written by :func:`simulate` (from ``simulation.json`` and the truth
        files)."""
        outdir = Path(outdir)
        params = json.loads((outdir / "simulation.json").read_text())
        roots = list(params["roots"])
        stars = Table.read(outdir / "truth_stars.ecsv").as_array()
        star_pixels, cr_masks, cr_charge = [], [], []
        for r in roots:
            star_pixels.append(Table.read(outdir / f"{r}_stars.ecsv").as_array())
            with fits.open(outdir / f"{r}_crtruth.fits", memmap=False) as h:
                cr_masks.append([h["CRMASK", c].data.astype(bool)
                                 for c in range(1, params["chips"] + 1)])
                cr_charge.append([h["CRCHARGE", c].data.astype(np.float32)
                                  for c in range(1, params["chips"] + 1)])
        hot = []
        with fits.open(outdir / f"{roots[0]}_flt.fits", memmap=False) as h:
            for c in range(1, params["chips"] + 1):
                hot.append((h["DQ", c].data & DQ_HOT) != 0)
        return cls(
            outdir=outdir,
            files=[outdir / f"{r}_flt.fits" for r in roots],
            roots=roots,
            truth_stars_path=outdir / "truth_stars.ecsv",
            star_table_paths=[outdir / f"{r}_stars.ecsv" for r in roots],
            crtruth_paths=[outdir / f"{r}_crtruth.fits" for r in roots],
            params_path=outdir / "simulation.json",
            stars=stars, star_pixels=star_pixels, cr_masks=cr_masks, cr_charge=cr_charge,
            hot_masks=hot, params=params,
        )


# --------------------------------------------------------------------------------------------
# Main entry
# --------------------------------------------------------------------------------------------

def _per_exposure(value, n, name):
    v = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if v.size == 1:
        v = np.full(n, float(v[0]))
    if v.size != n:
        raise ValueError(f"{name}: expected a scalar or {n} values, got {v.size}")
    return v


def _rng(seed, *key):
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=tuple(int(k) for k in key)))


def _place_stars(rng, ref_wcs, shape, n_stars, min_sep_arcsec, flux_range, crval0):
    """Draw star centres on the chips of the reference pointing, greedily enforcing a minimum
    separation; return (ra, dec, flux)."""
    ny, nx = shape
    chips = len(ref_wcs)
    n_cand = max(50 * n_stars, 200)
    chip = rng.integers(0, chips, n_cand)
    xc = rng.uniform(-0.5, nx - 0.5, n_cand)
    yc = rng.uniform(-0.5, ny - 0.5, n_cand)
    ra = np.empty(n_cand)
    dec = np.empty(n_cand)
    for c, w in enumerate(ref_wcs):
        m = chip == c
        if m.any():
            ra[m], dec[m] = w.all_pix2world(xc[m], yc[m], 0)
    e, n = _tangent(ra, dec, crval0[0], crval0[1])
    keep = []
    ke, kn = np.empty(n_stars), np.empty(n_stars)
    for i in range(n_cand):
        if len(keep) == n_stars:
            break
        k = len(keep)
        if k and np.min((ke[:k] - e[i]) ** 2 + (kn[:k] - n[i]) ** 2) < min_sep_arcsec ** 2:
            continue
        ke[k], kn[k] = e[i], n[i]
        keep.append(i)
    if len(keep) < n_stars:
        raise ValueError(f"could place only {len(keep)} of {n_stars} stars with a minimum "
                         f"separation of {min_sep_arcsec:.3f} arcsec; lower n_stars or "
                         "min_separation")
    keep = np.asarray(keep)
    lo, hi = math.log(flux_range[0]), math.log(flux_range[1])
    flux = np.exp(rng.uniform(lo, hi, n_stars))
    return ra[keep], dec[keep], flux


@dataclass
class _Setup:
    """The validated parameters of one :func:`simulate` call, and what follows from them."""

    shape: tuple
    n_exposures: int
    chips: int
    seed: int
    n_stars: int
    flux_range: tuple
    min_separation: float
    psf_sigma: float
    skies: np.ndarray
    exptimes: np.ndarray
    read_noise: float
    gain: float
    noise: bool
    cosmic_rays: bool
    cr_rate: float
    hot_pixels: bool
    hot_fraction: float
    bad_columns: int
    offsets: np.ndarray
    chip_gap: float
    crval: tuple
    rootname: str
    filter1: str
    idcscale: float
    pa_v3: float

    @property
    def roots(self):
        return [f"{self.rootname}{k + 1:02d}" for k in range(self.n_exposures)]

    @property
    def detector(self):
        return "HRC" if self.chips == 1 else "WFC"

    @property
    def amps(self):
        return "C" if self.chips == 1 else "ABCD"

    @property
    def star_halfwidth(self):
        return int(math.ceil(6.0 * self.psf_sigma)) + 1


def _setup(n_exposures, chips, size, seed, n_stars, flux_range, min_separation, psf_sigma, sky,
           exptime, read_noise, gain, noise, cosmic_rays, cr_rate, hot_pixels, hot_fraction,
           bad_columns, dither, chip_gap, crval, rootname, filter1) -> _Setup:
    """Check the parameters and derive the rest (shape, per-exposure values, dithers, the
    reference header's scale and PA_V3)."""
    if chips not in (1, 2):
        raise ValueError("chips must be 1 or 2")
    n_exposures = int(n_exposures)
    if n_exposures < 1:
        raise ValueError("n_exposures must be >= 1")
    if size is None:
        shape = FULL_SHAPE
    elif np.ndim(size) == 0:
        shape = (int(size), int(size))
    else:
        shape = (int(size[0]), int(size[1]))
    ny, nx = shape
    if not (8 <= ny <= MAX_SHAPE[0] and 8 <= nx <= MAX_SHAPE[1]):
        raise ValueError(f"size must be between 8 and {MAX_SHAPE} pixels (ny, nx), got {shape}")
    if n_stars is None:
        n_stars = max(5, int(round(150 * nx * ny / (FULL_SHAPE[0] * FULL_SHAPE[1]) * chips)))
    exptimes = _per_exposure(exptime, n_exposures, "exptime")
    skies = _per_exposure(sky, n_exposures, "sky")
    if np.any(exptimes <= 0):
        raise ValueError("exptime must be > 0")
    offsets = dither_offsets(n_exposures, dither)
    _, pa_v3 = _reference_cards()
    ref = reference_header()
    if crval is None:
        crval = (float(ref["CRVAL1"]), float(ref["CRVAL2"]))
    return _Setup(shape=shape, n_exposures=n_exposures, chips=chips, seed=int(seed), n_stars=int(n_stars),
                  flux_range=flux_range, min_separation=min_separation, psf_sigma=psf_sigma, skies=skies,
                  exptimes=exptimes, read_noise=read_noise, gain=gain, noise=noise, cosmic_rays=cosmic_rays,
                  cr_rate=cr_rate, hot_pixels=hot_pixels, hot_fraction=hot_fraction, bad_columns=bad_columns,
                  offsets=offsets, chip_gap=chip_gap, crval=(float(crval[0]), float(crval[1])),
                  rootname=rootname, filter1=filter1, idcscale=float(ref["IDCSCALE"]), pa_v3=pa_v3)


# -- stage 1: pointing ------------------------------------------------------------------------

def _reference_pointing(s: _Setup):
    """The undithered pointing: chip 1 at ``crval``, chip 2 above it; (WCS per chip, CRPIX)."""
    ny = s.shape[0]
    ref_wcs = [_make_wcs(_chip_header(s.shape, s.crval), s.shape)]
    crpix = np.array([ref_wcs[0].wcs.crpix[0], ref_wcs[0].wcs.crpix[1]])  # 1-based
    for c in range(2, s.chips + 1):
        ra2, dec2 = ref_wcs[0].wcs_pix2world([crpix[0]], [crpix[1] + (c - 1) * (ny + s.chip_gap)], 1)
        ref_wcs.append(_make_wcs(_chip_header(s.shape, (float(ra2[0]), float(dec2[0]))), s.shape))
    return ref_wcs, crpix


def _dithered_chip(s: _Setup, ref_wcs, crpix, k, c):
    """Chip ``c`` of exposure ``k``: CRVAL = sky position of CRPIX + the dither offset in the
    undithered chip; returns (WCS header, WCS, metadata)."""
    rk, dk = ref_wcs[c - 1].all_pix2world([crpix[0] + s.offsets[k, 0]], [crpix[1] + s.offsets[k, 1]], 1)
    wh = _chip_header(s.shape, (float(rk[0]), float(dk[0])))
    meta = {"chip": c, "crval": [float(rk[0]), float(dk[0])], "crpix": [float(wh["CRPIX1"]), float(wh["CRPIX2"])]}
    return wh, _make_wcs(wh, s.shape), meta


# -- stage 2: sky and stars -------------------------------------------------------------------

def _scene(s: _Setup, ref_wcs) -> np.ndarray:
    """The stars (``id, ra, dec, flux_eps``) at fixed sky positions."""
    nominal_scale = math.sqrt(abs(np.linalg.det(ref_wcs[0].wcs.cd))) * 3600.0
    ra, dec, flux = _place_stars(_rng(s.seed, _S_SCENE), ref_wcs, s.shape, s.n_stars,
                                 s.min_separation * nominal_scale, s.flux_range, s.crval)
    stars = np.zeros(len(ra), dtype=[("id", "i4"), ("ra", "f8"), ("dec", "f8"), ("flux_eps", "f8")])
    stars["id"] = np.arange(1, len(ra) + 1)
    stars["ra"], stars["dec"], stars["flux_eps"] = ra, dec, flux
    return stars


def _sky_and_stars(s: _Setup, stars, w, c, sky_e, t):
    """The expected electrons of one chip from the sky and the stars; and the rows
    ``(id, chip, x, y, counts, area_ratio)`` of the stars centred on it."""
    ny, nx = s.shape
    hw = s.star_halfwidth
    model = np.full(s.shape, sky_e * t, dtype=np.float64)
    rows = []
    sx, sy = _world2pix(w, stars["ra"], stars["dec"], nx, ny, margin=hw + 1)
    vis = np.isfinite(sx) & (sx > -hw - 1) & (sx < nx + hw) & (sy > -hw - 1) & (sy < ny + hw)
    idx = np.nonzero(vis)[0]
    if idx.size:
        ratio = s.idcscale ** 2 / pixel_area(w, sx[idx], sy[idx])
        counts = stars["flux_eps"][idx] * t * ratio
        for i, j in enumerate(idx):
            _add_star(model, sx[j], sy[j], counts[i], s.psf_sigma, hw)
        on = (sx[idx] >= -0.5) & (sx[idx] < nx - 0.5) & (sy[idx] >= -0.5) & (sy[idx] < ny - 0.5)
        for i in np.nonzero(on)[0]:
            j = idx[i]
            rows.append((int(stars["id"][j]), c, float(sx[j]), float(sy[j]), float(counts[i]), float(ratio[i])))
    return model, rows


# -- stage 3: detector ------------------------------------------------------------------------

@dataclass
class _Defects:
    """One chip's fixed defects (the same in every exposure)."""

    hot_rate: np.ndarray      # extra dark current, e-/s
    dq: np.ndarray            # DQ flags (hot pixels, dead columns)
    dead_columns: list


def _defects(s: _Setup, c) -> _Defects:
    ny, nx = s.shape
    rng = _rng(s.seed, _S_DETECTOR, c)
    rate = np.zeros(s.shape)
    dq = np.zeros(s.shape, dtype=np.int16)
    cols = []
    if s.hot_pixels:
        n_hot = int(round(s.hot_fraction * nx * ny))
        idx = rng.choice(nx * ny, size=n_hot, replace=False)
        rate.flat[idx] = np.exp(rng.uniform(math.log(0.05), math.log(2.0), n_hot))
        dq.flat[idx] |= DQ_HOT
    rng_cols = _rng(s.seed, _S_DETECTOR, c, 1)
    for _ in range(int(s.bad_columns)):
        col = int(rng_cols.integers(nx // 8, max(nx // 8 + 1, nx - nx // 8)))
        cols.append(col)
        dq[:, col] |= DQ_BAD_DETECTOR
    return _Defects(rate, dq, cols)


def _read_out(s: _Setup, model, defects: _Defects, k, c, t):
    """The detector: dark current of the hot pixels, dead columns, Poisson and read noise.
    Returns (data, expected electrons) -- ERR is computed from the latter."""
    model = model + defects.hot_rate * t
    for col in defects.dead_columns:
        model[:, col] = 0.0
    if not s.noise:
        return model.copy(), model
    rng = _rng(s.seed, _S_NOISE, k, c)
    data = rng.poisson(model).astype(np.float64)
    data += rng.normal(0.0, s.read_noise, s.shape)
    return data, model


# -- stage 4: cosmic rays ---------------------------------------------------------------------

def _cosmic_ray_charge(s: _Setup, k, c, t):
    """The cosmic-ray charge (e-) of chip ``c`` in exposure ``k`` (its own random stream, so
    ``cosmic_rays=False`` changes nothing else)."""
    if not s.cosmic_rays:
        return np.zeros(s.shape)
    return _cosmic_rays(_rng(s.seed, _S_CR, k, c), s.shape, t, s.cr_rate)


# -- stage 5: writing -------------------------------------------------------------------------

def _primary_header(s: _Setup, k, root, t, expstart, expend):
    iso = Time(expstart, format="mjd", scale="utc").isot
    prim = fits.Header()
    for key, value in (
            ("TELESCOP", ("HST", "telescope used to acquire data")),
            ("INSTRUME", ("ACS", "identifier for instrument used to acquire data")),
            ("DETECTOR", (s.detector, "detector in use: WFC, HRC, or SBC")),
            ("ROOTNAME", (root, "rootname of the observation set")),
            ("FILENAME", (f"{root}_flt.fits", "name of file")),
            ("FILETYPE", ("SCI", "type of data found in data file")),
            ("ORIGIN", ("dazzle.simulate", "synthetic data, not an observation")),
            ("NEXTEND", (3 * s.chips, "number of standard extensions")),
            ("OBSTYPE", ("IMAGING", "observation type")),
            ("APERTURE", (s.detector, "aperture name")),
            ("SUBARRAY", (bool(s.shape[0] < FULL_SHAPE[0] or s.shape[1] < FULL_SHAPE[1]),
                          "data from a subarray (cropped chip)")),
            ("DATE-OBS", (iso[:10], "UT date of start of observation (yyyy-mm-dd)")),
            ("TIME-OBS", (iso[11:19], "UT time of start of observation (hh:mm:ss)")),
            ("EXPSTART", (expstart, "exposure start time (Modified Julian Date)")),
            ("EXPEND", (expend, "exposure end time (Modified Julian Date)")),
            ("EXPTIME", (t, "exposure duration (seconds)")),
            ("RA_TARG", (s.crval[0], "right ascension of the target (deg) (J2000)")),
            ("DEC_TARG", (s.crval[1], "declination of the target (deg) (J2000)")),
            ("PA_V3", (s.pa_v3, "position angle of V3-axis of HST (deg)")),
            ("FILTER1", (s.filter1, "element selected from filter wheel 1")),
            ("FILTER2", ("CLEAR2S" if s.chips == 1 else "CLEAR2L", "element selected from filter wheel 2")),
            ("CCDAMP", (s.amps, "CCD Amplifier Readout Configuration")),
            ("CCDGAIN", (int(round(s.gain)), "commanded gain of CCD"))):
        prim[key] = value
    for a in "ABCD":
        prim[f"ATODGN{a}"] = (float(s.gain) if a in s.amps else 0.0, f"calibrated gain for amplifier {a}")
    for a in "ABCD":
        prim[f"READNSE{a}"] = (float(s.read_noise) if a in s.amps else 0.0, f"calibrated read noise for amplifier {a}")
    for key in ("IDCTAB", "DGEOFILE", "NPOLFILE", "D2IMFILE", "PFLTFILE"):
        prim[key] = "N/A"
    prim["DZSEED"] = (int(s.seed), "dazzle.simulate random seed")
    prim["DZDITHX"] = (float(s.offsets[k, 0]), "dither offset x (pixels)")
    prim["DZDITHY"] = (float(s.offsets[k, 1]), "dither offset y (pixels)")
    prim["DZSKY"] = (float(s.skies[k]), "simulated sky (e-/s/pixel)")
    return prim


def _chip_hdus(s: _Setup, root, c, wh, data, err, dq):
    """SCI, ERR and DQ of one chip, with the WCS and HST keywords."""
    sci_h = fits.Header()
    sci_h["INHERIT"] = (True, "inherit the primary header")
    sci_h["EXPNAME"] = (root, "exposure identifier")
    sci_h["BUNIT"] = ("ELECTRONS", "brightness units")
    wcs_h = fits.Header()
    for card in wh.cards:
        wcs_h.append(card)
    wcs_h["WCSNAME"] = "IDC_n721640fj"
    wcs_h["LTV1"] = (float(-_crop_origin(s.shape)[0]), "offset in X to subsection start")
    wcs_h["LTV2"] = (float(-_crop_origin(s.shape)[1]), "offset in Y to subsection start")
    wcs_h["LTM1_1"] = (1.0, "reciprocal of sampling rate in X")
    wcs_h["LTM2_2"] = (1.0, "reciprocal of sampling rate in Y")
    wcs_h["ORIENTAT"] = (math.degrees(math.atan2(wh["CD1_2"], wh["CD2_2"])),
                         "position angle of image y axis (deg. e of n)")
    wcs_h["CCDCHIP"] = (c, "CCD chip (1 or 2)")
    sci_h.extend(wcs_h)
    sci_h["NGOODPIX"] = (int(np.count_nonzero(dq == 0)), "number of good pixels")
    sci_h["MEANDARK"] = (0.0, "average of the dark values subtracted")
    err_h = fits.Header()
    err_h["INHERIT"] = True
    err_h["BUNIT"] = "ELECTRONS"
    err_h.extend(wcs_h)
    dq_h = fits.Header()
    dq_h["INHERIT"] = True
    dq_h["BUNIT"] = "UNITLESS"
    dq_h.extend(wcs_h)
    return [fits.ImageHDU(data.astype(np.float32), header=sci_h, name="SCI", ver=c),
            fits.ImageHDU(err.astype(np.float32), header=err_h, name="ERR", ver=c),
            fits.ImageHDU(dq, header=dq_h, name="DQ", ver=c)]


def _write_star_table(outdir, root, rows, t):
    spix = np.array(rows, dtype=[("id", "i4"), ("chip", "i2"), ("x", "f8"), ("y", "f8"),
                                 ("counts", "f8"), ("area_ratio", "f8")])
    tab = Table(spix)
    tab.meta["comment"] = ["x, y: 0-based pixel position of the star centre",
                           "counts: expected total e- = flux_eps * EXPTIME * area_ratio",
                           "area_ratio: IDCSCALE**2 / on-sky pixel area at the star"]
    tab.meta["exptime"] = t
    path = outdir / f"{root}_stars.ecsv"
    tab.write(path, overwrite=True)
    return spix, path


def _write_crtruth(outdir, root, masks, charges):
    hdus = [fits.PrimaryHDU()]
    hdus[0].header["ROOTNAME"] = root
    hdus[0].header["COMMENT"] = "CRMASK: 1 where cosmic-ray charge > 0; CRCHARGE: e-"
    for c, (m, q) in enumerate(zip(masks, charges), start=1):
        hdus.append(fits.ImageHDU(m.astype(np.uint8), name="CRMASK", ver=c))
        hdus.append(fits.ImageHDU(q, name="CRCHARGE", ver=c))
    path = outdir / f"{root}_crtruth.fits"
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def _write_truth(outdir, s: _Setup, stars):
    truth = Table(stars)
    truth["flux_eps"].unit = "electron / s"
    truth.meta["comment"] = [
        "Stars of dazzle.simulate: sky positions (deg) and fluxes (e-/s).",
        "A star's flux measured in an image drizzled at IDCSCALE (AstroDrizzle default) "
        "equals flux_eps.",
    ]
    truth.meta["seed"] = int(s.seed)
    truth.meta["idcscale"] = s.idcscale
    path = outdir / "truth_stars.ecsv"
    truth.write(path, overwrite=True)
    return path


def _params_doc(s: _Setup, dead_cols, exposure_meta) -> dict:
    ny, nx = s.shape
    return {
        "generator": "dazzle.simulate",
        "n_exposures": s.n_exposures, "chips": s.chips, "shape": [ny, nx], "seed": int(s.seed),
        "n_stars": int(s.n_stars), "flux_range": [float(v) for v in s.flux_range],
        "min_separation": float(s.min_separation), "psf_sigma": float(s.psf_sigma),
        "sky": [float(v) for v in s.skies], "exptime": [float(v) for v in s.exptimes],
        "read_noise": float(s.read_noise), "gain": float(s.gain), "noise": bool(s.noise),
        "cosmic_rays": bool(s.cosmic_rays), "cr_rate": float(s.cr_rate),
        "hot_pixels": bool(s.hot_pixels), "hot_fraction": float(s.hot_fraction),
        "bad_columns": int(s.bad_columns), "dead_columns": dead_cols,
        "dither": [[float(a), float(b)] for a, b in s.offsets], "chip_gap": float(s.chip_gap),
        "crval": list(s.crval), "crop_origin": list(_crop_origin(s.shape)),
        "rootname": s.rootname, "roots": s.roots, "filter1": s.filter1,
        "detector": s.detector, "idcscale": s.idcscale, "pa_v3": s.pa_v3,
        "reference_header": f"dazzle/data/{REFERENCE_FILE} [SCI,1] (HST ACS/HRC j8bt06nyq, "
                            "IDCTAB n721640fj)",
        "flux_convention": "FLT counts of a star = flux_eps * EXPTIME * IDCSCALE**2 / "
                           "local pixel area (arcsec^2)",
        "exposures": exposure_meta,
    }


# -- the stages together ----------------------------------------------------------------------

def _expose(s: _Setup, outdir, k, start_mjd, ref_wcs, crpix, stars, defects):
    """Exposure ``k``: every chip through the stages; writes its FLT, star table and CR truth.
    Returns what :class:`SimulatedSet` keeps of it, and its metadata."""
    t, root = float(s.exptimes[k]), s.roots[k]
    expstart, expend = start_mjd, start_mjd + t / 86400.0
    hdus = [fits.PrimaryHDU(header=_primary_header(s, k, root, t, expstart, expend))]
    rows, masks, charges, chip_meta = [], [], [], []
    for c in range(1, s.chips + 1):
        wh, w, meta = _dithered_chip(s, ref_wcs, crpix, k, c)
        chip_meta.append(meta)
        model, star_rows = _sky_and_stars(s, stars, w, c, s.skies[k], t)
        rows += star_rows
        data, expected = _read_out(s, model, defects[c - 1], k, c, t)
        charge = _cosmic_ray_charge(s, k, c, t)
        if s.cosmic_rays:
            data += charge
        err = np.sqrt(expected + s.read_noise ** 2)
        masks.append(charge > 0)
        charges.append(charge.astype(np.float32))
        hdus += _chip_hdus(s, root, c, wh, data, err, defects[c - 1].dq.copy())
    path = outdir / f"{root}_flt.fits"
    fits.HDUList(hdus).writeto(path, overwrite=True)
    spix, star_path = _write_star_table(outdir, root, rows, t)
    cr_path = _write_crtruth(outdir, root, masks, charges)
    meta = {"root": root, "offset": [float(v) for v in s.offsets[k]], "exptime": t, "sky": float(s.skies[k]),
            "expstart": expstart, "chips": chip_meta}
    return (path, spix, star_path, masks, charges, cr_path), meta, expend


def simulate(outdir, *, n_exposures=4, chips=1, size=None, seed=0, n_stars=None,
             flux_range=(30.0, 3000.0), min_separation=20.0, psf_sigma=1.2,
             sky=0.3, exptime=400.0, read_noise=4.7, gain=2.0, noise=True,
             cosmic_rays=True, cr_rate=2.5e-6, hot_pixels=True, hot_fraction=0.002,
             bad_columns=1, dither=None, chip_gap=50, crval=None, rootname="dzsim",
             filter1="F606W"):
    """Write ``n_exposures`` dithered HST-like exposures with known truth into ``outdir``.

    The stages: pointing (the reference chips' WCSs, each exposure's dithered WCS), sky and
    stars (the expected electrons), detector (hot pixels, dead columns, noise), cosmic rays
    (their own random stream), writing (FLT files, truth tables, ``simulation.json``).

    Parameters
    ----------
    outdir : path
        Created if needed; existing files of the same names are overwritten.
    n_exposures : int
        Number of exposures (files ``<rootname>NN_flt.fits``, NN = 01, 02, ...).
    chips : 1 or 2
        Chips per exposure (1: ACS ``DETECTOR='HRC'``; 2: ``'WFC'``).
    size : None, int or (ny, nx)
        Chip shape; a centred crop of the 1024 x 1024 chip (None = full chip).  Up to
        :data:`MAX_SHAPE` (ACS/WFC's 2048 x 4096): a larger axis stretches the distortion
        over the chip (see ``_stretch_distortion``; ``LTV`` is then 0).
    seed : int
        Seed of every random stream.
    n_stars : int, optional
        Number of stars over all chips (default: 150 per 1024^2 chip, pro rata, at least 5).
    flux_range : (float, float)
        Star fluxes are log-uniform over this range (e-/s).
    min_separation : float
        Minimum star separation in (nominal, ~0.0265") pixels.
    psf_sigma : float
        Gaussian PSF sigma, detector pixels.
    sky : float or sequence
        Sky, e-/s per pixel (per exposure if a sequence).
    exptime : float or sequence
        Exposure time(s), s.
    read_noise, gain : float
        Read noise (e-) and the gain written to ``ATODGN*`` (data are in electrons already).
    noise : bool
        False: no Poisson and no read noise (the expected electrons; CRs still added).
    cosmic_rays : bool
        Add cosmic rays (``cr_rate`` events per pixel per second).
    hot_pixels : bool
        Add hot pixels (``hot_fraction`` of the pixels), flagged DQ=16.
    bad_columns : int
        Dead columns per chip, flagged DQ=4.
    dither : sequence of (dx, dy), optional
        Pixel offsets per exposure (default :data:`DEFAULT_DITHER` pattern).
    chip_gap : float
        Gap (pixels) between chip 1 and chip 2.
    crval : (ra, dec), optional
        Sky position of chip 1's reference pixel in the undithered pointing (default: that of
        j8bt06nyq, RA 6.027, Dec -72.084).
    rootname : str
        Prefix of the exposure root names.
    filter1 : str
        ``FILTER1`` of the primary headers.

    Returns
    -------
    SimulatedSet
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    s = _setup(n_exposures, chips, size, seed, n_stars, flux_range, min_separation, psf_sigma, sky,
               exptime, read_noise, gain, noise, cosmic_rays, cr_rate, hot_pixels, hot_fraction,
               bad_columns, dither, chip_gap, crval, rootname, filter1)
    ref_wcs, crpix = _reference_pointing(s)
    stars = _scene(s, ref_wcs)
    defects = [_defects(s, c) for c in range(1, s.chips + 1)]
    made, exposure_meta, mjd = [], [], _MJD0
    for k in range(s.n_exposures):
        got, meta, expend = _expose(s, outdir, k, mjd, ref_wcs, crpix, stars, defects)
        mjd = expend + _OVERHEAD_S / 86400.0
        made.append(got)
        exposure_meta.append(meta)
    files, star_pixels, star_paths, cr_masks, cr_charges, cr_paths = (list(v) for v in zip(*made))
    truth_path = _write_truth(outdir, s, stars)
    params = _params_doc(s, [d.dead_columns for d in defects], exposure_meta)
    params_path = outdir / "simulation.json"
    params_path.write_text(json.dumps(params, indent=1))
    return SimulatedSet(
        outdir=outdir, files=files, roots=s.roots, truth_stars_path=truth_path,
        star_table_paths=star_paths, crtruth_paths=cr_paths, params_path=params_path,
        stars=stars, star_pixels=star_pixels, cr_masks=cr_masks, cr_charge=cr_charges,
        hot_masks=[(d.dq & DQ_HOT) != 0 for d in defects], params=params,
    )
