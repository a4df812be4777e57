"""The tiled reductions' arithmetic: chips' sums added into a tile's, and a tile's sums divided.

The final and single drizzles add each chip's (or chip section's) float64 sums into the running
sums of every output tile it reaches, in chip order, then divide once per tile.  These kernels do
both in one pass over the pixels, releasing the GIL, with exactly the operations of the numpy
formulation they replace (the same bits):

* :func:`add_into`: ``num += s.num``, ``den += s.den``, ``var += s.var``, the chip's context bit
  ORed in where it contributed, ``dq |= s.dq`` -- over the overlap of the two boxes.  In each row
  only the stretch from the first to the last pixel where the section added something (a sum
  not 0) is touched; inside it every pixel is added, in branch-free loops (SIMD code):
  adding +-0 to a sum that started at +0 never changes it.
* :func:`finish_sci`: ``sci = float32(num / den)`` where ``den != 0``, ``fill`` where
  ``float32(den) == 0``, times ``scale``; ``wht = float32(den)``.
* :func:`finish_err`: ``err = float32(sqrt(var) / den * scale)`` where ``den != 0``, else NaN.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["add_into", "finish_sci", "finish_err"]

_EMPTY2 = np.zeros((0, 0))


@numba.njit(nogil=True, cache=True)
def _next_touched(a, b, v, c, q, has_var, has_ctx, has_dq, start, stop, step):
    """The first ``i`` of ``range(start, stop, step)`` where the section added something to
    its row (any of its sums ``a, b, v, c, q`` not 0), else ``stop``.  Called once per row
    and direction (inlined into the pixel loop, the arrays' reference counting made this scan
    slower than the adds)."""
    i = start
    while i != stop:
        if a[i] != 0.0 or b[i] != 0.0:
            return i
        if has_var and v[i] != 0.0:
            return i
        if has_ctx and c[i] != 0:
            return i
        if has_dq and q[i] != 0:
            return i
        i += step
    return stop


@numba.njit(nogil=True, cache=True)
def _add(num, den, var, ctx, dq, s_num, s_den, s_var, s_ctx, s_dq, bit, box):
    dy, dx, sy, sx, ny, nx = box
    has_var = var.shape[0] > 0
    has_ctx = ctx.shape[0] > 0
    has_dq = dq.shape[0] > 0
    none = np.uint8(0)
    for j in range(ny):
        a = s_num[sy + j, sx:sx + nx]
        b = s_den[sy + j, sx:sx + nx]
        v = s_var[sy + j, sx:sx + nx] if has_var else s_var[0, 0:0]
        c = s_ctx[sy + j, sx:sx + nx] if has_ctx else s_ctx[0, 0:0]
        q = s_dq[sy + j, sx:sx + nx] if has_dq else s_dq[0, 0:0]
        # the row's stretch from its first to its last pixel where the section added
        # something; inside it, every sum is added (branch-free loops, SIMD code): adding 0.0
        # leaves a sum that started at +0.0 as it was (such a sum is never -0.0), ORing 0
        # leaves a flag
        lo = _next_touched(a, b, v, c, q, has_var, has_ctx, has_dq, 0, nx, 1)
        if lo == nx:
            continue
        hi = _next_touched(a, b, v, c, q, has_var, has_ctx, has_dq, nx - 1, lo, -1)
        t0 = dx + lo
        m = hi - lo + 1
        t_num = num[dy + j, t0:t0 + m]
        t_den = den[dy + j, t0:t0 + m]
        a = a[lo:lo + m]
        b = b[lo:lo + m]
        for i in range(m):
            t_num[i] += a[i]
            t_den[i] += b[i]
        if has_var:
            t_var = var[dy + j, t0:t0 + m]
            v = v[lo:lo + m]
            for i in range(m):
                t_var[i] += v[i]
        if has_ctx:
            t_ctx = ctx[dy + j, t0:t0 + m]
            c = c[lo:lo + m]
            for i in range(m):
                t_ctx[i] |= bit if c[i] != 0 else none
        if has_dq:
            t_dq = dq[dy + j, t0:t0 + m]
            q = q[lo:lo + m]
            for i in range(m):
                t_dq[i] |= q[i]


def add_into(num, den, var, ctx, dq, bit, s_num, s_den, s_var, s_ctx, s_dq, dst, src):
    """Add one chip's sums into a tile's, in place, over their overlap.

    Parameters
    ----------
    num, den : 2-D float64 C-contiguous arrays
        The tile's Σ w·d and Σ w.
    var : 2-D float64 array or None
        The tile's Σ w²·var.
    ctx : 2-D uint8 array or None
        The tile's context byte plane that holds the chip's bit.
    dq : 2-D uint32 array or None
        The tile's DQ.
    bit : int
        The chip's bit in ``ctx`` (1, 2, 4, ... 128).
    s_num, s_den, s_var, s_ctx, s_dq : 2-D arrays (the last three may be None)
        The chip's sums; ``s_ctx`` (bool or int32) non-zero where it contributed.  A sum
        given on one side only (``var`` without ``s_var``, ...) is not added.
    dst, src : (y0, x0, ny, nx)
        The overlap: its first row and column in the tile and in the chip's sums, and its size.
    """
    # a sum left out on either side is left out on both: (0, 0) tile arrays and (1, 0) chip
    # arrays, whose empty row 0 the kernel slices
    if var is None or s_var is None:
        var, s_var = _EMPTY2, np.zeros((1, 0))
    if ctx is None or s_ctx is None:
        ctx, s_ctx = np.zeros((0, 0), np.uint8), np.zeros((1, 0), np.bool_)
    if dq is None or s_dq is None:
        dq, s_dq = np.zeros((0, 0), np.uint32), np.zeros((1, 0), np.uint32)
    _add(num, den, var, ctx, dq, s_num, s_den, s_var, s_ctx, s_dq, np.uint8(bit),
         (int(dst[0]), int(dst[1]), int(src[0]), int(src[1]), int(dst[2]), int(dst[3])))


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _finish_sci(num, den, fill, scale, scaled, sci, wht):
    ny, nx = den.shape
    for j in range(ny):
        for i in range(nx):
            d = den[j, i]
            w = np.float32(d)
            v = num[j, i] / d if d != 0.0 else np.nan
            if w == 0.0:
                v = fill
            if scaled:
                v *= scale
            sci[j, i] = np.float32(v)
            wht[j, i] = w


def finish_sci(num, den, fill, scale=None):
    """Science and weight from a tile's sums.

    Parameters
    ----------
    num, den : 2-D float64 arrays
        Σ w·d and Σ w.
    fill : float
        The science where ``float32(den) == 0`` (NaN allowed).
    scale : float or None
        Multiplies the science (``final_units="counts"``: the total exposure time), after the fill.

    Returns
    -------
    sci, wht : 2-D float32 arrays
    """
    sci = np.empty(den.shape, np.float32)
    wht = np.empty(den.shape, np.float32)
    _finish_sci(np.ascontiguousarray(num), np.ascontiguousarray(den), float(fill),
                1.0 if scale is None else float(scale), scale is not None, sci, wht)
    return sci, wht


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _finish_err(var, den, scale, scaled, err):
    ny, nx = den.shape
    for j in range(ny):
        for i in range(nx):
            d = den[j, i]
            v = math.sqrt(var[j, i]) / d if d != 0.0 else np.nan
            if scaled:
                v *= scale
            err[j, i] = np.float32(v)


def finish_err(var, den, scale=None):
    """The error from a tile's sums: ``sqrt(Σ w²·var) / Σ w`` (NaN where ``den`` is 0).

    Parameters
    ----------
    var, den : 2-D float64 arrays
        Σ w²·var and Σ w.
    scale : float or None
        Multiplies the error (``final_units="counts"``).

    Returns
    -------
    2-D float32 array
    """
    err = np.empty(den.shape, np.float32)
    _finish_err(np.ascontiguousarray(var), np.ascontiguousarray(den), 1.0 if scale is None else float(scale),
                scale is not None, err)
    return err
