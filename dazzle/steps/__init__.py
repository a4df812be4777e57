"""AstroDrizzle's steps, one file each: plain functions over arrays and WCSs.

* ``common``        -- what both drizzle steps do to a chip (data, weights, pixmap, sums)
* ``driz_separate`` -- step 3: each exposure drizzled on its own (``*_single_sci/wht.fits``)
* ``final_drizzle`` -- step 7: every chip into the final mosaic (``*_drz.fits``)
"""
