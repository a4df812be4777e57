"""AstroDrizzle step 7, "final drizzle": every chip into the final mosaic.

Each chip is drizzled in its own task (:func:`final_chip`) with the ``final_*`` parameters,
its weights masked by the DQ bits (``final_bits``), the static mask and the cosmic-ray mask;
the chips' sums are added in chip order (:func:`final_combine`) and divided once, giving the
SCI (count rate, or counts with ``final_units=counts``), WHT and CTX arrays of
``<output>_drz.fits`` (``_drc.fits`` for ``_flc`` inputs), and with ``final_err`` the ERR
array ``sqrt(Σ w²·var) / Σ w`` (var: ERR² of the inputs, 1/IVM with IVM weights), with
``final_dq`` the DQ array (the OR of the contributing input pixels' flags).

Context: chip ``n`` (1-based, in input order) sets bit ``(n-1) % 32`` of plane ``(n-1) // 32``
(:func:`dazzle.facts.context_bit`).
"""

from __future__ import annotations

import numpy as np

from dazzle.facts import context_planes
from dazzle.steps.common import DrizzleSettings, Sums, add_error_sums, add_sums, chip_sums, finish, finish_error

__all__ = ["final_chip", "final_combine"]


def final_chip(chip, frame, box, settings: DrizzleSettings, *, sky=None, static_mask=None,
               cr_mask=None, ivm=None) -> Sums | None:
    """One chip drizzled for the final image: its sums over its box of the final frame.

    Parameters
    ----------
    chip : dazzle.io.Chip
    frame : dazzle.geometry.Frame
        The final frame.
    box : (x0, x1, y0, y1) or None
        The chip's box in the frame.
    settings : DrizzleSettings
        The ``final_*`` settings.
    sky : float, optional
        Sky to subtract, chip units.
    static_mask, cr_mask : 2-D bool arrays, optional
        True = good.
    ivm : 2-D array, optional
        The chip's inverse-variance map (``final_wht_type="IVM"``).

    Returns
    -------
    dazzle.steps.common.Sums or None
    """
    return chip_sums(chip, frame, box, settings, bit=1, sky=sky, static_mask=static_mask,
                     cr_mask=cr_mask, ivm=ivm)


def final_combine(parts, box, settings: DrizzleSettings, *, nchips, texptime):
    """One tile of the final image: the chips' sums added in chip order, then divided.

    Parameters
    ----------
    parts : sequence of (int, Sums or None)
        ``(chip number, 1-based in input order; the chip's sums in this tile)``.
    box : (x0, x1, y0, y1)
        The tile.
    settings : DrizzleSettings
        The ``final_*`` settings.
    nchips : int
        Chips of the whole run (sets the number of context planes).
    texptime : float
        Total exposure time (``final_units="counts"``).

    Returns
    -------
    sci, wht : 2-D float32 arrays
    ctx : int32 array of shape (planes, ny, nx)
    err : 2-D float32 array or None
        With ``settings.err``: the propagated error, units of ``sci``; NaN where ``wht`` is 0.
    dq : 2-D uint32 array or None
        With ``settings.dq``: the propagated DQ flags.
    """
    parts = sorted(parts, key=lambda p: p[0])
    num, den, ctx = add_sums(parts, box, nplanes=context_planes(nchips))
    sci, wht = finish(num, den, settings, texptime=texptime)
    var, dq = add_error_sums(parts, box) if settings.err or settings.dq else (None, None)
    if settings.err and var is None:   # no chip reaches this tile
        var = np.zeros(den.shape)
    if settings.dq and dq is None:
        dq = np.zeros(den.shape, np.uint32)
    err = finish_error(var, den, settings, texptime=texptime) if settings.err else None
    return sci, wht, ctx, err, dq if settings.dq else None
