"""AstroDrizzle step 5, "blot": the median image resampled back onto each chip's frame.

One task per chip reads only the part of the median that the chip covers (its box of the
single-drizzle frame plus a margin for the interpolation stencil) and evaluates it at every
chip pixel's position (:func:`dazzle.kernels.blot`).  In the chip's own units, as drizzlepac::

    blot = interp(median, x, y) * scale / pix_ratio**2  +  sky
    scale = EXPTIME for chips in counts (the median is a count rate), 1 for count-rate chips
    sky   = the chip's sky when ``blot_addsky`` (default), else ``blot_skyval``

Pixels that map outside the median get 0 before the sky is added (drizzlepac's ``misval``).
Parameters: ``blot_interp`` (nearest, linear, poly3, poly5, sinc; lanczos3/5 too),
``blot_sinscl``, ``blot_addsky``, ``blot_skyval``.  Product: ``<root>_sci<N>_blt.fits``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.io import fits

from dazzle import geometry
from dazzle.kernels import blot as blot_kernel
from dazzle.steps.common import StepSettings, chip_pix_ratio

__all__ = ["STENCIL_MARGIN", "BlotSettings", "blot_chip", "read_section"]

#: median pixels read beyond the chip's box, for the interpolation stencils (sinc: 7)
STENCIL_MARGIN = 8


def read_section(path, box, shape, *, ext=0, margin=STENCIL_MARGIN):
    """Rows/columns ``box`` (x0, x1, y0, y1) of a frame-sized image, widened by ``margin`` and
    clipped to ``shape``; returns (array, x0, y0) of what was read."""
    x0, x1, y0, y1 = box
    ny, nx = shape
    x0, x1 = max(0, x0 - margin), min(nx, x1 + margin)
    y0, y1 = max(0, y0 - margin), min(ny, y1 + margin)
    with fits.open(path, memmap=True) as h:
        data = np.array(h[ext].section[y0:y1, x0:x1], dtype=np.float32)
    return data, x0, y0


@dataclass(frozen=True)
class BlotSettings(StepSettings):
    """The blot step's parameters (``blot_*``; ``stepsize`` and ``pixmap_mode`` for the pixel
    map), from validated parameters."""

    interp: str
    sinscl: float
    addsky: bool
    skyval: float
    stepsize: int
    exact: bool

    @classmethod
    def from_params(cls, params) -> "BlotSettings":
        return cls(interp=params["blot_interp"], sinscl=params["blot_sinscl"], addsky=params["blot_addsky"],
                   skyval=params["blot_skyval"], stepsize=params["stepsize"],
                   exact=params["pixmap_mode"] == "exact")


def blot_chip(median, chip, frame, settings: BlotSettings, *, offset=(0, 0), sky=0.0):
    """The blotted median for one chip (float32, chip shape, chip units, sky added back).

    ``median`` is the part of the median image read for this chip, whose pixel (0, 0) is
    pixel ``offset`` = (x0, y0) of ``frame`` (a :class:`dazzle.geometry.Frame`); ``sky`` the
    chip's sky (added back when ``settings.addsky``, else ``settings.skyval``).
    """
    frame_wcs = frame.wcs()
    pixmap = geometry.calc_pixmap(chip.wcs(), frame_wcs, tuple(chip.shape), stepsize=settings.stepsize,
                                  exact=settings.exact)
    pixmap[..., 0] -= offset[0]
    pixmap[..., 1] -= offset[1]
    pix_ratio = chip_pix_ratio(chip, frame_wcs)
    scale = float(chip.exptime) if chip.in_units == "counts" else 1.0
    out = blot_kernel(median, pixmap, interp=settings.interp, iscale=scale / pix_ratio ** 2,
                      sinscl=settings.sinscl, fillval=0.0)
    add = sky if settings.addsky else settings.skyval
    if add:
        out += np.float32(add)
    return out
