"""kernels.inputs.prepare (a chip's data, EXP weights and variance in one pass) against the numpy
formulation it replaces in steps.common.chip_inputs: the same bits.  ~1 s."""

import numpy as np
import pytest

from dazzle.kernels.inputs import prepare
from dazzle.params import bad_dq_bits, good_pixel_mask

BITS = (None, 0, "64,32", "~4096", 4096, ~4096, "", "INDEF", "~(16+32)")
DTYPES = (np.int16, np.uint16, np.int32, np.uint8, np.int64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bad_dq_bits_agrees_with_good_pixel_mask(dtype):
    rng = np.random.default_rng(1)
    info = np.iinfo(dtype)
    dq = rng.integers(info.min, info.max, size=4000, dtype=dtype, endpoint=True)
    dq[::3] = rng.choice([0, 4, 32, 64, 96, 4096, 16384], size=dq[::3].size).astype(dtype)
    for bits in BITS:
        bad = bad_dq_bits(dtype, bits)
        mine = (dq & np.array(bad, dtype=np.uint64).astype(dtype)) == 0
        assert np.array_equal(mine, good_pixel_mask(dq, bits)), bits
    assert bad_dq_bits(dtype, None) == 0
    assert bad_dq_bits(dtype, 0) == (1 << (8 * np.dtype(dtype).itemsize)) - 1


def _numpy(sci, sky, exptime, dq, bits, static, cr, err, window):
    mask = np.isfinite(sci)
    if dq is not None:
        mask &= good_pixel_mask(dq, bits)
    if static is not None:
        mask &= static
    if cr is not None:
        mask &= cr
    w = mask.astype(np.float32)
    w *= np.float32(exptime)
    y0, y1, x0, x1 = window
    w[:y0] = 0
    w[y1:] = 0
    w[:, :x0] = 0
    w[:, x1:] = 0
    d = sci.astype(np.float32) - np.float32(sky)
    d[~np.isfinite(d)] = 0
    var = None if err is None else err.astype(np.float32) * err.astype(np.float32)
    return d, w, var


@pytest.mark.parametrize("seed", range(4))
def test_prepare_same_bits_as_numpy(seed):
    rng = np.random.default_rng(seed)
    ny, nx = 37, 53
    sci = (rng.normal(100, 30, (ny, nx))).astype(np.float32)
    sci[rng.random((ny, nx)) < 0.05] = np.nan
    sci[rng.random((ny, nx)) < 0.02] = np.inf
    sci[0, 0] = -np.inf
    sci[1, 1] = np.float32(3e38)          # - sky stays finite; with a huge negative sky it would not
    dtype = DTYPES[seed % len(DTYPES)]
    dq = rng.choice([0, 0, 0, 4, 32, 64, 4096, 16], size=(ny, nx)).astype(dtype)
    static = rng.random((ny, nx)) > 0.1 if seed % 2 else None
    cr = rng.random((ny, nx)) > 0.1 if seed < 2 else None
    err = (rng.random((ny, nx)) * 5).astype(np.float32 if seed % 2 else np.float64)
    window = (2, ny - 3, 1, nx - 4) if seed % 2 else (0, ny, 0, nx)
    sky, exptime = 12.345678, 507.3
    for bits in BITS:
        got = prepare(sci, sky, exptime, dq=dq, bad=bad_dq_bits(dq.dtype, bits), static=static, cr=cr,
                      err=err, window=window)
        want = _numpy(sci, sky, exptime, dq, bits, static, cr, err, window)
        for g, w in zip(got, want):
            assert g.dtype == np.float32
            assert np.array_equal(g.view(np.uint32), w.view(np.uint32)), bits   # bits, signed zeros too
    d, w, var = prepare(sci, sky, exptime)
    assert var is None
    assert np.array_equal(w != 0, np.isfinite(sci))


def test_prepare_rejects_mismatched_shapes():
    sci = np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError, match="static shape"):
        prepare(sci, 0.0, 1.0, static=np.ones((5, 4), bool))
    with pytest.raises(ValueError, match="err shape"):
        prepare(sci, 0.0, 1.0, err=np.ones((4, 4), np.float32))
