"""Numba kernels: arrays in, arrays out. No FITS, no WCS objects, no dask.

Public functional API (a contract other code relies on):

* :func:`drizzle_add`  -- drizzle one input image onto output arrays, in place.
* :func:`drizzle_sums` -- add one input's weighted sums to a block of the output (reductions).
* :func:`blot`        -- resample an image back onto a (distorted) frame.
* :func:`combine_stack` -- per-pixel median/minmed/mean/sum of a stack (create median).
* :func:`cr_test`, :func:`cr_derivative` -- the driz_cr cosmic-ray test.
"""

from .drizzle import drizzle_add, drizzle_sums, KERNELS
from .blot import blot, INTERPOLATORS
from .combine import combine_stack, COMBINE_TYPES
from .cr import cr_test, derivative as cr_derivative, grow_mask as cr_grow_mask, cte_grow_mask

__all__ = ["drizzle_add", "drizzle_sums", "blot", "combine_stack", "cr_test", "cr_derivative",
           "cr_grow_mask", "cte_grow_mask", "KERNELS", "INTERPOLATORS", "COMBINE_TYPES"]
