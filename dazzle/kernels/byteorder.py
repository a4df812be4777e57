"""Byte order: big-endian FITS pixels swapped to native order in place, and native pixels copied
out in big-endian order for writing, without holding the GIL (``ndarray.byteswap`` holds it for
the whole swap, stalling the other worker threads)."""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["swap_inplace", "swap_float32_count_nonfinite", "swapped_copy"]


@numba.njit(nogil=True, cache=True)
def _swap16(u):
    for i in range(u.size):
        x = u[i]
        u[i] = ((x >> 8) & 0xFF) | ((x & 0xFF) << 8)


@numba.njit(nogil=True, cache=True)
def _swap32(u):
    for i in range(u.size):
        x = u[i]
        u[i] = ((x >> 24) & 0xFF) | ((x >> 8) & 0xFF00) | ((x & 0xFF00) << 8) | ((x & 0xFF) << 24)


@numba.njit(nogil=True, cache=True)
def _swap32_nonfinite(u):
    """``_swap32``, counting the float32 NaN/Inf (all exponent bits set) on the way."""
    n = 0
    for i in range(u.size):
        x = u[i]
        y = ((x >> 24) & 0xFF) | ((x >> 8) & 0xFF00) | ((x & 0xFF00) << 8) | ((x & 0xFF) << 24)
        u[i] = y
        n += 1 if (y & 0x7F800000) == 0x7F800000 else 0
    return n


@numba.njit(nogil=True, cache=True)
def _swapcopy16(src, dst):
    for i in range(src.size):
        x = src[i]
        dst[i] = ((x >> 8) & 0xFF) | ((x & 0xFF) << 8)


@numba.njit(nogil=True, cache=True)
def _swapcopy32(src, dst):
    for i in range(src.size):
        x = src[i]
        dst[i] = ((x >> 24) & 0xFF) | ((x >> 8) & 0xFF00) | ((x & 0xFF00) << 8) | ((x & 0xFF) << 24)


@numba.njit(nogil=True, cache=True)
def _swapcopy64(src, dst):
    for i in range(src.size):
        x = src[i]
        y = np.uint64(0)
        for b in range(8):
            y = (y << np.uint64(8)) | ((x >> np.uint64(8 * b)) & np.uint64(0xFF))
        dst[i] = y


_SWAPS = {2: (np.uint16, _swap16), 4: (np.uint32, _swap32)}
_SWAPCOPIES = {2: (np.uint16, _swapcopy16), 4: (np.uint32, _swapcopy32), 8: (np.uint64, _swapcopy64)}


def swap_inplace(a: np.ndarray) -> np.ndarray:
    """``a`` (writeable, C-contiguous) with its bytes swapped in place, viewed in the opposite
    byte order: the same values, native order if ``a`` was not.  Other item sizes or layouts
    fall back to ``ndarray.byteswap``."""
    swapped = a.dtype.newbyteorder()
    if a.itemsize in _SWAPS and a.flags.c_contiguous and a.flags.writeable:
        utype, swap = _SWAPS[a.itemsize]
        swap(a.reshape(-1).view(utype))
        return a.view(swapped)
    return a.byteswap(inplace=True).view(swapped)


def swap_float32_count_nonfinite(a: np.ndarray):
    """For a big-endian float32 array (writeable, C-contiguous): its native-order float32 view
    after an in-place swap (:func:`swap_inplace`) and the number of NaN/Inf values, counted in
    the same pass.  Any other array: ``(None, None)``, nothing done."""
    if (a.dtype != np.dtype(">f4") or np.dtype(">f4").isnative or not a.flags.c_contiguous
            or not a.flags.writeable):
        return None, None
    n = _swap32_nonfinite(a.reshape(-1).view(np.uint32))
    return a.view(np.float32), int(n)


def swapped_copy(a: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The bytes of ``a`` with each item's bytes reversed, written into the front of ``out``.

    One pass, without the GIL: a native array's big-endian bytes, as FITS stores them, without
    swapping the array in place.

    Parameters
    ----------
    a : numpy.ndarray
        1-D, C-contiguous; item size 2, 4 or 8.
    out : numpy.ndarray
        A uint8 buffer at least ``a.nbytes`` long, aligned for the item size.

    Returns
    -------
    numpy.ndarray
        The first ``a.nbytes`` bytes of ``out`` (uint8), now holding the swapped bytes.
    """
    utype, swap = _SWAPCOPIES[a.itemsize]
    dst = out[:a.nbytes].view(utype)
    swap(a.view(utype), dst)
    return out[:a.nbytes]
