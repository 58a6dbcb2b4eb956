"""Tests for nas.pareto: dominance against an O(n^2) double loop, hypervolume against exact cell
counting, inclusion-exclusion and hand-computed staircases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nas.pareto import (
    DIRECTIONS,
    hypervolume,
    hypervolume_history,
    normalize,
    pareto_mask,
    to_minimization,
)

# ---------------------------------------------------------------------------- references


def _brute_pareto_mask(values, directions) -> np.ndarray:
    """Double loop over pairs, with dominance written out for mixed directions."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            a, b = values[j], values[i]  # does a dominate b?
            no_worse = all(
                (a[k] <= b[k]) if d == "minimize" else (a[k] >= b[k])
                for k, d in enumerate(directions)
            )
            better = any(
                (a[k] < b[k]) if d == "minimize" else (a[k] > b[k])
                for k, d in enumerate(directions)
            )
            if no_worse and better:
                keep[i] = False
                break
    return keep


def _brute_hv_cells(points, reference) -> float:
    """Exact hypervolume by cell counting on the grid cut by every coordinate of every point:
    each cell lies wholly inside or outside the dominated region, and a cell is inside iff some
    point is <= its lower corner. With integer points and reference this is unit-cube counting."""
    points = np.asarray(points, dtype=float).reshape(-1, len(reference))
    reference = np.asarray(reference, dtype=float)
    m = len(reference)
    cuts = []
    for k in range(m):
        c = np.unique(np.append(points[:, k], reference[k]))
        cuts.append(c[c <= reference[k]])
    lowers = np.stack(np.meshgrid(*[c[:-1] for c in cuts], indexing="ij"), axis=-1).reshape(-1, m)
    sizes = np.stack(np.meshgrid(*[np.diff(c) for c in cuts], indexing="ij"), axis=-1)
    sizes = sizes.reshape(-1, m).prod(axis=1)
    if len(points) == 0 or len(lowers) == 0:
        return 0.0
    inside = (points[None, :, :] <= lowers[:, None, :]).all(axis=-1).any(axis=1)
    return float(sizes[inside].sum())


def _unit_cube_count(points, reference) -> int:
    """Count the unit cells [c, c+1]^m with 0 <= c < reference that some integer point is <=."""
    points = np.asarray(points, dtype=int)
    count = 0
    for corner in itertools.product(*[range(r) for r in reference]):
        if any(all(p[k] <= corner[k] for k in range(len(reference))) for p in points):
            count += 1
    return count


def _inclusion_exclusion(points, reference) -> float:
    """Volume of the union of boxes [p, r]: sum over non-empty subsets S of
    (-1)^(|S|+1) * prod_k max(0, r_k - max_{p in S} p_k)."""
    points = np.asarray(points, dtype=float)
    reference = np.asarray(reference, dtype=float)
    total = 0.0
    for size in range(1, len(points) + 1):
        for subset in itertools.combinations(range(len(points)), size):
            corner = points[list(subset)].max(axis=0)
            total += (-1) ** (size + 1) * np.prod(np.maximum(reference - corner, 0.0))
    return total


# ---------------------------------------------------------------------------- dominance


def test_directions_constant():
    assert DIRECTIONS == ("minimize", "maximize")


def test_to_minimization_negates_maximized_columns():
    values = np.array([[1.0, 2.0, -3.0], [4.0, -5.0, 6.0]])
    out = to_minimization(values, ["minimize", "maximize", "maximize"])
    np.testing.assert_array_equal(out, [[1.0, -2.0, 3.0], [4.0, 5.0, -6.0]])
    np.testing.assert_array_equal(values[0], [1.0, 2.0, -3.0])  # input untouched


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    "directions",
    [
        ("minimize", "minimize"),
        ("maximize", "minimize"),
        ("minimize", "maximize", "maximize"),
        ("maximize", "minimize", "maximize", "minimize"),
    ],
)
def test_pareto_mask_matches_double_loop(seed, directions):
    rng = np.random.default_rng(seed)
    m = len(directions)
    values = rng.integers(0, 4, size=(40, m)).astype(float)  # small range: many ties
    values = np.vstack([values, values[:5]])  # and exact duplicates
    values = values[rng.permutation(len(values))]
    got = pareto_mask(values, directions)
    assert got.dtype == bool and got.shape == (len(values),)
    np.testing.assert_array_equal(got, _brute_pareto_mask(values, directions))


@pytest.mark.parametrize("seed", range(3))
def test_pareto_mask_continuous_values(seed):
    rng = np.random.default_rng(100 + seed)
    values = rng.normal(size=(200, 3))
    directions = ("maximize", "minimize", "maximize")
    np.testing.assert_array_equal(
        pareto_mask(values, directions), _brute_pareto_mask(values, directions)
    )


def test_pareto_mask_keeps_exact_duplicates_and_ties():
    values = [[1.0, 5.0], [1.0, 5.0], [1.0, 6.0], [2.0, 4.0], [3.0, 4.0], [0.5, 9.0]]
    got = pareto_mask(values, ("minimize", "minimize"))
    # (1,6) is beaten by (1,5) on one objective only; (3,4) by (2,4) likewise.
    np.testing.assert_array_equal(got, [True, True, False, True, False, True])


def test_pareto_mask_maximize_flips_front():
    values = [[1.0, 1.0], [2.0, 2.0]]
    np.testing.assert_array_equal(pareto_mask(values, ("minimize", "minimize")), [True, False])
    np.testing.assert_array_equal(pareto_mask(values, ("maximize", "maximize")), [False, True])
    np.testing.assert_array_equal(pareto_mask(values, ("minimize", "maximize")), [True, True])


def test_pareto_mask_empty():
    for empty in ([], np.zeros((0, 2))):
        got = pareto_mask(empty, ("minimize", "maximize"))
        assert got.shape == (0,) and got.dtype == bool


# ---------------------------------------------------------------------------- normalize


def test_normalize_matches_formula_and_constant_column_is_zero():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(10, 3))
    points[:, 2] = 7.0
    lower = np.array([-1.0, -2.0, 7.0])
    upper = np.array([3.0, 0.5, 7.0])
    got = normalize(points, lower, upper)
    np.testing.assert_allclose(got[:, 0], (points[:, 0] + 1.0) / 4.0)
    np.testing.assert_allclose(got[:, 1], (points[:, 1] + 2.0) / 2.5)
    np.testing.assert_array_equal(got[:, 2], 0.0)
    assert np.isfinite(got).all()


def test_normalize_bad_input():
    with pytest.raises(ValueError, match="upper has length 2"):
        normalize([[1.0, 2.0, 3.0]], [0, 0, 0], [1, 1])
    with pytest.raises(ValueError, match="3 objectives are expected"):
        normalize([[1.0, 2.0]], [0, 0, 0], [1, 1, 1])
    with pytest.raises(ValueError, match="column 1 has lower=2.0 > upper=1.0"):
        normalize([[1.0, 2.0]], [0, 2], [1, 1])
    with pytest.raises(ValueError, match="lower must be finite"):
        normalize([[1.0, 2.0]], [0, np.nan], [1, 1])


# ---------------------------------------------------------------------------- hypervolume


def test_hypervolume_2d_staircase():
    # Columns of the staircase under ref (4, 4): x in [1,2) height 1, [2,3) height 2, [3,4)
    # height 3 -> 1 + 2 + 3 = 6.
    assert hypervolume([(1, 3), (2, 2), (3, 1)], (4, 4)) == 6.0
    # One box: (4 - 1.5) * (4 - 0.5).
    assert hypervolume([(1.5, 0.5)], (4, 4)) == pytest.approx(2.5 * 3.5)
    # Boxes [1,4]x[3,4] (area 3) and [2,4]x[1,4] (area 6) overlap in [2,4]x[3,4] (area 2).
    assert hypervolume([(1, 3), (2, 1)], (4, 4)) == pytest.approx(3 * 1 + 2 * 3 - 2 * 1)


def test_hypervolume_1d():
    assert hypervolume([[3.0], [1.5], [2.0]], [4.0]) == 2.5
    assert hypervolume([[5.0]], [4.0]) == 0.0


def test_hypervolume_empty_is_zero():
    assert hypervolume([], [1.0, 1.0, 1.0]) == 0.0
    assert hypervolume(np.zeros((0, 2)), [1.0, 1.0]) == 0.0
    assert hypervolume([[2.0, 0.0]], [1.0, 1.0]) == 0.0  # nothing beats the reference


@pytest.mark.parametrize("m", [2, 3, 4])
@pytest.mark.parametrize("seed", range(5))
def test_hypervolume_equals_unit_cube_count(m, seed):
    rng = np.random.default_rng(seed)
    reference = [6] * m
    n = int(rng.integers(1, 12))
    points = rng.integers(0, 7, size=(n, m))  # 6 in a coordinate: on the reference, ignored
    assert hypervolume(points, reference) == _unit_cube_count(points, reference)


@pytest.mark.parametrize("seed", range(5))
def test_hypervolume_3d_integer_many_ties(seed):
    rng = np.random.default_rng(10 + seed)
    points = rng.integers(0, 6, size=(60, 3))
    points = np.vstack([points, points[:10]])  # duplicates
    reference = [6, 5, 7]
    assert hypervolume(points, reference) == _unit_cube_count(points, reference)


@pytest.mark.parametrize("m", [2, 3, 4])
@pytest.mark.parametrize("seed", range(4))
def test_hypervolume_random_floats_match_cell_grid(m, seed):
    rng = np.random.default_rng(20 + seed)
    n = {2: 60, 3: 30, 4: 12}[m]
    points = rng.random((n, m)) * 1.2  # some points fall outside the reference
    reference = np.full(m, 1.0)
    assert hypervolume(points, reference) == pytest.approx(_brute_hv_cells(points, reference))


@pytest.mark.parametrize("m", [3, 4, 5])
@pytest.mark.parametrize("n_boxes", [2, 3])
@pytest.mark.parametrize("seed", range(3))
def test_hypervolume_inclusion_exclusion(m, n_boxes, seed):
    rng = np.random.default_rng(30 + seed)
    points = rng.random((n_boxes, m))
    reference = rng.random(m) + 1.0
    assert hypervolume(points, reference) == pytest.approx(_inclusion_exclusion(points, reference))


@pytest.mark.parametrize("seed", range(3))
def test_hypervolume_3d_front_matches_inclusion_exclusion(seed):
    # A larger mutually non-dominated set (on a plane), where every point matters.
    rng = np.random.default_rng(40 + seed)
    points = rng.dirichlet([1.0, 1.0, 1.0], size=9)
    assert pareto_mask(points, ["minimize"] * 3).all()
    reference = [1.0, 1.0, 1.0]
    assert hypervolume(points, reference) == pytest.approx(_inclusion_exclusion(points, reference))


# ---------------------------------------------------------------------------- invariances


@pytest.mark.parametrize("m", [2, 3, 4])
def test_hypervolume_invariances(m):
    rng = np.random.default_rng(m)
    points = rng.random((25, m))
    reference = np.full(m, 1.1)
    base = hypervolume(points, reference)
    assert base > 0

    # A point dominated by an existing one adds nothing.
    dominated = points[0] + 0.5 * (reference - points[0])
    assert hypervolume(np.vstack([points, dominated]), reference) == pytest.approx(base)

    # A point beyond the reference in one objective adds nothing, however good elsewhere.
    outside = np.zeros(m)
    outside[-1] = 1.2
    assert hypervolume(np.vstack([points, outside]), reference) == pytest.approx(base)
    on_boundary = np.zeros(m)
    on_boundary[0] = 1.1
    assert hypervolume(np.vstack([points, on_boundary]), reference) == pytest.approx(base)

    # A new point that is better somewhere does add volume.
    assert hypervolume(np.vstack([points, np.full(m, 0.01)]), reference) > base

    # Order of the points does not matter.
    perm = rng.permutation(len(points))
    assert hypervolume(points[perm], reference) == pytest.approx(base)

    # Scaling one axis (points and reference) by c scales the volume by c.
    for axis in range(m):
        scale = np.ones(m)
        scale[axis] = 3.5
        assert hypervolume(points * scale, reference * scale) == pytest.approx(3.5 * base)

    # Translating everything leaves it unchanged.
    assert hypervolume(points - 2.0, reference - 2.0) == pytest.approx(base)


# ---------------------------------------------------------------------------- history


@pytest.mark.parametrize("m", [2, 3, 4])
def test_hypervolume_history_matches_prefix_recomputation(m):
    rng = np.random.default_rng(50 + m)
    n = {2: 40, 3: 30, 4: 12}[m]
    points = rng.random((n, m)) * 1.1
    reference = np.ones(m)
    history = hypervolume_history(points, reference)
    assert history.shape == (n,)
    assert (np.diff(history) >= 0).all()
    expected = [_brute_hv_cells(points[: i + 1], reference) for i in range(n)]
    np.testing.assert_allclose(history, expected, rtol=1e-12, atol=1e-12)
    assert history[-1] == pytest.approx(hypervolume(points, reference))


def test_hypervolume_history_feasible_mask():
    rng = np.random.default_rng(7)
    n = 50
    points = rng.random((n, 3))
    points[10] = 0.0  # infeasible and better than everything: must be ignored
    feasible = rng.random(n) < 0.6
    feasible[10] = False
    reference = np.ones(3)
    history = hypervolume_history(points, reference, feasible=feasible)
    assert (np.diff(history) >= 0).all()
    expected = [hypervolume(points[: i + 1][feasible[: i + 1]], reference) for i in range(n)]
    np.testing.assert_allclose(history, expected, rtol=1e-12, atol=1e-12)
    assert history[-1] == pytest.approx(hypervolume(points[feasible], reference))
    # Infeasible points contribute nothing: the value is flat at every infeasible step ...
    steps = np.diff(np.concatenate([[0.0], history]))
    assert (steps[~feasible] == 0).all()
    # ... and the mask matters here: without it point 10 fills the whole unit cube.
    assert hypervolume_history(points, reference)[-1] == pytest.approx(1.0)
    assert history[-1] < 1.0


def test_hypervolume_history_empty_and_all_infeasible():
    assert hypervolume_history(np.zeros((0, 3)), np.ones(3)).shape == (0,)
    points = np.full((4, 2), 0.5)
    np.testing.assert_array_equal(
        hypervolume_history(points, np.ones(2), feasible=np.zeros(4, dtype=bool)), 0.0
    )


# ---------------------------------------------------------------------------- bad input


def test_bad_directions():
    unknown = r"unknown direction 'maximise' for objective 1; valid directions are .*'minimize'"
    with pytest.raises(ValueError, match=unknown):
        to_minimization([[1.0, 2.0]], ["minimize", "maximise"])
    with pytest.raises(ValueError, match="single string"):
        pareto_mask([[1.0]], "minimize")
    with pytest.raises(ValueError, match="directions is empty"):
        to_minimization([[1.0]], [])


def test_bad_values_shape():
    with pytest.raises(ValueError, match="3 columns but 2 objectives"):
        pareto_mask([[1.0, 2.0, 3.0]], ["minimize", "minimize"])
    with pytest.raises(ValueError, match=r"2-D array.*got shape \(3,\)"):
        to_minimization([1.0, 2.0, 3.0], ["minimize"])
    with pytest.raises(ValueError, match=r"2-D array.*got shape \(1, 2, 2\)"):
        to_minimization(np.zeros((1, 2, 2)), ["minimize", "minimize"])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_named_by_position(bad):
    values = np.ones((4, 3))
    values[2, 1] = bad
    with pytest.raises(ValueError, match="values must be finite.*row 2, column 1"):
        to_minimization(values, ["minimize"] * 3)
    with pytest.raises(ValueError, match="values must be finite.*row 2, column 1"):
        pareto_mask(values, ["maximize"] * 3)
    with pytest.raises(ValueError, match="points must be finite.*row 2, column 1"):
        hypervolume(values, [2.0, 2.0, 2.0])
    with pytest.raises(ValueError, match="points must be finite.*row 2, column 1"):
        hypervolume_history(values, [2.0, 2.0, 2.0])


def test_hypervolume_bad_reference():
    points = np.zeros((3, 3))
    with pytest.raises(ValueError, match="3 columns but 2 objectives"):
        hypervolume(points, [1.0, 1.0])
    with pytest.raises(ValueError, match=r"reference must be a 1-D array, got shape \(1, 3\)"):
        hypervolume(points, [[1.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match="reference must be finite.*index 2"):
        hypervolume(points, [1.0, 1.0, np.nan])
    with pytest.raises(ValueError, match="reference is empty"):
        hypervolume([], [])
    with pytest.raises(ValueError, match="3 columns but 4 objectives"):
        hypervolume_history(points, [1.0] * 4)


def test_hypervolume_history_bad_mask():
    points = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"one entry per point \(3\), got shape \(2,\)"):
        hypervolume_history(points, [1.0, 1.0], feasible=[True, False])
    with pytest.raises(ValueError, match="boolean mask"):
        hypervolume_history(points, [1.0, 1.0], feasible=[1, 0, 1])
