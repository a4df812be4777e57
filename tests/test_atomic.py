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
