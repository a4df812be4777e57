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
    """Read the part of a frame-sized image a chip needs.

    Parameters
    ----------
    path : str
        The image (``<output>_med.fits``).
    box : (x0, x1, y0, y1)
        The chip's box in the frame.
    shape : (ny, nx)
        The frame's shape.
    ext : int
        The HDU.
    margin : int
        Pixels read beyond ``box`` on each side (interpolation stencils), clipped to ``shape``.

    Returns
    -------
    data : 2-D float32 array
    x0, y0 : int
        Frame pixel of ``data[0, 0]``.
    """
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


#: Chip rows blotted at once (the pixel map of 512 rows of an ACS/WFC chip: 34 MB, not 134)
BLOT_ROWS = 512


def blot_chip(median, chip, frame, settings: BlotSettings, *, offset=(0, 0), sky=0.0):
    """The median blotted onto one chip.

    Parameters
    ----------
    median : 2-D float32 array
        The part of the median image read for this chip (:func:`read_section`).
    chip : dazzle.io.Chip
    frame : dazzle.geometry.Frame
        The median's (single-drizzle) frame.
    settings : BlotSettings
        Interpolation, sky handling and pixel map.
    offset : (int, int)
        Frame pixel ``(x0, y0)`` of ``median[0, 0]``.
    sky : float
        The chip's sky, chip units: added back when ``settings.addsky`` (else
        ``settings.skyval`` is).

    Returns
    -------
    2-D float32 array
        The chip's shape, in its units, sky added back.
    """
    frame_wcs = frame.wcs()
    chip_wcs = chip.wcs()
    pix_ratio = chip_pix_ratio(chip, frame_wcs)
    scale = float(chip.exptime) if chip.in_units == "counts" else 1.0
    ny, nx = (int(n) for n in chip.shape)
    grid_key = geometry.map_key(chip, frame)
    out = np.empty((ny, nx), np.float32)
    # every blotted pixel depends only on where it lands on the median: the chip is done
    # BLOT_ROWS rows at a time, each with its part of the pixel map (the whole map's bits)
    for r0 in range(0, ny, BLOT_ROWS):
        r1 = min(ny, r0 + BLOT_ROWS)
        pixmap = geometry.calc_pixmap(chip_wcs, frame_wcs, (ny, nx), stepsize=settings.stepsize,
                                      exact=settings.exact, offset=offset, section=(0, nx, r0, r1),
                                      grid_key=grid_key)
        out[r0:r1] = blot_kernel(median, pixmap, interp=settings.interp, iscale=scale / pix_ratio ** 2,
                                 sinscl=settings.sinscl, fillval=0.0)
    add = sky if settings.addsky else settings.skyval
    if add:
        out += np.float32(add)
    return out
