"""AstroDrizzle step 3, "drizzle separate": each exposure drizzled on its own.

Every chip is drizzled (one task per chip, :func:`single_chip`) with the ``driz_sep_*``
parameters; the chips of one exposure are then added in chip order (:func:`exposure_sums`,
:func:`dazzle.steps.common.add_part`, :func:`single_finish`) into that
exposure's single-drizzled image and weight (the graph does it a band of rows at a time as the
files are written, :class:`ExposureBands`), ``<root>_single_sci.fits`` and
``<root>_single_wht.fits`` (and with ``driz_sep_err`` its error,
``<root>_single_err.fits``).  These feed the median (create median step).

Unlike drizzlepac, which writes every single-drizzled image on the whole output frame, dazzle
writes only the exposure's footprint box: the files' WCS places them in the output frame
(``CRPIX`` shifted; the header keywords ``DZ_X0``/``DZ_Y0`` give the box's 0-based offset in
the frame).  Output units are count rates, always, as in AstroDrizzle; pixels that no input
reaches are ``driz_sep_fillval`` (0 when INDEF, as drizzlepac).
"""

from __future__ import annotations

from dazzle.steps.common import (DrizzleSettings, Sums, TileSums, add_part, finish, finish_error, new_tile_sums,
                                 section_sums)

__all__ = ["ExposureBands", "single_chip", "exposure_box", "exposure_sums", "single_finish",
           "single_exposure"]


def single_chip(chip, frame, box, settings: DrizzleSettings, *, sky=None, static_mask=None,
                section=None) -> Sums | None:
    """One chip (or one section of its pixels) drizzled for its exposure's single image: its
    sums over its box of the frame.

    No cosmic-ray mask (finding them is what the single images are for).

    Parameters
    ----------
    chip : dazzle.io.Chip
    frame : dazzle.geometry.Frame
        The single-drizzle frame.
    box : (x0, x1, y0, y1) or None
        The chip's (section's) box in the frame.
    settings : DrizzleSettings
        The ``driz_sep_*`` settings.
    sky : float, optional
        Sky to subtract, chip units.
    static_mask : 2-D bool array, optional
        True = good (the whole chip's).
    section : (x0, x1, y0, y1), optional
        Half-open input pixels: only they are read and drizzled
        (:func:`dazzle.steps.common.section_sums`).  Default: the whole chip.

    Returns
    -------
    dazzle.steps.common.Sums or None
    """
    return section_sums(chip, frame, box, settings, sky=sky, static_mask=static_mask, section=section)


def exposure_box(boxes):
    """The union of an exposure's chips' boxes ``(x0, x1, y0, y1)`` (None entries skipped);
    None if no chip reaches the frame."""
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return None
    return (min(b[0] for b in boxes), max(b[1] for b in boxes),
            min(b[2] for b in boxes), max(b[3] for b in boxes))


def exposure_sums(box, settings: DrizzleSettings) -> TileSums:
    """Zero sums over an exposure's box, for its chips to be added to in chip order
    (:func:`dazzle.steps.common.add_part`; no context: the single images have none).

    Parameters
    ----------
    box : (x0, x1, y0, y1)
        The exposure's box (:func:`exposure_box`).
    settings : DrizzleSettings
        The ``driz_sep_*`` settings (``err``: keep variance sums).

    Returns
    -------
    dazzle.steps.common.TileSums
    """
    return new_tile_sums(box, nchips=0, var=settings.err)


def single_finish(acc: TileSums, settings: DrizzleSettings):
    """One exposure's single-drizzled image, weight and (``driz_sep_err``) error from its
    chips' sums.

    Parameters
    ----------
    acc : dazzle.steps.common.TileSums
        Its chips' sums added (:func:`exposure_sums`, then :func:`dazzle.steps.common.add_part`).
    settings : DrizzleSettings
        The ``driz_sep_*`` settings.

    Returns
    -------
    sci, wht : 2-D float32 arrays
        Count rate and weight over the exposure's box.
    err : 2-D float32 array or None
        With ``settings.err`` (the chips' sums made with it): ``sqrt(Σ w²·var) / Σ w`` (count
        rate), NaN where the weight is zero; else None.
    """
    sci, wht = finish(acc.num, acc.den, settings)
    return sci, wht, (finish_error(acc.var, acc.den, settings) if settings.err else None)


class ExposureBands:
    """An exposure's single images made a band of rows at a time from its chips' sums, never
    the whole exposure's sums at once: the same bits as :func:`single_finish` of the sums added
    over the whole box (each pixel's sums are the same additions, in the same chip order, and
    each pixel is finished from its own sums alone).

    The writer of the single products asks each image for the same rows in turn (SCI, WHT,
    ERR: :func:`dazzle.products.write_images_atomic`); the band's sums are added and its
    images finished (:func:`single_finish`) once, and kept until other rows are asked for.
    Not for concurrent use (one per writing task).

    Parameters
    ----------
    box : (x0, x1, y0, y1)
        The exposure's box (:func:`exposure_box`).
    settings : DrizzleSettings
        The ``driz_sep_*`` settings.
    order : sequence of (int, int)
        Per part its (chip number, section) for :func:`dazzle.steps.common.add_part`, in the
        order they are added.
    parts : sequence of Sums or None
        The parts' sums (:func:`single_chip`), as ``order``.
    """

    def __init__(self, box, settings: DrizzleSettings, order, parts):
        if len(order) != len(parts):
            raise ValueError(f"{len(order)} part numbers for {len(parts)} parts")
        self.box, self.settings = tuple(int(v) for v in box), settings
        self.order, self.parts = list(order), list(parts)
        self._rows, self._acc, self._images = None, None, None

    @property
    def shape(self) -> tuple:
        """``(ny, nx)`` of the exposure's images."""
        x0, x1, y0, y1 = self.box
        return (y1 - y0, x1 - x0)

    def band(self, r0: int, r1: int) -> TileSums:
        """The sums of rows ``r0:r1`` of the box (0-based in the box), every part added."""
        if self._rows != (r0, r1):
            x0, x1, y0, _ = self.box
            acc = exposure_sums((x0, x1, y0 + r0, y0 + r1), self.settings)
            for (n, piece), part in zip(self.order, self.parts):
                add_part(acc, n, part, piece)
            self._rows, self._acc, self._images = (r0, r1), acc, None
        return self._acc

    def rows(self, which: str, r0: int, r1: int):
        """Rows ``r0:r1`` of the image ``which`` ("sci", "wht" or "err"; float32), as those
        rows of :func:`single_finish` of the whole sums."""
        acc = self.band(r0, r1)
        if self._images is None:
            self._images = dict(zip(("sci", "wht", "err"), single_finish(acc, self.settings)))
        return self._images[which]


def single_exposure(parts, box, settings: DrizzleSettings):
    """One exposure's single image at once from its chips' sums (what the graph does one chip
    at a time: the same bits).

    Parameters
    ----------
    parts : sequence of Sums or None
        The exposure's chips' sums (:func:`single_chip`), in chip order.
    box : (x0, x1, y0, y1)
        The exposure's box (:func:`exposure_box`).
    settings : DrizzleSettings
        The ``driz_sep_*`` settings.

    Returns
    -------
    As :func:`single_finish`.
    """
    acc = exposure_sums(box, settings)
    for n, part in enumerate(parts, start=1):
        add_part(acc, n, part)
    return single_finish(acc, settings)
