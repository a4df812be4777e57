"""AstroDrizzle's steps, one file each: plain functions over arrays and WCSs (no dask, no files
written -- the graph layer :mod:`dazzle.graph` wires them and writes the products).

============  =================  ===================================================  =====================
step          module             what                                                 settings
============  =================  ===================================================  =====================
1 static      ``static_mask``    per-chip low-pixel signatures, ANDed per chip number :class:`StaticSettings`
2 sky         ``sky``            localmin / globalmin / match / globalmin+match,      :class:`SkySettings`
                                 user skies
3 driz_sep    ``driz_separate``  each exposure drizzled on its own                    :class:`DrizzleSettings`
                                 (``*_single_sci/wht.fits``)
4 median      ``median``         minmed / median / mean ... per output block          :class:`MedianSettings`
                                 (``*_med.fits``)
5 blot        ``blot``           the median resampled onto each chip (``*_blt.fits``) :class:`BlotSettings`
6 driz_cr     ``driz_cr``        the two-pass cosmic-ray test (``*_crmask.fits``)     :class:`CRSettings`
7 final       ``final_drizzle``  every chip into the final mosaic (``*_drz.fits``)    :class:`DrizzleSettings`
============  =================  ===================================================  =====================

``common`` holds what both drizzle steps do to a chip (data, weights, pixmap, sums) and the
settings' base class.  Each step's settings are frozen and built once from the validated
parameters; :class:`Settings` holds them all (None for a step that is off).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dazzle.steps.blot import BlotSettings
from dazzle.steps.common import DrizzleSettings, StepSettings
from dazzle.steps.driz_cr import CRSettings
from dazzle.steps.median import MedianSettings
from dazzle.steps.sky import SkySettings
from dazzle.steps.static_mask import StaticSettings

__all__ = ["Settings", "StepSettings", "StaticSettings", "SkySettings", "DrizzleSettings",
           "MedianSettings", "BlotSettings", "CRSettings"]


@dataclass(frozen=True)
class Settings:
    """Every step's settings for one run, built once from the validated parameters.

    Attributes
    ----------
    resetbits : str or None
        DQ flags cleared from every chip's DQ as it is read (``resetbits``).
    static, single, median, blot, cr, final
        The step's settings, or None when the step is off (``static``, ``driz_separate``,
        ``median``, ``blot``, ``driz_cr``, ``driz_combine``).
    sky : SkySettings
        Always present: with ``skysub`` off the skies come from the user or the headers.
    crbit : int or None
        The DQ bit written into the inputs' DQ where cosmic rays were found
        (``update_input_dq``), or None (inputs left alone).
    preserve : bool
        Back an input up to ``OrIg/`` before its DQ is updated (``preserve``).
    """

    resetbits: str | None
    static: StaticSettings | None
    sky: SkySettings
    single: DrizzleSettings | None
    median: MedianSettings | None
    blot: BlotSettings | None
    cr: CRSettings | None
    final: DrizzleSettings | None
    crbit: int | None
    preserve: bool = True

    @classmethod
    def from_params(cls, params: Mapping) -> "Settings":
        """The run's settings from validated parameters (:func:`dazzle.params.resolve`)."""
        def on(switch, make):
            return make() if params[switch] else None

        return cls(resetbits=params["resetbits"],
                   static=on("static", lambda: StaticSettings.from_params(params)),
                   sky=SkySettings.from_params(params),
                   single=on("driz_separate", lambda: DrizzleSettings.from_params(params, "single")),
                   median=on("median", lambda: MedianSettings.from_params(params)),
                   blot=on("blot", lambda: BlotSettings.from_params(params)),
                   cr=on("driz_cr", lambda: CRSettings.from_params(params)),
                   final=on("driz_combine", lambda: DrizzleSettings.from_params(params, "final")),
                   crbit=params["crbit"] if params["update_input_dq"] else None,
                   preserve=bool(params["preserve"]))
