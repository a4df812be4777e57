"""Blot: resample an image onto another (distorted) pixel grid by interpolation.

``blot(data, pixmap)`` evaluates ``data`` at the positions given by ``pixmap``
(``pixmap[j, i] = (x, y)``: 0-based coordinates in ``data`` of output pixel
``(i, j)``, the convention of drizzle 3.0 ``blot_image``)::

    out[j, i] = interp(x, y) * iscale   if 0 <= x < nx and 0 <= y < ny
              = fillval                 otherwise

Coordinates are rounded to float32 before use, as the reference C does, so the
on-frame test and the fractional offsets are the same as in drizzle 3.0.

Interpolators (``INTERPOLATORS``; ``lan3``/``lan5`` are aliases):

* ``nearest``  -- ``data[int(y + 0.5), int(x + 0.5)]``.
* ``linear``   -- bilinear; in the last column (row) it interpolates along y (x)
  only, and the last pixel is returned as is (no extrapolation).
* ``poly3`` / ``poly5`` -- IRAF ``ii_bipoly3`` / ``ii_bipoly5``: Everett
  central-difference cubic / quintic on a 4x4 / 6x6 neighbourhood (i.e. the
  Lagrange polynomial through those points), rows and columns beyond the edge
  being point-reflected about the edge pixel, ``f[-k] = 2 f[0] - f[k]``
  (x first, then y).
* ``lanczos3`` / ``lanczos5`` -- ``sum data[j, i] L(|x - i|) L(|y - j|)`` over
  ``i = floor(x - n) + 1 .. floor(x + n)`` (same in y) clipped to the image,
  not normalised; ``L`` is read from a look-up table at 0.003 spacing with a
  truncated index, ``L(u) = sinc(u) sinc(u / n)``, as drizzle 3.0 does.
* ``sinc`` -- 15-point tapered sinc (drizzle <= 2.2 / IRAF ``ii_bisinc``
  style, separable).  With ``ix = nint(x)`` (round half away from zero) and
  ``dx = (x - ix) * sinscl`` the weight of pixel ``ix + k``, ``k = -7..7``, is::

      w_k = (-1)**k * T_k / (dx - k),     T_k = (1 + a2 u_k + a4 u_k**2)**2,
      u_k = (pi * k / 14)**2,  a2 = -0.49670,  a4 = 0.03705,

  normalised so that ``sum_k w_k = 1``; the same in y, and
  ``out = sum_k sum_m wy_k wx_m data[iy + k, ix + m]``.  (``(-1)**k / (dx - k)``
  is ``sinc(dx - k)`` up to the common factor ``sin(pi dx) / pi``, which the
  normalisation removes.)  If ``|dx - k| < 0.001`` for some ``k`` the x weights
  are a delta at ``k`` (so integer positions return the pixel exactly).  Taps
  beyond the image are clamped to the edge pixel.  ``sinscl`` (> 0, default 1)
  scales the fractional offset as in drizzle <= 2.2.

Deliberate differences from drizzle 3.0.0 ``blot_image`` (each pinned by a test):

* nearest: for x in [nx-0.5, nx) (or y in [ny-0.5, ny)) the last column (row) is used; the reference reads past the end of the array.
* a NaN in the pixmap gives ``fillval`` for that pixel; the reference raises ``Exception("NaN in pixmap[i,j]")``.
* poly3: in the last row (y in [ny-1, ny)) the two rows beyond the edge are reflected as everywhere else; the reference reads an uninitialised stack row there (non-deterministic output).
* poly5: in the last three rows (y >= ny-3) the third row beyond the edge is reflected as everywhere else; the reference (like drizzlepac) uses data row ny-4 unreflected there, so it is not exact even for a linear ramp.
* sinc is provided (removed from drizzle 3.0.0); ``sinscl`` applies only to it.

Images smaller than the interpolation stencil (poly3 < 3 px, poly5 < 4 px,
along an axis) clamp the mirrored index into the image instead of reading out
of bounds.

The kernels are Numba ``@njit(nogil=True, cache=True)`` functions over plain
arrays, one loop over output rows, no per-pixel allocation and no global
mutable state: they may be called from several threads at once on different
outputs.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .catalog import INTERPOLATOR_ALIASES as _ALIASES, INTERPOLATORS

__all__ = ["blot", "INTERPOLATORS"]

# --------------------------------------------------------------------------
# Look-up tables, built once at import and never written afterwards.

_LUT_SPACING = 0.003


def _make_lanczos_lut(order: int) -> np.ndarray:
    nlut = int(math.ceil(order / _LUT_SPACING)) + 1
    x = np.arange(nlut, dtype=np.float64) * _LUT_SPACING
    lut = np.zeros(nlut, dtype=np.float64)
    lut[0] = 1.0
    px = np.pi * x[1:]
    r = px / order
    vals = np.sin(px) * np.sin(r) / (px * r)
    lut[1:] = np.where(x[1:] <= order, vals, 0.0)
    lut.setflags(write=False)
    return lut


_LANCZOS_LUTS = {3: _make_lanczos_lut(3), 5: _make_lanczos_lut(5)}

_SINC_HALF = 7  # 15-point kernel


def _make_sinc_taper() -> np.ndarray:
    a2, a4 = -0.49670, 0.03705
    k = np.arange(-_SINC_HALF, _SINC_HALF + 1, dtype=np.float64)
    u = (np.pi * k / (2.0 * _SINC_HALF)) ** 2
    taper = (1.0 + a2 * u + a4 * u * u) ** 2
    taper *= np.where(k % 2 == 0, 1.0, -1.0)
    taper.setflags(write=False)
    return taper


_SINC_TAPER = _make_sinc_taper()
_SINC_MIN_DX = 0.001

# --------------------------------------------------------------------------
# Scalar helpers (no arrays: cheap to call per pixel).


@njit(nogil=True, cache=True, inline="always")
def _coords(xd, yd, nx, ny):
    """float32-round the pixmap entry; return (x, y, on_frame). NaN -> off."""
    x = np.float64(np.float32(xd))
    y = np.float64(np.float32(yd))
    # NaN fails every comparison, so it is reported as off the frame.
    ok = (x >= 0.0) & (x < nx) & (y >= 0.0) & (y < ny)
    return x, y, ok


@njit(nogil=True, cache=True, inline="always")
def _poly3_weights(s):
    """Everett cubic (ii_bipoly3) as weights of f[n-1], f[n], f[n+1], f[n+2]."""
    t = 1.0 - s
    p = s * (s * s - 1.0) / 6.0
    r = t * (t * t - 1.0) / 6.0
    return r, t - 2.0 * r + p, s + r - 2.0 * p, p


@njit(nogil=True, cache=True, inline="always")
def _poly5_weights(s):
    """Everett quintic (ii_bipoly5) as weights of f[n-2] .. f[n+3]."""
    t = 1.0 - s
    s2 = s * s
    t2 = t * t
    p = s * (s2 - 1.0) / 6.0
    q = s * (s2 - 1.0) * (s2 - 4.0) / 120.0
    r = t * (t2 - 1.0) / 6.0
    u = t * (t2 - 1.0) * (t2 - 4.0) / 120.0
    return (
        u,
        q + r - 4.0 * u,
        p - 4.0 * q + t - 2.0 * r + 6.0 * u,
        s - 2.0 * p + 6.0 * q + r - 4.0 * u,
        p - 4.0 * q + u,
        q,
    )


@njit(nogil=True, cache=True, inline="always")
def _reflect(k, n):
    """Index k as (w1, i1, w2, i2): f[k] = w1 f[i1] + w2 f[i2], point reflection.

    f[-k] = 2 f[0] - f[k];  f[n-1+k] = 2 f[n-1] - f[n-1-k].  The mirrored index
    is clamped into [0, n-1] for images smaller than the stencil.
    """
    if k < 0:
        m = -k
        if m > n - 1:
            m = n - 1
        return 2.0, 0, -1.0, m
    if k > n - 1:
        m = 2 * (n - 1) - k
        if m < 0:
            m = 0
        return 2.0, n - 1, -1.0, m
    return 1.0, k, 0.0, k


@njit(nogil=True, cache=True, inline="always")
def _clamp(k, n):
    if k < 0:
        return 0
    if k > n - 1:
        return n - 1
    return k


@njit(nogil=True, cache=True, inline="always")
def _sinc_weight(dx, k, taper_k):
    return taper_k / (dx - k)


# --------------------------------------------------------------------------
# Kernels: data float32 (ny, nx); pixmap float64 (NY, NX, 2); out float32 (NY, NX).


@njit(nogil=True, cache=True)
def _blot_nearest(data, pixmap, out, iscale, fillval):
    ny, nx = data.shape
    for j in range(out.shape[0]):
        for i in range(out.shape[1]):
            x, y, ok = _coords(pixmap[j, i, 0], pixmap[j, i, 1], nx, ny)
            if not ok:
                out[j, i] = fillval
                continue
            ix = int(x + 0.5)
            iy = int(y + 0.5)
            if ix > nx - 1:  # deliberate: the reference reads past the edge
                ix = nx - 1
            if iy > ny - 1:
                iy = ny - 1
            out[j, i] = np.float32(data[iy, ix] * iscale)


@njit(nogil=True, cache=True)
def _blot_linear(data, pixmap, out, iscale, fillval):
    ny, nx = data.shape
    for j in range(out.shape[0]):
        for i in range(out.shape[1]):
            x, y, ok = _coords(pixmap[j, i, 0], pixmap[j, i, 1], nx, ny)
            if not ok:
                out[j, i] = fillval
                continue
            ix = int(x)
            iy = int(y)
            f00 = np.float64(data[iy, ix])
            if ix == nx - 1:
                if iy == ny - 1:
                    v = f00
                else:
                    sy = y - iy
                    v = (1.0 - sy) * f00 + sy * data[iy + 1, ix]
            elif iy == ny - 1:
                sx = x - ix
                v = (1.0 - sx) * f00 + sx * data[iy, ix + 1]
            else:
                sx = x - ix
                sy = y - iy
                tx = 1.0 - sx
                ty = 1.0 - sy
                v = (
                    ty * (tx * f00 + sx * data[iy, ix + 1])
                    + sy * (tx * data[iy + 1, ix] + sx * data[iy + 1, ix + 1])
                )
            out[j, i] = np.float32(v * iscale)


@njit(nogil=True, cache=True, inline="always")
def _poly_edge(data, r0, c0, wx, wy, tw, ti, legacy_top):
    """``sum_k wy[k] sum_m wx[m] f[r0 + k, c0 + m]`` over the n x n stencil (n = len(wx)) with
    rows and columns beyond the image point-reflected (:func:`_reflect`), for stencils that
    cross an edge.  ``tw``/``ti`` (4, n) are scratch for the reflection tables.

    ``legacy_top=True`` reproduces drizzle 3.0.0's poly5 top-edge rows: when the stencil's last
    row is beyond the image, data row ny-4 is used there unreflected.
    """
    ny, nx = data.shape
    n = wx.shape[0]
    for k in range(n):
        tw[0, k], ti[0, k], tw[1, k], ti[1, k] = _reflect(r0 + k, ny)
        tw[2, k], ti[2, k], tw[3, k], ti[3, k] = _reflect(c0 + k, nx)
    if legacy_top and r0 + n - 1 > ny - 1:
        tw[0, n - 1] = 1.0
        ti[0, n - 1] = max(ny - 4, 0)
        tw[1, n - 1] = 0.0
        ti[1, n - 1] = ti[0, n - 1]
    v = 0.0
    for k in range(n):
        s = 0.0
        for m in range(n):
            s += wx[m] * (
                tw[0, k] * (tw[2, m] * data[ti[0, k], ti[2, m]] + tw[3, m] * data[ti[0, k], ti[3, m]])
                + tw[1, k] * (tw[2, m] * data[ti[1, k], ti[2, m]] + tw[3, m] * data[ti[1, k], ti[3, m]])
            )
        v += wy[k] * s
    return v


@njit(nogil=True, cache=True)
def _blot_poly3(data, pixmap, out, iscale, fillval):
    ny, nx = data.shape
    # Per-call scratch for the edge path.
    tw = np.empty((4, 4))
    ti = np.empty((4, 4), np.int64)
    wx = np.empty(4)
    wy = np.empty(4)
    for j in range(out.shape[0]):
        for i in range(out.shape[1]):
            x, y, ok = _coords(pixmap[j, i, 0], pixmap[j, i, 1], nx, ny)
            if not ok:
                out[j, i] = fillval
                continue
            ix = int(x)
            iy = int(y)
            wx0, wx1, wx2, wx3 = _poly3_weights(x - ix)
            wy0, wy1, wy2, wy3 = _poly3_weights(y - iy)
            c0 = ix - 1
            r0 = iy - 1
            if c0 >= 0 and ix + 2 <= nx - 1 and r0 >= 0 and iy + 2 <= ny - 1:
                v = (
                    wy0 * (wx0 * data[r0, c0] + wx1 * data[r0, c0 + 1]
                           + wx2 * data[r0, c0 + 2] + wx3 * data[r0, c0 + 3])
                    + wy1 * (wx0 * data[r0 + 1, c0] + wx1 * data[r0 + 1, c0 + 1]
                             + wx2 * data[r0 + 1, c0 + 2] + wx3 * data[r0 + 1, c0 + 3])
                    + wy2 * (wx0 * data[r0 + 2, c0] + wx1 * data[r0 + 2, c0 + 1]
                             + wx2 * data[r0 + 2, c0 + 2] + wx3 * data[r0 + 2, c0 + 3])
                    + wy3 * (wx0 * data[r0 + 3, c0] + wx1 * data[r0 + 3, c0 + 1]
                             + wx2 * data[r0 + 3, c0 + 2] + wx3 * data[r0 + 3, c0 + 3])
                )
            else:
                wx[0], wx[1], wx[2], wx[3] = wx0, wx1, wx2, wx3
                wy[0], wy[1], wy[2], wy[3] = wy0, wy1, wy2, wy3
                v = _poly_edge(data, r0, c0, wx, wy, tw, ti, False)
            out[j, i] = np.float32(v * iscale)


@njit(nogil=True, cache=True)
def _blot_poly5(data, pixmap, out, iscale, fillval, legacy_top):
    """``legacy_top=True`` reproduces drizzle 3.0.0's top-edge rows (see :func:`_poly_edge`);
    blot() passes False."""
    ny, nx = data.shape
    tw = np.empty((4, 6))
    ti = np.empty((4, 6), np.int64)
    wx = np.empty(6)
    wy = np.empty(6)
    for j in range(out.shape[0]):
        for i in range(out.shape[1]):
            x, y, ok = _coords(pixmap[j, i, 0], pixmap[j, i, 1], nx, ny)
            if not ok:
                out[j, i] = fillval
                continue
            ix = int(x)
            iy = int(y)
            wx[0], wx[1], wx[2], wx[3], wx[4], wx[5] = _poly5_weights(x - ix)
            wy[0], wy[1], wy[2], wy[3], wy[4], wy[5] = _poly5_weights(y - iy)
            c0 = ix - 2
            r0 = iy - 2
            if c0 >= 0 and ix + 3 <= nx - 1 and r0 >= 0 and iy + 3 <= ny - 1:
                v = 0.0
                for k in range(6):
                    r = r0 + k
                    s = (wx[0] * data[r, c0] + wx[1] * data[r, c0 + 1]
                         + wx[2] * data[r, c0 + 2] + wx[3] * data[r, c0 + 3]
                         + wx[4] * data[r, c0 + 4] + wx[5] * data[r, c0 + 5])
                    v += wy[k] * s
            else:
                v = _poly_edge(data, r0, c0, wx, wy, tw, ti, legacy_top)
            out[j, i] = np.float32(v * iscale)


@njit(nogil=True, cache=True)
def _blot_lanczos(data, pixmap, out, iscale, fillval, lut, order, space):
    ny, nx = data.shape
    nlut = lut.shape[0]
    nwin = 2 * order + 2
    wx = np.empty(nwin)
    for j in range(out.shape[0]):
        for i in range(out.shape[1]):
            x, y, ok = _coords(pixmap[j, i, 0], pixmap[j, i, 1], nx, ny)
            if not ok:
                out[j, i] = fillval
                continue
            # window floor(x - n) + 1 .. floor(x + n), x - n evaluated in float32
            ixs = int(math.floor(np.float32(x - order))) + 1
            ixe = int(math.floor(np.float32(x + order)))
            iys = int(math.floor(np.float32(y - order))) + 1
            iye = int(math.floor(np.float32(y + order)))
            if ixs < 0:
                ixs = 0
            if iys < 0:
                iys = 0
            if ixe > nx - 1:
                ixe = nx - 1
            if iye > ny - 1:
                iye = ny - 1
            for ii in range(ixs, ixe + 1):
                off = int(abs(x - ii) / space)  # truncated, as the reference
                wx[ii - ixs] = lut[off] if off < nlut else 0.0
            acc = 0.0
            for jj in range(iys, iye + 1):
                off = int(abs(y - jj) / space)
                if off >= nlut:
                    continue
                wy = lut[off]
                s = 0.0
                for ii in range(ixs, ixe + 1):
                    s += data[jj, ii] * wx[ii - ixs]
                acc += wy * s
            out[j, i] = np.float32(np.float32(acc) * iscale)


@njit(nogil=True, cache=True)
def _blot_sinc(data, pixmap, out, iscale, fillval, taper, sinscl):
    ny, nx = data.shape
    nsinc = (taper.shape[0] - 1) // 2
    nconv = taper.shape[0]
    wx = np.empty(nconv)
    wy = np.empty(nconv)
    for j in range(out.shape[0]):
        for i in range(out.shape[1]):
            x, y, ok = _coords(pixmap[j, i, 0], pixmap[j, i, 1], nx, ny)
            if not ok:
                out[j, i] = fillval
                continue
            # nint, half away from zero (x, y >= 0 here)
            ix = int(math.floor(x + 0.5))
            iy = int(math.floor(y + 0.5))
            for axis in range(2):
                if axis == 0:
                    d = (x - ix) * sinscl
                else:
                    d = (y - iy) * sinscl
                kk = int(math.floor(d + 0.5))
                if abs(d - kk) < 0.001 and -nsinc <= kk <= nsinc:
                    for k in range(nconv):
                        w = 1.0 if k - nsinc == kk else 0.0
                        if axis == 0:
                            wx[k] = w
                        else:
                            wy[k] = w
                    continue
                tot = 0.0
                for k in range(nconv):
                    w = _sinc_weight(d, k - nsinc, taper[k])
                    tot += w
                    if axis == 0:
                        wx[k] = w
                    else:
                        wy[k] = w
                inv = 1.0 / tot
                for k in range(nconv):
                    if axis == 0:
                        wx[k] *= inv
                    else:
                        wy[k] *= inv
            c0 = ix - nsinc
            r0 = iy - nsinc
            v = 0.0
            if c0 >= 0 and ix + nsinc <= nx - 1 and r0 >= 0 and iy + nsinc <= ny - 1:
                for k in range(nconv):
                    wk = wy[k]
                    if wk == 0.0:
                        continue
                    r = r0 + k
                    s = 0.0
                    for m in range(nconv):
                        s += wx[m] * data[r, c0 + m]
                    v += wk * s
            else:
                for k in range(nconv):
                    wk = wy[k]
                    if wk == 0.0:
                        continue
                    r = _clamp(r0 + k, ny)
                    s = 0.0
                    for m in range(nconv):
                        s += wx[m] * data[r, _clamp(c0 + m, nx)]
                    v += wk * s
            out[j, i] = np.float32(v * iscale)


# --------------------------------------------------------------------------
# Public API


def _normalise_interp(interp) -> str:
    if isinstance(interp, str):
        name = interp.strip().lower()
        name = _ALIASES.get(name, name)
        if name in INTERPOLATORS:
            return name
    allowed = ", ".join(repr(n) for n in INTERPOLATORS)
    raise ValueError(
        f"Unknown interpolator {interp!r}; allowed values are {allowed} "
        f"(case-insensitive; 'lan3'/'lan5' are aliases of 'lanczos3'/'lanczos5')."
    )


def blot(data, pixmap, out_shape=None, *, interp="poly5", iscale=1.0, sinscl=1.0,
         fillval=0.0) -> np.ndarray:
    """Resample ``data`` at the positions in ``pixmap``.

    Parameters
    ----------
    data : 2-D array
        Source image (coerced to C-contiguous float32).
    pixmap : array of shape (ny_out, nx_out, 2)
        ``pixmap[j, i] = (x, y)``: 0-based coordinates in ``data`` of output
        pixel ``(i, j)`` (coerced to C-contiguous float64).
    out_shape : tuple, optional
        Output shape; must equal ``pixmap.shape[:2]`` (the default).
    interp : str
        One of ``INTERPOLATORS`` (case-insensitive; ``lan3``/``lan5`` aliases).
    iscale : float
        Multiplies every interpolated value.
    sinscl : float
        Scale of the fractional offset for ``sinc`` (> 0); ignored otherwise.
    fillval : float
        Value of output pixels whose position is off ``data`` or NaN.

    Returns
    -------
    numpy.ndarray
        New float32 array of shape ``pixmap.shape[:2]``.

    See the module docstring for the formulas and the deliberate differences
    from drizzle 3.0.0 ``blot_image``.
    """
    method = _normalise_interp(interp)
    data = np.ascontiguousarray(data, dtype=np.float32)
    if data.ndim != 2:
        raise ValueError(f"'data' must be a 2-D array, got shape {data.shape}.")
    pixmap = np.ascontiguousarray(pixmap, dtype=np.float64)
    if pixmap.ndim != 3 or pixmap.shape[2] != 2:
        raise ValueError(
            f"'pixmap' must have shape (ny_out, nx_out, 2), got {pixmap.shape}.")
    pshape = tuple(int(n) for n in pixmap.shape[:2])
    if out_shape is not None:
        try:
            oshape = tuple(int(n) for n in out_shape)
        except TypeError:
            raise ValueError(f"'out_shape' must be a 2-tuple, got {out_shape!r}.") from None
        if oshape != pshape:
            raise ValueError(
                f"'out_shape' {oshape} does not match the pixmap's output shape "
                f"{pshape} (pixmap.shape[:2]).")
    iscale = float(iscale)
    if not math.isfinite(iscale):
        raise ValueError(f"'iscale' must be finite, got {iscale!r}.")
    sinscl = float(sinscl)
    if not (sinscl > 0.0 and math.isfinite(sinscl)):
        raise ValueError(f"'sinscl' must be positive and finite, got {sinscl!r}.")
    fillval = float(np.float32(fillval))

    out = np.empty(pshape, dtype=np.float32)
    if out.size == 0:
        return out
    if method == "nearest":
        _blot_nearest(data, pixmap, out, iscale, fillval)
    elif method == "linear":
        _blot_linear(data, pixmap, out, iscale, fillval)
    elif method == "poly3":
        _blot_poly3(data, pixmap, out, iscale, fillval)
    elif method == "poly5":
        _blot_poly5(data, pixmap, out, iscale, fillval, False)
    elif method in ("lanczos3", "lanczos5"):
        order = 3 if method == "lanczos3" else 5
        _blot_lanczos(data, pixmap, out, iscale, fillval, _LANCZOS_LUTS[order], order,
                      _LUT_SPACING)
    else:  # sinc
        _blot_sinc(data, pixmap, out, iscale, fillval, _SINC_TAPER, sinscl)
    return out
