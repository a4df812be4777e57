"""AstroDrizzle step 1: the static mask (``static=True``, ``static_sig=4.0``).

Per chip, a "signature" flags pixels far *below* the chip's sky, typically pixels over-subtracted
by a bad dark reference (drizzlepac 3.11 ``staticMask.staticMask.addMember``)::

    s = ImageStats(sci, fields="mode", nclip=3, lsig=usig=3, binwidth=0.1,
                   lower=nanmin(sci), upper=nanmax(sci))
    good = not (sci < s.mode - static_sig * s.stddev)

with :func:`dazzle.stats.imagestats` reproducing ``stsci.imagestats`` exactly (clip passes,
float32 arithmetic, the 0.1-sigma histogram and its parabolic peak interpolation).  All SCI
pixels enter the statistics -- the DQ array is *not* used (as drizzlepac).  When the clipped
data fit in fewer than two histogram bins the chip flags nothing (drizzlepac's ``nbins >= 2``
test).

The static mask of a chip is the AND of the signatures of every exposure's chip with the same
key (drizzlepac's signature ``(output, (NAXIS2, NAXIS1), EXTVER)``; one output per run, so
dazzle keys on :func:`mask_key` = ``(shape, extver)``).  drizzlepac writes it as
``<output>_<NAXIS2>x<NAXIS1>_<EXTVER>_staticMask.fits`` (int16, 1 = good); it then ANDs into the
drizzle masks (driz_separate, final) and into the sky mask (``use_static``).

Usage by the pipeline: one task per pair of chips computes their signatures
(:func:`chip_signatures`: the two chips' statistics side by side); one task per key ANDs them
with :func:`combine`.

Deliberate difference: non-finite SCI pixels are left out of the statistics and marked good
(the drizzle masks drop them anyway).  drizzlepac gives the same answer unless the chip's
*first* pixel ``[0, 0]`` is non-finite; that pixel then poisons ImageStats' min/max, the
clipped stddev becomes 0 and the step fails with "Not enough data points".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dazzle.stats import finite_values, imagestats_many
from dazzle.steps.common import StepSettings

__all__ = ["STATIC_BINWIDTH", "STATIC_NCLIP", "STATIC_SIGMA_CLIP", "StaticSettings", "chip_signature",
           "chip_signatures", "combine", "mask_key", "signature_stats", "signature_stats_many"]

#: ImageStats settings drizzlepac uses for the static mask (``nclip=3``, default lsig/usig 3,
#: default binwidth 0.1).
STATIC_NCLIP = 3
STATIC_SIGMA_CLIP = 3.0
STATIC_BINWIDTH = 0.1


@dataclass(frozen=True)
class StaticSettings(StepSettings):
    """The static mask step's parameter (``static_sig``), from validated parameters."""

    static_sig: float

    @classmethod
    def from_params(cls, params) -> "StaticSettings":
        return cls(static_sig=params["static_sig"])


def mask_key(chip):
    """Key of the static mask a chip belongs to: ``(shape, extver)`` (drizzlepac's signature
    without the output name)."""
    return (tuple(int(n) for n in chip.shape), int(chip.extver))


def signature_stats(sci, good=None):
    """The ``ImageStats`` result drizzlepac's static mask uses for a chip.

    ImageStats of the finite pixels (as float32) with ``fields="mode"``, ``nclip=3``,
    ``lsig=usig=3``, ``binwidth=0.1`` and the data's own minimum and maximum as limits.

    Parameters
    ----------
    sci : 2-D array
        The chip's SCI data, chip units.
    good : 2-D bool array, optional
        Restricts the pixels that enter the statistics (dazzle only); None = all pixels, as
        AstroDrizzle.

    Returns
    -------
    dazzle.stats.ImageStatsResult or None
        Its ``mode``, ``stddev`` and ``nbins`` are used; None when no finite pixel is available or
        ImageStats gives up.
    """
    return signature_stats_many([sci], None if good is None else [good])[0]


def signature_stats_many(scis, goods=None) -> list:
    """:func:`signature_stats` of several chips, the same numbers: their clipping passes run
    two chips at a time (:func:`dazzle.stats.imagestats_many`).

    Parameters
    ----------
    scis : sequence of 2-D arrays
        The chips' SCI data.
    goods : sequence of (2-D bool array or None), optional
        Per chip, as ``good`` of :func:`signature_stats`.

    Returns
    -------
    list of (dazzle.stats.ImageStatsResult or None)
    """
    goods = [None] * len(scis) if goods is None else list(goods)
    vals = []
    for sci, good in zip(scis, goods):
        a = np.asarray(sci)
        if a.dtype != np.float32:
            a = a.astype(np.float32)
        vals.append(finite_values(a, good))   # C order: the first element stays the first selected pixel
    use = [i for i, v in enumerate(vals) if v.size]
    out = [None] * len(scis)
    got = imagestats_many([vals[i] for i in use], fields=("mode",), nclip=STATIC_NCLIP,
                          lsig=STATIC_SIGMA_CLIP, usig=STATIC_SIGMA_CLIP, binwidth=STATIC_BINWIDTH,
                          lower=[np.minimum.reduce(vals[i], axis=None) for i in use],
                          upper=[np.maximum.reduce(vals[i], axis=None) for i in use])
    for i, r in zip(use, got):
        out[i] = None if isinstance(r, ValueError) else r
    return out


def chip_signature(sci, good=None, static_sig=4.0):
    """One chip's static-mask signature.

    Parameters
    ----------
    sci : 2-D array
        The chip's SCI data.
    good : 2-D bool array, optional
        Restricts the pixels the statistics use (default None: all, as AstroDrizzle); it masks
        nothing by itself.
    static_sig : float
        ``StaticSettings.static_sig``.

    Returns
    -------
    2-D bool array
        True = good; False where ``sci < mode - static_sig * rms`` (mode and rms from
        :func:`signature_stats`); non-finite pixels are True.
    """
    return chip_signatures([sci], None if good is None else [good], static_sig)[0]


def chip_signatures(scis, goods=None, static_sig=4.0) -> list:
    """:func:`chip_signature` of several chips (one task's), the same masks: their statistics
    are computed together (:func:`signature_stats_many`, two chips at a time: 1.4x).

    Parameters
    ----------
    scis : sequence of 2-D arrays
    goods : sequence of (2-D bool array or None), optional
    static_sig : float

    Returns
    -------
    list of 2-D bool arrays
    """
    arrays = [np.asarray(sci) for sci in scis]
    out = []
    for a, st in zip(arrays, signature_stats_many(arrays, goods)):
        sig = np.ones(a.shape, dtype=bool)
        if st is None or st.nbins is None or st.nbins < 2:
            out.append(sig)
            continue
        threshold = st.mode - float(static_sig) * st.stddev
        # the same comparison drizzlepac makes: data (float32 as read) against a Python float
        if a.dtype.kind != "f":
            a = a.astype(np.float32)
        np.logical_not(a < threshold, out=sig)
        sig |= ~np.isfinite(a)          # -inf would compare low: non-finite pixels stay good
        out.append(sig)
    return out


def combine(signatures):
    """AND of chip signatures (same key): the static mask, bool, True = good.  ``None`` entries
    are skipped; returns None when there is nothing to combine."""
    out = None
    for s in signatures:
        if s is None:
            continue
        s = np.asarray(s, dtype=bool)
        if out is None:
            out = s.copy()
        else:
            if s.shape != out.shape:
                raise ValueError(f"static mask signatures of different shapes: {out.shape} "
                                 f"and {s.shape}")
            out &= s
    return out
