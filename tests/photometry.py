"""Aperture photometry on drizzled products at the simulator's truth positions (test helper)."""

from __future__ import annotations

import math

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS


def aperture_fluxes(drz, stars, r_ap=6.0, r_in=9.0, r_out=14.0, ext="SCI"):
    """Measured/true flux ratios of the stars in a drizzled image (local-sky subtracted).

    ``drz`` is a product path (its ``SCI``/``WHT`` extensions are used) or a tuple
    ``(sci, wht, wcs)``; stars whose aperture or annulus is not fully covered are skipped."""
    if isinstance(drz, tuple):
        sci, wht, w = drz
        sci = np.asarray(sci, dtype=np.float64)
    else:
        with fits.open(drz) as h:
            sci = h[ext].data.astype(np.float64)
            wht = h["WHT"].data
            w = WCS(h[ext].header)
    x, y = w.all_world2pix(stars["ra"], stars["dec"], 0)
    ny, nx = sci.shape
    ratios = []
    m = int(math.ceil(r_out)) + 1
    for i in range(len(stars)):
        xi, yi = x[i], y[i]
        if not (m <= xi < nx - m - 1 and m <= yi < ny - m - 1):
            continue
        sl = (slice(int(yi) - m, int(yi) + m + 2), slice(int(xi) - m, int(xi) + m + 2))
        yy, xx = np.mgrid[sl]
        rr = np.hypot(xx - xi, yy - yi)
        d, ww = sci[sl], wht[sl]
        use = rr <= r_out
        if not np.all(np.isfinite(d[use])) or np.any(ww[use] <= 0):
            continue
        bg = np.median(d[(rr >= r_in) & (rr <= r_out)])
        ap = rr <= r_ap
        ratios.append((d[ap].sum() - bg * ap.sum()) / stars["flux_eps"][i])
    return np.array(ratios)
