"""Arrays that are views into one flat vector, so compiled code can take them as one.

A model's parameters ``[(W0, b0), (W1, b1), ...]`` and an optimizer's state
live as consecutive C-contiguous views into one 1-D vector each. A fused epoch
then updates the vector in place (``fastmlp.backends.numba``), with nothing
copied in or out. Being flat is a speed matter only: every consumer checks
with :func:`base_vector` and copies arrays that are not.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def flat_views(vector: np.ndarray, shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
    """Consecutive views of ``vector`` (1-D, C-contiguous) with the given shapes."""
    views, at = [], 0
    for shape in shapes:
        size = int(np.prod(shape, dtype=np.int64))
        views.append(vector[at:at + size].reshape(shape))
        at += size
    if at != vector.shape[0]:
        raise ValueError(f"shapes of {at} values do not fill a vector of {vector.shape[0]}")
    return views


def flat_copy(arrays: Sequence[np.ndarray], dtype=None) -> list[np.ndarray]:
    """Copies of ``arrays`` (in ``dtype``, default each one's own, which must agree) as
    views into one new vector."""
    dtype = np.result_type(*arrays) if dtype is None else np.dtype(dtype)
    vector = np.empty(sum(a.size for a in arrays), dtype)
    views = flat_views(vector, [a.shape for a in arrays])
    for view, array in zip(views, arrays):
        view[...] = array
    return views


def flat_zeros_like(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Zeros shaped and typed like ``arrays``, as views into one new vector."""
    vector = np.zeros(sum(a.size for a in arrays), np.result_type(*arrays))
    return flat_views(vector, [a.shape for a in arrays])


def base_vector(arrays: Sequence[np.ndarray]) -> np.ndarray | None:
    """The vector that ``arrays`` are consecutive views of, filling it; None if there is none.

    >>> W, b = flat_zeros_like([np.ones((2, 3)), np.ones(2)])
    >>> base_vector([W, b]).shape, base_vector([b, W]), base_vector([W])
    ((8,), None, None)
    """
    if not arrays:
        return None
    vector = arrays[0].base
    if (not isinstance(vector, np.ndarray) or vector.ndim != 1 or vector.base is not None
            or not vector.flags.c_contiguous):
        return None
    address, end = vector.ctypes.data, vector.ctypes.data + vector.nbytes
    for array in arrays:
        if (array.base is not vector or array.dtype != vector.dtype
                or not array.flags.c_contiguous or array.ctypes.data != address):
            return None
        address += array.nbytes
    return vector if address == end else None


def flat_params(params) -> list[tuple[np.ndarray, np.ndarray]]:
    """``params`` (a list of ``(W, b)``) as it is if already flat, else as flat copies."""
    arrays = [array for layer in params for array in layer]
    if base_vector(arrays) is not None:
        return list(params)
    views = flat_copy(arrays)
    return [(views[i], views[i + 1]) for i in range(0, len(views), 2)]
