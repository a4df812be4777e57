"""Tests of dazzle.kernels.drizzle_add: exact analytic cases, the deliberate
differences from drizzle 3.0, thread safety, and parity with drizzle 3.0 (the
oracle; those tests skip when it is not installed)."""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from astrodrizzle_oracle import import_oracle, load_cdriz
from dazzle.kernels import KERNELS, drizzle_add
from dazzle.kernels.drizzle import _centre_margin, estimate_pixel_scale_ratio, grow_context, lanczos_table

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def affine_pixmap(ny, nx, angle_deg=0.0, scale=1.0, shift=(0.0, 0.0), quad=(0.0, 0.0)):
    """pixmap of a rotation by ``angle_deg``, output pixels ``scale`` times the
    input's, a shift, and an optional quadratic distortion."""
    a = np.deg2rad(angle_deg)
    j, i = np.indices((ny, nx), dtype=np.float64)
    xc, yc = i - nx / 2.0, j - ny / 2.0
    x = (np.cos(a) * xc - np.sin(a) * yc) / scale + quad[0] * xc * yc + shift[0]
    y = (np.sin(a) * xc + np.cos(a) * yc) / scale + quad[1] * xc * xc + shift[1]
    return np.dstack([x, y])


def new_output(shape, nan=True):
    sci = np.full(shape, np.nan if nan else 0.0, dtype=np.float32)
    wht = np.zeros(shape, dtype=np.float32)
    ctx = np.zeros(shape, dtype=np.int32)
    return sci, wht, ctx


def dilate(mask, iterations=1):
    m = mask.copy()
    for _ in range(iterations):
        p = np.pad(m, 1)
        m = (p[1:-1, 1:-1] | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
             | p[:-2, :-2] | p[:-2, 2:] | p[2:, :-2] | p[2:, 2:])
    return m


def clip_polygon(poly, x0, x1, y0, y1):
    """Sutherland-Hodgman clip of a polygon (list of (x, y)) to a rectangle."""
    def clip(pts, inside, cross):
        out = []
        for k in range(len(pts)):
            p, q = pts[k - 1], pts[k]
            if inside(q):
                if not inside(p):
                    out.append(cross(p, q))
                out.append(q)
            elif inside(p):
                out.append(cross(p, q))
        return out

    def xcut(c):
        return lambda p, q: (c, p[1] + (q[1] - p[1]) * (c - p[0]) / (q[0] - p[0]))

    def ycut(c):
        return lambda p, q: (p[0] + (q[0] - p[0]) * (c - p[1]) / (q[1] - p[1]), c)

    pts = list(poly)
    for inside, cross in ((lambda p: p[0] >= x0, xcut(x0)), (lambda p: p[0] <= x1, xcut(x1)),
                          (lambda p: p[1] >= y0, ycut(y0)), (lambda p: p[1] <= y1, ycut(y1))):
        if not pts:
            break
        pts = clip(pts, inside, cross)
    return pts


def polygon_area(pts):
    if len(pts) < 3:
        return 0.0
    x = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def brute_force_square(data, weights, corner_map, out_shape, pixfrac=1.0):
    """Independent reference for the square kernel on a pixmap that is an
    exact function ``corner_map(x, y) -> (x_out, y_out)`` of input position
    (affine, so that drizzle's bilinear corner interpolation is exact)."""
    ny, nx = data.shape
    num = np.zeros(out_shape)
    den = np.zeros(out_shape)
    h = pixfrac / 2
    for j in range(ny):
        for i in range(nx):
            w = weights[j, i]
            if w == 0:
                continue
            quad = [corner_map(i + dx, j + dy) for dx, dy in ((-h, -h), (h, -h), (h, h), (-h, h))]
            total = polygon_area(quad)
            xs = [p[0] for p in quad]
            ys = [p[1] for p in quad]
            for jj in range(max(int(np.floor(min(ys) + 0.5)), 0), min(int(np.floor(max(ys) + 0.5)), out_shape[0] - 1) + 1):
                for ii in range(max(int(np.floor(min(xs) + 0.5)), 0), min(int(np.floor(max(xs) + 0.5)), out_shape[1] - 1) + 1):
                    a = polygon_area(clip_polygon(quad, ii - 0.5, ii + 0.5, jj - 0.5, jj + 0.5))
                    if a > 0:
                        num[jj, ii] += a / total * w * data[j, i]
                        den[jj, ii] += a / total * w
    return num, den


# ---------------------------------------------------------------------------
# exactness of the square kernel against exact polygon clipping
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("angle,scale,shift,pixfrac", [
    (0.0, 1.0, (0.3, 0.2), 1.0),
    (17.0, 1.0, (0.1, -0.4), 1.0),
    (30.0, 0.5, (3.3, 2.2), 1.0),     # partly off the frame (x < -0.5)
    (-65.0, 1.7, (-2.0, 4.0), 0.6),   # partly off the frame, coarser output
    (123.0, 0.8, (10.0, 9.0), 0.8),   # flipped orientation, finer output
])
def test_square_matches_exact_polygon_clipping(angle, scale, shift, pixfrac):
    rng = np.random.default_rng(3)
    ny, nx = 7, 9
    out_shape = (14, 16)
    a = np.deg2rad(angle)

    def cmap(x, y):
        xc, yc = x - nx / 2.0, y - ny / 2.0
        return ((np.cos(a) * xc - np.sin(a) * yc) / scale + shift[0] + 5,
                (np.sin(a) * xc + np.cos(a) * yc) / scale + shift[1] + 5)

    j, i = np.indices((ny, nx), dtype=float)
    pixmap = np.dstack(cmap(i, j))
    data = rng.uniform(1, 10, (ny, nx)).astype(np.float32)
    weights = rng.uniform(0.5, 2, (ny, nx)).astype(np.float32)
    weights[2, 3] = 0
    num, den = brute_force_square(data.astype(float), weights.astype(float), cmap, out_shape, pixfrac)
    sci, wht, ctx = new_output(out_shape)
    drizzle_add(data, pixmap, sci, wht, ctx, weights=weights, kernel="square", pixfrac=pixfrac)
    np.testing.assert_allclose(wht, den, rtol=1e-6, atol=1e-7)
    covered = den > 1e-6
    np.testing.assert_allclose(sci[covered], (num[covered] / den[covered]), rtol=2e-6)
    assert np.array_equal(ctx != 0, den > 0)
    assert np.all(np.isnan(sci[wht == 0]))


# ---------------------------------------------------------------------------
# flux and weight conservation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", ["square", "turbo", "point", "tophat"])
@pytest.mark.parametrize("distorted", [False, True])
def test_flux_conservation(kernel, distorted):
    rng = np.random.default_rng(11)
    ny, nx = 60, 70
    quad = (1.5e-3, -1e-3) if distorted else (0.0, 0.0)
    pixmap = affine_pixmap(ny, nx, angle_deg=21.0, scale=1.0, shift=(60.0, 55.0), quad=quad)
    data = rng.uniform(0, 100, (ny, nx)).astype(np.float32)
    weights = rng.uniform(0.2, 2.0, (ny, nx)).astype(np.float32)
    iscale = 0.7
    sci, wht, ctx = new_output((120, 120), nan=False)
    kwargs = dict(pixfrac=2.0) if kernel == "tophat" else {}
    drizzle_add(data, pixmap, sci, wht, ctx, weights=weights, kernel=kernel, iscale=iscale, **kwargs)
    expected = np.sum(data.astype(np.float64) * weights * iscale)
    got = np.sum(sci.astype(np.float64) * wht)
    assert got == pytest.approx(expected, rel=1e-6)
    assert np.sum(wht, dtype=np.float64) == pytest.approx(np.sum(weights, dtype=np.float64), rel=1e-6)


def test_constant_image_gives_constant_output_for_every_kernel():
    pixmap = affine_pixmap(40, 40, angle_deg=12.0, scale=1.1, shift=(30.0, 30.0))
    for kernel in KERNELS:
        sci, wht, _ = new_output((60, 60))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            drizzle_add(np.full((40, 40), 3.5, np.float32), pixmap, sci, wht, kernel=kernel,
                        pixel_scale_ratio=1.1, pixfrac=1.0 if kernel != "tophat" else 2.0)
        good = wht > 0.05 * wht.max()
        assert good.sum() > 500, kernel
        np.testing.assert_allclose(sci[good], 3.5, rtol=1e-5, err_msg=kernel)


# ---------------------------------------------------------------------------
# kernels' analytic shapes
# ---------------------------------------------------------------------------


def single_pixel(kernel, offset, pixfrac=1.0, psr=1.0, out=15, weight=1.0):
    data = np.zeros((5, 5), np.float32)
    data[2, 2] = 1.0
    weights = np.zeros((5, 5), np.float32)
    weights[2, 2] = weight
    j, i = np.indices((5, 5), float)
    pixmap = np.dstack([i + 5 + offset[0], j + 5 + offset[1]])
    sci, wht, ctx = new_output((out, out))
    drizzle_add(data, pixmap, sci, wht, ctx, weights=weights, kernel=kernel, pixfrac=pixfrac,
                pixel_scale_ratio=psr)
    return sci, wht, ctx


def test_point_kernel_rounds_half_away_from_zero():
    # centre lands at x = 7.5, y = 6.5: C round() gives (8, 7); numpy's
    # half-to-even rounding would give (8, 6)
    _, wht, ctx = single_pixel("point", (0.5, -0.5))
    assert wht[7, 8] == 1.0 and wht.sum() == 1.0
    assert ctx[7, 8] == 1


def test_point_kernel_matches_a_plain_loop_on_awkward_centres():
    # the point kernel finds each row's cells in a branch-free pass (clamping centres
    # that are far off or not finite before their conversion to int), then deposits:
    # against the obvious loop, with centres that are NaN, infinite, 1e300, -1e30, on
    # negative half-pixels and off a block that starts below (0, 0); negative and zero
    # weights; the variance and DQ sums
    from dazzle.kernels.drizzle import drizzle_sums
    rng = np.random.default_rng(3)
    ny, nx = 40, 50
    j, i = np.indices((ny, nx), float)
    pixmap = np.dstack([0.9 * i - 0.45 * j + 3.3, 0.45 * i + 0.9 * j - 4.7])
    pixmap[5, 7] = np.nan
    pixmap[9, :3, 1] = np.inf
    pixmap[11, 4] = 1e300
    pixmap[12, 4] = -1e30
    pixmap[13, 5:9] = [(-0.5, -0.5), (-1.5, 2.5), (-2.5, -1.5), (0.5, 0.5)]
    data = rng.normal(size=(ny, nx)).astype(np.float32)
    data[3, 3] = np.nan
    weights = rng.uniform(-0.2, 1.0, (ny, nx)).astype(np.float32)
    weights[np.abs(weights) < 0.05] = 0.0
    var = rng.uniform(1.0, 2.0, (ny, nx)).astype(np.float32)
    dq = rng.integers(0, 64, (ny, nx)).astype(np.int16)
    x0, y0, shape = -3, -2, (30, 45)
    sums = [np.zeros(shape), np.zeros(shape), np.zeros(shape, np.int32), np.zeros((1,) + shape),
            np.zeros(shape, np.uint32)]
    drizzle_sums(data, pixmap, sums[0], sums[1], sums[2], x0=x0, y0=y0, weights=weights, kernel="point",
                 bit=4, var=[var], out_var=sums[3], dq=dq, out_dq=sums[4])
    want = [np.zeros_like(a) for a in sums]
    for jj in range(ny):
        for ii in range(nx):
            w, d = float(weights[jj, ii]), float(data[jj, ii])
            xc, yc = pixmap[jj, ii]
            if w == 0.0 or not np.isfinite(d) or not (np.isfinite(xc) and np.isfinite(yc)):
                continue
            c = int(np.sign(xc) * np.floor(abs(xc) + 0.5)) - x0   # C round(): half away from zero
            r = int(np.sign(yc) * np.floor(abs(yc) + 0.5)) - y0
            if 0 <= r < shape[0] and 0 <= c < shape[1]:
                want[0][r, c] += w * d
                want[1][r, c] += w
                want[2][r, c] |= 4 if w > 0 else 0
                want[3][0, r, c] += w * w * float(var[jj, ii])
                want[4][r, c] |= dq[jj, ii]
    assert want[1].astype(bool).sum() > 400 and (want[1] < 0).any()
    for got, exp in zip(sums, want):
        np.testing.assert_array_equal(got, exp)


def test_turbo_is_an_axis_aligned_box():
    # pixfrac 1, psr 1: a unit box centred at (7.25, 7.5) covers
    # x in [6.75, 7.75] (3/4 in column 7, 1/4 in column 8) and
    # y in [7.0, 8.0] (half in row 7, half in row 8)
    _, wht, _ = single_pixel("turbo", (0.25, 0.5))
    expected = np.zeros((15, 15))
    expected[7, 7] = expected[8, 7] = 0.375
    expected[7, 8] = expected[8, 8] = 0.125
    np.testing.assert_allclose(wht, expected, atol=1e-7)


def test_gaussian_matches_formula():
    pixfrac, psr = 0.9, 1.3
    _, wht, _ = single_pixel("gaussian", (0.3, -0.2), pixfrac=pixfrac, psr=psr)
    efac = 2.3548 ** 2 * psr ** 2 / (2 * pixfrac ** 2)
    jj, ii = np.indices(wht.shape)
    r2 = (ii - 7.3) ** 2 + (jj - 6.8) ** 2
    pfo = max(2.5 * pixfrac / 2.3548 / psr, 1.2 / psr)
    inwin = (np.abs(ii - np.floor(7.3 + 0.5)) <= pfo + 1) & (np.abs(jj - np.floor(6.8 + 0.5)) <= pfo + 1)
    expected = efac / np.pi * np.exp(-r2 * efac)
    np.testing.assert_allclose(wht[wht > 0], expected[wht > 0], rtol=1e-6)
    assert np.all(inwin[wht > 0])
    # the peak pixel and its neighbours are all there
    assert wht[7, 7] > 0 and wht[6, 7] > 0 and wht[7, 8] > 0


@pytest.mark.parametrize("order", [2, 3])
def test_lanczos_matches_formula_and_ignores_pixfrac(order):
    psr = 1.0
    _, wht, _ = single_pixel(f"lanczos{order}", (0.2, 0.1), psr=psr)
    _, wht_pf, _ = single_pixel(f"lanczos{order}", (0.2, 0.1), psr=psr, pixfrac=0.5)
    np.testing.assert_array_equal(wht, wht_pf)

    def lz(x):
        x = np.abs(x)
        v = np.sinc(x) * np.sinc(x / order)
        return np.where(x < order, v, 0.0)

    jj, ii = np.indices(wht.shape)
    expected = lz(ii - 7.2) * lz(jj - 7.1)
    # a 0.003-spaced table: values agree to about the table step times the slope
    np.testing.assert_allclose(wht, expected, atol=6e-3)
    assert (wht < 0).any()  # Lanczos lobes are negative


LANCZOS_CASES = [  # kernel, pixfrac, output/input pixel size, shift (x, y)
    ("lanczos3", 1.0, 1.0, (7.3, 5.81)), ("lanczos2", 1.0, 1.0, (3.37, 4.5)),
    ("lanczos3", 0.8, 1.0, (6.12, 2.77)), ("lanczos3", 1.0, 1.25, (2.2, 3.3)),
    ("lanczos2", 1.3, 0.8, (5.5, 6.01))]


@pytest.mark.oracle
@pytest.mark.parametrize("kernel,pixfrac,psr,shift", LANCZOS_CASES)
def test_lanczos_drizzlepac_table_is_astrodrizzles(kernel, pixfrac, psr, shift):
    # drizzlepac 3.11's own C drizzle (cdriz.tdriz, what AstroDrizzle calls) against
    # lanczos_table="drizzlepac": the same weights, values and context to float32 rounding
    # (measured: WHT 3.1e-7, SCI 2.2e-6 of the peak); drizzle 3.0's table differs by 4-56%
    cdriz = load_cdriz()
    rng = np.random.default_rng(3)
    ny, nx = 40, 50
    data = rng.normal(10, 3, (ny, nx)).astype(np.float32)
    weights = rng.uniform(0.5, 1.5, (ny, nx)).astype(np.float32)

    def mapping(x, y):   # 1-based pixels in and out
        return (np.asarray(x) - 1) / psr + shift[0] + 1, (np.asarray(y) - 1) / psr + shift[1] + 1

    a_sci, a_wht, a_ctx = new_output((60, 70), nan=False)
    cdriz.tdriz(data, weights, a_sci, a_wht, a_ctx, 1, 0, 1, 1, ny, psr, 1.0, 1.0, "center", pixfrac,
                kernel, "cps", 1.0, 1.0, "INDEF", 0, 0, 1, mapping)
    j, i = np.indices((ny, nx), dtype=np.float64)
    pixmap = np.dstack([i / psr + shift[0], j / psr + shift[1]])
    diffs = {}
    for table in ("drizzlepac", "drizzle"):
        sci, wht, ctx = new_output((60, 70), nan=False)
        drizzle_add(data, pixmap, sci, wht, ctx, weights=weights, kernel=kernel, pixfrac=pixfrac,
                    pixel_scale_ratio=psr, iscale=psr ** 2, lanczos_table=table)
        m = a_wht != 0
        diffs[table] = (np.abs(wht - a_wht).max() / np.abs(a_wht).max(),
                        np.abs(sci - a_sci)[m].max() / np.abs(a_sci[m]).max())
        if table == "drizzlepac":
            np.testing.assert_array_equal(ctx, a_ctx)
            np.testing.assert_array_equal(wht == 0, a_wht == 0)
    assert diffs["drizzlepac"][0] < 3e-6 and diffs["drizzlepac"][1] < 3e-5, diffs
    assert diffs["drizzle"][0] > 0.03, diffs


def test_lanczos_tables():
    # drizzlepac's: 512 entries 0.01 apart, zero from x = order on; drizzle 3.0's: 0.003 apart
    for order in (2, 3):
        dp, dz = lanczos_table("drizzlepac", order), lanczos_table("drizzle", order)
        assert dp.shape == (512,) and dz.shape == (int(np.ceil(order / 0.003)) + 1,)
        # (order 2's entry 200 is -2.3e-15: pi * 2 rounded to float32 is below pi * 2, as in C)
        assert not dp[100 * order + 1:].any() and abs(dp[100 * order]) < 1e-14 and dp[0] == dz[0] == 1.0
        x = np.arange(1, 100 * order) * 0.01
        np.testing.assert_allclose(dp[1:100 * order], np.sinc(x) * np.sinc(x / order), atol=2e-7)
    with pytest.raises(ValueError, match="lanczos_table"):
        drizzle_add(np.ones((4, 4)), affine_pixmap(4, 4), *new_output((8, 8))[:2], kernel="lanczos3",
                    lanczos_table="nope")


def test_tophat_analytic_cases():
    # radius pixfrac/(2 psr) = 1.0 centred exactly on an output pixel centre:
    # the centre and its 4 edge neighbours are within (r <= 1), the diagonal
    # ones are not (r = 1.414): 5 hits, each w/5
    _, wht, ctx = single_pixel("tophat", (0.0, 0.0), pixfrac=2.0, weight=2.0)
    expected = np.zeros((15, 15))
    for dy, dx in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)):
        expected[7 + dy, 7 + dx] = 2.0 / 5
    np.testing.assert_allclose(wht, expected, rtol=1e-6)
    assert np.array_equal(ctx != 0, expected > 0)
    # radius 0.5 centred half way between two centres: both are at r = 0.5
    _, wht, _ = single_pixel("tophat", (0.5, 0.0), pixfrac=1.0)
    assert wht[7, 7] == pytest.approx(0.5) and wht[7, 8] == pytest.approx(0.5)
    assert wht.sum() == pytest.approx(1.0)
    # a small top hat between centres touches nothing
    _, wht, _ = single_pixel("tophat", (0.4, 0.4), pixfrac=0.5)
    assert wht.sum() == 0.0
    # the output pixel size scales the radius: psr = 0.5 doubles it (r = 1)
    _, wht, _ = single_pixel("tophat", (0.0, 0.0), pixfrac=1.0, psr=0.5)
    assert np.count_nonzero(wht) == 5


def test_tiny_pixfrac_switches_to_point():
    _, w1, _ = single_pixel("square", (0.3, 0.2), pixfrac=0.0005)
    _, w2, _ = single_pixel("point", (0.3, 0.2))
    np.testing.assert_array_equal(w1, w2)


# ---------------------------------------------------------------------------
# accumulation, units, fill values, context
# ---------------------------------------------------------------------------


def test_running_weighted_mean_of_two_inputs():
    pixmap = affine_pixmap(20, 20, shift=(15.0, 15.0))
    sci, wht, ctx = new_output((30, 30))
    drizzle_add(np.full((20, 20), 2.0, np.float32), pixmap, sci, wht, ctx,
                weights=np.full((20, 20), 1.0, np.float32), uniqid=1)
    drizzle_add(np.full((20, 20), 5.0, np.float32), pixmap, sci, wht, ctx,
                weights=np.full((20, 20), 3.0, np.float32), uniqid=2)
    inner = wht > 3.99
    assert inner.sum() >= 18 * 18
    np.testing.assert_allclose(sci[inner], (2.0 * 1 + 5.0 * 3) / 4, rtol=1e-6)
    np.testing.assert_allclose(wht[inner], 4.0, rtol=1e-6)
    assert np.all(ctx[inner] == 3)


def test_counts_are_divided_by_exptime_and_iscale_multiplies():
    pixmap = affine_pixmap(10, 10, shift=(10.0, 10.0))
    a = new_output((20, 20))
    b = new_output((20, 20))
    drizzle_add(np.full((10, 10), 50.0, np.float32), pixmap, a[0], a[1], in_units="counts", exptime=25.0)
    drizzle_add(np.full((10, 10), 50.0, np.float32), pixmap, b[0], b[1], iscale=0.04)
    good = a[1] > 0
    np.testing.assert_allclose(a[0][good], 2.0, rtol=1e-6)
    np.testing.assert_allclose(b[0][good], 2.0, rtol=1e-6)
    with pytest.raises(ValueError, match="exptime"):
        drizzle_add(np.ones((10, 10), np.float32), pixmap, a[0], a[1], in_units="counts", exptime=0.0)


def test_fillval_indef_keeps_previous_values_and_number_fills():
    pixmap = affine_pixmap(10, 10, shift=(5.0, 5.0))
    sci = np.full((30, 30), 7.0, np.float32)
    wht = np.zeros((30, 30), np.float32)
    drizzle_add(np.ones((10, 10), np.float32), pixmap, sci, wht, fillval=None)
    assert np.all(sci[wht == 0] == 7.0)
    drizzle_add(np.ones((10, 10), np.float32), pixmap, sci, wht, fillval=-1.0, uniqid=2)
    assert np.all(sci[wht == 0] == -1.0)
    assert np.all(sci[wht > 0] == 1.0)


def test_context_bits_and_planes():
    pixmap = affine_pixmap(4, 4, shift=(2.0, 2.0))
    sci, wht, _ = new_output((4, 4))
    ctx = np.zeros((1, 4, 4), np.int32)
    for uid in range(1, 41):
        ctx = grow_context(ctx, uid)
        drizzle_add(np.ones((4, 4), np.float32), pixmap, sci, wht, ctx, uniqid=uid)
    assert ctx.shape == (2, 4, 4)
    assert np.all(ctx[0] == -1)      # all 32 bits, bit 31 included
    assert np.all(ctx[1] == 255)     # inputs 33..40
    # a 2-D context is one plane; input 33 needs a second plane
    ctx2 = np.zeros((4, 4), np.int32)
    drizzle_add(np.ones((4, 4), np.float32), pixmap, sci, wht, ctx2, uniqid=32)
    assert np.all(ctx2 == np.int32(-2 ** 31))
    with pytest.raises(ValueError, match="grow_context"):
        drizzle_add(np.ones((4, 4), np.float32), pixmap, sci, wht, ctx2, uniqid=33)


def test_zero_weight_pixels_leave_no_trace():
    pixmap = affine_pixmap(10, 10, shift=(10.0, 10.0))
    sci, wht, ctx = new_output((20, 20))
    drizzle_add(np.full((10, 10), 9.0, np.float32), pixmap, sci, wht, ctx,
                weights=np.zeros((10, 10), np.float32))
    assert wht.sum() == 0 and ctx.sum() == 0 and np.isnan(sci).all()


def test_argument_errors_are_clear():
    pixmap = affine_pixmap(5, 5)
    sci, wht, _ = new_output((5, 5))
    with pytest.raises(ValueError, match="kernel must be one of"):
        drizzle_add(np.ones((5, 5)), pixmap, sci, wht, kernel="box")
    with pytest.raises(ValueError, match="pixmap shape"):
        drizzle_add(np.ones((5, 6)), pixmap, sci, wht)
    with pytest.raises(TypeError, match="float32"):
        drizzle_add(np.ones((5, 5)), pixmap, sci.astype(np.float64), wht)
    with pytest.raises(ValueError, match="wt_scl"):
        drizzle_add(np.ones((5, 5)), pixmap, sci, wht, wt_scl=0)
    # kernel names are case-insensitive (drizzle 3.0's C rejects 'Square')
    drizzle_add(np.ones((5, 5)), pixmap + 0.1, sci, wht, kernel="Square")
    assert wht.sum() > 0


# ---------------------------------------------------------------------------
# deliberate differences from drizzle 3.0 (pinned; see README)
# ---------------------------------------------------------------------------


def test_pixel_scale_ratio_none_is_output_over_input():
    # output pixels twice the input's: pixmap = 0.5 * x, so psr must be 2
    j, i = np.indices((40, 40), float)
    pixmap = np.dstack([0.5 * i + 3.2, 0.5 * j + 3.1])
    assert estimate_pixel_scale_ratio(pixmap) == pytest.approx(2.0)
    a = new_output((30, 30))
    b = new_output((30, 30))
    drizzle_add(np.ones((40, 40), np.float32), pixmap, a[0], a[1], kernel="turbo", pixel_scale_ratio=None)
    drizzle_add(np.ones((40, 40), np.float32), pixmap, b[0], b[1], kernel="turbo", pixel_scale_ratio=2.0)
    np.testing.assert_array_equal(a[1], b[1])
    # and turbo then agrees with the exact square kernel on this aligned grid
    c = new_output((30, 30))
    drizzle_add(np.ones((40, 40), np.float32), pixmap, c[0], c[1], kernel="square")
    np.testing.assert_allclose(a[1], c[1], atol=1e-6)


@pytest.mark.parametrize("n", [64, 100])
def test_half_size_output_is_fully_covered(n):
    # drizzle 3.0 loses most of this image (its pixmap inversion fails)
    j, i = np.indices((n, n), float)
    pixmap = np.dstack([0.5 * i - 0.25, 0.5 * j - 0.25])
    sci, wht, _ = new_output((n // 2, n // 2))
    drizzle_add(np.ones((n, n), np.float32), pixmap, sci, wht, kernel="square")
    np.testing.assert_allclose(wht, 4.0, rtol=1e-6)
    np.testing.assert_allclose(sci, 1.0, rtol=1e-6)


def test_partly_off_frame_input_keeps_every_overlapping_drop():
    # drizzle 3.0's scan region drops some input pixels whose drop only
    # partly overlaps the output frame; dazzle keeps exactly the overlap
    ny, nx = 6, 7
    a = np.deg2rad(30.0)

    def cmap(x, y):
        return ((np.cos(a) * x - np.sin(a) * y) / 0.5 + 3.3, (np.sin(a) * x + np.cos(a) * y) / 0.5 + 2.2)

    frame = (40, 40)
    expected = 0.0
    for jj in range(ny):
        for ii in range(nx):
            quad = [cmap(ii + dx, jj + dy) for dx, dy in ((-.5, -.5), (.5, -.5), (.5, .5), (-.5, .5))]
            inside = clip_polygon(quad, -0.5, frame[1] - 0.5, -0.5, frame[0] - 0.5)
            expected += polygon_area(inside) / polygon_area(quad)
    j, i = np.indices((ny, nx), float)
    pixmap = np.dstack(cmap(i, j))
    sci, wht, _ = new_output(frame)
    drizzle_add(np.ones((ny, nx), np.float32), pixmap, sci, wht)
    assert expected == pytest.approx(40.0992, abs=1e-3)
    assert wht.sum(dtype=np.float64) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("kernel,grow", [("square", 1), ("turbo", 0), ("point", 0), ("gaussian", 0)])
def test_nan_pixmap_skips_exactly_the_pixels_it_touches(kernel, grow):
    # drizzle 3.0 can lose large parts of an image with an interior NaN block
    # (its scan polygon breaks); dazzle skips only the pixels whose drop
    # needs a NaN sample: the block itself, grown by one pixel for the
    # square kernel (its corners interpolate the 3x3 neighbourhood)
    pixmap = affine_pixmap(30, 40, angle_deg=8.0, shift=(25.0, 22.0))
    nan = np.zeros((30, 40), bool)
    nan[10:14, 12:18] = True
    bad = pixmap.copy()
    bad[nan] = np.nan
    data = np.random.default_rng(0).uniform(1, 2, (30, 40)).astype(np.float32)
    a = new_output((50, 50))
    drizzle_add(data, bad, a[0], a[1], a[2], kernel=kernel)
    weights = (~dilate(nan, grow)).astype(np.float32)
    b = new_output((50, 50))
    drizzle_add(data, pixmap, b[0], b[1], b[2], weights=weights, kernel=kernel)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])
    np.testing.assert_array_equal(a[0][a[1] > 0], b[0][b[1] > 0])


def test_nan_data_is_skipped():
    pixmap = affine_pixmap(10, 10, shift=(10.0, 10.0))
    data = np.ones((10, 10), np.float32)
    data[4, 4] = np.nan
    data[5, 6] = np.inf
    sci, wht, _ = new_output((20, 20))
    drizzle_add(data, pixmap, sci, wht)
    assert np.isfinite(sci[wht > 0]).all()
    assert wht.sum() == pytest.approx(98.0)


# ---------------------------------------------------------------------------
# threads: the kernels release the GIL and share no state
# ---------------------------------------------------------------------------


def test_concurrent_calls_match_serial_bit_for_bit():
    rng = np.random.default_rng(5)
    jobs = []
    for k in range(8):
        pixmap = affine_pixmap(80, 80, angle_deg=3.0 * k, scale=0.9 + 0.05 * k, shift=(50.0, 50.0),
                               quad=(1e-4 * k, -1e-4))
        data = rng.normal(10, 2, (80, 80)).astype(np.float32)
        weights = rng.uniform(0.5, 1.5, (80, 80)).astype(np.float32)
        jobs.append((data, pixmap, weights, KERNELS[k % len(KERNELS)]))

    def run(job):
        data, pixmap, weights, kernel = job
        sci, wht, ctx = new_output((100, 100))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            drizzle_add(data, pixmap, sci, wht, ctx, weights=weights, kernel=kernel, pixel_scale_ratio=None)
        return sci, wht, ctx

    serial = [run(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(3):
            threaded = list(pool.map(run, jobs))
            for s, t in zip(serial, threaded):
                for a, b in zip(s, t):
                    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------
# parity with drizzle 3.0 (oracle)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def oracle():
    drizzle = import_oracle(
        "drizzle.resample", "the reference implementation drizzle==3.0.0 is not installed (pip install '.[test]')")
    return drizzle


def random_case(rng):
    ny, nx = int(rng.integers(30, 50)), int(rng.integers(30, 50))
    scale = float(rng.uniform(0.5, 2.0))
    angle = float(rng.uniform(-180, 180))
    quad = tuple(rng.uniform(-2e-3, 2e-3, 2))
    onx, ony = int(nx / scale * 1.2) + 5, int(ny / scale * 1.2) + 5
    # centre moved so that about a third of the cases hang off the frame
    shift = (onx / 2 + rng.uniform(-0.35, 0.35) * onx, ony / 2 + rng.uniform(-0.35, 0.35) * ony)
    pixmap = affine_pixmap(ny, nx, angle, scale, shift, quad)
    nan = np.zeros((ny, nx), bool)
    if rng.random() < 0.5:
        # whole edge rows/columns of NaN (drizzle 3.0 trims those; interior
        # NaN blocks break its scan region and are tested separately above)
        side = int(rng.integers(4))
        width = int(rng.integers(1, 4))
        if side == 0:
            nan[:width] = True
        elif side == 1:
            nan[-width:] = True
        elif side == 2:
            nan[:, :width] = True
        else:
            nan[:, -width:] = True
    pixmap[nan] = np.nan
    data = rng.normal(10, 3, (ny, nx)).astype(np.float32)
    weights = rng.uniform(0.5, 1.5, (ny, nx)).astype(np.float32)
    weights[rng.random((ny, nx)) < 0.05] = 0
    pixfrac = float(rng.choice([1.0, 0.8, 0.5]))
    return dict(pixmap=pixmap, nan=nan, shape=(ony, onx), scale=scale, data=data,
                weights=weights, pixfrac=pixfrac)


def comparable_region(case, kernel):
    """Output pixels away from where drizzle 3.0's scan region drops input
    pixels: outputs reached from the input's outermost valid rows/columns, and
    outputs within the kernel's reach of the frame edge."""
    nan = case["nan"]
    valid = ~nan
    edge = valid & dilate(~np.pad(valid, 1, constant_values=False), 1)[1:-1, 1:-1]
    probe = new_output(case["shape"])
    drizzle_add(np.ones_like(case["data"]), case["pixmap"], probe[0], probe[1],
                weights=edge.astype(np.float32), kernel=kernel, pixfrac=case["pixfrac"],
                pixel_scale_ratio=1 / case["scale"])
    ex = dilate(probe[1] != 0, 1)
    b = _centre_margin(kernel, case["pixfrac"], 1 / case["scale"], 1.0) + 1
    ex[:b] = ex[-b:] = True
    ex[:, :b] = ex[:, -b:] = True
    return ~ex


PARITY_KERNELS = ["square", "point", "turbo", "gaussian", "lanczos2", "lanczos3"]
N_GEOMETRIES = 50


@pytest.mark.oracle
@pytest.mark.parametrize("kernel", PARITY_KERNELS)
def test_parity_with_drizzle_3(oracle, kernel):
    """Science, weight and context; and the variances (two arrays, co-added with squared
    weights) at 1e-5 and the DQ (OR of every contributing pixel) exactly."""
    rng = np.random.default_rng(20261126 + PARITY_KERNELS.index(kernel))
    rng_var = np.random.default_rng(13)   # apart, so that the geometries stay those of rng
    n_compared = 0
    n_flagged = 0
    lanczos_mismatch = 0
    lanczos_pixels = 0
    for t in range(N_GEOMETRIES):
        case = random_case(rng)
        psr = 1 / case["scale"]
        iscale = psr ** 2
        in_shape = case["data"].shape
        var = [rng_var.uniform(0.5, 2.0, in_shape).astype(np.float32),
               rng_var.uniform(0.0, 1.0, in_shape).astype(np.float32)]
        dq = (rng_var.integers(1, 1 << 16, in_shape) * (rng_var.random(in_shape) < 0.03)).astype(np.int32)
        ref = oracle.Drizzle(kernel=kernel, out_shape=case["shape"], fillval=None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref.add_image(case["data"], exptime=1.0, pixmap=case["pixmap"], weight_map=case["weights"],
                          pixfrac=case["pixfrac"], pixel_scale_ratio=psr, iscale=iscale, data2=var, dq=dq)
        sci, wht, ctx = new_output(case["shape"])
        out_var = [np.full(case["shape"], np.nan, np.float32) for _ in var]
        out_dq = np.zeros(case["shape"], np.uint32)
        drizzle_add(case["data"], case["pixmap"], sci, wht, ctx, weights=case["weights"], kernel=kernel,
                    pixfrac=case["pixfrac"], pixel_scale_ratio=psr, iscale=iscale, var=var, out_var=out_var,
                    dq=dq, out_dq=out_dq)
        keep = comparable_region(case, kernel)
        if not keep.any():
            continue
        rw, mw = ref.out_wht[keep], wht[keep]
        rs, ms = ref.out_img[keep], sci[keep]
        n_compared += keep.sum()
        assert np.array_equal(ref.out_ctx[0][keep], ctx[keep]), f"context differs, geometry {t}"
        assert np.array_equal(ref.out_dq[keep], out_dq[keep]), f"DQ differs, geometry {t}"
        n_flagged += (out_dq[keep] != 0).sum()
        wscale = np.abs(rw).max() if rw.size else 1.0
        for rv, mv in zip(ref.out_img2, out_var):
            # the variance sums sum(dow^2 var) = var * wht^2 (the variance itself is
            # ill-conditioned where Lanczos weights nearly cancel)
            rsum = np.nan_to_num(rv[keep]) * rw.astype(np.float64) ** 2
            msum = np.nan_to_num(mv[keep]) * mw.astype(np.float64) ** 2
            tol = 5e-3 if kernel.startswith("lanczos") else 1e-5
            np.testing.assert_allclose(msum, rsum, rtol=1e-5, atol=tol * np.abs(rsum).max(),
                                       err_msg=f"variance, geometry {t}")
            if not kernel.startswith("lanczos"):
                # drizzle 3.0 squares a gaussian's far-tail weights (< 1e-20) to 0 in
                # single precision: compare where the summed weight is not that small
                both = (rw > 1e-6 * wscale) & (mw > 1e-6 * wscale)
                np.testing.assert_allclose(mv[keep][both], rv[keep][both], rtol=1e-5, err_msg=f"geometry {t}")
        wscale = np.abs(rw).max() if rw.size else 1.0
        if kernel.startswith("lanczos"):
            # drizzle 3.0 forms the 0.003-step table index in single
            # precision; indices within ~1e-5 of a half round differently,
            # which moves that one weight by one table step: at most
            # 0.003 * max|L'| (about 5e-3 of the peak weight).
            close = np.isclose(mw, rw, rtol=1e-5, atol=1e-6 * wscale)
            lanczos_mismatch += (~close).sum()
            lanczos_pixels += close.size
            np.testing.assert_allclose(mw, rw, rtol=1e-5, atol=5e-3 * wscale, err_msg=f"geometry {t}")
            # the science of a Lanczos drizzle is ill-conditioned where the
            # signed weights nearly cancel: compare the weighted flux instead
            flux_m = np.nan_to_num(ms) * mw
            flux_r = np.nan_to_num(rs) * rw
            np.testing.assert_allclose(flux_m, flux_r, rtol=1e-5, atol=5e-3 * np.abs(flux_r).max(),
                                       err_msg=f"geometry {t}")
        else:
            np.testing.assert_allclose(mw, rw, rtol=1e-5, atol=1e-6 * wscale, err_msg=f"geometry {t}")
            both = (rw > 0) & (mw > 0)
            np.testing.assert_allclose(ms[both], rs[both], rtol=1e-5, err_msg=f"geometry {t}")
            assert np.array_equal(np.isnan(rs), np.isnan(ms)), f"coverage differs, geometry {t}"
    assert n_compared > 50 * 500  # the comparison is not vacuous
    assert n_flagged > 0.01 * n_compared   # 3% of the inputs flagged
    if kernel.startswith("lanczos"):
        assert lanczos_mismatch <= 2e-3 * lanczos_pixels


# ---------------------------------------------------------------------------
# drizzle_sums: blocks of the frame (the pipeline's tiled reduction)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", KERNELS)
def test_blocks_that_tile_the_frame_add_up_bit_for_bit(kernel):
    from dazzle.kernels import drizzle_sums

    rng = np.random.default_rng(8)
    pixmap = affine_pixmap(50, 60, angle_deg=23.0, scale=0.8, shift=(40.0, 38.0), quad=(1e-3, -5e-4))
    data = rng.normal(5, 1, (50, 60)).astype(np.float32)
    weights = rng.uniform(0.5, 1.5, (50, 60)).astype(np.float32)
    var = rng.uniform(0.5, 2.0, (50, 60)).astype(np.float32)
    dq = (rng.integers(1, 1 << 16, (50, 60)) * (rng.random((50, 60)) < 0.05)).astype(np.int16)
    frame = (80, 90)
    kw = dict(weights=weights, kernel=kernel, pixfrac=0.9 if kernel != "tophat" else 2.0,
              pixel_scale_ratio=1.25, bit=1 << 31, var=var, dq=dq)

    def blank(shape):
        return np.zeros(shape), np.zeros(shape), np.zeros(shape, np.int32), np.zeros(shape), np.zeros(shape, np.uint32)

    full = blank(frame)
    num, den, ctx, vsum, odq = full
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        drizzle_sums(data, pixmap, num, den, ctx, out_var=vsum, out_dq=odq, **kw)
        for tile in (7, 16, 33):
            tiled = blank(frame)
            for y0 in range(0, frame[0], tile):
                for x0 in range(0, frame[1], tile):
                    sl = np.s_[y0:y0 + tile, x0:x0 + tile]
                    bn, bd, bc, bv, bq = blank(num[sl].shape)
                    drizzle_sums(data, pixmap, bn, bd, bc, x0=x0, y0=y0, out_var=bv, out_dq=bq, **kw)
                    for whole, part in zip(tiled, (bn, bd, bc, bv, bq)):
                        whole[sl] = part
            for a, b in zip(tiled, full):
                np.testing.assert_array_equal(a, b)
    assert (ctx == np.int32(-2 ** 31)).sum() > 1000
    assert (odq != 0).sum() > 100
    # and the sums are what drizzle_add turns into its running mean (and variance);
    # the variance and DQ leave science, weight and context bit for bit as without them
    plain = new_output(frame)
    sci, wht, ctx1 = new_output(frame)
    out_var = np.full(frame, np.nan, np.float32)
    out_dq = np.zeros(frame, np.uint32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        add_kw = dict(weights=weights, kernel=kernel, pixfrac=kw["pixfrac"], pixel_scale_ratio=1.25)
        drizzle_add(data, pixmap, *plain, **add_kw)
        drizzle_add(data, pixmap, sci, wht, ctx1, var=var, out_var=out_var, dq=dq, out_dq=out_dq, **add_kw)
    for a, b in zip(plain, (sci, wht, ctx1)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(out_dq, odq)
    np.testing.assert_allclose(wht, den.astype(np.float32), rtol=1e-6, atol=1e-7)
    good = den != 0
    np.testing.assert_allclose(sci[good], (num[good] / den[good]).astype(np.float32), rtol=1e-6)
    np.testing.assert_allclose(out_var[good], (vsum[good] / den[good] ** 2).astype(np.float32), rtol=1e-6)
    assert np.isnan(out_var[~good]).all()


# ---------------------------------------------------------------------------
# kernel_reach: the bound the pipeline plans its boxes with
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kernel,table", [(k, "drizzle") for k in KERNELS]
                         + [("lanczos2", "drizzlepac"), ("lanczos3", "drizzlepac")])
def test_kernel_reach_bounds_every_deposit_and_is_nearly_tight(kernel, table):
    """One input pixel at 60 random sub-pixel positions, output pixels 1/psr times the
    input's: every output pixel given weight has its centre within ``reach`` of the
    pixel's edges, and (where the reach is not 0) some come within 0.15 pixel of it."""
    from dazzle.kernels import drizzle_sums, kernel_reach

    rng = np.random.default_rng(12)
    data = np.ones((3, 3), np.float32)
    weights = np.zeros((3, 3), np.float32)
    weights[1, 1] = 1.0
    j, i = np.indices((3, 3), float)
    pixfracs = (1.0, 2.0, 3.0) if kernel == "tophat" else (0.5, 1.0, 1.7)
    for psr in (1.0, 0.6, 1.6):
        a = 0.5 / psr
        for pixfrac in pixfracs:
            reach = kernel_reach(kernel, pixfrac, psr, table)
            worst = -np.inf
            for _ in range(60):
                x0, y0 = 20 + rng.uniform(-0.5, 0.5, 2)
                pixmap = np.dstack([(i - 1) / psr + x0, (j - 1) / psr + y0])
                num = np.zeros((41, 41))
                den = np.zeros((41, 41))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    drizzle_sums(data, pixmap, num, den, weights=weights, kernel=kernel, pixfrac=pixfrac,
                                 pixel_scale_ratio=psr, lanczos_table=table)
                jj, ii = np.nonzero(den)
                if ii.size == 0:
                    continue
                beyond = max(np.abs(ii - x0).max(), np.abs(jj - y0).max()) - a
                assert beyond <= reach + 1e-9, (psr, pixfrac, x0, y0)
                worst = max(worst, beyond)
            if reach > 0.0:  # (a reach clipped to 0 is not tight)
                assert worst > reach - 0.15, (psr, pixfrac, worst, reach)


def test_kernel_reach_values_and_errors():
    from dazzle.kernels import kernel_reach

    assert kernel_reach("point", 1.0) == 0.0
    assert kernel_reach("square", 1.0) == 0.5 and kernel_reach("turbo", 0.8) == pytest.approx(0.4)
    assert kernel_reach("tophat", 1.0) == 0.0 and kernel_reach("tophat", 3.0) == 1.0
    assert kernel_reach("gaussian", 1.0) == 1.2
    assert kernel_reach("Lanczos2", 1.0) == 1.5 and kernel_reach("lanczos3", 1.0, 0.5) == 5.0
    assert kernel_reach("square", 0.0005) == 0.0   # below 0.001 every kernel is point
    with pytest.raises(ValueError, match="kernel must be one of"):
        kernel_reach("box", 1.0)
    with pytest.raises(ValueError, match="pixel_scale_ratio"):
        kernel_reach("square", 1.0, 0.0)


@pytest.mark.parametrize("kernel", KERNELS)
def test_drizzle_add_onto_a_much_larger_frame_loses_nothing(kernel):
    """drizzle_add sums only over the output box the input can reach when the frame is
    much larger than the input: that box holds every deposit (same weights as sums over
    the whole frame), also for drops far larger than the output pixels."""
    from dazzle.kernels import drizzle_sums

    rng = np.random.default_rng(4)
    data = rng.uniform(1, 2, (12, 14)).astype(np.float32)
    for scale, pixfrac in ((0.3, 1.0), (1.0, 2.5), (2.2, 0.7)):
        pixmap = affine_pixmap(12, 14, angle_deg=33.0, scale=scale, shift=(60.0, 50.0), quad=(2e-3, -1e-3))
        kw = dict(kernel=kernel, pixfrac=pixfrac, pixel_scale_ratio=scale)
        sci, wht, ctx = new_output((110, 120))
        num, den = np.zeros((110, 120)), np.zeros((110, 120))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            drizzle_add(data, pixmap, sci, wht, ctx, **kw)
            drizzle_sums(data, pixmap, num, den, **kw)
        assert np.count_nonzero(den) >= 10
        np.testing.assert_array_equal(wht, den.astype(np.float32))


def test_drizzle_sums_into_strided_views_matches_contiguous_arrays():
    # the kernels work on flat C-contiguous sums; views are worked on as copies
    from dazzle.kernels import drizzle_sums

    rng = np.random.default_rng(9)
    data = rng.uniform(1, 2, (30, 30)).astype(np.float32)
    pixmap = affine_pixmap(30, 30, angle_deg=15.0, shift=(25.0, 25.0))
    for kernel in ("square", "turbo", "point"):
        num, den, ctx = np.zeros((40, 50)), np.zeros((40, 50)), np.zeros((40, 50), np.int32)
        drizzle_sums(data, pixmap, num, den, ctx, x0=3, y0=2, kernel=kernel, bit=4)
        big = [np.zeros((40, 70)), np.zeros((40, 70)), np.zeros((40, 70), np.int32)]
        views = [b[:, 10:60] for b in big]
        assert not views[0].flags.c_contiguous
        drizzle_sums(data, pixmap, *views, x0=3, y0=2, kernel=kernel, bit=4)
        for a, v, b in zip((num, den, ctx), views, big):
            np.testing.assert_array_equal(v, a)
            assert not b[:, :10].any() and not b[:, 60:].any()
        assert (ctx == 4).sum() > 500


# ---------------------------------------------------------------------------
# rotated frames: drops spanning 3x3 output cells (the square kernel's 3x3 pass)
# ---------------------------------------------------------------------------


def rotated_case(angle, scale, ny=24, nx=28, shift=(0.31, -0.17)):
    """A north-up style rotation by ``angle`` deg (output pixels ``scale`` times the
    input's), centred on a frame with room for every drop; and the exact corner map."""
    a = np.deg2rad(angle)
    out_shape = (int((ny + nx) / scale) + 6,) * 2

    def cmap(x, y):
        xc, yc = x - nx / 2.0, y - ny / 2.0
        return ((np.cos(a) * xc - np.sin(a) * yc) / scale + out_shape[1] / 2 + shift[0],
                (np.sin(a) * xc + np.cos(a) * yc) / scale + out_shape[0] / 2 + shift[1])

    j, i = np.indices((ny, nx), dtype=float)
    return np.dstack(cmap(i, j)), cmap, out_shape


def spans(cmap, ny, nx, pixfrac=1.0):
    """How many output cells each drop's box spans, the larger of x and y."""
    j, i = np.indices((ny, nx), dtype=float)
    h = pixfrac / 2
    xs, ys = zip(*[cmap(i + dx, j + dy) for dx, dy in ((-h, -h), (h, -h), (h, h), (-h, h))])
    nint = lambda v: np.floor(np.asarray(v) + 0.5)   # noqa: E731  (half up: positions here are not negative)
    return np.maximum(nint(np.max(xs, 0)) - nint(np.min(xs, 0)), nint(np.max(ys, 0)) - nint(np.min(ys, 0))) + 1


@pytest.mark.parametrize("angle,scale", [(10.0, 1.0), (30.0, 0.98), (45.0, 1.0), (-30.0, 0.9), (150.0, 1.0)])
def test_square_rotated_frames_match_exact_polygon_clipping(angle, scale):
    """Rotations make most drops span 3 cells in x or y (2x2 at most without one): the
    3x3 pass agrees with exact polygon clipping, and so does the context.  (~1 s)"""
    rng = np.random.default_rng(5)
    ny, nx = 12, 14
    pixmap, cmap, out_shape = rotated_case(angle, scale, ny, nx)
    n = spans(cmap, ny, nx)
    assert (n == 3).mean() > (0.25 if angle == 10.0 else 0.6) and n.max() == 3
    data = rng.uniform(1, 10, (ny, nx)).astype(np.float32)
    weights = rng.uniform(0.5, 2, (ny, nx)).astype(np.float32)
    num, den = brute_force_square(data.astype(float), weights.astype(float), cmap, out_shape)
    sci, wht, ctx = new_output(out_shape)
    drizzle_add(data, pixmap, sci, wht, ctx, weights=weights, kernel="square")
    np.testing.assert_allclose(wht, den, rtol=1e-6, atol=1e-7)
    covered = den > 1e-6
    np.testing.assert_allclose(sci[covered], num[covered] / den[covered], rtol=2e-6)
    assert np.array_equal(ctx != 0, den > 0)


@pytest.mark.oracle
@pytest.mark.parametrize("angle", [10.0, 30.0, 45.0])
def test_square_rotated_frames_parity_with_drizzle_3(oracle, angle):
    """Science, weight, context and variance against drizzle 3.0 on rotated frames
    (drops spanning 3x3 cells), pixfrac 1 and 0.8.  (~0.5 s)"""
    rng = np.random.default_rng(int(angle))
    ny, nx = 40, 46
    for scale, pixfrac in ((0.98, 1.0), (1.0, 0.8)):
        pixmap, cmap, shape = rotated_case(angle, scale, ny, nx)
        if pixfrac == 1.0:
            assert (spans(cmap, ny, nx) == 3).mean() > 0.25
        data = rng.normal(10, 3, (ny, nx)).astype(np.float32)
        weights = rng.uniform(0.5, 1.5, (ny, nx)).astype(np.float32)
        var = rng.uniform(0.5, 2.0, (ny, nx)).astype(np.float32)
        ref = oracle.Drizzle(kernel="square", out_shape=shape, fillval=None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref.add_image(data, exptime=1.0, pixmap=pixmap, weight_map=weights, pixfrac=pixfrac,
                          pixel_scale_ratio=1 / scale, data2=[var])
        sci, wht, ctx = new_output(shape)
        out_var = np.full(shape, np.nan, np.float32)
        drizzle_add(data, pixmap, sci, wht, ctx, weights=weights, kernel="square", pixfrac=pixfrac,
                    pixel_scale_ratio=1 / scale, var=var, out_var=out_var)
        case = dict(nan=np.zeros((ny, nx), bool), shape=shape, data=data, pixmap=pixmap, pixfrac=pixfrac,
                    scale=scale)
        keep = comparable_region(case, "square")
        assert keep.sum() > 0.5 * ny * nx
        assert np.array_equal(ref.out_ctx[0][keep], ctx[keep])
        np.testing.assert_allclose(wht[keep], ref.out_wht[keep], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(sci[keep], ref.out_img[keep], rtol=1e-5)
        np.testing.assert_allclose(out_var[keep], ref.out_img2[0][keep], rtol=1e-5)


def test_square_rows_mixing_3x3_and_larger_drops_with_two_variances():
    """Output pixels 0.6 of the input's at 30 deg: every row mixes drops within 3x3 cells
    (the 3x3 pass's gathered results) with larger ones (the general path), in any order.
    Weight and science match exact polygon clipping; the drops added one at a time, in
    input order, give the same bits (each drop took the path it takes alone); two
    variance arrays at once give each one's sums bit for bit, and the science and weight
    sums do not change with them or with the DQ.  (~1 s)"""
    from dazzle.kernels import drizzle_sums

    rng = np.random.default_rng(21)
    ny, nx = 10, 12
    pixmap, cmap, out_shape = rotated_case(30.0, 0.6, ny, nx)
    n = spans(cmap, ny, nx)
    assert ((n == 3).sum(axis=1) >= 4).all() and ((n > 3).sum(axis=1) >= 4).all()
    data = rng.uniform(1, 10, (ny, nx)).astype(np.float32)
    weights = rng.uniform(0.5, 2, (ny, nx)).astype(np.float32)
    var = [rng.uniform(0.5, 2.0, (ny, nx)).astype(np.float32) for _ in range(2)]
    dq = (rng.integers(1, 1 << 16, (ny, nx)) * (rng.random((ny, nx)) < 0.3)).astype(np.int32)

    def sums(v=None, with_dq=False, w=weights):
        out = [np.zeros(out_shape), np.zeros(out_shape)]
        ov = None if v is None else [np.zeros(out_shape) for _ in v]
        odq = np.zeros(out_shape, np.uint32) if with_dq else None
        drizzle_sums(data, pixmap, out[0], out[1], weights=w, kernel="square", var=v, out_var=ov,
                     dq=dq if with_dq else None, out_dq=odq)
        return out, ov, odq

    (num, den), _, _ = sums()
    ref_num, ref_den = brute_force_square(data.astype(float), weights.astype(float), cmap, out_shape)
    np.testing.assert_allclose(den, ref_den, rtol=1e-6, atol=1e-7)
    covered = ref_den > 1e-6
    np.testing.assert_allclose(num[covered] / den[covered], ref_num[covered] / ref_den[covered], rtol=2e-6)
    one_by_one = [np.zeros(out_shape), np.zeros(out_shape)]
    for j in range(ny):
        for i in range(nx):
            w = np.zeros_like(weights)
            w[j, i] = weights[j, i]
            for total, part in zip(one_by_one, sums(w=w)[0]):
                total += part   # 0 + x where the drop adds nothing: the same bits
    assert np.array_equal(one_by_one[0], num) and np.array_equal(one_by_one[1], den)
    both, ov, odq = sums(var, with_dq=True)
    assert np.array_equal(both[0], num) and np.array_equal(both[1], den)
    assert (odq != 0).sum() > 20
    for k in range(2):
        _, (alone,), _ = sums([var[k]])
        assert (alone > 0).sum() > ny * nx
        np.testing.assert_array_equal(ov[k], alone)


def test_square_3x3_drops_split_across_blocks_add_up_bit_for_bit():
    """Blocks of 1, 2, 3 and 5 output pixels cut every 3x3 drop of a 30 deg frame: the
    blocks' sums (and variance, DQ, context) equal the unsplit ones bit for bit.  (~1 s)"""
    from dazzle.kernels import drizzle_sums

    rng = np.random.default_rng(12)
    ny, nx = 14, 16
    pixmap, cmap, frame = rotated_case(30.0, 0.98, ny, nx)
    assert (spans(cmap, ny, nx) == 3).mean() > 0.6
    data = rng.normal(5, 1, (ny, nx)).astype(np.float32)
    kw = dict(weights=rng.uniform(0.5, 1.5, (ny, nx)).astype(np.float32), kernel="square", bit=2,
              var=rng.uniform(0.5, 2.0, (ny, nx)).astype(np.float32),
              dq=(rng.integers(1, 1 << 16, (ny, nx)) * (rng.random((ny, nx)) < 0.2)).astype(np.int32))

    def blank(shape):
        return np.zeros(shape), np.zeros(shape), np.zeros(shape, np.int32), np.zeros(shape), np.zeros(shape, np.uint32)

    full = blank(frame)
    drizzle_sums(data, pixmap, *full[:3], out_var=full[3], out_dq=full[4], **kw)
    assert (full[2] == 2).sum() > ny * nx and (full[4] != 0).sum() > 20
    for tile in (1, 2, 3, 5):
        tiled = blank(frame)
        for y0 in range(0, frame[0], tile):
            for x0 in range(0, frame[1], tile):
                sl = np.s_[y0:y0 + tile, x0:x0 + tile]
                part = blank(full[0][sl].shape)
                drizzle_sums(data, pixmap, *part[:3], x0=x0, y0=y0, out_var=part[3], out_dq=part[4], **kw)
                for whole, p in zip(tiled, part):
                    whole[sl] = p
        for a, b in zip(tiled, full):
            np.testing.assert_array_equal(a, b)
