"""dazzle: a distributed, Numba-accelerated reimplementation of HST's AstroDrizzle.

Layers (each AstroDrizzle step lives in one obvious file):

* ``dazzle.kernels``  -- Numba kernels over plain arrays (drizzle, blot, ...).
* ``dazzle.steps``    -- AstroDrizzle's steps as plain functions over arrays and WCSs.
* ``dazzle.geometry`` -- pixmaps between WCSs and the output frame.
* ``dazzle.graph``    -- the Dask graph; ``dazzle.cluster`` -- where it runs.
* ``dazzle.io`` / ``dazzle.products`` -- chips in, products out.
* ``dazzle.params``   -- the parameter table (AstroDrizzle names and defaults).

Entry points: :func:`run` (the whole pipeline) and :func:`drizzle`
(AstroDrizzle's ``adrizzle.drizzle``).
"""

__version__ = "0.1.0.dev0"

__all__ = ["run", "drizzle", "__version__"]


def __getattr__(name):
    if name in ("run", "drizzle"):
        from dazzle import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'dazzle' has no attribute {name!r}")
