"""A chip's drizzle inputs in one pass: the data less the sky, the EXP weights, the variance.

:func:`dazzle.steps.common.chip_inputs` needs, for every input pixel, ::

    good    = finite(sci) and (dq & bad) == 0 and static and cr   (inside ``window``)
    data    = float32(sci - sky), 0 where that is not finite
    weights = float32(exptime) where good, else 0                      (EXP weights)
    var     = float32(err) * float32(err)                              (final_err)

The numpy formulation makes a temporary per term and a pass per operation; :func:`prepare` does
them in one pass over the pixels with the same float32 operations (the same bits), releasing
the GIL.  ``window`` (the rows and columns a section drizzles; its halo around them is read, not
drizzled) gets zero weight outside it.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["prepare"]

_NO_MASK = np.ones((0, 0), dtype=np.bool_)
_NO_DQ = np.zeros((0, 0), dtype=np.int32)
_NO_ERR = np.zeros((0, 0), dtype=np.float32)


@numba.njit(nogil=True, cache=True)
def _prepare(sci, sky, dq, bad, static, cr, err, exptime, window, out_sci, out_w, out_var):
    ny, nx = sci.shape
    wy0, wy1, wx0, wx1 = window
    has_dq = dq.shape[0] > 0
    has_static = static.shape[0] > 0
    has_cr = cr.shape[0] > 0
    has_err = err.shape[0] > 0
    zero = np.float32(0.0)
    for j in range(ny):
        inside_row = wy0 <= j < wy1
        for i in range(nx):
            v = sci[j, i]
            d = v - sky
            out_sci[j, i] = d if math.isfinite(d) else zero
            good = inside_row and wx0 <= i < wx1 and math.isfinite(v)
            if good and has_dq:
                good = (dq[j, i] & bad) == 0
            if good and has_static:
                good = static[j, i]
            if good and has_cr:
                good = cr[j, i]
            out_w[j, i] = exptime if good else zero
            if has_err:
                e = err[j, i]
                out_var[j, i] = e * e


def prepare(sci, sky, exptime, *, dq=None, bad=0, static=None, cr=None, err=None, window=None):
    """The chip's data less the sky, EXP weights and (with ``err``) variance.

    Parameters
    ----------
    sci : 2-D float32 array
    sky : float
        Subtracted in float32.
    exptime : float
        The weight of a good pixel (as float32).
    dq : 2-D integer array, optional
        A pixel is bad where ``dq & bad`` is not 0.
    bad : int
        The DQ flags that make a pixel bad, in ``dq``'s integer type
        (:func:`dazzle.params.bad_dq_bits`).
    static, cr : 2-D bool arrays, optional
        True = good.
    err : 2-D array, optional
        The ERR array: the variance is its square (float32).
    window : (y0, y1, x0, x1), optional
        Half-open rows and columns that may have weight (default: all).

    Returns
    -------
    data, weights : 2-D float32 arrays
    var : 2-D float32 array or None
    """
    sci = np.ascontiguousarray(sci, dtype=np.float32)
    ny, nx = sci.shape
    if dq is not None and bad:
        dq = np.ascontiguousarray(dq)
    else:
        dq, bad = _NO_DQ, 0
    static = _NO_MASK if static is None else np.ascontiguousarray(static, dtype=np.bool_)
    cr = _NO_MASK if cr is None else np.ascontiguousarray(cr, dtype=np.bool_)
    for name, a in (("dq", dq), ("static", static), ("cr", cr)):
        if a.shape[0] and a.shape != sci.shape:
            raise ValueError(f"{name} shape {a.shape} != sci shape {sci.shape}")
    err32 = _NO_ERR if err is None else np.ascontiguousarray(err, dtype=np.float32)
    if err is not None and err32.shape != sci.shape:
        raise ValueError(f"err shape {err32.shape} != sci shape {sci.shape}")
    window = (0, ny, 0, nx) if window is None else tuple(int(v) for v in window)
    out_sci = np.empty_like(sci)
    out_w = np.empty_like(sci)
    out_var = np.empty_like(sci) if err is not None else _NO_ERR
    _prepare(sci, np.float32(sky), dq, np.array(bad, dtype=np.uint64).astype(dq.dtype)[()], static, cr, err32, np.float32(exptime),
             np.array(window, dtype=np.int64), out_sci, out_w, out_var)
    return out_sci, out_w, (out_var if err is not None else None)
