"""Tests of dazzle.atomic: files written through a temporary file and a rename, never half."""

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from dazzle import atomic
from dazzle.products import file_checksum



def _leftovers(d):
    return [p.name for p in Path(d).iterdir() if p.name.endswith(".tmp")]


def test_write_fits_atomic(tmp_path):
    out = tmp_path / "prod_drz.fits"
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert atomic.write_fits_atomic(out, fits.PrimaryHDU(data)) == str(out)
    np.testing.assert_array_equal(fits.getdata(out), data)
    assert _leftovers(tmp_path) == []
    # Overwrite (default) replaces; an ImageHDU gets an empty primary in front.
    atomic.write_fits_atomic(out, fits.ImageHDU(data * 2, name="SCI"))
    with fits.open(out) as h:
        assert h[0].data is None and np.all(h["SCI"].data == data * 2)
    with pytest.raises(FileExistsError):
        atomic.write_fits_atomic(out, fits.PrimaryHDU(data), overwrite=False)
    new = tmp_path / "new_drz.fits"
    atomic.write_fits_atomic(new, fits.HDUList([fits.PrimaryHDU(data)]), overwrite=False,
                         checksum=True)
    assert "CHECKSUM" in fits.getheader(new)
    assert _leftovers(tmp_path) == []


def test_atomic_write_failure_keeps_old_product(tmp_path, monkeypatch):
    out = tmp_path / "prod_drz.fits"
    old = np.ones((3, 4), np.float32)
    atomic.write_fits_atomic(out, fits.PrimaryHDU(old))
    before = file_checksum(out, "sha256")

    # 1. A writer that dies half-way through its temporary file.
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic.atomic_output(out) as tmp:
            assert Path(tmp).parent == tmp_path
            assert Path(tmp).name.startswith(".") and tmp.endswith(".tmp")
            with open(tmp, "wb") as f:
                f.write(b"SIMPLE  =                    T" + b" " * 50)
            raise RuntimeError("disk on fire")
    assert file_checksum(out, "sha256") == before and _leftovers(tmp_path) == []

    # 2. write_fits_atomic where astropy fails in the middle of writing.
    real_writeto = fits.HDUList.writeto

    def failing_writeto(self, name, *a, **k):
        with open(name, "wb") as f:
            f.write(b"partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(fits.HDUList, "writeto", failing_writeto)
    with pytest.raises(OSError, match="No space"):
        atomic.write_fits_atomic(out, fits.PrimaryHDU(old * 5))
    monkeypatch.setattr(fits.HDUList, "writeto", real_writeto)
    assert file_checksum(out, "sha256") == before and _leftovers(tmp_path) == []
    np.testing.assert_array_equal(fits.getdata(out), old)

    # 3. A writer that never creates the file.
    with pytest.raises(FileNotFoundError):
        with atomic.atomic_output(out):
            pass
    assert file_checksum(out, "sha256") == before and _leftovers(tmp_path) == []


def test_write_bytes_atomic(tmp_path):
    """Text and bytes through a temporary file and a rename (the report, its summary and the
    pictures are written this way): the content exact, no temporary file left, an old file
    kept whole when the writer fails."""
    out = tmp_path / "report.html"
    assert atomic.write_bytes_atomic(out, "déjà vu\n") == str(out)
    assert out.read_bytes() == "déjà vu\n".encode()
    atomic.write_bytes_atomic(out, b"\x89PNG")
    assert out.read_bytes() == b"\x89PNG"
    with pytest.raises(TypeError):
        atomic.write_bytes_atomic(out, 3.5)
    assert out.read_bytes() == b"\x89PNG" and _leftovers(tmp_path) == []


def _fsync_recorder(monkeypatch):
    """Record the name of every file or folder ``os.fsync`` is called on, in call order."""
    import os

    seen, real = [], os.fsync

    def fsync(fd):
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names of open files from /proc (Linux)")
def test_fsync_only_when_durable(tmp_path, monkeypatch):
    """Files are renamed into place whole either way; only with DAZZLE_FSYNC (or fsync=True)
    is each one fsynced under its temporary name before the rename, and its folder after."""
    seen = _fsync_recorder(monkeypatch)
    for off in ("", "0", "false", "No", " off "):
        monkeypatch.setenv(atomic.FSYNC_ENV, off)
        assert not atomic.durable()
    monkeypatch.delenv(atomic.FSYNC_ENV)
    assert not atomic.durable()
    out = tmp_path / "a_drz.fits"
    atomic.write_fits_atomic(out, fits.PrimaryHDU(np.ones((2, 2), np.float32)))
    atomic.write_bytes_atomic(tmp_path / "a.json", "{}")
    assert seen == [] and _leftovers(tmp_path) == []

    for on in ("1", "yes", "TRUE"):
        monkeypatch.setenv(atomic.FSYNC_ENV, on)
        assert atomic.durable()
        del seen[:]
        atomic.write_bytes_atomic(out, b"x")
        assert len(seen) == 2 and Path(seen[0]).name.startswith(".a_drz.fits.")
        assert seen[0].endswith(".tmp") and seen[1] == str(tmp_path)
        assert out.read_bytes() == b"x"
    # an explicit choice wins over the environment, both ways
    del seen[:]
    with atomic.atomic_output(out, fsync=False) as tmp:
        Path(tmp).write_bytes(b"y")
    assert seen == [] and out.read_bytes() == b"y"
    monkeypatch.delenv(atomic.FSYNC_ENV)
    atomic.write_fits_atomic(out, fits.PrimaryHDU(np.zeros(3)), fsync=True)
    assert len(seen) == 2 and seen[1] == str(tmp_path)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names of open files from /proc (Linux)")
def test_run_fsyncs_products_only_when_asked_but_always_a_rewritten_input(tmp_path, monkeypatch, simulated):
    """A whole run (regression: every product used to be fsynced, 2 s of a 13 s WFC run with
    the workers waiting): by default nothing is fsynced; with DAZZLE_FSYNC=1 every file the run
    writes was fsynced under its temporary name before the rename (the canvas of the final
    product included), and the output folder after; ``update_input_dq`` rewrites the user's
    inputs durably either way."""
    import dazzle
    from helpers import copy_files

    sim = simulated(n_exposures=2, chips=1, size=48, seed=7, n_stars=6, min_separation=10.0)
    seen = _fsync_recorder(monkeypatch)

    def run(where, **kw):
        files = copy_files(sim.files, tmp_path / where / "in")
        out = tmp_path / where / "out"
        out.mkdir()
        dazzle.run(files, str(out / "syn"), **kw)
        return files, out

    monkeypatch.delenv(atomic.FSYNC_ENV, raising=False)
    files, out = run("plain")
    assert seen == []
    names = sorted(p.name for p in out.iterdir())
    assert "syn_drz.fits" in names and "syn_med.fits" in names and len(names) > 6

    monkeypatch.setenv(atomic.FSYNC_ENV, "1")
    files, out = run("durable")
    assert sorted(p.name for p in out.iterdir()) == names
    synced = {Path(s).name for s in seen}
    for name in names:   # .NAME.<12 hex>.tmp; the log is appended to as the run goes
        if name.endswith(".log"):
            continue
        assert any(s.startswith(f".{name}.") and s.endswith(".tmp") for s in synced), name
    assert str(out) in seen

    monkeypatch.delenv(atomic.FSYNC_ENV)
    del seen[:]
    files, out = run("update", update_input_dq=True)
    synced = {Path(s).name for s in seen}
    for f in files:
        name = Path(f).name
        assert any(s.startswith(f".{name}.") and s.endswith(".tmp") for s in synced), name
    assert not any(s.startswith(".syn_drz.fits.") for s in synced)
