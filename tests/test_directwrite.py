"""dazzle.directwrite: products the run does not read again, written past the page cache, and
the canvas writers' lock (dazzle.products.write_block)."""

import errno
import fcntl
import os
import threading
import time

import numpy as np
import pytest

from dazzle import directwrite, products
from dazzle.directwrite import ALIGN, DIRECT_ENV, SequentialWriter, direct_enabled


def _probe_direct(folder) -> bool:
    """Whether this folder's file system takes O_DIRECT (asked here, not by the module)."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return False
    p = os.path.join(folder, "probe")
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | flag, 0o600)
    except OSError:
        return False
    os.close(fd)
    os.remove(p)
    return True


@pytest.fixture(autouse=True)
def direct_asked(monkeypatch):
    """``O_DIRECT`` is an option (``DAZZLE_DIRECT_IO=1``): these tests ask for it."""
    monkeypatch.setenv(DIRECT_ENV, "1")


@pytest.fixture
def small_chunk(monkeypatch):
    """A staging buffer of 3 pages, so that a few KB cross several of its flushes."""
    monkeypatch.setattr(directwrite, "CHUNK", 3 * ALIGN)
    monkeypatch.setattr(directwrite, "_local", threading.local())


def _pieces(data, seed):
    """``data`` cut at random places (empty pieces included)."""
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.integers(0, len(data) + 1, size=6))
    bounds = [0, *cuts.tolist(), len(data)]
    return [data[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def test_writers_open_at_once_in_one_thread_keep_their_own_bytes(tmp_path, small_chunk):
    """Several writers open at once in one thread (the single SCI, WHT and ERR files are
    written together) each stage their bytes in a buffer of their own: regression, they
    shared the thread's one buffer, and each file got the others' bytes.  A closed writer's
    buffer serves the thread's next writer (a few are kept).  Cost: ~0.05 s."""
    rng = np.random.default_rng(9)
    data = [rng.integers(0, 256, size=5 * ALIGN + 77 * (i + 1), dtype=np.uint8).tobytes() for i in range(3)]
    writers = [SequentialWriter(tmp_path / f"f{i}.bin") for i in range(3)]
    pieces = [_pieces(d, i) for i, d in enumerate(data)]
    for group in zip(*pieces):        # a piece of each file in turn
        for w, piece in zip(writers, group):
            w.write(piece)
    for w in writers:
        w.close()
    for i, d in enumerate(data):
        assert (tmp_path / f"f{i}.bin").read_bytes() == d
    if writers[0].direct:
        kept = list(directwrite._local.free)
        assert len(kept) == 3
        with SequentialWriter(tmp_path / "next.bin") as w:
            assert any(w._buf is b for b in kept)


@pytest.mark.parametrize("size", [0, 1, ALIGN - 1, ALIGN, ALIGN + 1, 3 * ALIGN - 5, 3 * ALIGN, 7 * ALIGN + 2880])
@pytest.mark.parametrize("direct", [True, False])
def test_sequential_writer_writes_every_byte(tmp_path, small_chunk, size, direct):
    """Any length (none, less than a page, whole pages, across several staging buffers), in
    pieces of any size, bytes or arrays: the file holds exactly those bytes, padded nowhere.
    ``O_DIRECT`` is used wherever the file system takes it.  Cost: ~0.05 s."""
    data = np.random.default_rng(size).integers(0, 256, size=size, dtype=np.uint8).tobytes()
    path = tmp_path / "f.bin"
    with SequentialWriter(path, direct=direct) as w:
        assert w.direct == (direct and _probe_direct(tmp_path))
        for i, piece in enumerate(_pieces(data, size)):
            w.write(piece if i % 2 else np.frombuffer(piece, np.uint8))
        assert w.size == size
    assert path.read_bytes() == data
    if size:   # the last bytes staged and written again by another file: not mixed into this one
        with SequentialWriter(tmp_path / "g.bin", direct=direct) as w:
            w.write(b"\xff" * (size // 2 + 1))
        assert path.read_bytes() == data and (tmp_path / "g.bin").read_bytes() == b"\xff" * (size // 2 + 1)


def test_direct_io_is_used_here_when_asked(tmp_path):
    """On this project's machines (Linux, ext4), with ``DAZZLE_DIRECT_IO=1``, the blot and
    CR-mask products do go past the page cache: the file is open with O_DIRECT while it is
    written."""
    if not _probe_direct(tmp_path):
        pytest.fail("this file system refuses O_DIRECT: the option would do nothing here")
    with SequentialWriter(tmp_path / "f.bin") as w:
        assert w.direct and fcntl.fcntl(w._fd, fcntl.F_GETFL) & os.O_DIRECT
        w.write(b"x" * 10000)
    assert (tmp_path / "f.bin").stat().st_size == 10000


@pytest.mark.parametrize("value, on", [("0", False), ("off", False), (" No ", False), ("false", False),
                                       ("", False), (None, False), ("1", True), (" Yes ", True),
                                       ("TRUE", True), ("on", True)])
def test_environment_turns_it_on(tmp_path, monkeypatch, value, on):
    """``DAZZLE_DIRECT_IO=1`` (or true, yes, on) writes past the page cache; unset or
    anything else, through it (the default since issue 11's eighth round)."""
    if value is None:
        monkeypatch.delenv(DIRECT_ENV)
    else:
        monkeypatch.setenv(DIRECT_ENV, value)
    assert direct_enabled() == (on and bool(getattr(os, "O_DIRECT", 0)))
    with SequentialWriter(tmp_path / "f.bin") as w:
        assert w.direct == (on and _probe_direct(tmp_path))
        w.write(b"abc")
    assert (tmp_path / "f.bin").read_bytes() == b"abc"


def test_refused_at_open_goes_through_the_page_cache(tmp_path, small_chunk, monkeypatch):
    """A file system that refuses O_DIRECT when the file is opened (EINVAL): the same bytes,
    written the ordinary way; other errors are not hidden."""
    real_open = os.open

    def refusing(path, flags, *a):
        if flags & getattr(os, "O_DIRECT", 0):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *a)

    monkeypatch.setattr(directwrite.os, "open", refusing)
    data = os.urandom(5 * ALIGN + 77)
    with SequentialWriter(tmp_path / "f.bin") as w:
        assert not w.direct
        w.write(data)
    assert (tmp_path / "f.bin").read_bytes() == data

    def denied(path, flags, *a):
        raise OSError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(directwrite.os, "open", denied)
    with pytest.raises(PermissionError):
        SequentialWriter(tmp_path / "g.bin")


@pytest.mark.parametrize("refuse_at", [0, 1, 2])
def test_refused_at_a_write_goes_on_through_the_page_cache(tmp_path, small_chunk, monkeypatch, refuse_at):
    """A file system that opens with O_DIRECT but refuses its writes (EINVAL), at the first
    buffer, a later one or the padded last one: O_DIRECT is turned off for the file and the
    same bytes go on from the same offset.  Cost: ~0.05 s."""
    if not _probe_direct(tmp_path):
        pytest.fail("this file system refuses O_DIRECT")
    real = os.pwrite
    calls = []

    def pwrite(fd, data, offset):
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            calls.append(offset)
            if len(calls) > refuse_at:
                raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, data, offset)

    monkeypatch.setattr(directwrite.os, "pwrite", pwrite)
    data = os.urandom(2 * 3 * ALIGN + 1000)   # two whole staging buffers and a partial page
    with SequentialWriter(tmp_path / "f.bin") as w:
        w.write(data)
    assert not w.direct and len(calls) == refuse_at + 1
    assert (tmp_path / "f.bin").read_bytes() == data


def test_other_write_errors_are_raised(tmp_path, small_chunk, monkeypatch):
    """A full disk is an error (the product's writer names the product), not a reason to go on
    another way."""
    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(directwrite.os, "pwrite", full)
    for direct in (True, False):
        with pytest.raises(OSError) as info:
            with SequentialWriter(tmp_path / f"f{direct}.bin", direct=direct) as w:
                w.write(b"y" * (4 * ALIGN))
        assert info.value.errno == errno.ENOSPC


def test_product_writer_cleans_up_after_a_failed_direct_write(tmp_path, monkeypatch):
    """A write error in a blot product: no temporary file left, the old product untouched."""
    from astropy.io import fits

    path = tmp_path / "x_sci1_blt.fits"
    path.write_bytes(b"old")

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(directwrite.os, "pwrite", full)
    with pytest.raises(OSError, match="x_sci1_blt.fits"):
        products.write_image_atomic(path, fits.PrimaryHDU(np.ones((64, 64), np.float32)), direct=True)
    assert sorted(os.listdir(tmp_path)) == ["x_sci1_blt.fits"] and path.read_bytes() == b"old"


def test_blot_products_go_through_the_page_cache_by_default(tmp_path, monkeypatch):
    """Without ``DAZZLE_DIRECT_IO`` the blot and CR-mask products (``write_image_atomic(...,
    direct=True)``) are opened without O_DIRECT: a direct write waits for the disk, and whole
    runs were faster through the page cache (issue 11's eighth round)."""
    from astropy.io import fits

    monkeypatch.delenv(DIRECT_ENV)
    flags = []
    real_open = directwrite.os.open

    def recording(path, fl, *args):
        flags.append(fl)
        return real_open(path, fl, *args)

    monkeypatch.setattr(directwrite.os, "open", recording)
    data = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    path = tmp_path / "x_sci1_blt.fits"
    products.write_image_atomic(path, fits.PrimaryHDU(data), direct=True)
    assert flags and not any(fl & getattr(os, "O_DIRECT", 0) for fl in flags)
    assert np.array_equal(fits.getdata(path), data)


def test_canvas_blocks_of_one_file_are_written_one_at_a_time(tmp_path, monkeypatch):
    """Two threads writing blocks of one canvas: never both inside a write to the file (the
    kernel would make the second spin on the CPU); blocks of two canvases still go at once;
    every block lands.  The lock goes with the commit.  Cost: ~0.3 s."""
    canvases = [products.create_canvas(tmp_path / f"c{i}.fits", [("PRIMARY", (), np.float32, None),
                                                                  ("SCI", (64, 64), np.float32, None)])
                for i in range(2)]
    inside: dict = {}
    most: dict = {}
    both_files = []
    guard = threading.Lock()
    real = os.pwrite

    def pwrite(fd, data, offset):
        name = os.readlink(f"/proc/self/fd/{fd}")
        with guard:
            inside[name] = inside.get(name, 0) + 1
            most[name] = max(most.get(name, 0), inside[name])
            if sum(1 for v in inside.values() if v) > 1:
                both_files.append(True)
        time.sleep(0.002)   # long enough for the other thread to come in
        try:
            return real(fd, data, offset)
        finally:
            with guard:
                inside[name] -= 1

    monkeypatch.setattr(products.os, "pwrite", pwrite)
    rng = np.random.default_rng(3)
    full = [rng.normal(size=(64, 64)).astype(np.float32) for _ in canvases]

    def writer(c, img, cols):
        for x0 in cols:   # 16-column blocks: one write per row
            products.write_block(c, 1, img[:, x0:x0 + 16], 0, x0)

    threads = [threading.Thread(target=writer, args=(canvases[0], full[0], cols)) for cols in ((0, 32), (16, 48))]
    threads += [threading.Thread(target=writer, args=(canvases[1], full[1], (0, 16, 32, 48)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most and max(most.values()) == 1
    assert both_files, "blocks of two different canvases should not wait for each other"
    assert products._canvas_lock(canvases[0].tmp_path) is products._canvas_lock(canvases[0].tmp_path)
    from astropy.io import fits

    for c, img in zip(canvases, full):
        assert c.tmp_path in products._CANVAS_LOCKS
        products.commit_canvas(c)
        assert c.tmp_path not in products._CANVAS_LOCKS
        with fits.open(c.path) as h:
            assert np.array_equal(h["SCI"].data, img)


def test_the_module_imports_without_fcntl(tmp_path):
    """Where there is no fcntl (Windows) the module still imports and writes through the page
    cache (there is no O_DIRECT there either)."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys\nsys.modules['fcntl'] = None\n"
            "import dazzle.directwrite as d\n"
            "d._O_DIRECT = 0\n"
            "with d.SequentialWriter(sys.argv[1]) as w:\n    w.write(b'abc' * 5000)\n    assert not w.direct\n"
            "assert open(sys.argv[1], 'rb').read() == b'abc' * 5000\n")
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(repo) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    got = subprocess.run([sys.executable, "-c", code, str(tmp_path / "f.bin")], capture_output=True,
                         text=True, env=env, timeout=60)
    assert got.returncode == 0, got.stderr[-2000:]
