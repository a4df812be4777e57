"""Chips in: reading the inputs (FITS files, lists, ``@files``, association tables) into chips.

Reading
-------
:func:`read_inputs` turns AstroDrizzle's ``input`` (a path, a list, a comma-separated string,
a glob pattern or an ``@file``) into a list of :class:`Chip` -- one per science extension, in
input order, ``index`` 0..N-1.  A :class:`Chip` is a small, immutable, picklable description
(file path, extension names, shape, exposure time, units, gain, read noise, sky, WCS header
text): the pipeline ships chips through the Dask graph and reads pixels inside the task that
needs them with :meth:`Chip.load` (only that chip's extensions, memmap off).  Inputs are
opened read-only and never modified.

Every problem with an input raises :class:`InputError`, a ``ValueError`` whose one-line
message names the file and the extension: ``"/data/x_flt.fits[SCI,2]: EXPTIME = 0 (must be >
0)"``, or ``"/data/x_flt.fits: ..."`` for file-level problems.  It pickles (Dask ships
exceptions from workers to the client) and carries ``.path`` and ``.ext``.

In-memory inputs (``HDUList``, ``(data, wcs)``, ``NDData``) are read by :mod:`dazzle.memory`
into :class:`dazzle.memory.MemoryChip` (a :class:`Chip` carrying its arrays), with the header
logic here.

Products go out through :mod:`dazzle.products` (names, headers, product files, the DQ update)
and every file is written through :mod:`dazzle.atomic` (temporary file + rename).

AstroDrizzle behaviours reproduced here (drizzlepac 3.x, ``processInput``/``imageObject``)
-----------------------------------------------------------------------------------------
* ``group`` follows ``drizzlepac.util._parse_ext_spec``: ``'1,4'`` are FITS *extension
  numbers* (HDU indices; on an ACS/WFC ``_flt`` HDU 1 is ``SCI,1`` and HDU 4 is ``SCI,2``) and
  each must be a SCI extension; ``'sci,2'`` (or ``("SCI", 2)``) names one SCI extension by
  EXTVER.
* A string input (comma list, glob) is sorted by name, as ``processFilenames`` does; a Python
  list and an ``@file`` keep their order.  The first input decides the product suffix and the
  default output orientation.
* Units: ``in_units = "cps"`` if ``BUNIT`` (SCI header) contains ``/s`` (any case), else
  ``"counts"``.  As drizzlepac's ``imageObject.set_units``, a missing ``BUNIT`` or one that
  mentions ``ergs`` is taken as ``ELECTRONS/S`` (cps); ``Chip.bunit`` keeps the header value.
* gain/rdnoise/exptime: a value parameter and its keyword parameter are mutually exclusive
  (drizzlepac raises "Your input is ambiguous"); keyword lists are averaged ignoring zero
  values (``_averageFromList``).  Defaults: ``ATODGNA..D``, ``READNSEA..D``, ``EXPTIME``, read
  from the primary header, then the SCI header.
* Default product name (``process_input``): ``<output>_drz.fits`` (``_drc.fits`` if the first
  input ends in ``_flc.fits``; ``_drw.fits`` for WFPC2); with ``output=''`` the root of the
  single input file, or ``final`` for several files.

Deliberate differences (documented)
-----------------------------------
* Gain: when every gain keyword is zero the gain is ``None`` (unknown) instead of 0.0; a missing
  *user-named* keyword (``gnkeyword``/``rnkeyword``/``expkeyword``) is an error instead of a
  silent ``None``.  Default keywords that are absent give ``None``; the gain falls back to
  ``ATODGAIN`` and the read noise to ``READNSE`` (STIS/WFPC2-style headers).
* A literal input name that does not exist is an error (drizzlepac's glob drops it silently);
  so is a glob pattern matching nothing, the same file listed twice (also through a symbolic
  or hard link, or as a byte-for-byte copy), or two files with the same exposure root (their
  intermediate products would overwrite each other).
* A file that dazzle wrote (its primary header carries :data:`PRODUCT_KEYWORD`) is refused as
  an input unless ``allow_products=True``: a glob such as ``'dzsim0*.fits'`` in a folder that
  holds an earlier run's products would otherwise take them as exposures.
* The default output name for one input is the input's root *without* its directory (products
  go to the current directory, like ``final``); drizzlepac keeps the directory part.
* ``wcskey`` selects an alternate WCS of each SCI header (``WCS(header, key=...)``), which then
  serves as the chip's WCS; with lookup-table distortions (D2IM/NPOL) it is refused.
"""

from __future__ import annotations

import contextlib
import glob as _glob
import math
import os
import warnings
from dataclasses import dataclass, field, replace
from collections.abc import Iterable
from typing import Any

import numpy as np
from astropy.io import fits

from .errors import InputError, OutputError
from .geometry import Frame, cached_wcs, wcs_from_header, wcs_to_header
from .atomic import file_identity
from .products import PRODUCT_KEYWORD, product_kind

__all__ = [
    "Chip",
    "ChipData",
    "InputError",
    "OutputError",
    "ROOT_SUFFIXES",
    "exposure_root",
    "read_chips",
    "read_inputs",
]

#: File-name endings stripped to form the exposure root (stsci.tools ``fileutil.EXTLIST``, plus
#: gzip variants); checked in order, case-insensitively.
ROOT_SUFFIXES = (
    "_flt.fits.gz", "_flc.fits.gz", "_flt.fits", "_flc.fits", "_crj.fits", "_crc.fits",
    "_sfl.fits", "_cal.fits", "_c0f.fits", "_c1f.fits", ".fits.gz", ".fits", ".fit", ".fts",
)

_DEFAULT_GAIN_KEYS = ("ATODGNA", "ATODGNB", "ATODGNC", "ATODGND")
_DEFAULT_RDNOISE_KEYS = ("READNSEA", "READNSEB", "READNSEC", "READNSED")
_BLANK = ("", "none", "indef")


# --------------------------------------------------------------------------------------------
# Error messages (InputError and OutputError live in dazzle.errors)
# --------------------------------------------------------------------------------------------

def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def _ext_str(ext) -> str:
    if ext is None:
        return ""
    if isinstance(ext, tuple):
        return f"[{ext[0]},{ext[1]}]"
    return f"[{ext}]"


def _err(path: str, ext, what: Any) -> InputError:
    return InputError(f"{path}{_ext_str(ext)}: {_one_line(what)}", path=path, ext=ext)


def _exc_text(exc: BaseException) -> str:
    msg = _one_line(exc)
    if isinstance(exc, KeyError) and msg.startswith(("'", '"')):
        msg = msg.strip("'\"")
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


# --------------------------------------------------------------------------------------------
# Chip and ChipData
# --------------------------------------------------------------------------------------------

@dataclass
class ChipData:
    """Pixels of one chip, as read by :meth:`Chip.load` (native byte order).

    ``sci`` float32 (ny, nx); ``err`` float32 or None; ``dq`` integer array or None;
    ``n_nonfinite`` the number of NaN/Inf SCI pixels (they are kept; the caller masks them).
    """

    sci: np.ndarray
    err: np.ndarray | None
    dq: np.ndarray | None
    n_nonfinite: int


@dataclass(frozen=True)
class Chip:
    """One input science chip: everything the pipeline needs except the pixels.

    Small, immutable, hashable and picklable: ship it through Dask graphs, call :meth:`load`
    and :meth:`wcs` inside the task.  Build chips with :func:`read_chips` / :func:`read_inputs`.

    Attributes
    ----------
    path : absolute file name.  root : exposure root (file name without ``_flt.fits`` etc.).
    extver : EXTVER of the SCI extension (1 for a simple image).
    sci_ext, err_ext, dq_ext : astropy extension specs (``("SCI", n)``, or ``0`` for a simple
        image's primary HDU); ``err_ext``/``dq_ext`` are None when absent.
    shape : ``(ny, nx)``.  exptime : seconds (> 0).  bunit : BUNIT as in the header ('' if
        absent).  in_units : ``"cps"`` or ``"counts"`` (see the module notes).
    gain, rdnoise, mdrizsky, idcscale, photflam, expstart, expend : floats or None if unknown.
    wcs_header : the SCI WCS (SIP included) as header text for ``geometry.wcs_from_header``;
        with ``has_lookup_distortion`` (D2IM/CPDIS tables) :meth:`wcs` re-reads the file
        instead and ``wcs_header`` holds only the linear + SIP part.
    instrument, detector : upper-case header values ('' if absent).  flc : name ends
        ``_flc.fits``.  index : position in the input list (set by :func:`read_inputs`).
    """

    path: str
    root: str
    extver: int
    sci_ext: Any
    err_ext: Any
    dq_ext: Any
    shape: tuple
    exptime: float
    bunit: str
    in_units: str
    gain: float | None
    rdnoise: float | None
    mdrizsky: float | None
    idcscale: float | None
    wcs_header: str = field(repr=False)
    instrument: str
    detector: str
    flc: bool
    index: int = 0
    has_lookup_distortion: bool = False
    photflam: float | None = None
    expstart: float | None = None
    expend: float | None = None
    ccdamp: str | None = None
    pa_v3: float | None = None       # PA_V3 (primary) and the SCI header's IDCV2REF, IDCV3REF,
    idcv2ref: float | None = None    # IDCTHETA: AstroDrizzle's default orientation (see
    idcv3ref: float | None = None    # geometry.Aperture)
    idctheta: float | None = None
    #: where the pixels of SCI/ERR/DQ lie in an uncompressed file, to read them without parsing
    #: the headers again: ``((inode, mtime_ns, size), ((name, offset, dtype), ...))``; () if
    #: unknown
    raw: tuple = field(default=(), repr=False, compare=False)

    @property
    def aperture(self):
        """The chip's :class:`dazzle.geometry.Aperture`, or None without ``IDCV2REF``."""
        from .geometry import Aperture

        return Aperture.from_keywords(self.pa_v3, self.idcv2ref, self.idcv3ref, self.idctheta,
                                      self.instrument, self.detector)

    # ---- naming ----------------------------------------------------------------------------
    @property
    def label(self) -> str:
        """``"<path>[SCI,2]"`` (``"<path>[0]"`` for a simple image)."""
        return f"{self.path}{_ext_str(self.sci_ext)}"

    @property
    def ny(self) -> int:
        return self.shape[0]

    @property
    def nx(self) -> int:
        return self.shape[1]

    def _error(self, ext, what) -> InputError:
        return _err(self.path, ext, what)

    # ---- WCS -------------------------------------------------------------------------------
    def wcs(self):
        """A new ``astropy.wcs.WCS`` with the chip's full distortion, ``pixel_shape`` set.

        Built from :attr:`wcs_header`, or -- for lookup-table distortions -- from the file;
        parsed once per header (per file version) and handed out as private copies
        (:func:`geometry.cached_wcs`).
        """
        try:
            w = cached_wcs(self.wcs_key(), self._parse_wcs)
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure becomes a one-line InputError
            raise self._error(self.sci_ext, f"cannot build the WCS ({_exc_text(exc)})") from exc
        w.pixel_shape = (self.nx, self.ny)
        return w

    def wcs_key(self):
        """What identifies the chip's WCS (:meth:`wcs`): its header text, or for lookup-table
        distortions the file's path, extension and version; None when nothing does."""
        if self.has_lookup_distortion:
            st = os.stat(self.path)
            return ("file", self.path, repr(self.sci_ext), st.st_mtime_ns, st.st_size)
        return ("chip", self.wcs_header)

    def _parse_wcs(self):
        if self.has_lookup_distortion:
            with _quiet(), fits.open(self.path, memmap=False, lazy_load_hdus=True) as hdul:
                return wcs_from_header(hdul[self.sci_ext].header, hdul)
        return wcs_from_header(self.wcs_header)

    def header(self, which: str = "sci") -> fits.Header:
        """The input's primary (``"primary"``) or this chip's SCI (``"sci"``) header."""
        with _quiet():
            return fits.getheader(self.path, 0 if which == "primary" else self.sci_ext)

    def frame(self) -> Frame:
        """The chip as a :class:`geometry.Frame` (linear + SIP part only)."""
        return Frame(self.wcs_header, self.shape)

    # ---- pixels ----------------------------------------------------------------------------
    def load(self, *, err: bool = True, dq: bool = True, section=None) -> ChipData:
        """Read this chip's pixels (SCI, and ERR/DQ when present and asked for).

        Opens the file read-only without memory mapping and reads only this chip's
        extensions -- with ``section`` (half-open input pixels ``(x0, x1, y0, y1)``) only those
        pixels of them.  Raises :class:`InputError` naming the file and extension if the file
        can no longer be read, the SCI shape differs from :attr:`shape`, or ERR/DQ do not match
        SCI.  Non-finite SCI pixels are kept and counted in ``ChipData.n_nonfinite``.
        """
        want = [("sci", self.sci_ext)]
        if err and self.err_ext is not None:
            want.append(("err", self.err_ext))
        if dq and self.dq_ext is not None:
            want.append(("dq", self.dq_ext))
        arrays = {"sci": None, "err": None, "dq": None}
        n_bad = None
        if not os.path.isfile(self.path):
            raise self._error(None, "no such file (it was readable when the inputs were read)")
        raw = self._read_raw(want, section)   # the file as scanned: no header to parse again
        if raw is not None:
            for name, ext in want:
                arrays[name], bad = self._to_native(raw[name], name, ext)
                if name == "sci":
                    n_bad = bad
        else:
            try:
                with _quiet(), fits.open(self.path, memmap=False, lazy_load_hdus=True) as hdul:
                    for name, ext in want:
                        try:
                            hdu = hdul[ext]
                        except (KeyError, IndexError):
                            raise self._error(ext, "extension not found (file changed since "
                                                   "the inputs were read?)") from None
                        arrays[name], bad = self._read_array(hdu, name, ext, section)
                        if name == "sci":
                            n_bad = bad
            except InputError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise self._error(self.sci_ext, f"cannot read pixels ({_exc_text(exc)})") from exc

        sci = arrays["sci"]
        want_shape = tuple(self.shape) if section is None else (section[3] - section[2], section[1] - section[0])
        if sci.shape != want_shape:
            raise self._error(self.sci_ext, f"shape {sci.shape} differs from {want_shape} "
                                            "recorded when the inputs were read")
        for name, ext in want[1:]:
            a = arrays[name]
            if a.shape != sci.shape:
                sci_name = _ext_str(self.sci_ext)[1:-1]
                raise self._error(ext, f"shape {a.shape} differs from {sci_name} shape {sci.shape}")
        if n_bad is None:
            n_bad = int(sci.size - np.count_nonzero(np.isfinite(sci)))
        return ChipData(sci=sci, err=arrays["err"], dq=arrays["dq"], n_nonfinite=n_bad)

    def _read_raw(self, want, section=None):
        """The wanted arrays (of ``section`` only: its rows read, its columns kept) read straight
        from their recorded offsets (:attr:`raw`), as stored (big-endian), or None: no layout recorded for one of them, the file's inode, size or
        modification time differs from the scan's, or a read comes up short -- then the caller
        reads through astropy, which reports what is wrong."""
        if not self.raw:
            return None
        stamp, layout = self.raw
        where = {name: (offset, dtype) for name, offset, dtype in layout}
        if any(name not in where for name, _ in want):
            return None
        try:
            st = os.stat(self.path)
            if (st.st_ino, st.st_mtime_ns, st.st_size) != stamp:
                return None
            out = {}
            ny, nx = int(self.shape[0]), int(self.shape[1])
            x0, x1, y0, y1 = (0, nx, 0, ny) if section is None else section
            count = (y1 - y0) * nx
            with open(self.path, "rb") as f:
                for name, _ in want:
                    offset, dtype = where[name]
                    f.seek(offset + y0 * nx * np.dtype(dtype).itemsize)
                    a = np.fromfile(f, dtype=dtype, count=count)
                    if a.size != count:
                        return None
                    a = a.reshape(y1 - y0, nx)
                    out[name] = a if (x0, x1) == (0, nx) else np.ascontiguousarray(a[:, x0:x1])
            return out
        except OSError:
            return None

    def _read_array(self, hdu, name, ext, section=None):
        """(native array, its NaN/Inf count when counted on the way, else None)."""
        hdr = hdu.header
        if hdr.get("NAXIS", 0) == 0 and "PIXVALUE" in hdr:  # HST constant-value extension
            shape = _shape_of_hdu(hdr)
            data = np.full(shape, hdr["PIXVALUE"])
            if section is not None:
                data = data[section[2]:section[3], section[0]:section[1]]
        elif section is not None:
            shape = _shape_of_hdu(hdr)
            if shape != tuple(self.shape):
                raise self._error(ext, f"shape {shape} differs from {tuple(self.shape)} recorded when the "
                                       "inputs were read")
            data = hdu.section[section[2]:section[3], section[0]:section[1]]
        else:
            data = hdu.data
        if data is None:
            raise self._error(ext, "no image data")
        if data.ndim != 2:
            raise self._error(ext, f"NAXIS = {data.ndim}, expected a 2-D image")
        return self._to_native(data, name, ext)

    def _to_native(self, data, name, ext):
        """(``data`` as a native array -- DQ integer, else float32 -- , the NaN/Inf count of a
        SCI array when counted on the way, else None)."""
        if name == "dq":
            return _as_dq(data, lambda what: self._error(ext, what)), None
        if name == "sci":
            # the usual big-endian float32 SCI: swapped and its NaN/Inf counted in one pass
            from dazzle.kernels.byteorder import swap_float32_count_nonfinite

            native, n_bad = swap_float32_count_nonfinite(data)
            if native is not None:
                return native, n_bad
        return _as_native(data, np.float32), None


def _shape_of_hdu(hdr):
    """Image shape from a header: NAXIS1/2 of a 2-D image, or NPIX1/2 of an HST constant
    extension (NAXIS = 0 with PIXVALUE); None if there is no image."""
    naxis = hdr.get("NAXIS", 0)
    if naxis == 0:
        if "PIXVALUE" in hdr and hdr.get("NPIX1") and hdr.get("NPIX2"):
            return int(hdr["NPIX2"]), int(hdr["NPIX1"])
        return None
    if naxis != 2:
        return naxis  # caller reports it
    return int(hdr["NAXIS2"]), int(hdr["NAXIS1"])


def _as_native(a: np.ndarray, dtype) -> np.ndarray:
    """``a`` as a native-byte-order array of ``dtype``; a byteswap happens in place when only
    the byte order differs (no second copy of a big chip), in a Numba loop that releases the
    GIL (``ndarray.byteswap`` holds it)."""
    dtype = np.dtype(dtype)
    if a.dtype == dtype:
        return a
    if a.dtype.newbyteorder("=") == dtype and a.flags.writeable:
        # Our private buffer (file opened without memmap): swap it rather than copy it.
        from dazzle.kernels.byteorder import swap_inplace

        return swap_inplace(a).view(dtype)
    return a.astype(dtype)


def _as_dq(a: np.ndarray, error) -> np.ndarray:
    if a.dtype.kind in "ui":
        return _as_native(a, a.dtype.newbyteorder("="))
    if a.dtype.kind == "b":
        return a.astype(np.uint8)
    if a.dtype.kind == "f":
        if not (np.all(np.isfinite(a)) and np.all(a == np.floor(a)) and np.all(a >= 0)):
            raise error("DQ array has non-integer values")
        return a.astype(np.int64 if a.max(initial=0) >= 2**31 else np.int32)
    raise error(f"DQ array has unsupported type {a.dtype}")


@contextlib.contextmanager
def _quiet():
    """Silence astropy's header-fixing chatter (FITSFixedWarning, VerifyWarning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --------------------------------------------------------------------------------------------
# Reading one file
# --------------------------------------------------------------------------------------------

def exposure_root(path: str) -> str:
    """File name without directory and ``_flt.fits``/``_flc.fits``/``.fits``-like ending."""
    name = os.path.basename(os.fspath(path))
    low = name.lower()
    for suffix in ROOT_SUFFIXES:
        if low.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _is_blank(value) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in _BLANK)


def _mean_nonzero(values) -> float | None:
    """drizzlepac's ``_averageFromList``: mean of the non-zero values; 0.0 if all are zero."""
    vals = [float(v) for v in values]
    nz = [v for v in vals if v != 0.0]
    return sum(nz) / len(nz) if nz else (0.0 if vals else None)


def _override_value(name, value) -> float:
    """A user value for gain/rdnoise/exptime: a number or a comma list (averaged ignoring
    zeros, as drizzlepac)."""
    try:
        if isinstance(value, str):
            v = _mean_nonzero(p for p in value.split(",") if p.strip())
        else:
            v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not a number") from None
    if v is None or not math.isfinite(v):
        raise ValueError(f"{name}={value!r} is not a finite number")
    return v


def _check_instr_params(gain, rdnoise, exptime, gnkeyword, rnkeyword, expkeyword):
    """Validate the instrument parameters once; return the normalised overrides."""
    out = {}
    for name, value, kwname, kw, positive in (
            ("gain", gain, "gnkeyword", gnkeyword, True),
            ("rdnoise", rdnoise, "rnkeyword", rnkeyword, False),
            ("exptime", exptime, "expkeyword", expkeyword, True)):
        if not _is_blank(value) and not _is_blank(kw):
            raise ValueError(f"both {name}={value!r} and {kwname}={kw!r} are given: AstroDrizzle "
                             "refuses this as ambiguous; give one of them")
        v = None if _is_blank(value) else _override_value(name, value)
        if v is not None and (v <= 0 if positive else v < 0):
            raise ValueError(f"{name}={value!r} must be {'> 0' if positive else '>= 0'}")
        out[name] = v
        out[kwname] = None if _is_blank(kw) else [k.strip().upper() for k in str(kw).split(",")
                                                  if k.strip()]
    return out


def _lookup(key, headers):
    for h in headers:
        if h is not None and key in h:
            return h[key]
    return None


def _float_kw(key, headers, path, ext):
    value = _lookup(key, headers)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise _err(path, ext, f"{key} = {value!r} is not a number")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise _err(path, ext, f"{key} = {value!r} is not a number") from None
    return v


def _keywords_mean(keys, headers, path, ext, what, *, required):
    """Mean of the non-zero values of header keywords (primary first, then SCI).

    ``required``: every keyword must exist (user-named keywords); otherwise the keywords present
    are used and None is returned when there are none.
    """
    vals = []
    for k in keys:
        v = _float_kw(k, headers, path, ext)
        if v is None:
            if required:
                raise _err(path, ext, f"{what} keyword {k} not found in the primary or SCI header")
            continue
        if not math.isfinite(v):
            raise _err(path, ext, f"{k} = {v} is not finite")
        vals.append(v)
    return _mean_nonzero(vals) if vals else None


def _str_kw(key, headers) -> str:
    v = _lookup(key, headers)
    return "" if v is None else str(v).strip().upper()


def _parse_group(group):
    """AstroDrizzle ``group`` -> None (all) or a list of HDU indices (int) and
    ``("SCI", extver)`` tuples (``drizzlepac.util._parse_ext_spec``)."""
    if _is_blank(group):
        return None
    if isinstance(group, (bool, np.bool_)):
        raise ValueError(f"group={group!r}: expected extension numbers such as '1,4' or 'sci,1'")
    if isinstance(group, (int, np.integer)):
        return [int(group)]
    if isinstance(group, tuple) and len(group) == 2 and isinstance(group[0], str):
        return [(group[0].strip().upper(), int(group[1]))]
    if isinstance(group, str):
        parts = [p.strip() for p in group.split(",")]
        if len(parts) == 2 and parts[0].isalpha():
            try:
                return [(parts[0].upper(), int(parts[1]))]
            except ValueError:
                raise ValueError(f"group={group!r}: expected 'sci,<extver>'") from None
        items = parts
    elif isinstance(group, (list, tuple)):
        items = list(group)
    else:
        raise ValueError(f"group={group!r}: unsupported type {type(group).__name__}")
    out = []
    for it in items:
        if isinstance(it, tuple) and len(it) == 2:
            out.append((str(it[0]).strip().upper(), int(it[1])))
            continue
        try:
            out.append(int(it))
        except (TypeError, ValueError):
            raise ValueError(f"group={group!r}: {it!r} is not an extension number "
                             "(expected e.g. '1,4' or 'sci,1')") from None
    return out


def _check_data_present(path, ext, hdu, file_size):
    """Raise if the HDU's data run past the end of the file (truncated file)."""
    if file_size is None or isinstance(hdu, fits.CompImageHDU):
        return  # compressed file (offsets are in the decompressed stream) / tile-compressed
    hdr = hdu.header
    naxis = hdr.get("NAXIS", 0)
    if not naxis:
        return
    n = 1
    for i in range(1, naxis + 1):
        n *= int(hdr.get(f"NAXIS{i}", 0))
    n = abs(int(hdr.get("BITPIX", 8))) // 8 * int(hdr.get("GCOUNT", 1)) * (
        int(hdr.get("PCOUNT", 0)) + n)
    start = hdu.fileinfo()["datLoc"]
    if start + n > file_size:
        raise _err(path, ext, f"file is truncated: the data need bytes {start}..{start + n} but "
                              f"the file has {file_size} bytes")


def _open_scan(path):
    """Open a FITS file and load every header (no data); return (hdulist, file_size).

    Raises InputError (file level) for a missing, unreadable, non-FITS or truncated file.
    """
    if not os.path.exists(path):
        raise _err(path, None, "no such file")
    if os.path.isdir(path):
        raise _err(path, None, "is a directory, not a FITS file")
    if not os.path.isfile(path):   # a FIFO would block, /dev/zero never end
        raise _err(path, None, "not a regular file (a device, pipe or socket)")
    if not os.access(path, os.R_OK):
        raise _err(path, None, "permission denied (not readable)")
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
        # gzip/bzip2/zip/xz files: astropy's offsets refer to the decompressed stream, so the
        # size checks are skipped (a truncated stream fails when read instead).
        compressed = magic.startswith((b"\x1f\x8b", b"BZh", b"PK\x03\x04", b"\xfd7zXZ"))
        file_size = None if compressed else os.path.getsize(path)
        with _quiet():
            hdul = fits.open(path, memmap=False, lazy_load_hdus=True)
            try:
                n = len(hdul)  # reads all headers, no data
            except Exception:
                hdul.close()
                raise
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _err(path, None, f"cannot read as FITS ({_exc_text(exc)})") from exc
    if file_size == 0 or n == 0:
        hdul.close()
        raise _err(path, None, "empty or corrupt FITS file")
    if file_size is None:
        return hdul, None
    # A header cut short is silently dropped by astropy: look for an extension header after
    # the last complete HDU.
    info = hdul[-1].fileinfo()
    end = info["datLoc"] + info["datSpan"]
    if end < file_size:
        with open(path, "rb") as f:
            f.seek(end)
            head = f.read(8)
        if head == b"XTENSION":
            hdul.close()
            raise _err(path, None, f"file is truncated or corrupt: incomplete extension header "
                                   f"after HDU {n - 1} (byte {end})")
    return hdul, file_size


def read_chips(path, *, group=None, gain=None, rdnoise=None, exptime=None, gnkeyword=None,
               rnkeyword=None, expkeyword=None, allow_products=False, wcskey=None) -> list[Chip]:
    """Describe the science chips of one FITS file (headers only; no pixel data is read).

    Parameters
    ----------
    path : str or PathLike
        An HST-style multi-extension file (every ``SCI,n`` with its ``ERR,n`` and ``DQ,n``
        when present) or a simple FITS image (data in the primary HDU: one chip, no ERR/DQ).
    group : AstroDrizzle's ``group``: '' / None = every chip; ``'1,4'`` = those FITS
        extension numbers (each must be a SCI extension); ``'sci,2'`` = SCI extension EXTVER 2.
    gain, rdnoise, exptime : float, optional
        Values overriding the headers (a comma list of numbers is averaged ignoring zeros).
    gnkeyword, rnkeyword, expkeyword : str, optional
        Header keyword(s) to read instead of the defaults (``ATODGNA..D``, ``READNSEA..D``,
        ``EXPTIME``); a comma list is averaged ignoring zeros.  Exclusive with the value.
    allow_products : accept a file that dazzle wrote (:func:`product_kind`); refused by default.
    wcskey : an alternate WCS of the SCI headers ('A'..'Z'; None/'' = the primary WCS).

    Returns a list of :class:`Chip` in file order, all with ``index=0`` (see
    :func:`read_inputs`).  Raises :class:`InputError` for a bad file and ``ValueError`` for
    bad parameters.
    """
    pars = _chip_pars(gain, rdnoise, exptime, gnkeyword, rnkeyword, expkeyword, wcskey)
    groups = _parse_group(group)
    apath = os.path.abspath(os.fspath(path))
    hdul, file_size = _open_scan(apath)
    try:
        kind = None if allow_products else product_kind(hdul[0].header)
        if kind is not None:
            raise _err(apath, None, f"is a dazzle product ({PRODUCT_KEYWORD} = {kind!r}, written by an "
                                    "earlier run), not an exposure: give the exposures only (e.g. "
                                    "'*_flt.fits'), or --set products_as_input=True to drizzle it")
        return _scan_chips(apath, hdul, file_size, groups, group, pars)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - corrupt headers etc.
        raise _err(apath, None, f"cannot read ({_exc_text(exc)})") from exc
    finally:
        hdul.close()


def _chip_pars(gain=None, rdnoise=None, exptime=None, gnkeyword=None, rnkeyword=None, expkeyword=None,
               wcskey=None) -> dict:
    """The instrument parameters and ``wcskey``, checked once for every input."""
    pars = _check_instr_params(gain, rdnoise, exptime, gnkeyword, rnkeyword, expkeyword)
    pars["wcskey"] = (wcskey or "").strip().upper() or None
    if pars["wcskey"] is not None and not (len(pars["wcskey"]) == 1 and "A" <= pars["wcskey"] <= "Z"):
        raise ValueError(f"wcskey={wcskey!r}: expected one letter A-Z ('' = the primary WCS)")
    return pars


def _scan_chips(path, hdul, file_size, groups, group_spec, pars):
    primary = hdul[0].header
    # Index of every named extension: (EXTNAME, EXTVER) -> HDU index.
    named: dict[tuple, int] = {}
    sci_list: list[tuple[int, int]] = []  # (hdu index, extver)
    for i, hdu in enumerate(hdul):
        if i == 0:
            continue
        key = (hdu.name.upper(), int(hdu.ver))
        if key[0] == "SCI":
            if key in named:
                raise _err(path, key, f"duplicate extension (HDUs {named[key]} and {i})")
            sci_list.append((i, key[1]))
        named.setdefault(key, i)

    simple = not sci_list
    if simple:
        if primary.get("NAXIS", 0) == 0:
            raise _err(path, None, "no SCI extension and no image data in the primary HDU")
        sci_list = [(0, 1)]

    # Apply `group`.
    if groups is not None:
        chosen = []
        for g in groups:
            if isinstance(g, tuple):
                if simple or g[0] != "SCI" or g not in named:
                    raise _err(path, None, f"group={group_spec!r}: no extension {g[0]},{g[1]}"
                                           + (" (the file has no SCI extensions)" if simple
                                              else ""))
                idx = named[g]
            else:
                idx = g
                if idx < 0 or idx >= len(hdul):
                    raise _err(path, None, f"group={group_spec!r}: extension number {idx} does "
                                           f"not exist (the file has {len(hdul)} HDUs)")
                if not any(idx == s for s, _ in sci_list):
                    hdu = hdul[idx]
                    raise _err(path, None, f"group={group_spec!r}: extension {idx} is "
                                           f"{hdu.name},{hdu.ver}, not a SCI extension")
            if idx not in chosen:
                chosen.append(idx)
        sci_list = [(i, v) for i, v in sci_list if i in chosen]

    chips = []
    for idx, extver in sci_list:
        chips.append(_make_chip(path, hdul, idx, extver, simple, named, file_size, pars))
    return chips


_RAW_DTYPES = {-32: ">f4", -64: ">f8", 16: ">i2", 32: ">i4"}


def _raw_entry(name, hdu, shape, file_size):
    """``(name, offset, dtype)`` of an image HDU whose pixels can be read as they are stored:
    an uncompressed file, a 2-D image of ``shape``, no scaling or blank keywords (astropy would
    convert the values); else None."""
    if file_size is None or isinstance(hdu, fits.CompImageHDU):
        return None
    hdr = hdu.header
    if (hdr.get("NAXIS", 0) != 2 or _shape_of_hdu(hdr) != tuple(shape)
            or any(k in hdr for k in ("BSCALE", "BZERO", "BLANK"))
            or int(hdr.get("GCOUNT", 1)) != 1 or int(hdr.get("PCOUNT", 0)) != 0):
        return None
    dtype = _RAW_DTYPES.get(hdr.get("BITPIX"))
    if dtype is None:
        return None
    return (name, int(hdu.fileinfo()["datLoc"]), dtype)


def _raw_layout(path, hdul, idx, named, exts, shape, file_size):
    """:attr:`Chip.raw` for a chip (SCI at ``hdul[idx]``, ERR/DQ per ``exts``), or ()."""
    if file_size is None:
        return ()
    try:
        st = os.stat(path)
        entries = [_raw_entry("sci", hdul[idx], shape, file_size)]
        for name in ("ERR", "DQ"):
            if exts[name] is not None:
                entries.append(_raw_entry(name.lower(), hdul[named[exts[name]]], shape, file_size))
    except Exception:  # noqa: BLE001 -- no layout: the pixels are read through astropy
        return ()
    entries = tuple(e for e in entries if e is not None)
    return ((st.st_ino, st.st_mtime_ns, st.st_size), entries) if entries else ()


def _make_chip(path, hdul, idx, extver, simple, named, file_size, pars):
    sci_ext = 0 if simple else ("SCI", extver)
    hdu = hdul[idx]
    hdr = hdu.header
    primary = hdul[0].header
    headers = (hdr,) if simple else (primary, hdr)

    # --- image shape --------------------------------------------------------------------
    shape = _shape_of_hdu(hdr)
    if shape is None:
        raise _err(path, sci_ext, "no image data (NAXIS = 0)")
    if isinstance(shape, int):
        raise _err(path, sci_ext, f"NAXIS = {shape}, expected a 2-D image")
    if shape[0] < 1 or shape[1] < 1:
        raise _err(path, sci_ext, f"empty image (shape {shape})")
    _check_data_present(path, sci_ext, hdu, file_size)

    # --- ERR / DQ -----------------------------------------------------------------------
    exts = {}
    for name in ("ERR", "DQ"):
        ext = (name, extver)
        if simple or ext not in named:
            exts[name] = None
            continue
        ehdu = hdul[named[ext]]
        eshape = _shape_of_hdu(ehdu.header)
        if eshape is None:  # header-only extension without PIXVALUE: treat as absent
            exts[name] = None
            continue
        if isinstance(eshape, int):
            raise _err(path, ext, f"NAXIS = {eshape}, expected a 2-D image")
        if eshape != shape:
            raise _err(path, ext, f"shape {eshape} differs from SCI,{extver} shape {shape}")
        _check_data_present(path, ext, ehdu, file_size)
        exts[name] = ext

    # --- exposure time ------------------------------------------------------------------
    if pars["exptime"] is not None:
        exptime = pars["exptime"]
    else:
        keys = pars["expkeyword"] or ["EXPTIME"]
        exptime = _keywords_mean(keys, headers, path, sci_ext, "exposure time", required=True)
        if exptime is None or not math.isfinite(exptime) or exptime <= 0:
            raise _err(path, sci_ext, f"{','.join(keys)} = {exptime} (must be > 0; give "
                                      "exptime= to override)")

    # --- gain / read noise --------------------------------------------------------------
    if pars["gain"] is not None:
        gain = pars["gain"]
    elif pars["gnkeyword"]:
        gain = _keywords_mean(pars["gnkeyword"], headers, path, sci_ext, "gain", required=True)
    else:
        gain = _keywords_mean(_DEFAULT_GAIN_KEYS, headers, path, sci_ext, "gain",
                              required=False)
        if gain is None:
            gain = _keywords_mean(("ATODGAIN",), headers, path, sci_ext, "gain", required=False)
    if gain is not None and gain <= 0:
        gain = None  # all gain keywords zero: unknown
    if pars["rdnoise"] is not None:
        rdnoise = pars["rdnoise"]
    elif pars["rnkeyword"]:
        rdnoise = _keywords_mean(pars["rnkeyword"], headers, path, sci_ext, "read noise",
                                 required=True)
    else:
        rdnoise = _keywords_mean(_DEFAULT_RDNOISE_KEYS, headers, path, sci_ext, "read noise",
                                 required=False)
        if rdnoise is None:
            rdnoise = _keywords_mean(("READNSE",), headers, path, sci_ext, "read noise",
                                     required=False)
    if rdnoise is not None and rdnoise < 0:
        raise _err(path, sci_ext, f"read noise {rdnoise} < 0")

    # --- units --------------------------------------------------------------------------
    bunit_val = hdr.get("BUNIT")
    bunit = "" if bunit_val is None else str(bunit_val).strip()
    effective = bunit if bunit and "ergs" not in bunit.lower() else "ELECTRONS/S"
    in_units = "cps" if "/s" in effective.lower() else "counts"

    # --- WCS ----------------------------------------------------------------------------
    if pars.get("wcs_object") is not None:   # an in-memory input's WCS that no header carries
        wcs_header, lookup = _object_wcs(path, sci_ext, pars["wcs_object"], shape), False
    else:
        wcs_header, lookup = _chip_wcs(path, sci_ext, hdr, hdul, shape, pars.get("wcskey"))

    sky = _float_kw("MDRIZSKY", (hdr,), path, sci_ext)
    return Chip(
        path=path,
        root=exposure_root(path),
        extver=int(extver),
        sci_ext=sci_ext,
        err_ext=exts["ERR"],
        dq_ext=exts["DQ"],
        shape=(int(shape[0]), int(shape[1])),
        exptime=float(exptime),
        bunit=bunit,
        in_units=in_units,
        gain=None if gain is None else float(gain),
        rdnoise=None if rdnoise is None else float(rdnoise),
        mdrizsky=sky,
        idcscale=_float_kw("IDCSCALE", (hdr, primary), path, sci_ext),
        wcs_header=wcs_header,
        instrument=_str_kw("INSTRUME", (primary, hdr)),
        detector=_str_kw("DETECTOR", (primary, hdr)) or _str_kw("CAMERA", (primary, hdr)),
        flc=os.path.basename(path).lower().endswith(("_flc.fits", "_flc.fits.gz")),
        has_lookup_distortion=lookup,
        photflam=_float_kw("PHOTFLAM", (hdr, primary), path, sci_ext),
        raw=_raw_layout(path, hdul, idx, named, exts, shape, file_size),
        expstart=_float_kw("EXPSTART", (primary, hdr), path, sci_ext),
        expend=_float_kw("EXPEND", (primary, hdr), path, sci_ext),
        ccdamp=_str_kw("CCDAMP", (primary, hdr)) or None,
        pa_v3=_number_or_none(_lookup("PA_V3", (primary,))),
        **{k.lower(): _number_or_none(_lookup(k, (hdr,)))
           for k in ("IDCV2REF", "IDCV3REF", "IDCTHETA")},
    )


def _number_or_none(value):
    """A header value as a float; None if absent or not a number (a keyword only some modes use)."""
    try:
        return None if isinstance(value, (bool, str)) or value is None else float(value)
    except (TypeError, ValueError):
        return None


def _chip_wcs(path, sci_ext, hdr, hdul, shape, key=None):
    """Validate the chip's celestial WCS (the alternate ``key`` if given); return (header
    text of it as the primary WCS, has_lookup_distortion)."""
    what = f"alternate WCS {key!r} (wcskey)" if key else "celestial WCS"
    for k in ("CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2"):
        if k + (key or "") not in hdr:
            raise _err(path, sci_ext, f"no {what} ({k}{key or ''} missing)")
    try:
        w = wcs_from_header(hdr, hdul, key=key)
    except Exception as exc:  # noqa: BLE001
        raise _err(path, sci_ext, f"invalid WCS ({_exc_text(exc)})") from exc
    if key and any(t is not None for t in (w.det2im1, w.det2im2, w.cpdis1, w.cpdis2)):
        raise _err(path, sci_ext, "wcskey with lookup-table distortions (D2IM/NPOL) is not supported")
    if not w.has_celestial or w.wcs.lng < 0 or w.wcs.lat < 0:
        raise _err(path, sci_ext, f"no celestial WCS (CTYPE = {hdr['CTYPE1']!r}, "
                                  f"{hdr['CTYPE2']!r})")
    lookup = any(t is not None for t in (w.det2im1, w.det2im2, w.cpdis1, w.cpdis2))
    try:
        with _quiet():
            ra, dec = w.all_pix2world([(shape[1] - 1) / 2.0], [(shape[0] - 1) / 2.0], 0)
    except Exception as exc:  # noqa: BLE001
        raise _err(path, sci_ext, f"invalid WCS ({_exc_text(exc)})") from exc
    if not (np.all(np.isfinite(ra)) and np.all(np.isfinite(dec))):
        raise _err(path, sci_ext, "invalid WCS (non-finite sky position at the chip centre)")
    check_pixel_geometry(path, sci_ext, hdr, w, shape,
                         _float_kw("IDCSCALE", (hdr, hdul[0].header), path, sci_ext))
    try:
        h = wcs_to_header(w)
    except Exception as exc:  # noqa: BLE001
        raise _err(path, sci_ext, f"invalid WCS ({_exc_text(exc)})") from exc
    h["WCSNAX1"] = int(shape[1])
    h["WCSNAX2"] = int(shape[0])
    return h.tostring(sep="\n", padding=False), lookup


def _object_wcs(path, sci_ext, w, shape) -> str:
    """Validate a WCS object of an in-memory input that no FITS header carries (a gwcs WCS,
    or an astropy WCS with lookup-table distortions): finite sky at the chip centre, a sane
    pixel.  Returns the header text of its FITS part ('' for a gwcs WCS)."""
    from .geometry import _pix2world

    try:
        with _quiet(), np.errstate(all="ignore"):
            ra, dec = _pix2world(w, [(shape[1] - 1) / 2.0], [(shape[0] - 1) / 2.0])
    except Exception as exc:  # noqa: BLE001
        raise _err(path, sci_ext, f"invalid WCS ({_exc_text(exc)})") from exc
    if not (np.all(np.isfinite(ra)) and np.all(np.isfinite(dec))):
        raise _err(path, sci_ext, "invalid WCS (non-finite sky position at the chip centre)")
    check_pixel_geometry(path, sci_ext, {}, w, shape)
    if not hasattr(w, "to_header"):
        return ""
    h = w.to_header(relax=True)
    h["WCSNAX1"], h["WCSNAX2"] = int(shape[1]), int(shape[0])
    return h.tostring(sep="\n", padding=False)


#: a pixel whose short side on the sky is below this fraction of its long side is degenerate
MIN_PIXEL_AXIS_RATIO = 0.05
#: the WCS pixel area may differ from IDCSCALE**2 by at most this factor
MAX_PIXEL_AREA_FACTOR = 10.0


def _singular_values(m):
    m = np.asarray(m, dtype=np.float64)
    if not np.all(np.isfinite(m)):
        return None
    return np.linalg.svd(m, compute_uv=False)


def check_pixel_geometry(path, sci_ext, hdr, w, shape, idcscale=None) -> None:
    """Refuse a singular or degenerate CD matrix, or a pixel area far from the nominal.

    The header's CD matrix (when given) and the full WCS's local Jacobian at the chip centre
    (distortion included) must map a pixel to a parallelogram whose short side is at least
    :data:`MIN_PIXEL_AXIS_RATIO` of its long side; with ``IDCSCALE`` known, the pixel area
    must be within :data:`MAX_PIXEL_AREA_FACTOR` of ``IDCSCALE**2``.  (An all-zero CD is
    replaced by astropy with 1-degree pixels: the header check catches it.)
    """
    from .geometry import _local_jacobian

    cards = ("CD1_1", "CD1_2", "CD2_1", "CD2_2")
    if any(k in hdr for k in cards):
        try:
            cd = [[float(hdr.get(a, 0.0)), float(hdr.get(b, 0.0))] for a, b in (cards[:2], cards[2:])]
        except (TypeError, ValueError):
            raise _err(path, sci_ext, "invalid WCS (a CD card is not a number)") from None
        sv = _singular_values(cd)
        if sv is None or not sv[0] > 0 or sv[1] < MIN_PIXEL_AXIS_RATIO * sv[0]:
            what = "all zero" if sv is not None and not sv[0] > 0 else "singular or nearly"
            raise _err(path, sci_ext, f"degenerate WCS: the CD matrix is {what} (CD1_1 CD1_2 / "
                                      f"CD2_1 CD2_2 = {cd[0][0]:.4g} {cd[0][1]:.4g} / {cd[1][0]:.4g} "
                                      f"{cd[1][1]:.4g}); its pixels would land on a line or a point")
    try:
        with _quiet():
            j = _local_jacobian(w, (shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0)
    except Exception as exc:  # noqa: BLE001
        raise _err(path, sci_ext, f"invalid WCS ({_exc_text(exc)})") from exc
    sv = _singular_values(j)
    if sv is None or not sv[0] > 0 or sv[1] < MIN_PIXEL_AXIS_RATIO * sv[0]:
        size = "non-finite" if sv is None else f'{sv[0]:.3g}" x {sv[1]:.3g}"'
        raise _err(path, sci_ext, f"degenerate WCS: a pixel at the chip centre covers {size} of sky "
                                  "(singular CD matrix or distortion)")
    if idcscale is not None and idcscale > 0:
        ratio = sv[0] * sv[1] / idcscale ** 2
        if not 1.0 / MAX_PIXEL_AREA_FACTOR <= ratio <= MAX_PIXEL_AREA_FACTOR:
            raise _err(path, sci_ext, f"WCS pixel area {sv[0] * sv[1]:.3g} arcsec^2 is {ratio:.3g} "
                                      f"times IDCSCALE^2 = {idcscale ** 2:.3g}: check the CD matrix")


# --------------------------------------------------------------------------------------------
# Reading the input list
# --------------------------------------------------------------------------------------------

_GLOB_CHARS = set("*?[")
#: what an entry of an @file must end with (case-insensitive)
_FITS_ENDINGS = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz", ".fits.fz", ".fz")


@dataclass(frozen=True)
class InputList:
    """The expanded input list: ``files`` in order; ``ivm`` the IVM file named beside each
    one in an @-list's second column (None where there is none; ``ivm`` itself is None when no
    entry has one); ``output`` the product name an association table gives (its ``PROD-*``
    row, lower case), None otherwise."""
    files: list
    ivm: list | None = None
    output: str | None = None


#: association-table members dazzle can take, in drizzlepac's search order
#: (``stsci.tools.fileutil.EXTLIST``: ``_flt`` before ``_flc``)
_ASN_SUFFIXES = ("_flt.fits", "_flc.fits")
#: the product rows an association table's output name comes from, in asnutil's order
_ASN_PRODUCTS = ("PROD-DTH", "PROD-RPT", "PROD-CRJ")


def is_association(name) -> bool:
    """An association table, by its name (``*_asn.fits``/``*_asc.fits``, as drizzlepac's
    ``processFilenames`` tells them)."""
    base = os.path.basename(os.fspath(name)).lower()
    return base.endswith(("_asn.fits", "_asc.fits"))


def _asn_column(data, name, path):
    if name not in data.names:
        raise _err(path, 1, f"not an association table: no {name} column")
    return [str(v).strip() for v in data[name]]


def read_association(path) -> InputList:
    """The exposures of an association table (``stsci.tools.asnutil.readASNTable``): the rows
    with ``MEMTYPE`` ``EXP-*`` and ``MEMPRSNT`` true, each ``<memname lower case>_flt.fits``
    (else ``_flc.fits``) beside the table; the output name from the first ``PROD-DTH``, else
    ``PROD-RPT``, else ``PROD-CRJ`` row (lower case), else the table's name up to its first
    ``_``.  A member with both an ``_flt`` and an ``_flc`` file is an error, as in drizzlepac
    (``buildASNList``); so is one with neither."""
    from astropy.io import fits

    apath = os.path.abspath(os.fspath(path))
    try:
        with fits.open(apath, memmap=False) as h:
            if len(h) < 2 or not isinstance(h[1], fits.BinTableHDU):
                raise _err(apath, 1, "not an association table (no binary table in extension 1)")
            data = h[1].data
            names = _asn_column(data, "MEMNAME", apath)
            types = [t.upper() for t in _asn_column(data, "MEMTYPE", apath)]
            present = ([bool(v) for v in data["MEMPRSNT"]] if "MEMPRSNT" in data.names
                       else [True] * len(names))
    except InputError:
        raise
    except FileNotFoundError:
        raise _err(apath, None, "association table not found") from None
    except Exception as exc:  # noqa: BLE001
        raise _err(apath, None, f"cannot read the association table ({_exc_text(exc)})") from exc
    output = next((names[types.index(t)].lower() for t in _ASN_PRODUCTS if t in types),
                  os.path.basename(apath).split("_")[0])
    here = os.path.dirname(apath)
    files = []
    for name, kind, ok in zip(names, types, present):
        if not (kind.startswith("EXP") and ok):
            continue
        found = [os.path.join(here, name.lower() + sfx) for sfx in _ASN_SUFFIXES]
        found = [f for f in found if os.path.isfile(f)]
        if not found:
            raise _err(apath, None, f"member {name} ({kind}): no {name.lower()}_flt.fits or "
                                    f"{name.lower()}_flc.fits beside the table")
        if len(found) > 1:
            raise _err(apath, None, f"member {name}: both {os.path.basename(found[0])} and "
                                    f"{os.path.basename(found[1])} beside the table; give the "
                                    "files to drizzle instead (e.g. a glob *_flc.fits)")
        files.append(found[0])
    if not files:
        raise _err(apath, None, "association table lists no present exposure (MEMTYPE EXP-*)")
    return InputList(files, None, output)


def _read_at_file(spec: str) -> InputList:
    listfile = spec[1:].strip()
    if not listfile:
        raise InputError("'@': missing list file name after '@'", path=spec)
    where = os.path.abspath(listfile)
    if os.path.exists(listfile) and not os.path.isfile(listfile):
        raise _err(where, None, "@file is not a regular file")
    try:
        with open(listfile, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise _err(where, None, f"cannot read @file ({exc.strerror or _exc_text(exc)})") from exc
    except UnicodeDecodeError:
        raise _err(where, None, "not a text @file (not UTF-8)") from None
    names, ivms = [], []
    for lineno, line in enumerate(lines, start=1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        # AstroDrizzle (processFilenames): first column the science file, an optional second
        # column its IVM file (util.atfile_ivm)
        first = words[0]
        if not first.lower().endswith(_FITS_ENDINGS):
            # the line is not echoed: a list file named by mistake may hold anything
            raise _err(where, None, f"line {lineno}: not a FITS file name (an "
                       "@file lists one input per line, e.g. j8bt06nyq_flt.fits)")
        if len(words) > 2:
            raise _err(where, None, f"line {lineno}: {len(words)} columns (an @file line is an "
                                    "input and optionally its IVM file)")
        got = _expand(first, sort=False).files
        if len(words) == 2:
            if len(got) != 1:
                raise _err(where, None, f"line {lineno}: an IVM file needs one input on its line, "
                                        f"not a pattern matching {len(got)} files")
            ivms.append(words[1])
        else:
            ivms.extend([None] * len(got))
        names.extend(got)
    return InputList(names, ivms if any(v is not None for v in ivms) else None)


def _join(parts) -> InputList:
    """Concatenate expanded lists: IVM columns aligned (None where an item had none); the
    output name of the first association table."""
    files, ivms, output = [], [], None
    for part in parts:
        files += part.files
        ivms += part.ivm if part.ivm is not None else [None] * len(part.files)
        output = output or part.output
    return InputList(files, ivms if any(v is not None for v in ivms) else None, output)


def _expand(item, *, sort: bool) -> InputList:
    """Expand one input item (path, comma list, glob, @file, association table)."""
    if isinstance(item, os.PathLike):
        item = os.fspath(item)
        return read_association(item) if is_association(item) else InputList([item])
    if not isinstance(item, str):
        raise TypeError(f"input must be a path, a list of paths or a string, got "
                        f"{type(item).__name__}")
    s = item.strip()
    if not s:
        return InputList([])
    if s.startswith("@"):
        return _read_at_file(s)
    if "," in s:
        got = _join(_expand(part, sort=False) for part in s.split(","))
        return replace(got, files=sorted(got.files)) if sort and got.ivm is None else got
    if _GLOB_CHARS & set(s) and not os.path.exists(s):
        matches = _glob.glob(s)
        if not matches:
            raise InputError(f"{s}: no files match this pattern", path=s)
        return InputList(sorted(matches))
    return read_association(s) if is_association(s) else InputList([s])


def expand_inputs(inputs) -> InputList:
    """AstroDrizzle's ``input`` expanded (see :func:`read_inputs`) into an :class:`InputList`."""
    if isinstance(inputs, InputList):
        return inputs
    if isinstance(inputs, str):
        # A string: AstroDrizzle sorts the expanded list (processFilenames) unless @file.
        return _expand(inputs, sort=not inputs.strip().startswith("@"))
    if isinstance(inputs, os.PathLike):
        return _expand(inputs, sort=False)
    if isinstance(inputs, Iterable):
        return _join(_expand(item, sort=False) for item in inputs)
    raise TypeError(f"inputs must be a path, a list of paths or a string, got "
                    f"{type(inputs).__name__}")


def read_inputs(inputs, **kw) -> list[Chip]:
    """Every chip of every input, in order, with ``index`` 0..N-1.

    ``inputs``: a path; a list of paths; a comma-separated string; a glob pattern
    (``"*_flt.fits"``); an ``@file`` (one file per line, first column; an optional second
    column names the file's IVM image, see :func:`expand_inputs`; ``#`` comments and blank
    lines ignored; relative names are relative to the current directory as in AstroDrizzle);
    an association table ``*_asn.fits`` (:func:`read_association`); an :class:`InputList`.  Items of a list may themselves be patterns or ``@files``.  A string input
    is sorted by name after expansion (AstroDrizzle); lists and @files keep their order.
    ``kw`` are passed to :func:`read_chips` (``group``, ``gain``, ``rdnoise``, ``exptime``,
    ``gnkeyword``, ``rnkeyword``, ``expkeyword``).

    Raises :class:`InputError` for an empty input, a pattern matching nothing, a missing or bad
    file, a file listed twice, or two files with the same exposure root.
    """
    names = expand_inputs(inputs).files
    if not names:
        raise InputError(f"{inputs!r}: no input files given", path=None)
    seen_paths: dict[str, str] = {}
    seen_roots: dict[str, str] = {}
    seen_files: dict = {}
    chips: list[Chip] = []
    for name in names:
        apath = os.path.abspath(name)
        if apath in seen_paths:
            raise _err(apath, None, "listed more than once in the inputs")
        seen_paths[apath] = name
        root = exposure_root(apath)
        if root in seen_roots:
            raise _err(apath, None, f"same exposure root {root!r} as {seen_roots[root]} (their "
                                    "intermediate products would collide)")
        seen_roots[root] = apath
        for key in file_identity(apath):
            if key in seen_files:
                raise _err(apath, None, f"is the same file as {seen_files[key]} (a symbolic or hard "
                                        "link): each exposure would count twice; give it once")
            seen_files[key] = apath
        chips.extend(read_chips(apath, **kw))
    if not chips:
        raise InputError(f"{inputs!r}: no science chips selected", path=None)
    copy = _first_copy(list(seen_paths))
    if copy is not None:
        raise _err(copy[1], None, f"has the same content as {copy[0]} (a copy of the same exposure): "
                                  "it would count twice; give it once")
    return [replace(c, index=i) for i, c in enumerate(chips)]


def _sample_digest(path, size, block=1 << 16) -> str:
    """SHA-256 of the first, middle and last ``block`` bytes (headers differ between
    exposures, so this separates distinct files of equal size without reading them)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for start in sorted({0, max(0, size // 2 - block // 2), max(0, size - block)}):
            f.seek(start)
            h.update(f.read(block))
    return h.hexdigest()


def _first_copy(paths):
    """The first pair ``(earlier, later)`` of files with identical bytes, or None.  Only files
    of equal size and equal samples are compared in full."""
    import filecmp

    by_key: dict = {}
    for p in paths:
        try:
            size = os.path.getsize(p)
            key = (size, _sample_digest(p, size))
        except OSError:
            continue
        for q in by_key.get(key, []):
            if filecmp.cmp(q, p, shallow=False):
                return q, p
        by_key.setdefault(key, []).append(p)
    return None
