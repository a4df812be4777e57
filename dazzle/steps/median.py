"""AstroDrizzle step 4, "create median": combine the single-drizzled images block by block.

Inputs are the products of step 3 (:mod:`dazzle.steps.driz_separate`): per exposure
``<root>_single_sci.fits`` (count rate, e-/s) and ``<root>_single_wht.fits`` covering only the
exposure's footprint box of the output frame (header ``DZ_X0``/``DZ_Y0``: the box's 0-based
offset; a file without them is taken to start at (0, 0), i.e. a whole-frame drizzlepac image).

Plain functions, no dask:

* :class:`Piece` / :func:`describe_piece` -- a small picklable description of one exposure's
  pair of files: paths, box ``(x0, x1, y0, y1)`` (half-open, frame pixels), ``sky``, ``rn2``,
  ``exptime`` and ``wht_mean``, the mean weight used by ``combine_maskpt`` (computed once, the
  weight file streamed in row chunks).
* :func:`median_block` -- the median of one block ``(x0, x1, y0, y1)`` of the frame from all
  pieces: only the pieces that overlap the block are opened and only their overlapping
  sub-arrays are read (memory-mapped slices), so a task's memory is about
  ``block pixels x overlapping pieces x 9 bytes``, never the whole stack.  Blocks tile the
  frame with results bit-identical to one whole-frame block.
* :func:`median_image` / :func:`frame_blocks` -- every block of a frame, serially or on a few
  threads (the kernel releases the GIL), for callers without a scheduler and for tests.
* :func:`block_bytes` / :func:`choose_block_size` -- a task's memory for a block and the
  largest block side that keeps ``threads`` concurrent tasks within a memory budget.

Per block, image by image (pieces in the order given: that is the stack order, which matters
for the ``i`` types' fill value and for float32 sums):

* pixels outside the piece's box, and pixels with weight 0 (or non-finite), are *absent*:
  ``data = 0, weight = 0, usable = False`` -- what a whole-frame drizzlepac single image holds
  there with the default fill value;
* ``median_newmasks=True``: a present pixel is usable unless
  ``wht < combine_maskpt * wht_mean`` (compared in float64, as drizzlepac), where ``wht_mean``
  is the float32 mean of the image's weights ``>= 1e-8`` (stsci.imagestats' ``ImageStats(wht,
  lower=1e-8, nclip=0).mean``; 0 when there is none) over the whole image;
* ``median_newmasks=False``: every present pixel is usable;
* then :func:`dazzle.kernels.combine.combine_stack` combines the stack (see its module for
  every type's exact formula).  minmed's noise model, in electrons, per pixel (drizzlepac
  ``minmed.min_med``, images in e-/s, weights W_i ~ exposure time)::

      T = sum_i W_i                       (all images, masked or not; float32)
      B = sum_i W_i * sky_i / exptime_i   (effective sky, e-; float64)
      R = sum_i usable_i * rn2_i          (read noise^2, e-^2; float64)
      sigma = sqrt(max(med*T + B + R, 0))
      out = min  where  min*T < med*T - nsigma*sigma  (nsigma2 within combine_grow of a pixel
                                                       flagged with nsigma1), else med

  with ``sky_i`` the sky subtracted from exposure i in **electrons** per input pixel (MDRIZSKY
  times the chip's conversion to electrons -- gain for counts, 1 for electrons; the lowest over
  the exposure's chips), ``rn2_i`` the mean over its chips of the read noise squared (e-^2) and
  ``exptime_i`` its EXPTIME (s).  med = median with nhigh=1 (mean when the association has
  exactly two images), min = lowest usable value.
* Pixels with no usable value (outside every piece, or masked everywhere) are 0, as drizzlepac.

Parameters (AstroDrizzle names and defaults): ``median_newmasks=True``,
``combine_maskpt=0.3``, ``combine_type="minmed"`` (``iminmed``, ``median``, ``imedian``,
``mean``, ``imean``, ``sum``), ``combine_nsigma="4 3"``, ``combine_nlow=0``,
``combine_nhigh=0``, ``combine_lthresh=None``, ``combine_hthresh=None``, ``combine_grow=1``
(used by (i)minmed only, as drizzlepac), ``combine_bufsize`` (accepted and ignored: dazzle's
block size takes the role of drizzlepac's row-section buffer).

Deliberate differences from drizzlepac 3.11 (besides the kernel's, listed in
:mod:`dazzle.kernels.combine`):

* Pixels with zero weight never enter the combination; drizzlepac combines their fill value
  (0) as data when ``median_newmasks=False`` or ``combine_maskpt=0``.
* ``median_newmasks=False`` still excludes absent pixels from minmed's minimum and read-noise
  sum and sets pixels without data to 0; drizzlepac then uses no mask at all.
* ``combine_lthresh``/``combine_hthresh`` are in the single-drizzled units (e-/s), not rescaled.
* Memory: bounded by the block, not by the frame (drizzlepac holds the whole median array and
  re-opens all 2N files for every section of rows).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from astropy.io import fits

from dazzle.kernels.combine import combine_stack, stack_piece
from dazzle.steps.common import StepSettings

__all__ = ["Piece", "MedianSettings", "describe_piece", "describe_arrays", "weight_mean", "median_block", "reaches",
           "median_image", "frame_blocks", "block_bytes", "choose_block_size"]

# stsci.imagestats' computeMean takes its lower limit as a C float
_WHT_LOWER = np.float32(1e-8)
# row chunk of the streamed weight mean (bytes)
_CHUNK_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Piece:
    """One exposure's single-drizzled pair, as the median needs it (small and picklable)."""

    sci: object                               # path of <root>_single_sci.fits (e-/s), or the array
    wht: object                               # path of <root>_single_wht.fits, or the array
    box: tuple[int, int, int, int]            # (x0, x1, y0, y1) in the frame, half-open
    sky: float                                # sky subtracted, e- per input pixel
    rn2: float                                # read noise squared, e-^2
    exptime: float                            # s
    wht_mean: float                           # mean of the weights >= 1e-8 (float32), 0 if none
    ext: int = 0                              # HDU holding the image in both files

    @property
    def shape(self) -> tuple[int, int]:
        return (self.box[3] - self.box[2], self.box[1] - self.box[0])


@dataclass(frozen=True)
class MedianSettings(StepSettings):
    """The median step's parameters (``combine_*``, ``median_newmasks``), from validated
    parameters (:meth:`from_params`, or :meth:`of` for the defaults with a few changed)."""

    combine_type: str
    newmasks: bool
    maskpt: float
    nsigma: tuple[float, float]
    nlow: int
    nhigh: int
    lthresh: float | None
    hthresh: float | None
    grow: int                          # 0 unless combine_type is (i)minmed
    bufsize: float | None              # accepted, unused

    @classmethod
    def from_params(cls, params) -> "MedianSettings":
        ctype = params["combine_type"]
        return cls(combine_type=ctype, newmasks=params["median_newmasks"], maskpt=params["combine_maskpt"],
                   nsigma=params["combine_nsigma"], nlow=params["combine_nlow"], nhigh=params["combine_nhigh"],
                   lthresh=params["combine_lthresh"], hthresh=params["combine_hthresh"],
                   grow=params["combine_grow"] if "minmed" in ctype else 0, bufsize=params["combine_bufsize"])

    @property
    def halo(self) -> int:
        """Pixels of context needed on each side of a block (minmed's grow)."""
        return self.grow


# ---------------------------------------------------------------------------
# Pieces
# ---------------------------------------------------------------------------


def _image_ext(hdul) -> int:
    for k, hdu in enumerate(hdul):
        if hdu.header.get("NAXIS", 0) == 2 and hdu.header.get("NAXIS1", 0) > 0:
            return k
    raise ValueError("no 2-D image")


def weight_mean(path, ext: int = 0, *, chunk_bytes: int = _CHUNK_BYTES) -> float:
    """Mean of a weight image's pixels ``>= 1e-8``, streamed in row chunks.

    The file is never loaded whole.

    Parameters
    ----------
    path : str or os.PathLike
        FITS file of the weight image.
    ext : int, optional
        HDU holding the image.
    chunk_bytes : int, optional
        Size of a chunk of rows (bytes, as float32).

    Returns
    -------
    float
        The mean, rounded to float32 (stsci.imagestats' ``ImageStats(wht, lower=1e-8,
        nclip=0).mean``); 0.0 when no pixel is ``>= 1e-8``.
    """
    with fits.open(path, memmap=False) as hdul:
        hdu = hdul[ext]
        return _chunked_weight_mean(hdu.shape, lambda r0, r1: hdu.section[r0:r1, :], chunk_bytes)


def _chunked_weight_mean(shape, rows_of, chunk_bytes=_CHUNK_BYTES) -> float:
    """:func:`weight_mean` over the row chunks ``rows_of(r0, r1)`` of an image of ``shape``
    (the same chunks, so the same bits, for a file and for an array in memory)."""
    total = 0.0
    count = 0
    ny, nx = shape
    rows = max(1, chunk_bytes // max(1, 4 * nx))
    for r0 in range(0, ny, rows):
        chunk = np.asarray(rows_of(r0, min(ny, r0 + rows)), dtype=np.float32)
        sel = chunk[chunk >= _WHT_LOWER]
        count += sel.size
        total += float(np.sum(sel, dtype=np.float64))
        del chunk, sel
    if count == 0:
        return 0.0
    return float(np.float32(total / count))


def describe_piece(sci_path, wht_path, *, sky, rn2, exptime) -> Piece:
    """Describe one exposure's single-drizzled pair (reads the headers and streams the weights).

    Parameters
    ----------
    sci_path, wht_path : str or os.PathLike
        ``<root>_single_sci.fits`` and ``<root>_single_wht.fits``; the box offset is read from
        the SCI header's ``DZ_X0``/``DZ_Y0`` (0 if absent).
    sky : float
        Sky subtracted from the exposure, e- per input pixel.
    rn2 : float
        Read noise squared (mean over chips), e-^2.
    exptime : float
        Exposure time, s.

    Returns
    -------
    Piece

    Raises
    ------
    ValueError
        If the files have no 2-D image, their shapes differ, or ``exptime`` is not > 0.
    """
    sci_path, wht_path = os.fspath(sci_path), os.fspath(wht_path)
    with fits.open(sci_path, memmap=False, lazy_load_hdus=False) as h:
        ext = _image_ext(h)
        hdr = h[ext].header
        nx, ny = int(hdr["NAXIS1"]), int(hdr["NAXIS2"])
        x0, y0 = int(hdr.get("DZ_X0", 0)), int(hdr.get("DZ_Y0", 0))
    with fits.open(wht_path, memmap=False) as h:
        wshape = (int(h[ext].header.get("NAXIS2", -1)), int(h[ext].header.get("NAXIS1", -1)))
    if wshape != (ny, nx):
        raise ValueError(f"{wht_path}: weight image shape {wshape} differs from {sci_path}'s {(ny, nx)}")
    exptime = float(exptime)
    if not exptime > 0:
        raise ValueError(f"{sci_path}: exptime must be > 0, got {exptime}")
    return Piece(sci=sci_path, wht=wht_path, box=(x0, x0 + nx, y0, y0 + ny), sky=float(sky),
                 rn2=float(rn2), exptime=exptime, wht_mean=weight_mean(wht_path, ext), ext=ext)


def describe_arrays(sci, wht, box, *, sky, rn2, exptime) -> Piece:
    """:func:`describe_piece` for a single-drizzled pair kept in memory (``in_memory``).

    Parameters
    ----------
    sci, wht : 2-D array
        Single-drizzled science (e-/s) and weight, converted to float32, of shape
        ``(y1 - y0, x1 - x0)``.
    box : tuple of int
        ``(x0, x1, y0, y1)``, half-open, frame pixels.
    sky, rn2, exptime : float
        As in :func:`describe_piece` (e-, e-^2, s).

    Returns
    -------
    Piece
        Holding the arrays themselves in place of paths.

    Raises
    ------
    ValueError
        If the shapes do not match the box, or ``exptime`` is not > 0.
    """
    sci, wht = np.asarray(sci, dtype=np.float32), np.asarray(wht, dtype=np.float32)
    if wht.shape != sci.shape or sci.shape != (box[3] - box[2], box[1] - box[0]):
        raise ValueError(f"single-drizzled arrays {sci.shape}, {wht.shape} do not match the box {box}")
    exptime = float(exptime)
    if not exptime > 0:
        raise ValueError(f"exptime must be > 0, got {exptime}")
    return Piece(sci=sci, wht=wht, box=tuple(int(v) for v in box), sky=float(sky), rn2=float(rn2),
                 exptime=exptime, wht_mean=_chunked_weight_mean(wht.shape, lambda r0, r1: wht[r0:r1]))


def _read_region(path, ext, r0, r1, c0, c1) -> np.ndarray:
    """``image[r0:r1, c0:c1]`` as native float32, reading only that region (``path`` may be
    the image itself, kept in memory)."""
    if isinstance(path, np.ndarray):
        return np.array(path[r0:r1, c0:c1], dtype=np.float32, copy=True)
    with fits.open(path, memmap=True) as hdul:
        hdu = hdul[ext]
        h = hdu.header
        plain = (not isinstance(hdu, fits.CompImageHDU) and h.get("BSCALE", 1) == 1
                 and h.get("BZERO", 0) == 0)
        if plain:
            view = hdu.data[r0:r1, c0:c1]          # memory-mapped: only these pages are read
            out = np.array(view, dtype=np.float32, copy=True)
            del view
        else:
            out = np.array(hdu.section[r0:r1, c0:c1], dtype=np.float32, copy=True)
        del hdu
    return out


def frame_blocks(shape, block_size=1024):
    """Blocks tiling a frame, row of blocks by row of blocks.

    Parameters
    ----------
    shape : tuple of int
        Frame shape ``(ny, nx)``.
    block_size : int or tuple of int, optional
        Block side (pixels), or ``(by, bx)``; the last blocks of a row or column are smaller.

    Returns
    -------
    list of tuple of int
        ``(x0, x1, y0, y1)``, half-open, frame pixels.

    Raises
    ------
    ValueError
        If a block side is < 1.
    """
    ny, nx = int(shape[0]), int(shape[1])
    by, bx = (block_size, block_size) if np.isscalar(block_size) else block_size
    by, bx = int(by), int(bx)
    if by < 1 or bx < 1:
        raise ValueError("block_size must be >= 1")
    return [(x0, min(nx, x0 + bx), y0, min(ny, y0 + by))
            for y0 in range(0, ny, by) for x0 in range(0, nx, bx)]


# bytes per pixel of a block: per overlapping piece (data f32 + usable u8 + weight f32), and
# fixed (minmed's per-pixel planes 21, one piece's read temporaries <= 30, the result 4)
_BYTES_PER_PIECE = 9
_BYTES_FIXED = 55


def block_bytes(n_overlap, block_shape, grow=1) -> int:
    """Peak memory (approximate) of :func:`median_block` for one block.

    Parameters
    ----------
    n_overlap : int
        Pieces overlapping the block.
    block_shape : int or tuple of int
        Block shape ``(ny, nx)``, or one side of a square block.
    grow : int, optional
        Halo (pixels) read on each side (minmed's ``combine_grow``).

    Returns
    -------
    int
        Bytes.
    """
    ny, nx = (block_shape, block_shape) if np.isscalar(block_shape) else block_shape
    return int((ny + 2 * grow) * (nx + 2 * grow) * (_BYTES_PER_PIECE * n_overlap + _BYTES_FIXED))


def choose_block_size(n_overlap, memory_bytes, *, threads=1, grow=1, lo=64, hi=4096) -> int:
    """The largest square block side that keeps concurrent median tasks within a memory budget.

    This is what ``combine_bufsize`` bounds in drizzlepac.

    Parameters
    ----------
    n_overlap : int
        Most pieces overlapping one block.
    memory_bytes : float
        Memory budget, bytes, for all ``threads`` tasks together.
    threads : int, optional
        Concurrent :func:`median_block` tasks.
    grow : int, optional
        Halo (pixels) read on each side.
    lo, hi : int, optional
        Bounds of the side (pixels).

    Returns
    -------
    int
        A multiple of 64 within ``[lo, hi]`` (pixels).
    """
    per_px = _BYTES_PER_PIECE * max(1, int(n_overlap)) + _BYTES_FIXED
    side = int((memory_bytes / max(1, int(threads)) / per_px) ** 0.5) - 2 * int(grow)
    side = (side // 64) * 64
    return int(min(hi, max(lo, side)))


def reaches(box, block, halo=0) -> bool:
    """Whether a piece's box overlaps a block widened by ``halo`` pixels on each side.

    These are the pieces :func:`median_block` reads.

    Parameters
    ----------
    box, block : tuple of int
        ``(x0, x1, y0, y1)``, half-open, frame pixels.
    halo : int, optional
        Widening of the block (pixels).

    Returns
    -------
    bool
    """
    return (box[0] < block[1] + halo and box[1] > block[0] - halo
            and box[2] < block[3] + halo and box[3] > block[2] - halo)


def median_block(pieces, block, settings: MedianSettings, *, nimages=None) -> np.ndarray:
    """The combined (median) image over one block of the frame.

    Parameters
    ----------
    pieces : sequence of Piece
        The association's single-drizzled images, in stack order.  Only those that overlap
        the block, widened by ``combine_grow`` for minmed, are read: the caller may pass just
        those (:func:`reaches`).
    block : (x0, x1, y0, y1)
        Half-open, frame pixels.
    settings : MedianSettings
    nimages : int, optional
        Images of the whole association (default ``len(pieces)``): minmed's two-image rule and
        the ``combine_nlow + combine_nhigh`` check count them all.

    Returns
    -------
    2-D float32 array
        Shape ``(y1 - y0, x1 - x0)``.
    """
    s = settings
    pieces = list(pieces)
    nimages = len(pieces) if nimages is None else int(nimages)
    x0, x1, y0, y1 = (int(v) for v in block)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"empty block {block}")
    g = s.halo
    ex0, ex1, ey0, ey1 = x0 - g, x1 + g, y0 - g, y1 + g
    if not nimages:
        raise ValueError("no pieces to combine")
    if "minmed" not in s.combine_type and nimages - s.nlow - s.nhigh < 1:
        raise ValueError(f"Rejecting all pixels: combine_nlow ({s.nlow}) + combine_nhigh ({s.nhigh}) "
                         f">= number of images ({nimages})")
    sel = [p for p in pieces if reaches(p.box, (x0, x1, y0, y1), g)]
    out_shape = (y1 - y0, x1 - x0)
    if not sel:
        return np.zeros(out_shape, dtype=np.float32)
    minmed = "minmed" in s.combine_type
    n, ny, nx = len(sel), ey1 - ey0, ex1 - ex0
    data = np.zeros((n, ny, nx), dtype=np.float32)
    good = np.zeros((n, ny, nx), dtype=np.uint8)
    wht = np.zeros((n, ny, nx), dtype=np.float32) if minmed else None
    for j, p in enumerate(sel):
        ix0, ix1 = max(ex0, p.box[0]), min(ex1, p.box[1])
        iy0, iy1 = max(ey0, p.box[2]), min(ey1, p.box[3])
        r0, r1, c0, c1 = iy0 - p.box[2], iy1 - p.box[2], ix0 - p.box[0], ix1 - p.box[0]
        w = _read_region(p.wht, p.ext, r0, r1, c0, c1)
        d = _read_region(p.sci, p.ext, r0, r1, c0, c1)
        # present = non-zero finite weight; usable = present and, with newmasks, not
        # float64(wht) < maskpt * wht_mean
        stack_piece(d, w, s.maskpt * p.wht_mean if s.newmasks else 0.0, s.newmasks, data, good,
                    wht, j, iy0 - ey0, ix0 - ex0)
        del w, d
    res = combine_stack(data, good, combine_type=s.combine_type, nlow=s.nlow, nhigh=s.nhigh,
                        lthresh=s.lthresh, hthresh=s.hthresh, nsigma=s.nsigma, grow=g,
                        sky=[p.sky for p in sel], rn2=[p.rn2 for p in sel],
                        exptime=[p.exptime for p in sel], weights=wht, nimages=nimages)
    del data, good, wht
    if g == 0:
        return res
    return np.ascontiguousarray(res[g:g + out_shape[0], g:g + out_shape[1]])


def median_image(pieces, shape, settings: MedianSettings, *, block_size=1024, threads=1,
                 out=None) -> np.ndarray:
    """The whole combined image of a frame, block by block (see :func:`median_block`).

    Same result for any block size and thread count (bit-identical).

    Parameters
    ----------
    pieces : sequence of Piece
        The association's single-drizzled images, in stack order.
    shape : tuple of int
        Frame shape ``(ny, nx)``.
    settings : MedianSettings
        The step's parameters.
    block_size : int or tuple of int, optional
        Block side (pixels), or ``(by, bx)``.
    threads : int, optional
        Threads combining blocks concurrently (the kernel releases the GIL).
    out : 2-D float32 array, optional
        Array of ``shape`` to fill in place (default: a new one).

    Returns
    -------
    2-D float32 array
        ``out``, e-/s; 0 where no piece has a usable value.
    """
    s = settings
    pieces = list(pieces)
    ny, nx = int(shape[0]), int(shape[1])
    if out is None:
        out = np.zeros((ny, nx), dtype=np.float32)
    blocks = frame_blocks((ny, nx), block_size)

    def one(b):
        out[b[2]:b[3], b[0]:b[1]] = median_block(pieces, b, s)
        return b

    if threads <= 1:
        for b in blocks:
            one(b)
    else:
        with ThreadPoolExecutor(max_workers=int(threads)) as ex:
            for _ in ex.map(one, blocks):
                pass
    return out
