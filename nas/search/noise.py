"""How sure the search's accuracy figures are: the noise of inherited accuracy on N images.

Each trial's inherited validation accuracy ``p`` on ``n`` images carries the binomial standard
error √(p(1 − p) / n). Two statements are made from it:

- :func:`accuracy_spread` — does the study's accuracy spread exceed noise? A dispersion test over
  the distinct architectures' accuracies: ``X = Σ (p_i − p̄)² / (p̄(1 − p̄) / n)``, χ² with
  ``k − 1`` degrees of freedom if every architecture had the same true accuracy. ``p_value`` ≥ 0.05
  means the spread lies within noise: *this task does not separate these architectures at n
  validation images*. (All architectures are scored on the same images, so their errors are
  positively correlated and the binomial variance overstates the independent part: the test is
  conservative in saying "separates".)
- :func:`compare_to_cheaper` — is a pick's accuracy distinguishable from the next cheaper
  Pareto-optimal architecture's? ``z = (p_pick − p_cheaper) / √(se_pick² + se_cheaper²)``;
  distinguishable when ``z`` ≥ 1.96 (one-sided 2.5 %).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import chi2

from nas.search.scoring import binomial_se

__all__ = ["NOISE_ALPHA", "Z_DISTINGUISH", "accuracy_spread", "compare_to_cheaper", "noise_statement"]

NOISE_ALPHA = 0.05
Z_DISTINGUISH = 1.96


def accuracy_spread(trials, n_val: int) -> dict[str, Any]:
    """The spread of the COMPLETE trials' distinct architectures' accuracies against binomial noise."""
    done = trials[trials["state"] == "COMPLETE"].drop_duplicates("arch_id")
    acc = done["val_acc"].to_numpy(dtype=float)
    acc = acc[np.isfinite(acc)]
    k = len(acc)
    out: dict[str, Any] = {"n_val": int(n_val), "architectures": k, "min_acc": None, "max_acc": None,
                           "spread_points": None, "levels": None, "typical_se_points": None, "dispersion": None,
                           "p_value": None, "separates": None}
    if k == 0:
        return out
    mean = float(acc.mean())
    var0 = mean * (1.0 - mean) / n_val
    out.update(min_acc=float(acc.min()), max_acc=float(acc.max()), spread_points=100.0 * float(acc.max() - acc.min()),
               levels=int(len(np.unique(np.round(acc * n_val)))), typical_se_points=100.0 * binomial_se(mean, n_val))
    if k >= 2 and var0 > 0:
        stat = float(((acc - mean) ** 2).sum() / var0)
        p = float(chi2.sf(stat, k - 1))
        out.update(dispersion=stat, p_value=p, separates=bool(p < NOISE_ALPHA))
    elif k >= 2:  # every architecture at 0 % or 100 %: nothing separates them
        out.update(dispersion=0.0, p_value=1.0, separates=False)
    return out


def noise_statement(spread: dict[str, Any]) -> str:
    """One sentence for the output and the report."""
    if spread.get("separates") is None:
        return "too few scored architectures to say whether accuracy separates them"
    n, k = spread["n_val"], spread["architectures"]
    head = (f"inherited accuracy spans {100 * spread['min_acc']:.2f}-{100 * spread['max_acc']:.2f} % over {k} "
            f"architectures ({spread['levels']} levels); one architecture's standard error is about "
            f"{spread['typical_se_points']:.2f} points at {n} validation images (dispersion test p = "
            f"{spread['p_value']:.3g})")
    if spread["separates"]:
        return f"{head}: the task separates these architectures"
    return f"{head}: this task does not separate these architectures at {n} validation images"


def compare_to_cheaper(pick: dict[str, Any], pareto, n_val: int) -> dict[str, Any] | None:
    """The pick against the Pareto-optimal architecture with the next lower predicted latency
    (``None`` when the pick is the cheapest, or has no architecture)."""
    if pick.get("arch_id") is None or pick.get("predicted") is None or len(pareto) == 0:
        return None
    lat = float(pick["predicted"]["latency_ms"])
    cheaper = pareto[(pareto["pred_latency_ms"] < lat) & (pareto["arch_id"] != pick["arch_id"])]
    if len(cheaper) == 0:
        return None
    row = cheaper.sort_values("pred_latency_ms", kind="stable").iloc[-1]
    p1, p0 = float(pick["predicted"]["val_acc"]), float(row["val_acc"])
    se1, se0 = binomial_se(p1, n_val), binomial_se(p0, n_val)
    se = math.hypot(se1, se0)
    z = (p1 - p0) / se if se > 0 else (0.0 if p1 == p0 else math.copysign(math.inf, p1 - p0))
    return {"arch_id": str(row["arch_id"]), "val_acc": p0, "val_acc_se": se0,
            "pred_latency_ms": float(row["pred_latency_ms"]), "diff_points": 100.0 * (p1 - p0), "z": z,
            "distinguishable": bool(z >= Z_DISTINGUISH)}
