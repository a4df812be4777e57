"""In-place byte swapping of big-endian FITS pixels (dazzle.kernels.byteorder)."""

import numpy as np
import pytest

from dazzle.kernels.byteorder import swap_float32_count_nonfinite, swap_inplace


@pytest.mark.parametrize("dtype", [">f4", ">i2", ">u2", ">i4", ">f8", "<f4"])
def test_swap_keeps_values_and_flips_the_byte_order(dtype):
    rng = np.random.default_rng(3)
    values = (rng.normal(size=(37, 53)) * 1000).astype(dtype)
    values.flat[:4] = [0, -1 if np.dtype(dtype).kind != "u" else 1, 255, 256]
    a = values.copy()
    buf = a.ctypes.data
    out = swap_inplace(a)
    assert out.ctypes.data == buf                      # in place, no copy
    assert out.dtype == np.dtype(dtype).newbyteorder()
    assert np.array_equal(out, values)
    assert out.tobytes() == values.astype(np.dtype(dtype).newbyteorder()).tobytes()


def test_non_contiguous_falls_back_to_numpy():
    values = np.arange(60, dtype=">f4").reshape(6, 10)[:, ::2].copy()
    view = np.arange(60, dtype=">f4").reshape(6, 10)[:, ::2]
    out = swap_inplace(view)
    assert np.array_equal(out, values)


def test_swap_float32_counts_nonfinite_in_the_same_pass():
    values = np.random.default_rng(4).normal(size=(29, 31)).astype(">f4")
    values.flat[[0, 5, 77, 800]] = [np.nan, np.inf, -np.inf, np.float32(3.4e38)]
    values.flat[6] = np.frombuffer(b"\x7f\x80\x00\x01", ">f4")[0]       # a signalling NaN
    a = values.copy()
    out, n = swap_float32_count_nonfinite(a)
    assert n == int(np.count_nonzero(~np.isfinite(values))) == 4
    assert out.dtype == np.float32 and out.dtype.isnative and np.shares_memory(out, a)
    assert out.tobytes() == values.astype(np.float32).tobytes()
    # anything but a writeable contiguous big-endian float32 array is left alone
    for other in (values.astype(np.float32), values.astype(">f8"), values[:, ::2]):
        assert swap_float32_count_nonfinite(other) == (None, None)


@pytest.mark.parametrize("dtype", ["<f4", "<f8", "<i2", "<i4", "<i8", ">f4"])
def test_swapped_copy_gives_the_other_byte_order_and_leaves_the_array(dtype):
    from dazzle.kernels.byteorder import swapped_copy

    a = (np.random.default_rng(4).normal(size=301) * 1000).astype(dtype)
    before = a.copy()
    out = np.full(a.nbytes + 16, 7, dtype=np.uint8)
    got = swapped_copy(a, out)
    assert got.tobytes() == a.astype(a.dtype.newbyteorder()).tobytes()
    assert np.array_equal(a, before) and np.all(out[a.nbytes:] == 7)
