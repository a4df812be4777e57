"""Per-pixel combination of a stack of images: AstroDrizzle's ``combine_type`` (step 4).

Arrays only: no FITS, no dask.  The public entry point is :func:`combine_stack`::

    out = combine_stack(data, good, combine_type="minmed", nlow=0, nhigh=0,
                        lthresh=None, hthresh=None, nsigma=(4, 3), grow=1,
                        sky=None, rn2=None, exptime=None, weights=None, nimages=None, out=None)

``data`` is ``(n, ny, nx)`` float32 (the single-drizzled images, e-/s), ``good`` the same shape,
bool or uint8 (non-zero = usable), ``out`` ``(ny, nx)`` float32.  A value whose ``good`` is 0,
or that is NaN/inf, never enters the statistics.  An image that does not cover a pixel is given
there as ``data = 0``, ``weights = 0``, ``good = 0`` -- exactly how a whole-frame drizzlepac
single image looks outside the exposure's footprint -- so a stack of only the images that
overlap a block gives the same numbers as the whole stack.

Per pixel, with the ``k`` usable values sorted ascending into ``v[0..k-1]`` (float64, as
``stsci.image``'s C code; results rounded to float32 once):

``median``  ``m = k - nlow - nhigh``; when ``m <= 0`` and ``k > 0``, ``nlow`` and ``nhigh`` are
            each decreased by one (those > 0) until ``nlow + nhigh < k``.  Odd ``m``:
            ``v[nlow + m//2]``; even: ``(v[nlow + m//2 - 1] + v[nlow + m//2]) / 2``.
            ``k = 0`` -> 0.
``mean``    ``m = k - nlow - nhigh``; ``m <= 0`` -> 0 (no reduction, as stsci.image);
            else ``sum(v[nlow:nlow+m]) / m`` (sequential float64 sum).
``sum``     ``sum(v[nlow:nlow+m])`` (``m <= 0`` -> 0).
thresholds  a value is unusable when ``value < lthresh`` or ``value >= hthresh`` (stsci.image's
            ``threshhold``; the thresholds are rounded to float32 as numpy 2 compares them).
``i``-types ``imedian``/``imean``: a pixel with no usable value takes the first non-zero finite
            value of the stack, in stack order, whatever its mask (then the same statistic).
``minmed``  (``nlow``/``nhigh``/thresholds are not used, as in drizzlepac)::

              med = median with nlow=0, nhigh=1 (imedian for iminmed); when nimages == 2:
                    the mean of the usable values (imean for iminmed).  One usable value -> it.
              min = the lowest usable value (0 when none)
              T   = sum_i W_i            (float32, every image, masked or not: drizzlepac)
              B   = sum_i W_i * sky_i / exptime_i    (float64; sky in e-, exptime in s)
              R   = sum_i good_i * rn2_i             (float64; e-^2)
              sigma = sqrt(max(med*T + B + R, 0))    (med*T, min*T in float32, as drizzlepac)
              flag  = min*T < med*T - nsigma1*sigma
              F     = any flag in the (2*grow+1)^2 box around the pixel (grow > 0; flags
                      outside the array count as 0 -- scipy ``convolve2d(boundary='fill')``)
              out   = min if min*T < med*T - (nsigma2 if F else nsigma1)*sigma else med
            and a pixel with no usable value is 0.  ``nimages`` is the number of images of
            the whole association (default ``n``): it alone selects the N=2 mean, so that a
            block overlapping fewer images is still combined like the whole stack.
``grow``    Only minmed uses it.  Flags are computed over the whole array given, so to get
            exact values on a block the caller passes the block extended by ``grow`` pixels
            on every side (pixels beyond the frame simply have no images: flag 0, which is
            drizzlepac's zero-filled boundary) and keeps the interior.

A pixel with no usable value gives 0 for every type (drizzlepac's fill value of the median).

Deliberate differences from drizzlepac 3.11 / stsci.image 2.3 ("as read" defects fixed):

* combine_nsigma may hold one number (used for both steps, as documented); drizzlepac requires two.
* combine_lthresh/hthresh are used as given, in the single-drizzled units (e-/s); drizzlepac rescales them by gain/exptime once per image, compounding over the images.
* imedian/imean/iminmed fill every pixel that has no usable value; stsci.image does it only in column 0 of each row (its fill flag is reset after the first column).
* A pixel with no usable value is 0; stsci.image's median/mean read an uninitialised buffer there in column 0.
* sum adds the usable values (masks, thresholds, nlow/nhigh respected, i.e. mean x count); drizzlepac sums every image ignoring them.
* NaN/inf values are unusable; in drizzlepac they corrupt the sort.

Kernels are ``@njit(nogil=True, cache=True)``, allocate their scratch once per call (a buffer
of length n; for minmed a few rows, and with grow a few (ny, nx) planes) and share no state, so several threads
may combine different blocks at once.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from numba import njit

from .catalog import COMBINE_TYPES

__all__ = ["combine_stack", "parse_nsigma", "stack_piece", "COMBINE_TYPES"]

_OP_MEDIAN = 0
_OP_MEAN = 1
_OP_SUM = 2

# above this many usable values the sort uses numba's ndarray.sort instead of insertion sort
_INSERTION_MAX = 24
# minmed sorts the stacks of fewer than this many images by a branch-free network (row-wise)
_NETWORK_MAX = 17


# ---------------------------------------------------------------------------
# Scalar helpers (scalars only)
# ---------------------------------------------------------------------------


@njit(nogil=True, cache=True, inline="always")
def _median_index(k, nlow, nhigh):
    """Indices (i0, i1) of the sorted values whose mean is stsci.image's median; (-1, -1) if none."""
    m = k - nlow - nhigh
    if m <= 0 and k > 0:
        while nlow + nhigh >= k:
            if nhigh > 0:
                nhigh -= 1
            if nlow > 0:
                nlow -= 1
        m = k - nlow - nhigh
    if m <= 0:
        return -1, -1
    mid = m // 2
    if m % 2 == 1:
        return mid + nlow, mid + nlow
    return mid + nlow - 1, mid + nlow


# ---------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------


@njit(nogil=True, cache=True, inline="always")
def _fill_and_sort(data, buf, k, y, x, ifill):
    """Sort the ``k`` values of ``buf`` ascending; with none and ``ifill`` (the ``i*`` combine
    types) first take the first finite non-zero value of the stack at ``(y, x)``.  Returns the
    count."""
    if k == 0 and ifill:
        for i in range(data.shape[0]):
            v = data[i, y, x]
            if v != 0 and math.isfinite(v):
                buf[0] = v
                k = 1
                break
    if k <= _INSERTION_MAX:
        for a in range(1, k):
            t = buf[a]
            b = a - 1
            while b >= 0 and buf[b] > t:
                buf[b + 1] = buf[b]
                b -= 1
            buf[b + 1] = t
    else:
        buf[:k].sort()
    return k


@njit(nogil=True, cache=True)
def _numcombine_kernel(data, good, op, nlow, nhigh, lo, hi, ifill, out):
    n, ny, nx = data.shape
    buf = np.empty(n + 1, dtype=np.float64)
    for y in range(ny):
        for x in range(nx):
            k = 0
            for i in range(n):
                if good[i, y, x] != 0:
                    v = data[i, y, x]
                    if v >= lo and v < hi and math.isfinite(v):
                        buf[k] = v
                        k += 1
            k = _fill_and_sort(data, buf, k, y, x, ifill)
            res = 0.0
            if op == _OP_MEDIAN:
                i0, i1 = _median_index(k, nlow, nhigh)
                if i0 >= 0:
                    if i0 == i1:
                        res = buf[i0]
                    else:
                        res = (buf[i0] + buf[i1]) / 2.0
            else:
                m = k - nlow - nhigh
                if m > 0:
                    s = 0.0
                    for a in range(nlow, nlow + m):
                        s += buf[a]
                    if op == _OP_MEAN:
                        res = s / m
                    else:
                        res = s
            out[y, x] = res


@njit(nogil=True, cache=True)
def _minmed_row(data, good, weights, s, rn2, y, col, tw, bk, rr, cnt):
    """Row ``y`` of the stack, vectorisable along x: per pixel the weight sum ``tw`` (float32)
    and ``bk`` = sum w * s, in image order as the per-pixel loop adds them; the usable values'
    read noise ``rr`` and count ``cnt``; ``col[i, x]`` = the value of image i, +inf when it is
    not usable.  With fewer than ``_NETWORK_MAX`` images the columns are then sorted by a
    branch-free odd-even transposition network (swaps only when strictly greater: stable, so
    the usable values come first in the order of a stable sort of them, +inf last)."""
    n = data.shape[0]
    nx = data.shape[2]
    for x in range(nx):
        tw[x] = np.float32(0.0)
        bk[x] = 0.0
        rr[x] = 0.0
        cnt[x] = 0
    for i in range(n):
        si = s[i]
        ri = rn2[i]
        for x in range(nx):
            w = weights[i, y, x]
            tw[x] = tw[x] + w
            bk[x] += np.float64(w) * si
            v = np.float64(data[i, y, x])
            ok = (good[i, y, x] != 0) & (v - v == 0.0)      # usable and finite
            col[i, x] = v if ok else np.inf
            rr[x] = rr[x] + ri if ok else rr[x]
            cnt[x] += 1 if ok else 0
    if n < _NETWORK_MAX:
        for r in range(n):
            for a in range(r & 1, n - 1, 2):
                for x in range(nx):
                    lo = col[a, x]
                    hi = col[a + 1, x]
                    sw = lo > hi
                    col[a, x] = hi if sw else lo
                    col[a + 1, x] = lo if sw else hi


@njit(nogil=True, cache=True)
def _minmed_kernel(data, good, weights, s, rn2, pairmean, nsig1, nsig2, grow, ifill, out):
    n, ny, nx = data.shape
    buf = np.empty(n + 1, dtype=np.float64)
    col = np.empty((n, nx), dtype=np.float64)
    tw_r = np.empty(nx, dtype=np.float32)
    bk_r = np.empty(nx, dtype=np.float64)
    rr_r = np.empty(nx, dtype=np.float64)
    cnt_r = np.empty(nx, dtype=np.int64)
    shp = (ny, nx) if grow > 0 else (1, 1)
    med_a = np.empty(shp, dtype=np.float32)
    mn_a = np.empty(shp, dtype=np.float32)
    t_a = np.empty(shp, dtype=np.float32)
    sig_a = np.empty(shp, dtype=np.float64)
    state = np.zeros(shp, dtype=np.uint8)      # bit 0: flag, bit 1: no usable value
    zero32 = np.float32(0.0)
    for y in range(ny):
        _minmed_row(data, good, weights, s, rn2, y, col, tw_r, bk_r, rr_r, cnt_r)
        for x in range(nx):
            ngood = cnt_r[x]
            k = 0
            for i in range(n):   # the usable values in image order, or sorted by the network
                if col[i, x] != np.inf:
                    buf[k] = col[i, x]
                    k += 1
            tw = tw_r[x]
            bk = bk_r[x]
            rr = rr_r[x]
            if n >= _NETWORK_MAX or (k == 0 and ifill):
                k = _fill_and_sort(data, buf, k, y, x, ifill)
            med = 0.0
            if pairmean:
                if k > 0:
                    sm = 0.0
                    for a in range(k):
                        sm += buf[a]
                    med = sm / k
            else:
                i0, i1 = _median_index(k, 0, 1)
                if i0 >= 0:
                    if i0 == i1:
                        med = buf[i0]
                    else:
                        med = (buf[i0] + buf[i1]) / 2.0
            med32 = np.float32(med)
            mn32 = np.float32(buf[0]) if ngood > 0 else zero32
            med_t = med32 * tw
            min_t = mn32 * tw
            var = np.float64(med_t) + bk + rr
            if not var > 0.0:
                var = 0.0
            sig = math.sqrt(var)
            flag = np.float64(min_t) < np.float64(med_t) - sig * nsig1
            if grow > 0:
                med_a[y, x] = med32
                mn_a[y, x] = mn32
                t_a[y, x] = tw
                sig_a[y, x] = sig
                st = np.uint8(0)
                if flag:
                    st |= np.uint8(1)
                if ngood == 0:
                    st |= np.uint8(2)
                state[y, x] = st
            else:
                if ngood == 0:
                    out[y, x] = zero32
                elif flag:
                    out[y, x] = mn32
                else:
                    out[y, x] = med32
    if grow == 0:
        return
    # horizontal dilation of the flags (bit 2 of state), then a vertical look-up
    for y in range(ny):
        for x in range(nx):
            if state[y, x] & 1:
                for xx in range(max(0, x - grow), min(nx, x + grow + 1)):
                    state[y, xx] |= np.uint8(4)
    for y in range(ny):
        y0 = max(0, y - grow)
        y1 = min(ny, y + grow + 1)
        for x in range(nx):
            st = state[y, x]
            if st & 2:
                out[y, x] = zero32
                continue
            near = False
            for yy in range(y0, y1):
                if state[yy, x] & 4:
                    near = True
                    break
            tw = t_a[y, x]
            med32 = med_a[y, x]
            mn32 = mn_a[y, x]
            med_t = med32 * tw
            min_t = mn32 * tw
            nsig = nsig2 if near else nsig1
            if np.float64(min_t) < np.float64(med_t) - sig_a[y, x] * nsig:
                out[y, x] = mn32
            else:
                out[y, x] = med32


@njit(nogil=True, cache=True)
def _stack_piece(d, w, thr, newmasks, keep_w, data, good, wht, k, r0, c0):
    for r in range(d.shape[0]):
        for c in range(d.shape[1]):
            wv = w[r, c]
            present = (wv != 0) & (wv - wv == 0.0)          # non-zero and finite
            ok = (present and not np.float64(wv) < thr) if newmasks else present
            data[k, r0 + r, c0 + c] = d[r, c] if present else np.float32(0.0)
            good[k, r0 + r, c0 + c] = 1 if ok else 0
            if keep_w:
                wht[k, r0 + r, c0 + c] = wv if present else np.float32(0.0)


def stack_piece(d, w, thr, newmasks, data, good, wht, k, r0, c0):
    """One image's region into the stack, in one pass, in place.

    Parameters
    ----------
    d, w : 2-D float32 arrays
        The image's data and weight over its region.
    thr : float
        Weight threshold (``newmasks``): ``float64(w) < thr`` is not good.
    newmasks : bool
        Apply ``thr``.
    data, wht : 3-D float32 C-contiguous arrays (``wht`` may be None)
        The stacks: ``data[k, r0:, c0:] = d`` and ``wht[k, r0:, c0:] = w`` where the weight
        is present (non-zero and finite), else 0.
    good : 3-D uint8 C-contiguous array
        ``good[k, r0:, c0:]`` = present and, with ``newmasks``, not below ``thr``.
    k, r0, c0 : int
        The image's index in the stack and the region's first row and column.
    """
    keep_w = wht is not None
    _stack_piece(np.ascontiguousarray(d, dtype=np.float32), np.ascontiguousarray(w, dtype=np.float32),
                 float(thr), bool(newmasks), keep_w, data, good,
                 wht if keep_w else np.empty((0, 0, 0), np.float32), int(k), int(r0), int(c0))


# ---------------------------------------------------------------------------
# Python wrapper
# ---------------------------------------------------------------------------


def parse_nsigma(value) -> tuple[float, float]:
    """``combine_nsigma`` as ``(nsigma1, nsigma2)``: ``"4 3"``, ``"4,3"``, ``(4, 3)``; one number
    (``"4"``, ``4``, ``(4,)``) is used for both (drizzlepac requires two)."""
    if isinstance(value, str):
        parts = [t for t in value.replace(",", " ").split() if t]
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        parts = [value]
    else:
        parts = list(value)
    if len(parts) not in (1, 2):
        raise ValueError(f"combine_nsigma: one or two numbers are required, got {value!r}")
    vals = [float(p) for p in parts]
    if any(not math.isfinite(v) or v < 0 for v in vals):
        raise ValueError(f"combine_nsigma: values must be finite and >= 0, got {value!r}")
    return (vals[0], vals[-1])


def _as_stack(name, a, shape=None, dtype=np.float32):
    a = np.ascontiguousarray(a, dtype=dtype)
    if a.ndim != 3:
        raise ValueError(f"{name} must be 3-D (n, ny, nx), got shape {a.shape}")
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape}, expected {shape}")
    return a


def _per_image(name, v, n, default):
    if v is None:
        return np.full(n, default, dtype=np.float64)
    a = np.asarray(v, dtype=np.float64).reshape(-1)
    if a.size == 1 and n != 1:
        a = np.full(n, float(a[0]))
    if a.size != n:
        raise ValueError(f"{name} needs one value per image ({n}), got {a.size}")
    return a


def combine_stack(data, good, *, combine_type="minmed", nlow=0, nhigh=0, lthresh=None,
                  hthresh=None, nsigma=(4.0, 3.0), grow=1, sky=None, rn2=None, exptime=None,
                  weights=None, nimages=None, out=None) -> np.ndarray:
    """Combine a stack pixel by pixel (the formulas are in the module docstring).

    Parameters
    ----------
    data : array (n, ny, nx)
        The stack (float32 is used).
    good : array (n, ny, nx), bool or uint8
        Non-zero = usable.
    combine_type : str
        One of :data:`COMBINE_TYPES`.
    nlow, nhigh, lthresh, hthresh
        Rejection for the median/mean/sum types (ignored by minmed).
    nsigma : number or (number, number)
        minmed's thresholds.
    grow : int
        minmed's flag growth (>= 0; see the module docstring for the halo the caller must add).
    sky, rn2, exptime : per-image sequences, optional
        minmed's sky (e-, default 0), read noise squared (e-^2, default 0) and exposure time
        (s, default 1).
    weights : array (n, ny, nx), optional
        float32 single-drizzled weights; minmed needs them.
    nimages : int, optional
        Number of images of the whole association (default ``n``); it selects minmed's N=2
        rule and is the count against which ``nlow + nhigh`` is checked.
    out : float32 array (ny, nx), optional
        C-contiguous; written in place and returned.

    Returns
    -------
    numpy.ndarray
        float32 ``(ny, nx)``.
    """
    ctype = str(combine_type).strip().lower()
    if ctype not in COMBINE_TYPES:
        raise ValueError(f"combine_type must be one of {', '.join(COMBINE_TYPES)}; got {combine_type!r}")
    data = _as_stack("data", data)
    n, ny, nx = data.shape
    g = np.asarray(good)
    if g.shape != data.shape:
        raise ValueError(f"good has shape {g.shape}, expected {data.shape}")
    if g.dtype == np.bool_:
        g = np.ascontiguousarray(g).view(np.uint8)
    elif g.dtype != np.uint8:
        g = np.ascontiguousarray(g != 0).view(np.uint8)
    else:
        g = np.ascontiguousarray(g)
    nimages = n if nimages is None else int(nimages)
    if nimages < n:
        raise ValueError(f"nimages ({nimages}) is smaller than the stack ({n})")
    if out is None:
        out = np.zeros((ny, nx), dtype=np.float32)
    elif (not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != (ny, nx)
          or not out.flags.c_contiguous):
        raise ValueError("out must be a C-contiguous float32 array of shape (ny, nx)")
    ifill = ctype.startswith("i")

    if "minmed" in ctype:
        grow = int(grow)
        if grow < 0:
            raise ValueError(f"combine_grow must be >= 0, got {grow}")
        n1, n2 = parse_nsigma(nsigma)
        if weights is None:
            raise ValueError("minmed needs the weight images (weights=)")
        w = _as_stack("weights", weights, data.shape)
        sky_a = _per_image("sky", sky, n, 0.0)
        t_a = _per_image("exptime", exptime, n, 1.0)
        rn2_a = _per_image("rn2", rn2, n, 0.0)
        if np.any(~(t_a > 0)):
            raise ValueError("exptime must be > 0 for every image")
        s = np.array([float(b) / float(t) for b, t in zip(sky_a, t_a)], dtype=np.float64)
        _minmed_kernel(data, g, w, s, rn2_a, nimages == 2, n1, n2, grow, ifill, out)
        return out

    nlow, nhigh = int(nlow), int(nhigh)
    if nlow < 0 or nhigh < 0:
        raise ValueError("combine_nlow and combine_nhigh must be >= 0")
    if nimages - nlow - nhigh < 1:
        raise ValueError(f"Rejecting all pixels: combine_nlow ({nlow}) + combine_nhigh ({nhigh}) "
                         f">= number of images ({nimages})")
    lo = -np.inf if lthresh is None else float(np.float32(lthresh))
    hi = np.inf if hthresh is None else float(np.float32(hthresh))
    op = {"median": _OP_MEDIAN, "mean": _OP_MEAN, "sum": _OP_SUM}[ctype.lstrip("i")]
    _numcombine_kernel(data, g, op, nlow, nhigh, lo, hi, ifill, out)
    return out
