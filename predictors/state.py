"""Checks of a cost model's data-only state, as :meth:`CostModel.from_state` reads it.

A fitted model is stored as ``(params, arrays)``: JSON values (:data:`Params`) and float64 /
int64 NumPy arrays (:data:`Arrays`), as safetensors holds them. The helpers here check what a
model's ``_set_state`` is given — the keys present, each array's dtype, shape and finiteness,
lists of names and batch sizes, positive numbers — and raise a ``ValueError`` that names the
model (``what``) and the key as the file names it (``prefix``: ``base.``, ``trees.``), so a
state this code did not write is refused with what is wrong. They only read values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Arrays", "Params", "batch_size_list", "check_keys", "positive_float", "prefixed", "state_array",
           "str_list", "unprefixed"]

Params = dict[str, Any]  # JSON values only
Arrays = dict[str, np.ndarray]  # float64 / int64 arrays, as safetensors stores them

_DTYPES = {"f": np.dtype(np.float64), "i": np.dtype(np.int64)}


def check_keys(got, expected, *, what: str, kind: str, prefix: str = "") -> None:
    """``got``'s keys are ``expected``; ``prefix`` is how the message names them (``trees.``)."""
    missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    if missing or extra:
        raise ValueError(f"{what} state: {kind} must be {sorted(prefix + k for k in expected)}; missing "
                         f"{[prefix + k for k in missing]}, unexpected {[prefix + k for k in extra]}")


def state_array(arrays: Arrays, key: str, *, what: str, kind: str = "f", shape: tuple[int, ...] | None = None,
                nonneg: bool = False, prefix: str = "") -> np.ndarray:
    """A copy of ``arrays[key]``, checked: float64 (finite) or int64, 1-D or of ``shape``."""
    a = arrays[key]
    key = prefix + key  # as the file names it
    dtype = _DTYPES[kind]
    if not isinstance(a, np.ndarray) or a.dtype != dtype:
        got = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
        raise ValueError(f"{what} state: array {key!r} must be {dtype}, got {got}")
    if (shape is None and a.ndim != 1) or (shape is not None and a.shape != shape):
        raise ValueError(f"{what} state: array {key!r} must have shape {shape or '(n,)'}, got {a.shape}")
    if kind == "f" and not np.all(np.isfinite(a)):
        raise ValueError(f"{what} state: array {key!r} must be finite")
    if nonneg and np.any(a < 0):
        raise ValueError(f"{what} state: array {key!r} must be non-negative (the fit keeps it so)")
    return np.array(a, dtype=dtype, copy=True)  # owned and aligned, detached from the file's buffer


def str_list(value, *, what: str, key: str) -> list[str]:
    """``value``, a list of distinct strings (feature columns, lookup keys)."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or len(set(value)) != len(value):
        raise ValueError(f"{what} state: {key} must be a list of distinct strings, got {value!r}")
    return list(value)


def batch_size_list(value, *, what: str) -> list[int]:
    """``value``, a non-empty list of distinct positive integers (a per-batch model's batch sizes)."""
    if (not isinstance(value, list) or not value or len(set(value)) != len(value)
            or not all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in value)):
        raise ValueError(f"{what} state: batch_sizes must be a non-empty list of distinct positive integers, "
                         f"got {value!r}")
    return list(value)


def positive_float(value, *, what: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{what} state: {key} must be a positive finite number, got {value!r}")
    return float(value)


def prefixed(prefix: str, arrays: Arrays) -> Arrays:
    """``arrays`` under ``PREFIX.KEY``: a part's arrays inside its model's state."""
    return {f"{prefix}.{k}": v for k, v in arrays.items()}


def unprefixed(prefix: str, arrays: Arrays) -> Arrays:
    """The arrays of ``arrays`` under ``PREFIX.``, without it."""
    return {k[len(prefix) + 1:]: v for k, v in arrays.items() if k.startswith(prefix + ".")}
