"""The fast pixel map's fill: bilinear interpolation of output positions known on a grid.

:func:`dazzle.geometry.calc_pixmap` evaluates the exact WCS transform on a grid of input pixels
(every ``stepsize``, first and last row/column included) and fills every other pixel from it.
This kernel does the fill, the same operations in the same order as the numpy formulation it
replaces (along x for every grid row, then along y), so the pixel maps are the same bits; it
makes no full-size temporaries and releases the GIL.  An offset subtracted from every value
(the blot step's median section origin) is the last operation on each value: the same bits as
subtracting it from the finished map, without a second pass over it.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["interpolate_grid"]


@numba.njit(nogil=True, cache=True)
def _fill(g, gy, ymin, kx, tx, off, out):
    ngy = g.shape[0]
    nx = kx.shape[0]
    # along x, for every grid row: rows[r, i] = g[r, kx] * (1 - tx) + g[r, kx + 1] * tx
    rows = np.empty((ngy, nx, 2))
    single_x = g.shape[1] == 1
    for r in range(ngy):
        for i in range(nx):
            k = kx[i]
            for c in range(2):
                if single_x:
                    rows[r, i, c] = g[r, k, c]
                else:
                    rows[r, i, c] = g[r, k, c] * (1.0 - tx[i]) + g[r, k + 1, c] * tx[i]
    if ngy == 1:
        for j in range(out.shape[0]):
            for i in range(nx):
                for c in range(2):
                    out[j, i, c] = rows[0, i, c] - off[c]
        return
    # along y, one block of output rows per grid cell
    for k in range(ngy - 1):
        j0 = gy[k] - ymin
        j1 = gy[k + 1] - ymin
        jend = j1 + 1 if k == ngy - 2 else j1
        d = float(j1 - j0)
        for j in range(j0, jend):
            t = (j - j0) / d
            u = 1.0 - t
            for i in range(nx):
                for c in range(2):
                    out[j, i, c] = (rows[k, i, c] * u + rows[k + 1, i, c] * t) - off[c]


def interpolate_grid(g, gy, ymin, kx, tx, shape, offset=(0.0, 0.0)):
    """The full pixel map from its values on the grid.

    Parameters
    ----------
    g : float64 array (len(gy), len(gx), 2)
        Output positions (x, y) at the grid points.
    gy : int64 array
        The grid's input rows (absolute), increasing, first ``ymin``.
    ymin : int
        Input row of the map's first row.
    kx, tx : int64 and float64 arrays (nx,)
        Per map column: the grid column to its left and the fraction across that cell.
    shape : (ny, nx)
        The map's shape (without the last axis of 2).
    offset : (float, float)
        Subtracted from every (x, y) of the map, last.

    Returns
    -------
    float64 array (ny, nx, 2)
    """
    out = np.empty((int(shape[0]), int(shape[1]), 2), dtype=np.float64)
    _fill(np.ascontiguousarray(g, dtype=np.float64), np.asarray(gy, dtype=np.int64), int(ymin),
          np.asarray(kx, dtype=np.int64), np.asarray(tx, dtype=np.float64),
          np.array([float(offset[0]), float(offset[1])]), out)
    return out
