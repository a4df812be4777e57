"""Products out: FITS images of the drizzle steps, with their WCS and the parameters used.

Every product is written atomically (a temporary file in the same folder, then a rename), so a
failed run never leaves a partial file under a product's name.
"""

from __future__ import annotations

import datetime as _dt
import os

import numpy as np
from astropy.io import fits

import dazzle
from dazzle.io import write_fits_atomic
from dazzle.params import PARAMETERS, format_value

# Parameters recorded in each product's header, by step.
_SINGLE_PARAMS = ["driz_sep_kernel", "driz_sep_pixfrac", "driz_sep_fillval", "driz_sep_bits",
                  "driz_sep_wt_scl", "stepsize"]
_FINAL_PARAMS = ["final_wht_type", "final_kernel", "final_wt_scl", "final_pixfrac", "final_fillval",
                 "final_maskval", "final_bits", "final_units", "stepsize", "final_wcs", "final_refimage",
                 "final_rot", "final_scale", "final_outnx", "final_outny", "final_ra", "final_dec",
                 "final_crpix1", "final_crpix2"]


def _provenance(header, params, names):
    header["ORIGIN"] = ("dazzle", "software that wrote this file")
    header["DAZZLEV"] = (dazzle.__version__, "dazzle version")
    header["DATE"] = (_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"), "file written (UTC)")
    for name in names:
        if name in params and name in PARAMETERS:
            header.add_history(f"dazzle {name} = {format_value(params[name])}")


def _wcs_cards(frame, header):
    for card in frame.fits_header().cards:
        if card.keyword in ("NAXIS", "NAXIS1", "NAXIS2", "WCSAXES") or not card.keyword:
            continue
        header[card.keyword] = (card.value, card.comment)


def _units(bunit: str | None, units: str) -> str:
    b = (bunit or "ELECTRONS").upper()
    base = b.split("/")[0]
    return base if units == "counts" else base + "/S"


def write_single_products(out_dir, root, sci, wht, frame, box, params, *, exptime, bunit):
    """``<root>_single_sci.fits`` and ``<root>_single_wht.fits`` (simple FITS, the exposure's
    footprint box of the output frame; ``frame`` is that box's Frame)."""
    paths = []
    for suffix, data in (("sci", sci), ("wht", wht)):
        hdu = fits.PrimaryHDU(np.ascontiguousarray(data, dtype=np.float32))
        h = hdu.header
        _wcs_cards(frame, h)
        h["DZ_X0"] = (int(box[0]), "0-based x of this box in the output frame")
        h["DZ_Y0"] = (int(box[2]), "0-based y of this box in the output frame")
        h["EXPTIME"] = (float(exptime), "exposure time (s)")
        if suffix == "sci":
            h["BUNIT"] = (_units(bunit, "cps"), "units of the data")
        _provenance(h, params, _SINGLE_PARAMS)
        path = os.path.join(out_dir, f"{root}_single_{suffix}.fits")
        write_fits_atomic(path, fits.HDUList([hdu]))
        paths.append(path)
    return tuple(paths)


def write_drizzle_product(path, sci, wht, ctx, frame, params, *, texptime, ndrizim, bunit,
                          primary_cards=None):
    """The final product: PRIMARY (header), SCI, WHT and CTX image extensions with the frame's
    WCS on each; EXPTIME and TEXPTIME (summed exposure time of the unique exposures), the
    number of chips (NDRIZIM) and the parameters used in the headers."""
    primary = fits.PrimaryHDU()
    ph = primary.header
    for key, value in (primary_cards or {}).items():
        ph[key] = value
    ph["EXPTIME"] = (float(texptime), "total exposure time (s)")
    ph["TEXPTIME"] = (float(texptime), "total exposure time (s)")
    ph["NDRIZIM"] = (int(ndrizim), "number of chips drizzled")
    _provenance(ph, params, _FINAL_PARAMS)
    hdus = [primary]
    ctx = np.asarray(ctx, dtype=np.int32)
    if ctx.ndim == 3 and ctx.shape[0] == 1:
        ctx = ctx[0]
    for name, data in (("SCI", sci), ("WHT", wht), ("CTX", ctx)):
        hdu = fits.ImageHDU(np.ascontiguousarray(data), name=name)
        _wcs_cards(frame, hdu.header)
        hdu.header["EXPTIME"] = (float(texptime), "total exposure time (s)")
        if name == "SCI":
            hdu.header["BUNIT"] = (_units(bunit, params.get("final_units", "cps")), "units of the data")
        hdus.append(hdu)
    write_fits_atomic(path, fits.HDUList(hdus))
    return path
