"""In-memory inputs and results: drizzling arrays without files.

Inputs
------
Besides file names, ``dazzle.run`` / ``dazzle.drizzle`` take these items (alone or in a list,
mixed with file names; :func:`is_memory_input`):

* an ``astropy.io.fits.HDUList`` (or one image HDU): read exactly as the file it stands for
  (``SCI,n`` with ``ERR,n`` / ``DQ,n``, or a simple image; header keywords for exposure time,
  gain, read noise, units; lookup-table distortions included);
* a pair ``(data, wcs)``: a 2-D array and its WCS -- an ``astropy.wcs.WCS`` or any WCS with the
  shared astropy API (APE 14: ``pixel_to_world_values`` / ``world_to_pixel_values``), such as
  a ``gwcs`` WCS (JWST, Roman);
* a dict, the pair with more: ``{"data": ..., "wcs": ..., "err": ..., "dq": ..., "exptime":
  ..., "gain": ..., "rdnoise": ..., "bunit": ..., "header": ..., "name": ...}`` (only ``data``
  and ``wcs`` required; ``units`` ``"cps"``/``"counts"`` may stand for ``bunit``);
* an ``astropy.nddata.NDData`` / ``CCDData``: ``data`` and ``wcs``; ``uncertainty`` is the ERR
  array (standard deviations; a variance or inverse variance is converted); ``flags`` (an
  integer array) is the DQ array and a ``mask`` (True = bad) sets :data:`MASK_DQ` in it;
  ``unit`` is ``BUNIT``; ``meta`` (a CCDData's ``header``) supplies the keywords a file's
  header would (``EXPTIME``, ``ATODGNA``, ...).

Without a header, the exposure time is 1 s and the unit ``ELECTRONS/S`` (count rates), as for
a FITS image without ``BUNIT``; the parameters ``exptime``/``gain``/``rdnoise`` override them
as they do headers.  Arrays are never modified: a task gets its own copy of its chip's pixels.

An in-memory input has no file name: its exposure root (which names the per-exposure
intermediate products, e.g. ``mem01_single_sci.fits``) is ``mem<NN>`` (its number among the
in-memory inputs), an ``HDUList``'s file name root when it was read from a file, or the
record's ``name``; its label in messages is ``<root>`` (``<mem02>[SCI,1]: ...``).

How the pixels travel: a :class:`MemoryChip` carries its arrays (a :class:`Pixels`).  On the
threaded scheduler nothing is copied; the processes scheduler and a cluster without a Client
given pickle the arrays with the tasks that load them; with a ``distributed.Client`` (given
as ``scheduler=`` or active) each chip's arrays are scattered to the workers once
(:func:`scatter_chips`) and the chips carry only their key (a deferred run, ``compute=False``,
carries the arrays in its graph: it may be computed anywhere).

Results
-------
``dazzle.run(..., output=None)`` writes nothing and returns a :class:`dazzle.drizzled.Drizzled`
(an ``NDData``): the final SCI with its WCS, ``.wht``, ``.ctx`` (and ``.err`` /
``uncertainty`` when the run makes an ERR image), ``.header`` (the product's cards) and
``.run`` (the :class:`~dazzle.pipeline.RunResult`).
"""

from __future__ import annotations

import contextlib
import copy
import os
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from astropy.io import fits

from . import io
from .errors import InputError
from .io import Chip, ChipData, InputList, _as_dq, _as_native, _err, _scan_chips, _shape_of_hdu, exposure_root
from .products import _WCS_CARD, PRODUCT_KEYWORD, product_kind

__all__ = ["Pixels", "Scattered", "MemoryChip", "MASK_DQ", "is_memory_input", "expand_inputs",
           "read_inputs", "memory_chips", "scatter_chips", "is_memory_chip"]

#: the DQ value an NDData ``mask`` (True = bad) sets
MASK_DQ = 1


@dataclass(frozen=True)
class Pixels:
    """The arrays of an in-memory chip as the user gave them (never modified)."""

    sci: Any
    err: Any = None
    dq: Any = None


@dataclass(frozen=True)
class MemoryChip(Chip):
    """A :class:`~dazzle.io.Chip` whose pixels are in memory (``pixels``: a :class:`Pixels`,
    or the :class:`Scattered` key of one on a cluster) and whose WCS may be an object no FITS
    header carries (``wcs_object``: a gwcs WCS, or an astropy WCS with lookup-table
    distortions).  ``primary_header``/``sci_header``: the header texts standing for the
    input's primary and SCI headers (:meth:`header`); ``source``: the file an ``HDUList`` was
    read from (protected from being overwritten), or None."""

    pixels: Any = field(default=None, repr=False, compare=False)
    wcs_object: Any = field(default=None, repr=False, compare=False)
    primary_header: str = field(default="", repr=False, compare=False)
    sci_header: str = field(default="", repr=False, compare=False)
    source: str | None = None

    def header(self, which: str = "sci") -> fits.Header:
        """The primary (``"primary"``) or SCI (``"sci"``) header the input came with."""
        return fits.Header.fromstring(self.primary_header if which == "primary" else self.sci_header, sep="\n")

    def wcs(self):
        """The chip's WCS: as :meth:`Chip.wcs` from its header text, else a private copy of
        an astropy ``wcs_object``, else the (gwcs) ``wcs_object`` itself."""
        if self.wcs_object is None:
            return super().wcs()
        if hasattr(self.wcs_object, "deepcopy"):
            return self.wcs_object.deepcopy()
        return self.wcs_object

    def wcs_key(self):
        """As :meth:`Chip.wcs_key`; None for a ``wcs_object`` (nothing identifies it)."""
        return super().wcs_key() if self.wcs_object is None else None

    def load(self, *, err: bool = True, dq: bool = True, section=None) -> ChipData:
        """This chip's pixels (of ``section``, half-open ``(x0, x1, y0, y1)``, if given): a
        private copy (float32 SCI/ERR, integer DQ)."""
        px = self.pixels
        if isinstance(px, Scattered):
            px = px.get()
        arrays = {"sci": px.sci, "err": px.err if err else None, "dq": px.dq if dq else None}
        if section is not None:
            cut = np.s_[section[2]:section[3], section[0]:section[1]]
            arrays = {k: None if a is None else np.asarray(a)[cut] for k, a in arrays.items()}
        out = {k: None if a is None else _private(a, k, lambda what, k=k: self._error(self._ext(k), what))
               for k, a in arrays.items()}
        n_bad = int(out["sci"].size - np.count_nonzero(np.isfinite(out["sci"])))
        return ChipData(sci=out["sci"], err=out["err"], dq=out["dq"], n_nonfinite=n_bad)

    def _ext(self, name):
        return {"sci": self.sci_ext, "err": self.err_ext, "dq": self.dq_ext}[name]


def _private(a, name, error):
    """``a`` as the pipeline wants it (float32, or an integer DQ), never sharing memory with
    the user's array (a read-only view keeps the conversions from working in place)."""
    view = np.asarray(a).view()
    view.flags.writeable = False
    out = _as_dq(view, error) if name == "dq" else _as_native(view, np.float32)
    return out.copy() if np.may_share_memory(out, a) else out


def is_memory_chip(chip) -> bool:
    return isinstance(chip, MemoryChip)


# --------------------------------------------------------------------------------------------
# telling and reading in-memory inputs
# --------------------------------------------------------------------------------------------

def _is_nddata(item) -> bool:
    return all(hasattr(item, a) for a in ("data", "wcs", "uncertainty", "mask", "meta"))


def is_memory_input(item) -> bool:
    """Whether ``item`` is one in-memory input (see the module notes), not a name or a list."""
    if isinstance(item, (fits.HDUList, fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU, dict)):
        return True
    if isinstance(item, tuple) and len(item) == 2 and not isinstance(item[0], (str, os.PathLike)):
        return True
    return _is_nddata(item)


def _as_record(item) -> dict:
    """A ``(data, wcs)`` pair, a dict or an NDData as the dict of the module notes."""
    if isinstance(item, tuple):
        return {"data": item[0], "wcs": item[1]}
    if isinstance(item, dict):
        rec = dict(item)
        if "sci" in rec and "data" not in rec:
            rec["data"] = rec.pop("sci")
        unknown = set(rec) - {"data", "wcs", "err", "dq", "exptime", "gain", "rdnoise", "bunit", "units",
                              "header", "name"}
        if unknown:
            raise ValueError(f"in-memory input: unknown key(s) {sorted(unknown)} (expected data, wcs, err, "
                             "dq, exptime, gain, rdnoise, bunit or units, header, name)")
        return rec
    rec = {"data": item.data, "wcs": item.wcs, "header": item.meta}
    unc = item.uncertainty
    if unc is not None:
        kind, a = type(unc).__name__, np.asarray(unc.array, dtype=np.float64)
        with np.errstate(all="ignore"):
            rec["err"] = {"StdDevUncertainty": a, "VarianceUncertainty": np.sqrt(a),
                          "InverseVariance": 1.0 / np.sqrt(a)}.get(kind)
        if rec["err"] is None:
            raise ValueError(f"in-memory input: uncertainty {kind} is not a standard deviation, variance "
                             "or inverse variance")
    flags, mask = getattr(item, "flags", None), item.mask
    if flags is not None or mask is not None:
        dq = np.zeros(np.shape(item.data), dtype=np.int32) if flags is None else np.array(flags)
        if mask is not None:
            dq = dq | (np.asarray(mask, dtype=bool) * np.asarray(MASK_DQ, dtype=dq.dtype))
        rec["dq"] = dq
    if item.unit is not None:
        rec["bunit"] = item.unit.to_string().replace(" ", "")
    return rec


_HEADER_SKIP = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "EXTNAME", "EXTVER", "BSCALE",
                "BZERO", "XTENSION", "PCOUNT", "GCOUNT", "CHECKSUM", "DATASUM"}


def _record_hdulist(rec, name):
    """The one-chip FITS image a record stands for (header logic only: the pixels stay in the
    record) and the WCS object to use when no header carries it."""
    from .geometry import is_ape14, wcs_to_header

    sci = np.asarray(rec["data"])
    if sci.ndim != 2:
        raise _err(name, 0, f"data has {sci.ndim} dimension(s), expected a 2-D image")
    hdr = fits.Header()
    meta = rec.get("header")
    for key, value in (meta.items() if meta is not None else ()):
        # the WCS is the record's: no card of another (a stale SIP) may mix into it
        if (isinstance(key, str) and len(key) <= 8 and key.upper() not in _HEADER_SKIP
                and not _WCS_CARD.match(key.upper()) and isinstance(value, (str, int, float, bool, np.number))):
            hdr[key] = value
    hdr.setdefault("EXPTIME", 1.0)
    for key, rkey in (("EXPTIME", "exptime"), ("ATODGAIN", "gain"), ("READNSE", "rdnoise"), ("BUNIT", "bunit")):
        if rec.get(rkey) is not None:
            hdr[key] = rec[rkey]
    if rec.get("units") is not None:
        units = str(rec["units"]).lower()
        if units not in ("cps", "counts"):
            raise _err(name, 0, f"units={rec['units']!r}: expected 'cps' or 'counts'")
        hdr["BUNIT"] = "ELECTRONS/S" if units == "cps" else "ELECTRONS"
    w = rec.get("wcs")
    if w is not None and not is_ape14(w) and hasattr(w, "low_level_wcs"):   # a high-level wrapper
        w = w.low_level_wcs
    if w is None or not is_ape14(w):
        raise _err(name, 0, f"no WCS (got {type(w).__name__}): give an astropy WCS or a WCS with the "
                            "shared astropy API (gwcs)")
    wcs_object = None
    lookup = any(getattr(w, t, None) is not None for t in ("det2im1", "det2im2", "cpdis1", "cpdis2"))
    if hasattr(w, "wcs") and not lookup:
        hdr.update(wcs_to_header(w))
    else:   # gwcs, or lookup tables: the object itself, on a private copy knowing its shape
        wcs_object = copy.deepcopy(w)
        with contextlib.suppress(AttributeError):   # a WCS whose shape is fixed
            wcs_object.pixel_shape = (sci.shape[1], sci.shape[0])
    data = sci if sci.dtype.kind in "fiu" and sci.dtype.itemsize in (2, 4, 8) else sci.astype(np.float32)
    return fits.HDUList([fits.PrimaryHDU(data=data, header=hdr)]), wcs_object


def _hdulist_pixels(hdul, chip):
    """The arrays of a chip of an in-memory HDUList (an HST constant extension expanded)."""
    def array(ext):
        if ext is None:
            return None
        hdu = hdul[ext]
        if hdu.header.get("NAXIS", 0) == 0 and "PIXVALUE" in hdu.header:
            return np.full(_shape_of_hdu(hdu.header), hdu.header["PIXVALUE"])
        return hdu.data

    return Pixels(array(chip.sci_ext), array(chip.err_ext), array(chip.dq_ext))


def _check_pixels(name, px, shape):
    for what, a in (("err", px.err), ("dq", px.dq)):
        if a is not None and np.shape(a) != tuple(shape):
            raise _err(name, 0, f"{what} shape {np.shape(a)} differs from the data shape {tuple(shape)}")


def memory_chips(item, number, *, groups=None, group=None, pars=None, allow_products=False) -> list:
    """The chips of one in-memory input (``number``: 1 for the first in-memory input; names
    its root ``mem<NN>`` when nothing else does).  ``groups``/``group`` as
    :func:`dazzle.io._parse_group` and the ``group`` parameter; ``pars`` the checked
    instrument parameters (:func:`dazzle.io._check_instr_params`)."""
    pars = dict(pars or {})
    source = None
    if isinstance(item, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)):
        item = fits.HDUList([item if isinstance(item, fits.PrimaryHDU) else fits.PrimaryHDU(), item])
    if isinstance(item, fits.HDUList):
        source = item.filename()
        root = exposure_root(source) if source else f"mem{number:02d}"
        hdul, wcs_object, rec = item, None, None
    else:
        rec = _as_record(item)
        root = exposure_root(str(rec["name"])) if rec.get("name") else f"mem{number:02d}"
        hdul, wcs_object = _record_hdulist(rec, f"<{root}>")
    name = f"<{root}>"
    flc = bool(source) and os.path.basename(source).lower().endswith(("_flc.fits", "_flc.fits.gz"))
    kind = None if allow_products else product_kind(hdul[0].header)
    if kind is not None:
        raise _err(name, None, f"is a dazzle product ({PRODUCT_KEYWORD} = {kind!r}), not an exposure: "
                               "give exposures, or products_as_input=True to drizzle it")
    pars["wcs_object"] = wcs_object
    try:
        chips = _scan_chips(name, hdul, None, groups, group, pars)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _err(name, None, f"cannot read ({type(exc).__name__}: {exc})") from exc
    primary = hdul[0].header.tostring(sep="\n", padding=False)
    out = []
    for c in chips:
        if rec is None:
            px, ext = _hdulist_pixels(hdul, c), {}
            if c.has_lookup_distortion:   # the tables live in the HDUList: keep the WCS object
                from .geometry import wcs_from_header

                w = wcs_from_header(hdul[c.sci_ext].header, hdul)
                w.pixel_shape = (c.nx, c.ny)
                ext["wcs_object"] = w
        else:
            px = Pixels(rec["data"], rec.get("err"), rec.get("dq"))
            _check_pixels(name, px, c.shape)
            ext = {"wcs_object": wcs_object, "err_ext": None if px.err is None else ("ERR", 1),
                   "dq_ext": None if px.dq is None else ("DQ", 1)}
        base = {f.name: getattr(c, f.name) for f in fields(Chip)}
        base.update(root=root, flc=flc, has_lookup_distortion=False, **ext)
        out.append(MemoryChip(**base, pixels=px, primary_header=primary, source=source,
                              sci_header=hdul[c.sci_ext].header.tostring(sep="\n", padding=False)))
    return out


@dataclass(frozen=True)
class Scattered:
    """A chip's :class:`Pixels` held by a cluster's workers under ``key`` (the Future that
    keeps them there stays with the caller: a Future cannot travel inside a task)."""

    key: str

    def get(self) -> Pixels:
        from distributed import Future, get_client, get_worker

        try:
            data = get_worker().data
            if self.key in data:
                return data[self.key]
        except ValueError:   # not on a worker
            pass
        return Future(self.key, client=get_client()).result()


def expand_inputs(inputs) -> InputList:
    """:func:`dazzle.io.expand_inputs`, in-memory inputs kept as they are, in their place."""
    if isinstance(inputs, InputList):
        return inputs
    if is_memory_input(inputs):
        return InputList([inputs])
    if isinstance(inputs, (str, os.PathLike)) or not isinstance(inputs, (list, tuple)):
        return io.expand_inputs(inputs)
    items = list(inputs)
    if not any(is_memory_input(i) for i in items):
        return io.expand_inputs(items)
    return io._join(InputList([i]) if is_memory_input(i) else io.expand_inputs([i]) for i in items)


def read_inputs(inputs, **kw) -> list:
    """:func:`dazzle.io.read_inputs` (same keywords) for a list that may hold in-memory inputs:
    every chip in input order, ``index`` 0..N-1; the files checked as there, and no exposure
    root (nor in-memory object) twice."""
    from dataclasses import replace

    items = expand_inputs(inputs).files
    if not any(is_memory_input(i) for i in items):
        return io.read_inputs(inputs, **kw)
    files = [i for i in items if not is_memory_input(i)]
    by_path: dict = {}
    for c in io.read_inputs(InputList(files), **kw) if files else []:
        by_path.setdefault(c.path, []).append(c)
    roots = {c.root: c.path for cs in by_path.values() for c in cs}
    kw = dict(kw)
    group, allow = kw.pop("group", None), kw.pop("allow_products", False)
    pars, groups = io._chip_pars(**kw), io._parse_group(group)
    chips, seen, number = [], set(), 0
    for item in items:
        if not is_memory_input(item):
            chips += by_path.pop(os.path.abspath(item), [])
            continue
        number += 1
        if id(item) in seen:
            raise InputError(f"in-memory input {number} ({type(item).__name__}) is listed more than once")
        seen.add(id(item))
        got = memory_chips(item, number, groups=groups, group=group, pars=pars, allow_products=allow)
        if got and got[0].root in roots:
            raise InputError(f"{got[0].path}: same exposure root {got[0].root!r} as {roots[got[0].root]} (their "
                             "intermediate products would collide)", path=got[0].path)
        roots.update({c.root: c.path for c in got})
        chips += got
    if not chips:
        raise InputError("no science chips selected", path=None)
    return [replace(c, index=i) for i, c in enumerate(chips)]


def scatter_chips(chips, client) -> tuple:
    """``(chips, futures)``: the chips with their in-memory pixels scattered to ``client``'s
    workers once (the chips in the graph then carry a :class:`Scattered` key, not the
    arrays), file chips as they are; keep ``futures`` until the graph is computed."""
    from dataclasses import replace

    mem = [k for k, c in enumerate(chips) if isinstance(c, MemoryChip) and isinstance(c.pixels, Pixels)]
    if not mem:
        return list(chips), []
    futures = client.scatter([chips[k].pixels for k in mem], hash=False)
    out = list(chips)
    for k, f in zip(mem, futures):
        out[k] = replace(chips[k], pixels=Scattered(f.key))
    return out, futures
