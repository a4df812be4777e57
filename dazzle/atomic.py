"""Atomic file operations: how dazzle writes every file it writes.

:func:`write_fits_atomic` (or the :func:`atomic_output` context manager, for writers that need
a file name) writes ``.<name>.<random>.tmp`` in the destination folder, fsyncs it, then renames
it over the final name with ``os.replace``.  If anything fails the temporary file is removed and
a previous file of the same name is left untouched.  :func:`file_identity` says when two names
are the same file (symbolic and hard links), which the checks that protect inputs rely on.

This module imports nothing of dazzle and astropy only when a FITS file is written.
"""

from __future__ import annotations

import contextlib
import os
import uuid

__all__ = ["atomic_output", "durable", "file_identity", "fsync_path", "temp_name", "write_bytes_atomic",
           "write_fits_atomic"]

#: the environment variable that makes every file dazzle writes durable (:func:`durable`)
FSYNC_ENV = "DAZZLE_FSYNC"


def durable() -> bool:
    """Whether files are fsynced before their rename: ``DAZZLE_FSYNC`` set in the environment
    to anything but ``""``, ``0``, ``false``, ``no`` or ``off`` (any case).  Read at each write,
    so that worker processes started with that environment follow it too."""
    return os.environ.get(FSYNC_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def file_identity(path) -> list:
    """What makes two names the same file: the real path (symbolic links resolved) and, when
    the file exists, ``(device, inode)`` (hard links)."""
    keys: list = [("path", os.path.realpath(path))]
    try:
        st = os.stat(path)
    except OSError:
        return keys
    return keys + [("inode", st.st_dev, st.st_ino)]


def fsync_path(path, *, directory=False) -> None:
    """fsync a file or folder so that a rename that follows is durable.

    Parameters
    ----------
    path : str or os.PathLike
        The file (or folder) to flush.
    directory : bool, optional
        ``path`` is a folder.  Where the platform has no directory file descriptors this is a
        no-op, and an fsync error on a folder is ignored.

    Raises
    ------
    OSError
        If a file cannot be opened or fsynced.
    """
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:
            return  # platforms without directory fds
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def temp_name(path: str) -> str:
    """A fresh temporary name next to ``path``: ``.<basename>.<12 hex>.tmp`` in the same folder
    (so that the final rename stays on one file system)."""
    d, base = os.path.split(os.path.abspath(path))
    return os.path.join(d, f".{base}.{uuid.uuid4().hex[:12]}.tmp")


@contextlib.contextmanager
def atomic_output(path, *, overwrite: bool = True, fsync: bool | None = None):
    """Context manager yielding a temporary file name next to ``path``.

    On a clean exit the file is renamed to ``path`` (atomically replacing any old file), after
    an fsync when ``fsync`` says so; on an exception it is deleted and ``path`` is left untouched.

    Parameters
    ----------
    path : str or os.PathLike
        The final file name.
    overwrite : bool, optional
        If False, an existing ``path`` raises ``FileExistsError`` (checked before writing and
        again, without a race, at the rename).
    fsync : bool, optional
        fsync the file before the rename and its folder after it (durable against a power cut).
        Default: :func:`durable`.

    Yields
    ------
    str
        Absolute temporary name ``.<basename>.<random>.tmp`` in the same directory (the same file
        system, so the rename is atomic).  It does not exist yet: the writer creates it.

    Raises
    ------
    FileExistsError
        If ``overwrite`` is False and ``path`` exists.
    FileNotFoundError
        If the writer did not create the temporary file.
    OSError
        A write error (full disk, quota) is re-raised naming ``path``, not the temporary file.

    Examples
    --------
    >>> with atomic_output("final_drz.fits") as tmp:  # doctest: +SKIP
    ...     hdulist.writeto(tmp)
    """
    path = os.path.abspath(os.fspath(path))
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path}: exists and overwrite=False")
    tmp = temp_name(path)
    try:
        try:
            yield tmp
        except OSError as exc:   # a full disk, a quota: name the product, not its temporary file
            if exc.errno is None or exc.filename not in (None, tmp):
                raise
            raise type(exc)(exc.errno, exc.strerror, path) from None
        if not os.path.isfile(tmp):
            raise FileNotFoundError(f"{tmp}: the writer did not create the temporary file")
        sync = durable() if fsync is None else fsync
        if sync:
            fsync_path(tmp)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # atomic, fails if path exists
            except FileExistsError:
                raise FileExistsError(f"{path}: exists and overwrite=False") from None
            except OSError:  # file systems without hard links
                if os.path.exists(path):
                    raise FileExistsError(f"{path}: exists and overwrite=False") from None
                os.replace(tmp, path)
            else:
                os.unlink(tmp)
        if sync:
            fsync_path(os.path.dirname(path), directory=True)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_fits_atomic(path, hdulist_or_hdu, *, overwrite: bool = True, fsync: bool | None = None,
                      **writeto_kw) -> str:
    """Write a FITS product atomically (see :func:`atomic_output`).

    Parameters
    ----------
    path : str or os.PathLike
        The product's file name.
    hdulist_or_hdu : astropy.io.fits.HDUList or HDU
        An ``HDUList``, a ``PrimaryHDU``, or an extension HDU (written after an empty primary HDU).
    overwrite : bool, optional
        If False, an existing ``path`` raises ``FileExistsError``.
    fsync : bool, optional
        Durable (:func:`atomic_output`); default :func:`durable`.
    **writeto_kw
        Passed to ``HDUList.writeto`` (e.g. ``checksum=True``); ``overwrite`` there is ignored.

    Returns
    -------
    str
        The absolute path written.

    Raises
    ------
    TypeError
        If ``hdulist_or_hdu`` is neither an HDUList nor an HDU.

    Notes
    -----
    astropy byteswaps writeable little-endian arrays *in place* while writing them (and swaps them
    back afterwards); do not read those arrays from other threads during the write, or pass
    read-only arrays (astropy then writes a swapped copy).
    """
    from astropy.io import fits

    h = hdulist_or_hdu
    if isinstance(h, fits.HDUList):
        hdul = h
    elif isinstance(h, fits.PrimaryHDU):
        hdul = fits.HDUList([h])
    elif isinstance(h, (fits.ImageHDU, fits.BinTableHDU, fits.TableHDU, fits.CompImageHDU)):
        hdul = fits.HDUList([fits.PrimaryHDU(), h])
    else:
        raise TypeError(f"expected an HDUList or HDU, got {type(h).__name__}")
    writeto_kw.pop("overwrite", None)
    with atomic_output(path, overwrite=overwrite, fsync=fsync) as tmp:
        hdul.writeto(tmp, **writeto_kw)
    return os.path.abspath(os.fspath(path))


def write_bytes_atomic(path, data, *, encoding: str = "utf-8") -> str:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_output`); return the absolute path.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write; its folder must exist.
    data : bytes or str
        The content; a ``str`` is encoded with ``encoding``.
    encoding : str, optional
        The encoding of a ``str`` (default UTF-8).

    Returns
    -------
    str
        The absolute path written.
    """
    raw = data.encode(encoding) if isinstance(data, str) else bytes(data)
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(raw)
    return os.path.abspath(os.fspath(path))
