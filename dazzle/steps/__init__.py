"""AstroDrizzle's steps, one file each: plain functions over arrays and WCSs (no dask, no files
written -- the graph layer wires them and writes the products).

* ``static_mask``   -- step 1: per-chip low-pixel signatures, ANDed per chip number
* ``sky``           -- step 2: localmin / globalmin / match / globalmin+match, user skies
* ``driz_separate`` -- step 3: each exposure drizzled on its own (``*_single_sci/wht.fits``)
* ``median``        -- step 4: minmed / median / mean ... per output block (``*_med.fits``)
* ``blot``          -- step 5: the median resampled onto each chip (``*_blt.fits``)
* ``driz_cr``       -- step 6: the two-pass cosmic-ray test (``*_crmask.fits``)
* ``final_drizzle`` -- step 7: every chip into the final mosaic (``*_drz.fits``)
* ``common``        -- what both drizzle steps do to a chip (data, weights, pixmap, sums)
"""
