"""The fast pixel map's Numba fill (dazzle.kernels.pixmap) against the numpy formulation it
replaced: the same bits."""

import numpy as np
import pytest

from dazzle.geometry import _grid, _interp_index
from dazzle.kernels.pixmap import interpolate_grid


def numpy_fill(g, gx, gy, xmin, ymin, bnx, bny):
    """The separable bilinear fill as calc_pixmap computed it with numpy."""
    kx, tx = _interp_index(gx, xmin, bnx)
    tx = tx[None, :, None]
    rows = g[:, kx, :] if len(gx) == 1 else g[:, kx, :] * (1.0 - tx) + g[:, kx + 1, :] * tx
    out = np.empty((bny, bnx, 2))
    if len(gy) == 1:
        out[:] = rows[0]
        return out
    for k in range(len(gy) - 1):
        j0, j1 = gy[k] - ymin, gy[k + 1] - ymin
        jj = np.arange(j0, j1 + 1 if k == len(gy) - 2 else j1)
        t = ((jj - j0) / float(j1 - j0))[:, None, None]
        out[jj[0]:jj[-1] + 1] = rows[k] * (1.0 - t) + rows[k + 1] * t
    return out


@pytest.mark.parametrize("xmin,xmax,ymin,ymax,step", [(0, 99, 0, 63, 10), (5, 300, 17, 203, 7),
                                                      (0, 0, 4, 100, 10), (3, 200, 9, 9, 3),
                                                      (0, 57, 0, 41, 1000)])
def test_fill_matches_numpy_bit_for_bit(xmin, xmax, ymin, ymax, step):
    rng = np.random.default_rng(7)
    gx, gy = _grid(xmin, xmax, step), _grid(ymin, ymax, step)
    # a smooth distortion plus noise in the last bits: any change of operation order shows
    xx, yy = np.meshgrid(gx.astype(float), gy.astype(float))
    g = np.stack([1.3 * xx + 1e-4 * yy ** 2, 0.9 * yy - 2e-4 * xx * yy], axis=-1)
    g += rng.normal(0, 1e-3, g.shape)
    bnx, bny = xmax - xmin + 1, ymax - ymin + 1
    kx, tx = _interp_index(gx, xmin, bnx)
    got = interpolate_grid(g, gy, ymin, kx, tx, (bny, bnx))
    want = numpy_fill(g, gx, gy, xmin, ymin, bnx, bny)
    assert got.shape == (bny, bnx, 2)
    assert got.tobytes() == want.tobytes()
    # the grid points themselves are reproduced exactly
    assert np.array_equal(got[gy[:, None] - ymin, gx[None, :] - xmin], g)


@pytest.mark.parametrize("xmin,xmax,ymin,ymax,step", [(0, 99, 0, 63, 10), (0, 57, 4, 4, 10)])
def test_offset_is_the_same_bits_as_subtracting_afterwards(xmin, xmax, ymin, ymax, step):
    """The blot step's median-section offset, subtracted inside the fill (one pass over the
    map instead of three), gives the bits of subtracting it from the finished map; values
    near and below the offset included (a few ms)."""
    rng = np.random.default_rng(11)
    gx, gy = _grid(xmin, xmax, step), _grid(ymin, ymax, step)
    xx, yy = np.meshgrid(gx.astype(float), gy.astype(float))
    g = np.stack([1.13 * xx + 0.11 * yy - 3.7, 0.99 * yy + 1e-4 * xx ** 2 + 37.0], axis=-1)
    g += rng.normal(0, 1e-3, g.shape)
    bnx, bny = xmax - xmin + 1, ymax - ymin + 1
    kx, tx = _interp_index(gx, xmin, bnx)
    plain = interpolate_grid(g, gy, ymin, kx, tx, (bny, bnx))
    for off in ((0, 0), (17, 40), (3, 0)):
        want = plain.copy()
        want[..., 0] -= off[0]
        want[..., 1] -= off[1]
        got = interpolate_grid(g, gy, ymin, kx, tx, (bny, bnx), offset=off)
        assert got.tobytes() == want.tobytes()
    assert np.signbit(interpolate_grid(np.full((1, 1, 2), -0.0), np.array([0]), 0, np.zeros(3, np.int64),
                                       np.zeros(3), (1, 3))).all()   # -0.0 - 0 stays -0.0
