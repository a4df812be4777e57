"""PNG previews of dazzle products, with no imaging library: numpy, ``zlib`` and ``struct``.

* :func:`png_bytes` / :func:`write_png` -- 8-bit grayscale, RGB or RGBA PNG files.
* :func:`asinh_stretch` -- a robust asinh stretch of an image to 8 bits.  Its limits come from
  percentiles of the finite (and, with ``weight``, covered) pixels; NaN, infinite and
  uncovered pixels are shown at the background (median) level.
* :func:`downsample` -- block averages (or block maxima, for masks) to fit ``max_side``.
* :func:`write_preview_png` -- the final mosaic (``<output>_drz.fits`` SCI, optionally with WHT
  marking uncovered pixels) as an asinh-stretched grayscale PNG.
* :func:`write_chip_crmask_png` -- one input chip in grayscale with its cosmic-ray mask laid
  over it in a colour.

Images are FITS-ordered arrays (row 0 is the *bottom* of the picture, as in ds9); the PNG is
written top row first, so the picture appears the way ds9 shows the FITS file.  The stretch
limits and the downsampling factor are recorded in the PNG as ``tEXt`` chunks.

Cosmic-ray masks use dazzle's convention (as ``RunResult.crmasks`` and the
``*_crmask.fits`` products): True / 1 = good pixel, False / 0 = cosmic ray.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from dataclasses import dataclass

import numpy as np

__all__ = [
    "PNG_SIGNATURE",
    "png_bytes",
    "write_png",
    "Stretch",
    "stretch_limits",
    "asinh_stretch",
    "downsample",
    "preview_png_bytes",
    "write_preview_png",
    "chip_crmask_rgb",
    "chip_crmask_png_bytes",
    "write_chip_crmask_png",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: Default largest side (pixels) of a preview; larger images are block-averaged down.
MAX_SIDE = 1200

#: Default colour of cosmic-ray pixels in the chip overlay (a saturated red-orange).
CR_COLOUR = (255, 64, 32)

#: Default colour of flagged pixels that the input's DQ already marks bad (hot pixels, dead columns).
DQ_COLOUR = (40, 150, 255)

_COLOUR_TYPES = {1: 0, 3: 2, 4: 6}   # channels -> PNG colour type (gray, RGB, RGBA)


# ---------------------------------------------------------------------------------------------
# PNG writing
# ---------------------------------------------------------------------------------------------

def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_bytes(pixels, *, text: dict | None = None, level: int = 6) -> bytes:
    """The PNG file (bytes) of ``pixels``: a uint8 array ``(h, w)`` (grayscale), ``(h, w, 3)``
    (RGB) or ``(h, w, 4)`` (RGBA); row 0 is the top of the picture.  ``text`` adds ``tEXt``
    chunks (Latin-1 keys and values).  Every row uses PNG filter 1 (Sub)."""
    a = np.asarray(pixels)
    if a.dtype != np.uint8:
        raise TypeError(f"png_bytes needs uint8 pixels, got {a.dtype}")
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in _COLOUR_TYPES:
        raise ValueError(f"png_bytes needs an (h, w), (h, w, 3) or (h, w, 4) array, got shape {a.shape}")
    h, w, c = a.shape
    if h < 1 or w < 1:
        raise ValueError(f"cannot write an empty image ({h} x {w})")
    rows = np.ascontiguousarray(a).reshape(h, w * c)
    raw = np.empty((h, 1 + w * c), dtype=np.uint8)
    raw[:, 0] = 1                                   # filter type Sub: byte - byte to its left
    raw[:, 1:1 + c] = rows[:, :c]
    raw[:, 1 + c:] = rows[:, c:] - rows[:, :-c]     # uint8 arithmetic wraps modulo 256
    out = [PNG_SIGNATURE,
           _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, _COLOUR_TYPES[c], 0, 0, 0))]
    for key, value in (text or {}).items():
        out.append(_chunk(b"tEXt", str(key).encode("latin-1", "replace")[:79] + b"\0"
                          + str(value).encode("latin-1", "replace")))
    out.append(_chunk(b"IDAT", zlib.compress(raw.tobytes(), level)))
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)


def _write_atomic(path, data: bytes) -> str:
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return path


def write_png(path, pixels, *, text: dict | None = None) -> str:
    """Write ``pixels`` (see :func:`png_bytes`) to ``path`` (atomically); returns the path."""
    return _write_atomic(path, png_bytes(pixels, text=text))


# ---------------------------------------------------------------------------------------------
# Stretch and downsampling
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stretch:
    """The limits of an asinh stretch (image units): values <= ``lo`` are black, >= ``hi``
    white, ``background`` (the median) is where NaN and uncovered pixels are shown, and
    ``softening`` is the linear-to-logarithmic turnover (``softening_sigma`` x the noise)."""

    lo: float
    hi: float
    background: float
    noise: float
    softening: float

    def as_text(self) -> str:
        return (f"asinh: lo={self.lo:.6g} hi={self.hi:.6g} background={self.background:.6g} "
                f"noise={self.noise:.6g} softening={self.softening:.6g}")


def _valid(image, weight=None):
    x = np.asarray(image, dtype=np.float64)
    ok = np.isfinite(x)
    if weight is not None:
        w = np.asarray(weight)
        if w.shape != x.shape:
            raise ValueError(f"weight shape {w.shape} != image shape {x.shape}")
        ok &= np.isfinite(w) & (w > 0)
    return x, ok


def stretch_limits(image, *, weight=None, lo_percentile: float = 0.5, hi_percentile: float = 99.8,
                   softening_sigma: float = 1.0, max_samples: int = 1_000_000) -> Stretch:
    """Robust limits of :func:`asinh_stretch` from the finite (covered) pixels: ``lo`` and
    ``hi`` are percentiles, the background is their median and the noise 1.4826 x their
    median absolute deviation (at most ``max_samples`` evenly spaced pixels are used)."""
    if not 0.0 <= lo_percentile < hi_percentile <= 100.0:
        raise ValueError("need 0 <= lo_percentile < hi_percentile <= 100")
    x, ok = _valid(image, weight)
    v = x[ok]
    if v.size == 0:
        return Stretch(0.0, 1.0, 0.0, 1.0, 1.0)
    if v.size > max_samples:
        v = v[:: int(math.ceil(v.size / max_samples))]
    lo, med, hi = (float(q) for q in np.percentile(v, [lo_percentile, 50.0, hi_percentile]))
    noise = 1.4826 * float(np.median(np.abs(v - med)))
    if not noise > 0:                       # e.g. a mostly constant image
        noise = (hi - lo) / 100.0 if hi > lo else 1.0
    if not hi > lo:
        hi = lo + 10.0 * noise
    # a pure-noise image: keep at least 10 sigma of range so the noise is not blown up to black/white
    hi = max(hi, med + 10.0 * noise)
    lo = min(lo, med - noise)
    return Stretch(lo, hi, med, noise, max(softening_sigma, 1e-6) * noise)


def asinh_stretch(image, *, weight=None, lo_percentile: float = 0.5, hi_percentile: float = 99.8,
                  softening_sigma: float = 1.0, limits: Stretch | None = None,
                  return_limits: bool = False):
    """An asinh stretch of ``image`` to uint8 (same shape).

    ``y = asinh((x - lo) / s) / asinh((hi - lo) / s)`` clipped to [0, 1], with ``lo``/``hi`` the
    ``lo_percentile``/``hi_percentile`` of the finite pixels and ``s`` = ``softening_sigma`` x the
    robust noise: linear (noise visible) near the sky, logarithmic for bright stars.  NaN and
    infinite pixels, and pixels where ``weight`` <= 0, take the background (median) value.
    With ``return_limits`` returns ``(pixels, Stretch)``.
    """
    lim = limits or stretch_limits(image, weight=weight, lo_percentile=lo_percentile,
                                   hi_percentile=hi_percentile, softening_sigma=softening_sigma)
    x, ok = _valid(image, weight)
    x = np.where(ok, x, lim.background)
    s = lim.softening
    y = np.arcsinh((x - lim.lo) / s) / np.arcsinh((lim.hi - lim.lo) / s)
    out = np.rint(np.clip(y, 0.0, 1.0) * 255.0).astype(np.uint8)
    return (out, lim) if return_limits else out


def _factor(shape, max_side) -> int:
    if max_side is None or max_side <= 0:
        return 1
    return max(1, int(math.ceil(max(shape[:2]) / float(max_side))))


def downsample(image, factor: int, *, how: str = "mean"):
    """Reduce a 2-D array by ``factor`` along both axes: ``"mean"`` averages the finite values
    of each block (NaN where a block has none); ``"max"`` takes the block maximum (for masks:
    a flagged pixel stays visible).  Partial blocks at the edges are kept."""
    a = np.asarray(image)
    factor = int(factor)
    if factor <= 1:
        return a
    ny, nx = a.shape
    py, px = -(-ny // factor) * factor, -(-nx // factor) * factor
    if how == "max":
        pad = np.zeros((py, px), dtype=a.dtype)
        pad[:ny, :nx] = a
        return pad.reshape(py // factor, factor, px // factor, factor).max(axis=(1, 3))
    if how != "mean":
        raise ValueError(f"how must be 'mean' or 'max', got {how!r}")
    pad = np.full((py, px), np.nan)
    pad[:ny, :nx] = a
    blocks = pad.reshape(py // factor, factor, px // factor, factor)
    finite = np.isfinite(blocks)
    n = finite.sum(axis=(1, 3))
    total = np.where(finite, blocks, 0.0).sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def _prepare(image, weight, max_side):
    x = np.asarray(image, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"a preview needs a 2-D image, got shape {x.shape}")
    if weight is not None:
        w = np.asarray(weight)
        if w.shape != x.shape:
            raise ValueError(f"weight shape {w.shape} != image shape {x.shape}")
        x = np.where(np.isfinite(w) & (w > 0), x, np.nan)
    f = _factor(x.shape, max_side)
    return downsample(x, f), f


# ---------------------------------------------------------------------------------------------
# Previews
# ---------------------------------------------------------------------------------------------

def preview_png_bytes(image, *, weight=None, max_side: int | None = MAX_SIDE, origin: str = "lower",
                      title: str | None = None, binned: int = 1, **stretch) -> bytes:
    """PNG bytes of an asinh-stretched grayscale preview of ``image`` (see
    :func:`write_preview_png`).  ``binned``: the caller already block-averaged ``image`` by
    this factor (only recorded in the PNG)."""
    x, f = _prepare(image, weight, max_side)
    pix, lim = asinh_stretch(x, return_limits=True, **stretch)
    if origin == "lower":
        pix = pix[::-1]
    f *= int(binned)
    text = {"Software": "dazzle", "Description": lim.as_text(), "Downsampling": f"{f}x{f} block mean"}
    if title:
        text["Title"] = title
    return png_bytes(pix, text=text)


def write_preview_png(path, image, *, weight=None, max_side: int | None = MAX_SIDE,
                      origin: str = "lower", title: str | None = None, **stretch) -> str:
    """Write an asinh-stretched grayscale PNG of ``image`` (e.g. the SCI of a ``_drz.fits``).

    ``weight`` (e.g. the WHT extension) marks pixels with weight <= 0 as uncovered: they are
    shown at the background level and take no part in the stretch.  Images larger than
    ``max_side`` are block-averaged by the smallest integer factor that fits (None: never).
    ``origin="lower"`` puts row 0 at the bottom, as ds9 does.  ``stretch`` goes to
    :func:`asinh_stretch` (``lo_percentile``, ``hi_percentile``, ``softening_sigma``).
    Returns the path.
    """
    return _write_atomic(path, preview_png_bytes(image, weight=weight, max_side=max_side,
                                                 origin=origin, title=title, **stretch))


def chip_crmask_rgb(sci, crmask, *, good=None, colour=CR_COLOUR, dq_colour=DQ_COLOUR, alpha: float = 0.85,
                    max_side: int | None = MAX_SIDE, origin: str = "lower", **stretch):
    """The RGB uint8 array of :func:`write_chip_crmask_png`: the stretched chip in gray,
    cosmic-ray pixels blended with ``colour`` (``alpha`` 1 = solid); with ``good`` (e.g.
    ``dq == 0``), flagged pixels that are already bad in DQ get ``dq_colour`` instead (None:
    ``colour`` too)."""
    sci = np.asarray(sci, dtype=np.float64)
    cr = ~np.asarray(crmask).astype(bool)          # True = good  ->  True = cosmic ray
    if cr.shape != sci.shape:
        raise ValueError(f"CR mask shape {cr.shape} != chip shape {sci.shape}")
    g = None if good is None else np.asarray(good).astype(bool)
    if g is not None and g.shape != sci.shape:
        raise ValueError(f"good-pixel mask shape {g.shape} != chip shape {sci.shape}")
    x, f = _prepare(sci, None if g is None else g.astype(np.float64), max_side)
    gray = asinh_stretch(x, **stretch).astype(np.float64)
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    a = float(np.clip(alpha, 0.0, 1.0))
    layers = [(cr, colour)] if g is None or dq_colour is None else [(cr & ~g, dq_colour), (cr & g, colour)]
    for mask, col in layers:                          # later layers win where blocks hold both
        flagged = downsample(mask, f, how="max").astype(bool)
        rgb[flagged] = (1.0 - a) * rgb[flagged] + a * np.asarray(col, dtype=np.float64).reshape(1, 3)
    rgb = np.rint(rgb).astype(np.uint8)
    return rgb[::-1] if origin == "lower" else rgb


def chip_crmask_png_bytes(sci, crmask, *, good=None, colour=CR_COLOUR, dq_colour=DQ_COLOUR,
                          alpha: float = 0.85, max_side: int | None = MAX_SIDE, origin: str = "lower",
                          title: str | None = None, **stretch) -> bytes:
    """PNG bytes of :func:`write_chip_crmask_png`."""
    rgb = chip_crmask_rgb(sci, crmask, good=good, colour=colour, dq_colour=dq_colour, alpha=alpha,
                          max_side=max_side, origin=origin, **stretch)
    n = int((~np.asarray(crmask).astype(bool)).sum())
    f = _factor(np.shape(sci), max_side)
    text = {"Software": "dazzle",
            "Description": f"chip (asinh) with {n} cosmic-ray pixels in RGB{tuple(colour)}"
                           + (f" (RGB{tuple(dq_colour)} where DQ already flags them)"
                              if good is not None and dq_colour is not None else ""),
            "Downsampling": f"{f}x{f} block mean; CR flags block maximum"}
    if title:
        text["Title"] = title
    return png_bytes(rgb, text=text)


def write_chip_crmask_png(path, sci, crmask, *, good=None, colour=CR_COLOUR, dq_colour=DQ_COLOUR,
                          alpha: float = 0.85, max_side: int | None = MAX_SIDE, origin: str = "lower",
                          title: str | None = None, **stretch) -> str:
    """Write one chip (asinh-stretched gray) with its cosmic-ray mask overlaid in ``colour``.

    ``crmask`` follows dazzle's convention: True / 1 = good, False / 0 = cosmic ray (as in
    ``RunResult.crmasks`` and ``*_crmask.fits``).  ``good`` (optional, e.g. ``dq == 0``)
    leaves bad pixels out of the stretch, and flagged pixels that DQ already marks bad (hot
    pixels, dead columns: driz_cr flags them too, as AstroDrizzle does) are drawn in
    ``dq_colour``.  When the chip is larger than ``max_side`` the picture is block-averaged
    and a block is coloured if any of its pixels is flagged, so none disappears.  Returns the
    path.
    """
    return _write_atomic(path, chip_crmask_png_bytes(sci, crmask, good=good, colour=colour,
                                                     dq_colour=dq_colour, alpha=alpha, max_side=max_side,
                                                     origin=origin, title=title, **stretch))
