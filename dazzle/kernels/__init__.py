"""Numba kernels: arrays in, arrays out.  No FITS, no WCS objects, no dask.

The kernels import nothing else of dazzle; the layers above call them on plain
numpy arrays.  Each Numba kernel is compiled with ``nogil=True`` and shares no
mutable state, so threads may run them at once on different outputs.

Functions
---------
drizzle_add
    Drizzle one input image onto output arrays (a running weighted mean), in place.
drizzle_sums
    Add one input's weighted sums to a block of the output (the pipeline's reductions).
blot
    Resample an image back onto a (distorted) frame.
combine_stack
    Per-pixel median/minmed/mean/sum of a stack (create median).
cr_test, cr_derivative, cr_grow_mask, cte_grow_mask
    The driz_cr cosmic-ray test and its masks.
kernel_reach
    How far beyond an input pixel's edges a drizzle kernel gives weight (plain Python).

Names
-----
KERNELS, INTERPOLATORS, COMBINE_TYPES
    The drizzle kernels, blot interpolators and combine types (:mod:`.catalog`).
"""

from .catalog import COMBINE_TYPES, INTERPOLATORS, KERNELS, kernel_reach

__all__ = ["drizzle_add", "drizzle_sums", "blot", "combine_stack", "cr_test", "cr_derivative",
           "cr_grow_mask", "cte_grow_mask", "kernel_reach", "KERNELS", "INTERPOLATORS",
           "COMBINE_TYPES"]

# The Numba kernels are imported on first use (PEP 562), so that the plain-Python names of
# :mod:`.catalog` can be read (by dazzle.facts, `dazzle params`) without loading Numba.
_LAZY = {"drizzle_add": (".drizzle", "drizzle_add"), "drizzle_sums": (".drizzle", "drizzle_sums"),
         "blot": (".blot", "blot"), "combine_stack": (".combine", "combine_stack"),
         "cr_test": (".cr", "cr_test"), "cr_derivative": (".cr", "derivative"),
         "cr_grow_mask": (".cr", "grow_mask"), "cte_grow_mask": (".cr", "cte_grow_mask")}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module, __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
