"""Geometry: WCSs, pixmaps, footprints and the output frame.

All coordinate math is delegated to :mod:`astropy.wcs` (SIP polynomials and the D2IM / CPDIS
lookup-table distortions); nothing here hand-writes a distortion model.

Conventions
-----------
* Pixel coordinates are 0-based; pixel ``(i, j)`` (column ``i`` = x, row ``j`` = y) has its
  centre at ``(i, j)`` and covers ``[i - 0.5, i + 0.5] x [j - 0.5, j + 0.5]``.
* Shapes are numpy shapes ``(ny, nx)``.  ``WCS.pixel_shape`` is astropy's ``(nx, ny)``.
* FITS ``CRPIX`` values (as written in headers and as stored in ``wcs.wcs.crpix``) are 1-based.
* A pixmap has shape ``(ny, nx, 2)`` with ``pixmap[j, i] = (x_out, y_out)``, the position in the
  output image of the centre of input pixel ``(i, j)`` (the layout of ``drizzle.calc_pixmap``).

Thread safety
-------------
``astropy.wcs.WCS`` objects are not thread-safe (wcslib keeps per-object scratch state).  Every
function here that evaluates a WCS first takes a private ``copy.deepcopy`` of it, so the same
WCS object may be passed to functions running concurrently in Dask threads.  To ship an output
frame through a Dask graph use :class:`Frame` (a header string and a shape, cheap to pickle),
and rebuild a fresh WCS inside the task with :meth:`Frame.wcs`.

Differences from AstroDrizzle (deliberate)
------------------------------------------
The pipeline's default (``output_frame="astrodrizzle"``) uses :func:`astrodrizzle_output_wcs`;
these apply to dazzle's own frame (``output_frame="dazzle"``).

* Footprints use the chip's outer pixel *edges* (corners at -0.5 and n - 0.5 plus points along
  every side, so distortion bends are followed); AstroDrizzle uses only the 4 pixel-centre
  corners, so half of each edge pixel can fall outside its default output frame.
* The default output ``CRVAL`` is the normalised mean of the unit vectors of all footprint points
  (edge points sampled at most every 64 px); AstroDrizzle averages the 4 corner unit vectors.
* Pixel scale and orientation come from the local Jacobian of the full (distorted) WCS at the
  chip centre: scale = sqrt(pixel area on the sky), orientation = position angle of the local
  +y axis.  AstroDrizzle uses ``IDCSCALE`` (or ``sqrt|det CD|``) and ``ORIENTAT``.  For a
  nominal-scale output pass ``scale=IDCSCALE`` explicitly.
* :func:`default_output_wcs` (``footprint_mode="edges"``, dazzle's own frame) orients the
  frame by the first chip's CD matrix.  AstroDrizzle does so only for chips without
  ``IDCV2REF``; for calibrated HST chips it uses the telescope roll (:class:`Aperture`).
  :func:`astrodrizzle_output_wcs` reproduces AstroDrizzle's frame, user parameters included,
  exactly.
* :func:`pixel_scale_ratio` returns output / input linear pixel size (2.0 for output pixels twice
  as large).  drizzle 3.0's ``estimate_pixel_scale_ratio`` with default arguments computes the
  inverse.
"""

from __future__ import annotations

import copy
import math
import re
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

__all__ = [
    "Frame",
    "bounding_box",
    "calc_pixmap",
    "chip_bounding_box",
    "edge_points",
    "footprint",
    "make_output_wcs",
    "orientation",
    "pixel_scale",
    "pixel_scale_ratio",
    "pixmap_error",
    "read_wcs",
    "shape_from_header",
    "sub_frame",
    "transform_points",
    "wcs_from_header",
    "wcs_to_header",
]

#: Default spacing (input pixels) of the exact-transform grid in fast pixmaps (AstroDrizzle's
#: ``stepsize``).
DEFAULT_STEPSIZE = 10
#: Spacing (pixels) of points along chip edges in :func:`footprint`.
FOOTPRINT_STEP = 64
#: Spacing (pixels) of the edge points used to size the default output frame and bounding boxes;
#: the bend of an edge between samples is bounded from second differences and added as margin.
_BOUNDS_STEP = 16
#: Float noise allowed when rounding a frame size up (pixels): keeps an exactly integer-wide
#: footprint from growing an extra empty column/row.
_SIZE_TOL = 1e-6

_ARCSEC_PER_RAD = 180.0 / math.pi * 3600.0
_WORLD2PIX_TOL = 1e-9  # pixels; iterative inverse of distorted WCSs


# --------------------------------------------------------------------------------------------
# Building WCS objects
# --------------------------------------------------------------------------------------------

def shape_from_header(header):
    """``(ny, nx)`` of the image a header describes, from ``NAXIS1/2`` or else ``WCSNAX1/2``;
    None if neither is present (e.g. a header-only HDU without ``WCSNAXi``)."""
    for k1, k2 in (("NAXIS1", "NAXIS2"), ("WCSNAX1", "WCSNAX2")):
        nx, ny = header.get(k1), header.get(k2)
        if nx and ny:
            return int(ny), int(nx)
    return None


def wcs_from_header(header, fobj=None, key=" "):
    """Build an ``astropy.wcs.WCS`` from a FITS header, with all its distortions.

    Parameters
    ----------
    header : astropy.io.fits.Header or str
        The (SCI) header.  A string is parsed with ``Header.fromstring``.
    fobj : astropy.io.fits.HDUList, optional
        The open FITS file the header belongs to.  Needed for lookup-table distortions (D2IM,
        CPDIS/NPOL), whose tables live in ``WCSDVARR`` / ``D2IMARR`` extensions; SIP needs only
        the header.
    key : str, optional
        An alternate WCS (``'A'``..``'Z'``) instead of the primary (AstroDrizzle's ``wcskey``).

    Returns
    -------
    astropy.wcs.WCS
        With ``pixel_shape`` set when the header gives the image size (``NAXISi`` or
        ``WCSNAXi``).
    """
    if isinstance(header, str):
        header = fits.Header.fromstring(header, sep="\n" if "\n" in header else "")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        w = WCS(header, fobj, key=key or " ")
    w.wcs.alt = " "   # written back as the primary WCS
    if w.naxis != 2:
        raise ValueError(f"expected a 2-axis celestial WCS, got {w.naxis} axes")
    shape = shape_from_header(header)
    if shape is not None:
        w.pixel_shape = (shape[1], shape[0])
    return w


# One parsed WCS per header, private copies handed out.  Parsing a header into an astropy WCS
# costs about 12 ms for a 4th-order SIP chip (8 ms for an output frame); a deep copy 0.06 ms.
# A run used to parse each chip's header ~10 times and each frame's ~20 times.
_WCS_CACHE: OrderedDict = OrderedDict()
_WCS_CACHE_LOCK = threading.Lock()
#: how many parsed WCSs are kept (least recently used dropped first)
WCS_CACHE_SIZE = 256


def cached_wcs(key, build):
    """A new private copy of the WCS ``build()`` makes, built once per ``key`` (hashable; it
    must identify everything the WCS depends on, e.g. the header text).

    astropy WCS objects are not thread-safe: every call returns its own ``copy.deepcopy``; the
    cached original is only ever copied (under a lock), never handed out or used for
    transforms.
    """
    with _WCS_CACHE_LOCK:
        w = _WCS_CACHE.get(key)
        if w is not None:
            _WCS_CACHE.move_to_end(key)
            return copy.deepcopy(w)
    w = build()
    with _WCS_CACHE_LOCK:
        _WCS_CACHE[key] = w
        while len(_WCS_CACHE) > WCS_CACHE_SIZE:
            _WCS_CACHE.popitem(last=False)
        return copy.deepcopy(w)


_EXT_RE = re.compile(r"^(?P<path>.*?)\[(?P<ext>[^\]]*)\]$")


def _parse_ext(ext):
    ext = ext.strip()
    if not ext:
        return None
    if "," in ext:
        name, ver = ext.split(",", 1)
        return (name.strip().strip("'\"").upper(), int(ver))
    try:
        return int(ext)
    except ValueError:
        return ext.strip("'\"").upper()


def read_wcs(spec):
    """Read a WCS and image shape from ``"file.fits"`` or ``"file.fits[ext]"``.

    ``ext`` may be an index (``[1]``), a name (``[SCI]``) or name and version (``[sci,1]``).
    Without an extension, the first HDU with a 2-axis celestial WCS and an image size is used.
    Lookup-table distortions are loaded (the file object is passed to ``WCS``).

    Returns ``(wcs, shape)`` where shape is ``(ny, nx)`` or None if the file does not say.
    """
    path, ext = str(spec), None
    m = _EXT_RE.match(path)
    if m:
        path, ext = m.group("path"), _parse_ext(m.group("ext"))
    with fits.open(path, memmap=False) as hdul:
        if ext is None:
            for i, hdu in enumerate(hdul):
                hdr = hdu.header
                if shape_from_header(hdr) is not None and "CTYPE1" in hdr and "CTYPE2" in hdr:
                    ext = i
                    break
            if ext is None:
                raise ValueError(f"{path}: no HDU with a 2-D celestial WCS and image size")
        hdr = hdul[ext].header
        w = wcs_from_header(hdr, hdul)
        return w, shape_from_header(hdr)


def wcs_to_header(wcs, *, cd=True):
    """FITS header of a WCS at full (17-digit) precision, SIP included.

    Parameters
    ----------
    wcs : astropy.wcs.WCS, Frame, astropy.io.fits.Header or str
        The WCS (a private copy is evaluated, so it may be shared across threads).
    cd : bool, optional
        Write the linear part as ``CDi_j`` (as HST drizzled products do) instead of
        ``PCi_j`` + ``CDELTi``.

    Returns
    -------
    astropy.io.fits.Header
        ``CRPIX``/``CRVAL`` (1-based CRPIX) and the linear terms at full precision.  Lookup-table
        distortions cannot be expressed in a header and are not written.
    """
    w = _fresh(wcs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        h = w.to_header(relax=True)
    # wcslib writes 14 significant digits; restore full precision of the key values.
    for i in (1, 2):
        h[f"CRPIX{i}"] = float(w.wcs.crpix[i - 1])
        h[f"CRVAL{i}"] = float(w.wcs.crval[i - 1])
    if cd:
        m = w.wcs.cd if w.wcs.has_cd() else w.wcs.get_pc() * w.wcs.get_cdelt()[:, None]
        for k in ("PC1_1", "PC1_2", "PC2_1", "PC2_2", "CDELT1", "CDELT2"):
            h.remove(k, ignore_missing=True)
        idx = h.index("CRPIX2") + 1
        for n, (i, j) in enumerate(((1, 1), (1, 2), (2, 1), (2, 2))):
            h.insert(idx + n, (f"CD{i}_{j}", float(m[i - 1, j - 1]),
                               "Coordinate transformation matrix element"))
    else:
        pc, cdelt = w.wcs.get_pc(), w.wcs.get_cdelt()
        for i in (1, 2):
            if f"CDELT{i}" in h:
                h[f"CDELT{i}"] = float(cdelt[i - 1])
            for j in (1, 2):
                if f"PC{i}_{j}" in h:
                    h[f"PC{i}_{j}"] = float(pc[i - 1, j - 1])
    return h


def _fresh(wcs):
    """A private copy of a WCS (or a WCS built from a Frame / header) safe to use in a thread."""
    if isinstance(wcs, Frame):
        return wcs.wcs()
    if isinstance(wcs, (fits.Header, str)):
        return wcs_from_header(wcs)
    if not isinstance(wcs, WCS):
        if is_ape14(wcs):
            return wcs   # e.g. a gwcs WCS: evaluated by pure functions, shared as it is
        raise TypeError(f"expected an astropy.wcs.WCS, a WCS with the APE 14 API (gwcs), Frame or "
                        f"Header, got {type(wcs).__name__}")
    return copy.deepcopy(wcs)


def is_ape14(wcs) -> bool:
    """Whether ``wcs`` offers the shared astropy WCS API (APE 14: ``pixel_to_world_values`` and
    ``world_to_pixel_values``), as ``astropy.wcs.WCS`` and ``gwcs.WCS`` both do."""
    return hasattr(wcs, "pixel_to_world_values") and hasattr(wcs, "world_to_pixel_values")


def _celestial_axes(w):
    """The world axes of RA and Dec of an APE 14 WCS (the first two when it does not say)."""
    types = [str(t or "") for t in (getattr(w, "world_axis_physical_types", None) or [])]
    lon = next((i for i, t in enumerate(types) if t.startswith("pos.") and t.endswith(".ra")), None)
    lat = next((i for i, t in enumerate(types) if t.startswith("pos.") and t.endswith(".dec")), None)
    return (0, 1) if lon is None or lat is None else (lon, lat)


def _shape_of(wcs, shape):
    if shape is not None:
        return int(shape[0]), int(shape[1])
    if isinstance(wcs, Frame):
        return wcs.shape
    if (isinstance(wcs, WCS) or is_ape14(wcs)) and getattr(wcs, "pixel_shape", None) is not None:
        nx, ny = wcs.pixel_shape
        return int(ny), int(nx)
    return None


# --------------------------------------------------------------------------------------------
# Point transforms and pixmaps
# --------------------------------------------------------------------------------------------

def _pix2world(w, x, y):
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if not isinstance(w, WCS):   # any other WCS through the shared API (gwcs)
        world = w.pixel_to_world_values(x, y)
        lon, lat = _celestial_axes(w)
        return (np.asarray(world[lon], dtype=np.float64).reshape(x.shape),
                np.asarray(world[lat], dtype=np.float64).reshape(x.shape))
    ra, dec = w.all_pix2world(x, y, 0)
    return ra, dec


def _world2pix(w, ra, dec):
    if not isinstance(w, WCS):
        lon, lat = _celestial_axes(w)
        world = [None, None]
        world[lon], world[lat] = np.asarray(ra, dtype=np.float64), np.asarray(dec, dtype=np.float64)
        x, y = w.world_to_pixel_values(*world)
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if not w.has_distortion:
        return w.wcs_world2pix(ra, dec, 0)
    # Iterative inverse: tighter than astropy's default (1e-4 px); quiet=True returns the best
    # solution instead of raising for points that do not converge (far outside a distorted
    # chip), divergent points come back as NaN.
    return w.all_world2pix(ra, dec, 0, tolerance=_WORLD2PIX_TOL, maxiter=50, adaptive=False,
                           detect_divergence=True, quiet=True)


def transform_points(wcs_in, wcs_out, x, y):
    """Exact transform of input pixel positions to output pixel positions.

    Input pixel -> sky with the full distorted ``wcs_in``, sky -> output pixel with the full
    ``wcs_out`` (iterative for a distorted ``wcs_out``; divergent points come back as NaN).

    Parameters
    ----------
    wcs_in, wcs_out : astropy.wcs.WCS, Frame or astropy.io.fits.Header
        Input and output WCSs.
    x, y : array_like
        0-based input pixel coordinates (broadcast together).

    Returns
    -------
    x_out, y_out : numpy.ndarray
        0-based output pixel coordinates (float64), of the broadcast shape of ``x`` and ``y``.
    """
    win, wout = _fresh(wcs_in), _fresh(wcs_out)
    x, y = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    ra, dec = _pix2world(win, x.ravel(), y.ravel())
    xo, yo = _world2pix(wout, ra, dec)
    return np.asarray(xo).reshape(x.shape), np.asarray(yo).reshape(x.shape)


def _grid(lo, hi, step):
    """Grid from lo to hi (inclusive) every ``step``, always including hi."""
    g = np.arange(lo, hi + 1, step, dtype=np.int64)
    if g[-1] != hi:
        g = np.append(g, hi)
    return g


def _interp_index(grid, n0, n):
    """For pixels n0..n0+n-1: index of the grid cell to their left and the fraction across it."""
    p = np.arange(n0, n0 + n, dtype=np.float64)
    if len(grid) == 1:
        return np.zeros(n, dtype=np.int64), np.zeros(n)
    k = np.clip(np.searchsorted(grid, p, side="right") - 1, 0, len(grid) - 2)
    t = (p - grid[k]) / (grid[k + 1] - grid[k])
    return k, t


def calc_pixmap(wcs_in, wcs_out, shape_in, *, stepsize=DEFAULT_STEPSIZE, exact=False, box=None,
                offset=(0, 0), section=None, grid_key=None):
    """Pixel map from an input chip to an output frame.

    Parameters
    ----------
    wcs_in, wcs_out : astropy.wcs.WCS (or Frame for the output)
        Full WCSs (distortions included).  They are deep-copied, never modified.
    shape_in : (ny, nx)
        Shape of the input chip.
    stepsize : int
        Fast mode (AstroDrizzle's ``stepsize``, default 10): the exact transform is evaluated on
        a grid every ``stepsize`` pixels that always includes the first and last row/column, and
        the rest is filled by bilinear interpolation of the output positions.  Measured on the
        real HST ACS/HRC 4th-order SIP chip in tests/data onto its default frame: max error
        3.5e-4 px at stepsize 10 (8.4e-5 at 5, 8.9e-4 at 16, 3.6e-3 at 32; see
        :func:`pixmap_error`).  Lookup-table distortions may interpolate less well: measure
        them with :func:`pixmap_error`.  ``stepsize <= 1`` means exact.
    exact : bool
        Evaluate the exact transform at every pixel (slower, ~30x for SIP).
    box : (xmin, xmax, ymin, ymax), optional
        Inclusive 0-based sub-box of the input; the result then has shape
        ``(ymax - ymin + 1, xmax - xmin + 1, 2)`` and element ``[j, i]`` refers to input pixel
        ``(xmin + i, ymin + j)``.  The interpolation grid is anchored at the box corner.
    offset : (x0, y0)
        Output pixel subtracted from every position (positions relative to a section of the
        output starting there): the same bits as subtracting it from the map afterwards.
    section : (x0, x1, y0, y1), optional
        Half-open input pixels: the part of the chip's map over them, the very values (bits) of
        the whole chip's map there (its grid, anchored at the chip's corner, is kept; unlike
        ``box``).
    grid_key : hashable, optional
        In fast mode (not with ``box``): a key that identifies ``wcs_in`` and ``wcs_out`` (the
        caller's promise), under which the exact transform at every node of the whole chip's
        grid is computed once and kept (:func:`grid_nodes`), so that the sections, and the steps
        that map the same chip onto the same frame, interpolate from it.  The same bits.

    Returns
    -------
    pixmap : float64 ndarray (ny, nx, 2)
        ``pixmap[j, i] = (x_out, y_out)`` for the centre of input pixel ``(i, j)``.
        Input points whose inverse transform diverges (possible only for a distorted
        ``wcs_out``) are NaN; in fast mode NaN spreads to the neighbouring grid cells.
    """
    ny, nx = int(shape_in[0]), int(shape_in[1])
    if section is None and box is None and grid_key is not None:
        section = (0, nx, 0, ny)   # the same bits, from the shared nodes
    if section is not None:
        return _pixmap_section(wcs_in, wcs_out, (ny, nx), section, stepsize=stepsize, exact=exact,
                               offset=offset, grid_key=grid_key)
    if box is None:
        xmin, xmax, ymin, ymax = 0, nx - 1, 0, ny - 1
    else:
        xmin, xmax, ymin, ymax = (int(v) for v in box)
    if xmax < xmin or ymax < ymin:
        raise ValueError(f"empty box {box}")
    bnx, bny = xmax - xmin + 1, ymax - ymin + 1
    step = int(stepsize) if stepsize is not None else 1
    win, wout = _fresh(wcs_in), _fresh(wcs_out)

    if exact or step <= 1:
        yy, xx = np.mgrid[ymin:ymax + 1, xmin:xmax + 1].astype(np.float64)
        ra, dec = _pix2world(win, xx.ravel(), yy.ravel())
        del xx, yy
        xo, yo = _world2pix(wout, ra, dec)
        pixmap = np.empty((bny, bnx, 2), dtype=np.float64)
        pixmap[..., 0] = np.asarray(xo).reshape(bny, bnx)
        pixmap[..., 1] = np.asarray(yo).reshape(bny, bnx)
        if offset[0] or offset[1]:
            pixmap[..., 0] -= offset[0]
            pixmap[..., 1] -= offset[1]
        return pixmap

    return _grid_map(win, wout, _grid(xmin, xmax, step), _grid(ymin, ymax, step), xmin, bnx, offset)


def _nodes(win, wout, gx, gy):
    """The exact transform at the grid nodes ``gx`` x ``gy``: (len(gy), len(gx), 2) output
    (x, y).  Each node's value depends on that node alone (the same bits in any batch)."""
    gxx, gyy = np.meshgrid(gx.astype(np.float64), gy.astype(np.float64))
    ra, dec = _pix2world(win, gxx.ravel(), gyy.ravel())
    xo, yo = _world2pix(wout, ra, dec)
    return np.stack([np.asarray(xo), np.asarray(yo)], axis=-1).reshape(len(gy), len(gx), 2)


def _grid_map(win, wout, gx, gy, x0, nx, offset, g=None):
    """The pixel map over input columns ``x0 .. x0 + nx - 1`` and rows ``gy[0] .. gy[-1]``: the
    exact transform at the grid nodes ``gx`` x ``gy`` (which bracket those columns; ``g`` when
    already known), the rest by separable bilinear interpolation, along x for every grid row,
    then along y (a Numba kernel: no full-size temporaries, the GIL released)."""
    if g is None:
        g = _nodes(win, wout, gx, gy)
    from dazzle.kernels.pixmap import interpolate_grid

    kx, tx = _interp_index(gx, x0, nx)
    return interpolate_grid(g, gy, int(gy[0]), kx, tx, (int(gy[-1]) - int(gy[0]) + 1, nx), offset=offset)


def _span(grid, lo, hi):
    """The slice of ``grid``'s nodes that interpolate pixels lo..hi (inclusive) as the whole
    grid does: from the last node at or before ``lo`` to the first node after ``hi`` (or the
    last node)."""
    i0 = max(int(np.searchsorted(grid, lo, side="right")) - 1, 0)
    i1 = min(int(np.searchsorted(grid, hi, side="right")), len(grid) - 1)
    return slice(i0, i1 + 1)


# The exact transform at every node of a chip's grid, per (grid_key, shape, step): a WFC chip's
# is 1.4 MB; computing it costs ~30 ms, which every section and step used to pay again.
_NODES: OrderedDict = OrderedDict()
_NODES_LOCK = threading.Lock()
#: how many chips' grid nodes are kept (least recently used dropped first)
NODES_CACHE_SIZE = 128


def grid_nodes(wcs_in, wcs_out, shape, stepsize, key):
    """The exact transform at every node of the fast pixel map's grid over a whole chip of
    ``shape`` (every ``stepsize`` pixels, the last row and column included):
    ``(len(gy), len(gx), 2)`` output (x, y), computed once per ``key`` (which must identify
    both WCSs) and shared (read-only) afterwards."""
    ny, nx = (int(n) for n in shape)
    full = (key, ny, nx, int(stepsize))
    with _NODES_LOCK:
        g = _NODES.get(full)
        if g is not None:
            _NODES.move_to_end(full)
            return g
    g = _nodes(_fresh(wcs_in), _fresh(wcs_out), _grid(0, nx - 1, stepsize), _grid(0, ny - 1, stepsize))
    g.flags.writeable = False
    with _NODES_LOCK:
        _NODES[full] = g
        while len(_NODES) > NODES_CACHE_SIZE:
            _NODES.popitem(last=False)
    return g


def map_key(chip, frame):
    """The ``grid_key`` of the map from ``chip`` (a :class:`dazzle.io.Chip`) to ``frame`` (a
    :class:`Frame`) for :func:`calc_pixmap`, or None when the chip's WCS has no key."""
    key = chip.wcs_key()
    return None if key is None else (key, ("frame", frame.header))


def _pixmap_section(wcs_in, wcs_out, shape, section, *, stepsize, exact, offset, grid_key=None):
    """:func:`calc_pixmap` over ``section`` (x0, x1, y0, y1) of a chip of ``shape``: the
    whole chip's grid nodes around the section, interpolated with the same operations."""
    x0, x1, y0, y1 = (int(v) for v in section)
    ny, nx = shape
    if not (0 <= x0 < x1 <= nx and 0 <= y0 < y1 <= ny):
        raise ValueError(f"section {section} is not inside a chip of shape {shape}")
    step = int(stepsize) if stepsize is not None else 1
    if exact or step <= 1:
        return calc_pixmap(wcs_in, wcs_out, shape, exact=True, box=(x0, x1 - 1, y0, y1 - 1), offset=offset)
    grid_x, grid_y = _grid(0, nx - 1, step), _grid(0, ny - 1, step)
    sx, sy = _span(grid_x, x0, x1 - 1), _span(grid_y, y0, y1 - 1)
    gx, gy = grid_x[sx], grid_y[sy]
    if grid_key is None:
        win, wout, g = _fresh(wcs_in), _fresh(wcs_out), None
    else:
        # a private (writeable) copy: the kernel is compiled for writeable arrays
        win, wout, g = None, None, np.array(grid_nodes(wcs_in, wcs_out, shape, step, grid_key)[sy, sx])
    # the rows from the first node on (the fill starts at a node), then the section's
    rows = _grid_map(win, wout, gx, gy, x0, x1 - x0, offset, g=g)
    return rows[y0 - int(gy[0]):y1 - int(gy[0])]


def pixmap_error(wcs_in, wcs_out, shape, stepsize=DEFAULT_STEPSIZE, *, exact_pixmap=None):
    """Maximum error of the fast pixmap at ``stepsize`` against the exact one.

    Parameters
    ----------
    wcs_in, wcs_out : astropy.wcs.WCS, Frame or astropy.io.fits.Header
        Input and output WCSs.
    shape : tuple of int
        Input chip shape ``(ny, nx)``.
    stepsize : int, optional
        Spacing (input pixels) of the exact-transform grid of the fast pixmap.
    exact_pixmap : numpy.ndarray, optional
        An exact pixmap ``(ny, nx, 2)`` already computed, to reuse.

    Returns
    -------
    float
        Largest Euclidean distance (output pixels) between fast and exact positions.
    """
    if exact_pixmap is None:
        exact_pixmap = calc_pixmap(wcs_in, wcs_out, shape, exact=True)
    fast = calc_pixmap(wcs_in, wcs_out, shape, stepsize=stepsize)
    d = fast - exact_pixmap
    return float(np.nanmax(np.hypot(d[..., 0], d[..., 1])))


# --------------------------------------------------------------------------------------------
# Local scale and orientation
# --------------------------------------------------------------------------------------------

def _unit(ra, dec):
    a, d = np.radians(ra), np.radians(dec)
    cd = np.cos(d)
    return np.stack([cd * np.cos(a), cd * np.sin(a), np.sin(d)], axis=-1)


def _radec(v):
    v = np.asarray(v, dtype=np.float64)
    v = v / np.linalg.norm(v, axis=-1, keepdims=True)
    ra = np.degrees(np.arctan2(v[..., 1], v[..., 0])) % 360.0
    dec = np.degrees(np.arcsin(np.clip(v[..., 2], -1.0, 1.0)))
    return ra, dec


def _local_jacobian(w, x, y, h=0.5):
    """d(east, north)/d(x, y) in arcsec per pixel at 0-based pixel (x, y) of WCS ``w``.

    (east, north) are gnomonic tangent-plane coordinates about the sky position of (x, y); the
    derivative is a central difference over +-h pixels of the full (distorted) WCS.
    """
    px = np.array([x, x + h, x - h, x, x], dtype=np.float64)
    py = np.array([y, y, y, y + h, y - h], dtype=np.float64)
    ra, dec = _pix2world(w, px, py)
    q = _unit(ra, dec)
    c = q[0]
    a, d = math.radians(ra[0]), math.radians(dec[0])
    e_east = np.array([-math.sin(a), math.cos(a), 0.0])
    e_north = np.array([-math.sin(d) * math.cos(a), -math.sin(d) * math.sin(a), math.cos(d)])
    qc = q @ c
    east = (q @ e_east) / qc * _ARCSEC_PER_RAD
    north = (q @ e_north) / qc * _ARCSEC_PER_RAD
    return np.array([[(east[1] - east[2]) / (2 * h), (east[3] - east[4]) / (2 * h)],
                     [(north[1] - north[2]) / (2 * h), (north[3] - north[4]) / (2 * h)]])


def _centre(wcs, shape):
    shape = _shape_of(wcs, shape)
    if shape is not None:
        return (shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0
    w = wcs.wcs() if isinstance(wcs, Frame) else wcs
    return float(w.wcs.crpix[0] - 1.0), float(w.wcs.crpix[1] - 1.0)


def pixel_scale(wcs, shape=None, *, at=None):
    """Linear pixel scale: the square root of the on-sky area of a pixel.

    Evaluated from the local Jacobian of the full (distorted) WCS.

    Parameters
    ----------
    wcs : astropy.wcs.WCS, Frame or astropy.io.fits.Header
        The chip's WCS.
    shape : tuple of int, optional
        Chip shape ``(ny, nx)``; the scale is taken at the chip centre ``((nx-1)/2, (ny-1)/2)``.
        Defaults to ``wcs.pixel_shape``; failing that, the reference pixel is used.
    at : tuple of float, optional
        0-based pixel position ``(x, y)`` to evaluate at instead of the centre.

    Returns
    -------
    float
        Pixel scale in arcsec/pixel.
    """
    x, y = at if at is not None else _centre(wcs, shape)
    j = _local_jacobian(_fresh(wcs), x, y)
    return float(math.sqrt(abs(np.linalg.det(j))))


def orientation(wcs, shape=None, *, at=None):
    """Position angle of the chip's local +y axis at its centre.

    The equivalent of HST's ``ORIENTAT``, from the full distorted WCS.

    Parameters
    ----------
    wcs : astropy.wcs.WCS, Frame or astropy.io.fits.Header
        The chip's WCS.
    shape : tuple of int, optional
        Chip shape ``(ny, nx)`` locating the centre (as in :func:`pixel_scale`).
    at : tuple of float, optional
        0-based pixel position ``(x, y)`` to evaluate at instead of the centre.

    Returns
    -------
    float
        Degrees East of North, in ``(-180, 180]``.
    """
    x, y = at if at is not None else _centre(wcs, shape)
    j = _local_jacobian(_fresh(wcs), x, y)
    pa = math.degrees(math.atan2(j[0, 1], j[1, 1]))
    return 180.0 if pa == -180.0 else pa


def pixel_scale_ratio(wcs_in, wcs_out, shape_in):
    """Output / input linear pixel size (AstroDrizzle's ``pix_ratio``).

    The input scale is taken at the input chip centre; the output scale at the output position
    of that same sky point.  Both include distortion (sqrt of local pixel area).

    Parameters
    ----------
    wcs_in, wcs_out : astropy.wcs.WCS, Frame or astropy.io.fits.Header
        Input chip and output frame WCSs.
    shape_in : tuple of int or None
        Input chip shape ``(ny, nx)`` (None: ``wcs_in.pixel_shape`` or its reference pixel).

    Returns
    -------
    float
        2.0 when output pixels are twice as large as input pixels.
    """
    win, wout = _fresh(wcs_in), _fresh(wcs_out)
    x, y = _centre(win, shape_in)
    ra, dec = _pix2world(win, np.array([x]), np.array([y]))
    xo, yo = _world2pix(wout, ra, dec)
    s_in = pixel_scale(win, at=(x, y))
    s_out = pixel_scale(wout, at=(float(xo[0]), float(yo[0])))
    return s_out / s_in


# --------------------------------------------------------------------------------------------
# Footprints
# --------------------------------------------------------------------------------------------

def _side(a, b, length, step):
    n = max(1, int(math.ceil(length / float(step))))
    return np.linspace(a, b, n + 1)


def _edge_sides(shape, step, origin=(0, 0)):
    """The 4 sides of the chip's outer pixel edge as (x, y) arrays, each with both ends,
    counter-clockwise from (-0.5, -0.5) -- of a section of ``shape`` whose first pixel is
    ``origin`` (x, y) of the chip."""
    ny, nx = int(shape[0]), int(shape[1])
    x0, x1, y0, y1 = origin[0] - 0.5, origin[0] + nx - 0.5, origin[1] - 0.5, origin[1] + ny - 0.5
    sx, sy = _side(x0, x1, nx, step), _side(y0, y1, ny, step)
    return [
        (sx, np.full_like(sx, y0)),              # bottom, left -> right
        (np.full_like(sy, x1), sy),              # right, bottom -> top
        (sx[::-1], np.full_like(sx, y1)),        # top, right -> left
        (np.full_like(sy, x0), sy[::-1]),        # left, top -> bottom
    ]


def edge_points(shape, step=FOOTPRINT_STEP):
    """Points on a chip's outer pixel edge.

    The 4 corners ``(-0.5, -0.5)``, ``(nx - 0.5, -0.5)``, ``(nx - 0.5, ny - 0.5)``,
    ``(-0.5, ny - 0.5)`` and evenly spaced points at most ``step`` pixels apart along every side,
    counter-clockwise, each point once.

    Parameters
    ----------
    shape : tuple of int
        Chip shape ``(ny, nx)``.
    step : float, optional
        Largest spacing (pixels) of points along a side.

    Returns
    -------
    x, y : numpy.ndarray
        0-based pixel coordinates of the points, 1-D.
    """
    sides = _edge_sides(shape, step)
    x = np.concatenate([s[0][:-1] for s in sides])
    y = np.concatenate([s[1][:-1] for s in sides])
    return x, y


def footprint(wcs, shape=None, step=FOOTPRINT_STEP):
    """Sky footprint of a chip: the sky positions of its :func:`edge_points`.

    Uses the outer pixel edges (not AstroDrizzle's 4 pixel-centre corners) sampled at most every
    ``step`` pixels, so bends of the edges due to distortion are followed.

    Parameters
    ----------
    wcs : astropy.wcs.WCS, Frame or astropy.io.fits.Header
        The chip's WCS.
    shape : tuple of int, optional
        Chip shape ``(ny, nx)``; defaults to the Frame's shape or ``wcs.pixel_shape``.
    step : float, optional
        Largest spacing (pixels) of points along a side.

    Returns
    -------
    numpy.ndarray
        ``(N, 2)`` array of (RA, Dec) in degrees.

    Raises
    ------
    ValueError
        If no shape is given and the WCS has none.
    """
    shape = _shape_of(wcs, shape)
    if shape is None:
        raise ValueError("footprint needs the chip shape")
    x, y = edge_points(shape, step)
    ra, dec = _pix2world(_fresh(wcs), x, y)
    return np.column_stack([ra, dec])


def _projected_edges(win, wout, shape, step=_BOUNDS_STEP, origin=(0, 0)):
    """Exact output positions of a chip's (or a section's, see :func:`_edge_sides`) edge points
    plus a bound on how far the true edge can bulge beyond the straight lines between
    consecutive samples (output pixels)."""
    sides = _edge_sides(shape, step, origin)
    xs, ys, bulge = [], [], 0.0
    for sx, sy in sides:
        ra, dec = _pix2world(win, sx, sy)
        xo, yo = _world2pix(wout, ra, dec)
        xo, yo = np.asarray(xo), np.asarray(yo)
        if len(xo) >= 3:
            d2 = np.hypot(np.diff(xo, 2), np.diff(yo, 2))
            if np.any(np.isfinite(d2)):
                # Sagitta of a smooth arc between samples ~ |second difference| / 8; x2 safety.
                bulge = max(bulge, 2.0 * float(np.nanmax(d2)) / 8.0)
        xs.append(xo)
        ys.append(yo)
    return np.concatenate(xs), np.concatenate(ys), bulge


# --------------------------------------------------------------------------------------------
# Output frame
# --------------------------------------------------------------------------------------------

def _tan_wcs(crval, crpix, pscale, rot):
    """Undistorted TAN WCS with a "perfect" CD: pscale/3600 * [[-cos t, sin t], [sin t, cos t]]
    (+y axis at position angle ``rot`` degrees East of North, East to the left)."""
    t = math.radians(rot)
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.radesys = "ICRS"
    w.wcs.crval = [float(crval[0]), float(crval[1])]
    w.wcs.crpix = [float(crpix[0]), float(crpix[1])]
    s = pscale / 3600.0
    w.wcs.cd = s * np.array([[-math.cos(t), math.sin(t)], [math.sin(t), math.cos(t)]])
    w.wcs.set()
    return w


def _as_pairs(wcss_and_shapes):
    pairs = []
    for item in wcss_and_shapes:
        if isinstance(item, (WCS, Frame)):
            w, shape = item, None
        else:
            w, shape = item
        shape = _shape_of(w, shape)
        if shape is None:
            raise ValueError("every chip needs a shape (pass (wcs, (ny, nx)) pairs)")
        pairs.append((w, shape))
    return pairs


def make_output_wcs(wcss_and_shapes=(), *, rot=None, scale=None, outnx=None, outny=None,
                    ra=None, dec=None, crpix1=None, crpix2=None, refimage=None):
    """AstroDrizzle-like output frame for a set of chips.

    Parameters
    ----------
    wcss_and_shapes : iterable of (WCS, (ny, nx))
        Every chip of every input, the first chip of the first input first (a bare WCS with
        ``pixel_shape`` is accepted too).
    rot : float, optional
        Position angle (degrees East of North) of the output +y axis; 0 = North up, East left.
        Default: the orientation of the first chip at its centre (as ``ORIENTAT``).
    scale : float, optional
        Output pixel scale, arcsec/pixel.  Default: :func:`pixel_scale` of the first chip
        (sqrt of the local pixel area; AstroDrizzle uses ``IDCSCALE`` -- pass it here for that).
    outnx, outny : int, optional
        Output size; that axis' ``CRPIX`` is then ``(n + 1) / 2`` (1-based).
    ra, dec : float, optional
        ``CRVAL`` (degrees).  Default: normalised mean of the unit vectors of all chips' footprint
        points (edge points, see :func:`footprint`).
    crpix1, crpix2 : float, optional
        ``CRPIX`` (1-based FITS convention), overriding the computed ones.
    refimage : str or WCS or Frame, optional
        ``"file.fits[ext]"`` or a WCS supplying the whole output WCS and shape (a WCS needs
        ``pixel_shape`` or ``outnx/outny``).  ``ra/dec/crpix1/crpix2/outnx/outny`` given
        explicitly are still applied on top; ``rot`` and ``scale`` are ignored with a warning.

    Returns
    -------
    (wcs, (ny, nx))
        The undistorted TAN WCS (``pixel_shape`` set; ``wcs.to_header()`` or
        :func:`wcs_to_header` give its FITS header) and the frame shape.

    Notes
    -----
    Without overrides the frame contains every chip's outer pixel edges: the size is the
    ceiling of the extent of all chips' edges projected on the output tangent plane (plus a
    bound on the bend of the edges between sample points), and CRPIX centres that extent.
    AstroDrizzle sizes from the 4 pixel-centre corners only.
    """
    if refimage is not None:
        return _from_refimage(refimage, rot=rot, scale=scale, outnx=outnx, outny=outny, ra=ra,
                              dec=dec, crpix1=crpix1, crpix2=crpix2)
    pairs = _as_pairs(wcss_and_shapes)
    if not pairs:
        raise ValueError("make_output_wcs needs at least one chip (or refimage)")
    fresh = [(_fresh(w), s) for w, s in pairs]

    w0, s0 = fresh[0]
    pscale = float(scale) if scale is not None else pixel_scale(w0, s0)
    t = float(rot) if rot is not None else orientation(w0, s0)

    if ra is None or dec is None:
        vecs = np.concatenate([_unit(*footprint(w, s).T) for w, s in fresh])
        mra, mdec = _radec(vecs.mean(axis=0))
        ra = float(mra) if ra is None else ra
        dec = float(mdec) if dec is None else dec
    crval = (float(ra), float(dec))

    # Project all chips' edges on the tangent plane with CRPIX (1, 1), i.e. 0-based pixel (0, 0)
    # at CRVAL, and find their extent.
    proj = _tan_wcs(crval, (1.0, 1.0), pscale, t)
    xmin = ymin = np.inf
    xmax = ymax = -np.inf
    bulge = 0.0
    for w, s in fresh:
        xo, yo, b = _projected_edges(w, proj, s)
        xmin, xmax = min(xmin, np.nanmin(xo)), max(xmax, np.nanmax(xo))
        ymin, ymax = min(ymin, np.nanmin(yo)), max(ymax, np.nanmax(yo))
        bulge = max(bulge, b)
    xmin, xmax, ymin, ymax = xmin - bulge, xmax + bulge, ymin - bulge, ymax + bulge

    def axis(lo, hi, n_override, crpix_override):
        if n_override is not None:
            n = int(n_override)
            crpix = (n + 1) / 2.0
        else:
            # Pixel edges span [-0.5, n - 0.5]: n >= hi - lo.  Centre the extent in the frame:
            # 0-based position (n - 1) / 2 <-> (lo + hi) / 2, so CRPIX = 1 + (n-1)/2 - mid.
            n = max(1, int(math.ceil(hi - lo - _SIZE_TOL)))
            crpix = 1.0 + (n - 1) / 2.0 - (lo + hi) / 2.0
        if crpix_override is not None:
            crpix = float(crpix_override)
        return n, crpix

    nx, c1 = axis(xmin, xmax, outnx, crpix1)
    ny, c2 = axis(ymin, ymax, outny, crpix2)
    out = _tan_wcs(crval, (c1, c2), pscale, t)
    out.pixel_shape = (nx, ny)
    return out, (ny, nx)


def _from_refimage(refimage, *, rot, scale, outnx, outny, ra, dec, crpix1, crpix2):
    if rot is not None or scale is not None:
        warnings.warn("make_output_wcs: rot/scale are ignored when refimage is given", UserWarning,
                      stacklevel=3)
    if isinstance(refimage, Frame):
        w, shape = refimage.wcs(), refimage.shape
    elif isinstance(refimage, WCS):
        w, shape = copy.deepcopy(refimage), _shape_of(refimage, None)
    else:
        w, shape = read_wcs(refimage)
    if shape is None:
        if outnx is None or outny is None:
            raise ValueError("refimage has no image size; give outnx and outny")
        shape = (int(outny), int(outnx))
    ny, nx = shape
    if outnx is not None:
        nx = int(outnx)
    if outny is not None:
        ny = int(outny)
    if ra is not None:
        w.wcs.crval[0] = float(ra)
    if dec is not None:
        w.wcs.crval[1] = float(dec)
    if crpix1 is not None:
        w.wcs.crpix[0] = float(crpix1)
    if crpix2 is not None:
        w.wcs.crpix[1] = float(crpix2)
    w.wcs.set()
    w.pixel_shape = (nx, ny)
    return w, (ny, nx)


# --------------------------------------------------------------------------------------------
# Frame: a picklable output frame description
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Frame:
    """An output frame: FITS WCS header text plus shape ``(ny, nx)``.

    Small, immutable, hashable and cheap to pickle -- ship this through Dask graphs and call
    :meth:`wcs` inside a task for a fresh (thread-private) ``astropy.wcs.WCS``.  The header is
    written at full precision (SIP included; lookup-table distortions cannot be carried).
    """

    header: str
    shape: tuple

    @classmethod
    def from_wcs(cls, wcs, shape=None):
        shape = _shape_of(wcs, shape)
        if shape is None:
            raise ValueError("Frame needs a shape")
        if isinstance(wcs, WCS) and (wcs.det2im1 is not None or wcs.det2im2 is not None
                                     or wcs.cpdis1 is not None or wcs.cpdis2 is not None):
            raise ValueError("a Frame cannot carry lookup-table distortions (D2IM/CPDIS)")
        h = wcs_to_header(wcs, cd=True)
        return cls(h.tostring(sep="\n"), (int(shape[0]), int(shape[1])))

    @property
    def ny(self):
        return self.shape[0]

    @property
    def nx(self):
        return self.shape[1]

    def fits_header(self):
        """The WCS as an ``astropy.io.fits.Header`` (with ``NAXIS1/2`` left to the writer)."""
        return fits.Header.fromstring(self.header, sep="\n")

    def wcs(self):
        """A new ``astropy.wcs.WCS`` for this frame, ``pixel_shape`` set (a private copy of
        the one parsed from :attr:`header`, see :func:`cached_wcs`)."""
        w = cached_wcs(("frame", self.header), self._parse_wcs)
        w.pixel_shape = (self.nx, self.ny)
        return w

    def _parse_wcs(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            return WCS(self.fits_header())


def sub_frame(frame, x0, y0, nx, ny):
    """The rectangular piece of a frame starting at a given parent pixel.

    Same sky geometry with CRPIX shifted by ``(-x0, -y0)``, so sub-frame pixel ``(i, j)`` is
    parent pixel ``(x0 + i, y0 + j)``.  The piece may extend beyond the parent.

    Parameters
    ----------
    frame : Frame or astropy.wcs.WCS
        The parent frame (not modified).
    x0, y0 : int
        0-based parent pixel of the piece's pixel ``(0, 0)``.
    nx, ny : int
        Size of the piece (pixels).

    Returns
    -------
    Frame or astropy.wcs.WCS
        A Frame if ``frame`` is one, else a new WCS with ``pixel_shape = (nx, ny)``.
    """
    if isinstance(frame, Frame):
        w = frame.wcs()
    else:
        w = copy.deepcopy(frame)
    w.wcs.crpix = [w.wcs.crpix[0] - x0, w.wcs.crpix[1] - y0]
    w.wcs.set()
    w.pixel_shape = (int(nx), int(ny))
    if isinstance(frame, Frame):
        return Frame.from_wcs(w, (int(ny), int(nx)))
    return w


def _box_from_extent(xlo, xhi, ylo, yhi, frame_shape):
    fny, fnx = int(frame_shape[0]), int(frame_shape[1])
    if not all(np.isfinite(v) for v in (xlo, xhi, ylo, yhi)):
        return None
    # Output pixel k covers [k - 0.5, k + 0.5]; an extent ending within _SIZE_TOL of a pixel
    # boundary does not count as touching the next pixel (zero-area contact, float noise).
    x0 = max(0, int(math.floor(xlo + 0.5 + _SIZE_TOL)))
    x1 = min(fnx, int(math.floor(xhi + 0.5 - _SIZE_TOL)) + 1)
    y0 = max(0, int(math.floor(ylo + 0.5 + _SIZE_TOL)))
    y1 = min(fny, int(math.floor(yhi + 0.5 - _SIZE_TOL)) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    return x0, x1, y0, y1


def bounding_box(pixmap, frame_shape, *, pad=0.0):
    """Box of output pixels that a pixmap's input pixels touch, clipped to the frame.

    The extent of the pixmap's pixel centres is widened by half an input pixel as it appears in
    the output (from the pixmap's own local derivatives along its border), so whole input pixels
    are covered, plus ``pad`` output pixels.

    Parameters
    ----------
    pixmap : numpy.ndarray
        ``(ny, nx, 2)`` output positions (0-based pixels) of the input pixel centres; NaN allowed.
    frame_shape : tuple of int
        Output frame shape ``(ny, nx)``.
    pad : float, optional
        Extra margin in output pixels (for kernels wider than a pixel).

    Returns
    -------
    tuple of int or None
        ``(x0, x1, y0, y1)``, half-open: the touched region is ``out[y0:y1, x0:x1]``; None if
        there is no overlap (or the pixmap is all NaN).
    """
    pm = np.asarray(pixmap)
    X, Y = pm[..., 0], pm[..., 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if not np.any(np.isfinite(X)):
            return None
        xlo, xhi = float(np.nanmin(X)), float(np.nanmax(X))
        ylo, yhi = float(np.nanmin(Y)), float(np.nanmax(Y))
        ny, nx = X.shape
        di = dj = None
        if nx > 1:  # d/di along the bottom and top rows
            di = np.abs(np.concatenate([np.diff(pm[0], axis=0), np.diff(pm[-1], axis=0)]))
        if ny > 1:  # d/dj along the left and right columns
            dj = np.abs(np.concatenate([np.diff(pm[:, 0], axis=0), np.diff(pm[:, -1], axis=0)]))
        if di is None and dj is None:
            mx = my = 0.5
        else:
            if di is None:
                di = dj
            if dj is None:
                dj = di
            mx = 0.5 * (np.nanmax(di[:, 0]) + np.nanmax(dj[:, 0]))
            my = 0.5 * (np.nanmax(di[:, 1]) + np.nanmax(dj[:, 1]))
    mx, my = float(mx) + pad, float(my) + pad
    return _box_from_extent(xlo - mx, xhi + mx, ylo - my, yhi + my, frame_shape)


def chip_bounding_box(wcs_in, shape_in, frame, frame_shape=None, *, pad=0.0, section=None):
    """Box of output pixels touched by a chip (or a section of it), from its exact edge transform.

    No pixmap is needed (for planning which chips touch which tiles); the bend of the edges
    between samples is bounded and added as margin.

    Parameters
    ----------
    wcs_in : astropy.wcs.WCS, Frame or astropy.io.fits.Header
        The chip's WCS.
    shape_in : tuple of int
        Chip shape ``(ny, nx)``.
    frame : Frame or astropy.wcs.WCS
        The output frame.
    frame_shape : tuple of int, optional
        Output shape ``(ny, nx)``; defaults to the Frame's shape or the WCS's ``pixel_shape``.
    pad : float, optional
        Extra margin in output pixels.
    section : (x0, x1, y0, y1), optional
        Half-open input pixels of the chip: the box of that section only.

    Returns
    -------
    tuple of int or None
        ``(x0, x1, y0, y1)``, half-open (``out[y0:y1, x0:x1]``); None if the chip misses the frame.

    Raises
    ------
    ValueError
        If the frame's shape is not known.
    """
    frame_shape = _shape_of(frame, frame_shape)
    if frame_shape is None:
        raise ValueError("chip_bounding_box needs the frame shape")
    origin = (0, 0)
    if section is not None:
        origin, shape_in = (section[0], section[2]), (section[3] - section[2], section[1] - section[0])
    xo, yo, bulge = _projected_edges(_fresh(wcs_in), _fresh(frame), shape_in, origin=origin)
    m = bulge + pad
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _box_from_extent(float(np.nanmin(xo)) - m, float(np.nanmax(xo)) + m,
                                float(np.nanmin(yo)) - m, float(np.nanmax(yo)) + m, frame_shape)


# --------------------------------------------------------------------------------------------
# AstroDrizzle's default output frame
# --------------------------------------------------------------------------------------------

#: Parity matrices of the HST detectors (stwcs ``wcsutil/instruments.py``): the sign flip that
#: takes detector axes to the V2/V3 frame.  Keys are INSTRUME or (INSTRUME, DETECTOR); any
#: detector not listed gets stwcs's default, :data:`_FLIP_Y`.
_FLIP_X = ((-1.0, 0.0), (0.0, 1.0))
_FLIP_Y = ((1.0, 0.0), (0.0, -1.0))
_PARITY = {("ACS", "WFC"): _FLIP_Y, ("ACS", "HRC"): _FLIP_X, ("ACS", "SBC"): _FLIP_X,
           ("WFC3", "UVIS"): _FLIP_X, ("WFC3", "IR"): _FLIP_X,
           "WFPC2": _FLIP_X, "NICMOS": _FLIP_X, "STIS": _FLIP_X}


def detector_parity(instrument, detector):
    """The parity matrix stwcs gives a chip of ``instrument``/``detector`` (2x2 tuple)."""
    inst, det = str(instrument or "").upper(), str(detector or "").upper()
    return _PARITY.get((inst, det), _PARITY.get(inst, _FLIP_Y))


@dataclass(frozen=True)
class Aperture:
    """The pointing keywords of a calibrated HST chip that fix AstroDrizzle's default orientation.

    ``pa_v3`` is the telescope roll (``PA_V3`` of the primary header, degrees); ``v2ref``,
    ``v3ref`` (arcsec) and ``theta`` (degrees) the chip's ``IDCV2REF``, ``IDCV3REF`` and
    ``IDCTHETA`` (written by ``updatewcs`` into each SCI header); ``parity`` the detector's
    parity matrix (:func:`detector_parity`).
    """

    pa_v3: float
    v2ref: float
    v3ref: float
    theta: float = 0.0
    parity: tuple = _FLIP_Y

    @classmethod
    def from_keywords(cls, pa_v3, v2ref, v3ref, theta=None, instrument="", detector=""):
        """The aperture of a chip, or None without ``IDCV2REF`` (then AstroDrizzle orients the
        frame by the CD matrix).  With ``IDCV2REF`` but no ``PA_V3`` or ``IDCV3REF``
        AstroDrizzle stops with an error; dazzle falls back to the CD matrix."""
        if v2ref is None or v3ref is None or pa_v3 is None:
            return None
        return cls(float(pa_v3), float(v2ref), float(v3ref), float(theta or 0.0),
                   detector_parity(instrument, detector))


def aperture_roll(pa_v3, dec, v2ref, v3ref):
    """Roll angle (degrees) at an aperture whose V2/V3 position is ``(v2ref, v3ref)`` arcsec,
    for a telescope roll ``pa_v3`` (position angle of V3 at the V1 axis) and the aperture's
    declination ``dec``: the spherical-triangle formula of C. Cox used by STScI's Generic
    Conversion (stwcs ``updatewcs.makewcs.troll``).  Not reduced to a range."""
    v2, v3 = math.radians(v2ref / 3600.0), math.radians(v3ref / 3600.0)
    d = math.radians(dec)
    s2, s3 = math.sin(v2), math.sin(v3)
    # rho: angular distance of the aperture from V1; beta, gamma: its direction from V1,
    # measured from V2 and from V3 (quadrant from the signs of v2, v3)
    sin_rho = math.sqrt(s2 * s2 + s3 * s3 - s2 * s2 * s3 * s3)
    rho = math.asin(sin_rho)
    beta = math.asin(s3 / sin_rho)
    if v2 < 0:
        beta = math.pi - beta
    gamma = math.asin(s2 / sin_rho)
    if v3 < 0:
        gamma = math.pi - gamma
    a = math.pi / 2.0 + math.radians(pa_v3) - beta
    b = math.atan2(math.sin(a) * math.cos(d),
                   math.sin(d) * sin_rho - math.cos(d) * math.cos(rho) * math.cos(a))
    return math.degrees(math.pi - (gamma + b))


def nominal_scale_orientation(wcs, idcscale=None, aperture=None):
    """AstroDrizzle's nominal pixel scale (arcsec), orientation (degrees) and parity of a chip.

    As stwcs ``distortion.utils.make_orthogonal_cd``.  With an :class:`Aperture` (a chip with
    ``IDCV2REF`` and ``PA_V3``): the orientation is that of the telescope roll at the aperture,
    :func:`aperture_roll` at the chip's ``CRVAL2`` plus ``IDCTHETA``, through the detector's
    parity matrix (for ACS/WFC this is the roll + 180 deg), and the parity is that of the
    matrix.  Without: the orientation is ``atan2(CD1_2, CD2_2)`` (the position angle of the
    chip's +y axis from its linear WCS, HST's ``ORIENTAT``) and the parity the sign of
    ``det CD``.  The scale is ``IDCSCALE`` when known, else ``sqrt|det CD|``.
    """
    w = _fresh(wcs)
    if isinstance(w, WCS):
        cd = np.asarray(w.pixel_scale_matrix, dtype=np.float64)
    else:   # no linear part to read: the local derivative at the centre, in degrees per pixel
        cd = _local_jacobian(w, *_centre(w, None)) / 3600.0
    det = float(np.linalg.det(cd))
    scale = float(idcscale) if idcscale else math.sqrt(abs(det)) * 3600.0
    if aperture is None:
        orient = math.degrees(math.atan2(cd[0, 1], cd[1, 1]))
        return scale, orient, (-1.0 if det < 0 else 1.0)
    dec = float(w.wcs.crval[1]) if isinstance(w, WCS) else float(_pix2world(w, *_centre(w, None))[1])
    pv = aperture_roll(aperture.pa_v3, dec, aperture.v2ref, aperture.v3ref)
    if aperture.theta:
        pv += aperture.theta
    t = math.radians(pv)
    par = np.asarray(aperture.parity, dtype=np.float64)
    m = np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]]) @ par
    orient = math.degrees(math.atan2(m[0, 1], m[1, 1]))
    return scale, orient, (-1.0 if np.linalg.det(par) < 0 else 1.0)


def _geographic_midpoint(ra, dec):
    a, d = np.radians(ra), np.radians(dec)
    x = np.mean(np.cos(d) * np.cos(a))
    y = np.mean(np.cos(d) * np.sin(a))
    z = np.mean(np.sin(d))
    return (math.degrees(math.atan2(y, x)) % 360.0,
            math.degrees(math.atan2(z, math.sqrt(x * x + y * y))))


def default_output_wcs(wcss_and_shapes, *, idcscale=None, footprint_mode="edges", aperture=None,
                       reference=0):
    """The default output frame, built the way AstroDrizzle builds it.

    ``footprint_mode="corners"`` reproduces drizzlepac 3.11 (stwcs ``output_wcs`` followed by
    ``make_perfect_cd``): the footprint is the 4 pixel-centre corners of every chip (distortion
    included); CRVAL starts at their geographic midpoint; scale and orientation come from the
    reference chip, ``wcss_and_shapes[reference]`` (:func:`nominal_scale_orientation` with
    ``idcscale`` = its ``IDCSCALE`` and ``aperture`` = its :class:`Aperture`, or None without
    ``IDCV2REF``); the size is ``ceil(max - min)`` of the corners on the tangent plane; CRPIX is
    ``n/2`` and CRVAL is moved so that the lowest corners land on pixel 0.  Pixels on the far
    edges can then hang half outside the frame.  AstroDrizzle's reference chip is the first
    chip (lowest ``EXTVER``) of the first input.

    ``footprint_mode="edges"`` (dazzle's default) does the same with points along every chip's
    outer pixel *edges* (corners at -0.5 and n-0.5, distortion bends followed), and places the
    lowest edge at -0.5, so every input pixel lies wholly inside the frame.

    Returns ``(wcs, (ny, nx))`` with a "perfect" undistorted TAN WCS.
    """
    pairs = _as_pairs(wcss_and_shapes)
    if not pairs:
        raise ValueError("default_output_wcs needs at least one chip")
    fresh = [(_fresh(w), s) for w, s in pairs]
    ras, decs = [], []
    for w, (ny, nx) in fresh:
        if footprint_mode == "corners":
            x = np.array([0.0, 0.0, nx - 1.0, nx - 1.0])
            y = np.array([0.0, ny - 1.0, ny - 1.0, 0.0])
        elif footprint_mode == "edges":
            x, y = edge_points((ny, nx), _BOUNDS_STEP)
        else:
            raise ValueError(f"footprint_mode must be 'edges' or 'corners'; got {footprint_mode!r}")
        ra, dec = _pix2world(w, x, y)
        ras.append(ra)
        decs.append(dec)
    ra = np.concatenate(ras)
    dec = np.concatenate(decs)
    world = np.column_stack([ra, dec])
    crval = _geographic_midpoint(ra, dec)

    scale, orient, par = nominal_scale_orientation(fresh[reference][0], idcscale, aperture)
    rot = math.radians(orient)
    sn, cs = math.sin(rot), math.cos(rot)
    out = WCS(naxis=2)
    out.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    out.wcs.cd = scale / 3600.0 * np.array([[par * cs, sn], [-par * sn, cs]])
    out.wcs.crval = crval
    out.wcs.crpix = [0.0, 0.0]
    out.wcs.set()
    pscale = math.hypot(out.wcs.cd[0, 0], out.wcs.cd[1, 0]) * 3600.0
    orientat = math.degrees(math.atan2(out.wcs.cd[0, 1], out.wcs.cd[1, 1]))

    tanpix = out.wcs.s2p(world, 0)["pixcrd"]
    ext = tanpix.max(axis=0) - tanpix.min(axis=0)
    if footprint_mode == "corners":
        n1, n2 = (int(math.ceil(e)) for e in ext)
    else:
        n1, n2 = (max(1, int(math.ceil(e - _SIZE_TOL))) for e in ext)
    crpix = np.array([n1 / 2.0, n2 / 2.0])
    out.wcs.crpix = crpix
    out.wcs.set()
    tanpix = out.wcs.s2p(world, 0)["pixcrd"]
    offset = 0.0 if footprint_mode == "corners" else 0.5
    newcrpix = crpix + tanpix.min(axis=0) + offset
    out.wcs.crval = out.wcs.p2s([newcrpix], 1)["world"][0]
    out.wcs.set()

    # make_perfect_cd: from the scale and orientation alone
    o = math.radians(orientat)
    out.wcs.cd = pscale / 3600.0 * np.array([[-math.cos(o), math.sin(o)], [math.sin(o), math.cos(o)]])
    out.wcs.set()
    if footprint_mode == "edges":
        # moving CRVAL is a translation on the tangent plane only to first order: make sure
        # every edge is still inside
        tp = out.wcs.s2p(world, 0)["pixcrd"]
        n1 = max(n1, int(math.ceil(tp[:, 0].max() + 0.5 - _SIZE_TOL)))
        n2 = max(n2, int(math.ceil(tp[:, 1].max() + 0.5 - _SIZE_TOL)))
    out.pixel_shape = (n1, n2)
    return out, (n2, n1)


# --------------------------------------------------------------------------------------------
# AstroDrizzle's user-defined frames (final_* / driz_sep_* parameters)
# --------------------------------------------------------------------------------------------

def _rotation(theta):
    """``[[cos t, sin t], [-sin t, cos t]]`` for ``theta`` degrees: a "perfect" CD matrix times
    this has its orientation (position angle of +y) lowered by ``theta``."""
    t = theta * np.pi / 180.0
    return np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])


def _pair_given(values, a, b, prefix):
    """True if both of ``values[a]``, ``values[b]`` are given; ValueError if only one is."""
    va, vb = values[a] is not None, values[b] is not None
    if va != vb:
        given, missing = (a, b) if va else (b, a)
        raise ValueError(f"{prefix}{given} is given without {prefix}{missing}: AstroDrizzle "
                         "needs both")
    return va


def merge_user_wcs(wcs, shape=None, *, rot=None, scale=None, outnx=None, outny=None, ra=None,
                   dec=None, crpix1=None, crpix2=None, prefix=""):
    """A frame with AstroDrizzle's ``final_*`` / ``driz_sep_*`` parameters applied to it, by
    AstroDrizzle's rule (drizzlepac ``wcs_functions.mergeWCS``).

    ``wcs`` (with ``shape`` ``(ny, nx)`` or its ``pixel_shape``) is the default frame or the
    reference image's.  Its pixel scale and orientation are read from its CD matrix; then:

    * ``scale`` (arcsec; ignored within 10 ulp of the frame's): the CD matrix is multiplied by
      ``scale / old``; without ``rot`` and ``outnx/outny`` the size becomes
      ``ceil(n * old / scale)`` and ``CRPIX`` ``1 + (CRPIX - 1) * old / scale``.
    * ``rot`` (degrees East of North of the +y axis): the CD matrix is rotated by
      ``orientation - rot``; without ``outnx/outny`` the size is the bounding box of the old
      frame's outer pixel edges turned (and scaled) about ``CRPIX``, and ``CRPIX`` is put so
      that box starts at the frame's edge.
    * ``outnx, outny`` (both or neither): the size; ``CRPIX`` then defaults to the centre,
      ``((n + 1) / 2)``, so the old ``CRVAL`` is the new centre.
    * ``crpix1, crpix2`` (both or neither): ``CRPIX``.
    * ``ra, dec`` (both or neither): ``CRVAL`` only -- ``CRPIX`` and the size stay, so part of
      the inputs can fall outside the frame.

    Half a pair raises ValueError (its message names ``prefix`` + the parameter).  Returns
    ``(wcs, (ny, nx))``.
    """
    w = _fresh(wcs)
    shape = _shape_of(wcs, shape)
    if shape is None:
        raise ValueError("merge_user_wcs needs the frame's shape")
    values = dict(rot=rot, scale=scale, outnx=outnx, outny=outny, ra=ra, dec=dec,
                  crpix1=crpix1, crpix2=crpix2)
    if all(v is None for v in values.values()):
        w.pixel_shape = (shape[1], shape[0])
        return w, (int(shape[0]), int(shape[1]))
    new_crval = _pair_given(values, "ra", "dec", prefix)
    new_crpix = _pair_given(values, "crpix1", "crpix2", prefix)
    new_size = _pair_given(values, "outnx", "outny", prefix)

    cd = np.array(w.wcs.cd if w.wcs.has_cd() else w.pixel_scale_matrix, dtype=np.float64)
    pscale = math.sqrt(cd[0, 0] ** 2 + cd[1, 0] ** 2) * 3600.0
    orientat = math.degrees(math.atan2(cd[0, 1], cd[1, 1]))
    ratio = None
    if scale is not None and not np.isclose(scale, pscale, rtol=10.0 * np.finfo(float).eps,
                                            atol=100.0 * np.finfo(float).tiny):
        ratio = pscale / float(scale)
    turn = None if rot is None or orientat - float(rot) == 0.0 else orientat - float(rot)

    ny, nx = int(shape[0]), int(shape[1])
    crpix = np.array([crpix1, crpix2], dtype=np.float64) if new_crpix else None
    if new_size:
        # AstroDrizzle rounds half away from zero
        nx, ny = (int(math.copysign(math.floor(abs(v) + 0.5), v)) for v in (outnx, outny))
        if nx < 1 or ny < 1:
            raise ValueError(f"{prefix}outnx/{prefix}outny: the frame must be at least 1x1")
        if crpix is None:
            crpix = np.array([(nx + 1.0) / 2.0, (ny + 1.0) / 2.0])
    elif turn is not None:
        corners = np.array([[0.5, 0.5], [nx + 0.5, 0.5], [0.5, ny + 0.5],
                            [nx + 0.5, ny + 0.5]]) - w.wcs.crpix
        if ratio is not None:
            corners *= ratio
        turned = np.dot(corners, _rotation(turn))
        lo, hi = turned.min(axis=0), turned.max(axis=0)
        nx, ny = (max(1, int(np.ceil(h - lo_))) for h, lo_ in zip(hi, lo))
        if crpix is None:
            crpix = 0.5 - lo
    elif ratio is not None:
        nx, ny = max(1, int(np.ceil(ratio * nx))), max(1, int(np.ceil(ratio * ny)))
        if crpix is None:
            crpix = 1.0 + ratio * (w.wcs.crpix - 1.0)

    if ratio is not None:
        cd = cd / ratio
    if turn is not None:
        cd = np.dot(cd, _rotation(turn))
    if not w.wcs.has_cd():
        w.wcs.pc, w.wcs.cdelt = np.eye(2), [1.0, 1.0]
    w.wcs.cd = cd
    if crpix is not None:
        w.wcs.crpix = crpix
    if new_crval:
        w.wcs.crval = [float(ra), float(dec)]
    w.wcs.set()
    w.pixel_shape = (nx, ny)
    return w, (ny, nx)


def astrodrizzle_output_wcs(wcss_and_shapes=(), *, reference=0, idcscale=None, aperture=None,
                            refimage=None, prefix="", **user):
    """AstroDrizzle's output frame for one drizzle step, exactly (drizzlepac
    ``wcs_functions.make_outputwcs``): the default frame (:func:`default_output_wcs` with
    ``footprint_mode="corners"``, oriented by the reference chip ``wcss_and_shapes[reference]``
    with its ``idcscale`` and ``aperture``), or the ``refimage``'s frame, with the ``user``
    parameters (``rot, scale, outnx, outny, ra, dec, crpix1, crpix2``; None = not given)
    applied by :func:`merge_user_wcs`.  Returns ``(wcs, (ny, nx))``."""
    if refimage:
        w, shape = _from_refimage(refimage, rot=None, scale=None, outnx=None, outny=None,
                                  ra=None, dec=None, crpix1=None, crpix2=None)
    else:
        w, shape = default_output_wcs(wcss_and_shapes, idcscale=idcscale, aperture=aperture,
                                      reference=reference, footprint_mode="corners")
    return merge_user_wcs(w, shape, prefix=prefix, **user)
