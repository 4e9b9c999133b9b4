"""The array namespace of a block: NumPy for NumPy arrays, else the array-API namespace the block belongs to.

Rules and dense block kernels take their functions from :func:`array_namespace` instead of from ``numpy``, so the
same code runs on NumPy, CuPy or any array-API library. NumPy arrays get ``numpy`` itself (NumPy 2.1 implements
the standard in its main namespace), which keeps NumPy results bitwise as they were and costs no wrapper calls;
other arrays get ``array_api_compat.array_namespace(...)`` (the optional ``array-api-compat`` package, in the
``gpu`` extra), or, without it, the array's own ``__array_namespace__()``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["array_namespace", "is_numpy"]

_NUMPY_IS_ARRAY_API = tuple(int(p) for p in np.__version__.split(".")[:2]) >= (2, 1)


def is_numpy(xp: ModuleType) -> bool:
    """Whether ``xp`` is NumPy (the plain module or ``array_api_compat``'s wrapper of it)."""
    return xp is np or xp.__name__ == "array_api_compat.numpy"


def array_namespace(*arrays: Any) -> ModuleType:
    """The array-API namespace of ``arrays`` (dense arrays of one library; ``None`` entries are skipped).

    Raises
    ------
    TypeError
        If the arrays belong to no array-API library, or to different ones.
    """
    arrays = tuple(a for a in arrays if a is not None)
    if all(isinstance(a, np.ndarray) for a in arrays):
        if _NUMPY_IS_ARRAY_API:
            return np
        try:
            import array_api_compat.numpy as compat_numpy
        except ImportError as error:
            raise TypeError("dnmf's rules need NumPy >= 2.1 or the array-api-compat package: "
                            "pip install 'dnmf[gpu]' or pip install 'numpy>=2.1'.") from error
        return compat_numpy
    try:
        import array_api_compat
    except ImportError:
        spaces = {a.__array_namespace__() for a in arrays if hasattr(a, "__array_namespace__")}
        if len(spaces) != 1 or any(not hasattr(a, "__array_namespace__") for a in arrays):
            raise TypeError(f"cannot find one array namespace for blocks of type "
                            f"{sorted({type(a).__name__ for a in arrays})}; install array-api-compat: "
                            "pip install 'dnmf[gpu]'.") from None
        return spaces.pop()
    return array_api_compat.array_namespace(*arrays)
