"""Where dense operands start in memory: every BLAS call and NumPy reduction of dnmf gets operands on one byte
boundary, so that its rounding does not depend on where an allocation happened to land."""

from __future__ import annotations

import ctypes
import math
from typing import Any

import numpy as np

__all__ = ["ALIGNMENT", "address", "aligned", "empty_aligned"]

#: Byte boundary every dense operand of a BLAS call or reduction starts on (see :func:`aligned`).
ALIGNMENT = 64


def address(x: np.ndarray) -> int:
    """Where ``x``'s data start. Reading a writable contiguous array's buffer costs a quarter of ``x.ctypes.data``,
    which matters on small blocks: every dense operand of every kernel is checked (see :func:`aligned`)."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(x))
    except (TypeError, ValueError, BufferError):  # read-only, not contiguous, or empty
        return x.ctypes.data


def empty_aligned(shape: tuple[int, ...], dtype: Any, order: str = "C") -> np.ndarray:
    """An uninitialised array starting on an :data:`ALIGNMENT`-byte boundary, in C or Fortran ``order``."""
    dtype = np.dtype(dtype)
    buffer = np.empty(math.prod(shape) * dtype.itemsize + ALIGNMENT, dtype=np.uint8)
    return np.ndarray(shape, dtype, buffer, (-address(buffer)) % ALIGNMENT, order=order)


def aligned(x: Any) -> Any:
    """``x`` itself if it is a NumPy array starting on an :data:`ALIGNMENT`-byte boundary, else an aligned
    contiguous copy; other blocks (sparse, CuPy) pass through.

    BLAS kernels and NumPy's SIMD reductions round differently depending on where their operands start, and a
    block deserialized on another worker (after a worker was lost, say) can start anywhere. Giving every dense
    operand the same alignment makes a recomputed block bitwise equal to the original, which is what lets a
    resumed or recovered run end exactly where an uninterrupted one would. The memory order is kept too (a
    Fortran-ordered array, a transposed block, stays one; anything else becomes C-contiguous): whether an
    operand was copied must not change the layout the BLAS call sees, which changes its order of summation.
    """
    if not isinstance(x, np.ndarray):
        return x
    contiguous = x.flags.c_contiguous or x.flags.f_contiguous
    if contiguous and address(x) % ALIGNMENT == 0:
        return x
    out = empty_aligned(x.shape, x.dtype, order="F" if x.flags.f_contiguous and not x.flags.c_contiguous else "C")
    np.copyto(out, x)
    return out
