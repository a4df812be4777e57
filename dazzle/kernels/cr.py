"""Cosmic-ray kernels of AstroDrizzle's ``driz_cr`` step: arrays in, arrays out.

No FITS, no units, no parameters parsing: :mod:`dazzle.steps.driz_cr` turns a chip and its
blotted median into the numbers these kernels take.  Every kernel is ``@njit(nogil=True,
cache=True)``, allocates its outputs (and at most a few whole-array or per-row scratch buffers)
once per call, never per pixel, and shares no state, so chips can be processed on concurrent
threads.

Public functions (Python wrappers that check arguments, allocate, and call the Numba cores):

* :func:`derivative`     -- ``D``: the largest absolute difference to the 4 nearest neighbours
  (drizzlepac ``quickDeriv.qderiv``), with correct edges or drizzlepac's (``legacy_edges``).
* :func:`cr_test`        -- the two-pass test, then ``driz_cr_grow`` and ``driz_cr_ctegrow``;
  returns the good-pixel mask (uint8, 1 = good, 0 = cosmic ray).
* :func:`grow_mask`      -- ``driz_cr_grow`` alone.
* :func:`cte_grow_mask`  -- ``driz_cr_ctegrow`` alone.

The test (drizzlepac ``drizCR._driz_cr``; all quantities in electrons)::

    s = cf * sci            b = cf * blot            D = cf * derivative(blot)
    delta = |s - b|
    N     = sqrt(g * |b + bg| + rn**2)
    pass1 = delta <= scale1 * D + snr1 * N / g
    pass2 = delta <= scale2 * D + snr2 * N / g
    good  = pass2 OR (pass1 holds on every pixel of the 3x3 box around the pixel)

i.e. a pixel is a cosmic ray when it fails pass 2 *and* it or one of its 8 neighbours fails
pass 1 (drizzlepac convolves the *pass-1 good* mask with a 3x3 box of ones, ``boundary='symm'``,
and keeps pixels whose sum is 9).  ``cf`` converts the data to electrons, ``g`` is the effective
gain of the noise model (1 for data in electrons), ``rn`` the read noise (e-) and ``bg`` an extra
background (e-) added inside the noise term (drizzlepac: ``MDRIZSKY * cf``; dazzle's default 0,
see :mod:`dazzle.steps.driz_cr`).

Then (drizzlepac convolves the CR mask of the test above, 1 = good, with two kernels; both
results are ANDed)::

    grow:     good &= every pixel of the grow x grow box is good   (rows and columns
              -(grow//2) .. (grow-1)//2 about the pixel: scipy's 'same' alignment of an even box;
              grow=1 (or 0) is a no-op)
    ctegrow:  cte_dir = +1: a pixel is bad if any of the ctegrow pixels ABOVE it in its column
              (rows y+1 .. y+ctegrow) is a cosmic ray -- the tail runs to lower row numbers;
              cte_dir = -1: ... any of the ctegrow pixels BELOW it (rows y-ctegrow .. y-1) --
              the tail runs to higher row numbers;  cte_dir = 0 or ctegrow = 0: no tail.

Boundary handling.  For the 3x3 and grow boxes scipy's symmetric reflection only duplicates
pixels that are already inside the box, so "ignore pixels outside the image" gives identical
results; that is what is done.  Two edge behaviours of drizzlepac differ from that and are
reproduced only with ``legacy_edges=True``:

* the derivative (``qderiv``) fills shifted copies with 0 and its slices are one pixel short,
  so every pixel of the first row, the last two rows, the first column and the last two columns
  (0-based rows ``0, ny-2, ny-1``, columns ``0, nx-2, nx-1``) compares with at least one 0 and
  gets ``D >= |b|``: a huge derivative there, and cosmic rays on those rows/columns are missed.
  By default missing neighbours are simply left out (a corner has 2 neighbours, an edge 3; a
  1x1 image has ``D = 0``).
* the one-sided CTE kernel reflects at the image edge, so near the edge a cosmic ray can mask
  pixels on the wrong side of it (up to ``ctegrow - 1`` rows).  By default the tail stops at
  the edge.

drizzlepac with ``cte_dir = 0`` and ``ctegrow > 0`` convolves with an all-zero kernel and so
flags *every* pixel; dazzle (in both modes) masks no tail.

Non-finite values and untested pixels (not in drizzlepac, whose inputs are always finite):
pixels flagged in ``untested`` (DQ-bad pixels, when the caller asks) and pixels whose ``sci`` or
``blot`` is not finite are never flagged and never make a neighbour a cosmic ray (they pass
both tests); non-finite blot values are left out of their neighbours' derivative (like a missing
neighbour).  Pixels flagged in ``noseed`` (known bad: the pipeline passes DQ-bad and statically
masked pixels) are tested and flagged as usual, but do not make a good neighbour a cosmic ray.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["derivative", "cr_test", "grow_mask", "cte_grow_mask"]


# --------------------------------------------------------------------------------------------
# Derivative
# --------------------------------------------------------------------------------------------

@njit(nogil=True, cache=True)
def _derivative(b, out, legacy):
    ny, nx = b.shape
    for j in range(ny):
        for i in range(nx):
            v = np.float64(b[j, i])
            d = 0.0
            if not math.isfinite(v):
                out[j, i] = 0.0
                continue
            if legacy:
                # drizzlepac qderiv: each shifted copy is a zero-filled array whose slices cover
                # rows 0..ny-2 (left/right), 1..ny-2 (down) or 0..ny-3 (up) and columns
                # 1..nx-2 (left), 0..nx-3 (right) or 0..nx-2 (up/down); elsewhere the
                # "neighbour" is 0.  (Non-finite neighbours are left out, as by default;
                # numpy would propagate them.)
                for k in range(4):
                    if k == 0:
                        inside = j <= ny - 2 and 1 <= i <= nx - 2
                        jj, ii = j, i - 1
                    elif k == 1:
                        inside = j <= ny - 2 and i <= nx - 3
                        jj, ii = j, i + 1
                    elif k == 2:
                        inside = 1 <= j <= ny - 2 and i <= nx - 2
                        jj, ii = j - 1, i
                    else:
                        inside = j <= ny - 3 and i <= nx - 2
                        jj, ii = j + 1, i
                    w = np.float64(b[jj, ii]) if inside else 0.0
                    if math.isfinite(w):
                        t = abs(v - w)
                        if t > d:
                            d = t
            else:
                # neighbours outside the image or not finite are left out
                if i > 0:
                    w = np.float64(b[j, i - 1])
                    if math.isfinite(w):
                        t = abs(v - w)
                        if t > d:
                            d = t
                if i < nx - 1:
                    w = np.float64(b[j, i + 1])
                    if math.isfinite(w):
                        t = abs(v - w)
                        if t > d:
                            d = t
                if j > 0:
                    w = np.float64(b[j - 1, i])
                    if math.isfinite(w):
                        t = abs(v - w)
                        if t > d:
                            d = t
                if j < ny - 1:
                    w = np.float64(b[j + 1, i])
                    if math.isfinite(w):
                        t = abs(v - w)
                        if t > d:
                            d = t
            out[j, i] = d


def _as_2d(name, a):
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {a.shape}")
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be numeric, got {a.dtype}")
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    return np.ascontiguousarray(a)


def derivative(blot, *, legacy_edges=False):
    """Absolute derivative of an image: ``D[y, x] = max |b[y, x] - b[nbr]|`` over the 4 nearest
    neighbours (drizzlepac ``quickDeriv.qderiv``).

    Parameters
    ----------
    blot : 2-D array
        The image (the blotted median).
    legacy_edges : bool
        False (default): neighbours outside the image are left out.  True: drizzlepac's
        behaviour -- rows ``0, ny-2, ny-1`` and columns ``0, nx-2, nx-1`` compare with zeros
        (see the module notes), so ``D >= |b|`` there.

    Returns
    -------
    numpy.ndarray
        float32, the image's shape (computed in float64, as qderiv).
    """
    b = _as_2d("blot", blot)
    out = np.empty(b.shape, dtype=np.float32)
    if b.size:
        _derivative(b, out, bool(legacy_edges))
    return out


# --------------------------------------------------------------------------------------------
# Two-pass test
# --------------------------------------------------------------------------------------------

@njit(nogil=True, cache=True)
def _passes(sci, blot, deriv, untested, use_untested, cf, g, rn, bg, snr1, snr2, scale1,
            scale2, flags):
    """flags bit 0: pass-1 good, bit 1: pass-2 good."""
    ny, nx = sci.shape
    rn2 = rn * rn
    for j in range(ny):
        for i in range(nx):
            s = np.float64(sci[j, i])
            b = np.float64(blot[j, i])
            if (use_untested and untested[j, i] != 0) or not (math.isfinite(s)
                                                             and math.isfinite(b)):
                flags[j, i] = 3
                continue
            s *= cf
            b *= cf
            dd = cf * np.float64(deriv[j, i])
            delta = abs(s - b)
            noise = math.sqrt(g * abs(b + bg) + rn2) / g
            f = 0
            if delta <= scale1 * dd + snr1 * noise:
                f = 1
            if delta <= scale2 * dd + snr2 * noise:
                f |= 2
            flags[j, i] = f


@njit(nogil=True, cache=True)
def _combine(flags, noseed, use_noseed, out):
    """good = pass2 | (pass1 on the whole 3x3 box, pixels outside the image left out); for a
    pixel not marked in ``noseed``, the neighbours marked in it do not count."""
    ny, nx = flags.shape
    for j in range(ny):
        j0 = j - 1 if j > 0 else 0
        j1 = j + 1 if j < ny - 1 else ny - 1
        for i in range(nx):
            if flags[j, i] & 2:
                out[j, i] = 1
                continue
            i0 = i - 1 if i > 0 else 0
            i1 = i + 1 if i < nx - 1 else nx - 1
            ok = 1
            for jj in range(j0, j1 + 1):
                for ii in range(i0, i1 + 1):
                    if (flags[jj, ii] & 1) == 0:
                        if not (use_noseed and noseed[jj, ii] != 0 and noseed[j, i] == 0):
                            ok = 0
            out[j, i] = ok


@njit(nogil=True, cache=True, inline="always")
def _window(k, lo, hi, n):
    """The half-open range ``[k - lo, k + hi + 1)`` clipped to ``[0, n)``."""
    return max(k - lo, 0), min(k + hi + 1, n)


@njit(nogil=True, cache=True)
def _grow(good, grow, out, cum, rowbuf):
    """out = 1 where every pixel of the grow x grow box (offsets -(grow//2)..(grow-1)//2) is
    good; pixels outside the image are left out.  cum: int32 (ny + 1, nx) scratch; rowbuf:
    int32 (nx + 1,) scratch.  Row-major throughout."""
    ny, nx = good.shape
    lo = grow // 2
    hi = (grow - 1) // 2
    for i in range(nx):
        cum[0, i] = 0
    for j in range(ny):
        # bad pixels in the horizontal window, by prefix sums along the row ...
        rowbuf[0] = 0
        for i in range(nx):
            rowbuf[i + 1] = rowbuf[i] + (1 if good[j, i] == 0 else 0)
        # ... accumulated down the columns: cum[j + 1, i] = sum over rows 0..j
        for i in range(nx):
            a, z = _window(i, lo, hi, nx)
            cum[j + 1, i] = cum[j, i] + rowbuf[z] - rowbuf[a]
    for j in range(ny):
        a, z = _window(j, lo, hi, ny)
        for i in range(nx):
            out[j, i] = 1 if cum[z, i] - cum[a, i] == 0 else 0


@njit(nogil=True, cache=True, inline="always")
def _reflect(k, n):
    # scipy/numpy 'symmetric' reflection (edge pixel repeated), any k
    period = 2 * n
    k = k % period
    if k < 0:
        k += period
    if k >= n:
        k = period - 1 - k
    return k


@njit(nogil=True, cache=True)
def _cte(good, ctegrow, cte_dir, out, cum):
    """out = 0 where a CR (good == 0) lies within ctegrow pixels of the pixel along its column,
    on the side given by cte_dir (+1: rows y+1..y+ctegrow; -1: rows y-ctegrow..y-1); rows
    outside the image are left out.  cum: int32 (ny + 1, nx) scratch."""
    ny, nx = good.shape
    c = ctegrow
    for i in range(nx):
        cum[0, i] = 0
    for j in range(ny):
        for i in range(nx):
            cum[j + 1, i] = cum[j, i] + (1 if good[j, i] == 0 else 0)
    for j in range(ny):
        if cte_dir > 0:
            a = j + 1
            z = j + c + 1
        else:
            a = j - c
            z = j
        if a < 0:
            a = 0
        if z > ny:
            z = ny
        for i in range(nx):
            out[j, i] = 1 if (z <= a or cum[z, i] - cum[a, i] == 0) else 0


@njit(nogil=True, cache=True)
def _cte_legacy(good, ctegrow, cte_dir, out):
    """As _cte, but rows outside the image reflect ('symm'), as drizzlepac's convolution."""
    ny, nx = good.shape
    for j in range(ny):
        for i in range(nx):
            ok = 1
            for k in range(1, ctegrow + 1):
                r = _reflect(j + k if cte_dir > 0 else j - k, ny)
                if good[r, i] == 0:
                    ok = 0
                    break
            out[j, i] = ok


def grow_mask(good, grow):
    """``driz_cr_grow``: keep a pixel good only if every pixel of the ``grow x grow`` box around
    it is good.

    Parameters
    ----------
    good : 2-D uint8 array
        1 = good.
    grow : int
        The box size; ``grow <= 1`` returns a copy.

    Returns
    -------
    numpy.ndarray
        uint8, 1 = good.
    """
    g = np.ascontiguousarray(np.asarray(good), dtype=np.uint8)
    grow = int(grow)
    if grow <= 1 or g.size == 0:
        return g.copy()
    ny, nx = g.shape
    out = np.empty_like(g)
    _grow(g, grow, out, np.empty((ny + 1, nx), np.int32), np.empty(nx + 1, np.int32))
    return out


def cte_grow_mask(good, ctegrow, cte_dir, *, legacy_edges=False):
    """``driz_cr_ctegrow`` alone: the good mask of the CTE tails of the cosmic rays.

    Parameters
    ----------
    good : 2-D uint8 array
        1 = good, 0 = cosmic ray.
    ctegrow : int
        Length of the tail, pixels along the column.
    cte_dir : int
        Side of the tail: +1, -1, or 0 (none).
    legacy_edges : bool
        drizzlepac's edge behaviour (see the module notes).

    Returns
    -------
    numpy.ndarray
        uint8, 0 where a cosmic ray of ``good`` lies within ``ctegrow`` pixels along the
        column on the ``cte_dir`` side, 1 elsewhere.  The cosmic-ray pixels themselves are
        *not* cleared here (AND with ``good``).  ``ctegrow <= 0`` or ``cte_dir == 0``: all
        ones.
    """
    g = np.ascontiguousarray(np.asarray(good), dtype=np.uint8)
    ctegrow = int(ctegrow)
    cte_dir = int(cte_dir)
    if cte_dir not in (-1, 0, 1):
        raise ValueError(f"cte_dir must be -1, 0 or +1; got {cte_dir}")
    out = np.ones_like(g)
    if ctegrow <= 0 or cte_dir == 0 or g.size == 0:
        return out
    ny, nx = g.shape
    if legacy_edges:
        _cte_legacy(g, ctegrow, cte_dir, out)
    else:
        _cte(g, ctegrow, cte_dir, out, np.empty((ny + 1, nx), np.int32))
    return out


def _optional_mask(name, mask, shape):
    """``(uint8 array, True)`` for a given mask of ``shape``; ``(1x1 zeros, False)`` for None
    (the kernels take an array either way)."""
    if mask is None:
        return np.zeros((1, 1), np.uint8), False
    m = np.ascontiguousarray(np.asarray(mask), dtype=np.uint8)
    if m.shape != shape:
        raise ValueError(f"{name} {m.shape} must have the shape of sci {shape}")
    return m, True


def cr_test(sci, blot, deriv, *, cf=1.0, gain=1.0, rdnoise=0.0, background=0.0,
            snr=(3.5, 3.0), scale=(1.2, 0.7), grow=1, ctegrow=0, cte_dir=0, untested=None,
            legacy_edges=False, noseed=None):
    """The complete ``driz_cr`` test of one chip; returns the good mask (uint8: 1 good, 0 CR).

    Parameters
    ----------
    sci, blot, deriv : 2-D arrays of one shape
        The chip's data, its blotted median (same units, sky included) and
        ``derivative(blot)`` -- all in the chip's units; ``cf`` converts them to electrons.
    cf : float
        Electrons per unit of the data (1 for electrons).
    gain : float
        Effective gain ``g`` of the noise term ``N = sqrt(g*|b + bg| + rn^2)``, threshold
        ``snr * N / g`` (1 for data converted to electrons).
    rdnoise : float
        Read noise ``rn``, electrons.
    background : float
        ``bg``, electrons, added to the blotted value inside the noise term only.
    snr, scale : (float, float)
        ``(snr1, snr2)`` and ``(scale1, scale2)``.
    grow, ctegrow, cte_dir : int
        ``driz_cr_grow``, ``driz_cr_ctegrow`` and the CTE direction (+1, -1, 0).
    untested : 2-D bool/uint8 array, optional
        Nonzero where the pixel is not tested (never flagged, never flags a neighbour).
    legacy_edges : bool
        Reproduce drizzlepac's edge behaviour of the CTE tail (the derivative's edges are set
        by the ``deriv`` passed in).
    noseed : 2-D bool/uint8 array, optional
        Nonzero where a pixel is known bad before the test (DQ, static mask): it is tested and
        flagged like any other (known-bad neighbours included), but its failing pass 1 does not
        make a good neighbour a cosmic ray (drizzlepac has no such input: a dead column or a
        flagged hot pixel there lets the pass-2 threshold flag its clean neighbours, star cores
        included).

    Returns
    -------
    numpy.ndarray
        uint8 mask of the chip's shape: 1 good, 0 cosmic ray.
    """
    s = _as_2d("sci", sci)
    b = _as_2d("blot", blot)
    d = _as_2d("deriv", deriv)
    if s.shape != b.shape or s.shape != d.shape:
        raise ValueError(f"sci {s.shape}, blot {b.shape} and deriv {d.shape} must have one shape")
    snr1, snr2 = (float(v) for v in snr)
    scale1, scale2 = (float(v) for v in scale)
    cf = float(cf)
    g = float(gain)
    if not (cf > 0 and math.isfinite(cf)):
        raise ValueError(f"cf must be a positive number; got {cf}")
    if not (g > 0 and math.isfinite(g)):
        raise ValueError(f"gain must be a positive number; got {g}")
    unt, use_unt = _optional_mask("untested", untested, s.shape)
    nos, use_nos = _optional_mask("noseed", noseed, s.shape)
    good = np.empty(s.shape, np.uint8)
    if s.size == 0:
        return good
    flags = np.empty(s.shape, np.uint8)
    _passes(s, b, d, unt, use_unt, cf, g, float(rdnoise), float(background), snr1, snr2,
            scale1, scale2, flags)
    _combine(flags, nos, use_nos, good)
    del flags
    if int(grow) > 1:
        grown = grow_mask(good, grow)
    else:
        grown = good
    if int(ctegrow) > 0 and int(cte_dir) != 0:
        grown = grown & cte_grow_mask(good, ctegrow, cte_dir, legacy_edges=legacy_edges)
    return grown
