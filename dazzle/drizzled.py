"""The final drizzled image kept in memory: what ``dazzle.run(..., output=None)`` returns
(:class:`Drizzled`, an ``astropy.nddata.NDData``).  Imported only by such a run (astropy.nddata
costs about half a second to import)."""

from __future__ import annotations

from astropy.io import fits
from astropy.nddata import NDData

__all__ = ["Drizzled", "drizzled"]


class Drizzled(NDData):
    """The final drizzled image kept in memory (``dazzle.run(..., output=None)``): an
    ``astropy.nddata.NDData`` whose ``data`` is SCI (float32) and ``wcs`` the output frame's
    ``astropy.wcs.WCS``, with ``wht`` (float32), ``ctx`` (int32; one plane per 32 inputs,
    ``(nplanes, ny, nx)`` when more than one), ``err`` (or None; also as ``uncertainty``),
    ``dq`` (int32, the OR of the contributing input pixels' flags, with ``final_dq=True``; or
    None), ``header`` (the product's primary and SCI cards, as the file would carry) and ``run`` (the
    :class:`~dazzle.pipeline.RunResult`)."""

    def __init__(self, sci, wcs, *, wht, ctx, err=None, dq=None, header=None, unit=None, run=None):
        from astropy.nddata import StdDevUncertainty

        super().__init__(sci, wcs=wcs, unit=unit, meta=header if header is not None else fits.Header(),
                         uncertainty=None if err is None else StdDevUncertainty(err))
        self.wht, self.ctx, self.err, self.dq, self.run = wht, ctx, err, dq, run

    @property
    def header(self):
        return self.meta

    def to_hdulist(self) -> fits.HDUList:
        """The product as the file ``dazzle.run`` writes it: PRIMARY, SCI, WHT, CTX (and ERR, DQ)."""
        h = self.wcs.to_header(relax=True)
        hdus = [fits.PrimaryHDU(header=fits.Header(self.header))]
        for name, a in (("SCI", self.data), ("WHT", self.wht), ("CTX", self.ctx), ("ERR", self.err),
                        ("DQ", self.dq)):
            if a is not None:
                hdus.append(fits.ImageHDU(a, header=h, name=name))
        return fits.HDUList(hdus)


def _unit(text):
    from astropy import units as u

    t = str(text or "").strip().lower().replace("electrons", "electron").replace("counts", "count")
    try:
        return u.Unit(t) if t else None
    except ValueError:
        return None


def drizzled(plan, arrays, run) -> Drizzled:
    """The in-memory product of a run (``plan``; ``arrays``: the final drizzle's whole-frame
    arrays by extension name, SCI, WHT, CTX and, when made, ERR and DQ; ``run`` its
    :class:`RunResult`), with the header cards the file would carry."""
    from .products import _units, final_headers

    if arrays is None:
        raise ValueError("output=None keeps the final drizzle in memory, but driz_combine is off")
    a = arrays
    ctx = a["CTX"][0] if a["CTX"].ndim == 3 and a["CTX"].shape[0] == 1 else a["CTX"]
    primary, sci = final_headers(plan.chips, plan.params, plan.final_path, plan.final_frame)
    header = fits.Header(primary)
    header["EXPTIME"] = (float(plan.texptime), "total exposure time (s)")
    header["TEXPTIME"] = (float(plan.texptime), "total exposure time (s)")
    header["NDRIZIM"] = (len(plan.chips), "Drizzle, No. images drizzled onto output")
    bunit = _units(plan.chips[0].bunit, plan.params["final_units"])
    if bunit is not None:   # none for counts from inputs in counts, as the file (drizzlepac's rule)
        header["BUNIT"] = (bunit, "units of the data")
    header.update(sci)
    return Drizzled(a["SCI"], plan.final_frame.wcs(), wht=a["WHT"], ctx=ctx, err=a.get("ERR"), dq=a.get("DQ"),
                    header=header,
                    unit=_unit(bunit), run=run)
