"""Numba kernels: arrays in, arrays out.  No FITS, no WCS objects, no dask.

The kernels import nothing else of dazzle; the layers above call them on plain
numpy arrays.  The Numba modules load on first use of a kernel; the names and reaches
(:mod:`.catalog`) are plain Python.  Each Numba kernel is compiled with ``nogil=True`` and shares no
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
tilesums.add_into, tilesums.finish_sci, tilesums.finish_err
    The tiled reductions: chips' sums added into a tile's, and a tile's sums divided.
kernel_reach, box_pad
    How far beyond an input pixel's edges a drizzle kernel gives weight, and the margin the
    pipeline plans a chip's output box with (plain Python).

Names
-----
KERNELS, INTERPOLATORS, COMBINE_TYPES
    The drizzle kernels, blot interpolators and combine types (:mod:`.catalog`).
"""

import importlib

from .catalog import COMBINE_TYPES, INTERPOLATORS, KERNELS, box_pad, kernel_reach

# The Numba kernels load on first use (PEP 562), so that the plain-Python catalog
# (``dazzle.kernels.catalog``) can be imported -- by dazzle.facts, the parameter table, the
# command line's start -- without importing Numba.  Name -> (submodule, attribute).
_LAZY = {
    "drizzle_add": ("drizzle", "drizzle_add"),
    "drizzle_sums": ("drizzle", "drizzle_sums"),
    "blot": ("blotting", "blot"),
    "combine_stack": ("combine", "combine_stack"),
    "cr_test": ("cr", "cr_test"),
    "cr_derivative": ("cr", "derivative"),
    "cr_grow_mask": ("cr", "grow_mask"),
    "cte_grow_mask": ("cr", "cte_grow_mask"),
}

__all__ = ["drizzle_add", "drizzle_sums", "blot", "combine_stack", "cr_test", "cr_derivative",
           "cr_grow_mask", "cte_grow_mask", "kernel_reach", "box_pad", "KERNELS", "INTERPOLATORS",
           "COMBINE_TYPES"]


def __getattr__(name):
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{module}", __name__), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
