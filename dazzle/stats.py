"""Clipped image statistics exactly as ``stsci.imagestats.ImageStats`` (1.8.x) computes them.

AstroDrizzle's static mask (step 1) and sky (step 2, through ``stsci.skypac``) take every number
from ``ImageStats``; :func:`imagestats` reproduces it operation for operation, with the two C
helpers rewritten as Numba kernels:

``computeMean(image, clipmin, clipmax)``  (:func:`_compute_mean`)
    Over the pixels with ``clipmin <= v <= clipmax`` (float32 limits): ``npix``; ``mean`` =
    float32(sum / npix) with a double-precision sequential sum; ``stddev`` = float32 of
    ``sqrt(sum((v - mean)**2) / (npix - 1))`` where each difference and square is float32 and
    the sum is double.  ``min``/``max`` start from ``max(clipmin, image[0])`` and
    ``min(clipmax, image[0])``: when the *first* element lies below ``clipmin`` the reported
    minimum is ``clipmin`` itself, not the smallest in-range value (likewise for the maximum).
    This quirk moves the histogram origin of the mode, so it is kept.

``populate1DHist(image, hist, min, max, width)``  (:func:`_histogram`)
    ``idx = int(float32(1/width) * (v - min))`` in float32 for ``min <= v < min + width*nbins``.

The Python part (clip iterations, histogram sizing, mode interpolation, median) follows
``ImageStats._computeStats``:

* ``nclip + 1`` passes of ``computeMean``; after pass ``k < nclip`` the limits become
  ``max(lower, mean - lsig*stddev)`` and ``min(upper, mean + usig*stddev)``.
* ``median`` = ``numpy.median`` of the pixels within the *final* limits (float32); with
  ``nclip = 0`` it is the median of *all* pixels, ``lower``/``upper`` are then ignored (as read).
* ``mode``: bin width ``hwidth = binwidth * stddev``; ``nbins = int((max - min)/hwidth) + 1``;
  the histogram is filled with bins of width ``dz = (max - min)/(nbins - 1)`` (not ``hwidth``)
  from ``min``, over *all* pixels of the input (also clipped ones that fall in range); the peak
  bin ``p`` (first maximum) is refined by a parabola through its neighbours::

      mode = min + (p + 0.5 + 0.5*(h[p]-h[p-1] - (h[p]-h[p+1])) / (2h[p]-h[p-1]-h[p+1])) * hwidth

  (in units of ``hwidth`` although the bins are ``dz`` wide -- as read).  Special cases: one
  bin (clipped data within ``hwidth``), two bins, a peak in the first or last bin.

Non-finite values: ``ImageStats`` lets NaN through its comparisons (a NaN is never in range),
except that a NaN *first* element poisons min/max (then stddev = 0).  :func:`imagestats`
takes whatever array it is given; the steps drop non-finite pixels before calling it.

Public API: :func:`imagestats` -> :class:`ImageStatsResult`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

__all__ = ["ImageStatsResult", "finite_values", "imagestats", "imagestats_many"]

_MIN_FLOAT = 10.0 * float(np.finfo(np.float32).eps)


@njit(nogil=True, cache=True, inline="always")
def _mean_start(image, clipmin, clipmax):
    """computeMean's starting (tmin, tmax): the first element decides (see the module)."""
    first = image[0]
    return (clipmin if clipmin > first else first), (clipmax if clipmax < first else first)


@njit(nogil=True, cache=True, inline="always")
def _sum_step(v, clipmin, clipmax, tmin, tmax, npix, s):
    """computeMean's first loop, one element: (tmin, tmax, npix, sum) after ``v``."""
    if v >= clipmin and v <= clipmax:
        if v <= tmin:
            tmin = v
        if v >= tmax:
            tmax = v
        npix += 1
        s += v
    return tmin, tmax, npix, s


@njit(nogil=True, cache=True, inline="always")
def _square_step(v, tmin, tmax, mean, sd):
    """computeMean's second loop, one element: the sum of squares after ``v`` (float32
    difference and square, double sum)."""
    if v >= tmin and v <= tmax:
        d = np.float32(v - mean)
        sd += np.float32(d * d)
    return sd


@njit(nogil=True, cache=True, inline="always")
def _stddev(npix, sd):
    """computeMean's stddev (float32; NaN for one pixel) from the count and the sum of squares."""
    if npix > 1:
        return np.float32(math.sqrt(sd / (npix - 1)))
    return np.float32(np.nan)


@njit(nogil=True, cache=True)
def _compute_mean(image, clipmin, clipmax):
    """stsci.imagestats ``computeMean``: (npix, mean, stddev, min, max) of the float32 ``image``
    within ``[clipmin, clipmax]`` (float32), with its exact arithmetic and first-element rule."""
    tmin, tmax = _mean_start(image, clipmin, clipmax)
    npix = 0
    s = 0.0
    for i in range(image.size):
        tmin, tmax, npix, s = _sum_step(image[i], clipmin, clipmax, tmin, tmax, npix, s)
    if npix == 0:
        return 0, np.float32(0.0), np.float32(0.0), tmin, tmax
    mean = np.float32(s / npix)
    sd = 0.0
    for i in range(image.size):
        sd = _square_step(image[i], tmin, tmax, mean, sd)
    return npix, mean, _stddev(npix, sd), tmin, tmax


@njit(nogil=True, cache=True)
def _compute_mean_pair(a, amin, amax, b, bmin, bmax):
    """:func:`_compute_mean` of two images at once, the same bits: each image's sums are added
    in its own order, but the two chains of additions run side by side in one loop.  A
    sequential double-precision sum waits for each addition (about 4 cycles an element); two
    independent ones share those cycles (1.5x on WFC chips)."""
    n = min(a.size, b.size)
    atmin, atmax = _mean_start(a, amin, amax)
    btmin, btmax = _mean_start(b, bmin, bmax)
    an, bn = 0, 0
    asum, bsum = 0.0, 0.0
    for i in range(n):
        atmin, atmax, an, asum = _sum_step(a[i], amin, amax, atmin, atmax, an, asum)
        btmin, btmax, bn, bsum = _sum_step(b[i], bmin, bmax, btmin, btmax, bn, bsum)
    for i in range(n, a.size):
        atmin, atmax, an, asum = _sum_step(a[i], amin, amax, atmin, atmax, an, asum)
    for i in range(n, b.size):
        btmin, btmax, bn, bsum = _sum_step(b[i], bmin, bmax, btmin, btmax, bn, bsum)
    # an image with no pixel in range: its squares are not summed (its loop sees an empty range)
    amean = np.float32(asum / an) if an > 0 else np.float32(0.0)
    bmean = np.float32(bsum / bn) if bn > 0 else np.float32(0.0)
    alo, ahi = (atmin, atmax) if an > 0 else (np.float32(1.0), np.float32(0.0))
    blo, bhi = (btmin, btmax) if bn > 0 else (np.float32(1.0), np.float32(0.0))
    asd, bsd = 0.0, 0.0
    for i in range(n):
        asd = _square_step(a[i], alo, ahi, amean, asd)
        bsd = _square_step(b[i], blo, bhi, bmean, bsd)
    for i in range(n, a.size):
        asd = _square_step(a[i], alo, ahi, amean, asd)
    for i in range(n, b.size):
        bsd = _square_step(b[i], blo, bhi, bmean, bsd)
    astd = _stddev(an, asd) if an > 0 else np.float32(0.0)
    bstd = _stddev(bn, bsd) if bn > 0 else np.float32(0.0)
    return (an, amean, astd, atmin, atmax), (bn, bmean, bstd, btmin, btmax)


@njit(nogil=True, cache=True)
def _histogram(image, nbins, width, vmin, vmax):
    """stsci.imagestats ``populate1DHist`` (float32 arithmetic throughout)."""
    hist = np.zeros(nbins, dtype=np.uint32)
    f = np.float32(1.0) / width
    edge = np.float32(vmin + np.float32(width * np.float32(nbins)))
    if vmax > edge:
        vmax = edge
    for i in range(image.size):
        v = image[i]
        if v >= vmin and v < vmax:
            idx = int(np.float32(f * np.float32(v - vmin)))
            if idx >= nbins:      # float rounding at the top edge (out of bounds in the C code)
                idx = nbins - 1
            hist[idx] += 1
    return hist


@njit(nogil=True, cache=True, inline="always")
def _order_key(v):
    """uint32 key of a float32 whose unsigned order is the numeric order (finite values; -0.0
    sorts before +0.0)."""
    b = np.uint32(np.float32(v).view(np.uint32))
    if b & np.uint32(0x80000000):
        return ~b
    return b | np.uint32(0x80000000)


@njit(nogil=True, cache=True)
def _middle_in_range(image, lo, hi):
    """The two middle values (ranks ``(n-1)//2`` and ``n//2``, 0-based; the same one when ``n``
    is odd) of the ``n`` values ``v`` of ``image`` with ``lo <= v <= hi`` (compared in float64),
    as float32, and ``n``.  Exact: a radix selection on the order key; one pass counts the top
    16 bits, one the low 16 bits of the values in the two ranks' bins."""
    top = np.zeros(65536, dtype=np.int64)
    n = 0
    for i in range(image.size):
        v = image[i]
        if np.float64(v) >= lo and np.float64(v) <= hi:
            top[_order_key(v) >> np.uint32(16)] += 1
            n += 1
    vals = np.full(2, np.nan, dtype=np.float32)
    if n == 0:
        return vals[0], vals[1], n
    ranks = ((n - 1) // 2, n // 2)
    bins = np.empty(2, dtype=np.int64)
    rest = np.empty(2, dtype=np.int64)   # rank within its bin
    for r in range(2):
        c = 0
        for b in range(65536):
            if c + top[b] > ranks[r]:
                bins[r] = b
                rest[r] = ranks[r] - c
                break
            c += top[b]
    low = np.zeros((2, 65536), dtype=np.int64)
    for i in range(image.size):
        v = image[i]
        if np.float64(v) >= lo and np.float64(v) <= hi:
            key = _order_key(v)
            hb = np.int64(key >> np.uint32(16))
            for r in range(2):
                if hb == bins[r]:
                    low[r, key & np.uint32(0xFFFF)] += 1
    for r in range(2):
        c = 0
        for b in range(65536):
            c += low[r, b]
            if c > rest[r]:
                key = np.uint32((bins[r] << 16) | b)
                if key & np.uint32(0x80000000):
                    bits = key & np.uint32(0x7FFFFFFF)
                else:
                    bits = ~key
                vals[r] = np.uint32(bits).view(np.float32)
                break
    return vals[0], vals[1], n


_F32 = np.zeros(1, dtype=np.float32)


def _limit64(limit):
    """The float64 number that ``float32_array <= limit`` (or ``>=``) compares with, as numpy
    (>= 2, NEP 50) does: a Python number or a float32 is cast to float32 first, a float64
    scalar is not."""
    if np.result_type(_F32, limit) == np.float32:
        return float(np.float32(limit))
    return float(limit)


def _clipped_median(image, clipmin, clipmax):
    """``float(numpy.median(image[(image <= clipmax) & (image >= clipmin)]))``, bit for bit,
    without the mask, the copy and the partition: the one or two middle values come from
    :func:`_middle_in_range` and are averaged as ``numpy.median`` does (``numpy.mean`` of the
    two, float32).  None (the caller uses numpy) for a middle value of zero (which of -0.0 and
    +0.0 numpy's partition returns is not specified), no value in range, or infinite limits."""
    lo, hi = _limit64(clipmin), _limit64(clipmax)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    a, b, n = _middle_in_range(image, lo, hi)
    if n == 0 or a == 0.0 or b == 0.0:
        return None
    if n % 2:
        return float(b)
    return float(np.mean(np.array([a, b], dtype=np.float32)))


def _fill_histogram(image, nbins, dz, vmin):
    """``histogram1d(image, nbins, dz, vmin)``: float32 width and origin, upper edge
    ``origin + width * nbins`` in float32."""
    width = np.float32(dz)
    origin = np.float32(vmin)
    top = np.float32(origin + np.float32(width * np.float32(nbins)))
    return _histogram(image, nbins, width, origin, top)


@njit(nogil=True, cache=True)
def _count_usable(data, mask, use_mask):
    k = 0
    for i in range(data.size):
        v = data[i]
        if v - v == 0.0 and (not use_mask or mask[i]):      # finite (and selected)
            k += 1
    return k


@njit(nogil=True, cache=True)
def _copy_usable(data, mask, use_mask, out):
    k = 0
    for i in range(data.size):
        v = data[i]
        if v - v == 0.0 and (not use_mask or mask[i]):
            out[k] = v
            k += 1


def finite_values(data, mask=None) -> np.ndarray:
    """``data[mask & numpy.isfinite(data)]`` (``data[numpy.isfinite(data)]`` without a mask), 1-D
    in C order, in two GIL-free passes and no temporary masks; ``data`` itself, flattened, when
    every pixel is kept.  Float32 data only; other types go through numpy."""
    a = np.asarray(data)
    m = None if mask is None else np.asarray(mask, dtype=bool)
    if a.dtype != np.float32 or (m is not None and m.shape != a.shape):
        sel = np.isfinite(a) if m is None else (m & np.isfinite(a))
        return a.reshape(-1) if sel.all() else a[sel]
    a = np.ascontiguousarray(a).reshape(-1)
    use_mask = m is not None
    flat_m = np.ascontiguousarray(m).reshape(-1) if use_mask else np.zeros(1, dtype=bool)
    k = _count_usable(a, flat_m, use_mask)
    if k == a.size:
        return a
    out = np.empty(k, dtype=np.float32)
    _copy_usable(a, flat_m, use_mask, out)
    return out


@dataclass(frozen=True)
class ImageStatsResult:
    """What :func:`imagestats` computed.  ``npix``, ``mean``, ``stddev``, ``min``, ``max`` are
    those of the final clipping pass; ``clipmin``/``clipmax`` its limits; ``mode`` and ``nbins``
    only when the mode was asked for, ``median`` only when the median was asked for."""

    npix: int
    mean: float
    stddev: float
    min: float
    max: float
    clipmin: float
    clipmax: float
    mode: float | None = None
    median: float | None = None
    nbins: int | None = None


def imagestats(data, *, fields=("mode",), lower=None, upper=None, nclip=0, lsig=3.0, usig=3.0,
               binwidth=0.1) -> ImageStatsResult:
    """Clipped statistics of ``data`` (any shape; flattened in C order, cast to float32), as
    ``stsci.imagestats.ImageStats(data, fields, lower, upper, nclip, lsig, usig, binwidth)``.

    ``fields``: any of ``"mode"``, ``"median"`` (mean, stddev, npix, min, max always come).
    Raises ``ValueError`` when no pixel is left ("Not enough data points"), as ImageStats does.
    """
    got = imagestats_many([data], fields=fields, lower=lower, upper=upper, nclip=nclip, lsig=lsig,
                          usig=usig, binwidth=binwidth)[0]
    if isinstance(got, Exception):
        raise got
    return got


def imagestats_many(images, *, fields=("mode",), lower=None, upper=None, nclip=0, lsig=3.0, usig=3.0,
                    binwidth=0.1) -> list:
    """:func:`imagestats` of several images with the same settings, the same numbers: their
    clipping passes run two images at a time (:func:`_compute_mean_pair`: two chains of
    sequential sums side by side).

    Parameters
    ----------
    images : sequence of array_like
        The images (any shape; flattened in C order, cast to float32).
    fields, nclip, lsig, usig, binwidth
        As :func:`imagestats`, the same for every image.
    lower, upper : float or sequence of float, optional
        As :func:`imagestats`: one value for all, or a list (or tuple) with one per image.

    Returns
    -------
    list
        Per image its :class:`ImageStatsResult`, or the ``ValueError`` :func:`imagestats`
        would raise for it (returned, not raised: the others are still computed).
    """
    if isinstance(fields, str):
        fields = [f.strip() for f in fields.lower().split(",")]
    fields = {f.lower() for f in fields}
    n = len(images)
    lowers = list(lower) if isinstance(lower, (list, tuple)) else [lower] * n
    uppers = list(upper) if isinstance(upper, (list, tuple)) else [upper] * n
    if len(lowers) != n or len(uppers) != n:
        raise ValueError(f"{len(lowers)} lower and {len(uppers)} upper limits for {n} images")
    out, live = [None] * n, []
    for i, data in enumerate(images):
        try:
            live.append(_Clipping(i, *_checked_limits(data, lowers[i], uppers[i], nclip, lsig, usig, binwidth)))
        except ValueError as exc:
            out[i] = exc
    for it in range(int(nclip) + 1):
        for j in range(0, len(live), 2):     # two images at a time, the last one alone
            if j + 1 < len(live):
                a, b = live[j], live[j + 1]
                ra, rb = _compute_mean_pair(a.image, np.float32(a.clipmin), np.float32(a.clipmax),
                                            b.image, np.float32(b.clipmin), np.float32(b.clipmax))
                a.step(ra, it, nclip, lsig, usig)
                b.step(rb, it, nclip, lsig, usig)
            else:
                c = live[j]
                c.step(_compute_mean(c.image, np.float32(c.clipmin), np.float32(c.clipmax)), it, nclip, lsig, usig)
        for c in live:
            if c.error is not None:
                out[c.index] = c.error
        live = [c for c in live if c.error is None]
    for c in live:
        out[c.index] = _finish_stats(c, fields, nclip, binwidth)
    return out


def _checked_limits(data, lower, upper, nclip, lsig, usig, binwidth):
    """ImageStats' checks and default limits: (float32 image, lower, upper)."""
    image = np.ascontiguousarray(np.asarray(data).ravel(), dtype=np.float32)
    if image.size == 0:
        raise ValueError("Not enough data points to compute statistics.")
    if nclip < 0:
        raise ValueError("'nclip' must be a non-negative integer.")
    if lsig <= 0.0 or usig <= 0.0:
        raise ValueError("'lsig' and 'usig' must be positive numbers.")
    if binwidth <= 0.0:
        raise ValueError("'binwidth' must be a positive number.")

    gmin = np.minimum.reduce(image)
    gmax = np.maximum.reduce(image)
    if lower is None:
        lower = gmin
    elif lower > gmax:
        raise ValueError("Lower data cutoff is larger than maximum pixel value.")
    elif upper is not None and lower > upper:
        raise ValueError("Lower data cutoff must be smaller than upper cutoff limit.")
    if upper is None:
        upper = gmax
    elif upper < gmin:
        raise ValueError("Upper data cutoff is smaller than minimum pixel value.")
    return image, lower, upper


class _Clipping:
    """One image's clipping passes (ImageStats._computeStats), as :func:`imagestats_many`
    runs them."""

    def __init__(self, index, image, lower, upper):
        self.index, self.image, self.lower, self.upper = index, image, lower, upper
        self.clipmin, self.clipmax = lower, upper
        self.npix, self.mean, self.std, self.vmin, self.vmax = 0, 0.0, 0.0, 0.0, 0.0
        self.error = None

    def step(self, result, it, nclip, lsig, usig):
        """Take pass ``it``'s computeMean result; the next pass's limits."""
        npix, mean, std, vmin, vmax = result
        if npix <= 0:
            self.error = ValueError("Not enough data points to compute statistics.")
            return
        # the C helper returns C floats; Python sees doubles
        self.npix, self.mean, self.std, self.vmin, self.vmax = npix, float(mean), float(std), float(vmin), float(vmax)
        if it < nclip:
            self.clipmin = max(self.lower, self.mean - lsig * self.std)
            self.clipmax = min(self.upper, self.mean + usig * self.std)


def _finish_stats(c, fields, nclip, binwidth) -> ImageStatsResult:
    """The median and mode after the clipping passes (ImageStats._computeStats)."""
    image, clipmin, clipmax = c.image, c.clipmin, c.clipmax
    npix, mean, std, vmin, vmax = c.npix, c.mean, c.std, c.vmin, c.vmax
    median = None
    if "median" in fields:
        median = _clipped_median(image, clipmin, clipmax) if nclip > 0 else None
        if median is None:
            sel = image[(image <= clipmax) & (image >= clipmin)] if nclip > 0 else image
            median = float(np.median(sel))

    mode = None
    nbins = None
    if "mode" in fields:
        hwidth = binwidth * std
        drange = vmax - vmin
        if hwidth < _MIN_FLOAT or abs(drange) < _MIN_FLOAT or hwidth > drange:
            nbins = 1
            dz = drange
        else:
            nbins = int((vmax - vmin) / hwidth) + 1
            dz = float(vmax - vmin) / float(nbins - 1)
        if nbins == 1:     # (the one-bin histogram's content does not matter)
            mode = vmin + 0.5 * hwidth
        elif nbins == 2:
            hist = _fill_histogram(image, nbins, dz, vmin)
            if hist[0] > hist[1]:
                mode = vmin + 0.5 * hwidth
            elif hist[0] < hist[1]:
                mode = vmin + 1.5 * hwidth
            else:
                mode = vmin + hwidth
        else:
            hist = _fill_histogram(image, nbins, dz, vmin)
            p = int(np.argmax(hist))
            if p == 0:
                mode = vmin + 0.5 * hwidth
            elif p == nbins - 1:
                mode = vmin + (nbins - 0.5) * hwidth
            else:
                dh1 = int(hist[p]) - int(hist[p - 1])
                dh2 = int(hist[p]) - int(hist[p + 1])
                denom = dh1 + dh2
                if denom == 0:
                    mode = vmin + (p + 0.5) * hwidth
                else:
                    m = p + 1 + (0.5 * (dh1 - dh2) / denom)
                    mode = vmin + ((m - 0.5) * hwidth)
    return ImageStatsResult(npix=int(npix), mean=mean, stddev=std, min=vmin, max=vmax,
                            clipmin=float(clipmin), clipmax=float(clipmax), mode=mode,
                            median=median, nbins=nbins)
