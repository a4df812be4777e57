"""AstroDrizzle step 7, "final drizzle": every chip into the final mosaic.

Each chip is drizzled in its own task (:func:`final_chip`) with the ``final_*`` parameters,
its weights masked by the DQ bits (``final_bits``), the static mask and the cosmic-ray mask;
the chips' sums are added tile by tile in chip order (:func:`final_tile_sums`,
:func:`dazzle.steps.common.add_part`) and divided once (:func:`final_finish`), giving the
SCI (count rate, or counts with ``final_units=counts``), WHT and CTX arrays of
``<output>_drz.fits`` (``_drc.fits`` for ``_flc`` inputs), and with ``final_err`` the ERR
array ``sqrt(Σ w²·var) / Σ w`` (var: ERR² of the inputs, 1/IVM with IVM weights), with
``final_dq`` the DQ array (the OR of the contributing input pixels' flags).

Context: chip ``n`` (1-based, in input order) sets bit ``(n-1) % 32`` of plane ``(n-1) // 32``
(:func:`dazzle.facts.context_bit`).
"""

from __future__ import annotations

from dazzle.facts import context_planes
from dazzle.steps.common import (DrizzleSettings, Sums, TileSums, add_sums, finish, finish_error, new_tile_sums,
                                 section_sums)

__all__ = ["final_chip", "final_tile_sums", "final_finish", "final_combine"]


def final_chip(chip, frame, box, settings: DrizzleSettings, *, sky=None, static_mask=None,
               cr_mask=None, ivm=None, section=None) -> Sums | None:
    """One chip (or one section of its pixels) drizzled for the final image: its sums over its
    box of the final frame.

    Parameters
    ----------
    chip : dazzle.io.Chip
    frame : dazzle.geometry.Frame
        The final frame.
    box : (x0, x1, y0, y1) or None
        The chip's (section's) box in the frame.
    settings : DrizzleSettings
        The ``final_*`` settings.
    sky : float, optional
        Sky to subtract, chip units.
    static_mask, cr_mask : 2-D bool arrays, optional
        True = good (the whole chip's).
    ivm : 2-D array, optional
        The chip's inverse-variance map (``final_wht_type="IVM"``).
    section : (x0, x1, y0, y1), optional
        Half-open input pixels: only they are read and drizzled
        (:func:`dazzle.steps.common.section_sums`).  Default: the whole chip.

    Returns
    -------
    dazzle.steps.common.Sums or None
    """
    return section_sums(chip, frame, box, settings, sky=sky, static_mask=static_mask, cr_mask=cr_mask,
                        ivm=ivm, section=section)


def final_tile_sums(box, settings: DrizzleSettings, *, nchips) -> TileSums:
    """Zero sums over one tile of the final image, for the chips to be added to in chip order
    (:func:`dazzle.steps.common.add_part`).

    Parameters
    ----------
    box : (x0, x1, y0, y1)
        The tile.
    settings : DrizzleSettings
        The ``final_*`` settings (``err``, ``dq``: which sums to keep).
    nchips : int
        Chips of the whole run (sets the number of context planes).

    Returns
    -------
    dazzle.steps.common.TileSums
    """
    return new_tile_sums(box, nchips=nchips, var=settings.err, dq=settings.dq)


def final_finish(acc: TileSums, settings: DrizzleSettings, *, nchips, texptime):
    """One tile of the final image from its chips' sums.

    Parameters
    ----------
    acc : dazzle.steps.common.TileSums
        Every chip's sums added (:func:`final_tile_sums`, then
        :func:`dazzle.steps.common.add_part` chip by chip).
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
    sci, wht = finish(acc.num, acc.den, settings, texptime=texptime)
    err = finish_error(acc.var, acc.den, settings, texptime=texptime) if settings.err else None
    return sci, wht, acc.context(context_planes(nchips)), err, acc.dq if settings.dq else None


def final_combine(parts, box, settings: DrizzleSettings, *, nchips, texptime):
    """One tile of the final image at once: the chips' sums added in chip order, then divided
    (what the graph does one chip at a time; the same bits).

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
    As :func:`final_finish`.
    """
    acc = add_sums(sorted(parts, key=lambda p: p[0]), box, nchips=nchips, var=settings.err, dq=settings.dq)
    return final_finish(acc, settings, nchips=nchips, texptime=texptime)
