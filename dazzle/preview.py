"""Pictures of dazzle products: the final mosaic and each chip with its cosmic-ray mask.

Two ways to draw them, chosen by :func:`choose_backend` (``backend="auto"``):

* **with matplotlib** (the ``[plot]`` extra): a WCSAxes figure -- RA/Dec ticks, a colour bar
  whose range is the stretch's, a north/east compass, a scale bar in arcseconds and a legend
  (uncovered pixels; on chips, which colour marks a cosmic ray and which a pixel DQ already
  flags).  Drawn on a :class:`matplotlib.figure.Figure` (no pyplot, no global state) and saved
  by matplotlib.
* **plain** (no matplotlib): the image itself, one PNG pixel per (block of) image pixel(s),
  written by :func:`png_bytes`.  None of dazzle's runtime dependencies (numpy, astropy, dask,
  distributed, numba) writes PNG files -- astropy's picture helpers save through matplotlib
  -- so the plain pictures keep this small encoder (numpy, ``zlib``, ``struct``).

Both share the normalisation: an asinh stretch (:class:`astropy.visualization.AsinhStretch`)
between robust limits (:class:`astropy.visualization.AsymmetricPercentileInterval` of the
covered pixels; the noise is :func:`astropy.stats.mad_std`), see :class:`Stretch`.  With
matplotlib it is an :class:`astropy.visualization.ImageNormalize`; without, the same interval
and stretch objects map the pixels to 8 bits.

Pixels with no data (WHT <= 0, NaN) are drawn in :data:`NODATA_COLOUR`, never in a gray of the
sky.  Images are FITS-ordered arrays (row 0 is the *bottom* of the picture, as in ds9).  The
stretch limits, the downsampling and (figures) the image's place in the PNG are recorded as
``tEXt`` chunks.  Cosmic-ray masks use dazzle's convention (as ``RunResult.crmasks`` and the
``*_crmask.fits`` products): True / 1 = good pixel, False / 0 = cosmic ray.
"""

from __future__ import annotations

import io
import math
import os
import struct
import zlib
from dataclasses import dataclass

import numpy as np

__all__ = [
    "PNG_SIGNATURE",
    "png_bytes",
    "write_png",
    "Stretch",
    "stretch_limits",
    "asinh_stretch",
    "downsample",
    "choose_backend",
    "have_matplotlib",
    "Picture",
    "mosaic_figure",
    "chip_crmask_figure",
    "preview_rgb",
    "preview_png_bytes",
    "write_preview_png",
    "chip_crmask_rgb",
    "chip_crmask_png_bytes",
    "write_chip_crmask_png",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: Default largest side (pixels) of a preview; larger images are block-averaged down.
MAX_SIDE = 1200

#: Largest side (screen pixels) of the image area of a figure (images are binned to fit it).
FIGURE_SIDE = 900

#: Smallest side (screen pixels) of the image area of a figure (smaller images are enlarged).
FIGURE_MIN_SIDE = 480

#: Default colour of cosmic-ray pixels in the chip overlay (a saturated red-orange).
CR_COLOUR = (255, 64, 32)

#: Default colour of flagged pixels that the input's DQ already marks bad (hot pixels, dead columns).
DQ_COLOUR = (40, 150, 255)

#: Colour of pixels with no data (WHT <= 0 or NaN) in the mosaic: a dark purple, not a gray.
NODATA_COLOUR = (96, 32, 112)

_COLOUR_TYPES = {1: 0, 3: 2, 4: 6}   # channels -> PNG colour type (gray, RGB, RGBA)


# ---------------------------------------------------------------------------------------------
# PNG writing
# ---------------------------------------------------------------------------------------------

def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_bytes(pixels, *, text: dict | None = None, level: int = 6) -> bytes:
    """The PNG file (bytes) of ``pixels``: a uint8 array ``(h, w)`` (grayscale), ``(h, w, 3)``
    (RGB) or ``(h, w, 4)`` (RGBA); row 0 is the top of the picture.  ``text`` adds ``tEXt``
    chunks (Latin-1 keys and values).  Every row uses PNG filter 1 (Sub)."""
    a = np.asarray(pixels)
    if a.dtype != np.uint8:
        raise TypeError(f"png_bytes needs uint8 pixels, got {a.dtype}")
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in _COLOUR_TYPES:
        raise ValueError(f"png_bytes needs an (h, w), (h, w, 3) or (h, w, 4) array, got shape {a.shape}")
    h, w, c = a.shape
    if h < 1 or w < 1:
        raise ValueError(f"cannot write an empty image ({h} x {w})")
    rows = np.ascontiguousarray(a).reshape(h, w * c)
    raw = np.empty((h, 1 + w * c), dtype=np.uint8)
    raw[:, 0] = 1                                   # filter type Sub: byte - byte to its left
    raw[:, 1:1 + c] = rows[:, :c]
    raw[:, 1 + c:] = rows[:, c:] - rows[:, :-c]     # uint8 arithmetic wraps modulo 256
    out = [PNG_SIGNATURE,
           _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, _COLOUR_TYPES[c], 0, 0, 0))]
    for key, value in (text or {}).items():
        out.append(_chunk(b"tEXt", str(key).encode("latin-1", "replace")[:79] + b"\0"
                          + str(value).encode("latin-1", "replace")))
    out.append(_chunk(b"IDAT", zlib.compress(raw.tobytes(), level)))
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)


def _write_atomic(path, data: bytes) -> str:
    from dazzle.atomic import write_bytes_atomic

    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_bytes_atomic(path, data)
    return path


def write_png(path, pixels, *, text: dict | None = None) -> str:
    """Write ``pixels`` (see :func:`png_bytes`) to ``path`` (atomically); returns the path."""
    return _write_atomic(path, png_bytes(pixels, text=text))


# ---------------------------------------------------------------------------------------------
# Stretch (astropy.visualization) and downsampling
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stretch:
    """The normalisation of a picture (image units): an asinh stretch from ``lo`` (black) to
    ``hi`` (white) with softening ``softening`` (the linear-to-logarithmic turnover, so many
    times the robust ``noise``); ``background`` (the median) is where the plain pictures put
    NaN pixels of a chip.  Calling it maps values to [0, 1] with astropy's
    :class:`~astropy.visualization.ManualInterval` and :class:`~astropy.visualization.AsinhStretch`:
    ``asinh((x - lo) / s) / asinh((hi - lo) / s)``.  :meth:`normalize` is the same mapping as
    an :class:`~astropy.visualization.ImageNormalize` for matplotlib."""

    lo: float
    hi: float
    background: float
    noise: float
    softening: float

    def as_text(self) -> str:
        return (f"asinh: lo={self.lo:.6g} hi={self.hi:.6g} background={self.background:.6g} "
                f"noise={self.noise:.6g} softening={self.softening:.6g}")

    @property
    def asinh(self):
        from astropy.visualization import AsinhStretch

        return AsinhStretch(a=min(1.0, max(self.softening / (self.hi - self.lo), 1e-12)))

    def __call__(self, values):
        from astropy.visualization import ManualInterval

        unit = ManualInterval(self.lo, self.hi)(np.asarray(values, dtype=np.float64), clip=True)
        return self.asinh(unit, clip=True)

    def normalize(self):
        """The :class:`~astropy.visualization.ImageNormalize` (needs matplotlib)."""
        from astropy.visualization import ImageNormalize

        # clip=False: astropy would turn masked (no data) pixels into 1 (white); the colour map
        # clips instead, and draws masked pixels in its "bad" colour
        return ImageNormalize(vmin=self.lo, vmax=self.hi, stretch=self.asinh, clip=False)

    def ticks(self, n: int = 5) -> list:
        """``n`` values evenly spaced in the stretched scale, to 2 significant digits (the ends
        rounded inwards, so every tick lies in [lo, hi]): the colour bar's ticks."""
        out = []
        for k, u in enumerate(np.linspace(0.0, 1.0, n)):
            v = self.lo + (self.hi - self.lo) * float(self.asinh.inverse(np.array([u]))[0])
            if v != 0:
                step = 10.0 ** (math.floor(math.log10(abs(v))) - 1)
                v = (math.ceil if k == 0 else math.floor if k == n - 1 else round)(v / step) * step
                v = float(f"{v:.2g}")
            if self.lo <= v <= self.hi and v not in out:
                out.append(v)
        return out


def _valid(image, weight=None):
    x = np.asarray(image, dtype=np.float64)
    ok = np.isfinite(x)
    if weight is not None:
        w = np.asarray(weight)
        if w.shape != x.shape:
            raise ValueError(f"weight shape {w.shape} != image shape {x.shape}")
        ok &= np.isfinite(w) & (w > 0)
    return x, ok


def stretch_limits(image, *, weight=None, lo_percentile: float = 0.5, hi_percentile: float = 99.8,
                   softening_sigma: float = 1.0, max_samples: int = 1_000_000) -> Stretch:
    """Robust limits of the stretch from the finite (covered) pixels: ``lo``/``hi`` from
    :class:`astropy.visualization.AsymmetricPercentileInterval`, the background their median
    and the noise :func:`astropy.stats.mad_std` (at most ``max_samples`` evenly spaced pixels
    are used, so the limits are reproducible).  A noise-only image keeps at least 10 sigma of
    range, so its noise is not blown up to black and white."""
    from astropy.stats import mad_std
    from astropy.visualization import AsymmetricPercentileInterval

    if not 0.0 <= lo_percentile < hi_percentile <= 100.0:
        raise ValueError("need 0 <= lo_percentile < hi_percentile <= 100")
    x, ok = _valid(image, weight)
    v = x[ok]
    if v.size == 0:
        return Stretch(0.0, 1.0, 0.0, 1.0, 1.0)
    if v.size > max_samples:
        v = v[:: int(math.ceil(v.size / max_samples))]
    lo, hi = (float(q) for q in AsymmetricPercentileInterval(lo_percentile, hi_percentile).get_limits(v))
    med = float(np.median(v))
    noise = float(mad_std(v))
    if not noise > 0:                       # e.g. a mostly constant image
        noise = (hi - lo) / 100.0 if hi > lo else 1.0
    if not hi > lo:
        hi = lo + 10.0 * noise
    hi = max(hi, med + 10.0 * noise)
    lo = min(lo, med - noise)
    return Stretch(lo, hi, med, noise, max(softening_sigma, 1e-6) * noise)


def asinh_stretch(image, *, weight=None, lo_percentile: float = 0.5, hi_percentile: float = 99.8,
                  softening_sigma: float = 1.0, limits: Stretch | None = None,
                  return_limits: bool = False):
    """The asinh stretch (:class:`Stretch`) of ``image`` to uint8 gray (same shape), limits
    from :func:`stretch_limits` unless given.  NaN and infinite pixels, and pixels where
    ``weight`` <= 0, take the background (median) value; the pictures colour them instead.
    With ``return_limits`` returns ``(pixels, Stretch)``."""
    lim = limits or stretch_limits(image, weight=weight, lo_percentile=lo_percentile,
                                   hi_percentile=hi_percentile, softening_sigma=softening_sigma)
    x, ok = _valid(image, weight)
    out = np.rint(lim(np.where(ok, x, lim.background)) * 255.0).astype(np.uint8)
    return (out, lim) if return_limits else out


def _factor(shape, max_side) -> int:
    if max_side is None or max_side <= 0:
        return 1
    return max(1, int(math.ceil(max(shape[:2]) / float(max_side))))


def downsample(image, factor: int, *, how: str = "mean"):
    """Reduce a 2-D array by ``factor`` along both axes: ``"mean"`` averages the finite values
    of each block (NaN where a block has none); ``"max"`` takes the block maximum (for masks:
    a flagged pixel stays visible).  Partial blocks at the edges are kept."""
    a = np.asarray(image)
    factor = int(factor)
    if factor <= 1:
        return a
    ny, nx = a.shape
    py, px = -(-ny // factor) * factor, -(-nx // factor) * factor
    if how == "max":
        pad = np.zeros((py, px), dtype=a.dtype)
        pad[:ny, :nx] = a
        return pad.reshape(py // factor, factor, px // factor, factor).max(axis=(1, 3))
    if how != "mean":
        raise ValueError(f"how must be 'mean' or 'max', got {how!r}")
    pad = np.full((py, px), np.nan)
    pad[:ny, :nx] = a
    blocks = pad.reshape(py // factor, factor, px // factor, factor)
    finite = np.isfinite(blocks)
    n = finite.sum(axis=(1, 3))
    total = np.where(finite, blocks, 0.0).sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def _prepare(image, weight, max_side):
    x = np.asarray(image, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"a preview needs a 2-D image, got shape {x.shape}")
    if weight is not None:
        w = np.asarray(weight)
        if w.shape != x.shape:
            raise ValueError(f"weight shape {w.shape} != image shape {x.shape}")
        x = np.where(np.isfinite(w) & (w > 0), x, np.nan)
    f = _factor(x.shape, max_side)
    return downsample(x, f), f


# ---------------------------------------------------------------------------------------------
# Plain pictures (no matplotlib): RGB arrays, one pixel per (block of) image pixel(s)
# ---------------------------------------------------------------------------------------------

def _limits(x, stretch) -> Stretch:
    return stretch.pop("limits", None) or stretch_limits(x, **stretch)


def preview_rgb(image, *, weight=None, max_side: int | None = MAX_SIDE, origin: str = "lower",
                nodata_colour=NODATA_COLOUR, **stretch):
    """``(rgb, Stretch, factor)``: the plain picture of ``image`` (uint8 ``(h, w, 3)``), the
    stretched image in gray and pixels with no data (NaN, or ``weight`` <= 0) in
    ``nodata_colour``; block-averaged by ``factor`` to fit ``max_side``."""
    x, f = _prepare(image, weight, max_side)
    lim = _limits(x, stretch)
    gray = asinh_stretch(x, limits=lim)
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    rgb[~np.isfinite(x)] = np.asarray(nodata_colour, dtype=np.uint8)
    return (rgb[::-1] if origin == "lower" else rgb), lim, f


def _flag_layers(sci_shape, crmask, good, colour, dq_colour):
    """``[(flagged mask, colour, legend text)]``: cosmic rays, split by the DQ when ``good`` is given."""
    cr = ~np.asarray(crmask).astype(bool)          # True = good  ->  True = cosmic ray
    if cr.shape != tuple(sci_shape):
        raise ValueError(f"CR mask shape {cr.shape} != chip shape {tuple(sci_shape)}")
    if good is None or dq_colour is None:
        return [(cr, colour, f"cosmic ray (CR mask 0): {int(cr.sum()):,d} px")]
    g = np.asarray(good).astype(bool)
    if g.shape != cr.shape:
        raise ValueError(f"good-pixel mask shape {g.shape} != chip shape {cr.shape}")
    return [(cr & ~g, dq_colour, f"flagged, DQ already bad: {int((cr & ~g).sum()):,d} px"),
            (cr & g, colour, f"cosmic ray (CR mask 0): {int((cr & g).sum()):,d} px")]


def _chip_gray(sci, good, max_side, stretch):
    """The chip block-averaged to fit ``max_side`` (bad-DQ pixels left out of the stretch; NaN
    at the background), its Stretch and the factor."""
    sci = np.asarray(sci, dtype=np.float64)
    g = None if good is None else np.asarray(good).astype(bool)
    if g is not None and g.shape != sci.shape:
        raise ValueError(f"good-pixel mask shape {g.shape} != chip shape {sci.shape}")
    x, f = _prepare(sci, None if g is None else g.astype(np.float64), max_side)
    lim = _limits(x, stretch)
    return np.where(np.isfinite(x), x, lim.background), lim, f


def chip_crmask_rgb(sci, crmask, *, good=None, colour=CR_COLOUR, dq_colour=DQ_COLOUR, alpha: float = 0.85,
                    max_side: int | None = MAX_SIDE, origin: str = "lower", **stretch):
    """The plain chip picture (RGB uint8): the stretched chip in gray, cosmic-ray pixels blended
    with ``colour`` (``alpha`` 1 = solid); with ``good`` (e.g. ``dq == 0``), flagged pixels
    that are already bad in DQ get ``dq_colour`` instead (None: ``colour`` too)."""
    layers = _flag_layers(np.shape(sci), crmask, good, colour, dq_colour)
    x, lim, f = _chip_gray(sci, good, max_side, stretch)
    rgb = np.repeat(asinh_stretch(x, limits=lim).astype(np.float64)[:, :, None], 3, axis=2)
    a = float(np.clip(alpha, 0.0, 1.0))
    for mask, col, _ in layers:                       # later layers win where blocks hold both
        flagged = downsample(mask, f, how="max").astype(bool)
        rgb[flagged] = (1.0 - a) * rgb[flagged] + a * np.asarray(col, dtype=np.float64).reshape(1, 3)
    rgb = np.rint(rgb).astype(np.uint8)
    return rgb[::-1] if origin == "lower" else rgb


# ---------------------------------------------------------------------------------------------
# Figures (matplotlib + astropy WCSAxes)
# ---------------------------------------------------------------------------------------------

_DPI = 100
_MARGINS = (125, 135, 88, 48)        # left, right, bottom, top (screen pixels) around the image
#                                        (the legend is below the x axis, never over the image)


def have_matplotlib() -> bool:
    """Whether matplotlib can be imported (the ``[plot]`` extra)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def choose_backend(name: str = "auto") -> str:
    """``"matplotlib"`` or ``"plain"``: ``"auto"`` picks matplotlib when it is installed."""
    if name == "auto":
        return "matplotlib" if have_matplotlib() else "plain"
    if name not in ("matplotlib", "plain"):
        raise ValueError(f"backend must be 'auto', 'matplotlib' or 'plain', got {name!r}")
    if name == "matplotlib" and not have_matplotlib():
        raise ImportError("matplotlib is not installed (dazzle's [plot] extra installs it); use backend='plain'")
    return name


@dataclass
class Picture:
    """A figure and what the tests and captions need of it: the image axes, the colour bar,
    the normalisation, the downsampling factor and the image area in the PNG
    (``left, top, width, height`` in PNG pixels, row 0 at the top)."""

    figure: object
    ax: object
    colorbar: object
    limits: Stretch
    factor: int
    area: tuple

    def text(self, title=None, description="") -> dict:
        t = {"Software": "dazzle", "Description": self.limits.as_text() + description,
             "Downsampling": f"{self.factor}x{self.factor} block mean",
             "Image area": " ".join(str(v) for v in self.area),
             "Colour bar": f"{float(self.colorbar.vmin)!r} {float(self.colorbar.vmax)!r}"}
        if title:
            t["Title"] = title
        return t

    def png_bytes(self, text: dict | None = None) -> bytes:
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=_DPI, metadata=text or self.text())
        return buf.getvalue()


def _celestial(wcs):
    """``wcs`` if it is a celestial 2-D WCS usable for compass and scale bar, else None."""
    return wcs if wcs is not None and getattr(wcs, "has_celestial", False) and wcs.naxis == 2 else None


def _figure(shape_binned, full_shape, wcs, *, title):
    """A figure sized to the (binned) image: WCSAxes (pixel axes without a WCS) and a colour
    bar axes, with the image area an exact number of screen pixels."""
    from matplotlib.figure import Figure

    ny, nx = shape_binned
    scale = min(FIGURE_SIDE, max(FIGURE_MIN_SIDE, max(ny, nx))) / max(ny, nx)
    aw, ah = max(1, round(nx * scale)), max(1, round(ny * scale))
    left, right, bottom, top = _MARGINS
    w, h = aw + left + right, ah + bottom + top
    fig = Figure(figsize=(w / _DPI, h / _DPI), dpi=_DPI)
    fy, fx = full_shape
    ax = fig.add_axes((left / w, bottom / h, aw / w, ah / h),
                      **({"projection": wcs} if _celestial(wcs) is not None else {}))
    ax.set_xlim(-0.5, fx - 0.5)
    ax.set_ylim(-0.5, fy - 0.5)
    if _celestial(wcs) is not None:
        ax.coords[0].set_axislabel("Right ascension")
        ax.coords[1].set_axislabel("Declination")
    else:
        ax.set_xlabel("x (pixel)")
        ax.set_ylabel("y (pixel)")
    if title:
        ax.set_title(title, fontsize=10)
    cax = fig.add_axes(((left + aw + 14) / w, bottom / h, 16 / w, ah / h))
    return fig, ax, cax, (left, top, aw, ah)


def _extent(shape, factor):
    """Where an image binned by ``factor`` lies in the full image's pixel coordinates."""
    return (-0.5, shape[1] * factor - 0.5, -0.5, shape[0] * factor - 0.5)


def _show(ax, cax, data, limits, factor, *, nodata_colour, label):
    """The image in gray (NaN in ``nodata_colour``) and its colour bar, both through the
    normalisation ``limits``."""
    import matplotlib

    cmap = matplotlib.colormaps["gray"].with_extremes(bad=np.asarray(nodata_colour) / 255.0)
    im = ax.imshow(np.ma.masked_invalid(data), origin="lower", cmap=cmap, norm=limits.normalize(),
                   interpolation="nearest", extent=_extent(data.shape, factor))
    ticks = limits.ticks()
    cb = ax.figure.colorbar(im, cax=cax, ticks=ticks)
    cb.ax.set_yticklabels([f"{v:g}" for v in ticks])
    cb.set_label(label)
    return im, cb


def _nice_length(arcsec: float) -> float:
    """The largest 1, 2 or 5 x 10^k not above ``arcsec``."""
    k = math.floor(math.log10(arcsec))
    return max(m * 10.0 ** k for m in (1, 2, 5) if m * 10.0 ** k <= arcsec)


def _decorate(ax, wcs, full_shape):
    """North/east compass (upper left) and a scale bar in arcseconds (lower right)."""
    import astropy.units as u
    from astropy.visualization.wcsaxes import add_scalebar
    from astropy.wcs.utils import proj_plane_pixel_scales
    from matplotlib import patheffects

    ny, nx = full_shape
    outline = [patheffects.withStroke(linewidth=3, foreground="black")]
    size = 0.11 * min(nx, ny)
    x0, y0 = 1.6 * size, ny - 1.6 * size
    ra, dec = (float(v) for v in wcs.pixel_to_world_values(x0, y0))
    eps = 1.0 / 3600.0
    for name, (dra, ddec) in (("N", (0.0, eps)), ("E", (eps / max(math.cos(math.radians(dec)), 1e-6), 0.0))):
        x1, y1 = (float(v) for v in wcs.world_to_pixel_values(ra + dra, dec + ddec))
        d = np.array([x1 - x0, y1 - y0])
        d *= size / np.hypot(*d)
        arrow = ax.annotate("", xy=(x0 + d[0], y0 + d[1]), xytext=(x0, y0),
                            arrowprops={"arrowstyle": "-|>", "color": "white", "lw": 1.6})
        arrow.arrow_patch.set_path_effects(outline)
        ax.text(x0 + 1.35 * d[0], y0 + 1.35 * d[1], name, color="white", ha="center", va="center",
                fontsize=10, fontweight="bold", path_effects=outline)
    arcsec = float(np.sqrt(np.prod(proj_plane_pixel_scales(wcs.celestial)))) * 3600.0
    length = _nice_length(0.25 * nx * arcsec)
    add_scalebar(ax, length * u.arcsec, label=f'{length:g}"', corner="bottom right", color="white",
                 size_vertical=max(1.0, ny / 150.0))
    return arcsec, length


def _legend(ax, entries):
    """A legend of colours, in one row at the bottom of the figure (never over the image)."""
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=np.asarray(c) / 255.0, edgecolor="0.4", label=t) for c, t in entries]
    return ax.figure.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False,
                            bbox_to_anchor=(0.5, 0.0))


def mosaic_figure(image, *, weight=None, wcs=None, max_side: int | None = MAX_SIDE, binned: int = 1,
                  full_shape=None, title=None, bunit=None, nodata_colour=NODATA_COLOUR, **stretch) -> Picture:
    """The figure of a mosaic (e.g. the SCI of a ``_drz.fits``): WCSAxes with RA/Dec ticks
    (``wcs``: the full-resolution image's WCS), a colour bar over the stretch's range, a compass
    and a scale bar, and pixels with no data (NaN, or ``weight`` <= 0) in ``nodata_colour``,
    named in a legend.  ``image`` is binned to fit :data:`FIGURE_SIDE` (``binned``: the caller
    already block-averaged it by this factor; ``full_shape``: the unbinned shape)."""
    x, f = _prepare(image, weight, min(max_side or FIGURE_SIDE, FIGURE_SIDE))
    f *= int(binned)
    full = tuple(full_shape) if full_shape is not None else (x.shape[0] * f, x.shape[1] * f)
    lim = _limits(x, stretch)
    fig, ax, cax, area = _figure(x.shape, full, wcs, title=title)
    _, cb = _show(ax, cax, x, lim, f, nodata_colour=nodata_colour,
                  label=f"SCI ({bunit}), asinh stretch" if bunit else "SCI, asinh stretch")
    if _celestial(wcs) is not None:
        _decorate(ax, wcs, full)
    _legend(ax, [(nodata_colour, "no data (WHT = 0 or NaN)")])
    return Picture(fig, ax, cb, lim, f, area)


def chip_crmask_figure(sci, crmask, *, good=None, wcs=None, colour=CR_COLOUR, dq_colour=DQ_COLOUR,
                       alpha: float = 0.85, max_side: int | None = MAX_SIDE, title=None, bunit=None,
                       **stretch) -> Picture:
    """The figure of one chip with its cosmic-ray mask: the chip in gray (WCSAxes from the
    chip's ``wcs``, colour bar, compass, scale bar) and the flagged pixels in ``colour`` (cosmic
    rays) or ``dq_colour`` (flagged pixels the DQ already marks bad), with a legend giving the
    colours and counts.  A binned block is coloured if any of its pixels is flagged."""
    layers = _flag_layers(np.shape(sci), crmask, good, colour, dq_colour)
    x, lim, f = _chip_gray(sci, good, min(max_side or FIGURE_SIDE, FIGURE_SIDE), stretch)
    full = tuple(np.shape(sci))
    fig, ax, cax, area = _figure(x.shape, full, wcs, title=title)
    _, cb = _show(ax, cax, x, lim, f, nodata_colour=NODATA_COLOUR,
                  label=f"SCI ({bunit}), asinh stretch" if bunit else "SCI, asinh stretch")
    overlay = np.zeros(x.shape + (4,))
    for mask, col, _ in layers:
        flagged = downsample(mask, f, how="max").astype(bool)
        overlay[flagged] = list(np.asarray(col) / 255.0) + [float(np.clip(alpha, 0.0, 1.0))]
    ax.imshow(overlay, origin="lower", interpolation="nearest", extent=_extent(x.shape, f))
    if _celestial(wcs) is not None:
        _decorate(ax, wcs, full)
    _legend(ax, [(col, text) for _, col, text in layers[::-1]])
    return Picture(fig, ax, cb, lim, f, area)


# ---------------------------------------------------------------------------------------------
# PNG files of either kind
# ---------------------------------------------------------------------------------------------

def preview_png_bytes(image, *, weight=None, wcs=None, max_side: int | None = MAX_SIDE, origin: str = "lower",
                      title: str | None = None, binned: int = 1, full_shape=None, bunit=None,
                      backend: str = "auto", **stretch) -> bytes:
    """PNG bytes of the picture of a mosaic (see :func:`write_preview_png`)."""
    nodata = f"; no data in RGB{NODATA_COLOUR}"
    if choose_backend(backend) == "matplotlib":
        pic = mosaic_figure(image, weight=weight, wcs=wcs, max_side=max_side, binned=binned,
                            full_shape=full_shape, title=title, bunit=bunit, **stretch)
        return pic.png_bytes(pic.text(title, nodata))
    rgb, lim, f = preview_rgb(image, weight=weight, max_side=max_side, origin=origin, **stretch)
    f *= int(binned)
    text = {"Software": "dazzle", "Description": lim.as_text() + nodata, "Downsampling": f"{f}x{f} block mean"}
    if title:
        text["Title"] = title
    return png_bytes(rgb, text=text)


def write_preview_png(path, image, *, weight=None, wcs=None, max_side: int | None = MAX_SIDE,
                      origin: str = "lower", title: str | None = None, backend: str = "auto", **stretch) -> str:
    """Write the picture of a mosaic ``image`` (e.g. the SCI of a ``_drz.fits``); returns the path.

    ``weight`` (e.g. the WHT extension) marks pixels with weight <= 0 as uncovered: they take
    no part in the stretch and are drawn in :data:`NODATA_COLOUR`.  With matplotlib
    (``backend``, see :func:`choose_backend`) a figure (:func:`mosaic_figure`; ``wcs`` gives RA/Dec,
    compass and scale bar), else the plain picture (:func:`preview_rgb`: images larger than
    ``max_side`` are block-averaged by the smallest integer factor that fits; ``origin="lower"``
    puts row 0 at the bottom, as ds9 does).  ``stretch`` goes to :func:`stretch_limits`
    (``lo_percentile``, ``hi_percentile``, ``softening_sigma``) or is ``limits=Stretch``.
    """
    return _write_atomic(path, preview_png_bytes(image, weight=weight, wcs=wcs, max_side=max_side, origin=origin,
                                                 title=title, backend=backend, **stretch))


def chip_crmask_png_bytes(sci, crmask, *, good=None, wcs=None, colour=CR_COLOUR, dq_colour=DQ_COLOUR,
                          alpha: float = 0.85, max_side: int | None = MAX_SIDE, origin: str = "lower",
                          title: str | None = None, bunit=None, backend: str = "auto", **stretch) -> bytes:
    """PNG bytes of :func:`write_chip_crmask_png`."""
    n = int((~np.asarray(crmask).astype(bool)).sum())
    what = (f"; {n} cosmic-ray pixels in RGB{tuple(colour)}"
            + (f" (RGB{tuple(dq_colour)} where DQ already flags them)" if good is not None and dq_colour is not None
               else ""))
    if choose_backend(backend) == "matplotlib":
        pic = chip_crmask_figure(sci, crmask, good=good, wcs=wcs, colour=colour, dq_colour=dq_colour, alpha=alpha,
                                 max_side=max_side, title=title, bunit=bunit, **stretch)
        return pic.png_bytes(pic.text(title, what))
    rgb = chip_crmask_rgb(sci, crmask, good=good, colour=colour, dq_colour=dq_colour, alpha=alpha,
                          max_side=max_side, origin=origin, **stretch)
    f = _factor(np.shape(sci), max_side)
    text = {"Software": "dazzle", "Description": "chip (asinh)" + what,
            "Downsampling": f"{f}x{f} block mean; CR flags block maximum"}
    if title:
        text["Title"] = title
    return png_bytes(rgb, text=text)


def write_chip_crmask_png(path, sci, crmask, *, good=None, wcs=None, colour=CR_COLOUR, dq_colour=DQ_COLOUR,
                          alpha: float = 0.85, max_side: int | None = MAX_SIDE, origin: str = "lower",
                          title: str | None = None, backend: str = "auto", **stretch) -> str:
    """Write one chip (asinh-stretched gray) with its cosmic-ray mask overlaid in ``colour``.

    ``crmask`` follows dazzle's convention: True / 1 = good, False / 0 = cosmic ray (as in
    ``RunResult.crmasks`` and ``*_crmask.fits``).  ``good`` (optional, e.g. ``dq == 0``)
    leaves bad pixels out of the stretch, and flagged pixels that DQ already marks bad (hot
    pixels, dead columns: driz_cr flags them too, as AstroDrizzle does) are drawn in
    ``dq_colour``.  When the chip is binned to fit, a block is coloured if any of its pixels is
    flagged, so none disappears.  With matplotlib a figure (:func:`chip_crmask_figure`, with a
    legend of the colours), else the plain picture (:func:`chip_crmask_rgb`).  Returns the path.
    """
    return _write_atomic(path, chip_crmask_png_bytes(sci, crmask, good=good, wcs=wcs, colour=colour,
                                                     dq_colour=dq_colour, alpha=alpha, max_side=max_side,
                                                     origin=origin, title=title, backend=backend, **stretch))
