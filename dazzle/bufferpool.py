"""One exposure's float64 sums handed on to the next exposure of a local run.

Each exposure's single drizzle adds its chips into zero float64 sums over its whole box
(:func:`dazzle.steps.driz_separate.exposure_sums`): on the WFC benchmark set two arrays of
4662 x 4598, 343 MB an exposure.  Arrays that large get memory of their own from the system
(glibc maps them; dazzle's threshold is 64 MiB, :func:`dazzle.cluster.tune_malloc`), which the
system has to find and zero again for the next exposure (on this project's VMs memory not
used lately costs up to ~3 s of system time a GB: ``dazzle.directwrite``).  While
:func:`enabled` (a local run on threads, :func:`dazzle.cluster.compute`), an exposure's
written sums are kept here (one exposure's set at most) and the next exposure takes them,
zeroed: the same zeros, so the same bits.  The median's first tile, which runs after every
single image is written, empties the pool (:func:`clear`), so the memory the final drizzle
needs is not held here; so does the end of the run.

Nothing here knows about drizzling: arrays only.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

__all__ = ["clear", "enabled", "give_back", "zeros"]

_lock = threading.Lock()
_kept: list = []     # C-contiguous arrays that own their memory (what zeros' results are views of)
_on = False

#: at most this many buffers are kept (num, den, var of one exposure)
MAX_KEPT = 3

#: while enabled, a new buffer is this much longer than asked for, so that the next exposure,
#: whose box is a few pixels larger (the dithers), fits in it; the slack is never written, so
#: the system gives it no memory
SLACK = 1.03


@contextlib.contextmanager
def enabled():
    """Arrays given back while the block runs are kept for reuse; all are dropped at its end."""
    global _on
    with _lock:
        _on = True
    try:
        yield
    finally:
        with _lock:
            _on = False
        clear()


def zeros(shape, dtype=np.float64) -> np.ndarray:
    """``np.zeros(shape, dtype)``, C-contiguous: the start of a kept buffer long enough, zeroed,
    if there is one."""
    shape = tuple(int(n) for n in shape)
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    with _lock:
        fits = [i for i, b in enumerate(_kept) if b.dtype == dtype and b.size >= n]
        # by position: list.remove would compare arrays with == (element by element)
        buf = _kept.pop(min(fits, key=lambda i: _kept[i].size)) if fits else None
        slack = SLACK if _on else 1.0
    if buf is None:   # new: zeros already
        return np.zeros(max(n, int(n * slack)), dtype)[:n].reshape(shape)
    flat = buf.reshape(-1)[:n]
    flat.fill(0)
    return flat.reshape(shape)


def give_back(*arrays) -> None:
    """Arrays nothing will use again (None skipped): the memory they live in (the array, or
    the array it is a view of) is kept while :func:`enabled` (the largest :data:`MAX_KEPT`
    buffers), else dropped.  Only C-contiguous memory is kept."""
    with _lock:
        if not _on:
            return
        for a in arrays:
            if not isinstance(a, np.ndarray):
                continue
            buf = a if a.base is None else a.base
            if (isinstance(buf, np.ndarray) and buf.flags.owndata and buf.flags.c_contiguous
                    and not any(b is buf for b in _kept)):
                _kept.append(buf)
        _kept.sort(key=lambda b: -b.nbytes)
        del _kept[MAX_KEPT:]


def clear() -> None:
    """Drop every kept buffer."""
    with _lock:
        _kept.clear()


def kept() -> int:
    """How many buffers are kept (for tests and diagnostics)."""
    with _lock:
        return len(_kept)
