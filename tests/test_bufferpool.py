"""dazzle.bufferpool: an exposure's written sums handed on to the next exposure (local runs)."""

import threading

import numpy as np
import pytest

from dazzle import bufferpool


@pytest.fixture(autouse=True)
def _empty():
    bufferpool.clear()
    yield
    bufferpool.clear()


def test_arrays_are_kept_only_while_enabled_and_come_back_zeroed():
    a = bufferpool.zeros((5, 7))
    assert a.dtype == np.float64 and a.shape == (5, 7) and a.flags.c_contiguous and not a.any()
    a[...] = 3.0
    bufferpool.give_back(a)            # not enabled: dropped
    assert bufferpool.kept() == 0
    with bufferpool.enabled():
        bufferpool.give_back(a, None)
        assert bufferpool.kept() == 1
        assert not np.shares_memory(bufferpool.zeros((5, 8)), a)         # larger: a new array
        assert not np.shares_memory(bufferpool.zeros((5, 7), np.float32), a)   # another type
        b = bufferpool.zeros((6, 5))   # no larger than a: a's memory, zeroed
        assert np.shares_memory(b, a) and b.shape == (6, 5) and b.flags.c_contiguous and not b.any()
        assert bufferpool.kept() == 0
        bufferpool.give_back(b)
        assert bufferpool.kept() == 1
        c = bufferpool.zeros((5, 7))
        assert np.shares_memory(c, a) and not c.any() and c.shape == (5, 7)
        d = bufferpool.zeros((50, 50))   # new while enabled: room for a slightly larger one
        bufferpool.give_back(d)
        e = bufferpool.zeros((50, 51))
        assert np.shares_memory(d, e) and not e.any()
    assert bufferpool.kept() == 0      # the end of the run drops them


def test_at_most_one_exposures_set_and_only_contiguous_memory_is_kept():
    with bufferpool.enabled():
        arrays = [np.ones((4, 4 + i)) for i in range(bufferpool.MAX_KEPT + 2)]
        bufferpool.give_back(*arrays, arrays[-1])
        assert bufferpool.kept() == bufferpool.MAX_KEPT      # the largest ones, each once
        assert all(np.shares_memory(bufferpool.zeros((4, 4 + i)), arrays[i])
                   for i in range(len(arrays) - 1, 1, -1))
        bufferpool.clear()
        bufferpool.give_back(np.asfortranarray(np.ones((4, 4))), np.asfortranarray(np.ones((3, 4)))[:, :2])
        assert bufferpool.kept() == 0


def test_a_buffer_is_taken_from_among_several_of_other_sizes():
    """Regression: taking a kept buffer that is not the first of several of other sizes (the
    exposures' boxes differ by their dithers) failed with "operands could not be broadcast"
    (the list's remove compared arrays element by element)."""
    with bufferpool.enabled():
        big, mid, small = np.ones(300), np.ones(200), np.ones(100)
        bufferpool.give_back(big, small, mid)
        got = bufferpool.zeros((15, 10))    # 150: the smallest that fits is mid, kept second
        assert np.shares_memory(got, mid) and not got.any() and bufferpool.kept() == 2
        got = bufferpool.zeros((10, 10))
        assert np.shares_memory(got, small) and bufferpool.kept() == 1
        assert np.shares_memory(bufferpool.zeros((250,)), big) and bufferpool.kept() == 0


def test_threads_never_get_the_same_array():
    """Two threads taking and giving back at once: an array is handed to one taker only."""
    with bufferpool.enabled():
        bufferpool.give_back(*[np.ones((64, 64)) for _ in range(3)])
        seen, errors = [], []

        def worker():
            for _ in range(200):
                a = bufferpool.zeros((64, 64))
                if a.any():
                    errors.append("not zeroed")
                a[...] = threading.get_ident()
                if not (a == threading.get_ident()).all():
                    errors.append("shared")
                seen.append(id(a))
                bufferpool.give_back(a)

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors and len(set(seen)) >= 2


def test_a_run_hands_sums_on_and_the_median_drops_them(tmp_path, monkeypatch):
    """A local run: the exposures' sums are given back once written, the median's first tile
    finds them kept and drops them, and nothing is kept after the run; a processes run keeps
    nothing in this process.  Cost: ~3 s."""
    from dazzle import graph
    from dazzle.pipeline import run
    from dazzle.simulate import simulate

    files = simulate(tmp_path / "in", n_exposures=3, size=96, seed=5).files
    at_clear, taken = [], []
    real_clear, real_zeros = bufferpool.clear, bufferpool.zeros

    def clear():
        at_clear.append(bufferpool.kept())
        real_clear()

    def zeros(shape, dtype=np.float64):
        taken.append(bufferpool.kept())
        return real_zeros(shape, dtype)

    monkeypatch.setattr(bufferpool, "clear", clear)
    monkeypatch.setattr(bufferpool, "zeros", zeros)
    run([str(f) for f in files], str(tmp_path / "out" / "t"), scheduler="synchronous")
    assert taken and max(at_clear) >= 2   # the last exposure's num and den, dropped by the median
    assert bufferpool.kept() == 0
    assert graph.bufferpool is bufferpool
