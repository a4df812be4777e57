"""glibc's malloc during a local run (:func:`dazzle.cluster.tuned_malloc`): freed section-size
blocks are reused, not faulted in again, by every thread; afterwards the memory goes back."""

import os
import resource
import sys
import threading

import numpy as np
import pytest

from dazzle import cluster

MB48 = 48 << 20   # a block below the run's mmap threshold (64 MiB): served from the heap

glibc = pytest.mark.skipif(not sys.platform.startswith("linux") or os.environ.get("MALLOC_MMAP_THRESHOLD_")
                           or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""),
                           reason="glibc's malloc on Linux, not set by the environment")


def _faults(nbytes):
    """Minor page faults of making, touching and dropping one array of ``nbytes``."""
    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = np.ones(nbytes // 8)
    assert a[::4096].sum() == len(a[::4096])
    del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0


def _exited_threads_arenas(n=4):
    """Threads that allocate and exit before the run, as dask's and numba's earlier ones do in a
    long-lived process: glibc keeps their arenas and hands them to later threads first."""
    def work():
        keep = [bytearray(200) for _ in range(2000)]
        return len(keep)
    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@glibc
def test_run_reuses_freed_blocks_in_every_thread_then_gives_them_back():
    _exited_threads_arenas()
    with cluster.tuned_malloc() as tuned:
        assert tuned
        _faults(MB48)                          # the heap grows once
        again = [_faults(MB48) for _ in range(3)]
        other = []
        t = threading.Thread(target=lambda: other.extend(_faults(MB48) for _ in range(3)))
        t.start()
        t.join()
    after = [_faults(MB48) for _ in range(2)]
    # measured: 0-1 faults per block while tuned; 480-540 after (fresh pages: 24 huge pages
    # and the rest; 12288 without transparent huge pages), as with glibc's defaults.  The other
    # thread may be handed an arena made before the run (here: _exited_threads_arenas), whose
    # heap then grows once, like the main one: 534 faults here, 1014 in CI (regression: the
    # first version asserted that block too, and failed in CI's long-lived test process)
    assert max(again) < 20 and max(other[1:]) < 20, (again, other)
    assert min(after) > 100, after


def test_environment_settings_win(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", str(1 << 20))
    assert not cluster.tune_malloc()
    with cluster.tuned_malloc() as tuned:
        assert not tuned
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    with cluster.tuned_malloc() as tuned:
        assert not tuned
