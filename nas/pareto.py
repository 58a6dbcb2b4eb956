"""Pareto dominance and hypervolume for multi-objective architecture search.

The search scores every architecture on several objectives (accuracy, latency_ms, params, ...),
some to be maximised and some minimised. Everything here works on *minimisation* values: first
:func:`to_minimization` negates the maximised columns, so "smaller is better" in every column.

Pareto dominance: point ``a`` dominates point ``b`` when ``a <= b`` in every objective and
``a < b`` in at least one. The Pareto front is the set of points no other point dominates
(:func:`pareto_mask`); two identical points do not dominate each other, so both stay.

Hypervolume (Zitzler & Thiele, "Multiobjective optimization using evolutionary algorithms -- a
comparative case study", PPSN 1998): the Lebesgue measure of the region dominated by a point set
and bounded above by a reference point ``r``,

    HV(P, r) = vol( union over p in P of the box [p_1, r_1] x ... x [p_m, r_m] ).

It grows whenever a new point extends the front, so the search records it after every trial
(:func:`hypervolume_history`). Points that do not strictly beat ``r`` in every objective add
nothing and are ignored. Computed exactly: m = 1 is ``r - min``; m = 2 is a staircase sweep;
m = 3 is the O(n log n) sweep over the third objective keeping a 2-D staircase (Beume, Fonseca,
Lopez-Ibanez, Paquete & Vahrenhold, "On the complexity of computing the hypervolume indicator",
IEEE TEC 2009); m >= 4 slices on the last objective and recurses (HSO: While, Hingston, Barone &
Huband, "A faster algorithm for calculating hypervolume", IEEE TEC 2006), dropping dominated
points at every level. Objectives on very different scales can be put on [0, 1] first with
:func:`normalize`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

import numpy as np

__all__ = [
    "DIRECTIONS",
    "hypervolume",
    "hypervolume_history",
    "normalize",
    "pareto_mask",
    "to_minimization",
]

DIRECTIONS = ("minimize", "maximize")

_CHUNK_ELEMENTS = 4_000_000  # bound on the (rows, n, m) comparison block in _dominated_mask


# ---------------------------------------------------------------------------- validation


def _as_matrix(values, *, m: int, name: str) -> np.ndarray:
    """``values`` as a finite float (n, m) array; an empty input becomes (0, m)."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 1 and arr.size == 0:  # [] -> no points
        return np.zeros((0, m))
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (n, {m}), got shape {arr.shape}")
    if arr.shape[1] != m:
        raise ValueError(
            f"{name} has {arr.shape[1]} columns but {m} objectives are expected "
            f"(shape {arr.shape}, expected (n, {m}))"
        )
    _check_finite(arr, name)
    return arr


def _check_finite(arr: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        if arr.ndim == 2:
            loc = f"row {where[0]}, column {where[1]}"
        else:
            loc = f"index {where[0]}"
        raise ValueError(
            f"{name} must be finite; found {arr[where]} at {loc} "
            f"({int(bad.sum())} non-finite value(s) in all)"
        )


def _as_vector(values, *, m: int | None, name: str) -> np.ndarray:
    """``values`` as a finite float (m,) array."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if m is not None and arr.shape[0] != m:
        raise ValueError(
            f"{name} has length {arr.shape[0]} but the points have {m} objectives"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty; it needs one value per objective")
    _check_finite(arr, name)
    return arr


def _check_directions(directions: Sequence[str]) -> tuple[str, ...]:
    if isinstance(directions, str):
        raise ValueError(
            f"directions must be a sequence with one name per objective, e.g. "
            f"('minimize', 'maximize'), got the single string {directions!r}"
        )
    directions = tuple(directions)
    for i, d in enumerate(directions):
        if d not in DIRECTIONS:
            raise ValueError(
                f"unknown direction {d!r} for objective {i}; valid directions are {DIRECTIONS}"
            )
    if not directions:
        raise ValueError("directions is empty; give one direction per objective")
    return directions


# ---------------------------------------------------------------------------- dominance


def to_minimization(values, directions: Sequence[str]) -> np.ndarray:
    """A float copy of ``values`` (n, m) with every ``"maximize"`` column negated."""
    directions = _check_directions(directions)
    arr = _as_matrix(values, m=len(directions), name="values").copy()
    for j, d in enumerate(directions):
        if d == "maximize":
            arr[:, j] = -arr[:, j]
    return arr


def _dominated_mask(points: np.ndarray) -> np.ndarray:
    """(n,) bool: True where some other row of the minimisation ``points`` dominates the row."""
    n, m = points.shape
    dominated = np.zeros(n, dtype=bool)
    if n == 0:
        return dominated
    rows = max(1, _CHUNK_ELEMENTS // max(1, n * m))
    for start in range(0, n, rows):
        block = points[start : start + rows, None, :]  # (rows, 1, m): candidates
        le = (points[None, :, :] <= block).all(axis=-1)  # (rows, n): other <= candidate
        lt = (points[None, :, :] < block).any(axis=-1)  # (rows, n): other < somewhere
        dominated[start : start + rows] = (le & lt).any(axis=1)
    return dominated


def pareto_mask(values, directions: Sequence[str]) -> np.ndarray:
    """(n,) bool: True for the points no other point dominates (exact duplicates both kept)."""
    return ~_dominated_mask(to_minimization(values, directions))


def normalize(points, lower, upper) -> np.ndarray:
    """``(points - lower) / (upper - lower)`` per column; a column with ``upper == lower`` -> 0."""
    lower = _as_vector(lower, m=None, name="lower")
    m = lower.shape[0]
    upper = _as_vector(upper, m=m, name="upper")
    points = _as_matrix(points, m=m, name="points")
    if (upper < lower).any():
        j = int(np.argmax(upper < lower))
        raise ValueError(
            f"upper must be >= lower in every column; column {j} has "
            f"lower={lower[j]} > upper={upper[j]}"
        )
    span = upper - lower
    safe = np.where(span > 0, span, 1.0)
    return np.where(span > 0, (points - lower) / safe, 0.0)


# ---------------------------------------------------------------------------- hypervolume


def _hv2d(points: np.ndarray, ref: np.ndarray) -> float:
    """Staircase area; every row of ``points`` (n, 2) is strictly below ``ref``."""
    order = np.lexsort((points[:, 1], points[:, 0]))  # by x, then y
    xs = points[order, 0]
    ys = np.minimum.accumulate(points[order, 1])  # lowest y reached at or left of each x
    widths = np.diff(np.append(xs, ref[0]))
    return float(np.sum(widths * (ref[1] - ys)))


def _hv3d(points: np.ndarray, ref: np.ndarray) -> float:
    """Sweep up the third objective keeping the 2-D staircase of the points passed so far and
    its area, updated per insertion (Beume et al. 2009). Rows are strictly below ``ref``."""
    rx, ry, rz = (float(v) for v in ref)
    order = np.argsort(points[:, 2], kind="stable")
    xs: list[float] = []  # staircase x, ascending
    ys: list[float] = []  # staircase y, strictly descending
    area = 0.0  # area of the staircase in [x, rx] x [y, ry]
    volume = 0.0
    z_prev = None
    for x, y, z in points[order].tolist():
        if z_prev is not None:
            volume += area * (z - z_prev)
        z_prev = z
        k = bisect_left(xs, x)  # xs[:k] < x <= xs[k:]
        if k > 0 and ys[k - 1] <= y:
            continue  # dominated in (x, y) by a point to the left
        if k < len(xs) and xs[k] == x and ys[k] <= y:
            continue  # same x, lower or equal y already there
        # New area: over [x, rx], the strip between y and the staircase height h(x).
        cur_x = x
        cur_h = ys[k - 1] if k > 0 else ry
        j = k
        while j < len(xs) and ys[j] >= y:  # these points are dominated by (x, y)
            area += (xs[j] - cur_x) * (cur_h - y)
            cur_x, cur_h = xs[j], ys[j]
            j += 1
        area += ((xs[j] if j < len(xs) else rx) - cur_x) * (cur_h - y)
        del xs[k:j], ys[k:j]
        xs.insert(k, x)
        ys.insert(k, y)
    return volume + area * (rz - z_prev)


def _hv(points: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume of minimisation ``points`` (n, m) against ``ref`` (m,); rows that do not
    strictly beat ``ref`` in every objective are dropped here."""
    points = points[(points < ref).all(axis=1)]
    n, m = points.shape
    if n == 0:
        return 0.0
    if m == 1:
        return float(ref[0] - points[:, 0].min())
    if m == 2:
        return _hv2d(points, ref)
    if m == 3:
        return _hv3d(points, ref)
    # HSO: slice on the last objective; slab i has depth z[i+1] - z[i] and the (m-1)-D
    # cross-section of the points with last objective <= z[i].
    points = np.unique(points, axis=0)
    points = points[~_dominated_mask(points)]
    order = np.argsort(points[:, -1], kind="stable")
    z = points[order, -1]
    proj = points[order, :-1]
    z_next = np.append(z[1:], ref[-1])
    volume = 0.0
    for i in range(points.shape[0]):
        depth = z_next[i] - z[i]
        if depth > 0:
            volume += _hv(proj[: i + 1], ref[:-1]) * depth
    return float(volume)


def hypervolume(points, reference) -> float:
    """Hypervolume of the minimisation ``points`` (n, m) bounded by ``reference`` (m,).

    Points that are not strictly below ``reference`` in every objective are ignored; an empty
    set (or one with no such point) has hypervolume 0.0.
    """
    reference = _as_vector(reference, m=None, name="reference")
    points = _as_matrix(points, m=reference.shape[0], name="points")
    return _hv(points, reference)


def hypervolume_history(points, reference, *, feasible=None) -> np.ndarray:
    """(n,) float: ``out[i]`` is the hypervolume of ``points[: i + 1]`` (minimisation values),
    counting only rows with ``feasible`` True when a mask is given. Non-decreasing.

    The running Pareto front is kept; the hypervolume is recomputed only when a point joins it.
    """
    reference = _as_vector(reference, m=None, name="reference")
    m = reference.shape[0]
    points = _as_matrix(points, m=m, name="points")
    n = points.shape[0]
    if feasible is None:
        feasible = np.ones(n, dtype=bool)
    else:
        feasible = np.asarray(feasible)
        if feasible.shape != (n,):
            raise ValueError(
                f"feasible must be a 1-D mask with one entry per point ({n}), "
                f"got shape {feasible.shape}"
            )
        if feasible.dtype != bool:
            raise ValueError(f"feasible must be a boolean mask, got dtype {feasible.dtype}")
    out = np.zeros(n)
    front = np.zeros((0, m))  # non-dominated feasible points strictly below the reference
    current = 0.0
    for i in range(n):
        p = points[i]
        if feasible[i] and (p < reference).all() and not (front <= p).all(axis=1).any():
            front = np.vstack([front[~(front >= p).all(axis=1)], p])
            current = _hv(front, reference)
        out[i] = current
    return out
