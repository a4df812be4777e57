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
    ``header`` (the product's primary and SCI cards, as the file would carry) and ``run`` (the
    :class:`~dazzle.pipeline.RunResult`)."""

    def __init__(self, sci, wcs, *, wht, ctx, err=None, header=None, unit=None, run=None):
        from astropy.nddata import StdDevUncertainty

        super().__init__(sci, wcs=wcs, unit=unit, meta=header if header is not None else fits.Header(),
                         uncertainty=None if err is None else StdDevUncertainty(err))
        self.wht, self.ctx, self.err, self.run = wht, ctx, err, run

    @property
    def header(self):
        return self.meta

    def to_hdulist(self) -> fits.HDUList:
        """The product as the file ``dazzle.run`` writes it: PRIMARY, SCI, WHT, CTX (and ERR)."""
        h = self.wcs.to_header(relax=True)
        hdus = [fits.PrimaryHDU(header=fits.Header(self.header))]
        for name, a in (("SCI", self.data), ("WHT", self.wht), ("CTX", self.ctx), ("ERR", self.err)):
            if a is not None:
                hdus.append(fits.ImageHDU(a, header=h, name=name))
        return fits.HDUList(hdus)


_FINAL_NAMES = ("SCI", "WHT", "CTX", "ERR")


def _unit(text):
    from astropy import units as u

    t = str(text or "").strip().lower().replace("electrons", "electron").replace("counts", "count")
    try:
        return u.Unit(t) if t else None
    except ValueError:
        return None


def drizzled(plan, arrays, run) -> Drizzled:
    """The in-memory product of a run (``plan``; ``arrays``: the final drizzle's whole-frame
    arrays in the order SCI, WHT, CTX[, ERR]; ``run`` its :class:`RunResult`), with the header
    cards the file would carry."""
    from .products import _units, final_headers

    if arrays is None:
        raise ValueError("output=None keeps the final drizzle in memory, but driz_combine is off")
    a = dict(zip(_FINAL_NAMES, arrays))
    ctx = a["CTX"][0] if a["CTX"].ndim == 3 and a["CTX"].shape[0] == 1 else a["CTX"]
    primary, sci = final_headers(plan.chips, plan.params, plan.final_path, plan.final_frame)
    header = fits.Header(primary)
    header["EXPTIME"] = (float(plan.texptime), "total exposure time (s)")
    header["TEXPTIME"] = (float(plan.texptime), "total exposure time (s)")
    header["NDRIZIM"] = (len(plan.chips), "Drizzle, No. images drizzled onto output")
    bunit = _units(plan.chips[0].bunit, plan.params["final_units"])
    header["BUNIT"] = (bunit, "units of the data")
    header.update(sci)
    return Drizzled(a["SCI"], plan.final_frame.wcs(), wht=a["WHT"], ctx=ctx, err=a.get("ERR"), header=header,
                    unit=_unit(bunit), run=run)
