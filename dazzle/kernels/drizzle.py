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

With ``var`` (one or more variance arrays) and ``dq`` (data-quality bits)
the kernels also co-add ``sum(dow**2 * var * iscale**2)`` (so ``out_var =
sum(dow**2 var) / sum(dow)**2``, the variance of the weighted mean for
independent input pixels) and OR ``dq`` into every output pixel the input
pixel gives a non-zero weight, as drizzle 3.0 does with ``data2``/``dq``.
Science, weight and context are bit-identical with or without them.

The Numba kernels accumulate the two sums (``sum(dow*d)`` in float64 and
``sum(dow)`` in float64) over a scratch box covering only the output pixels
the input can touch, then divide once.  drizzle 3.0 keeps a running float32
weighted mean instead; the results agree to float32 rounding (tests pin
1e-5) and the sum form is what the tiled reduction of the pipeline needs.

Each cell's contributions are added in input order (rows j ascending, then
i), so any tiling of the output into blocks gives the same bits.  The square
and turbo kernels do each input row in two passes: a branch-free pass over
plain 1-D arrays (which Numba compiles to SIMD code) works out every drop's
cells and weights (up to 3x3 cells), then a scalar pass adds them in that
same order.

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
             exactly as drizzle does (not flux conserving).  Evaluated as
             ``exp(-dx^2 efac) exp(-dy^2 efac)`` (one exp per column and row of
             the window), which rounds differently by a few 1e-16.
``lanczos2``, ``lanczos3``
             separable Lanczos weights ``L(dx psr) L(dy psr)`` from a
             0.003-spaced table; pixfrac is ignored; weights may be negative;
             not normalised (as drizzle).  ``lanczos_table="drizzlepac"``:
             drizzlepac 3.11's table and window instead (:data:`LANCZOS_TABLES`).
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

import functools
import math
from collections import namedtuple

import llvmlite.ir as llvm_ir
import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .catalog import KERNELS, kernel_reach

__all__ = ["drizzle_add", "drizzle_sums", "grow_context", "context_planes_needed",
           "estimate_pixel_scale_ratio", "KERNELS", "LANCZOS_TABLES", "lanczos_table"]

#: The Lanczos look-up tables: ``"drizzle"`` is drizzle 3.0's (spacing 0.003,
#: ``ceil(n/0.003)+1`` entries, index ``nint(|d| sdp)``, window
#: ``floor(x-p)+1 .. floor(x+p)`` with ``p = n/psr``, pixfrac ignored);
#: ``"drizzlepac"`` is drizzlepac 3.11's own copy of the C code (spacing 0.01,
#: 512 entries, index ``nint(|d| sdp) + 1`` -- one step too far --, window
#: ``nint(x-p) .. nint(x+p)`` with ``p = n pixfrac/psr`` and
#: ``sdp = psr/(0.01 pixfrac)``).  Its weights sum to 0.953 of drizzle 3.0's
#: per input pixel (lanczos3, unit scale).
LANCZOS_TABLES = ("drizzle", "drizzlepac")
_LANCZOS_DEL = 0.003
_DRIZZLEPAC_DEL = np.float32(0.01)
_DRIZZLEPAC_NLUT = 512


def _lanczos_lut(order: int) -> np.ndarray:
    nlut = int(math.ceil(order / _LANCZOS_DEL)) + 1
    x = np.arange(nlut, dtype=np.float64) * _LANCZOS_DEL
    lut = np.ones(nlut, dtype=np.float64)
    px = np.pi * x[1:]
    lut[1:] = np.sin(px) * np.sin(px / order) / (px * (px / order))
    lut[x > order] = 0.0
    lut = lut.astype(np.float32)
    lut.setflags(write=False)
    return lut


def _drizzlepac_lut(order: int) -> np.ndarray:
    """drizzlepac 3.11's table, with its single-precision steps: the argument
    ``pi i del`` rounded to float32, ``arg / order`` in float32, the rest in
    double, stored as float32; 0 from ``arg >= pi order`` on."""
    i = np.arange(1, _DRIZZLEPAC_NLUT, dtype=np.float32)
    poff = (np.pi * i.astype(np.float64) * np.float64(_DRIZZLEPAC_DEL)).astype(np.float32)
    q = poff / np.float32(order)                        # float32 division
    val = np.sin(poff.astype(np.float64)) / poff * np.sin(q.astype(np.float64)) / q
    val[poff.astype(np.float64) >= np.pi * order] = 0.0
    lut = np.concatenate(([1.0], val)).astype(np.float32)
    lut.setflags(write=False)
    return lut


_LANCZOS_LUTS = {("drizzle", 2): _lanczos_lut(2), ("drizzle", 3): _lanczos_lut(3),
                 ("drizzlepac", 2): _drizzlepac_lut(2), ("drizzlepac", 3): _drizzlepac_lut(3)}


def lanczos_table(name: str, order: int) -> np.ndarray:
    """A Lanczos look-up table.

    Parameters
    ----------
    name : {"drizzle", "drizzlepac"}
        One of :data:`LANCZOS_TABLES`: drizzle 3.0's table or drizzlepac 3.11's.
    order : {2, 3}
        The kernel's order (``lanczos2``, ``lanczos3``).

    Returns
    -------
    numpy.ndarray
        The table, read-only float32: entry ``k`` is the kernel at ``k`` table steps.
    """
    return _LANCZOS_LUTS[(_check_table(name), int(order))]


#: What every kernel is told besides the arrays: where its sums sit in the
#: output frame (output pixel (bx0, by0) is num[0, 0]), whether a weight map
#: and a context plane are given, the context bit, and the scalings.
_Drop = namedtuple("_Drop", "bx0 by0 use_weights use_ctx bit iscale wtscale pixfrac psr")


# ---------------------------------------------------------------------------
# Shared helpers.  inline="always": Numba pastes them into each kernel, so a
# kernel's loops compile as if written out in full.
# ---------------------------------------------------------------------------


@njit(nogil=True, cache=True, inline="always")
def _nint(x):
    """C ``round()``: half away from zero (numpy rounds half to even)."""
    if x >= 0.0:
        return int(math.floor(x + 0.5))
    return -int(math.floor(-x + 0.5))


@njit(nogil=True, cache=True, inline="always")
def _pixel(weight, value, p):
    """One input pixel's weight ``w = weight * wtscale`` and value ``d = value * iscale``,
    and whether to drizzle it (a non-zero weight and a finite value)."""
    w = weight * p.wtscale
    d = value * p.iscale
    return w, d, (w != 0.0) & math.isfinite(d)


@njit(nogil=True, cache=True, inline="always")
def _load_row(data, weights, pixmap, j, p, w_row, d_row, x_row, y_row, centres, x):
    """Input row ``j`` as the kernels use it: ``w_row`` the weight, ``d_row`` the value
    (``data * iscale``) and, with ``centres``, ``x_row``/``y_row`` the mapped pixel centres;
    the row's variances and DQ into ``x`` (:func:`_load_ext`).

    A pixel not to drizzle gets weight 0: zero weight, a value that is not finite or
    (with ``centres``) a centre that is not finite.
    """
    _load_ext(x[0], x[1], x[3], x[4], j, p.iscale * p.iscale)
    values = data[j]
    wts = weights[j] if p.use_weights else weights[0]
    centre = pixmap[j]
    for i in range(data.shape[1]):   # branch-free: SIMD code
        w, d, ok = _pixel(wts[i] if p.use_weights else 1.0, values[i], p)
        if centres:
            xc = centre[i, 0]
            yc = centre[i, 1]
            ok = ok & math.isfinite(xc) & math.isfinite(yc)
            x_row[i] = xc
            y_row[i] = yc
        w_row[i] = w if ok else 0.0
        d_row[i] = d


# The variance and DQ arrays, ``x = (var, var_row, var_sums, dq, dq_row, dq_sums)`` (see
# _run_kernel), are None when not given.  Which code runs is chosen from their types
# when Numba compiles a kernel (the overloads below), so that the plain path (all
# None) compiles to what it was without them: no test per deposit, and no reference
# counting of arrays per deposit (which made it ~10x slower).


@njit(nogil=True, cache=True)
def _load_ext(var, var_row, dq, dq_row, j, s2):
    """Row ``j`` of the variances (times ``s2 = iscale**2``) and of the DQ into the row
    buffers, when they are given."""
    if var is not None:
        for k in range(var.shape[0]):
            for i in range(var.shape[2]):
                var_row[k, i] = var[k, j, i] * s2
    if dq is not None:
        for i in range(dq.shape[1]):
            dq_row[i] = dq[j, i]


def _deposit_ext(var_row, var_sums, dq_row, dq_sums, q, i, dow):
    """The variance and DQ part of a deposit of input pixel ``i`` of the row into cell ``q``
    (flat): ``var_sums += dow**2 var`` for every variance array, ``dq_sums |= dq``
    (drizzle 3.0's squared-weight co-add and DQ OR, for every non-zero weight).
    Numba compiles the overload below, chosen by which arrays are None."""


@overload(_deposit_ext, inline="always")
def _deposit_ext_impl(var_row, var_sums, dq_row, dq_sums, q, i, dow):
    no_var = isinstance(var_sums, types.NoneType)
    one_var = not no_var and var_sums.ndim == 1   # one variance array: no loop (3x faster)
    no_dq = isinstance(dq_sums, types.NoneType)
    if no_var and no_dq:
        return lambda var_row, var_sums, dq_row, dq_sums, q, i, dow: None

    def deposit(var_row, var_sums, dq_row, dq_sums, q, i, dow):
        if one_var:
            var_sums[q] += dow * dow * var_row[i]
        elif not no_var:
            dow2 = dow * dow
            for k in range(var_sums.shape[0]):
                var_sums[k, q] += dow2 * var_row[k, i]
        if not no_dq:
            dq_sums[q] |= dq_row[i]
    return deposit


@njit(nogil=True, cache=True, inline="always")
def _deposit(num, den, ctx, r, c, dow, d, p, vr, vs, qr, qs, i):
    """Add weight ``dow`` of value ``d`` (input pixel ``i`` of the row) to cell (r, c) of
    the sums; set the context bit there when the weight is positive."""
    num[r, c] += dow * d
    den[r, c] += dow
    _deposit_ext(vr, vs, qr, qs, r * num.shape[1] + c, i, dow)
    if p.use_ctx and dow > 0.0:
        ctx[r, c] |= p.bit


@njit(nogil=True, cache=True, inline="always")
def _deposit_flat(num, den, ctx, q, dow, d, positive, bit, vr, vs, qr, qs, i, p):
    """:func:`_deposit` into flat views of the sums: cell ``q``; the context bit when
    ``positive`` (the caller's test of ``use_ctx and dow > 0``)."""
    num[q] += dow * d
    den[q] += dow
    _deposit_ext(vr, vs, qr, qs, q, i, dow)
    if positive:   # last: the context array's reference counting then compiles away
        ctx[q] |= bit


# What a kernel's row pass leaves for each input pixel (its "key"): bits 0-8
# say which of the 3x3 cells from the drop's lower left cell get weight (bit
# 3 r + c: row r, column c), bits 9-17 which of them get the context bit (a
# positive weight); _KEY_LARGE marks a drop larger than the row pass handles,
# 0 none.  A drop within 2x2 cells uses bits 0, 1, 3 and 4 only.
_KEY_LARGE = 1 << 18


def _deposit_upto(i, n, m, out, d_row, nbx, flat, bit, var_row, var_sums, dq_row, dq_sums):
    """Deposit the row pass's results ``out = (key, q, dow)`` (``dow[c, i]`` the weight of
    cell c, see ``_KEY_LARGE``) of pixels i..n-1 into the flat sums ``flat = (num, den,
    ctx)``, and with them the variance and DQ parts (:func:`_deposit_ext`), in pixel order,
    up to the first ``_KEY_LARGE`` pixel; returns its index (n: none) and ``m``.

    ``m`` not None (the square kernel): the results of a pixel the row pass left
    ``_KEY_LARGE`` are those of the 3x3 pass, at ``n + m`` (``m`` counting those
    pixels from 0 at the row's start; see :func:`_square_row3`).  Numba compiles the
    overload below, chosen by whether ``m`` is None."""


@overload(_deposit_upto, jit_options={"nogil": True})
def _deposit_upto_impl(i, n, m, out, d_row, nbx, flat, bit, var_row, var_sums, dq_row, dq_sums):
    gathered = not isinstance(m, types.NoneType)

    # num, den and ctx are indexed here directly, not through inlined helpers (Numba
    # would count references to them at every deposit; _deposit_ext measured as fast as
    # its lines written out), and every sum of a cell at once: one pass over the keys (a
    # pass of its own for the variance and DQ measured 15 % of the square kernel's time
    # on a rotated chip)
    def deposit(i, n, m, out, d_row, nbx, flat, bit, var_row, var_sums, dq_row, dq_sums):
        key, qq, dow = out
        num, den, ctx = flat
        while i < n:
            s = i   # where pixel i's results are
            if gathered:
                s = n + m if key[i] == _KEY_LARGE else i
            k = key[s]
            if k == _KEY_LARGE:
                break
            if gathered:
                m += 1 if s != i else 0
            if k != 0:
                d = d_row[i]
                q0 = qq[i]
                for c in range(9):
                    if k & (1 << c):
                        q = q0 + (c // 3) * nbx + c % 3
                        w = dow[c, s]
                        num[q] += w * d
                        den[q] += w
                        _deposit_ext(var_row, var_sums, dq_row, dq_sums, q, i, w)
                        if k & (512 << c):   # last: ctx's reference counting compiles away
                            ctx[q] |= bit
            i += 1
        return i, m
    return deposit


@intrinsic
def _prefetch(typingctx, arr, index):
    """Ask the CPU to fetch the cache line of ``arr.flat[index]`` (C-contiguous) for
    writing (LLVM's ``prefetch``; no effect on any value)."""
    def codegen(context, builder, signature, args):
        a = context.make_array(signature.args[0])(context, builder, args[0])
        i8p = llvm_ir.IntType(8).as_pointer()
        i32 = llvm_ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, llvm_ir.FunctionType(
            llvm_ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0")
        ptr = builder.bitcast(builder.gep(a.data, [args[1]]), i8p)
        # write, high temporal locality, data cache
        builder.call(fn, [ptr, i32(1), i32(3), i32(1)])
        return context.get_dummy_value()
    return types.void(arr, index), codegen


@njit(nogil=True, cache=True)
def _prefetch_cells(n, qq, nbx, flat, use_ctx, var_sums, rows):
    """Prefetch the sums' cells in ``rows`` output rows (3: a 3x3 drop's; 1: the point
    kernel's one cell) from each pixel's lower left cell ``qq[i]`` (as the row pass left
    them; negative: none).  The deposits of a rotated input touch few cells per cache line
    and scatter over many output rows: without this they wait for memory (about 40 % of
    the square kernel's time on a chip rotated by 20 degrees)."""
    num, den, ctx = flat
    size = num.shape[0]
    for i in range(n):
        q0 = qq[i]
        q = q0 if (q0 >= 0) & (q0 + (rows - 1) * nbx + 2 < size) else 0   # rows to come: any value
        for r in range(rows):
            _prefetch(num, q + r * nbx)
            _prefetch(den, q + r * nbx)
            if var_sums is not None:
                for m in range(var_sums.shape[0] if var_sums.ndim == 2 else 1):
                    _prefetch(var_sums, m * size + q + r * nbx)
            if use_ctx:
                _prefetch(ctx, q + r * nbx)


@njit(nogil=True, cache=True, inline="always")
def _scratch(nx, num, den, ctx, p, gathered=0):
    """What a kernel works with: its block of the output ``(bx0, bx1, by0, by1)``, flat
    views of the sums ``(num, den, ctx)``, the row buffers ``(w, d, x, y)`` of
    :func:`_load_row` and the row pass's results ``(key, q, dow)`` (``dow[c]`` the weights
    of cell c of each pixel's 3x3 cells, see ``_KEY_LARGE``; from ``nx`` on, room for
    ``gathered`` more: the square kernel's 3x3 pass's, see :func:`_deposit_upto`)."""
    nby, nbx = num.shape
    block = (p.bx0, p.bx0 + nbx - 1, p.by0, p.by0 + nby - 1)
    flat = (num.reshape(-1), den.reshape(-1), ctx.reshape(-1))
    rows = (np.empty(nx), np.empty(nx), np.empty(nx), np.empty(nx))
    out = (np.empty(nx + gathered, np.int64), np.empty(nx, np.int64), np.empty((9, nx + gathered)))
    return block, flat, rows, out


@njit(nogil=True, cache=True, inline="always")
def _bilinear_cell(t, n):
    """The cell [k, k+1] of samples 0..n-1 that interpolates at ``t`` (the nearest one
    beyond the ends: extrapolation) and the weights (f, 1 - f) of samples k+1 and k."""
    k = int(math.floor(t))
    if k < 0:
        k = 0
    elif k > n - 2:
        k = n - 2
    f = t - k
    return k, f, 1.0 - f


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
# The square kernel's overlap of a drop (a quadrilateral, corners xo/yo
# counter-clockwise or clockwise) with output cells.  The overlap of a polygon
# with cell (ii, jj) is the sum over its edges of the signed integral
# ``int clip(y(x) - (jj - 0.5), 0, 1) dx`` over the part of the edge inside
# column ii.  For one straight piece of edge that is a difference of
# ``G(t) = int max(y - t, 0) dx`` at the cell's bottom and top, closed-form:
# ``(y_hi - t)^2 / (2 |slope|)`` where the piece crosses level t.  All areas
# carry the sign of the drop's orientation (that of ``jac``).
# ---------------------------------------------------------------------------


_MAXBOX = 8  # output cells per axis handled by the column sweep


# The 2x2 helpers are branch-free (every case computed, the right one selected)
# so that the row loop that calls them compiles to SIMD code; the selected
# values are the very operations of the case-by-case form.


@njit(nogil=True, cache=True, inline="always", error_model="numpy")
def _below(length, ya, yb, cut):
    """``int min(y, cut) dx`` over a straight piece of horizontal length ``length``
    whose y runs linearly from ``ya`` to ``yb``."""
    lo = min(ya, yb)
    hi = max(ya, yb)
    full = length * 0.5 * (ya + yb)
    crossing = full - (hi - cut) * (hi - cut) * length / (2.0 * (hi - lo))
    above = length * cut if lo >= cut else crossing
    return full if hi <= cut else above


@njit(nogil=True, cache=True, inline="always", error_model="numpy")
def _edge_2x2(xa, ya, xb, yb, cx, cy):
    """One edge's signed shares of the three integrals of :func:`_overlap_2x2`:
    ``int y dx`` and ``int min(y, cy) dx`` over its part left of ``cx``, and
    ``int min(y, cy) dx`` over all of it.  Vertical edges add nothing."""
    right = xb > xa
    sg = 1.0 if right else -1.0
    x0 = xa if right else xb
    y0 = ya if right else yb
    x1 = xb if right else xa
    y1 = yb if right else ya
    length = x1 - x0
    fy = sg * _below(length, y0, y1, cy)
    cut = x1 > cx
    yc = y0 + (y1 - y0) * ((cx - x0) / length) if cut else y1
    lc = cx - x0 if cut else length
    fx = sg * lc * 0.5 * (y0 + yc)
    fxy = sg * _below(lc, y0, yc, cy)
    left = (x0 < cx) & (xb != xa)
    return (fx if left else 0.0), (fxy if left else 0.0), (fy if xb != xa else 0.0)


@njit(nogil=True, cache=True, inline="always", error_model="numpy")
def _overlap_2x2(x0, y0, x1, y1, x2, y2, x3, y3, cx, cy, jac):
    """Areas of a drop that lies inside the 2x2 cells around the point (cx, cy),
    in the order (lower left, lower right, upper left, upper right).

    With cut lines X = cx (between the columns) and Y = cy (between the rows),
    every cell follows from three integrals over the edges:
    ``fx = area(x < X)``, ``fy = area(y < Y)``, ``fxy = area(x < X, y < Y)``.
    """
    fx0, fxy0, fy0 = _edge_2x2(x0, y0, x1, y1, cx, cy)
    fx1, fxy1, fy1 = _edge_2x2(x1, y1, x2, y2, cx, cy)
    fx2, fxy2, fy2 = _edge_2x2(x2, y2, x3, y3, cx, cy)
    fx3, fxy3, fy3 = _edge_2x2(x3, y3, x0, y0, cx, cy)
    fx = fx0 + fx1 + fx2 + fx3
    fy = fy0 + fy1 + fy2 + fy3
    fxy = fxy0 + fxy1 + fxy2 + fxy3
    return fxy, fy - fxy, fx - fxy, jac - fx - fy + fxy


@njit(nogil=True, cache=True, inline="always")
def _edge(xo, yo, k):
    """Edge k of the drop: from corner k to corner k+1 (mod 4)."""
    k1 = (k + 1) & 3
    return xo[k], yo[k], xo[k1], yo[k1]


@njit(nogil=True, cache=True, inline="always")
def _column_piece(xl, xr, xa, ya, m, ii):
    """The piece of an edge (x from xl to xr, y = ya + m (x - xa)) inside column ii:
    its length (<= 0: none) and its lowest and highest y."""
    x0 = max(xl, ii - 0.5)
    x1 = min(xr, ii + 0.5)
    y0 = ya + m * (x0 - xa)
    y1 = ya + m * (x1 - xa)
    if y0 > y1:
        return x1 - x0, y1, y0
    return x1 - x0, y0, y1


@njit(nogil=True, cache=True, inline="always")
def _above_piece(t, y0, y1, length, h2m):
    """``G(t) = int max(y - t, 0) dx`` over a piece from y0 to y1 (y0 <= y1) of horizontal
    length ``length``; ``h2m`` is ``1 / (2 |slope|)``."""
    if t <= y0:
        return length * (0.5 * (y0 + y1) - t)
    if t >= y1:
        return 0.0
    return (y1 - t) * (y1 - t) * h2m


@njit(nogil=True, cache=True, inline="always")
def _overlap_columns(xo, yo, ilo, ihi, jlo, mj, acc):
    """Areas of a drop in the cells ``ilo..ihi`` x ``jlo..jlo+mj-1`` into
    ``acc[(ii - ilo) * mj + (jj - jlo)]``: each edge walked column by column,
    adding to every cell of the column at once (no per-cell clipping)."""
    for q in range((ihi - ilo + 1) * mj):
        acc[q] = 0.0
    for k in range(4):
        xa, ya, xb, yb = _edge(xo, yo, k)
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
            length, y0, y1 = _column_piece(xl, xr, xa, ya, m, ii)
            if length <= 0.0:
                continue
            base = (ii - ilo) * mj
            # G at the bottom of the first row
            t = jlo - 0.5
            g_lo = _above_piece(t, y0, y1, length, h2m)
            for r in range(mj):
                if g_lo == 0.0:
                    break
                t += 1.0
                g_hi = _above_piece(t, y0, y1, length, h2m)
                acc[base + r] += sg * (g_lo - g_hi)
                g_lo = g_hi


@njit(nogil=True, cache=True, inline="always")
def _above(t, ylo, yhi, length):
    """``int max(y - t, 0) dx`` over a straight piece of horizontal length
    ``length`` whose y runs linearly between ``ylo`` and ``yhi`` (``ylo <= yhi``)."""
    if t <= ylo:
        return length * (0.5 * (ylo + yhi) - t)
    if t >= yhi:
        return 0.0
    h = yhi - t
    return length * h * h / (2.0 * (yhi - ylo))


@njit(nogil=True, cache=True, inline="always")
def _overlap_cell(xo, yo, ii, jj):
    """Area of a drop inside the one cell (ii, jj): the same integrals, clipped to it
    (for drops far larger than the output pixels)."""
    b0 = jj - 0.5
    b1 = jj + 0.5
    area = 0.0
    for k in range(4):
        xa, ya, xb, yb = _edge(xo, yo, k)
        if xb == xa:
            continue
        sg = 1.0 if xb > xa else -1.0
        m = (yb - ya) / (xb - xa)
        length, y0, y1 = _column_piece(min(xa, xb), max(xa, xb), xa, ya, m, ii)
        if length <= 0.0:
            continue
        if y0 >= b1:
            area += sg * length
        elif y1 > b0:
            area += sg * (_above(b0, y0, y1, length) - _above(b1, y0, y1, length))
    return area


# ---------------------------------------------------------------------------
# The kernels.  Each adds sum(dow*d) into ``num`` and sum(dow) into ``den``;
# ``num``/``den`` cover output pixels [bx0, bx0+nbx) x [by0, by0+nby) of the
# output frame (the pixmap's coordinates).  Context bits go into ``ctx``
# (int32, same shape and placement as ``num``) when ``p.use_ctx``.
# All take (data, weights, pixmap, num, den, ctx, p), p a _Drop.
# ---------------------------------------------------------------------------


@njit(nogil=True, cache=True, inline="always")
def _deposit_area(num, den, ctx, p, ii, jj, area, scale, d, ilo, ihi, jlo, jhi, vr, vs, qr, qs, i):
    """Deposit a drop's overlap ``area`` with cell (ii, jj) if the cell is in the block.
    An |area| below 1e-12 of a pixel is rounding noise of a cell the drop does not reach."""
    if ii < ilo or ii > ihi or jj < jlo or jj > jhi or abs(area) < 1e-12:
        return
    _deposit(num, den, ctx, jj - p.by0, ii - p.bx0, area * scale, d, p, vr, vs, qr, qs, i)


@njit(nogil=True, cache=True, inline="always", error_model="numpy")
def _key_2x2(ilo0, ihi, jlo0, jhi, block, ok0, ok1, ok2, ok3, d0, d1, d2, d3, use_ctx):
    """The key (see ``_KEY_LARGE``) and flat block index ``q`` of the 2x2 cells from
    (ilo0, jlo0): a cell gets weight if it is in the block (at most ``ihi``, ``jhi``, which
    are clipped to it) and its ``ok``; the context bit if also its weight ``d`` > 0."""
    bx0, bx1, by0, by1 = block
    in_x0 = (ilo0 >= bx0) & (ilo0 <= ihi)
    in_x1 = (ilo0 + 1 >= bx0) & (ilo0 + 1 <= ihi)
    in_y0 = (jlo0 >= by0) & (jlo0 <= jhi)
    in_y1 = (jlo0 + 1 >= by0) & (jlo0 + 1 <= jhi)
    key = 0
    key += 1 if (in_x0 & in_y0 & ok0) else 0
    key += 2 if (in_x1 & in_y0 & ok1) else 0
    key += 8 if (in_x0 & in_y1 & ok2) else 0
    key += 16 if (in_x1 & in_y1 & ok3) else 0
    pos = 0
    pos += 512 if d0 > 0.0 else 0
    pos += 1024 if d1 > 0.0 else 0
    pos += 4096 if d2 > 0.0 else 0
    pos += 8192 if d3 > 0.0 else 0
    key += (key * 512) & pos if use_ctx else 0
    q = (jlo0 - by0) * (bx1 - bx0 + 1) + (ilo0 - bx0)
    return key, q


@njit(nogil=True, cache=True, inline="always", error_model="numpy")
def _drop_2x2(w, x0, y0, x1, y1, x2, y2, x3, y3, block, use_ctx):
    """One drop (corners counter-clockwise or clockwise) against the output block
    ``(bx0, bx1, by0, by1)``: ``(key, q, dow0, dow1, dow2, dow3)`` with ``q`` the flat
    index in the block of its lower left cell and ``dow`` the weights of the 2x2 cells.
    Key 0: nothing to deposit (zero weight, a corner not finite, off the block)."""
    bx0, bx1, by0, by1 = block
    finite = math.isfinite(x0 + x1 + x2 + x3) & math.isfinite(y0 + y1 + y2 + y3)
    xmn = min(min(x0, x1), min(x2, x3))
    xmx = max(max(x0, x1), max(x2, x3))
    ymn = min(min(y0, y1), min(y2, y3))
    ymx = max(max(y0, y1), max(y2, y3))
    ilo0 = _nint(xmn)
    ihi0 = _nint(xmx)
    jlo0 = _nint(ymn)
    jhi0 = _nint(ymx)
    ilo = max(ilo0, bx0)
    ihi = min(ihi0, bx1)
    jlo = max(jlo0, by0)
    jhi = min(jhi0, by1)
    # the drop's area as the integral of y dx around it (same sign convention
    # as the cell areas, so the ratio is positive)
    jac = 0.0
    jac += (x1 - x0) * (y0 + y1)
    jac += (x2 - x1) * (y1 + y2)
    jac += (x3 - x2) * (y2 + y3)
    jac += (x0 - x3) * (y3 + y0)
    jac *= 0.5
    scale = w / jac
    used = (w != 0.0) & finite & (ilo <= ihi) & (jlo <= jhi) & (jac != 0.0)
    # the path is chosen from the drop's own box, not the part inside this
    # block, so that any tiling of the frame gives the same bits
    small = (ihi0 - ilo0 <= 1) & (jhi0 - jlo0 <= 1)
    a00, a10, a01, a11 = _overlap_2x2(x0, y0, x1, y1, x2, y2, x3, y3, ilo0 + 0.5, jlo0 + 0.5, jac)
    d0 = a00 * scale
    d1 = a10 * scale
    d2 = a01 * scale
    d3 = a11 * scale
    # |area| below 1e-12 of a pixel is rounding noise of a cell the drop does not reach
    key, q = _key_2x2(ilo0, ihi, jlo0, jhi, block, abs(a00) >= 1e-12, abs(a10) >= 1e-12,
                      abs(a01) >= 1e-12, abs(a11) >= 1e-12, d0, d1, d2, d3, use_ctx)
    return (key if small else _KEY_LARGE) if used else 0, q, d0, d1, d2, d3


@njit(nogil=True, cache=True, inline="always")
def _corners(i, c0, h, offl, offr, left, right):
    """The corners (-h,-h) (+h,-h) (+h,+h) (-h,+h) of the drop of pixel ``c0 + i``, as
    ``x0, y0, x1, y1, x2, y2, x3, y3``: ``left`` and ``right`` are the edge rows (see
    :func:`_kernel_square`) from the columns ``c0 + offl`` and ``c0 + offr`` that
    interpolate its left and right corners."""
    c = i + c0
    fl = (c - h) - (c + offl)   # as _bilinear_cell(c - h)
    gl = 1.0 - fl
    fr = (c + h) - (c + offr)
    gr = 1.0 - fr
    k = 4 * i
    return (gl * left[k] + fl * left[k + 4], gl * left[k + 1] + fl * left[k + 5],
            gr * right[k] + fr * right[k + 4], gr * right[k + 1] + fr * right[k + 5],
            gr * right[k + 2] + fr * right[k + 6], gr * right[k + 3] + fr * right[k + 7],
            gl * left[k + 2] + fl * left[k + 6], gl * left[k + 3] + fl * left[k + 7])


@njit(nogil=True, cache=True, error_model="numpy")
def _square_row(n, c0, h, offl, offr, w, left, right, block, use_ctx, out):
    """The row pass of the square kernel over input pixels c0..c0+n-1 of one row.

    ``w`` (from pixel c0) holds their weights; ``left`` and ``right`` the pixmap
    interpolated at the drops' bottom and top edges (the edge rows of
    :func:`_kernel_square`) from the columns ``c0 + offl`` and ``c0 + offr`` that
    interpolate their left and right corners (``offl``/``offr`` the same for every
    pixel of the run).  Writes ``out = (key, q, dow0, dow1, dow3, dow4)`` (from pixel c0
    on; the weight rows of cells 0, 1, 3, 4, see ``_KEY_LARGE``) of
    :func:`_drop_2x2`.  Branch-free and over plain 1-D arrays: Numba compiles
    the loop to SIMD code.
    """
    key, qq, dw0, dw1, dw2, dw3 = out
    for i in range(n):
        x0, y0, x1, y1, x2, y2, x3, y3 = _corners(i, c0, h, offl, offr, left, right)
        k, q, d0, d1, d2, d3 = _drop_2x2(w[i], x0, y0, x1, y1, x2, y2, x3, y3, block, use_ctx)
        key[i] = k
        qq[i] = q
        dw0[i] = d0
        dw1[i] = d1
        dw2[i] = d2
        dw3[i] = d3


@njit(nogil=True, cache=True, inline="always", error_model="numpy")
def _below_h(length, ya, yb, cut, h2m):
    """:func:`_below` with ``h2m = 1 / (2 |slope|)`` of the piece given."""
    lo = min(ya, yb)
    hi = max(ya, yb)
    full = length * 0.5 * (ya + yb)
    above = length * cut if lo >= cut else full - (hi - cut) * (hi - cut) * h2m
    return full if hi <= cut else above


@njit(nogil=True, cache=True, inline="always", error_model="numpy")
def _left_of_3x3(x0, y0, x1, y1, length, m, h2m, sg, on, cx):
    """An edge's (from x0 to x1 > x0, ``on`` if not vertical) signed shares over its part left
    of the cut line ``cx``: ``int y dx`` and ``int min(y, Y) dx`` for Y = 0.5, 1.5 (0 when no
    part of it is left of ``cx``)."""
    cut = x1 > cx
    yc = y0 + m * (cx - x0) if cut else y1
    lc = cx - x0 if cut else length
    inside = on & (x0 < cx)
    fx = sg * lc * 0.5 * (y0 + yc)
    f1 = sg * _below_h(lc, y0, yc, 0.5, h2m)
    f2 = sg * _below_h(lc, y0, yc, 1.5, h2m)
    return (fx if inside else 0.0), (f1 if inside else 0.0), (f2 if inside else 0.0)


@njit(nogil=True, cache=True, inline="always", error_model="numpy")
def _edge_3x3(xa, ya, xb, yb):
    """One edge's signed shares of the integrals of :func:`_overlap_3x3` (coordinates
    relative to the centre of the lower left cell, cut lines at 0.5 and 1.5):
    ``(fx1, fx2, fy1, fy2, f11, f12, f21, f22, fa)``, ``fxa = int y dx`` over its part
    left of ``Xa``, ``fyb = int min(y, Yb) dx`` over all of it, ``fab = int min(y, Yb) dx``
    over its part left of ``Xa``, ``fa = int y dx``.  Vertical edges add nothing."""
    right = xb > xa
    sg = 1.0 if right else -1.0
    x0 = xa if right else xb
    y0 = ya if right else yb
    x1 = xb if right else xa
    y1 = yb if right else ya
    length = x1 - x0
    m = (y1 - y0) / length
    h2m = length / (2.0 * abs(y1 - y0))
    on = xb != xa
    fa = sg * length * 0.5 * (y0 + y1)
    fy1 = sg * _below_h(length, y0, y1, 0.5, h2m)
    fy2 = sg * _below_h(length, y0, y1, 1.5, h2m)
    # the part left of X1 = 0.5, then of X2 = 1.5
    fx1, f11, f12 = _left_of_3x3(x0, y0, x1, y1, length, m, h2m, sg, on, 0.5)
    fx2, f21, f22 = _left_of_3x3(x0, y0, x1, y1, length, m, h2m, sg, on, 1.5)
    return (fx1, fx2, (fy1 if on else 0.0), (fy2 if on else 0.0), f11, f12, f21, f22, (fa if on else 0.0))


@njit(nogil=True, cache=True, inline="always", error_model="numpy")
def _overlap_3x3(x0, y0, x1, y1, x2, y2, x3, y3):
    """Areas of a drop (corners relative to the centre of its lower left cell) inside the
    3x3 cells from there, ``(a0, .., a8)`` with ``a[3 r + c]`` row r, column c, and the
    drop's area (all with the sign of its orientation).

    With ``F(X, Y) = area(x < X, y < Y)`` at the cut lines X1 = 0.5, X2 = 1.5 (and
    infinity), Y1 = 0.5, Y2 = 1.5 (and infinity), each a sum over the edges
    (:func:`_edge_3x3`), a cell is a 2-D difference of F at its corners.
    """
    e0 = _edge_3x3(x0, y0, x1, y1)
    e1 = _edge_3x3(x1, y1, x2, y2)
    e2 = _edge_3x3(x2, y2, x3, y3)
    e3 = _edge_3x3(x3, y3, x0, y0)
    fx1 = e0[0] + e1[0] + e2[0] + e3[0]
    fx2 = e0[1] + e1[1] + e2[1] + e3[1]
    fy1 = e0[2] + e1[2] + e2[2] + e3[2]
    fy2 = e0[3] + e1[3] + e2[3] + e3[3]
    f11 = e0[4] + e1[4] + e2[4] + e3[4]
    f12 = e0[5] + e1[5] + e2[5] + e3[5]
    f21 = e0[6] + e1[6] + e2[6] + e3[6]
    f22 = e0[7] + e1[7] + e2[7] + e3[7]
    area = e0[8] + e1[8] + e2[8] + e3[8]
    return ((f11, f21 - f11, fy1 - f21,
             f12 - f11, f22 - f21 - f12 + f11, fy2 - fy1 - f22 + f21,
             fx1 - f12, fx2 - fx1 - f22 + f12, area - fx2 - fy2 + f22), area)


@njit(nogil=True, cache=True, error_model="numpy")
def _square_row3(n, cw, block, use_ctx, out):
    """The second row pass of the square kernel, over the ``n`` drops :func:`_square_row`
    left ``_KEY_LARGE``, gathered by :func:`_gather_large`: ``cw[9 m: 9 m + 8]`` the
    corners ``x0, y0, .., x3, y3`` of drop m, ``cw[9 m + 8]`` its weight (one flat input
    array: several made Numba's SIMD code give up).  Writes, with ``out = (key3, dow0, ..,
    dow8)``, its key into ``key3[m]`` (``_KEY_LARGE`` still when it does not lie within 3x3
    cells) and the weights of its 3x3 cells into ``dow0[m], .., dow8[m]``, from
    :func:`_overlap_3x3`: where :func:`_deposit_upto` reads them (not copied back to the
    pixels: that took 6 % of the kernel's time).  Branch-free: SIMD code."""
    bx0, bx1, by0, by1 = block
    key3, dw0, dw1, dw2, dw3, dw4, dw5, dw6, dw7, dw8 = out
    for m in range(n):
        x0 = cw[9 * m + 0]
        y0 = cw[9 * m + 1]
        x1 = cw[9 * m + 2]
        y1 = cw[9 * m + 3]
        x2 = cw[9 * m + 4]
        y2 = cw[9 * m + 5]
        x3 = cw[9 * m + 6]
        y3 = cw[9 * m + 7]
        ilo0 = _nint(min(min(x0, x1), min(x2, x3)))
        ihi0 = _nint(max(max(x0, x1), max(x2, x3)))
        jlo0 = _nint(min(min(y0, y1), min(y2, y3)))
        jhi0 = _nint(max(max(y0, y1), max(y2, y3)))
        # relative to the lower left cell's centre (exact: a shift by whole pixels)
        ox = float(ilo0)
        oy = float(jlo0)
        a, area = _overlap_3x3(x0 - ox, y0 - oy, x1 - ox, y1 - oy, x2 - ox, y2 - oy, x3 - ox, y3 - oy)
        scale = cw[9 * m + 8] / area
        ihi = min(ihi0, bx1)
        jhi = min(jhi0, by1)
        cx0 = (ilo0 >= bx0) & (ilo0 <= ihi)
        cx1 = (ilo0 + 1 >= bx0) & (ilo0 + 1 <= ihi)
        cx2 = (ilo0 + 2 >= bx0) & (ilo0 + 2 <= ihi)
        ry0 = (jlo0 >= by0) & (jlo0 <= jhi)
        ry1 = (jlo0 + 1 >= by0) & (jlo0 + 1 <= jhi)
        ry2 = (jlo0 + 2 >= by0) & (jlo0 + 2 <= jhi)
        d = (a[0] * scale, a[1] * scale, a[2] * scale, a[3] * scale, a[4] * scale, a[5] * scale,
             a[6] * scale, a[7] * scale, a[8] * scale)
        # |area| below 1e-12 of a pixel is rounding noise of a cell the drop does not reach
        k = 0
        k += 1 if cx0 & ry0 & (abs(a[0]) >= 1e-12) else 0
        k += 2 if cx1 & ry0 & (abs(a[1]) >= 1e-12) else 0
        k += 4 if cx2 & ry0 & (abs(a[2]) >= 1e-12) else 0
        k += 8 if cx0 & ry1 & (abs(a[3]) >= 1e-12) else 0
        k += 16 if cx1 & ry1 & (abs(a[4]) >= 1e-12) else 0
        k += 32 if cx2 & ry1 & (abs(a[5]) >= 1e-12) else 0
        k += 64 if cx0 & ry2 & (abs(a[6]) >= 1e-12) else 0
        k += 128 if cx1 & ry2 & (abs(a[7]) >= 1e-12) else 0
        k += 256 if cx2 & ry2 & (abs(a[8]) >= 1e-12) else 0
        pos = 0
        pos += 512 if d[0] > 0.0 else 0
        pos += 1024 if d[1] > 0.0 else 0
        pos += 2048 if d[2] > 0.0 else 0
        pos += 4096 if d[3] > 0.0 else 0
        pos += 8192 if d[4] > 0.0 else 0
        pos += 16384 if d[5] > 0.0 else 0
        pos += 32768 if d[6] > 0.0 else 0
        pos += 65536 if d[7] > 0.0 else 0
        pos += 131072 if d[8] > 0.0 else 0
        k += (k * 512) & pos if use_ctx else 0
        take = (ihi0 - ilo0 <= 2) & (jhi0 - jlo0 <= 2) & (area != 0.0)
        key3[m] = k if take else _KEY_LARGE
        dw0[m] = d[0]
        dw1[m] = d[1]
        dw2[m] = d[2]
        dw3[m] = d[3]
        dw4[m] = d[4]
        dw5[m] = d[5]
        dw6[m] = d[6]
        dw7[m] = d[7]
        dw8[m] = d[8]


@njit(nogil=True, cache=True)
def _gather_large(h, il, ir, w_row, edges, key, idx, cw):
    """The pixels of the row :func:`_square_row` left ``_KEY_LARGE``: their indices into
    ``idx``, their drops' corners (as :func:`_corners`) and weights into ``cw`` (see
    :func:`_square_row3`); returns how many."""
    n = 0
    for i in range(key.shape[0]):   # branch-free
        idx[n] = i
        n += 1 if key[i] == _KEY_LARGE else 0
    for m in range(n):
        i = idx[m]
        a = il[i]
        b = ir[i]
        fl = (i - h) - a   # as _corners
        gl = 1.0 - fl
        fr = (i + h) - b
        gr = 1.0 - fr
        ka = 4 * a
        kb = 4 * b
        cw[9 * m + 0] = gl * edges[ka] + fl * edges[ka + 4]
        cw[9 * m + 1] = gl * edges[ka + 1] + fl * edges[ka + 5]
        cw[9 * m + 2] = gr * edges[kb] + fr * edges[kb + 4]
        cw[9 * m + 3] = gr * edges[kb + 1] + fr * edges[kb + 5]
        cw[9 * m + 4] = gr * edges[kb + 2] + fr * edges[kb + 6]
        cw[9 * m + 5] = gr * edges[kb + 3] + fr * edges[kb + 7]
        cw[9 * m + 6] = gl * edges[ka + 2] + fl * edges[ka + 6]
        cw[9 * m + 7] = gl * edges[ka + 3] + fl * edges[ka + 7]
        cw[9 * m + 8] = w_row[i]
    return n


@njit(nogil=True, cache=True, inline="always")
def _square_run(c, n, h, il, ir, w_row, edges, block, use_ctx, out):
    """:func:`_square_row` over pixels c..c+n-1, whose corner columns are il[c] + k and
    ir[c] + k."""
    a = il[c]
    b = ir[c]
    key, qq, dw = out
    _square_row(n, c, h, a - c, b - c, w_row[c:], edges[4 * a:], edges[4 * b:], block, use_ctx,
                (key[c:], qq[c:], dw[0, c:], dw[1, c:], dw[3, c:], dw[4, c:]))


#: One pixel, as a run length: an int64, not the literal 1 (with which Numba would
#: compile each row pass a second time, for n = 1)
_ONE = np.int64(1)


@njit(nogil=True, cache=True, inline="always")
def _square_pass(i0, i1, h, il, ir, w_row, edges, block, use_ctx, out):
    """:func:`_square_run` over a whole row: the run [i0, i1) at once, the pixels
    outside it one by one."""
    _square_run(i0, i1 - i0, h, il, ir, w_row, edges, block, use_ctx, out)
    for i in range(w_row.shape[0]):
        if i < i0 or i >= i1:
            _square_run(i, _ONE, h, il, ir, w_row, edges, block, use_ctx, out)


@njit(nogil=True, cache=True, error_model="numpy")
def _count_large(key):
    """How many ``_KEY_LARGE`` pixels a row pass left (SIMD code)."""
    n = 0
    for i in range(key.shape[0]):
        n += 1 if key[i] == _KEY_LARGE else 0
    return n


@njit(nogil=True, cache=True, inline="always")
def _edge_row(pixmap, t, edges, k):
    """The pixmap interpolated linearly in y at input row position ``t``, every column c,
    into ``edges[4 c + k]`` (x) and ``edges[4 c + k + 1]`` (y)."""
    iy, fy, gy = _bilinear_cell(t, pixmap.shape[0])
    for c in range(pixmap.shape[1]):
        edges[4 * c + k] = gy * pixmap[iy, c, 0] + fy * pixmap[iy + 1, c, 0]
        edges[4 * c + k + 1] = gy * pixmap[iy, c, 1] + fy * pixmap[iy + 1, c, 1]


@njit(nogil=True, cache=True)
def _square_large(num, den, ctx, p, i, d, w, h, il, ir, edges, xo, yo, acc, vr, vs, qr, qs):
    """Deposit the drop of pixel i of the row when it spans more than 3x3 cells:
    :func:`_overlap_columns` up to ``_MAXBOX`` cells a side, :func:`_overlap_cell` beyond.
    (Called, not inlined: rare near unit scale, and the row's deposit loop stays small.)"""
    nby, nbx = num.shape
    bx1 = p.bx0 + nbx - 1
    by1 = p.by0 + nby - 1
    a = il[i]
    b = ir[i]
    xo[0], yo[0], xo[1], yo[1], xo[2], yo[2], xo[3], yo[3] = _corners(0, i, h, a - i, b - i, edges[4 * a:], edges[4 * b:])
    xmn = min(min(xo[0], xo[1]), min(xo[2], xo[3]))
    xmx = max(max(xo[0], xo[1]), max(xo[2], xo[3]))
    ymn = min(min(yo[0], yo[1]), min(yo[2], yo[3]))
    ymx = max(max(yo[0], yo[1]), max(yo[2], yo[3]))
    ilo = max(_nint(xmn), p.bx0)
    ihi = min(_nint(xmx), bx1)
    jlo = max(_nint(ymn), p.by0)
    jhi = min(_nint(ymx), by1)
    jac = 0.0
    for k in range(4):
        x0, y0, x1, y1 = _edge(xo, yo, k)
        jac += (x1 - x0) * (y0 + y1)
    jac *= 0.5
    scale = w / jac
    if _nint(xmx) - _nint(xmn) < _MAXBOX and _nint(ymx) - _nint(ymn) < _MAXBOX:
        mj = jhi - jlo + 1
        _overlap_columns(xo, yo, ilo, ihi, jlo, mj, acc)
        for ii in range(ilo, ihi + 1):
            base = (ii - ilo) * mj
            for r in range(mj):
                _deposit_area(num, den, ctx, p, ii, jlo + r, acc[base + r], scale, d, ilo, ihi, jlo, jhi,
                              vr, vs, qr, qs, i)
    else:
        for jj in range(jlo, jhi + 1):
            for ii in range(ilo, ihi + 1):
                _deposit_area(num, den, ctx, p, ii, jj, _overlap_cell(xo, yo, ii, jj), scale, d,
                              ilo, ihi, jlo, jhi, vr, vs, qr, qs, i)


@njit(nogil=True, cache=True, error_model="numpy")
def _kernel_square(data, weights, pixmap, num, den, ctx, p, x):
    """Exact overlap of each mapped drop (a quadrilateral) with the output cells.

    The drop is the input pixel shrunk by pixfrac about its centre; its four
    corners are the pixmap interpolated bilinearly, as drizzle does (the nearest
    2x2 cell of pixmap samples, extrapolating at the input's edges).  The
    overlaps come from :func:`_overlap_2x2` when the drop lies within 2x2 cells
    (the usual case near unit scale and no rotation), :func:`_overlap_3x3`
    within 3x3 cells (a unit drop rotated by t spans cos t + sin t pixels: most
    drops of a chip on a north-up frame), :func:`_overlap_columns` up to
    ``_MAXBOX`` cells a side, :func:`_overlap_cell` beyond.

    Each input row is done in two passes: :func:`_square_row` works out every
    drop's 2x2 weights at once (SIMD code), and :func:`_square_row3` those of the
    drops it leaves, gathered (when there are any), then the weights are added
    to the sums pixel by pixel, in the same order as one pass would, the sums'
    cells prefetched (:func:`_prefetch_cells`) while the 3x3 pass runs.
    """
    ny, nx = data.shape
    vr, vs, qr, qs = x[6], x[2], x[4], x[5]
    nbx = num.shape[1]
    h = 0.5 * p.pixfrac
    block, flat, (w_row, d_row, _, _), out = _scratch(nx, num, den, ctx, p, nx)
    xo = np.empty(4)
    yo = np.empty(4)
    acc = np.zeros(_MAXBOX * _MAXBOX)
    # the drops of a row that need the 3x3 pass, gathered (see _square_row3)
    idx = np.empty(nx, np.int64)
    cw = np.empty(9 * nx)
    # the edge rows: the pixmap interpolated at the drops' bottom (y = j-h) and
    # top (y = j+h) edges, every input column c, as edges[4c:4c+4] = (bottom x,
    # bottom y, top x, top y): the corners are then one interpolation in x.  (One
    # flat array: the row passes then read few arrays, which their SIMD code must
    # check for overlap with what they write, and at a stride known when compiled.)
    # With pixfrac 1 a row's top edge is the next row's bottom edge: reused.
    edges = np.empty(4 * nx)
    # the columns that interpolate each pixel's left and right corners, and the
    # run of pixels [i0, i1) where they are i + offl and i + offr
    il = np.empty(nx, np.int64)
    ir = np.empty(nx, np.int64)
    for i in range(nx):
        il[i] = _bilinear_cell(i - h, nx)[0]
        ir[i] = _bilinear_cell(i + h, nx)[0]
    i0 = nx // 2
    offl = il[i0] - i0
    offr = ir[i0] - i0
    while i0 > 0 and il[i0 - 1] == i0 - 1 + offl and ir[i0 - 1] == i0 - 1 + offr:
        i0 -= 1
    i1 = nx // 2
    while i1 < nx and il[i1] == i1 + offl and ir[i1] == i1 + offr:
        i1 += 1
    for j in range(ny):
        _load_row(data, weights, pixmap, j, p, w_row, d_row, w_row, w_row, False, x)
        if j > 0 and j - h == (j - 1) + h:
            for c in range(nx):
                edges[4 * c] = edges[4 * c + 2]
                edges[4 * c + 1] = edges[4 * c + 3]
        else:
            _edge_row(pixmap, j - h, edges, 0)
        _edge_row(pixmap, j + h, edges, 2)
        _square_pass(i0, i1, h, il, ir, w_row, edges, block, p.use_ctx, out)
        _prefetch_cells(nx, out[1], nbx, flat, p.use_ctx, vs, 3)
        key, _, dw = out
        if _count_large(key[:nx]):   # the 3x3 pass over the drops that need it, gathered
            n3 = _gather_large(h, il, ir, w_row, edges, key[:nx], idx, cw)
            _square_row3(n3, cw, block, p.use_ctx, (key[nx:], dw[0, nx:], dw[1, nx:], dw[2, nx:], dw[3, nx:],
                                                    dw[4, nx:], dw[5, nx:], dw[6, nx:], dw[7, nx:], dw[8, nx:]))
        i, m = _deposit_upto(0, nx, 0, out, d_row, nbx, flat, p.bit, vr, vs, qr, qs)
        while i < nx:   # at a drop larger than 3x3 cells
            _square_large(num, den, ctx, p, i, d_row[i], w_row[i], h, il, ir, edges, xo, yo, acc, vr, vs, qr, qs)
            i, m = _deposit_upto(i + 1, nx, m + 1, out, d_row, nbx, flat, p.bit, vr, vs, qr, qs)


@njit(nogil=True, cache=True, error_model="numpy")
def _point_row(n, w, x, y, block, qq):
    """Row pass of the point kernel (branch-free: SIMD code): ``qq[i]`` the flat cell of the
    block nearest pixel i's mapped centre, -1 where the pixel is not drizzled (weight 0, see
    :func:`_load_row`) or the cell lies outside the block."""
    bx0, bx1, by0, by1 = block
    nbx = bx1 - bx0 + 1
    for i in range(n):
        keep = w[i] != 0.0
        # a centre that is not finite has weight 0: 0.0 instead, and far ones clamped, so
        # that the conversions to int below are defined for every pixel
        xc = min(max(x[i] if keep else 0.0, -1e9), 1e9)
        yc = min(max(y[i] if keep else 0.0, -1e9), 1e9)
        ii = _nint(xc)
        jj = _nint(yc)
        inside = keep & (ii >= bx0) & (ii <= bx1) & (jj >= by0) & (jj <= by1)
        qq[i] = (jj - by0) * nbx + (ii - bx0) if inside else -1


@njit(nogil=True, cache=True, error_model="numpy")
def _kernel_point(data, weights, pixmap, num, den, ctx, p, x):
    """All of the weight to the output pixel nearest the mapped centre.  Per input row: a
    branch-free pass finds every pixel's cell (:func:`_point_row`), then the deposits."""
    ny, nx = data.shape
    vr, vs, qr, qs = x[6], x[2], x[4], x[5]
    block, flat, (w_row, d_row, x_row, y_row), (_, qq, _) = _scratch(nx, num, den, ctx, p)
    numf, denf, ctxf = flat
    for j in range(ny):
        _load_row(data, weights, pixmap, j, p, w_row, d_row, x_row, y_row, True, x)
        _point_row(nx, w_row, x_row, y_row, block, qq)
        _prefetch_cells(nx, qq, num.shape[1], flat, p.use_ctx, vs, 1)
        for i in range(nx):
            q = qq[i]
            if q >= 0:
                w = w_row[i]
                _deposit_flat(numf, denf, ctxf, q, w, d_row[i], p.use_ctx & (w > 0.0), p.bit, vr, vs, qr, qs, i, p)


@njit(nogil=True, cache=True, inline="always")
def _turbo_box(x, y, pfo, block):
    """The turbo drop's edges and the block's cells it reaches, as the unclipped
    ``(xxi, xxa, yyi, yya, ilo0, ihi0, jlo0, jhi0)`` and the clipped ``(ilo, ihi, jlo, jhi)``."""
    bx0, bx1, by0, by1 = block
    xxi = x - pfo
    xxa = x + pfo
    yyi = y - pfo
    yya = y + pfo
    ilo0 = _nint(xxi)
    ihi0 = _nint(xxa)
    jlo0 = _nint(yyi)
    jhi0 = _nint(yya)
    return ((xxi, xxa, yyi, yya, ilo0, ihi0, jlo0, jhi0),
            (max(ilo0, bx0), min(ihi0, bx1), max(jlo0, by0), min(jhi0, by1)))


@njit(nogil=True, cache=True, error_model="numpy")
def _turbo_row(n, pfo, ac, w, x, y, block, use_ctx, out):
    """Row pass of the turbo kernel: ``out = (key, q, dow)`` as the square kernel's
    (cells 0, 1, 3, 4 of ``dow``); drops reaching more than 2x2 cells get ``_KEY_LARGE``."""
    key, qq, dw = out
    dw0, dw1, dw2, dw3 = dw[0], dw[1], dw[3], dw[4]
    for i in range(n):
        (xxi, xxa, yyi, yya, ilo0, ihi0, jlo0, jhi0), (ilo, ihi, jlo, jhi) = _turbo_box(x[i], y[i], pfo, block)
        wa = w[i] * ac
        dx0 = min(xxa, ilo0 + 0.5) - max(xxi, ilo0 - 0.5)
        dx1 = min(xxa, (ilo0 + 1) + 0.5) - max(xxi, (ilo0 + 1) - 0.5)
        dy0 = min(yya, jlo0 + 0.5) - max(yyi, jlo0 - 0.5)
        dy1 = min(yya, (jlo0 + 1) + 0.5) - max(yyi, (jlo0 + 1) - 0.5)
        d0 = dx0 * dy0 * wa
        d1 = dx1 * dy0 * wa
        d2 = dx0 * dy1 * wa
        d3 = dx1 * dy1 * wa
        k, q = _key_2x2(ilo0, ihi, jlo0, jhi, block, (dx0 > 0.0) & (dy0 > 0.0), (dx1 > 0.0) & (dy0 > 0.0),
                        (dx0 > 0.0) & (dy1 > 0.0), (dx1 > 0.0) & (dy1 > 0.0), d0, d1, d2, d3, use_ctx)
        small = (ihi0 - ilo0 <= 1) & (jhi0 - jlo0 <= 1)
        key[i] = (k if small else _KEY_LARGE) if w[i] != 0.0 else 0
        qq[i] = q
        dw0[i] = d0
        dw1[i] = d1
        dw2[i] = d2
        dw3[i] = d3


@njit(nogil=True, cache=True)
def _turbo_large(num, den, ctx, p, xc, yc, wa, d, pfo, block, vr, vs, qr, qs, i):
    """Deposit one turbo drop (input pixel ``i`` of the row) that reaches more than 2x2
    cells, cell by cell."""
    (xxi, xxa, yyi, yya, _, _, _, _), (ilo, ihi, jlo, jhi) = _turbo_box(xc, yc, pfo, block)
    for jj in range(jlo, jhi + 1):
        dy = min(yya, jj + 0.5) - max(yyi, jj - 0.5)
        if dy <= 0.0:
            continue
        for ii in range(ilo, ihi + 1):
            dx = min(xxa, ii + 0.5) - max(xxi, ii - 0.5)
            if dx <= 0.0:
                continue
            _deposit(num, den, ctx, jj - p.by0, ii - p.bx0, dx * dy * wa, d, p, vr, vs, qr, qs, i)


@njit(nogil=True, cache=True, error_model="numpy")
def _kernel_turbo(data, weights, pixmap, num, den, ctx, p, x):
    """An axis-aligned square of side pixfrac/psr centred on the mapped centre.
    Two passes per input row, as the square kernel."""
    ny, nx = data.shape
    vr, vs, qr, qs = x[6], x[2], x[4], x[5]
    nbx = num.shape[1]
    pfo = p.pixfrac / p.psr / 2.0
    ac = p.psr * p.psr / (p.pixfrac * p.pixfrac)
    block, flat, (w_row, d_row, x_row, y_row), out = _scratch(nx, num, den, ctx, p)
    for j in range(ny):
        _load_row(data, weights, pixmap, j, p, w_row, d_row, x_row, y_row, True, x)
        _turbo_row(nx, pfo, ac, w_row, x_row, y_row, block, p.use_ctx, out)
        _prefetch_cells(nx, out[1], nbx, flat, p.use_ctx, vs, 3)
        i, _ = _deposit_upto(0, nx, None, out, d_row, nbx, flat, p.bit, vr, vs, qr, qs)
        while i < nx:   # at a drop larger than 2x2 cells
            _turbo_large(num, den, ctx, p, x_row[i], y_row[i], w_row[i] * ac, d_row[i], pfo, block, vr, vs, qr, qs, i)
            i, _ = _deposit_upto(i + 1, nx, None, out, d_row, nbx, flat, p.bit, vr, vs, qr, qs)


@njit(nogil=True, cache=True, error_model="numpy")
def _kernel_gaussian(data, weights, pixmap, num, den, ctx, p, x):
    """Gaussian weights sampled at output pixel centres (drizzle's, not normalised)."""
    ny, nx = data.shape
    vr, vs, qr, qs = x[6], x[2], x[4], x[5]
    nby, nbx = num.shape
    bx1 = p.bx0 + nbx - 1
    by1 = p.by0 + nby - 1
    pfo = 2.5 * p.pixfrac / 2.3548 / p.psr
    if pfo < 1.2 / p.psr:
        pfo = 1.2 / p.psr
    efac = 2.3548 * 2.3548 * p.psr * p.psr / (2.0 * p.pixfrac * p.pixfrac)
    es = efac / math.pi
    _, (numf, denf, ctxf), (w_row, d_row, x_row, y_row), _ = _scratch(nx, num, den, ctx, p)
    gx = np.empty(int(2.0 * pfo) + 3)   # the x factor of the weight, the window's columns
    for j in range(ny):
        _load_row(data, weights, pixmap, j, p, w_row, d_row, x_row, y_row, True, x)
        for i in range(nx):
            w = w_row[i]
            if w == 0.0:
                continue
            d = d_row[i]
            xc = x_row[i]
            yc = y_row[i]
            ilo = max(_nint(xc - pfo), p.bx0)
            ihi = min(_nint(xc + pfo), bx1)
            jlo = max(_nint(yc - pfo), p.by0)
            jhi = min(_nint(yc + pfo), by1)
            # exp(-r^2 efac) = exp(-dx^2 efac) exp(-dy^2 efac): one exp per column and
            # per row instead of one per cell (the product rounds differently from
            # the exp of the sum, by a few 1e-16)
            for ii in range(ilo, ihi + 1):
                ddx = xc - ii
                gx[ii - ilo] = math.exp(-(ddx * ddx) * efac)
            for jj in range(jlo, jhi + 1):
                ddy = yc - jj
                gy = es * math.exp(-(ddy * ddy) * efac)
                base = (jj - p.by0) * nbx - p.bx0
                for ii in range(ilo, ihi + 1):
                    dow = gy * gx[ii - ilo] * w
                    if dow != 0.0:
                        _deposit_flat(numf, denf, ctxf, base + ii, dow, d, p.use_ctx & (dow > 0.0), p.bit,
                                      vr, vs, qr, qs, i, p)


@njit(nogil=True, cache=True, error_model="numpy")
def _kernel_lanczos(data, weights, pixmap, num, den, ctx, p, x, lut, pfo, sdp, offset, nint_window):
    """Separable Lanczos weights ``lut[nint(|d| sdp) + offset]`` (not normalised) over the
    window ``floor(x-pfo)+1 .. floor(x+pfo)``, or ``nint(x-pfo) .. nint(x+pfo)`` with
    ``nint_window``; indices beyond the table give no weight.  ``x``: the variance/DQ
    arrays (see :func:`_run_kernel`)."""
    ny, nx = data.shape
    vr, vs, qr, qs = x[6], x[2], x[4], x[5]
    nby, nbx = num.shape
    bx1 = p.bx0 + nbx - 1
    by1 = p.by0 + nby - 1
    nlut = lut.shape[0]
    _, (numf, denf, ctxf), (w_row, d_row, x_row, y_row), _ = _scratch(nx, num, den, ctx, p)
    # the table's weights of the window's columns (and whether the table reaches them)
    lx = np.empty(int(2.0 * pfo) + 3, lut.dtype)
    in_lut = np.empty(lx.shape[0], np.bool_)
    for j in range(ny):
        _load_row(data, weights, pixmap, j, p, w_row, d_row, x_row, y_row, True, x)
        for i in range(nx):
            w = w_row[i]
            if w == 0.0:
                continue
            d = d_row[i]
            xc = x_row[i]
            yc = y_row[i]
            if nint_window:
                ilo, ihi = max(_nint(xc - pfo), p.bx0), min(_nint(xc + pfo), bx1)
                jlo, jhi = max(_nint(yc - pfo), p.by0), min(_nint(yc + pfo), by1)
            else:
                ilo = max(int(math.floor(xc - pfo)) + 1, p.bx0)
                ihi = min(int(math.floor(xc + pfo)), bx1)
                jlo = max(int(math.floor(yc - pfo)) + 1, p.by0)
                jhi = min(int(math.floor(yc + pfo)), by1)
            for ii in range(ilo, ihi + 1):
                ix = int(math.floor(abs(xc - ii) * sdp + 0.5)) + offset   # nint of a value >= 0
                in_lut[ii - ilo] = ix < nlut
                lx[ii - ilo] = lut[min(ix, nlut - 1)]
            for jj in range(jlo, jhi + 1):
                iy = int(math.floor(abs(yc - jj) * sdp + 0.5)) + offset
                if iy >= nlut:
                    continue
                ly = lut[iy]
                base = (jj - p.by0) * nbx - p.bx0
                for ii in range(ilo, ihi + 1):
                    dow = lx[ii - ilo] * ly * w
                    if in_lut[ii - ilo] and dow != 0.0:
                        _deposit_flat(numf, denf, ctxf, base + ii, dow, d, p.use_ctx & (dow > 0.0), p.bit,
                                      vr, vs, qr, qs, i, p)


def _lanczos(data, weights, pixmap, num, den, ctx, p, x, order, table="drizzle"):
    """The Lanczos kernel of ``order`` with the look-up table (and indexing) ``table``; ``x``
    the variance/DQ arrays."""
    lut = lanczos_table(table, order)
    if table == "drizzle":
        # drizzle forms the table step psr / 0.003 in single precision; a
        # double-precision step moves indices that sit within ~1e-5 of a half.
        sdp = np.float64(np.float32(p.psr) / np.float32(_LANCZOS_DEL))
        _kernel_lanczos(data, weights, pixmap, num, den, ctx, p, x, lut, order / p.psr, sdp, 0, False)
    else:
        sdp = p.psr / np.float64(_DRIZZLEPAC_DEL) / p.pixfrac
        _kernel_lanczos(data, weights, pixmap, num, den, ctx, p, x, lut, order * p.pixfrac / p.psr, sdp, 1, True)


@njit(nogil=True, cache=True)
def _kernel_tophat(data, weights, pixmap, num, den, ctx, p, x):
    """Equal shares of the weight to the output centres within pixfrac/(2 psr)."""
    ny, nx = data.shape
    vr, vs, qr, qs = x[6], x[2], x[4], x[5]
    nby, nbx = num.shape
    bx1 = p.bx0 + nbx - 1
    by1 = p.by0 + nby - 1
    pfo = p.pixfrac / p.psr / 2.0
    pfo2 = pfo * pfo
    w_row = np.empty(nx)
    d_row = np.empty(nx)
    x_row = np.empty(nx)
    y_row = np.empty(nx)
    for j in range(ny):
        _load_row(data, weights, pixmap, j, p, w_row, d_row, x_row, y_row, True, x)
        for i in range(nx):
            w = w_row[i]
            if w == 0.0:
                continue
            d = d_row[i]
            xc = x_row[i]
            yc = y_row[i]
            # count every output centre inside the circle (on or off the
            # frame) so that clipping at the frame edge does not change the
            # weight given to the pixels that remain
            nlo = _nint(xc - pfo)
            nhi = _nint(xc + pfo)
            mlo = _nint(yc - pfo)
            mhi = _nint(yc + pfo)
            nhit = 0
            for jj in range(mlo, mhi + 1):
                ddy = yc - jj
                for ii in range(nlo, nhi + 1):
                    ddx = xc - ii
                    if ddx * ddx + ddy * ddy <= pfo2:
                        nhit += 1
            if nhit == 0:
                continue
            dow = w / nhit
            for jj in range(max(mlo, p.by0), min(mhi, by1) + 1):
                ddy = yc - jj
                for ii in range(max(nlo, p.bx0), min(nhi, bx1) + 1):
                    ddx = xc - ii
                    if ddx * ddx + ddy * ddy <= pfo2:
                        _deposit(num, den, ctx, jj - p.by0, ii - p.bx0, dow, d, p, vr, vs, qr, qs, i)


#: kernel name -> Numba function(data, weights, pixmap, num, den, ctx, p)
_KERNEL_FUNCS = {
    "square": _kernel_square,
    "point": _kernel_point,
    "turbo": _kernel_turbo,
    "gaussian": _kernel_gaussian,
    "lanczos2": functools.partial(_lanczos, order=2),
    "lanczos3": functools.partial(_lanczos, order=3),
    "tophat": _kernel_tophat,
}
assert tuple(_KERNEL_FUNCS) == KERNELS


# ---------------------------------------------------------------------------
# Finishing: fold the sums back into the running mean arrays
# ---------------------------------------------------------------------------


@njit(nogil=True, cache=True)
def _all_zero(arr, x0, y0, nx, ny):
    for jj in range(y0, y0 + ny):
        row = arr[jj, x0:x0 + nx]
        nonzero = 0
        for ii in range(nx):   # no early exit within a row: SIMD code
            nonzero |= row[ii] != 0.0
        if nonzero:
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


@njit(nogil=True, cache=True, error_model="numpy")
def _store_row(sci, wht, num, den, n):
    """One row of :func:`_store_sums` (1-D arrays; branch-free, so SIMD code)."""
    for i in range(n):
        wv = den[i]
        old = wht[i]
        changed = wv != old
        q = num[i] / wv
        wht[i] = np.float32(wv) if changed else old
        sci[i] = np.float32(q) if changed & (wv != 0.0) else sci[i]


@njit(nogil=True, cache=True)
def _store_sums(out_sci, out_wht, num, den, bx0, by0):
    """Where the summed weight changed, the new weight and the science num / den."""
    nby, nbx = num.shape
    for jj in range(nby):
        _store_row(out_sci[jj + by0, bx0:], out_wht[jj + by0, bx0:], num[jj], den[jj], nbx)


def _bit_for(uniqid: int) -> tuple[int, np.int32]:
    plane = (uniqid - 1) // 32
    bit = np.array([1 << ((uniqid - 1) % 32)], dtype=np.uint32).view(np.int32)[0]
    return plane, bit


def context_planes_needed(uniqid: int) -> int:
    """Number of 32-bit context planes that input ``uniqid`` (1-based) needs."""
    return (int(uniqid) - 1) // 32 + 1


def grow_context(out_ctx: np.ndarray, uniqid: int) -> np.ndarray:
    """Return a context image as 3-D with enough planes for input ``uniqid``.

    Parameters
    ----------
    out_ctx : numpy.ndarray
        int32 context bit field, ``(ny, nx)`` (one plane) or ``(nplanes, ny, nx)``.
    uniqid : int
        1-based input number; bit ``(uniqid - 1) % 32`` of plane ``(uniqid - 1) // 32``.

    Returns
    -------
    numpy.ndarray
        ``(nplanes, ny, nx)`` int32.  When more planes are needed a new array (the old planes
        copied, the new ones zero); otherwise ``out_ctx`` itself (as a 3-D view).
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


def _centre_margin(kernel: str, pixfrac: float, psr: float, step: float, table: str = "drizzle") -> int:
    """Output pixels a deposit can lie beyond the extent of the mapped pixel centres.

    Half an input pixel (at most ``step``, the largest distance between
    neighbouring centres, for the square kernel whose drop the pixmap sizes;
    ``0.5 / psr`` for the others, which psr sizes) plus the kernel's reach,
    and one pixel to spare.
    """
    scale = 0.5 / step if kernel == "square" and step > 0.0 else psr
    return int(math.ceil(0.5 / scale + kernel_reach(kernel, pixfrac, scale, table))) + 1


def _prepare(data, pixmap, weights, kernel, pixfrac, iscale, pixel_scale_ratio, wt_scl,
             exptime, in_units):
    """Validate and normalise the arguments shared by drizzle_add and drizzle_sums."""
    kernel = str(kernel).lower()
    if kernel not in _KERNEL_FUNCS:
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


def _ext_inputs(var, dq, shape):
    """The variance arrays as one float32 ``(nvar, ny, nx)`` array (``nvar`` 0 without
    ``var``) and the DQ as uint32 (``None`` without ``dq``), checked against ``shape``."""
    if var is None:
        var3 = np.zeros((0, 1, 1), dtype=np.float32)
    else:
        arrays = [var] if isinstance(var, np.ndarray) and var.ndim == 2 else list(var)
        var3 = np.ascontiguousarray(np.array(arrays, dtype=np.float32, ndmin=3))
        if var3.shape[1:] != shape:
            raise ValueError(f"var shape {var3.shape[1:]} does not match data shape {shape}")
    if dq is not None:
        dq = np.asarray(dq)
        if dq.dtype.kind not in "iu" or dq.dtype.itemsize > 4:
            raise TypeError("dq must be an integer array of at most 4 bytes per pixel")
        if dq.shape != shape:
            raise ValueError(f"dq shape {dq.shape} does not match data shape {shape}")
        # the bits as they are (int16 -32768 is bit 15), widened to 32
        dq = np.ascontiguousarray(dq.view(f"u{dq.dtype.itemsize}"), dtype=np.uint32)
    return var3, dq


def _var_outputs(out_var, nvar, shape, dtype, name):
    """``out_var`` (one 2-D array or a sequence of them, ``dtype``) as a list of ``nvar``
    arrays of ``shape``; ``[]`` when there is no variance."""
    if out_var is None:
        if nvar:
            raise ValueError(f"var is given but {name} is not")
        return []
    arrays = [out_var] if isinstance(out_var, np.ndarray) and out_var.ndim == 2 else list(out_var)
    if len(arrays) != nvar:
        raise ValueError(f"{name} has {len(arrays)} array(s) for {nvar} variance array(s)")
    for a in arrays:
        if not isinstance(a, np.ndarray) or a.dtype != dtype or a.shape != shape:
            raise TypeError(f"{name} must be {np.dtype(dtype).name} array(s) of shape {shape}")
        if not a.flags.writeable:
            raise ValueError(f"{name} is read-only")
    return arrays


def _dq_output(out_dq, dq, shape):
    """``out_dq`` checked (uint32, ``shape``); ``None`` when there is no DQ to propagate."""
    if dq is None:
        return None
    if not isinstance(out_dq, np.ndarray) or out_dq.dtype != np.uint32 or out_dq.shape != shape:
        raise TypeError(f"dq is given: out_dq must be a uint32 array of shape {shape}")
    return out_dq


def _check_table(name):
    if name not in LANCZOS_TABLES:
        raise ValueError(f"lanczos_table must be one of {', '.join(LANCZOS_TABLES)}; got {name!r}")
    return name


def _run_kernel(kernel, data, weights, use_weights, pixmap, num, den, bx0, by0, ctx, use_ctx, bit,
                pixfrac, psr, iscale, wt_scl, ext=None, lanczos_table="drizzle"):
    """Run a kernel on the sums; ``ext = (var3, var_sums3, dq, dq_sums)`` adds the variance
    sums ``sum(dow**2 var)`` (float64, ``(nvar,) + num.shape``) and the DQ OR (uint32,
    ``num.shape``), each part ``None`` (or ``nvar`` 0) when absent."""
    var3, var_sums, dq, dq_sums = ext if ext is not None else (None, None, None, None)
    if var3 is not None and var3.shape[0] == 0:
        var3 = var_sums = None
    if dq is None:
        dq_sums = None
    p = _Drop(int(bx0), int(by0), bool(use_weights), bool(use_ctx), np.int32(bit), float(iscale),
              float(wt_scl), float(pixfrac), float(psr))
    nx = data.shape[1]
    # the kernels index the sums as flat C-contiguous arrays: a strided view is
    # worked on as a copy and copied back
    arrays = [a for a in (num, den, ctx, var_sums, dq_sums) if a is not None]
    work = [a if a.flags.c_contiguous else np.ascontiguousarray(a) for a in arrays]
    num_w, den_w, ctx_w = work[:3]
    rest = iter(work[3:])
    var_w = next(rest) if var3 is not None else None
    dq_w = next(rest) if dq is not None else None
    # x = (var, var_row, var_sums, dq, dq_row, dq_sums, var_row as the deposits index it):
    # with one variance array the deposits get 1-D row and sums (their loop-free overload)
    var_row = None if var3 is None else np.empty((var3.shape[0], nx))
    var_flat = None if var3 is None else var_w.reshape(var3.shape[0], num.size)
    one = var3 is not None and var3.shape[0] == 1
    x = (var3, var_row, var_flat[0] if one else var_flat, dq, None if dq is None else np.empty(nx, dtype=np.uint32),
         None if dq is None else dq_w.reshape(-1), var_row[0] if one else var_row)
    extra = {"table": lanczos_table} if kernel.startswith("lanczos") else {}
    _KERNEL_FUNCS[kernel](data, weights, pixmap, num_w, den_w, ctx_w, p, x, **extra)
    for a, w in zip(arrays, work):
        if w is not a:
            a[...] = w


def drizzle_sums(data, pixmap, num, den, ctx=None, *, x0=0, y0=0, weights=None, kernel="square",
                 pixfrac=1.0, iscale=1.0, pixel_scale_ratio=1.0, wt_scl=1.0, exptime=1.0,
                 in_units="cps", bit=1, var=None, out_var=None, dq=None, out_dq=None,
                 lanczos_table="drizzle"):
    """Add one input's weighted sums to a block of the output frame, in place.

    The building block of the pipeline's reductions.  Drops partly outside the
    block add only their part inside it, and each output pixel gets its
    contributions in input order, so blocks that tile a frame add up exactly
    (bit for bit) to the untiled result.

    Parameters
    ----------
    data, pixmap, weights, kernel, pixfrac, iscale, pixel_scale_ratio, wt_scl, exptime, in_units, lanczos_table
        As :func:`drizzle_add`.
    num, den : 2-D float64 arrays (ny, nx)
        Gain ``sum(dow * d)`` and ``sum(dow)`` for output pixels
        ``[y0:y0+ny, x0:x0+nx]`` of the frame in which ``pixmap`` is expressed.
    ctx : 2-D int32 array (ny, nx), optional
        Gets ``bit`` OR-ed in where the weight added is positive.
    x0, y0 : int
        Output pixel of ``num[0, 0]``.
    bit : int
        The context bit (bit 31 may be given as ``1 << 31``).
    var, dq
        As :func:`drizzle_add`.
    out_var : 2-D float64 array or a sequence of them (one per ``var`` array)
        Gain ``sum(dow**2 * var * iscale**2)`` over the same block.
    out_dq : 2-D uint32 array
        Gets ``dq`` OR-ed in wherever a non-zero weight is added.

    Notes
    -----
    The science of the block is ``num / den`` where ``den != 0``, the variance
    ``out_var / den**2``.
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
    var3, dq = _ext_inputs(var, dq, data.shape)
    out_vars = _var_outputs(out_var, var3.shape[0], num.shape, np.float64, "out_var")
    out_dq = _dq_output(out_dq, dq, num.shape)
    if num.size:
        # one variance array: the kernel adds into a view of it (no copy there and back)
        one = len(out_vars) == 1
        var_sums = out_vars[0][np.newaxis] if one else np.array(out_vars).reshape((len(out_vars),) + num.shape)
        _run_kernel(kernel, data, weights, use_weights, pixmap, num, den, int(x0), int(y0), ctx, use_ctx,
                    bit, pixfrac, psr, iscale, wt_scl, (var3, var_sums, dq, out_dq), _check_table(lanczos_table))
        for a, v in zip(out_vars if not one else (), var_sums):
            a[...] = v


def _reach_box(data, pixmap, kernel, pixfrac, psr, ony, onx, lanczos_table):
    """The block of output pixels ``(bx0, bx1, by0, by1)`` this input can reach (empty
    when ``bx1 < bx0``).  Finding it costs a pass over the pixmap, worth it only when the
    output frame is much larger than the input: otherwise the whole frame."""
    if ony * onx <= 4 * data.size:
        return 0, onx - 1, 0, ony - 1
    xmin, xmax, ymin, ymax, step = _pixmap_extent(pixmap)
    if not math.isfinite(xmin):
        return 0, -1, 0, -1
    margin = _centre_margin(kernel, pixfrac, psr, step, lanczos_table)
    return (max(int(math.floor(xmin)) - margin, 0), min(int(math.ceil(xmax)) + margin, onx - 1),
            max(int(math.floor(ymin)) - margin, 0), min(int(math.ceil(ymax)) + margin, ony - 1))


@njit(nogil=True, cache=True)
def _load_var(out_var, out_wht, sums, bx0, by0):
    """The variance sums of a block from the running variance: ``var * wht**2``."""
    nby, nbx = sums.shape
    for jj in range(nby):
        for ii in range(nbx):
            wv = np.float64(out_wht[jj + by0, ii + bx0])
            sums[jj, ii] = out_var[jj + by0, ii + bx0] * (wv * wv) if wv != 0.0 else 0.0


@njit(nogil=True, cache=True)
def _store_var(out_var, out_wht, sums, den, bx0, by0):
    """Where the summed weight changed (``out_wht`` not yet stored), the variance
    ``sums / den**2``."""
    nby, nbx = sums.shape
    for jj in range(nby):
        for ii in range(nbx):
            wv = den[jj, ii]
            if wv != out_wht[jj + by0, ii + bx0] and wv != 0.0:
                out_var[jj + by0, ii + bx0] = np.float32(sums[jj, ii] / (wv * wv))


def drizzle_add(data, pixmap, out_sci, out_wht, out_ctx=None, *, weights=None,
                kernel="square", pixfrac=1.0, iscale=1.0, pixel_scale_ratio=1.0,
                wt_scl=1.0, exptime=1.0, in_units="cps", uniqid=1, fillval=None,
                var=None, out_var=None, fillval_var=None, dq=None, out_dq=None,
                lanczos_table="drizzle"):
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
    var : 2-D array or a sequence of 2-D arrays (ny_in, nx_in), optional
        Variances of ``data`` (several components may be given, e.g. read noise
        and Poisson), co-added with squared weights as drizzle 3.0 does: each
        output pixel's ``out_var`` is ``sum(dow**2 var iscale**2) / sum(dow)**2``,
        the variance of its weighted mean ``out_sci`` for independent inputs.
    out_var : float32 array or a sequence of them (ny_out, nx_out)
        The running variances, one per ``var`` array; updated in place.
    fillval_var : float or None
        As ``fillval``, for ``out_var``.
    dq : 2-D integer array (ny_in, nx_in), optional
        Data-quality bits; OR-ed into ``out_dq`` at every output pixel to which
        the input pixel gives a non-zero weight.
    out_dq : uint32 array (ny_out, nx_out)
        The propagated DQ; needed with ``dq``.
    lanczos_table : {"drizzle", "drizzlepac"}
        The lanczos kernels' look-up table (:data:`LANCZOS_TABLES`): drizzle 3.0's
        (the default, drizzle 3.0 parity) or drizzlepac 3.11's (AstroDrizzle's).

    Returns
    -------
    None
        ``out_sci``, ``out_wht``, ``out_ctx``, ``out_var`` and ``out_dq`` are
        updated in place.
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

    var3, dq = _ext_inputs(var, dq, data.shape)
    out_vars = _var_outputs(out_var, var3.shape[0], out_sci.shape, np.float32, "out_var")
    out_dq = _dq_output(out_dq, dq, out_sci.shape)

    # The scratch sums cover only the output pixels this input can reach.
    bx0, bx1, by0, by1 = _reach_box(data, pixmap, kernel, pixfrac, psr, ony, onx, lanczos_table)
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
        var_sums = np.empty((len(out_vars),) + shape)
        for ov, vs in zip(out_vars, var_sums):
            _load_var(ov, out_wht, vs, bx0, by0)
        odq = out_dq[by0:by1 + 1, bx0:bx1 + 1] if out_dq is not None else None
        _run_kernel(kernel, data, weights, use_weights, pixmap, num, den, bx0, by0, ctx, use_ctx, bit,
                    pixfrac, psr, iscale, wt_scl, (var3, var_sums, dq, odq), _check_table(lanczos_table))
        for ov, vs in zip(out_vars, var_sums):
            _store_var(ov, out_wht, vs, den, bx0, by0)
        _store_sums(out_sci, out_wht, num, den, bx0, by0)

    if fillval is not None or fillval_var is not None:
        empty = out_wht == 0
        if fillval is not None:
            out_sci[empty] = np.float32(fillval)
        for ov in out_vars if fillval_var is not None else ():
            ov[empty] = np.float32(fillval_var)
