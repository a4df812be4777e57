"""dazzle: a distributed, Numba-accelerated reimplementation of HST's AstroDrizzle.

Layers, each importing only the ones before it (each AstroDrizzle step lives in one obvious
file, and its graph layer in one obvious function)::

    kernels  ->  steps  ->  graph  ->  pipeline  ->  cli

* ``dazzle.kernels``  -- Numba kernels over plain arrays (drizzle, blot, median, CR test).
* ``dazzle.steps``    -- AstroDrizzle's steps as plain functions over arrays and WCSs, one
  module each, with one frozen settings object per step (:class:`dazzle.steps.Settings`).
* ``dazzle.graph``    -- the Dask graph, one ``add_<step>`` function per step;
  ``dazzle.cluster`` -- where it runs, and the step timer.
* ``dazzle.pipeline`` -- planning (headers, frames, boxes) and the run; ``dazzle.cli``.

Beside them: ``dazzle.params`` (the parameter table: AstroDrizzle names, defaults, checks),
``dazzle.facts`` (the steps, task names, kernel names and context bits, once),
``dazzle.geometry`` (pixmaps, output frames), ``dazzle.io`` / ``dazzle.products`` (chips in,
products out), ``dazzle.memory`` / ``dazzle.drizzled`` (in-memory inputs and result),
``dazzle.compat`` (drizzlepac's entry point), ``dazzle.simulate`` (test data with truth),
``dazzle.report``.

Entry points
------------
run(inputs, output="", config=None, **params)
    The whole pipeline (:func:`dazzle.pipeline.run`); returns a ``RunResult``.
drizzle(input, outdata="", config=None, **params)
    AstroDrizzle's ``adrizzle.drizzle`` (:func:`dazzle.pipeline.drizzle`).
AstroDrizzle(input, output=None, configobj=None, **params)
    drizzlepac's entry point (:func:`dazzle.compat.AstroDrizzle`): change one import.

Inputs may be files or in-memory data (``HDUList``, ``(data, wcs)``, ``NDData``/``CCDData``;
:mod:`dazzle.memory`); ``output=None`` returns the product in memory; ``compute=False`` returns
the Dask graph.
"""

__version__ = "0.1.0.dev0"   # the one place: pyproject.toml reads it (dynamic version)

__all__ = ["run", "drizzle", "AstroDrizzle", "__version__"]


def __getattr__(name):
    if name in ("run", "drizzle"):
        from dazzle import pipeline

        return getattr(pipeline, name)
    if name == "AstroDrizzle":
        from dazzle.compat import AstroDrizzle

        return AstroDrizzle
    raise AttributeError(f"module 'dazzle' has no attribute {name!r}")
