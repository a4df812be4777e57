"""Byte order: big-endian FITS pixels swapped to native order in place, without holding the GIL
(``ndarray.byteswap`` holds it for the whole swap, stalling the other worker threads)."""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["swap_inplace"]


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


_SWAPS = {2: (np.uint16, _swap16), 4: (np.uint32, _swap32)}


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
