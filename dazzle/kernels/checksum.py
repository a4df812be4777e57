"""XXH64, the 64-bit xxHash checksum, as Numba loops: the checksums of the products' manifests.

The manifests (:func:`dazzle.products.write_manifest`) record a checksum of each file so that a
resumed run can tell a complete, unchanged product from a changed or cut one.  SHA-256 ran at
about 1 GB/s here and had to read every product back after writing it; XXH64 runs at memory
speed and is computed on the bytes as they are written.  It is a checksum against accidents
(a cut, a rewritten or a damaged file: any change passes with probability 2**-64, and the
length is part of the sum), not a defence against someone forging a file.

The algorithm is the published XXH64 (seed 0): 32-byte stripes fed into four lanes, the length
and the last < 32 bytes folded in at the end; the tests check the reference values.  Bytes are
read as little-endian 64-bit words.  :class:`XXH64` takes the bytes in pieces of any size.
"""

from __future__ import annotations

import sys

import numba
import numpy as np

__all__ = ["XXH64", "xxh64_hex"]

_P1 = np.uint64(0x9E3779B185EBCA87)
_P2 = np.uint64(0xC2B2AE3D27D4EB4F)
_P3 = np.uint64(0x165667B19E3779F9)
_P4 = np.uint64(0x85EBCA77C2B2AE63)
_P5 = np.uint64(0x27D4EB2F165667C5)
#: the lanes' starting values (seed 0): P1 + P2, P2, 0, -P1 (mod 2**64)
_START = tuple((v % 2**64) for v in (int(_P1) + int(_P2), int(_P2), 0, -int(_P1)))


@numba.njit(nogil=True, cache=True, inline="always")
def _rotl(x, r):
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@numba.njit(nogil=True, cache=True, inline="always")
def _round(acc, word):
    acc = acc + word * _P2
    return _rotl(acc, 31) * _P1


@numba.njit(nogil=True, cache=True)
def _stripes(lanes, words):
    """Feed ``words`` (uint64, a multiple of 4: whole 32-byte stripes) into ``lanes`` (4 uint64)."""
    v1, v2, v3, v4 = lanes[0], lanes[1], lanes[2], lanes[3]
    for i in range(0, words.size, 4):
        v1 = _round(v1, words[i])
        v2 = _round(v2, words[i + 1])
        v3 = _round(v3, words[i + 2])
        v4 = _round(v4, words[i + 3])
    lanes[0], lanes[1], lanes[2], lanes[3] = v1, v2, v3, v4


@numba.njit(nogil=True, cache=True, inline="always")
def _merge(h, v):
    h = h ^ _round(np.uint64(0), v)
    return h * _P1 + _P4


@numba.njit(nogil=True, cache=True)
def _digest(lanes, length, tail):
    """The checksum of ``length`` bytes whose whole stripes went into ``lanes`` and whose last
    ``tail.size`` (< 32) bytes are ``tail`` (uint8)."""
    if length >= 32:
        v1, v2, v3, v4 = lanes[0], lanes[1], lanes[2], lanes[3]
        h = _rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)
        h = _merge(_merge(_merge(_merge(h, v1), v2), v3), v4)
    else:
        h = _P5
    h = h + np.uint64(length)
    i, n = 0, tail.size
    while i + 8 <= n:
        w = np.uint64(0)
        for b in range(8):
            w |= np.uint64(tail[i + b]) << np.uint64(8 * b)
        h = h ^ _round(np.uint64(0), w)
        h = _rotl(h, 27) * _P1 + _P4
        i += 8
    if i + 4 <= n:
        w = np.uint64(0)
        for b in range(4):
            w |= np.uint64(tail[i + b]) << np.uint64(8 * b)
        h = h ^ (w * _P1)
        h = _rotl(h, 23) * _P2 + _P3
        i += 4
    while i < n:
        h = h ^ (np.uint64(tail[i]) * _P5)
        h = _rotl(h, 11) * _P1
        i += 1
    h = h ^ (h >> np.uint64(33))
    h = h * _P2
    h = h ^ (h >> np.uint64(29))
    h = h * _P3
    return h ^ (h >> np.uint64(32))


def _words(u8):
    """``u8`` (uint8, a multiple of 8 long) as native uint64 values of its little-endian words."""
    w = u8.view(np.uint64)
    return w if sys.byteorder == "little" else w.byteswap()


class XXH64:
    """A running XXH64 checksum (seed 0): :meth:`update` with bytes-like pieces, then
    :meth:`hexdigest` (16 hex digits).  Pieces of any size give the same checksum as the whole."""

    def __init__(self):
        self._lanes = np.array(_START, dtype=np.uint64)
        self._length = 0
        self._tail = np.zeros(0, dtype=np.uint8)   # < 32 bytes not yet fed

    def update(self, data) -> None:
        u8 = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
        self._length += u8.size
        if self._tail.size:
            fill = u8[:32 - self._tail.size]
            u8 = u8[fill.size:]
            self._tail = np.concatenate([self._tail, fill])
            if self._tail.size < 32:
                return
            _stripes(self._lanes, _words(self._tail))
        whole = u8.size - u8.size % 32
        if whole:
            _stripes(self._lanes, _words(u8[:whole]))
        self._tail = u8[whole:].copy()

    def hexdigest(self) -> str:
        return f"{int(_digest(self._lanes, self._length, self._tail)):016x}"


def xxh64_hex(data) -> str:
    """The XXH64 checksum (seed 0) of a bytes-like object, 16 hex digits."""
    h = XXH64()
    h.update(data)
    return h.hexdigest()
