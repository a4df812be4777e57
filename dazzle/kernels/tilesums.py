"""The tiled reductions' arithmetic: chips' sums added into a tile's, and a tile's sums divided.

The final and single drizzles add each chip's (or chip section's) float64 sums into the running
sums of every output tile it reaches, in chip order, then divide once per tile.  These kernels do
both in one pass over the pixels, releasing the GIL, with exactly the operations of the numpy
formulation they replace (the same bits):

* :func:`add_into`: ``num += s.num``, ``den += s.den``, ``var += s.var``, the chip's context bit
  ORed in where it contributed, ``dq |= s.dq`` -- over the overlap of the two boxes.  A pixel
  where the section added nothing (all its sums 0) is skipped: adding +-0 to a sum that started
  at +0 never changes it.
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
def _add(num, den, var, ctx, dq, s_num, s_den, s_var, s_ctx, s_dq, bit, box):
    dy, dx, sy, sx, ny, nx = box
    has_var = var.shape[0] > 0
    has_ctx = ctx.shape[0] > 0
    has_dq = dq.shape[0] > 0
    for j in range(ny):
        for i in range(nx):
            a = s_num[sy + j, sx + i]
            b = s_den[sy + j, sx + i]
            v = s_var[sy + j, sx + i] if has_var else 0.0
            c = has_ctx and s_ctx[sy + j, sx + i] != 0
            q = s_dq[sy + j, sx + i] if has_dq else 0
            if a == 0.0 and b == 0.0 and v == 0.0 and not c and q == 0:
                continue
            num[dy + j, dx + i] += a
            den[dy + j, dx + i] += b
            if has_var:
                var[dy + j, dx + i] += v
            if c:
                ctx[dy + j, dx + i] |= bit
            if has_dq:
                dq[dy + j, dx + i] |= q


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
        The chip's sums; ``s_ctx`` (bool or int32) non-zero where it contributed.
    dst, src : (y0, x0, ny, nx)
        The overlap: its first row and column in the tile and in the chip's sums, and its size.
    """
    none2 = _EMPTY2
    _add(num, den, none2 if var is None else var, np.zeros((0, 0), np.uint8) if ctx is None else ctx,
         np.zeros((0, 0), np.uint32) if dq is None else dq, s_num, s_den, none2 if s_var is None else s_var,
         np.zeros((0, 0), np.bool_) if s_ctx is None else s_ctx,
         np.zeros((0, 0), np.uint32) if s_dq is None else s_dq, np.uint8(bit),
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
