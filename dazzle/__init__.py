"""dazzle: a distributed, Numba-accelerated reimplementation of HST's AstroDrizzle.

Layers (each AstroDrizzle step lives in one obvious file):

* ``dazzle.kernels``  -- Numba kernels over plain arrays (drizzle, blot, ...).
* ``dazzle.geometry`` -- pixmaps between WCSs and the output frame.
* ``dazzle.io``       -- chips in, products out.
* ``dazzle.params``   -- the parameter table (AstroDrizzle names and defaults).
"""

__version__ = "0.1.0.dev0"
