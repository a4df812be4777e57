"""Writing a product that the run will not read again, past the page cache (``O_DIRECT``), when
asked (``DAZZLE_DIRECT_IO=1``).

A file written the usual way goes through the page cache: the kernel finds a free page for
every 4 KiB written, fills it, and writes it to disk later.  On the machines measured for
issue 11 (2-core VMs) a page the system has not used lately could cost about 3 us to find
(``dd`` of 1 GB: 2.3-3.5 s of system time buffered, 0.03-0.09 s with ``oflag=direct``, 0.6-0.7
s wall).  The blot and CR-mask images are written once and not read by the rest of the run,
so :class:`SequentialWriter` can write them with ``O_DIRECT``: the bytes go from one reused,
page-aligned buffer straight to the disk.  The file's bytes are the same either way.

``O_DIRECT`` was the default in issue 11's sixth and seventh rounds; the eighth made it an
option.  A direct write returns when the disk has the bytes, and the worker thread waits for
it (seen as uninterruptible sleep in ``iomap_dio_rw``); through the page cache the kernel
writes back later.  Alternating whole runs (2 December 2026): WFC set 11.16 s through the page
cache against 11.46 s direct (6 pairs, 5 faster) and 10.85 against 11.34 s (8 pairs, 5
faster), small set 2.70 against 2.89 s (7 pairs), 6 x 2048^2 on one thread 8.37 against 9.29 s
(4 pairs, 3 faster).  The sixth round had measured the opposite with another change, on a
colder page cache: it follows the machine's memory and disk, and a network file system (an
HPC cluster's) makes a direct write slower still.

Where ``O_DIRECT`` is missing (not Linux), refused when the file is opened (a file system
without it) or refused at the first write, the writer goes on through the page cache with the
same bytes.  ``DAZZLE_DIRECT_IO=1`` (or true, yes, on) in the environment turns it on (read at
each file).

Nothing here imports numpy or astropy.
"""

from __future__ import annotations

import errno
import mmap
import os
import threading

__all__ = ["DIRECT_ENV", "SequentialWriter", "direct_enabled", "pwrite_all"]

#: the environment variable that turns ``O_DIRECT`` writing on (``1``, ``true``, ``yes``, ``on``)
DIRECT_ENV = "DAZZLE_DIRECT_IO"

#: offsets, lengths and the buffer's address are multiples of this (the page size covers every
#: logical block size in use: 512 and 4096)
ALIGN = 4096

#: bytes of a staging buffer (one per open writer; a thread keeps them between files)
CHUNK = 4 << 20

_O_DIRECT = getattr(os, "O_DIRECT", 0)
_REFUSED = (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP)
_local = threading.local()


def direct_enabled() -> bool:
    """Whether :class:`SequentialWriter` tries ``O_DIRECT``: the platform has it and
    ``DAZZLE_DIRECT_IO`` is ``1``, ``true``, ``yes`` or ``on`` (any case; unset: no)."""
    if not _O_DIRECT:
        return False
    return os.environ.get(DIRECT_ENV, "").strip().lower() in ("1", "true", "yes", "on")


#: staging buffers a thread keeps for its next writers (more open at once are made and dropped)
_KEEP = 4


def _staging() -> memoryview:
    """A page-aligned staging buffer (anonymous memory: aligned by the kernel) for one writer
    of this thread: one this thread kept (:func:`_release`), else a new one.  A thread may
    have several writers open at once (:func:`dazzle.products.write_images_atomic`): each
    has its own buffer."""
    free = _kept()
    return free.pop() if free else memoryview(mmap.mmap(-1, CHUNK))


def _release(view) -> None:
    """A closed writer's buffer, kept for this thread's next writers (up to :data:`_KEEP`)."""
    free = _kept()
    if len(free) < _KEEP:
        free.append(view)


def _kept() -> list:
    """The staging buffers this thread keeps."""
    if not hasattr(_local, "free"):
        _local.free = []
    return _local.free


def pwrite_all(fd, data, offset) -> None:
    """``os.pwrite`` until every byte of ``data`` is written (a write may write fewer)."""
    while len(data):
        n = os.pwrite(fd, data, offset)
        if n <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        data, offset = data[n:], offset + n


class SequentialWriter:
    """A new file written from its first byte to its last, in pieces of any size.

    Parameters
    ----------
    path : str
        The file to create (a temporary name: it must not exist; see
        :func:`dazzle.atomic.atomic_output`).
    direct : bool, optional
        Try ``O_DIRECT`` (when :func:`direct_enabled`); False: the page cache, as ``open``.

    Notes
    -----
    With ``O_DIRECT`` the pieces are gathered in a page-aligned buffer of :data:`CHUNK` bytes
    and written a buffer at a time; the last, partial buffer is written padded with zeros to
    :data:`ALIGN` bytes and the file then cut to its length.  A write the system refuses
    (``EINVAL``: misaligned for it, or no direct I/O there) turns ``O_DIRECT`` off for the rest
    of the file, which goes on through the page cache from the same offset.  Use as a context
    manager, or call :meth:`close`; one thread per writer.
    """

    def __init__(self, path, *, direct: bool = True):
        self.path = os.fspath(path)
        self.direct = False
        self._fd = None
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        if direct and direct_enabled():
            try:
                self._fd = os.open(self.path, flags | _O_DIRECT, 0o666)
                self.direct = True
            except OSError as exc:
                if exc.errno not in _REFUSED:
                    raise
        if self._fd is None:
            self._fd = os.open(self.path, flags, 0o666)
        self._pos = 0     # file offset of the staging buffer's first byte
        self._fill = 0    # bytes waiting in the staging buffer
        self._buf = _staging() if self.direct else None

    def write(self, data) -> None:
        """Append ``data`` (any bytes-like object) to the file."""
        data = memoryview(data).cast("B")
        while len(data) and self.direct:
            n = min(len(data), CHUNK - self._fill)
            self._buf[self._fill:self._fill + n] = data[:n]
            self._fill += n
            data = data[n:]
            if self._fill == CHUNK:
                self._flush(CHUNK)   # may turn O_DIRECT off: the rest then goes below
        if len(data):   # through the page cache (``_fill``: bytes written after ``_pos``)
            pwrite_all(self._fd, data, self._pos + self._fill)
            self._fill += len(data)

    def _flush(self, nbytes) -> None:
        """Write the staging buffer's first ``nbytes`` (a multiple of ALIGN) at its offset."""
        view = self._buf[:nbytes]
        if self.direct:
            try:
                pwrite_all(self._fd, view, self._pos)
            except OSError as exc:
                if exc.errno not in _REFUSED:
                    raise
                self._buffered()
        if not self.direct:   # a refusal above: the same bytes again, through the page cache
            pwrite_all(self._fd, view, self._pos)
        self._pos += min(nbytes, self._fill)
        self._fill = 0

    def _buffered(self) -> None:
        """``O_DIRECT`` off for this file (Linux lets ``F_SETFL`` change it)."""
        import fcntl   # only where O_DIRECT exists: POSIX (the module has no fcntl on Windows)

        fl = fcntl.fcntl(self._fd, fcntl.F_GETFL)
        fcntl.fcntl(self._fd, fcntl.F_SETFL, fl & ~_O_DIRECT)
        self.direct = False

    def close(self) -> None:
        """Write what is left and close the file (its length is what was written)."""
        if self._fd is None:
            return
        try:
            if self.direct and self._fill:
                size = self._pos + self._fill
                padded = -(-self._fill // ALIGN) * ALIGN
                self._buf[self._fill:padded] = bytes(padded - self._fill)
                self._flush(padded)
                os.ftruncate(self._fd, size)
        finally:
            fd, self._fd = self._fd, None
            buf, self._buf = self._buf, None
            if buf is not None:
                _release(buf)
            os.close(fd)

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._pos + self._fill

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

