"""The tiled reductions' kernels (``dazzle.kernels.tilesums``, issue 11) against the numpy
expressions they replace: the same bits, over overlaps of any placement, with and without the
variance, context and DQ sums, and the division with fills, scales, zero and tiny weights.

Cost: under a second (after the kernels are compiled or loaded from the cache)."""

from __future__ import annotations

import numpy as np
import pytest

from dazzle.kernels.tilesums import add_into, finish_err, finish_sci


def _sums(rng, shape, zero_frac=0.5):
    num = rng.normal(0, 5, shape)
    den = rng.uniform(0, 3, shape)
    var = rng.uniform(0, 2, shape)
    off = rng.random(shape) < zero_frac
    num[off] = den[off] = var[off] = 0.0
    num[0, 0] = -0.0   # a signed zero where nothing else is
    return num, den, var


@pytest.mark.parametrize("with_var,with_ctx,with_dq", [(True, True, True), (False, False, False), (True, False, True)])
@pytest.mark.parametrize("ctx_type", [bool, np.int32])
def test_add_into_is_the_numpy_adds(with_var, with_ctx, with_dq, ctx_type):
    rng = np.random.default_rng(7)
    tile = [a.copy() for a in _sums(rng, (30, 40), 0.2)]
    tile_ctx = rng.integers(0, 256, (30, 40)).astype(np.uint8)
    tile_dq = rng.integers(0, 1 << 20, (30, 40)).astype(np.uint32)
    s_num, s_den, s_var = _sums(rng, (25, 22))
    s_ctx = ((s_den > 0) | (rng.random((25, 22)) < 0.1)).astype(ctx_type)
    s_dq = rng.integers(0, 1 << 10, (25, 22)).astype(np.uint32)
    dst, src = (5, 21, 20, 19), (3, 2, 20, 19)   # rows 5..25, columns 21..40 of the tile
    d = np.s_[5:25, 21:40]
    sl = np.s_[3:23, 2:21]
    want = [a.copy() for a in tile] + [tile_ctx.copy(), tile_dq.copy()]
    want[0][d] += s_num[sl]
    want[1][d] += s_den[sl]
    if with_var:
        want[2][d] += s_var[sl]
    if with_ctx:
        np.bitwise_or(want[3][d], np.uint8(16), out=want[3][d], where=s_ctx[sl] != 0)
    if with_dq:
        want[4][d] |= s_dq[sl]
    got = [a.copy() for a in tile] + [tile_ctx.copy(), tile_dq.copy()]
    add_into(got[0], got[1], got[2] if with_var else None, got[3] if with_ctx else None,
             got[4] if with_dq else None, 16, s_num, s_den, s_var if with_var else None,
             s_ctx if with_ctx else None, s_dq if with_dq else None, dst, src)
    for g, w in zip(got, want):
        assert g.tobytes() == w.tobytes()
    assert not np.array_equal(got[0], tile[0])


@pytest.mark.parametrize("fill", [np.nan, 0.0, -7.5])
@pytest.mark.parametrize("scale", [None, 1234.5])
def test_finish_is_the_numpy_division(fill, scale):
    rng = np.random.default_rng(3)
    num, den, var = _sums(rng, (50, 60), 0.3)
    den[1, 1] = 1e-300   # a weight that is 0 in float32: filled, as the product's WHT says 0
    num[1, 1] = 1e-290
    den[2, 2] = -0.0
    sci, wht = finish_sci(num, den, fill, scale)
    want_w = den.astype(np.float32)
    want = np.full(den.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(num, den, out=want, where=den != 0)
    want[want_w == 0] = fill
    if scale is not None:
        want *= scale
    assert sci.tobytes() == want.astype(np.float32).tobytes() and wht.tobytes() == want_w.tobytes()
    err = finish_err(var, den, scale)
    want_e = np.full(den.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(np.sqrt(var), den, out=want_e, where=den != 0)
    if scale is not None:
        want_e *= scale
    assert err.tobytes() == want_e.astype(np.float32).tobytes()
    assert np.isfinite(err).sum() > 1000


@pytest.mark.parametrize("with_var,with_ctx,with_dq", [(True, True, True), (False, False, False), (True, False, False),
                                                       (False, True, False), (False, False, True)])
def test_add_into_rows_touched_only_in_part(with_var, with_ctx, with_dq):
    """add_into adds each row from its first to its last pixel where the chip added anything;
    what decides the stretch is any sum not 0 (the context or DQ alone, a NaN, a negative
    weight); empty rows and the rest are left alone."""
    rng = np.random.default_rng(11)
    shape = (12, 30)
    s = [np.zeros(shape), np.zeros(shape), np.zeros(shape), np.zeros(shape, bool), np.zeros(shape, np.uint32)]
    s[0][1, 4:9] = rng.normal(size=5)
    s[1][1, 4:9] = rng.uniform(0.5, 1, 5)
    s[1][1, 6] = 0.0                      # a hole inside the stretch
    s[0][2, 29] = np.nan                  # only a NaN, at the row's end
    s[1][3, 0] = -0.25                    # only a negative weight, at the row's start
    s[2][4, 17] = 2.0                     # only a variance
    s[3][5, 3] = True                     # only the context
    s[4][6, 25] = 8                       # only a DQ flag
    s[0][7, :] = rng.normal(size=30)      # a full row
    # row 0 and rows 8.. empty
    tile = [np.full(shape, 1.5), np.full(shape, 2.5), np.full(shape, 3.5), np.full(shape, 64, np.uint8),
            np.full(shape, 1, np.uint32)]
    want = [a.copy() for a in tile]
    want[0] += s[0]
    want[1] += s[1]
    if with_var:
        want[2] += s[2]
    if with_ctx:
        want[3][s[3]] |= 2
    if with_dq:
        want[4] |= s[4]
    got = [a.copy() for a in tile]
    add_into(got[0], got[1], got[2] if with_var else None, got[3] if with_ctx else None, got[4] if with_dq else None,
             2, s[0], s[1], s[2] if with_var else None, s[3] if with_ctx else None, s[4] if with_dq else None,
             (0, 0) + shape, (0, 0) + shape)
    for g, w in zip(got, want):
        assert g.tobytes() == w.tobytes()
    # a sum given on one side only is not added
    one = [a.copy() for a in tile]
    add_into(one[0], one[1], one[2], None, None, 2, s[0], s[1], None, s[3], s[4], (0, 0) + shape, (0, 0) + shape)
    assert one[2].tobytes() == tile[2].tobytes()
    assert one[0].tobytes() == (tile[0] + s[0]).tobytes()
