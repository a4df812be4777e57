"""Products out: FITS images of the drizzle steps, with their WCS and the parameters used.

Every product is written atomically (a temporary file in the same folder, then a rename), so a
failed run never leaves a partial file under a product's name.  Every product's primary header
carries ``DZPRODCT`` (:data:`PRODUCT_KEYWORD`), its kind, so that a later run does
not take it for an exposure.

Temporary files: the driver removes its own on every exit Python sees (errors,
KeyboardInterrupt, and SIGTERM, which :func:`terminate_as_exception` turns into an exception in
the main thread); those a killed run (``kill -9``) left behind are removed, and reported, by
the next run of the same products (:func:`remove_stale_temps`, under the run's lock).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
from dataclasses import dataclass
import os
import re
import signal
import sys
import threading

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

import dazzle
from dazzle.atomic import atomic_output, durable, file_identity, fsync_path, temp_name, write_fits_atomic
from dazzle.directwrite import SequentialWriter, pwrite_all as _pwrite_all
from dazzle.errors import OutputError
from dazzle.geometry import Frame, wcs_to_header
from dazzle.params import PARAMETERS, format_value

__all__ = [
    "BACKUP_DIR",
    "Canvas",
    "MANIFEST_SUFFIX",
    "PRODUCT_KEYWORD",
    "RowImage",
    "SplitCanvas",
    "Terminated",
    "abort_canvas",
    "canvas_committed",
    "check_html_target",
    "check_overwrites",
    "commit_canvas",
    "file_checksum",
    "final_headers",
    "final_product_canvas",
    "manifest_valid",
    "median_canvas",
    "product_kind",
    "product_name",
    "remove_stale_temps",
    "simple_image_hdu",
    "split_names",
    "terminate_as_exception",
    "update_input_dq",
    "write_block",
    "write_chip_image",
    "write_crclean",
    "write_image_atomic",
    "write_images_atomic",
    "write_manifest",
    "write_single_products",
]

# Parameters recorded in each product's header, by step.
_SINGLE_PARAMS = ["driz_sep_kernel", "driz_sep_pixfrac", "driz_sep_fillval", "driz_sep_bits",
                  "driz_sep_wt_scl", "stepsize"]
_FINAL_PARAMS = ["final_wht_type", "final_kernel", "final_wt_scl", "final_pixfrac", "final_fillval",
                 "final_maskval", "final_bits", "final_units", "stepsize", "final_wcs", "final_refimage",
                 "final_rot", "final_scale", "final_outnx", "final_outny", "final_ra", "final_dec",
                 "final_crpix1", "final_crpix2"]


#: Primary-header keyword that every product dazzle writes carries: the product's kind
#: (``drz``, ``single_sci``, ``single_wht``, ``median``, ``blot``, ``crmask``, ``crclean``).
PRODUCT_KEYWORD = "DZPRODCT"


def product_kind(header) -> str | None:
    """The kind of dazzle product a primary header belongs to, or None for any other file.

    Files written before :data:`PRODUCT_KEYWORD` existed are recognised by ``ORIGIN =
    'dazzle'`` with a ``DAZZLEV`` card (kind ``"product"``).
    """
    kind = header.get(PRODUCT_KEYWORD)
    if kind is not None:
        return str(kind).strip() or "product"
    if str(header.get("ORIGIN", "")).strip() == "dazzle" and "DAZZLEV" in header:
        return "product"
    return None


# --------------------------------------------------------------------------------------------
# Product names
# --------------------------------------------------------------------------------------------

def product_name(chips, output: str | None = "") -> str:
    """AstroDrizzle's final product name (``drizzlepac.processInput.process_input``).

    Suffix ``_drc.fits`` if the first input ends in ``_flc.fits``, ``_drw.fits`` for WFPC2,
    else ``_drz.fits``.

    Parameters
    ----------
    chips : iterable of dazzle.io.Chip
        The inputs' chips (at least one); the first input is the lowest ``chip.index``.
    output : str or None, optional
        Empty (or None, ``"none"``, ``"indef"``): the root of the input when there is one input
        file, else ``final``.  A name containing ``.fits`` is used as is; one already containing
        the suffix (``xyz_drz``) gets ``.fits``; otherwise the suffix is appended.

    Returns
    -------
    str
        The product's name (relative if ``output`` is).

    Raises
    ------
    ValueError
        If ``chips`` is empty.
    dazzle.errors.OutputError
        If ``output`` names a folder or the name would be one of the input files.
    """
    chips = list(chips)
    if not chips:
        raise ValueError("product_name needs at least one chip")
    first = min(chips, key=lambda c: c.index)
    ext = "_drc.fits" if first.flc else "_drz.fits"
    if first.instrument == "WFPC2":
        ext = "_drw.fits"
    blank = output is None or (isinstance(output, str) and output.strip().lower() in ("", "none", "indef"))
    out = "" if blank else os.fspath(output).strip()
    if out.endswith(("/", os.sep)):
        raise OutputError(f"{out}: output names a folder; give a root name in it, e.g. "
                          f"{os.path.join(out, 'mosaic')}", path=out)
    if not out:
        paths = {c.path for c in chips}
        name = (first.root if len(paths) == 1 else "final") + ext
    elif ".fits" in out.lower():
        name = out
    elif ext[:4] in out.lower():
        name = out + ".fits"
    else:
        name = out + ext
    if os.path.abspath(name) in {c.path for c in chips}:
        raise OutputError(f"{os.path.abspath(name)}: output name {name!r} is an input file; "
                          "choose another output (-o)", path=os.path.abspath(name))
    return name


def check_html_target(path, products=()) -> None:
    """Refuse an HTML report path that would replace something else than an HTML report.

    Parameters
    ----------
    path : str or os.PathLike
        The report's path ("" or None: nothing to check).
    products : iterable of str, optional
        The run's products: the report may not replace any of them.

    Raises
    ------
    dazzle.errors.OutputError
        If ``path`` exists and is not an ``.html``/``.htm`` file (an input, a FITS product, a
        folder), or is one of ``products``.
    """
    if not path:
        return
    path = os.fspath(path)
    if os.path.exists(path) and (not path.lower().endswith((".html", ".htm")) or not os.path.isfile(path)):
        raise OutputError(f"{path}: exists and is not an HTML report; the report would replace it: "
                          "choose another name", path=path)
    if os.path.realpath(path) in {os.path.realpath(p) for p in products}:
        raise OutputError(f"{path}: is a product of this run; choose another name for the report", path=path)


def check_overwrites(products, inputs) -> None:
    """Refuse a run in which writing any of ``products`` would replace one of ``inputs``.

    Parameters
    ----------
    products : iterable of str
        Paths the run will write.
    inputs : iterable of str
        Paths the run reads.

    Raises
    ------
    dazzle.errors.OutputError
        If a product is the same file as an input -- the same name, the same real path (symbolic
        links resolved) or the same device and inode (hard links, case-insensitive file
        systems) -- or a folder has a product's name.
    """
    owner: dict = {}
    for p in inputs:
        for key in file_identity(p):
            owner.setdefault(key, p)
    for q in products:
        if os.path.isdir(q):
            raise OutputError(f"{q}: a folder has the name of a product of this run; move it or choose "
                              "another output (-o)", path=q)
        for key in file_identity(q):
            if key in owner:
                src = owner[key]
                raise OutputError(f"{src}: is an input, and the run would write its product "
                                  f"{os.path.basename(q)} over it; rename the input or choose "
                                  "another output (-o)", path=src)


_STRUCTURAL = {"SIMPLE", "BITPIX", "EXTEND", "XTENSION", "PCOUNT", "GCOUNT", "EXTNAME",
               "EXTVER", "BSCALE", "BZERO", "NEXTEND", "CHECKSUM", "DATASUM", "END"}


def is_structural(key: str) -> bool:
    return key in _STRUCTURAL or (key.startswith("NAXIS") and key[5:].isdigit()) or key == "NAXIS"


def _as_header(h) -> fits.Header:
    if h is None:
        return fits.Header()
    if isinstance(h, fits.Header):
        return h
    if isinstance(h, Frame):
        return h.fits_header()
    if isinstance(h, str):
        return fits.Header.fromstring(h, sep="\n" if "\n" in h else "")
    if isinstance(h, WCS):
        return wcs_to_header(h)
    if isinstance(h, dict):
        return fits.Header(list(h.items()))
    raise TypeError(f"cannot make a FITS header from {type(h).__name__}")


def simple_image_hdu(data, header=None, wcs_header=None, **keywords) -> fits.PrimaryHDU:
    """A simple-FITS image HDU (``PrimaryHDU``) for a product.

    Parameters
    ----------
    data : numpy.ndarray or None
        The image (not copied).
    header : astropy.io.fits.Header, str or dict, optional
        Cards copied without the structural ones (SIMPLE, BITPIX, NAXISn, EXTEND, EXTNAME,
        BSCALE/BZERO, CHECKSUM...).
    wcs_header : astropy.io.fits.Header, str, dazzle.geometry.Frame or astropy.wcs.WCS, optional
        WCS cards applied on top of ``header``.
    **keywords
        Cards applied last: ``EXPTIME=1200.0`` or ``KEY=(value, "comment")``; use
        ``**{"DATE-OBS": ...}`` for names that are not identifiers.

    Returns
    -------
    astropy.io.fits.PrimaryHDU

    Raises
    ------
    TypeError
        If a header argument is of another type.
    """
    hdr = fits.Header()
    for src in (_as_header(header), _as_header(wcs_header)):
        for card in src.cards:
            key = card.keyword
            if is_structural(key):
                continue
            if key == "COMMENT":
                hdr.add_comment(card.value)
            elif key == "HISTORY":
                hdr.add_history(card.value)
            elif key == "":
                hdr.add_blank(card.value)
            else:
                hdr[key] = (card.value, card.comment)
    for key, value in keywords.items():
        hdr[key.upper()] = value
    return fits.PrimaryHDU(data=data, header=hdr)


#: bytes of pixels put in FITS order, checksummed and written at a time (:func:`write_image_atomic`)
_WRITE_CHUNK = 1 << 20


def write_image_atomic(path, hdu, *, direct=False, rows=None) -> str:
    """Write a one-image FITS file (``hdu`` alone) atomically; return the checksum of its bytes.

    The file is the same, byte for byte, as ``HDUList([hdu]).writeto``'s (the same checks, the
    same header), but the pixels are written from a native array without swapping it in place
    and back: a few rows at a time are put in big-endian order in a small buffer
    (:func:`_rows_as_stored`, as canvas blocks are), checksummed there and written; so the
    array is never modified (threads may read it meanwhile) and the file is never read back for
    its checksum.  Other HDUs (scaled or unsigned integers, non-array data) are written by
    astropy and checksummed from the file.

    Parameters
    ----------
    path : str or os.PathLike
        The file's name (:func:`dazzle.atomic.atomic_output`: temporary file, rename).
    hdu : astropy.io.fits.PrimaryHDU
        The image and its header.
    direct : bool, optional
        A product the run does not read again: written past the page cache where the system
        allows it (:class:`dazzle.directwrite.SequentialWriter`; the same bytes).
    rows : callable, optional
        ``rows(r0, r1)``: the pixels of rows ``r0:r1``, asked for a few at a time in order,
        instead of ``hdu.data``, which then only gives the shape and type (of a 2-D image;
        it is never read, so it may be allocated and not filled).

    Returns
    -------
    str
        :func:`file_checksum` of the file written (XXH64, 16 hex digits).
    """
    return write_images_atomic([(path, hdu, rows)], direct=direct)[0]


def write_images_atomic(items, *, direct=False) -> list:
    """:func:`write_image_atomic` for several files at once: their pixels are written a block
    of rows at a time, file after file for the same rows, so that ``rows`` functions which
    make several images from the same numbers (the single SCI, WHT and ERR images from one
    band of an exposure's sums, :class:`dazzle.steps.driz_separate.ExposureBands`) make
    those numbers once per band.  Each file is the same, byte for byte, as
    :func:`write_image_atomic` writes it, and is renamed into place whole; when one fails,
    none of those not yet renamed is left (temporary files are removed).

    Parameters
    ----------
    items : sequence of (path, hdu, rows)
        As :func:`write_image_atomic`'s arguments (``rows`` may be None).
    direct : bool, optional
        As :func:`write_image_atomic` (for every file).

    Returns
    -------
    list of str
        The checksum of each file (:func:`file_checksum`), in the order of ``items``.
    """
    digests = [None] * len(items)
    streams = []   # (index, path, header bytes, blocks of rows, padding, stored dtype)
    for i, (path, hdu, rows) in enumerate(items):
        plan = _image_plan(hdu, rows)
        if plan is None:        # astropy writes it; checksummed from the file
            write_fits_atomic(path, fits.HDUList([hdu]))
            digests[i] = file_checksum(path)
        else:
            streams.append((i, path) + plan)
    if not streams:
        return digests
    from dazzle.kernels.checksum import XXH64

    with contextlib.ExitStack() as stack:
        outs = []
        for i, path, head, blocks, pad, stored in streams:
            tmp = stack.enter_context(atomic_output(path))
            f = stack.enter_context(SequentialWriter(tmp, direct=direct))
            digest = XXH64()
            digest.update(head)
            f.write(head)
            outs.append((i, f, digest, blocks, pad, stored))
        live = list(outs)
        while live:   # one block of rows of each file in turn
            for out in list(live):
                _, f, digest, blocks, _, stored = out
                block = next(blocks, None)
                if block is None:
                    live.remove(out)
                    continue
                # one piece at a time: a piece of the pixels is valid until the next (one buffer)
                for _, raw in _rows_as_stored(block, stored):
                    digest.update(raw)
                    f.write(raw)
        for i, f, digest, _, pad, _ in outs:
            digest.update(pad)
            f.write(pad)
            digests[i] = digest.hexdigest()
    return digests


def _image_plan(hdu, rows):
    """How :func:`write_images_atomic` writes ``hdu``: (header bytes, blocks of its pixels in
    native order as whole rows, the padding, the stored dtype), or None when astropy must
    write it (not a plain image: scaled or unsigned integers, non-array data)."""
    data = hdu.data
    plain = (isinstance(hdu, fits.PrimaryHDU) and isinstance(data, np.ndarray) and data.size > 0
             and (data.dtype.kind == "f" or data.dtype.kind == "i" or data.dtype == np.uint8)
             and data.dtype.itemsize in (1, 2, 4, 8) and "BSCALE" not in hdu.header
             and "BZERO" not in hdu.header)
    if rows is not None and not (plain and data.ndim == 2):
        raise ValueError("rows= needs a plain 2-D image HDU (float, int or uint8, not scaled)")
    if not plain:
        return None
    fits.HDUList([hdu]).verify(option="exception")   # as writeto
    hdu.update_header()
    head = hdu.header.tostring().encode("ascii")
    pad = bytes(-data.nbytes % _FITS_BLOCK)
    stored = data.dtype.newbyteorder(">")
    if rows is None:
        blocks = iter([data.reshape(-1, data.shape[-1])])   # the pixels in file order, as whole rows
    else:   # made a few rows at a time, each block dropped once written
        step = max(1, _WRITE_CHUNK * 4 // max(1, data.shape[1] * data.dtype.itemsize))
        blocks = (_checked_rows(rows, r0, min(r0 + step, data.shape[0]), data)
                  for r0 in range(0, data.shape[0], step))
    return head, blocks, pad, stored


def _checked_rows(rows, r0, r1, like):
    """``rows(r0, r1)`` as ``like``'s type, checked to be those rows of ``like``'s shape."""
    block = np.asarray(rows(r0, r1))
    if block.shape != (r1 - r0, like.shape[1]):
        raise ValueError(f"rows({r0}, {r1}) gave shape {block.shape}, not {(r1 - r0, like.shape[1])}")
    return block.astype(like.dtype, copy=False)


def _provenance(header, params, names, kind=None):
    if kind is not None:
        header[PRODUCT_KEYWORD] = (kind, "dazzle product kind (not an exposure)")
    header["ORIGIN"] = ("dazzle", "software that wrote this file")
    header["DAZZLEV"] = (dazzle.__version__, "dazzle version")
    header["DATE"] = (_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"), "file written (UTC)")
    for name in names:
        if name in params and name in PARAMETERS:
            header.add_history(f"dazzle {name} = {format_value(params[name])}")


def _wcs_cards(frame, header):
    for card in frame.fits_header().cards:
        if card.keyword in ("NAXIS", "NAXIS1", "NAXIS2", "WCSAXES") or not card.keyword:
            continue
        header[card.keyword] = (card.value, card.comment)


def _units(bunit: str | None, units: str) -> str | None:
    """BUNIT of a drizzled product, by drizzlepac's rule: a rate (``/S`` appended) for
    ``units="cps"``; for ``"counts"`` the input's unit without ``/S`` if it was a rate, and no
    BUNIT at all (None) if it was not (drizzlepac then writes none: its header template has none)."""
    b = (bunit or "ELECTRONS").upper()
    base = b.split("/")[0]
    if units == "counts":
        return base if "/" in b else None
    return base + "/S"


@dataclass(frozen=True)
class RowImage:
    """An image made a few rows at a time as it is written, never whole in memory:
    ``rows(r0, r1)`` gives rows ``r0:r1`` (2-D, any real dtype; converted to ``dtype``)."""

    shape: tuple
    dtype: object
    rows: object


def _image_hdu(data, dtype=np.float32):
    """A PrimaryHDU for ``data`` (an array, or a :class:`RowImage`: its header made from an
    array that is allocated but never touched) and the rows to write, or None (its data)."""
    if isinstance(data, RowImage):
        return fits.PrimaryHDU(np.empty(data.shape, dtype)), data.rows
    return fits.PrimaryHDU(np.ascontiguousarray(data, dtype=dtype)), None


def write_single_products(out_dir, root, sci, wht, frame, box, params, *, exptime, bunit, skies=None,
                          err=None, checksums=None):
    """Write ``<root>_single_sci.fits`` and ``<root>_single_wht.fits`` (simple FITS, float32),
    and ``<root>_single_err.fits`` when ``err`` is given.

    Parameters
    ----------
    out_dir : str
        The output folder.
    root : str
        The exposure's root name.
    sci, wht : 2-D array or RowImage
        The exposure's single-drizzled science (e-/s) and weight over ``box`` (a
        :class:`RowImage`: made row by row as the file is written; the files are written
        together, :func:`write_images_atomic`, each block of rows of SCI, WHT, ERR in turn).
    frame : dazzle.geometry.Frame
        The box's frame (the output frame cut to ``box``).
    box : tuple of int
        ``(x0, x1, y0, y1)``, half-open, in the output frame; written as ``DZ_X0``/``DZ_Y0``.
    params : dict
        Validated parameters (the separate drizzle's are recorded as HISTORY).
    exptime : float
        Exposure time (s).
    bunit : str or None
        The chip's BUNIT (the SCI file gets its rate form, e.g. ``ELECTRONS/S``).
    skies : sequence of float, optional
        Per chip sky (chip units), written as ``MDRIZSK<n>``.
    err : 2-D array or RowImage, optional
        The propagated error (``driz_sep_err``), units of ``sci``.
    checksums : dict, optional
        Filled with ``{path: checksum}`` of the files written (:func:`write_image_atomic`),
        for :func:`write_manifest`.

    Returns
    -------
    tuple of str
        The SCI and WHT paths (the ERR file, when written, is ``<root>_single_err.fits``).
    """
    paths, items = [], []
    for suffix, data in (("sci", sci), ("wht", wht)) + ((("err", err),) if err is not None else ()):
        hdu, rows = _image_hdu(data)
        h = hdu.header
        _wcs_cards(frame, h)
        h["DZ_X0"] = (int(box[0]), "0-based x of this box in the output frame")
        h["DZ_Y0"] = (int(box[2]), "0-based y of this box in the output frame")
        h["EXPTIME"] = (float(exptime), "exposure time (s)")
        for n, sky in enumerate(skies or [], start=1):
            h[f"MDRIZSK{n}"] = (float(sky), f"sky of chip {n} (chip units)")
        if suffix in ("sci", "err"):
            h["BUNIT"] = (_units(bunit, "cps"), "units of the data")
        _provenance(h, params, _SINGLE_PARAMS, kind=f"single_{suffix}")
        paths.append(os.path.join(out_dir, f"{root}_single_{suffix}.fits"))
        items.append((paths[-1], hdu, rows))
    # together, the same rows of each file in turn: RowImages of one exposure share their band
    for path, digest in zip(paths, write_images_atomic(items)):
        if checksums is not None:
            checksums[path] = digest
    return tuple(paths[:2])


def final_extensions(err=False, dq=False) -> tuple:
    """The image extensions of the final product: SCI, WHT, CTX, then ERR and DQ when written.

    Parameters
    ----------
    err, dq : bool
        ``final_err``, ``final_dq``.

    Returns
    -------
    tuple of str
    """
    return ("SCI", "WHT", "CTX") + (("ERR",) if err else ()) + (("DQ",) if dq else ())


def final_product_canvas(path, frame, params, *, texptime, ndrizim, nplanes, bunit,
                         primary_cards=None, sci_cards=None, err=False, dq=False):
    """Lay out the final product (PRIMARY, SCI, WHT, CTX; ERR and DQ with ``err``/``dq``,
    :func:`final_extensions`) for the tile tasks to fill.

    Parameters
    ----------
    path : str
        The product's path.
    frame : dazzle.geometry.Frame
        The final frame.
    params : dict
        Validated parameters (``final_units``, ``build`` and the final drizzle's, recorded).
    texptime : float
        Total exposure time (s).
    ndrizim : int
        Number of chips drizzled.
    nplanes : int
        Context planes: CTX is ``(ny, nx)`` int32 for 1, else ``(nplanes, ny, nx)``.
    bunit : str or None
        The inputs' BUNIT (the SCI and ERR units follow ``final_units``).
    primary_cards, sci_cards : astropy.io.fits.Header or dict, optional
        Cards first in the primary / SCI header (:func:`final_headers`).
    err, dq : bool
        Lay out ERR (float32, the units of SCI) and DQ (int32, the OR of the contributing
        input pixels' flags) after CTX (``final_err``, ``final_dq``).

    Returns
    -------
    Canvas or SplitCanvas
        With ``build=False`` (AstroDrizzle's separate files) a :class:`SplitCanvas` of
        ``<output>_drz_sci.fits``, ``_wht.fits`` and ``_ctx.fits`` (and ``_err.fits``,
        ``_dq.fits``), each a simple FITS image whose header is the primary's plus its
        extension's cards.
    """
    ph = fits.Header()
    _put(ph, primary_cards)
    ph["EXPTIME"] = (float(texptime), "total exposure time (s)")
    ph["TEXPTIME"] = (float(texptime), "total exposure time (s)")
    ph["NDRIZIM"] = (int(ndrizim), "Drizzle, No. images drizzled onto output")
    _provenance(ph, params, _FINAL_PARAMS, kind="drz")
    hdus = [("PRIMARY", (), np.float32, ph)]
    ny, nx = frame.shape
    layout = {"SCI": np.float32, "WHT": np.float32, "CTX": np.int32, "ERR": np.float32, "DQ": np.int32}
    for name in final_extensions(err, dq):
        shape = (nplanes, ny, nx) if name == "CTX" and nplanes > 1 else (ny, nx)
        h = fits.Header()
        _wcs_cards(frame, h)
        h["EXPTIME"] = (float(texptime), "total exposure time (s)")
        if name in ("SCI", "ERR"):
            unit = _units(bunit, params["final_units"])
            if unit is not None:
                h["BUNIT"] = (unit, "units of the data")
        if name == "SCI":
            _put(h, sci_cards)
        hdus.append((name, shape, layout[name], h))
    if params["build"]:
        return create_canvas(path, hdus)
    return _split_canvas(path, hdus)


def split_names(path, extensions=("SCI", "WHT", "CTX")) -> list:
    """The files of a ``build=False`` final product: ``<path less .fits>_sci/_wht/_ctx.fits``.

    Parameters
    ----------
    path : str
        The final product's path (``<output>_drz.fits``).
    extensions : sequence of str
        The extensions written (:func:`final_extensions`), one file each.

    Returns
    -------
    list of str
    """
    base = str(path)[:-5] if str(path).endswith(".fits") else str(path)
    return [f"{base}_{x.lower()}.fits" for x in extensions]


def _split_canvas(path, hdus):
    primary = hdus[0][3]
    parts = []
    try:
        for target, (name, shape, dtype, h) in zip(split_names(path, [e[0] for e in hdus[1:]]), hdus[1:]):
            ph = primary.copy()
            for card in h.cards:
                if card.keyword not in ph:
                    ph.append(card)
            ph["FILENAME"] = os.path.basename(target)
            ph.insert(0, ("FILETYPE", name, "Type of data in array"))
            parts.append(create_canvas(target, [("PRIMARY", shape, dtype, ph)]))
    except BaseException:
        for part in parts:
            abort_canvas(part)
        raise
    return SplitCanvas(tuple(parts))


def _put(header, cards):
    if isinstance(cards, fits.Header):
        for card in cards.cards:
            header[card.keyword] = (card.value, card.comment)
    else:
        for key, value in (cards or {}).items():
            header[key] = value


#: primary-header keywords of the first input that describe that file, not the product
_NOT_COPIED = {"FILENAME", "ROOTNAME", "NEXTEND", "ORIGIN", "DATE", "FILETYPE", "IRAF-TLM", "HISTORY",
               "COMMENT", "EXPTIME", "TEXPTIME", "EXPSTART", "EXPEND", "NDRIZIM", PRODUCT_KEYWORD}
#: WCS cards (any alternate key): a simple-image input's primary header holds its chip's WCS
_WCS_CARD = re.compile(r"^(WCSAXES|WCSNAME|CTYPE\d|CRVAL\d|CRPIX\d|CDELT\d|CUNIT\d|CROTA\d|CD\d_\d|PC\d_\d|"
                       r"PV\d_\d+|LONPOLE|LATPOLE|RADESYS|EQUINOX|[AB]P?_(\d+_\d+|ORDER|DMAX))[A-Z]?$")
#: photometric keywords of the SCI headers, averaged over the chips (AstroDrizzle's header rules)
_PHOT_MEAN = ("PHOTFLAM", "PHOTPLAM", "PHOTBW", "PHOTZPT")

# The per-chip drizzle record AstroDrizzle writes (drizzlepac outputimage.DRIZ_KEYWORDS), in
# its order: suffix after ``D<nnn>`` and comment.
_DRIZ_KEYS = (("VER", "Drizzle, task version"), ("GEOM", "Drizzle, source of geometric information"),
              ("DATA", "Drizzle, input data image"), ("DEXP", "Drizzle, input image exposure time (s)"),
              ("OUDA", "Drizzle, output data image"), ("OUWE", "Drizzle, output weighting image"),
              ("OUCO", "Drizzle, output context image"), ("MASK", "Drizzle, input weighting image"),
              ("WTSC", "Drizzle, weighting factor for input image"),
              ("KERN", "Drizzle, form of weight distribution kernel"), ("PIXF", "Drizzle, linear size of drop"),
              ("COEF", "Drizzle, source of coefficients"),
              ("OUUN", "Drizzle, units of output image - counts or cps"),
              ("FVAL", "Drizzle, fill value for zero weight output pix"), ("WKEY", "Input image WCS Version used"),
              ("SCAL", "Drizzle, pixel size (arcsec) of output image"),
              ("ISCL", "Drizzle, default IDCTAB pixel size(arcsec)"))


def final_headers(chips, params, final_path, frame):
    """The cards AstroDrizzle puts in its final product beyond the WCS.

    Parameters
    ----------
    chips : list of dazzle.io.Chip
        The drizzled chips; the first one's primary header is copied.
    params : dict
        Validated parameters (``runfile``, the final drizzle's).
    final_path : str
        The product's path.
    frame : dazzle.geometry.Frame
        The final frame (its pixel scale is recorded).

    Returns
    -------
    primary : astropy.io.fits.Header
        The first input's primary header (its non-structural cards, less those describing that
        file), ``FILENAME``/``ROOTNAME`` of the product, ``EXPSTART`` (min) and ``EXPEND`` (max)
        over the inputs, ``DRIZPARS`` (the run file), one ``Dnnn*`` block per chip
        (:data:`_DRIZ_KEYS`).
    sci : astropy.io.fits.Header
        The mean ``PHOTFLAM``/``PHOTPLAM``/``PHOTBW``/``PHOTZPT`` and the first ``PHOTMODE`` of
        the chips that carry them, and ``NCOMBINE`` (exposures).
    """
    first = chips[0].header("primary")
    ph = fits.Header()
    for card in first.cards:
        key = card.keyword
        if key and key not in _NOT_COPIED and not is_structural(key) and not _WCS_CARD.match(key):
            ph.append(card, end=True)
    name = os.path.basename(final_path)
    root = re.sub(r"_dr[zcw]\.fits$", "", name)
    ph["FILENAME"] = name
    ph["ROOTNAME"] = root
    starts = [c.expstart for c in chips if c.expstart is not None]
    ends = [c.expend for c in chips if c.expend is not None]
    if starts and ends:
        ph["EXPSTART"] = (min(starts), "exposure start time (Modified Julian Date)")
        ph["EXPEND"] = (max(ends), "exposure end time (Modified Julian Date)")
    ph["DRIZPARS"] = (params["runfile"], "Logfile for processing")
    _drizzle_blocks(ph, chips, params, name, frame)
    return ph, _sci_cards(chips)


def _drizzle_blocks(header, chips, params, name, frame):
    base = name[:-5]
    fillval = params["final_fillval"]
    from dazzle.steps.common import resolve_wt_scl

    wt_scl = params["final_wt_scl"]
    scale = float(frame.wcs().proj_plane_pixel_scales()[0].to_value("arcsec"))
    for n, c in enumerate(chips, start=1):
        values = {"VER": f"dazzle {dazzle.__version__}", "GEOM": "wcs",
                  "DATA": f"{os.path.basename(c.path)}[sci,{c.extver}]", "DEXP": float(c.exptime),
                  "OUDA": name, "OUWE": base + "_wht.fits",
                  "OUCO": base + "_ctx.fits" if params["context"] else "",
                  "MASK": f"{c.root}_sci{c.extver}_final_mask.fits",
                  "WTSC": resolve_wt_scl(wt_scl, c.exptime),
                  "KERN": params["final_kernel"],
                  "PIXF": float(params["final_pixfrac"]), "COEF": "SIP",
                  "OUUN": params["final_units"],
                  "FVAL": "INDEF" if fillval is None else fillval,
                  "WKEY": params["wcskey"], "SCAL": scale,
                  "ISCL": float(c.idcscale) if c.idcscale is not None else scale}
        for key, comment in _DRIZ_KEYS:
            header[f"D{n:03d}{key}"] = (values[key], comment)


def _sci_cards(chips):
    h = fits.Header()
    found = {}
    for c in {(c.path, c.sci_ext): c for c in chips}.values():
        sh = c.header("sci")
        for key in (*_PHOT_MEAN, "PHOTMODE"):
            if key in sh and not isinstance(sh[key], bool):
                found.setdefault(key, []).append(sh[key])
    if "PHOTMODE" in found:
        h["PHOTMODE"] = (str(found["PHOTMODE"][0]), "observation configuration")
    for key in _PHOT_MEAN:
        values = [float(v) for v in found.get(key, []) if isinstance(v, (int, float))]
        if values:
            h[key] = (float(np.mean(values)), f"mean {key} of the inputs")
    h["NCOMBINE"] = (len({c.path for c in chips}), "number of exposures combined")
    return h


# ---------------------------------------------------------------------------------------------
# Products written block by block (tiles), then renamed into place
# ---------------------------------------------------------------------------------------------

_FITS_BLOCK = 2880


def _image_header(shape, dtype, *, primary, name=None, extra=None):
    """A FITS image header for an array of ``shape``/``dtype`` without allocating it, with
    the cards of ``extra`` (a Header) after the structural ones."""
    if shape:
        small = np.zeros((1,) * len(shape), dtype=dtype)
        hdu = fits.PrimaryHDU(small) if primary else fits.ImageHDU(small, name=name)
    else:
        hdu = fits.PrimaryHDU()
    h = hdu.header
    for axis, n in enumerate(reversed(shape), start=1):
        h[f"NAXIS{axis}"] = int(n)
    if primary:
        h["EXTEND"] = True
    for card in (extra.cards if extra is not None else []):
        if is_structural(card.keyword) or not card.keyword:
            continue
        h.append(card)
    return h


@dataclass(frozen=True)
class Canvas:
    """A multi-extension FITS product being written in blocks by independent tasks.

    :func:`create_canvas` lays out every header and reserves every data array (a sparse file:
    nothing is allocated in memory); :func:`write_block` writes one rectangle of one
    extension with positioned writes (disjoint rectangles may be written concurrently, from
    threads, processes or hosts sharing the file system); :func:`commit_canvas` renames the
    finished file into place.  Until then the product's name is untouched.
    """

    tmp_path: str
    path: str
    offsets: tuple          # byte offset of each HDU's data
    shapes: tuple
    dtypes: tuple           # big-endian numpy dtype strings


def create_canvas(path, hdus) -> Canvas:
    """``hdus``: a list of ``(name, shape, dtype, extra_header)``; the first is the primary
    (``shape`` may be ``()`` for a header-only primary)."""

    tmp = temp_name(path)
    try:
        offsets, shapes, dtypes = _lay_out(tmp, hdus)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(exc, OSError) and exc.errno is not None:   # name the product, not the temporary
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None
        raise
    return Canvas(tmp, str(path), tuple(offsets), tuple(shapes), tuple(dtypes))


def _lay_out(tmp, hdus):
    offsets, shapes, dtypes = [], [], []
    pos = 0
    with open(tmp, "wb") as f:
        for k, (name, shape, dtype, extra) in enumerate(hdus):
            shape = tuple(int(n) for n in shape)
            h = _image_header(shape, dtype, primary=(k == 0), name=name, extra=extra)
            raw = h.tostring(padding=True).encode("ascii")
            f.write(raw)
            pos += len(raw)
            dt = np.dtype(dtype).newbyteorder(">")
            nbytes = int(np.prod(shape)) * dt.itemsize if shape else 0
            offsets.append(pos)
            shapes.append(shape)
            dtypes.append(dt.str)
            padded = -(-nbytes // _FITS_BLOCK) * _FITS_BLOCK
            pos += padded
            f.seek(pos)
        f.truncate(pos)
    return offsets, shapes, dtypes


@dataclass(frozen=True)
class SplitCanvas:
    """The final product as separate files (``build=False``): extension ``k`` (1 SCI, 2 WHT,
    3 CTX) of the one-file layout is the primary HDU of ``parts[k - 1]``.  The functions
    below take either kind; committing renames every part and returns the SCI file's path."""

    parts: tuple

    @property
    def path(self):
        return self.parts[0].path


def write_block(canvas: Canvas, hdu: int, block, y0: int, x0: int, plane=None) -> None:
    """Write a 2-D block into one extension of a canvas (positioned writes).

    Parameters
    ----------
    canvas : Canvas or SplitCanvas
        The product being written.
    hdu : int
        Extension index (0 = primary; for a SplitCanvas 1 SCI, 2 WHT, 3 CTX).
    block : 2-D array
        The data, converted to the extension's dtype.
    y0, x0 : int
        0-based row and column of the block's first pixel.
    plane : int, optional
        Plane of a 3-D extension (CTX).

    Raises
    ------
    ValueError
        If the block does not fit in the extension.

    Notes
    -----
    Does nothing when the canvas is already committed (a task recomputed after a lost worker).
    """
    if isinstance(canvas, SplitCanvas):
        write_block(canvas.parts[hdu - 1], 0, block, y0, x0, plane)
        return
    shape = canvas.shapes[hdu]
    dt = np.dtype(canvas.dtypes[hdu])
    ny, nx = shape[-2], shape[-1]
    block = np.asarray(block)
    by, bx = block.shape
    if y0 < 0 or x0 < 0 or y0 + by > ny or x0 + bx > nx:
        raise ValueError(f"block {block.shape} at ({y0}, {x0}) does not fit {shape}")
    if block.size == 0:
        return
    base = canvas.offsets[hdu] + (0 if plane is None else int(plane) * ny * nx * dt.itemsize)
    try:
        fd = os.open(canvas.tmp_path, os.O_WRONLY)
    except FileNotFoundError:
        if canvas_committed(canvas):
            return   # a task recomputed after a lost worker: the product is already complete
        raise
    row, pitch = bx * dt.itemsize, nx * dt.itemsize
    pos = base + (y0 * nx + x0) * dt.itemsize
    try:
        with _canvas_lock(canvas.tmp_path):
            for r0, raw in _rows_as_stored(block, dt):
                if bx == nx:   # whole rows: one stretch of the file
                    _pwrite_all(fd, raw, pos + r0 * pitch)
                    continue
                for r in range(len(raw) // row):
                    piece = raw[r * row:(r + 1) * row]
                    if os.pwrite(fd, piece, pos + (r0 + r) * pitch) != row:
                        _pwrite_all(fd, piece, pos + (r0 + r) * pitch)
        _start_writeback(fd, pos, (by - 1) * pitch + row)
    finally:
        os.close(fd)


#: One lock per canvas file being written in this process (:func:`write_block`), made on first use.
_CANVAS_LOCKS: dict = {}
_CANVAS_LOCKS_GUARD = threading.Lock()


def _canvas_lock(path) -> threading.Lock:
    """The lock that :func:`write_block` holds while it writes into the canvas file ``path``.

    Tasks on two threads that write blocks of one canvas (the median's or the final product's
    tiles) would otherwise write into the file at once.  Linux serialises buffered writes to
    one file on its inode lock, and a writer that finds it taken spins on the CPU while the
    other copies: measured on the final product's layout (4 planes of 4662 x 4598 float32, 3 x 3
    tiles, row by row, two threads, 3 runs each), system time 1.68-2.36 s unlocked against
    0.77-1.07 s with this lock, wall time 0.93-1.30 s against 0.78-1.12 s.  Here the second
    writer sleeps instead.  Only threads of one process share it; the writes are positioned,
    so their order does not matter."""
    with _CANVAS_LOCKS_GUARD:
        lock = _CANVAS_LOCKS.get(path)
        if lock is None:
            lock = _CANVAS_LOCKS[path] = threading.Lock()
        return lock


def _start_writeback(fd, offset, nbytes) -> None:
    """Start writing a just-written stretch of a canvas to disk, without waiting (Linux
    ``sync_file_range(SYNC_FILE_RANGE_WRITE)``) when files are durable
    (:func:`dazzle.atomic.durable`): the commit's fsync, which waits, then has little left to
    flush -- it comes last, when nothing else runs.  A no-op where the call is missing; its
    result is not looked at (the fsync still decides)."""
    if _SYNC_FILE_RANGE is not None and durable():
        _SYNC_FILE_RANGE(fd, offset, nbytes, 2)   # 2: SYNC_FILE_RANGE_WRITE


def _sync_file_range():
    """glibc's ``sync_file_range`` through ctypes (Python's os module has no binding), or None."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        f = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    f.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    f.restype = ctypes.c_int
    return f


_SYNC_FILE_RANGE = _sync_file_range()


def _rows_as_stored(block, dt):
    """A block's rows as the file stores them (``dt``, big-endian), in pieces: ``(first row,
    bytes of whole rows)``.  A native array of that type is swapped a few rows at a time into
    one small buffer (:func:`dazzle.kernels.byteorder.swapped_copy`), not converted whole: each
    piece is valid until the next is asked for."""
    if block.dtype != dt.newbyteorder("=") or dt.itemsize == 1 or dt.isnative:
        stored = np.ascontiguousarray(block.astype(dt, copy=False))
        yield 0, memoryview(stored.reshape(-1).view(np.uint8))
        return
    from dazzle.kernels.byteorder import swapped_copy

    block = np.ascontiguousarray(block)
    step = max(1, _WRITE_CHUNK // max(1, block.shape[1] * dt.itemsize))
    buf = np.empty(min(block.nbytes, step * block.shape[1] * dt.itemsize), dtype=np.uint8)
    for r0 in range(0, block.shape[0], step):
        yield r0, memoryview(swapped_copy(block[r0:r0 + step].reshape(-1), buf))


def canvas_committed(canvas: Canvas) -> bool:
    """Whether :func:`commit_canvas` already renamed this canvas over the product.  The
    temporary file's name is unique to the run and only ``commit_canvas`` (or, after the run,
    ``abort_canvas``) removes it, so during a run its absence next to the product means
    committed.  Tasks recomputed after a lost worker use this to do nothing twice."""
    if isinstance(canvas, SplitCanvas):
        return all(canvas_committed(part) for part in canvas.parts)
    return not os.path.exists(canvas.tmp_path) and os.path.exists(canvas.path)


def commit_canvas(canvas: Canvas) -> str:
    """Rename the finished file over the product's name (fsynced first, and the folder after,
    when files are durable: :func:`dazzle.atomic.durable`); returns the path.  Idempotent:
    committing an already committed canvas returns the path."""

    if isinstance(canvas, SplitCanvas):
        for part in canvas.parts:
            commit_canvas(part)
        return canvas.path
    if canvas_committed(canvas):
        return canvas.path
    with _CANVAS_LOCKS_GUARD:   # no more blocks: its lock is done with (see _canvas_lock)
        _CANVAS_LOCKS.pop(canvas.tmp_path, None)
    sync = durable()
    try:
        if sync:
            fsync_path(canvas.tmp_path)
        os.replace(canvas.tmp_path, canvas.path)
    except FileNotFoundError:
        if canvas_committed(canvas):   # the same task ran twice at once
            return canvas.path
        raise
    if sync:
        fsync_path(os.path.dirname(os.path.abspath(canvas.path)) or ".", directory=True)
    return canvas.path


def abort_canvas(canvas: Canvas) -> None:
    """Remove a canvas's temporary file(s); the product's name is left untouched."""
    if isinstance(canvas, SplitCanvas):
        for part in canvas.parts:
            abort_canvas(part)
        return
    with _CANVAS_LOCKS_GUARD:
        _CANVAS_LOCKS.pop(canvas.tmp_path, None)
    try:
        os.remove(canvas.tmp_path)
    except FileNotFoundError:
        pass


def write_chip_image(out_dir, name, data, chip, params, cards, checksums=None):
    """A simple FITS image on a chip's own (distorted) frame, written atomically.

    The blot (``<root>_sci<N>_blt.fits``) and CR mask (``<root>_sci<N>_crmask.fits``) products.

    Parameters
    ----------
    out_dir : str
        The output folder.
    name : str
        The file's base name (its suffix sets the product kind).
    data : 2-D array
        The image, of the chip's shape.
    chip : dazzle.io.Chip
        Gives the WCS, ``EXPTIME``, ``DZ_INPUT`` and ``DZ_EXTV``.
    params : dict
        Validated parameters.
    cards : dict
        Extra cards, ``{KEY: value or (value, comment)}``.
    checksums : dict, optional
        Filled with ``{path: checksum}`` (:func:`write_image_atomic`), for :func:`write_manifest`.

    Returns
    -------
    str
        The path written.
    """
    hdu = simple_image_hdu(np.ascontiguousarray(data), wcs_header=chip.wcs_header,
                           EXPTIME=(float(chip.exptime), "exposure time (s)"),
                           DZ_INPUT=(os.path.basename(chip.path), "input file"),
                           DZ_EXTV=(int(chip.extver), "SCI extension version of the chip"), **cards)
    h = hdu.header
    _provenance(h, params, [], kind=_chip_image_kind(name))
    path = os.path.join(out_dir, name)
    digest = write_image_atomic(path, hdu, direct=True)   # not read again: O_DIRECT if DAZZLE_DIRECT_IO=1
    if checksums is not None:
        checksums[path] = digest
    return path


def _chip_image_kind(name):
    for suffix, kind in (("_blt.fits", "blot"), ("_crmask.fits", "crmask")):
        if name.endswith(suffix):
            return kind
    return "chip_image"


def write_crclean(out_dir, root, input_path, chips_and_results, params):
    """Write ``<root>_crclean.fits``: a copy of an input with each chip's SCI CR-cleaned.

    Cosmic-ray pixels are replaced by the blotted median.

    Parameters
    ----------
    out_dir : str
        Folder to write to.
    root : str
        The input's root (the file is ``<root>_crclean.fits``).
    input_path : str
        The input file copied (an in-memory input: its chips' headers and pixels).
    chips_and_results : list of tuple
        ``(chip, result)`` per chip of the input; ``result`` is None or ``(crmask, crclean)`` with
        ``crclean`` the cleaned SCI (chip units) or None (chip left as it is).
    params : dict
        Validated parameters (``driz_cr_*`` are recorded).

    Returns
    -------
    str
        The path written.
    """
    if hasattr(chips_and_results[0][0], "pixels"):   # an in-memory input: its headers, no file
        chips = [c for c, _ in chips_and_results]
        hdul = fits.HDUList([fits.PrimaryHDU(header=chips[0].header("primary"))])
        for c in chips:
            hdu = fits.ImageHDU(c.load(err=False, dq=False).sci, header=c.header("sci"), name="SCI", ver=c.extver)
            if c.sci_ext == 0:
                hdul = fits.HDUList([fits.PrimaryHDU(hdu.data, header=hdul[0].header)])
            else:
                hdul.append(hdu)
    else:
        with fits.open(input_path, memmap=False) as h:
            h.readall()
            hdul = fits.HDUList([hdu.copy() for hdu in h])
    for chip, result in chips_and_results:
        if result is None or result[1] is None:
            continue
        hdul[chip.sci_ext].data = np.asarray(result[1], dtype=np.float32)
    _provenance(hdul[0].header, params, ["driz_cr_snr", "driz_cr_scale", "driz_cr_grow"], kind="crclean")
    path = os.path.join(out_dir, f"{root}_crclean.fits")
    write_fits_atomic(path, hdul)
    return path


def median_canvas(path, frame, params):
    """Lay out ``<output>_med.fits`` (one float32 image, e-/s, on the single-drizzle frame).

    Parameters
    ----------
    path : str
        The product's path.
    frame : dazzle.geometry.Frame
        The single-drizzle frame.
    params : dict
        Validated parameters (``combine_*`` and ``median_newmasks`` are recorded).

    Returns
    -------
    Canvas
    """
    h = fits.Header()
    _wcs_cards(frame, h)
    h["BUNIT"] = ("ELECTRONS/S", "units of the data")
    h["COMBTYPE"] = (params["combine_type"], "combine_type")
    _provenance(h, params, ["combine_type", "combine_nsigma", "combine_maskpt", "combine_nlow",
                            "combine_nhigh", "combine_grow", "median_newmasks"], kind="median")
    return create_canvas(path, [("PRIMARY", frame.shape, np.float32, h)])


# ---------------------------------------------------------------------------------------------
# Manifests: what makes an intermediate product reusable by a resumed run
# ---------------------------------------------------------------------------------------------

MANIFEST_SUFFIX = ".dzsum"

#: the checksum a manifest records (its ``"checksum"`` entry); manifests without that entry
#: were written before it and hold SHA-256 digests
MANIFEST_CHECKSUM = "xxh64"


def file_checksum(path, kind=MANIFEST_CHECKSUM, chunk=8 << 20) -> str:
    """The checksum of a file's bytes, read in chunks.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    kind : {"xxh64", "sha256"}, optional
        XXH64 (:mod:`dazzle.kernels.checksum`): what the manifests record and
        :func:`write_image_atomic` returns; SHA-256: what manifests written before
        :data:`MANIFEST_CHECKSUM` recorded (and the tests' fingerprint of a file).
    chunk : int, optional
        Bytes read at a time.

    Returns
    -------
    str
        The hex digest: 16 digits (XXH64) or 64 (SHA-256).
    """
    if kind == "sha256":
        import hashlib

        return _file_digest(path, hashlib.sha256(), chunk)
    if kind != "xxh64":
        raise ValueError(f"unknown checksum {kind!r}")
    from dazzle.kernels.checksum import XXH64

    return _file_digest(path, XXH64(), chunk)


def _file_digest(path, h, chunk):
    buf = bytearray(chunk)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(memoryview(buf)[:n])
    return h.hexdigest()


def write_manifest(paths, key: str, checksums=None) -> None:
    """Record that a product's files are complete for the run identified by ``key``.

    A small JSON (``<first file>.dzsum``) with each file's checksum (:func:`file_checksum`,
    named by its ``"checksum"`` entry); it is written last and atomically, so its presence
    means the product was finished.

    Parameters
    ----------
    paths : str, os.PathLike or list of them
        The product's files (one product, possibly several files).
    key : str
        The run key (:func:`dazzle.pipeline.run_key`).
    checksums : dict, optional
        ``{path: checksum}`` of files just written (:func:`write_image_atomic`), not read
        again; the others are read.
    """
    import json

    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    known = checksums or {}
    doc = {"key": key, "checksum": MANIFEST_CHECKSUM,
           "files": {os.path.basename(p): known.get(p) or file_checksum(p) for p in paths}}
    with atomic_output(str(paths[0]) + MANIFEST_SUFFIX) as tmp:
        with open(tmp, "w") as f:
            json.dump(doc, f)


def manifest_valid(paths, key: str) -> bool:
    """Whether a product's files were completed by a run with the same key and are unchanged.

    Parameters
    ----------
    paths : str, os.PathLike or list of them
        The product's files.
    key : str
        The run key.

    Returns
    -------
    bool
        True when the manifest has ``key`` and every file is present with the recorded checksum
        (XXH64, or SHA-256 in a manifest written before XXH64; any other: False).
    """
    import json

    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    try:
        with open(str(paths[0]) + MANIFEST_SUFFIX) as f:
            doc = json.load(f)
        if doc.get("key") != key:
            return False
        kind = {MANIFEST_CHECKSUM: MANIFEST_CHECKSUM, None: "sha256"}.get(doc.get("checksum"))
        if kind is None:
            return False   # a checksum this version does not know: stale
        files = doc.get("files", {})
        return all(files.get(os.path.basename(p)) == file_checksum(p, kind) for p in paths)
    except (OSError, ValueError, TypeError, AttributeError):   # unreadable, or not a manifest
        return False


# ---------------------------------------------------------------------------------------------
# Temporary files and signals
# ---------------------------------------------------------------------------------------------

#: temporary names next to a product ``NAME``: ``.NAME.<12 hex>.tmp`` (:func:`dazzle.atomic.atomic_output`,
#: canvases) and ``NAME.<pid>.tmp`` (the run summary)
_TEMP_NAME = re.compile(r"^\.(?P<a>.+)\.[0-9a-f]{12}\.tmp$|^(?P<b>.+)\.[0-9]+\.tmp$")


def remove_stale_temps(out_dir, names) -> list:
    """Remove the temporary files of some products in a folder.

    Call it only while holding the lock of those products: then every such file is a leftover of
    an interrupted run (or of this run, once it has finished).

    Parameters
    ----------
    out_dir : str
        The output folder.
    names : iterable of str
        The products' base names.

    Returns
    -------
    list of str
        The paths removed, sorted.
    """
    names = set(names)
    removed = []
    try:
        entries = list(os.scandir(out_dir))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_NAME.match(entry.name)
        if m is None or (m.group("a") or m.group("b")) not in names:
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                os.remove(entry.path)
                removed.append(entry.path)
        except FileNotFoundError:
            pass
    return sorted(removed)


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP) received during a run, raised in the main thread so that the run's
    clean-up (temporary files, the lock) happens as for Ctrl-C.  ``.signum`` is the signal."""

    def __init__(self, signum):
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = int(signum)


@contextlib.contextmanager
def terminate_as_exception():
    """While the block runs in the main thread, SIGTERM and SIGHUP raise :class:`Terminated`
    there (once; another during the clean-up is ignored).  The previous handlers are restored
    on exit.  Elsewhere (another thread, no signals) the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = []

    def handler(signum, frame):
        if fired:
            return
        fired.append(signum)
        raise Terminated(signum)

    previous = {}
    try:
        for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is not None:
                previous[sig] = signal.signal(sig, handler)
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# --------------------------------------------------------------------------------------------
# The one way dazzle writes to an input: CR flags into DQ, when asked
# --------------------------------------------------------------------------------------------

BACKUP_DIR = "OrIg"


def update_input_dq(path, chips, crmasks, *, crbit=4096, preserve=True) -> str | None:
    """OR ``crbit`` into an input's DQ arrays where cosmic rays were found.

    AstroDrizzle's ``updateInputDQArray``, done only when the user asks
    (``update_input_dq=True``).  Chips without a DQ extension are skipped; the updated file is
    written atomically over the input.

    Parameters
    ----------
    path : str
        The input file.
    chips : list of dazzle.io.Chip
        Its chips.
    crmasks : list of 2-D bool array or None
        Per chip the CR mask (True = good); None skips the chip.
    crbit : int, optional
        The DQ flag set.
    preserve : bool, optional
        AstroDrizzle's parameter: first copy the original to ``OrIg/`` beside it (an existing
        backup is kept, so the backup is always the untouched original).

    Returns
    -------
    str or None
        The backup's path (None without ``preserve``).
    """
    import shutil

    src = os.path.abspath(path)
    backup = None
    if preserve:
        backup_dir = os.path.join(os.path.dirname(src), BACKUP_DIR)
        os.makedirs(backup_dir, exist_ok=True)
        backup = os.path.join(backup_dir, os.path.basename(src))
        if not os.path.exists(backup):
            with atomic_output(backup, fsync=True) as tmp:   # a user's file: always durable
                shutil.copy2(src, tmp)
    with fits.open(src, memmap=False) as h:
        h.readall()
        hdul = fits.HDUList([hdu.copy() for hdu in h])
    for chip, good in zip(chips, crmasks):
        if good is None or chip.dq_ext is None:
            continue
        dq = hdul[chip.dq_ext]
        cr = ~np.asarray(good, dtype=bool)
        data = np.array(dq.data)
        data[cr] |= np.array(crbit).astype(data.dtype)
        dq.data = data
    write_fits_atomic(src, hdul, fsync=True)
    return backup
