"""AstroDrizzle step 7, "final drizzle": every chip into the final mosaic.

Each chip is drizzled in its own task (:func:`final_chip`) with the ``final_*`` parameters,
its weights masked by the DQ bits (``final_bits``), the static mask and the cosmic-ray mask;
the chips' sums are added in chip order (:func:`final_combine`) and divided once, giving the
SCI (count rate, or counts with ``final_units=counts``), WHT and CTX arrays of
``<output>_drz.fits`` (``_drc.fits`` for ``_flc`` inputs).

Context: chip ``n`` (1-based, in input order) sets bit ``(n-1) % 32`` of plane ``(n-1) // 32``
(:func:`dazzle.facts.context_bit`).
"""

from __future__ import annotations

from dazzle.facts import context_planes
from dazzle.steps.common import DrizzleSettings, Sums, add_sums, chip_sums, finish


def final_chip(chip, frame, box, settings: DrizzleSettings, *, sky=None, static_mask=None,
               cr_mask=None, ivm=None) -> Sums | None:
    """Sums of one chip over its box of the frame."""
    return chip_sums(chip, frame, box, settings, bit=1, sky=sky, static_mask=static_mask,
                     cr_mask=cr_mask, ivm=ivm)


def final_combine(parts, box, settings: DrizzleSettings, *, nchips, texptime):
    """Add ``parts`` = [(chip_number, Sums), ...] over ``box`` in chip order; (sci, wht, ctx)."""
    num, den, ctx = add_sums(sorted(parts, key=lambda p: p[0]), box, nplanes=context_planes(nchips))
    sci, wht = finish(num, den, settings, texptime=texptime)
    return sci, wht, ctx
