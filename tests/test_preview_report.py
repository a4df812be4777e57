"""PNG previews, ``dazzle demo`` and ``dazzle report``.

* The PNG writer is checked by parsing its files back with an independent reader (signature,
  chunk CRCs, IHDR, zlib-compressed IDAT, every PNG filter type): the same reader decodes
  Chromium's screenshots.
* The stretch is checked on a realistic field: neither blank nor saturated; it is astropy's
  asinh normalisation (the same numbers through ImageNormalize and the plain path).
* The figures (matplotlib): PNG and image-area sizes, the colour bar's range (the stretch's),
  the no-data colour at the uncovered pixels, the compass directions and the scale bar's length
  against the WCS, the CR legend's colours and counts. Without matplotlib (its import made to
  fail) the plain pictures, pixel for pixel.
* The demo runs end to end (a smaller set than the default, for time): products, run summary,
  pictures that show the field and the CR masks where the FITS products have them, the report.
* The report's HTML: images inline as PNG data URIs, tables with the run's numbers (checked
  against the FITS products), parameters; rebuilt from the headers when the run summary is gone.
* The report in headless Chromium: every image decodes (naturalWidth > 0, read from the DOM
  after the load event), and the screenshot shows the mosaic and a chip where the DOM puts them
  (the pixels on screen correlate with the PNGs). Skipped, with the reason, without Chromium.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numba
import numpy as np
import pytest
from astropy.io import fits

from astrodrizzle_oracle import import_oracle, skip_or_fail
from dazzle import preview, report
from dazzle.cli import main
from dazzle.params import format_value, resolve

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)


# ---------------------------------------------------------------------------------------------
# an independent PNG reader (8-bit gray / RGB / RGBA, non-interlaced; all five filters)
# ---------------------------------------------------------------------------------------------

@numba.njit(cache=False)
def _unfilter(raw, h, stride, bpp):
    out = np.zeros((h, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int32)
    pos = 0
    for y in range(h):
        ftype = raw[pos]
        pos += 1
        for x in range(stride):
            v = np.int32(raw[pos + x])
            a = np.int32(out[y, x - bpp]) if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if ftype == 1:
                v += a
            elif ftype == 2:
                v += b
            elif ftype == 3:
                v += (a + b) // 2
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                v += a if (pa <= pb and pa <= pc) else (b if pb <= pc else c)
            elif ftype != 0:
                raise ValueError("bad PNG filter type")
            out[y, x] = v & 255
        pos += stride
        for x in range(stride):
            prev[x] = out[y, x]
    return out


def read_png(data: bytes):
    """(pixels (h, w) or (h, w, c) uint8, {chunk type: [payloads]}); checks every CRC."""
    assert data[:8] == preview.PNG_SIGNATURE, "not a PNG signature"
    pos, chunks = 8, {}
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        payload = data[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert crc == zlib.crc32(kind + payload) & 0xFFFFFFFF, f"bad CRC in {kind}"
        chunks.setdefault(kind.decode("ascii"), []).append(payload)
        pos += 12 + n
        if kind == b"IEND":
            break
    w, h, depth, ctype, comp, filt, interlace = struct.unpack(">IIBBBBB", chunks["IHDR"][0])
    assert (depth, comp, filt, interlace) == (8, 0, 0, 0), "only 8-bit non-interlaced PNGs"
    channels = {0: 1, 2: 3, 6: 4}[ctype]
    raw = np.frombuffer(zlib.decompress(b"".join(chunks["IDAT"])), dtype=np.uint8)
    assert raw.size == h * (1 + w * channels), "IDAT size does not match IHDR"
    pix = _unfilter(raw, h, w * channels, channels).reshape(h, w, channels)
    return (pix[:, :, 0] if channels == 1 else pix), chunks


def png_text(chunks) -> dict:
    return dict(c.split(b"\0", 1) for c in chunks.get("tEXt", []))


def not_blank_not_saturated(gray, *, min_std=10.0, max_black=0.02, max_white=0.02):
    g = np.asarray(gray, dtype=np.float64)
    assert g.std() > min_std, f"blank: std {g.std():.2f}"
    assert (g == 0).mean() < max_black, f"{100 * (g == 0).mean():.2f} % black"
    assert (g == 255).mean() < max_white, f"{100 * (g == 255).mean():.2f} % white"


def star_field(shape=(400, 500), seed=3, nan_border=30):
    """Sky + noise + Gaussian stars over 3 decades of flux, NaN outside the covered region."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    img = rng.normal(0.3, 0.02, shape)
    yy, xx = np.mgrid[:ny, :nx]
    for _ in range(40):
        x, y = rng.uniform(0, nx), rng.uniform(0, ny)
        img += 10 ** rng.uniform(0, 3) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.5 ** 2))
    img[:, :nan_border] = np.nan
    return img


# ---------------------------------------------------------------------------------------------
# the PNG writer and the stretch
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("channels", [1, 3, 4])
def test_png_round_trip(channels):
    rng = np.random.default_rng(channels)
    shape = (37, 53) if channels == 1 else (37, 53, channels)
    pix = rng.integers(0, 256, shape, dtype=np.uint8)
    data = preview.png_bytes(pix, text={"Title": "t", "Software": "dazzle"})
    back, chunks = read_png(data)
    assert struct.unpack(">II", chunks["IHDR"][0][:8]) == (53, 37)
    np.testing.assert_array_equal(back, pix)
    assert png_text(chunks)[b"Title"] == b"t"
    assert list(chunks)[0] == "IHDR" and list(chunks)[-1] == "IEND"


def test_png_smooth_image_compresses():
    ramp = np.tile(np.arange(256, dtype=np.uint8), (200, 1))
    assert len(preview.png_bytes(ramp)) < ramp.size / 20


def test_png_refuses_bad_pixels(tmp_path):
    with pytest.raises(TypeError):
        preview.png_bytes(np.zeros((4, 4)))
    with pytest.raises(ValueError):
        preview.png_bytes(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError):
        preview.png_bytes(np.zeros((0, 4), np.uint8))
    path = preview.write_png(tmp_path / "sub" / "a.png", np.full((3, 5), 7, np.uint8))
    assert read_png(Path(path).read_bytes())[0].shape == (3, 5)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["a.png"]      # no temporary left


def test_asinh_stretch_shows_a_star_field():
    img = star_field()
    pix, lim = preview.asinh_stretch(img, return_limits=True)
    assert pix.dtype == np.uint8 and pix.shape == img.shape
    covered = pix[:, 30:]
    not_blank_not_saturated(covered, min_std=15)
    # NaN is shown at the background level, the sky sits in the lower grays, noise is visible
    bg = int(pix[0, 0])
    assert np.all(pix[:, :30] == bg)
    assert 20 < bg < 120 and abs(int(np.median(covered)) - bg) <= 2
    assert covered[covered < 200].std() > 5
    assert lim.lo < lim.background < lim.hi
    # stars are bright: the brightest pixel is white
    assert pix.flat[np.nanargmax(img)] == 255


def test_asinh_stretch_weight_and_degenerate_images():
    img = star_field(nan_border=0)
    wht = np.ones_like(img)
    wht[:, :50] = 0
    img[:, :50] = 0.0                       # uncovered pixels left at 0 by the drizzle
    a = preview.asinh_stretch(img, weight=wht)
    b = preview.asinh_stretch(np.where(wht > 0, img, np.nan))
    np.testing.assert_array_equal(a, b)
    for flat in (np.zeros((20, 20)), np.full((20, 20), np.nan), np.full((20, 20), 5.0)):
        out = preview.asinh_stretch(flat)
        assert out.shape == (20, 20) and len(np.unique(out)) == 1
    noise = np.random.default_rng(0).normal(0, 1, (100, 100))
    not_blank_not_saturated(preview.asinh_stretch(noise))


def test_preview_png_is_ds9_oriented_and_downsampled(tmp_path):
    img = star_field((2500, 1800))
    img[:40, :] = 1e4                       # a bright band at the bottom (row 0) of the FITS image
    path = preview.write_preview_png(tmp_path / "p.png", img, max_side=1200, backend="plain")
    pix, chunks = read_png(Path(path).read_bytes())
    assert pix.shape == (834, 600, 3)       # 3 x 3 blocks: the smallest factor that fits 1200
    assert np.all(pix[-12:] == 255) and not np.all(pix[:12] == 255)    # row 0 at the bottom
    # the NaN border (30 columns = 10 blocks; not under the band) in the no-data colour, named in the PNG
    nodata = np.all(pix == preview.NODATA_COLOUR, axis=2)
    assert np.all(nodata[:-14, :10]) and not np.any(nodata[:, 10:]) and not np.any(nodata[-13:])
    assert b"asinh" in png_text(chunks)[b"Description"]
    assert f"no data in RGB{preview.NODATA_COLOUR}".encode() in png_text(chunks)[b"Description"]
    assert png_text(chunks)[b"Downsampling"].startswith(b"3x3")
    not_blank_not_saturated(pix[:-14, 10:, 0], min_std=5)     # a sparse field: mostly sky noise
    small = read_png(preview.preview_png_bytes(img[:300, :300], max_side=1200, backend="plain"))[0]
    assert small.shape == (300, 300, 3)


def test_stretch_is_astropys_asinh_normalisation():
    from astropy.visualization import AsinhStretch, ImageNormalize
    import_oracle("matplotlib", "matplotlib (the [plot] extra) is not installed")
    img = star_field()
    lim = preview.stretch_limits(img)
    v = img[np.isfinite(img)]
    assert (lim.lo, lim.hi) == pytest.approx(tuple(np.percentile(v, [0.5, 99.8])), rel=1e-12)
    assert lim.noise == pytest.approx(1.4826 * np.median(np.abs(v - np.median(v))), rel=1e-3)
    x = np.linspace(lim.lo - 1, lim.hi + 1, 1001)
    expected = np.clip(np.arcsinh((x - lim.lo) / lim.softening) / np.arcsinh((lim.hi - lim.lo) / lim.softening), 0, 1)
    np.testing.assert_allclose(lim(x), expected, atol=1e-12)
    norm = lim.normalize()
    assert isinstance(norm, ImageNormalize) and isinstance(norm.stretch, AsinhStretch)
    np.testing.assert_allclose(np.clip(norm(x), 0, 1), expected, atol=1e-12)
    ticks = lim.ticks()
    assert ticks[0] >= lim.lo and ticks[-1] <= lim.hi and len(ticks) == 5 and ticks == sorted(ticks)


# ---------------------------------------------------------------------------------------------
# the figures (matplotlib) and their absence
# ---------------------------------------------------------------------------------------------

def tan_wcs(shape, scale_arcsec=0.05, rot_deg=30.0):
    """A TAN WCS whose +y axis is ``rot_deg`` east of north."""
    from astropy.wcs import WCS

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.1, 2.2]
    w.wcs.crpix = [shape[1] / 2, shape[0] / 2]
    c, s = np.cos(np.radians(rot_deg)), np.sin(np.radians(rot_deg))
    w.wcs.cd = scale_arcsec / 3600.0 * np.array([[-c, s], [s, c]])
    return w


def image_area(chunks):
    return tuple(int(v) for v in png_text(chunks)[b"Image area"].split())


def at_pixels(pix, area, shape, rows, cols):
    """The PNG's pixels at the centres of image pixels (rows, cols) (FITS order, row 0 at the bottom)."""
    left, top, w, h = area
    rows, cols = np.asarray(rows), np.asarray(cols)
    px = left + np.floor((cols + 0.5) * w / shape[1]).astype(int)
    py = top + h - 1 - np.floor((rows + 0.5) * h / shape[0]).astype(int)
    return pix[py, px]


def test_mosaic_figure_axes_colour_bar_compass_scale_bar_and_no_data():
    # cost: ~1 s (two small figures)
    import_oracle("matplotlib", "matplotlib (the [plot] extra) is not installed: figures are not checked")
    from matplotlib.text import Annotation

    img = star_field((120, 160), nan_border=0)
    wht = np.ones(img.shape)
    wht[:, :40] = 0                          # uncovered: WHT = 0 (the image holds zeros there)
    img[:, :40] = 0.0
    wcs = tan_wcs(img.shape)
    pic = preview.mosaic_figure(img, weight=wht, wcs=wcs, title="t", bunit="ELECTRONS/S")
    data = pic.png_bytes(pic.text("t"))
    pix, chunks = read_png(data)
    left, top, w, h = area = image_area(chunks)
    assert (w, h) == (480, 360)              # enlarged 3x to the figures' smallest side
    assert pix.shape[:2] == (h + sum(preview._MARGINS[2:]), w + sum(preview._MARGINS[:2]))
    # the colour bar spans exactly the normalisation's range, black to white
    lim = pic.limits
    assert (pic.colorbar.vmin, pic.colorbar.vmax) == (lim.lo, lim.hi)
    assert pic.colorbar.ax.get_ylim() == pytest.approx((lim.lo, lim.hi))
    assert png_text(chunks)[b"Colour bar"] == f"{lim.lo!r} {lim.hi!r}".encode()
    bar = pix[top + 2:top + h - 2, left + w + 14 + 8, :3].astype(int)
    assert bar[0].min() >= 250 and bar[-1].max() <= 5 and np.all(np.diff(bar[:, 0]) <= 0)
    # uncovered pixels in the stated colour (legend and PNG text), covered ones in the gray stretch
    rows, cols = np.mgrid[30:90, 5:35]
    np.testing.assert_array_equal(at_pixels(pix, area, img.shape, rows, cols)[..., :3].reshape(-1, 3),
                                  np.tile(preview.NODATA_COLOUR, (rows.size, 1)))
    legend = pic.figure.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["no data (WHT = 0 or NaN)"]
    assert tuple(np.rint(np.array(legend.legend_handles[0].get_facecolor()[:3]) * 255)) == preview.NODATA_COLOUR
    rows, cols = np.mgrid[45:75, 60:100]
    shown = at_pixels(pix, area, img.shape, rows, cols)[..., :3].astype(int)
    assert np.all(shown[..., 0] == shown[..., 1]) and np.all(shown[..., 1] == shown[..., 2])
    gray = preview.asinh_stretch(img, limits=lim)[rows, cols].astype(int)
    # (matplotlib's colour map takes floor(256 u), the plain picture rint(255 u): at most 2 apart)
    assert np.abs(shown[..., 0] - gray).max() <= 2 and np.abs(shown[..., 0] - gray).mean() < 1
    # RA/Dec axes; the compass: north and east as the WCS says (+y is 30 deg east of north)
    assert pic.ax.coords[0].get_axislabel() == "Right ascension"
    assert pic.ax.coords[1].get_axislabel() == "Declination"
    arrows = [t for t in pic.ax.texts if isinstance(t, Annotation)]
    labels = {t.get_text(): np.array(t.get_position()) for t in pic.ax.texts if not isinstance(t, Annotation)}
    assert len(arrows) == 2 and set(labels) == {"N", "E"}
    origin = np.array(arrows[0].xyann)
    for name, expected in (("N", (0.5, np.sqrt(0.75))), ("E", (-np.sqrt(0.75), 0.5))):
        d = labels[name] - origin
        np.testing.assert_allclose(d / np.hypot(*d), expected, atol=2e-3)
    # the scale bar: 160 px x 0.05" = 8", a quarter is 2": 40 pixels long
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar
    (bar,) = [a for a in pic.ax.artists if isinstance(a, AnchoredSizeBar)]
    assert bar.txt_label.get_text() == '2"'
    assert bar.size_bar.get_children()[0].get_width() == pytest.approx(40.0, rel=1e-9)
    # written to a file, atomically, with the text
    assert png_text(chunks)[b"Title"] == b"t" and png_text(chunks)[b"Downsampling"] == b"1x1 block mean"


def test_figure_of_a_large_image_is_binned_to_fit():
    # cost: ~1 s
    import_oracle("matplotlib", "matplotlib (the [plot] extra) is not installed: figures are not checked")
    img = np.random.default_rng(6).normal(10.0, 1.0, (2000, 1000))
    wht = np.ones(img.shape)
    wht[:, :300] = 0
    pic = preview.mosaic_figure(img, weight=wht, wcs=tan_wcs(img.shape, rot_deg=0.0))
    assert pic.factor == 3                   # the smallest factor that fits FIGURE_SIDE (900)
    pix, chunks = read_png(pic.png_bytes())
    area = image_area(chunks)
    assert area[2:] == (334, 667)            # 334 x 667 blocks, one screen pixel each
    assert png_text(chunks)[b"Downsampling"] == b"3x3 block mean"
    # the axes are in the full image's pixels: uncovered columns < 300, covered from 300 on
    rows, cols = np.mgrid[500:1500:10, 10:290:10]
    assert np.all(at_pixels(pix, area, img.shape, rows, cols)[..., :3] == preview.NODATA_COLOUR)
    rows, cols = np.mgrid[500:1500:10, 310:690:10]
    shown = at_pixels(pix, area, img.shape, rows, cols)[..., :3].astype(int)
    assert np.all(shown[..., 0] == shown[..., 2]) and shown[..., 0].std() > 10
    # already binned 2x2 by the caller (as the report reads big mosaics): 2 x 2 more, same axes
    pre = preview.downsample(np.where(wht > 0, img, np.nan), 2)
    pic = preview.mosaic_figure(pre, wcs=tan_wcs(img.shape, rot_deg=0.0), binned=2, full_shape=img.shape)
    pix, chunks = read_png(pic.png_bytes())
    area = image_area(chunks)
    assert pic.factor == 4 and area[2:] == (250, 500)
    assert pic.ax.get_xlim() == (-0.5, 999.5) and pic.ax.get_ylim() == (-0.5, 1999.5)
    rows, cols = np.mgrid[500:1500:10, 10:290:10]
    assert np.all(at_pixels(pix, area, img.shape, rows, cols)[..., :3] == preview.NODATA_COLOUR)
    rows, cols = np.mgrid[500:1500:10, 310:690:10]
    shown = at_pixels(pix, area, img.shape, rows, cols)[..., :3].astype(int)
    assert np.all(shown[..., 0] == shown[..., 2]) and not np.any(np.all(shown == preview.NODATA_COLOUR, axis=-1))


def test_chip_figure_legend_names_the_colours_and_counts():
    # cost: ~0.5 s
    import_oracle("matplotlib", "matplotlib (the [plot] extra) is not installed: figures are not checked")
    rng = np.random.default_rng(5)
    sci = rng.normal(100, 10, (90, 120))
    crmask = np.ones(sci.shape, bool)
    crmask[40:43, 50:60] = False            # 30 cosmic-ray pixels
    good = np.ones(sci.shape, bool)
    good[:, 100] = False                    # a dead column, flagged too: 90 pixels
    crmask[:, 100] = False
    pic = preview.chip_crmask_figure(sci, crmask, good=good, wcs=tan_wcs(sci.shape, rot_deg=0.0),
                                     title="x_flt.fits[SCI,1]")
    assert pic.ax.get_title() == "x_flt.fits[SCI,1]"
    texts = [t.get_text() for t in pic.figure.legends[0].get_texts()]
    assert texts == ["cosmic ray (CR mask 0): 30 px", "flagged, DQ already bad: 90 px"]
    colours = [tuple(np.rint(np.array(p.get_facecolor()[:3]) * 255)) for p in pic.figure.legends[0].legend_handles]
    assert colours == [preview.CR_COLOUR, preview.DQ_COLOUR]
    pix, chunks = read_png(pic.png_bytes())
    area = image_area(chunks)
    r, g, b = (at_pixels(pix, area, sci.shape, *np.mgrid[20:70, 30:110])[..., i].astype(int) for i in range(3))
    red, blue = (r - g > 80) & (r - b > 80), b - r > 80
    np.testing.assert_array_equal(red, (~crmask & good)[20:70, 30:110])
    np.testing.assert_array_equal(blue, (~crmask & ~good)[20:70, 30:110])


def test_pictures_without_matplotlib(monkeypatch, tmp_path):
    # matplotlib missing (its import fails): plain pictures, the same normalisation, the same colours
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert not preview.have_matplotlib() and preview.choose_backend() == "plain"
    with pytest.raises(ImportError, match="plot"):
        preview.choose_backend("matplotlib")
    img = star_field((120, 160), nan_border=0)
    wht = np.ones(img.shape)
    wht[:, :40] = 0
    pix, chunks = read_png(Path(preview.write_preview_png(tmp_path / "m.png", img, weight=wht,
                                                          wcs=tan_wcs(img.shape))).read_bytes())
    assert pix.shape == (120, 160, 3) and b"Image area" not in png_text(chunks)
    assert np.all(pix[:, :40] == preview.NODATA_COLOUR)
    lim = preview.stretch_limits(img, weight=wht)
    np.testing.assert_array_equal(pix[::-1, 40:, 0], preview.asinh_stretch(img, limits=lim)[:, 40:])
    crmask = np.ones(img.shape, bool)
    crmask[5, 5] = False
    chip = read_png(preview.chip_crmask_png_bytes(img, crmask, wcs=tan_wcs(img.shape)))[0]
    np.testing.assert_array_equal(chip, preview.chip_crmask_rgb(img, crmask))


def test_chip_crmask_overlay_colours():
    rng = np.random.default_rng(4)
    sci = rng.normal(100, 10, (64, 80))
    crmask = np.ones(sci.shape, bool)       # True = good
    crmask[10, 20] = crmask[30, 40:45] = False
    good = np.ones(sci.shape, bool)
    good[:, 60] = False                     # a dead column, flagged by driz_cr too
    crmask[:, 60] = False
    rgb = preview.chip_crmask_rgb(sci, crmask, good=good, origin="upper")
    assert rgb.shape == (64, 80, 3) and rgb.dtype == np.uint8
    r, g, b = (rgb[:, :, i].astype(int) for i in range(3))
    red = (r - g > 80) & (r - b > 80)
    blue = (b - r > 80)
    gray = (r == g) & (g == b)
    np.testing.assert_array_equal(red, ~crmask & good)
    np.testing.assert_array_equal(blue, ~crmask & ~good)
    np.testing.assert_array_equal(gray, crmask)
    # one CR pixel in a 3000-pixel chip stays visible after downsampling (block maximum)
    big = rng.normal(100, 10, (3000, 1500))
    m = np.ones(big.shape, bool)
    m[1234, 777] = False
    small = preview.chip_crmask_rgb(big, m, max_side=1000, origin="upper")
    assert small.shape == (1000, 500, 3)
    rr, gg = small[:, :, 0].astype(int), small[:, :, 1].astype(int)
    assert list(zip(*np.nonzero(rr - gg > 80))) == [(1234 // 3, 777 // 3)]
    with pytest.raises(ValueError):
        preview.chip_crmask_rgb(sci, crmask[:10])


# ---------------------------------------------------------------------------------------------
# the demo, end to end
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo_output"
    buf, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
        rc = main(["demo", str(out), "--size", "256", "--exposures", "3"])
    return {"rc": rc, "out": out, "stdout": buf.getvalue(), "stderr": err.getvalue()}


@pytest.fixture(scope="module")
def summary(demo):
    return json.loads((demo["out"] / "products" / "demo_run.json").read_text())


def test_demo_runs_and_says_what_it_did(demo):
    assert demo["rc"] == 0, demo["stderr"][-2000:]
    out, text = demo["out"], demo["stdout"]
    for p in ["products/demo_drz.fits", "products/demo_med.fits", "products/demo_run.json",
              "preview_drz.png", "preview_chip_crmask.png", "report.html", "inputs/truth_stars.ecsv"]:
        assert (out / p).is_file(), p
    assert len(list((out / "products").glob("*_crmask.fits"))) == 3
    for words in ["output frame:", "CR pixels flagged", "time per step", "static mask", "final drizzle",
                  "preview_drz.png", "preview_chip_crmask.png", "report.html", "try next", "dazzle params",
                  "workflows/"]:
        assert words in text, words
    assert "100% Completed" in demo["stderr"]          # the progress bar


def expected_area(shape):
    """(width, height) of a figure's image area for an image of ``shape`` (FIGURE_MIN_SIDE..FIGURE_SIDE)."""
    side = max(shape)
    scale = min(preview.FIGURE_SIDE, max(preview.FIGURE_MIN_SIDE, side)) / side
    return round(shape[1] * scale), round(shape[0] * scale)


def clear_columns(shape):
    """Columns of a figure's image left free by the compass (upper left, within 1/3 of the
    width) and the scale bar (lower right, the last quarter and its label)."""
    return slice(int(0.36 * shape[1]), int(0.64 * shape[1]))


def interior(mask, edge=8):
    """``mask`` pixels whose four neighbours are in ``mask`` too, not within ``edge`` pixels
    of the top or bottom (where the axes' frame and ticks are drawn over the image)."""
    m = mask.copy()
    m[:edge] = m[-edge:] = False
    m[1:] &= mask[:-1]
    m[:-1] &= mask[1:]
    m[:, 1:] &= mask[:, :-1]
    m[:, :-1] &= mask[:, 1:]
    return m


def test_demo_preview_shows_the_field(demo):
    import_oracle("matplotlib", "matplotlib (the [plot] extra) is not installed: figures are not checked")
    pix, chunks = read_png((demo["out"] / "preview_drz.png").read_bytes())
    with fits.open(demo["out"] / "products" / "demo_drz.fits") as h:
        sci, wht = h["SCI"].data, h["WHT"].data
    area = image_area(chunks)
    assert area[2:] == expected_area(sci.shape)                  # small: enlarged, not binned
    assert png_text(chunks)[b"Downsampling"].startswith(b"1x1")
    cols = clear_columns(sci.shape)
    rows, cc = np.mgrid[0:sci.shape[0], cols]
    shown = at_pixels(pix, area, sci.shape, rows, cc)[..., :3].astype(int)
    # uncovered pixels in the no-data colour, covered ones gray and neither blank nor saturated
    nodata = interior(wht[:, cols] == 0)
    assert nodata.sum() > 200
    assert np.all(shown[nodata] == preview.NODATA_COLOUR)
    covered = interior(wht[:, cols] > 0)
    assert np.all(shown[covered][:, 0] == shown[covered][:, 2])
    not_blank_not_saturated(shown[covered][:, 0], min_std=10)
    # the stars are where the drizzled image has them
    bright = (np.nan_to_num(sci) > np.nanpercentile(sci[wht > 0], 99.9))[:, cols]
    assert shown[bright & covered][:, 0].mean() > 250 > np.median(shown[covered][:, 0]) + 150
    # the colour bar's range is the stretch's
    lo, hi = (float(v) for v in png_text(chunks)[b"Colour bar"].split())
    assert f"lo={lo:.6g} hi={hi:.6g}".encode() in png_text(chunks)[b"Description"]


def test_demo_chip_preview_shows_the_cr_mask(demo):
    import_oracle("matplotlib", "matplotlib (the [plot] extra) is not installed: figures are not checked")
    pix, chunks = read_png((demo["out"] / "preview_chip_crmask.png").read_bytes())
    crmask = fits.getdata(demo["out"] / "products" / "dzsim01_sci1_crmask.fits").astype(bool)
    dq = fits.getdata(demo["out"] / "inputs" / "dzsim01_flt.fits", ("DQ", 1))
    area = image_area(chunks)
    assert area[2:] == expected_area(crmask.shape)
    assert png_text(chunks)[b"Title"] == b"dzsim01_flt.fits[SCI,1]"
    cols, rows = clear_columns(crmask.shape), slice(8, -8)     # not the axes' frame and ticks
    shown = at_pixels(pix, area, crmask.shape, *np.mgrid[0:crmask.shape[0], cols])[rows]
    r, g, b = (shown[..., i].astype(int) for i in range(3))
    red, blue = (r - g > 80) & (r - b > 80), b - r > 80
    np.testing.assert_array_equal(red, (~crmask & (dq == 0))[rows, cols])
    np.testing.assert_array_equal(blue, (~crmask & (dq != 0))[rows, cols])
    assert red.sum() > 30 and blue.sum() > 100
    not_blank_not_saturated(r[crmask[rows, cols]], min_std=10)


def test_demo_pictures_without_matplotlib(demo, tmp_path, monkeypatch):
    # cost: ~0.3 s (no pipeline run: the demo's products, pictured again with matplotlib's import failing)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    pngs = report.write_previews(report.collect_run(demo["out"]), tmp_path)
    pix, chunks = read_png(Path(pngs["drz"]).read_bytes())
    with fits.open(demo["out"] / "products" / "demo_drz.fits") as h:
        sci, wht = h["SCI"].data, h["WHT"].data
    assert pix.shape == sci.shape + (3,)                    # one PNG pixel per image pixel
    np.testing.assert_array_equal(np.all(pix[::-1] == preview.NODATA_COLOUR, axis=2), wht == 0)
    not_blank_not_saturated(pix[::-1][wht > 0][:, 0], min_std=10)
    pix, _ = read_png(Path(pngs["chip"]).read_bytes())
    crmask = fits.getdata(demo["out"] / "products" / "dzsim01_sci1_crmask.fits").astype(bool)
    dq = fits.getdata(demo["out"] / "inputs" / "dzsim01_flt.fits", ("DQ", 1))
    assert pix.shape == crmask.shape + (3,)
    r, g, b = (pix[::-1, :, i].astype(int) for i in range(3))
    np.testing.assert_array_equal((r - g > 80) & (r - b > 80), ~crmask & (dq == 0))
    np.testing.assert_array_equal(b - r > 80, ~crmask & (dq != 0))
    # the report says what the plain pictures show
    page = report.render_report(demo["out"], tmp_path / "plain.html")
    text = Path(page).read_text()
    assert "compass" not in text.split("<h2>Time per step")[0] and "no data (WHT = 0)" in text


def test_run_summary_matches_the_products(demo, summary):
    base = demo["out"] / "products"
    assert summary["schema"] == report.SCHEMA and summary["nchips"] == 3
    assert summary["output"] == "demo_drz.fits"
    with fits.open(base / "demo_drz.fits") as h:
        assert summary["frame_shape"] == list(h["SCI"].data.shape)
    for c in summary["chips"]:
        m = fits.getdata(base / c["crmask"])
        assert c["cr_pixels"] == int((m == 0).sum()) > 100
        assert c["sky"] == pytest.approx(fits.getheader(base / c["blot"])["MDRIZSKY"], rel=1e-6)
        assert c["sky"] == pytest.approx(0.3 * 400, rel=0.01)          # the simulated sky, e-
        assert (base / c["path"]).resolve() == (demo["out"] / "inputs" / Path(c["path"]).name).resolve()
        # the demo's sky is 120 e-: with drizzlepac's noise term (the default) a 50 e- cosmic
        # ray is ~3 sigma, so 89-94 % of the CR pixels above 50 e- are found (measured)
        assert int(c["truth_cr_pixels"]) > 0 and float(c["truth_found"].rstrip(" %")) > 85
    steps = summary["steps"]
    assert list(steps)[:6] == ["static mask", "sky", "driz_separate", "median", "blot+driz_cr", "final drizzle"]
    assert all(s["tasks"] > 0 and s["seconds"] >= 0 and s["end"] >= s["start"] for s in steps.values())
    assert set(summary["timings"]) >= {"plan", "run"}
    # the parameters are those of workflows/demo.cfg (the demo runs AstroDrizzle's defaults)
    demo_cfg = resolve(str(ROOT / "workflows" / "demo.cfg"))
    for name, value in summary["params"].items():
        if name != "output":
            assert value == format_value(demo_cfg[name]), name


# ---------------------------------------------------------------------------------------------
# the report's HTML
# ---------------------------------------------------------------------------------------------

class _Page(HTMLParser):
    """Images (attributes), tables (id -> rows of (text, data-value) cells), links."""

    def __init__(self):
        super().__init__()
        self.images, self.tables, self.external = [], {}, []
        self._table = self._row = self._cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a)
        for key in ("src", "href"):
            if a.get(key, "").startswith(("http:", "https:", "//", "file:")) or tag in ("link", "iframe"):
                self.external.append((tag, a))
        if tag == "table":
            self._table = self.tables.setdefault(a.get("id", f"t{len(self.tables)}"), [])
        elif tag == "tr" and self._table is not None:
            self._row = {"attrs": a, "cells": []}
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = [a.get("data-value"), ""]
            self._row["cells"].append(self._cell)

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag in ("td", "th"):
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data


def page_text(path):
    return Path(path).read_text(encoding="utf-8")


def parse_page(path):
    p = _Page()
    p.feed(Path(path).read_text(encoding="utf-8"))
    return p


def decode_img(attrs, chunks=False):
    src = attrs["src"]
    assert src.startswith("data:image/png;base64,")
    pix, c = read_png(base64.b64decode(src.split(",", 1)[1]))
    return (pix, c) if chunks else pix


def test_report_html_is_self_contained_with_images_and_numbers(demo, summary):
    page = parse_page(demo["out"] / "report.html")
    assert page.external == []
    ids = [a.get("id") for a in page.images]
    assert ids == ["img-final", "img-chip-0", "img-chip-1", "img-chip-2"]
    for a in page.images:
        pix, chunks = decode_img(a, chunks=True)
        assert (int(a["width"]), int(a["height"])) == (pix.shape[1], pix.shape[0])
        left, top, w, h = image_area(chunks)            # the figure's image, without the white margins
        not_blank_not_saturated(pix[top:top + h, left:left + w, 1], min_std=8)
    final, chunks = decode_img(page.images[0], chunks=True)
    assert image_area(chunks)[2:] == expected_area(summary["frame_shape"])
    assert "compass" in page_text(demo["out"] / "report.html")
    # chips: CR counts and skies as in the products
    rows = [r for r in page.tables["chips"] if r["attrs"].get("data-chip") is not None]
    assert len(rows) == 3
    for row, c in zip(rows, summary["chips"]):
        cells = row["cells"]
        assert c["label"] in cells[1][1]
        assert float(cells[3][0]) == pytest.approx(c["sky"])
        assert int(cells[4][0]) == c["cr_pixels"]
        assert cells[4][1].replace(",", "") == str(c["cr_pixels"])
    # time per step
    steps = {r["attrs"]["data-step"]: r["cells"] for r in page.tables["steps"] if "data-step" in r["attrs"]}
    assert set(steps) >= {"static mask", "sky", "driz_separate", "median", "blot+driz_cr", "final drizzle"}
    for name, cells in steps.items():
        assert int(cells[1][0]) == summary["steps"][name]["tasks"]
        assert float(cells[2][0]) == pytest.approx(summary["steps"][name]["seconds"])
    # every parameter, with its value
    params = {r["attrs"]["data-name"]: r for r in page.tables["params"] if "data-name" in r["attrs"]}
    assert set(params) == set(summary["params"])
    assert params["final_kernel"]["cells"][1][0] == "square"
    assert params["driz_cr_snr"]["cells"][1][0] == "3.5 3.0"
    assert "changed" not in params["final_kernel"]["attrs"].get("class", "")


def test_report_marks_changed_parameters_and_cli(demo, tmp_path, capsys):
    # a second run of the demo's inputs with two parameters changed, then `dazzle report`
    import dazzle

    files = sorted(str(p) for p in (demo["out"] / "inputs").glob("*_flt.fits"))
    r = dazzle.run(files, str(tmp_path / "run" / "alt"), final_pixfrac=0.8, final_kernel="turbo")
    report.save_run_summary(r)
    assert main(["report", str(tmp_path / "run")]) == 0
    text = capsys.readouterr().out
    assert "report:" in text and "CR pixels flagged" in text
    page = parse_page(tmp_path / "run" / "report.html")
    params = {r["attrs"]["data-name"]: r for r in page.tables["params"] if "data-name" in r["attrs"]}
    assert "changed" in params["final_pixfrac"]["attrs"]["class"]
    assert params["final_kernel"]["cells"][1][0] == "turbo"
    assert "changed" not in params["final_wht_type"]["attrs"]["class"]
    assert [a["id"] for a in page.images][:2] == ["img-final", "img-chip-0"]


def test_report_rebuilt_from_headers_without_summary(demo, summary, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(demo["out"] / "products", run / "products")
    shutil.copytree(demo["out"] / "inputs", run / "inputs")
    (run / "products" / "demo_run.json").unlink()
    out = report.render_report(run, run / "r.html")
    page = parse_page(out)
    assert "rebuilt from the products" in Path(out).read_text()
    assert [a["id"] for a in page.images] == ["img-final", "img-chip-0", "img-chip-1", "img-chip-2"]
    rows = [r for r in page.tables["chips"] if r["attrs"].get("data-chip") is not None]
    for row, c in zip(rows, summary["chips"]):
        assert int(row["cells"][4][0]) == c["cr_pixels"]
        assert float(row["cells"][3][0]) == pytest.approx(c["sky"])
    params = {r["attrs"]["data-name"]: r for r in page.tables["params"] if "data-name" in r["attrs"]}
    assert params["final_kernel"]["cells"][1][0] == "square"     # from the HISTORY cards
    assert params["combine_type"]["cells"][1][0] == "minmed"
    # the chip pictures come from the inputs, found beside the products
    chip0, chunks = decode_img(page.images[1], chunks=True)
    assert image_area(chunks)[2:] == expected_area((256, 256))
    # without the inputs the blotted median stands in
    shutil.rmtree(run / "inputs")
    page = parse_page(report.render_report(run / "products", run / "r2.html"))
    assert len(page.images) == 4 and "input dzsim01_flt.fits not found" in (run / "r2.html").read_text()


def test_report_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no dazzle run found" in capsys.readouterr().err
    bad = tmp_path / "x_run.json"
    bad.write_text("{}")
    assert main(["report", str(bad)]) == 2
    assert "not a dazzle run summary" in capsys.readouterr().err
    with pytest.raises(report.ReportError):
        report.render_report(tmp_path / "missing")


def test_normalize_steps():
    # (the task-name -> step table: tests/test_facts.py)
    rows = [("sky", 4, 100.0, 101.0, 2.5, {}), ("median", 2, 101.0, 101.5, 0.7, {})]
    n = report.normalize_steps(rows)
    assert n["sky"] == {"tasks": 4, "seconds": 2.5, "start": 0.0, "end": 1.0}
    assert n["median"]["end"] == pytest.approx(1.5)


# ---------------------------------------------------------------------------------------------
# the report in a real browser
# ---------------------------------------------------------------------------------------------

_PROBE = """<script>
window.addEventListener("load", function () {
  for (const img of document.images) {
    const r = img.getBoundingClientRect();
    img.dataset.naturalWidth = img.naturalWidth;
    img.dataset.naturalHeight = img.naturalHeight;
    img.dataset.complete = img.complete;
    img.dataset.rect = [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height].join(",");
  }
  document.body.dataset.probed = "yes";
});
</script>"""

_WINDOW = (1400, 2600)


def _chromium(args, tmp_path, timeout=90):
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--hide-scrollbars", "--force-device-scale-factor=1",
           f"--window-size={_WINDOW[0]},{_WINDOW[1]}", *args]
    return subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)


def _best_match(shot, x0, y0, ref):
    """Correlation of ``ref`` with the screenshot at (x0, y0), best over +-2 px (sub-pixel layout)."""
    h, w = ref.shape[:2]
    best = -1.0
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            y, x = int(round(y0)) + dy, int(round(x0)) + dx
            crop = shot[y:y + h, x:x + w]
            if crop.shape[:2] != (h, w):
                continue
            a, b = crop.astype(float).ravel(), ref.astype(float).ravel()
            best = max(best, float(np.corrcoef(a, b)[0, 1]))
    return best


def test_report_renders_in_headless_chromium(demo, tmp_path):
    if CHROMIUM is None:
        skip_or_fail("Chromium not installed (Debian: apt-get install -y chromium): the report is "
                     "not checked in a browser")
    html_text = (demo["out"] / "report.html").read_text(encoding="utf-8")
    probe = tmp_path / "probe.html"
    probe.write_text(html_text.replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    # 1. the DOM after the load event: every image decoded, at its natural size
    r = _chromium(["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], tmp_path)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
    dom = _Page()
    dom.feed(r.stdout.decode("utf-8"))
    assert 'data-probed="yes"' in r.stdout.decode("utf-8"), "the page's load event did not run"
    imgs = {a["id"]: a for a in dom.images}
    assert set(imgs) == {"img-final", "img-chip-0", "img-chip-1", "img-chip-2"}
    for a in imgs.values():
        assert a["data-complete"] == "true"
        assert int(a["data-natural-width"]) == int(a["width"]) > 0
        assert int(a["data-natural-height"]) == int(a["height"]) > 0
        x, y, w, h = (float(v) for v in a["data-rect"].split(","))
        assert w >= int(a["width"]) and h >= int(a["height"])          # shown at full size (+ border)
    # 2. the screenshot: the page is not blank, and the mosaic and a chip are on screen where
    #    the DOM puts them (inside a 1 px border)
    shot_path = tmp_path / "shot.png"
    r = _chromium([f"--screenshot={shot_path}", probe.as_uri()], tmp_path)
    assert r.returncode == 0 and shot_path.is_file(), r.stderr.decode(errors="replace")[-2000:]
    shot, _ = read_png(shot_path.read_bytes())
    assert shot.shape[:2] == (_WINDOW[1], _WINDOW[0])
    gray = shot[:, :, :3].mean(axis=2)
    assert gray.std() > 20 and len(np.unique(shot[:, :, 1])) > 100
    checked = 0
    for key in ("img-final", "img-chip-0"):
        a = imgs[key]
        x, y, w, h = (float(v) for v in a["data-rect"].split(","))
        if y + h > _WINDOW[1]:
            continue
        ref = decode_img(a)
        if ref.ndim == 2:
            score = _best_match(gray, x + 1, y + 1, ref)
        else:
            score = _best_match(shot[:, :, 0], x + 1, y + 1, ref[:, :, 0])
        assert score > 0.95, (key, score)
        checked += 1
    assert checked == 2
