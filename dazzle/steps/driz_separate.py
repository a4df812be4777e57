"""AstroDrizzle step 3, "drizzle separate": each exposure drizzled on its own.

Every chip is drizzled (one task per chip, :func:`single_chip`) with the ``driz_sep_*``
parameters; the chips of one exposure are then added (:func:`single_exposure`) into that
exposure's single-drizzled image and weight, ``<root>_single_sci.fits`` and
``<root>_single_wht.fits``.  These feed the median (create median step).

Unlike drizzlepac, which writes every single-drizzled image on the whole output frame, dazzle
writes only the exposure's footprint box: the files' WCS places them in the output frame
(``CRPIX`` shifted; the header keywords ``DZ_X0``/``DZ_Y0`` give the box's 0-based offset in
the frame).  Output units are count rates, always, as in AstroDrizzle; pixels that no input
reaches are ``driz_sep_fillval`` (0 when INDEF, as drizzlepac).
"""

from __future__ import annotations

from dazzle.steps.common import DrizzleSettings, Sums, add_sums, chip_sums, finish


def single_chip(chip, frame, box, settings: DrizzleSettings, *, sky=None, static_mask=None) -> Sums | None:
    """Sums of one chip over its box of the frame (no CR mask: that is what this step is for)."""
    return chip_sums(chip, frame, box, settings, bit=1, sky=sky, static_mask=static_mask)


def exposure_box(boxes):
    """The union of the chips' boxes (x0, x1, y0, y1); None if no chip reaches the frame."""
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return None
    return (min(b[0] for b in boxes), max(b[1] for b in boxes),
            min(b[2] for b in boxes), max(b[3] for b in boxes))


def single_exposure(parts, box, settings: DrizzleSettings):
    """Add the chips of one exposure (in chip order) and finish: (sci, wht) over ``box``."""
    num, den, _ = add_sums([(1, p) for p in parts], box, nplanes=1)
    return finish(num, den, settings)
