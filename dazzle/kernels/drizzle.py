"""Drizzle kernels: spread every input pixel's flux onto an output grid.

Arrays only: no FITS, no WCS objects, no dask.  The public entry point is
:func:`drizzle_add`, which follows drizzle 3.0's conventions:

* ``pixmap[j, i] = (x_out, y_out)`` is where the centre of input pixel
  ``(i, j)`` (0-based) lands on the output grid; output pixel ``(ii, jj)``
  covers ``[ii-0.5, ii+0.5] x [jj-0.5, jj+0.5]``.
* ``out_sci`` holds the weighted mean, ``out_wht`` the summed weight; both
  float32 and updated in place, so several inputs can be added in turn.
* The optional context ``out_ctx`` (int32) records which inputs touched each
  output pixel: input ``uniqid`` (1-based) sets bit ``(uniqid-1) % 32`` of
  plane ``(uniqid-1) // 32`` wherever its weight there is positive.

How the numbers are formed (per input pixel ``(i, j)``)::

    d   = data[j, i] * iscale            (iscale /= exptime when in_units="counts")
    w   = weights[j, i] * wt_scl         (weights default to 1)
    dow = kernel_fraction * w            (the kernel's share of the drop in the cell)
    out_sci = sum(dow * d) / sum(dow)    out_wht = sum(dow)

The Numba kernels accumulate the two sums (``sum(dow*d)`` in float64 and
``sum(dow)`` in float64) over a scratch box covering only the output pixels
the input can touch, then divide once.  drizzle 3.0 keeps a running float32
weighted mean instead; the results agree to float32 rounding (tests pin
1e-5) and the sum form is what the tiled reduction of the pipeline needs.

Kernels (``pixfrac < 0.001`` switches any kernel to ``point``):

``square``   exact overlap of the drop (the input pixel shrunk by ``pixfrac``
             about its centre, its four corners mapped through the bilinearly
             interpolated pixmap) with every output pixel; flux conserving.
``turbo``    an axis-aligned square of side ``pixfrac / pixel_scale_ratio``
             output pixels centred on the mapped pixel centre; flux conserving.
``point``    all of the weight to the output pixel nearest the mapped centre.
``gaussian`` ``dow = (efac/pi) exp(-r^2 efac) w`` with
             ``efac = 2.3548^2 psr^2 / (2 pixfrac^2)`` sampled at output pixel
             centres (FWHM ``pixfrac/psr`` output pixels); not normalised,
             exactly as drizzle does (not flux conserving).
``lanczos2``, ``lanczos3``
             separable Lanczos weights ``L(dx psr) L(dy psr)`` from a
             0.003-spaced table; pixfrac is ignored; weights may be negative;
             not normalised (as drizzle).
``tophat``   a circular top hat of diameter ``pixfrac`` input pixels: every
             output pixel whose centre lies within ``pixfrac / (2 psr)``
             output pixels of the mapped centre receives an equal share
             ``w / nhit`` of the weight, so the summed weight of one input
             pixel is ``w`` (flux conserving). When no output centre lies that
             close, the pixel contributes nothing (it "falls between" centres),
             as in drizzle 1.x.  (drizzle 1.x gave every hit the full ``w``,
             which multiplies the weight by ``nhit``; dazzle normalises.)

Deliberate differences from drizzle 3.0 (each pinned by a test):

* ``pixel_scale_ratio=None`` estimates output/input linear pixel size from
  the pixmap's Jacobian (drizzle 3.0 estimates the inverse).
* Input pixels whose data are NaN or infinite are skipped (drizzle 3.0
  propagates the NaN into every output pixel the drop touches).
* No scan-polygon inversion: every input pixel whose drop overlaps the
  output is drizzled, whatever the output/input size ratio (drizzle 3.0 can
  lose pixels when the output is exactly half the input size).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

KERNELS = ("square", "point", "turbo", "gaussian", "lanczos2", "lanczos3", "tophat")

_KERNEL_CODE = {name: k for k, name in enumerate(KERNELS)}

# Lanczos look-up table spacing, as in drizzle 3.0.
_LANCZOS_DEL = 0.003


def _lanczos_lut(order: int) -> np.ndarray:
    nlut = int(math.ceil(order / _LANCZOS_DEL)) + 1
    x = np.arange(nlut, dtype=np.float64) * _LANCZOS_DEL
    lut = np.ones(nlut, dtype=np.float64)
    px = np.pi * x[1:]
    lut[1:] = np.sin(px) * np.sin(px / order) / (px * (px / order))
    lut[x > order] = 0.0
    return lut.astype(np.float32)


_LANCZOS_LUTS = {2: _lanczos_lut(2), 3: _lanczos_lut(3)}


# ---------------------------------------------------------------------------
# Scalar helpers (scalars only: Numba calls with array arguments are slow)
# ---------------------------------------------------------------------------


@njit(nogil=True, cache=True, inline="always")
def _nint(x):
    """C ``round()``: half away from zero (numpy rounds half to even)."""
    if x >= 0.0:
        return int(math.floor(x + 0.5))
    return -int(math.floor(-x + 0.5))


@njit(nogil=True, cache=True, inline="always")
def _above(t, ylo, yhi, length):
    """Integral over a straight segment of ``max(y(x) - t, 0) dx``.

    The segment has horizontal length ``length`` and its y runs linearly
    between ``ylo`` and ``yhi`` (``ylo <= yhi``).
    """
    if t <= ylo:
        return length * (0.5 * (ylo + yhi) - t)
    if t >= yhi:
        return 0.0
    h = yhi - t
    return length * h * h / (2.0 * (yhi - ylo))


# ---------------------------------------------------------------------------
# Bounding box of the output pixels an input can touch
# ---------------------------------------------------------------------------


@njit(nogil=True, cache=True)
def _pixmap_extent(pixmap):
    """Finite min/max of the pixmap and the largest step between neighbours."""
    ny, nx = pixmap.shape[0], pixmap.shape[1]
    xmin = np.inf
    xmax = -np.inf
    ymin = np.inf
    ymax = -np.inf
    step = 0.0
    for j in range(ny):
        for i in range(nx):
            x = pixmap[j, i, 0]
            y = pixmap[j, i, 1]
            if not (math.isfinite(x) and math.isfinite(y)):
                continue
            if x < xmin:
                xmin = x
            if x > xmax:
                xmax = x
            if y < ymin:
                ymin = y
            if y > ymax:
                ymax = y
            if i + 1 < nx:
                s = abs(pixmap[j, i + 1, 0] - x) + abs(pixmap[j, i + 1, 1] - y)
                if s > step:
                    step = s
            if j + 1 < ny:
                s = abs(pixmap[j + 1, i, 0] - x) + abs(pixmap[j + 1, i, 1] - y)
                if s > step:
                    step = s
    return xmin, xmax, ymin, ymax, step


# ---------------------------------------------------------------------------
# The kernels.  Each adds sum(dow*d) into ``num`` and sum(dow) into ``den``;
# ``num``/``den`` cover output pixels [bx0, bx0+nbx) x [by0, by0+nby) of the
# output frame (the pixmap's coordinates).  Context bits go into ``ctx``
# (int32, same shape and placement as ``num``) when ``use_ctx``.
# ---------------------------------------------------------------------------


_MAXBOX = 8  # output cells per axis handled by the square kernel's fast path


@njit(nogil=True, cache=True)
def _kernel_square(data, weights, use_weights, pixmap, num, den, bx0, by0,
                   ctx, use_ctx, bit, pixfrac, iscale, wtscale):
    """Exact overlap of each mapped drop (a quadrilateral) with the output cells.

    The overlap of a polygon with cell (ii, jj) is the sum over its edges of
    the signed integral ``int clip(y(x) - (jj - 0.5), 0, 1) dx`` over the
    part of the edge inside column ii.  For one straight piece of edge the
    integral is a difference of ``G(t) = int max(y - t, 0) dx`` at the cell's
    bottom and top, which is closed-form: ``(y_hi - t)^2 / (2 |slope|)`` where
    the piece crosses level t.  Each edge is walked column by column, adding
    to every cell of the column at once (no per-cell clipping).
    """
    ny, nx = data.shape
    nby, nbx = num.shape
    bx1 = bx0 + nbx - 1
    by1 = by0 + nby - 1
    h = 0.5 * pixfrac
    xo = np.empty(4)
    yo = np.empty(4)
    acc = np.zeros(_MAXBOX * _MAXBOX)
    # The pixmap interpolated (linearly in y) at the drop's bottom (y = j-h)
    # and top (y = j+h) edges, for every input column: the four corners are
    # then one interpolation in x each.  Same bilinear interpolation as
    # drizzle, whose corners use the nearest 2x2 cell of pixmap samples
    # (extrapolating at the input's edges).
    bot_x = np.empty(nx)
    bot_y = np.empty(nx)
    top_x = np.empty(nx)
    top_y = np.empty(nx)
    for j in range(ny):
        for side in range(2):
            yc = j - h if side == 0 else j + h
            iy = int(math.floor(yc))
            if iy < 0:
                iy = 0
            elif iy > ny - 2:
                iy = ny - 2
            fy = yc - iy
            gy = 1.0 - fy
            if side == 0:
                for c in range(nx):
                    bot_x[c] = gy * pixmap[iy, c, 0] + fy * pixmap[iy + 1, c, 0]
                    bot_y[c] = gy * pixmap[iy, c, 1] + fy * pixmap[iy + 1, c, 1]
            else:
                for c in range(nx):
                    top_x[c] = gy * pixmap[iy, c, 0] + fy * pixmap[iy + 1, c, 0]
                    top_y[c] = gy * pixmap[iy, c, 1] + fy * pixmap[iy + 1, c, 1]
        for i in range(nx):
            if use_weights:
                w = weights[j, i] * wtscale
            else:
                w = wtscale
            if w == 0.0:
                continue
            d = data[j, i] * iscale
            if not math.isfinite(d):
                continue
            # --- corners, counter-clockwise: (-h,-h) (+h,-h) (+h,+h) (-h,+h)
            xl = i - h
            il = int(math.floor(xl))
            if il < 0:
                il = 0
            elif il > nx - 2:
                il = nx - 2
            fl = xl - il
            gl = 1.0 - fl
            xr = i + h
            ir = int(math.floor(xr))
            if ir < 0:
                ir = 0
            elif ir > nx - 2:
                ir = nx - 2
            fr = xr - ir
            gr = 1.0 - fr
            xo[0] = gl * bot_x[il] + fl * bot_x[il + 1]
            yo[0] = gl * bot_y[il] + fl * bot_y[il + 1]
            xo[1] = gr * bot_x[ir] + fr * bot_x[ir + 1]
            yo[1] = gr * bot_y[ir] + fr * bot_y[ir + 1]
            xo[2] = gr * top_x[ir] + fr * top_x[ir + 1]
            yo[2] = gr * top_y[ir] + fr * top_y[ir + 1]
            xo[3] = gl * top_x[il] + fl * top_x[il + 1]
            yo[3] = gl * top_y[il] + fl * top_y[il + 1]
            if not (math.isfinite(xo[0] + xo[1] + xo[2] + xo[3])
                    and math.isfinite(yo[0] + yo[1] + yo[2] + yo[3])):
                continue
            # --- output box touched by the drop
            xmn = min(min(xo[0], xo[1]), min(xo[2], xo[3]))
            xmx = max(max(xo[0], xo[1]), max(xo[2], xo[3]))
            ymn = min(min(yo[0], yo[1]), min(yo[2], yo[3]))
            ymx = max(max(yo[0], yo[1]), max(yo[2], yo[3]))
            ilo = max(_nint(xmn), bx0)
            ihi = min(_nint(xmx), bx1)
            jlo = max(_nint(ymn), by0)
            jhi = min(_nint(ymx), by1)
            if ilo > ihi or jlo > jhi:
                continue
            # the drop's area as the integral of y dx around it (same sign
            # convention as the cell areas below, so the ratio is positive)
            jac = 0.0
            for k in range(4):
                k1 = (k + 1) & 3
                jac += (xo[k1] - xo[k]) * (yo[k] + yo[k1])
            jac *= 0.5
            if jac == 0.0:
                continue
            scale = w / jac
            mi = ihi - ilo + 1
            mj = jhi - jlo + 1
            # the path is chosen from the drop's own box, not the part inside
            # this block, so that any tiling of the frame gives the same bits
            ilo0 = _nint(xmn)
            jlo0 = _nint(ymn)
            ni0 = _nint(xmx) - ilo0 + 1
            nj0 = _nint(ymx) - jlo0 + 1
            if ni0 <= 2 and nj0 <= 2:
                # Fast path: the drop lies inside a 2x2 block of cells (the
                # usual case near unit scale).  With cut lines X (between the
                # columns) and Y (between the rows), every cell area follows
                # from three signed integrals over the edges:
                #   fx = area(x < X), fy = area(y < Y), fxy = area(x < X, y < Y)
                cx = ilo0 + 0.5
                cy = jlo0 + 0.5
                fx = 0.0
                fy = 0.0
                fxy = 0.0
                for k in range(4):
                    k1 = (k + 1) & 3
                    xa = xo[k]
                    ya = yo[k]
                    xb = xo[k1]
                    yb = yo[k1]
                    if xb == xa:
                        continue
                    if xb > xa:
                        sg = 1.0
                        x0 = xa
                        y0 = ya
                        x1 = xb
                        y1 = yb
                    else:
                        sg = -1.0
                        x0 = xb
                        y0 = yb
                        x1 = xa
                        y1 = ya
                    # whole edge: integral of min(y, Y) dx
                    length = x1 - x0
                    lo = min(y0, y1)
                    hi = max(y0, y1)
                    if hi <= cy:
                        g = length * 0.5 * (y0 + y1)
                    elif lo >= cy:
                        g = length * cy
                    else:
                        g = length * 0.5 * (y0 + y1) - (hi - cy) * (hi - cy) * length / (2.0 * (hi - lo))
                    fy += sg * g
                    # the part left of X: integrals of y dx and min(y, Y) dx
                    if x0 < cx:
                        if x1 > cx:
                            yc = y0 + (y1 - y0) * ((cx - x0) / length)
                            lc = cx - x0
                        else:
                            yc = y1
                            lc = length
                        fx += sg * lc * 0.5 * (y0 + yc)
                        lo = min(y0, yc)
                        hi = max(y0, yc)
                        if hi <= cy:
                            g = lc * 0.5 * (y0 + yc)
                        elif lo >= cy:
                            g = lc * cy
                        else:
                            g = lc * 0.5 * (y0 + yc) - (hi - cy) * (hi - cy) * lc / (2.0 * (hi - lo))
                        fxy += sg * g
                # (integrals of min(y, Y) give areas below Y directly: the
                # upper and lower chains of the drop enter with opposite
                # signs.  All areas carry the sign convention of jac.)
                a00 = fxy
                a10 = fy - fxy
                a01 = fx - fxy
                a11 = jac - fx - fy + fxy
                for q in range(4):
                    if q == 0:
                        area = a00
                        ii = ilo0
                        jj = jlo0
                    elif q == 1:
                        area = a10
                        ii = ilo0 + 1
                        jj = jlo0
                    elif q == 2:
                        area = a01
                        ii = ilo0
                        jj = jlo0 + 1
                    else:
                        area = a11
                        ii = ilo0 + 1
                        jj = jlo0 + 1
                    if ii < ilo or ii > ihi or jj < jlo or jj > jhi or abs(area) < 1e-12:
                        continue
                    dow = area * scale
                    num[jj - by0, ii - bx0] += dow * d
                    den[jj - by0, ii - bx0] += dow
                    if use_ctx and dow > 0.0:
                        ctx[jj - by0, ii - bx0] |= bit
            elif ni0 <= _MAXBOX and nj0 <= _MAXBOX:
                for q in range(mi * mj):
                    acc[q] = 0.0
                for k in range(4):
                    k1 = (k + 1) & 3
                    xa = xo[k]
                    ya = yo[k]
                    xb = xo[k1]
                    yb = yo[k1]
                    if xb == xa:
                        continue
                    if xb > xa:
                        sg = 1.0
                        xl = xa
                        xr = xb
                    else:
                        sg = -1.0
                        xl = xb
                        xr = xa
                    dxe = xb - xa
                    dye = yb - ya
                    if dye != 0.0:
                        rr = 1.0 / (dxe * dye)
                        m = dye * dye * rr
                        h2m = 0.5 * abs(dxe * dxe * rr)
                    else:
                        m = 0.0
                        h2m = 0.0
                    c0 = max(_nint(xl), ilo)
                    c1 = min(_nint(xr), ihi)
                    for ii in range(c0, c1 + 1):
                        x0 = max(xl, ii - 0.5)
                        x1 = min(xr, ii + 0.5)
                        length = x1 - x0
                        if length <= 0.0:
                            continue
                        y0 = ya + m * (x0 - xa)
                        y1 = ya + m * (x1 - xa)
                        if y0 > y1:
                            y0, y1 = y1, y0
                        base = (ii - ilo) * mj
                        # G at the bottom of the first row
                        t = jlo - 0.5
                        if t <= y0:
                            g_lo = length * (0.5 * (y0 + y1) - t)
                        elif t >= y1:
                            g_lo = 0.0
                        else:
                            g_lo = (y1 - t) * (y1 - t) * h2m
                        for r in range(mj):
                            if g_lo == 0.0:
                                break
                            t += 1.0
                            if t <= y0:
                                g_hi = length * (0.5 * (y0 + y1) - t)
                            elif t >= y1:
                                g_hi = 0.0
                            else:
                                g_hi = (y1 - t) * (y1 - t) * h2m
                            acc[base + r] += sg * (g_lo - g_hi)
                            g_lo = g_hi
                for ii in range(ilo, ihi + 1):
                    base = (ii - ilo) * mj
                    for r in range(mj):
                        area = acc[base + r]
                        # |area| below 1e-12 of a pixel is rounding noise of
                        # a cell the drop does not reach.
                        if abs(area) < 1e-12:
                            continue
                        dow = area * scale
                        jj = jlo + r
                        num[jj - by0, ii - bx0] += dow * d
                        den[jj - by0, ii - bx0] += dow
                        if use_ctx and dow > 0.0:
                            ctx[jj - by0, ii - bx0] |= bit
            else:
                # very large drops (output pixels much finer than input
                # pixels): the same integrals, one cell at a time
                for jj in range(jlo, jhi + 1):
                    b0 = jj - 0.5
                    b1 = jj + 0.5
                    for ii in range(ilo, ihi + 1):
                        area = 0.0
                        for k in range(4):
                            k1 = (k + 1) & 3
                            xa = xo[k]
                            ya = yo[k]
                            xb = xo[k1]
                            yb = yo[k1]
                            if xb == xa:
                                continue
                            sg = 1.0 if xb > xa else -1.0
                            m = (yb - ya) / (xb - xa)
                            x0 = max(min(xa, xb), ii - 0.5)
                            x1 = min(max(xa, xb), ii + 0.5)
                            length = x1 - x0
                            if length <= 0.0:
                                continue
                            y0 = ya + m * (x0 - xa)
                            y1 = ya + m * (x1 - xa)
                            if y0 > y1:
                                y0, y1 = y1, y0
                            if y0 >= b1:
                                area += sg * length
                            elif y1 > b0:
                                area += sg * (_above(b0, y0, y1, length)
                                              - _above(b1, y0, y1, length))
                        if abs(area) < 1e-12:
                            continue
                        dow = area * scale
                        num[jj - by0, ii - bx0] += dow * d
                        den[jj - by0, ii - bx0] += dow
                        if use_ctx and dow > 0.0:
                            ctx[jj - by0, ii - bx0] |= bit


@njit(nogil=True, cache=True)
def _kernel_point(data, weights, use_weights, pixmap, num, den, bx0, by0,
                  ctx, use_ctx, bit, iscale, wtscale):
    ny, nx = data.shape
    nby, nbx = num.shape
    for j in range(ny):
        for i in range(nx):
            if use_weights:
                w = weights[j, i] * wtscale
            else:
                w = wtscale
            if w == 0.0:
                continue
            d = data[j, i] * iscale
            if not math.isfinite(d):
                continue
            x = pixmap[j, i, 0]
            y = pixmap[j, i, 1]
            if not (math.isfinite(x) and math.isfinite(y)):
                continue
            ii = _nint(x) - bx0
            jj = _nint(y) - by0
            if ii < 0 or ii >= nbx or jj < 0 or jj >= nby:
                continue
            num[jj, ii] += w * d
            den[jj, ii] += w
            if use_ctx and w > 0.0:
                ctx[jj, ii] |= bit


@njit(nogil=True, cache=True)
def _kernel_turbo(data, weights, use_weights, pixmap, num, den, bx0, by0,
                  ctx, use_ctx, bit, pixfrac, psr, iscale, wtscale):
    ny, nx = data.shape
    nby, nbx = num.shape
    bx1 = bx0 + nbx - 1
    by1 = by0 + nby - 1
    pfo = pixfrac / psr / 2.0
    ac = psr * psr / (pixfrac * pixfrac)
    for j in range(ny):
        for i in range(nx):
            if use_weights:
                w = weights[j, i] * wtscale
            else:
                w = wtscale
            if w == 0.0:
                continue
            d = data[j, i] * iscale
            if not math.isfinite(d):
                continue
            x = pixmap[j, i, 0]
            y = pixmap[j, i, 1]
            if not (math.isfinite(x) and math.isfinite(y)):
                continue
            xxi = x - pfo
            xxa = x + pfo
            yyi = y - pfo
            yya = y + pfo
            ilo = max(_nint(xxi), bx0)
            ihi = min(_nint(xxa), bx1)
            jlo = max(_nint(yyi), by0)
            jhi = min(_nint(yya), by1)
            wa = w * ac
            for jj in range(jlo, jhi + 1):
                dy = min(yya, jj + 0.5) - max(yyi, jj - 0.5)
                if dy <= 0.0:
                    continue
                for ii in range(ilo, ihi + 1):
                    dx = min(xxa, ii + 0.5) - max(xxi, ii - 0.5)
                    if dx <= 0.0:
                        continue
                    dow = dx * dy * wa
                    num[jj - by0, ii - bx0] += dow * d
                    den[jj - by0, ii - bx0] += dow
                    if use_ctx and dow > 0.0:
                        ctx[jj - by0, ii - bx0] |= bit


@njit(nogil=True, cache=True)
def _kernel_gaussian(data, weights, use_weights, pixmap, num, den, bx0, by0,
                     ctx, use_ctx, bit, pixfrac, psr, iscale, wtscale):
    ny, nx = data.shape
    nby, nbx = num.shape
    bx1 = bx0 + nbx - 1
    by1 = by0 + nby - 1
    pfo = 2.5 * pixfrac / 2.3548 / psr
    if pfo < 1.2 / psr:
        pfo = 1.2 / psr
    efac = 2.3548 * 2.3548 * psr * psr / (2.0 * pixfrac * pixfrac)
    es = efac / math.pi
    for j in range(ny):
        for i in range(nx):
            if use_weights:
                w = weights[j, i] * wtscale
            else:
                w = wtscale
            if w == 0.0:
                continue
            d = data[j, i] * iscale
            if not math.isfinite(d):
                continue
            x = pixmap[j, i, 0]
            y = pixmap[j, i, 1]
            if not (math.isfinite(x) and math.isfinite(y)):
                continue
            ilo = max(_nint(x - pfo), bx0)
            ihi = min(_nint(x + pfo), bx1)
            jlo = max(_nint(y - pfo), by0)
            jhi = min(_nint(y + pfo), by1)
            for jj in range(jlo, jhi + 1):
                ddy = y - jj
                for ii in range(ilo, ihi + 1):
                    ddx = x - ii
                    dow = es * math.exp(-(ddx * ddx + ddy * ddy) * efac) * w
                    if dow == 0.0:
                        continue
                    num[jj - by0, ii - bx0] += dow * d
                    den[jj - by0, ii - bx0] += dow
                    if use_ctx and dow > 0.0:
                        ctx[jj - by0, ii - bx0] |= bit


@njit(nogil=True, cache=True)
def _kernel_lanczos(data, weights, use_weights, pixmap, num, den, bx0, by0,
                    ctx, use_ctx, bit, order, lut, psr, iscale, wtscale):
    ny, nx = data.shape
    nby, nbx = num.shape
    bx1 = bx0 + nbx - 1
    by1 = by0 + nby - 1
    nlut = lut.shape[0]
    pfo = order / psr
    # drizzle forms the table step psr / 0.003 in single precision; a
    # double-precision step moves indices that sit within ~1e-5 of a half.
    sdp = np.float64(np.float32(psr) / np.float32(0.003))
    for j in range(ny):
        for i in range(nx):
            if use_weights:
                w = weights[j, i] * wtscale
            else:
                w = wtscale
            if w == 0.0:
                continue
            d = data[j, i] * iscale
            if not math.isfinite(d):
                continue
            x = pixmap[j, i, 0]
            y = pixmap[j, i, 1]
            if not (math.isfinite(x) and math.isfinite(y)):
                continue
            ilo = max(int(math.floor(x - pfo)) + 1, bx0)
            ihi = min(int(math.floor(x + pfo)), bx1)
            jlo = max(int(math.floor(y - pfo)) + 1, by0)
            jhi = min(int(math.floor(y + pfo)), by1)
            for jj in range(jlo, jhi + 1):
                iy = _nint(abs(y - jj) * sdp)
                if iy >= nlut:
                    continue
                ly = lut[iy]
                for ii in range(ilo, ihi + 1):
                    ix = _nint(abs(x - ii) * sdp)
                    if ix >= nlut:
                        continue
                    dow = lut[ix] * ly * w
                    if dow == 0.0:
                        continue
                    num[jj - by0, ii - bx0] += dow * d
                    den[jj - by0, ii - bx0] += dow
                    if use_ctx and dow > 0.0:
                        ctx[jj - by0, ii - bx0] |= bit


@njit(nogil=True, cache=True)
def _kernel_tophat(data, weights, use_weights, pixmap, num, den, bx0, by0,
                   ctx, use_ctx, bit, pixfrac, psr, iscale, wtscale):
    ny, nx = data.shape
    nby, nbx = num.shape
    bx1 = bx0 + nbx - 1
    by1 = by0 + nby - 1
    pfo = pixfrac / psr / 2.0
    pfo2 = pfo * pfo
    for j in range(ny):
        for i in range(nx):
            if use_weights:
                w = weights[j, i] * wtscale
            else:
                w = wtscale
            if w == 0.0:
                continue
            d = data[j, i] * iscale
            if not math.isfinite(d):
                continue
            x = pixmap[j, i, 0]
            y = pixmap[j, i, 1]
            if not (math.isfinite(x) and math.isfinite(y)):
                continue
            # count every output centre inside the circle (on or off the
            # frame) so that clipping at the frame edge does not change the
            # weight given to the pixels that remain
            nlo = _nint(x - pfo)
            nhi = _nint(x + pfo)
            mlo = _nint(y - pfo)
            mhi = _nint(y + pfo)
            nhit = 0
            for jj in range(mlo, mhi + 1):
                ddy = y - jj
                for ii in range(nlo, nhi + 1):
                    ddx = x - ii
                    if ddx * ddx + ddy * ddy <= pfo2:
                        nhit += 1
            if nhit == 0:
                continue
            dow = w / nhit
            for jj in range(max(mlo, by0), min(mhi, by1) + 1):
                ddy = y - jj
                for ii in range(max(nlo, bx0), min(nhi, bx1) + 1):
                    ddx = x - ii
                    if ddx * ddx + ddy * ddy <= pfo2:
                        num[jj - by0, ii - bx0] += dow * d
                        den[jj - by0, ii - bx0] += dow
                        if use_ctx and dow > 0.0:
                            ctx[jj - by0, ii - bx0] |= bit


# ---------------------------------------------------------------------------
# Finishing: fold the sums back into the running mean arrays
# ---------------------------------------------------------------------------


@njit(nogil=True, cache=True)
def _all_zero(arr, x0, y0, nx, ny):
    for jj in range(y0, y0 + ny):
        for ii in range(x0, x0 + nx):
            if arr[jj, ii] != 0.0:
                return False
    return True


@njit(nogil=True, cache=True)
def _load_sums(out_sci, out_wht, num, den, bx0, by0):
    nby, nbx = num.shape
    for jj in range(nby):
        for ii in range(nbx):
            wv = out_wht[jj + by0, ii + bx0]
            den[jj, ii] = wv
            if wv != 0.0:
                num[jj, ii] = out_sci[jj + by0, ii + bx0] * np.float64(wv)
            else:
                num[jj, ii] = 0.0


@njit(nogil=True, cache=True)
def _store_sums(out_sci, out_wht, num, den, bx0, by0):
    nby, nbx = num.shape
    for jj in range(nby):
        for ii in range(nbx):
            wv = den[jj, ii]
            if wv != out_wht[jj + by0, ii + bx0]:
                out_wht[jj + by0, ii + bx0] = wv
                if wv != 0.0:
                    out_sci[jj + by0, ii + bx0] = num[jj, ii] / wv


def _bit_for(uniqid: int) -> tuple[int, np.int32]:
    plane = (uniqid - 1) // 32
    bit = np.array([1 << ((uniqid - 1) % 32)], dtype=np.uint32).view(np.int32)[0]
    return plane, bit


def context_planes_needed(uniqid: int) -> int:
    """Number of 32-bit context planes that input ``uniqid`` (1-based) needs."""
    return (int(uniqid) - 1) // 32 + 1


def grow_context(out_ctx: np.ndarray, uniqid: int) -> np.ndarray:
    """Return ``out_ctx`` as 3-D with enough planes for input ``uniqid``.

    A 2-D context is one plane.  When more planes are needed a new array is
    returned (the old planes copied, the new ones zero); otherwise the same
    array (as a 3-D view) is returned.
    """
    ctx = out_ctx if out_ctx.ndim == 3 else out_ctx[np.newaxis]
    need = context_planes_needed(uniqid)
    if ctx.shape[0] >= need:
        return ctx
    grown = np.zeros((need,) + ctx.shape[1:], dtype=np.int32)
    grown[: ctx.shape[0]] = ctx
    return grown


def estimate_pixel_scale_ratio(pixmap: np.ndarray) -> float:
    """Output/input linear pixel size, from the pixmap's Jacobian at its centre.

    ``|det d(out)/d(in)|`` is the input pixel's area in output pixels, so the
    output pixel is ``1/sqrt|det|`` input pixels across.  (drizzle 3.0 returns
    ``sqrt|det|``, the inverse.)
    """
    ny, nx = pixmap.shape[:2]
    finite = np.isfinite(pixmap).all(axis=-1)
    finite[:, -1] = False
    finite[-1, :] = False
    ok = finite[:, :] & np.roll(finite, -1, axis=1) & np.roll(finite, -1, axis=0)
    if not ok.any():
        raise ValueError("pixmap has no finite 2x2 cell to estimate the pixel scale ratio from")
    jj, ii = np.nonzero(ok)
    k = np.argmin((jj - ny / 2.0) ** 2 + (ii - nx / 2.0) ** 2)
    j, i = jj[k], ii[k]
    dx = pixmap[j, i + 1] - pixmap[j, i]
    dy = pixmap[j + 1, i] - pixmap[j, i]
    det = abs(dx[0] * dy[1] - dx[1] * dy[0])
    if det == 0:
        raise ValueError("pixmap is degenerate (zero Jacobian)")
    return float(1.0 / math.sqrt(det))


def _kernel_margin(kernel: str, pixfrac: float, psr: float, step: float) -> int:
    """Output pixels a drop can reach beyond the extent of the pixel centres."""
    if kernel == "square":
        reach = step  # corners lie within half a pixel of the centre (<= one step)
    elif kernel in ("turbo", "tophat"):
        reach = pixfrac / psr / 2.0
    elif kernel == "gaussian":
        reach = max(2.5 * pixfrac / 2.3548 / psr, 1.2 / psr)
    elif kernel in ("lanczos2", "lanczos3"):
        reach = int(kernel[-1]) / psr
    else:
        reach = 0.0
    return int(math.ceil(reach)) + 2


def _prepare(data, pixmap, weights, kernel, pixfrac, iscale, pixel_scale_ratio, wt_scl,
             exptime, in_units):
    """Validate and normalise the arguments shared by drizzle_add and drizzle_sums."""
    kernel = str(kernel).lower()
    if kernel not in _KERNEL_CODE:
        raise ValueError(f"kernel must be one of {', '.join(KERNELS)}; got {kernel!r}")
    in_units = str(in_units).lower()
    if in_units not in ("cps", "counts"):
        raise ValueError(f"in_units must be 'cps' or 'counts'; got {in_units!r}")
    pixfrac = float(pixfrac)
    if not (pixfrac >= 0.0 and math.isfinite(pixfrac)):
        raise ValueError(f"pixfrac must be a finite number >= 0; got {pixfrac!r}")
    if pixfrac < 0.001:
        kernel = "point"
    wt_scl = float(wt_scl)
    if not wt_scl > 0.0:
        raise ValueError(f"wt_scl must be > 0; got {wt_scl!r}")
    iscale = float(iscale)
    if in_units == "counts":
        exptime = float(exptime)
        if not exptime > 0.0:
            raise ValueError(f"exptime must be > 0 with in_units='counts'; got {exptime!r}")
        iscale /= exptime

    data = np.ascontiguousarray(data, dtype=np.float32)
    if data.ndim != 2:
        raise ValueError(f"data must be 2-D; got shape {data.shape}")
    pixmap = np.ascontiguousarray(pixmap, dtype=np.float64)
    if pixmap.shape != data.shape + (2,):
        raise ValueError(f"pixmap shape {pixmap.shape} does not match data shape {data.shape} + (2,)")
    if kernel == "square" and min(data.shape) < 2:
        raise ValueError("the square kernel needs an input of at least 2x2 pixels")
    if weights is not None:
        weights = np.ascontiguousarray(weights, dtype=np.float32)
        if weights.shape != data.shape:
            raise ValueError(f"weights shape {weights.shape} does not match data shape {data.shape}")
        use_weights = True
    else:
        weights = np.zeros((1, 1), dtype=np.float32)
        use_weights = False
    if pixel_scale_ratio is None:
        psr = estimate_pixel_scale_ratio(pixmap)
    else:
        psr = float(pixel_scale_ratio)
        if not psr > 0.0:
            raise ValueError(f"pixel_scale_ratio must be > 0; got {pixel_scale_ratio!r}")
    return data, pixmap, weights, use_weights, kernel, pixfrac, iscale, psr, wt_scl


def _run_kernel(kernel, data, weights, use_weights, pixmap, num, den, bx0, by0, ctx, use_ctx, bit,
                pixfrac, psr, iscale, wt_scl):
    common = (data, weights, use_weights, pixmap, num, den, bx0, by0, ctx, use_ctx, bit)
    if kernel == "square":
        _kernel_square(*common, pixfrac, iscale, wt_scl)
    elif kernel == "point":
        _kernel_point(*common, iscale, wt_scl)
    elif kernel == "turbo":
        _kernel_turbo(*common, pixfrac, psr, iscale, wt_scl)
    elif kernel == "gaussian":
        _kernel_gaussian(*common, pixfrac, psr, iscale, wt_scl)
    elif kernel == "tophat":
        _kernel_tophat(*common, pixfrac, psr, iscale, wt_scl)
    else:
        order = int(kernel[-1])
        _kernel_lanczos(*common, order, _LANCZOS_LUTS[order], psr, iscale, wt_scl)


def drizzle_sums(data, pixmap, num, den, ctx=None, *, x0=0, y0=0, weights=None, kernel="square",
                 pixfrac=1.0, iscale=1.0, pixel_scale_ratio=1.0, wt_scl=1.0, exptime=1.0,
                 in_units="cps", bit=1):
    """Add one input's weighted sums to a block of the output frame, in place.

    The building block of the pipeline's reductions: ``num`` (float64) gains
    ``sum(dow * d)`` and ``den`` (float64) gains ``sum(dow)`` for output
    pixels ``[y0:y0+ny, x0:x0+nx]`` of the frame in which ``pixmap`` is
    expressed (``(ny, nx) = num.shape``).  Drops partly outside the block add
    only their part inside it, so blocks that tile a frame add up exactly to
    the untiled result.  ``ctx`` (optional int32, same shape as ``num``) gets
    ``bit`` OR-ed in where the weight added is positive.  The science of the
    block is ``num / den`` where ``den != 0``.  Other arguments as
    :func:`drizzle_add`.
    """
    data, pixmap, weights, use_weights, kernel, pixfrac, iscale, psr, wt_scl = _prepare(
        data, pixmap, weights, kernel, pixfrac, iscale, pixel_scale_ratio, wt_scl, exptime, in_units)
    for name, arr in (("num", num), ("den", den)):
        if not isinstance(arr, np.ndarray) or arr.dtype != np.float64 or arr.ndim != 2:
            raise TypeError(f"{name} must be a 2-D float64 numpy array")
    if num.shape != den.shape:
        raise ValueError(f"num shape {num.shape} != den shape {den.shape}")
    if ctx is not None:
        if not isinstance(ctx, np.ndarray) or ctx.dtype != np.int32 or ctx.shape != num.shape:
            raise TypeError("ctx must be an int32 numpy array of the same shape as num")
        use_ctx = True
    else:
        ctx = np.zeros((1, 1), dtype=np.int32)
        use_ctx = False
    bit = np.array([int(bit) & 0xFFFFFFFF], dtype=np.uint32).view(np.int32)[0]
    if num.size:
        _run_kernel(kernel, data, weights, use_weights, pixmap, num, den, int(x0), int(y0), ctx, use_ctx,
                    bit, pixfrac, psr, iscale, wt_scl)


def drizzle_add(data, pixmap, out_sci, out_wht, out_ctx=None, *, weights=None,
                kernel="square", pixfrac=1.0, iscale=1.0, pixel_scale_ratio=1.0,
                wt_scl=1.0, exptime=1.0, in_units="cps", uniqid=1, fillval=None):
    """Drizzle one input image onto ``out_sci``/``out_wht`` (and ``out_ctx``) in place.

    Parameters
    ----------
    data : 2-D array (ny_in, nx_in)
        Input values (float32 is used for the arithmetic's input).
    pixmap : array (ny_in, nx_in, 2)
        ``pixmap[j, i] = (x_out, y_out)`` of input pixel centre (i, j), 0-based.
        NaN entries mark input pixels that are not drizzled.
    out_sci, out_wht : float32 arrays (ny_out, nx_out)
        Running weighted mean and summed weight; updated in place.
    out_ctx : int32 array (ny_out, nx_out) or (nplanes, ny_out, nx_out), optional
        Context planes; bit ``(uniqid-1) % 32`` of plane ``(uniqid-1) // 32``
        is set where this input contributes positive weight.  Use
        :func:`grow_context` to get an array with enough planes.
    weights : 2-D array, optional
        Per-pixel input weights (default 1).  Zero weight: pixel not used.
    kernel : str
        One of :data:`KERNELS` (case-insensitive).
    pixfrac : float
        Linear size of the drop relative to the input pixel.  Below 0.001 the
        kernel becomes ``point``.
    iscale : float
        Multiplies the data (e.g. the pixel-area ratio ``pixel_scale_ratio**2``).
    pixel_scale_ratio : float or None
        Output/input linear pixel size; sets the size of the turbo, gaussian,
        lanczos and tophat kernels.  ``None`` estimates it from the pixmap.
    wt_scl : float
        Multiplies the weights (> 0).
    exptime : float
        Exposure time; with ``in_units="counts"`` the data are divided by it.
    in_units : {"cps", "counts"}
    uniqid : int
        1-based id of this input for the context image.
    fillval : float or None
        ``None`` (INDEF): output pixels with zero weight keep their value.
        A number: after adding, every output pixel with zero weight is set to it.
    """
    data, pixmap, weights, use_weights, kernel, pixfrac, iscale, psr, wt_scl = _prepare(
        data, pixmap, weights, kernel, pixfrac, iscale, pixel_scale_ratio, wt_scl, exptime, in_units)
    uniqid = int(uniqid)
    if uniqid < 1:
        raise ValueError(f"uniqid is 1-based; got {uniqid}")
    for name, arr in (("out_sci", out_sci), ("out_wht", out_wht)):
        if not isinstance(arr, np.ndarray) or arr.dtype != np.float32 or arr.ndim != 2:
            raise TypeError(f"{name} must be a 2-D float32 numpy array")
        if not arr.flags.writeable:
            raise ValueError(f"{name} is read-only")
    if out_sci.shape != out_wht.shape:
        raise ValueError(f"out_sci shape {out_sci.shape} != out_wht shape {out_wht.shape}")
    ony, onx = out_sci.shape

    if out_ctx is not None:
        if not isinstance(out_ctx, np.ndarray) or out_ctx.dtype != np.int32:
            raise TypeError("out_ctx must be an int32 numpy array")
        ctx3 = out_ctx if out_ctx.ndim == 3 else out_ctx[np.newaxis]
        if ctx3.ndim != 3 or ctx3.shape[1:] != out_sci.shape:
            raise ValueError(f"out_ctx shape {out_ctx.shape} does not match output shape {out_sci.shape}")
        plane, bit = _bit_for(uniqid)
        if plane >= ctx3.shape[0]:
            raise ValueError(
                f"out_ctx has {ctx3.shape[0]} plane(s) but uniqid={uniqid} needs "
                f"{plane + 1}; grow it first with dazzle.kernels.drizzle.grow_context")
        ctx_plane = ctx3[plane]
        use_ctx = True
    else:
        bit = np.int32(0)
        use_ctx = False

    # The scratch sums cover only the output pixels this input can reach.
    # Finding that box costs a pass over the pixmap, worth it only when the
    # output frame is much larger than the input.
    if ony * onx <= 4 * data.size:
        bx0, bx1, by0, by1 = 0, onx - 1, 0, ony - 1
    else:
        xmin, xmax, ymin, ymax, step = _pixmap_extent(pixmap)
        if math.isfinite(xmin):
            margin = _kernel_margin(kernel, pixfrac, psr, step)
            bx0 = max(int(math.floor(xmin)) - margin, 0)
            bx1 = min(int(math.ceil(xmax)) + margin, onx - 1)
            by0 = max(int(math.floor(ymin)) - margin, 0)
            by1 = min(int(math.ceil(ymax)) + margin, ony - 1)
        else:
            bx0, bx1, by0, by1 = 0, -1, 0, -1

    if bx1 >= bx0 and by1 >= by0:
        shape = (by1 - by0 + 1, bx1 - bx0 + 1)
        if _all_zero(out_wht, bx0, by0, shape[1], shape[0]):
            # nothing drizzled there yet: start the sums from zero pages
            num = np.zeros(shape, dtype=np.float64)
            den = np.zeros(shape, dtype=np.float64)
        else:
            num = np.empty(shape, dtype=np.float64)
            den = np.empty(shape, dtype=np.float64)
            _load_sums(out_sci, out_wht, num, den, bx0, by0)
        ctx = ctx_plane[by0:by1 + 1, bx0:bx1 + 1] if use_ctx else np.zeros((1, 1), dtype=np.int32)
        _run_kernel(kernel, data, weights, use_weights, pixmap, num, den, bx0, by0, ctx, use_ctx, bit,
                    pixfrac, psr, iscale, wt_scl)
        _store_sums(out_sci, out_wht, num, den, bx0, by0)

    if fillval is not None:
        out_sci[out_wht == 0] = np.float32(fillval)
