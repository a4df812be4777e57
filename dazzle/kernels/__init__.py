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
from .drizzle import drizzle_add, drizzle_sums
from .blot import blot
from .combine import combine_stack
from .cr import cr_test, derivative as cr_derivative, grow_mask as cr_grow_mask, cte_grow_mask

__all__ = ["drizzle_add", "drizzle_sums", "blot", "combine_stack", "cr_test", "cr_derivative",
           "cr_grow_mask", "cte_grow_mask", "kernel_reach", "KERNELS", "INTERPOLATORS",
           "COMBINE_TYPES"]
