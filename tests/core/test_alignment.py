"""Where operands lie in memory never changes a result: ``aligned`` keeps the layout it is given, and kernels give
bitwise-equal results whichever addresses their temporaries land on."""

from __future__ import annotations

import numpy as np
import pytest

from dnmf.core import kernels
from dnmf.core.alignment import ALIGNMENT, address, aligned, empty_aligned


def at_offset(x: np.ndarray, offset: int, order: str = "C") -> np.ndarray:
    """A copy of ``x`` whose data start ``offset`` bytes past an aligned boundary."""
    buffer = empty_aligned((x.nbytes + 2 * ALIGNMENT,), np.uint8)
    out = np.ndarray(x.shape, x.dtype, buffer, offset, order=order)
    np.copyto(out, x)
    return out


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("offset", [0, 8, 16, 48])
def test_aligned_keeps_the_memory_order_whether_or_not_it_copies(order, offset):
    x = at_offset(np.random.default_rng(0).random((7, 5)), offset, order)
    y = aligned(x)
    assert address(y) % ALIGNMENT == 0 and (y is x) == (offset == 0)
    assert (y.flags.c_contiguous, y.flags.f_contiguous) == (x.flags.c_contiguous, x.flags.f_contiguous)
    np.testing.assert_array_equal(y, x)


def test_a_strided_view_becomes_one_c_contiguous_aligned_copy_even_at_an_aligned_address():
    x = empty_aligned((8, 6), np.float64)
    x[:] = np.arange(48).reshape(8, 6)
    view = x[::2]
    y = aligned(view)
    assert y is not view and y.flags.c_contiguous and address(y) % ALIGNMENT == 0
    np.testing.assert_array_equal(y, view)


@pytest.mark.parametrize("k", [1, 3])
def test_the_masked_h_step_products_do_not_depend_on_where_temporaries_land(k):
    """The H-step transposes its block, so its temporaries are Fortran-ordered; before ``aligned`` kept the
    order, the ones that happened to land aligned reached BLAS as they were and the others as C copies, and
    the products differed in their last bits from one call to the next."""
    rng = np.random.default_rng(1)
    a = rng.random((90, 60))
    a[rng.random(a.shape) < 0.1] = np.nan
    a, w = aligned(np.ascontiguousarray(a)), aligned(rng.random((90, k)))
    results, junk = set(), []
    for size in rng.integers(1, 4096, size=40):
        junk.append(np.empty(int(size)))  # moves where the next temporaries are allocated
        results.add(kernels.masked_wta_block(w, a).tobytes())
    assert len(results) == 1
