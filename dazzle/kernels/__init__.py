"""Numba kernels: arrays in, arrays out. No FITS, no WCS objects, no dask.

Public functional API (a contract other code relies on):

* :func:`drizzle_add`  -- drizzle one input image onto output arrays, in place.
* :func:`drizzle_sums` -- add one input's weighted sums to a block of the output (reductions).
* :func:`blot`        -- resample an image back onto a (distorted) frame.
"""

from .drizzle import drizzle_add, drizzle_sums, KERNELS
from .blot import blot, INTERPOLATORS

__all__ = ["drizzle_add", "drizzle_sums", "blot", "KERNELS", "INTERPOLATORS"]
