"""Phase 5, the picks (``picks.json``): per budget, candidates measured on the device until one meets it.

The most accurate trial predicted to meet the budget (with ``--accuracy-metric loss``: the one of
lowest validation loss) is **measured** on the device; if the
measurement misses, the predictions of the remaining candidates are scaled by the underestimate
the miss revealed and the most accurate one that still fits is measured next (up to
``measure_candidates``). The pick is the first that meets the budget — or, if none does, the
space's smallest architecture when it meets it, else the candidate that misses by least, with
the miss in the record. When no trial is predicted to meet a budget, the predictors may
overestimate: the trials predicted to miss it by least and the space's smallest architecture are
measured, and the most accurate that meets it when measured is the pick (``predicted_to_meet``
false). A budget none of them meets is infeasible, reported with the smallest latency and memory
found.

Every measurement is taken in the search's runtime (the file ``nas export`` writes, for
TorchScript and ONNX Runtime) and is preceded by a reading of the machine's speed
(:func:`nas.profiling.read_speed`): the record states the pick's predictions at that speed with
their interval (``predicted_now``, level ``--confidence`` or 0.9) and the reading (``speed``), so
a measurement is compared with what the predictors say of this moment. With ``--confidence``, a
candidate is predicted to meet a budget when its interval's upper end does.
"""

from __future__ import annotations

from typing import Any

from nas.profiling import read_speed
from nas.search.budgets import Budget
from nas.search.config import SearchConfig
from nas.search.scoring import ArchScorer
from nas.search.tables import INTERVAL_COLUMNS
from nas.train import evaluate_arch
from predictors import COST_FLOOR
from predictors.predictor import Predictor
from profilers import profile
from search_spaces.arch import ArchConfig

__all__ = ["Measurer", "pick", "smallest_record"]


class Measurer:
    """Measures picks on the target (cached per architecture) and their test accuracy; with the
    search's predictors, reads the machine's speed first and states the predictions at it."""

    def __init__(self, cfg: SearchConfig, supernet, test_data, *, preds: dict[str, Predictor] | None = None,
                 study_scale: float = 1.0) -> None:
        self.cfg, self.supernet, self.test_data = cfg, supernet, test_data
        self.preds, self.study_scale = preds, study_scale
        self.cache: dict[str, dict[str, Any]] = {}

    def __call__(self, arch: ArchConfig) -> dict[str, Any]:
        if arch.arch_id not in self.cache:
            model = self.supernet.extract(arch).eval()
            speed = (read_speed(self.supernet.space, self.cfg.target, self.preds["latency"])
                     if self.preds is not None else None)
            rec = profile(model, device=self.cfg.device, batch_size=self.cfg.batch_size, threads=self.cfg.threads,
                          with_ops=False, seed=self.cfg.seed, runtime=self.cfg.runtime)
            _, test_acc = evaluate_arch(self.supernet, arch, self.test_data, device=self.cfg.device)
            entry: dict[str, Any] = {
                "test_acc": test_acc, "latency_ms": rec.latency.median_ms, "latency_p10_ms": rec.latency.p10_ms,
                "latency_p90_ms": rec.latency.p90_ms, "peak_mem_mb": rec.peak_infer_mem_mb,
                "suspect": rec.suspect, "runtime": self.cfg.runtime}
            if speed is not None:
                entry[SPEED] = {**speed.to_dict(), "study_factor": self.study_scale}
                entry[PREDICTED_NOW] = self._predicted_now(arch, speed.factor, entry)
            self.cache[arch.arch_id] = entry
        return self.cache[arch.arch_id]

    def _predicted_now(self, arch: ArchConfig, factor: float, measured: dict[str, Any]) -> dict[str, Any]:
        """``arch``'s predictions at the speed ``factor``, with their interval and whether the
        measurement fell in it (point predictions only where a reused predictor has no residuals)."""
        level, bs = self.cfg.interval_level, self.cfg.batch_size
        lat, mem = self.preds["latency"], self.preds["memory"]
        out: dict[str, Any] = {"speed_factor": factor, "level": level}
        try:
            lat_iv = lat.predict([arch], bs, level=level).scaled(factor)
            mem_iv = mem.predict([arch], bs, level=level)
        except ValueError as err:  # an artifact saved before intervals were recorded
            out.update(latency_ms=float(lat.predict([arch], bs)[0]) * factor,
                       peak_mem_mb=float(mem.predict([arch], bs)[0]), level=None, note=str(err))
            return out
        out.update(latency_ms=float(lat_iv.median[0]), latency_low_ms=float(lat_iv.low[0]),
                   latency_high_ms=float(lat_iv.high[0]), peak_mem_mb=float(mem_iv.median[0]),
                   peak_mem_low_mb=float(mem_iv.low[0]), peak_mem_high_mb=float(mem_iv.high[0]))
        out["latency_in_interval"] = bool(out["latency_low_ms"] <= measured["latency_ms"] <= out["latency_high_ms"])
        out["peak_mem_in_interval"] = bool(out["peak_mem_low_mb"] <= measured["peak_mem_mb"]
                                           <= out["peak_mem_high_mb"])
        return out


SPEED, PREDICTED_NOW = "speed", "predicted_now"  # what a measurement carries beside its figures


def _predicted(row) -> dict[str, float]:
    se = getattr(row, "val_acc_se", None)  # a trial told before standard errors were recorded has none
    out = {"val_acc": float(row.val_acc), "val_acc_se": None if se is None or se != se else float(se),
           "latency_ms": float(row.pred_latency_ms), "peak_mem_mb": float(row.pred_peak_mem_mb)}
    for col in INTERVAL_COLUMNS:  # a search with --confidence: the study's intervals
        value = getattr(row, col, None)
        if value is not None and value == value:
            out[col.removeprefix("pred_")] = float(value)
    return out


def _budget_costs(row) -> tuple[float, float]:
    """The predicted latency and memory a budget is checked against: the intervals' upper ends in
    a search with ``--confidence``, else the point predictions."""
    hi_lat, hi_mem = getattr(row, "pred_latency_hi_ms", None), getattr(row, "pred_peak_mem_hi_mb", None)
    if hi_lat is not None and hi_mem is not None and hi_lat == hi_lat and hi_mem == hi_mem:
        return float(hi_lat), float(hi_mem)
    return float(row.pred_latency_ms), float(row.pred_peak_mem_mb)


def _picked(budget: Budget, arch: ArchConfig, measured: dict[str, Any], *, trial_number: int | None,
            predicted: dict[str, float], predicted_to_meet: bool, message: str, n_measured: int) -> dict[str, Any]:
    """The record of a budget's pick (``picks.json``): met when its measurement meets the budget."""
    overshoot = budget.overshoot(measured["latency_ms"], measured["peak_mem_mb"])
    met = budget.meets(measured["latency_ms"], measured["peak_mem_mb"])
    extra = {k: measured[k] for k in (SPEED, PREDICTED_NOW) if k in measured}
    figures = {k: v for k, v in measured.items() if k not in extra}
    return {"budget": budget.to_dict(), "status": "met" if met else "missed", "predicted_to_meet": predicted_to_meet,
            "message": message, "arch_id": arch.arch_id, "arch": arch.to_dict(), "describe": arch.describe(),
            "trial_number": trial_number, "predicted": predicted, "measured": figures, **extra,
            "excess_pct": {k: None if v is None else 100.0 * v for k, v in overshoot.items()},
            "candidates_measured": n_measured, "export_dir": f"exports/{arch.arch_id}"}


def _smallest_pick(budget: Budget, smallest: dict[str, Any], measure: Measurer, *, why: str,
                   n_measured: int) -> dict[str, Any] | None:
    """The space's smallest architecture as the pick, if its measurement meets ``budget``."""
    if smallest.get("min_arch") is None:
        return None
    arch = ArchConfig.from_dict(smallest["min_arch"])
    m = measure(arch)  # measured already: cached
    if not budget.meets(m["latency_ms"], m["peak_mem_mb"]):
        return None
    predicted = smallest["min_arch_predicted"]
    return _picked(budget, arch, m, trial_number=None, predicted=predicted,
                   predicted_to_meet=budget.meets(predicted["latency_ms"], predicted["peak_mem_mb"]),
                   message=f"meets {budget.label} when measured: the space's smallest architecture ({why})",
                   n_measured=n_measured + 1)


def _infeasible(budget: Budget, smallest: dict[str, Any], n_measured: int) -> dict[str, Any]:
    msg = (f"no architecture the search found meets {budget.label}; the smallest achievable is "
           f"{smallest['pred_latency_ms']:.4g} ms and {smallest['pred_peak_mem_mb']:.4g} MB (predicted)")
    if smallest.get("measured_latency_ms") is not None:
        msg += (f", {smallest['measured_latency_ms']:.4g} ms and {smallest['measured_peak_mem_mb']:.4g} MB "
                f"measured for the smallest architecture of the space")
    return {"budget": budget.to_dict(), "status": "infeasible", "message": msg, "arch_id": None, "arch": None,
            "trial_number": None, "predicted": None, "measured": None, "excess_pct": None,
            "candidates_measured": n_measured, "export_dir": None}


def pick(budget: Budget, index: int, trials, measure: Measurer, smallest: dict[str, Any],
          n_candidates: int, *, accuracy_metric: str = "acc") -> dict[str, Any]:
    """The most accurate trial meeting ``budget`` when measured (``accuracy_metric`` "loss": the
    lowest validation loss, as the study scored it), trying at most ``n_candidates``."""
    done = trials[(trials["state"] == "COMPLETE") & (trials[f"feasible_b{index}"] == True)]  # noqa: E712
    if len(done) == 0:
        return _pick_unpredicted(budget, trials, measure, smallest, n_candidates)
    if accuracy_metric == "loss":  # the study scored accuracy by validation loss: so do the picks
        ranked = done.sort_values(["val_loss", "pred_latency_ms", "pred_peak_mem_mb"], ascending=[True, True, True])
    else:
        ranked = done.sort_values(["val_acc", "pred_latency_ms", "pred_peak_mem_mb"], ascending=[False, True, True])
    candidates = list(ranked.drop_duplicates("arch_id").itertuples())
    tried = []
    scale = {"latency": 1.0, "memory": 1.0}  # measured / predicted, the worst seen on a miss
    while candidates and len(tried) < n_candidates:
        # the most accurate candidate that still meets the budget once its predictions are
        # scaled by the underestimate the misses so far revealed (none: the next in line)
        row = next((r for r in candidates if budget.meets(_budget_costs(r)[0] * scale["latency"],
                                                          _budget_costs(r)[1] * scale["memory"])), candidates[0])
        candidates.remove(row)
        arch = ArchConfig.from_json(row.arch_json)
        m = measure(arch)
        tried.append((row, arch, m))
        if budget.meets(m["latency_ms"], m["peak_mem_mb"]):
            break
        for name, got, pred in (("latency", m["latency_ms"], _budget_costs(row)[0]),
                                ("memory", m["peak_mem_mb"], _budget_costs(row)[1])):
            if pred > COST_FLOOR:  # a clamped prediction says nothing about the predictor's scale
                scale[name] = max(scale[name], got / pred)
    row, arch, m = tried[-1]
    if budget.meets(m["latency_ms"], m["peak_mem_mb"]):  # the loop stops at the first that meets it
        return _picked(budget, arch, m, trial_number=int(row.number), predicted=_predicted(row),
                       predicted_to_meet=True, message=f"meets {budget.label} when measured",
                       n_measured=len(tried))
    fallback = _smallest_pick(budget, smallest, measure, n_measured=len(tried),
                              why=f"the {len(tried)} candidate(s) predicted to meet it miss it when measured")
    if fallback is not None:
        return fallback
    row, arch, m = min(tried, key=lambda t: budget.excess(t[2]["latency_ms"], t[2]["peak_mem_mb"]))
    missed = _picked(budget, arch, m, trial_number=int(row.number), predicted=_predicted(row),
                     predicted_to_meet=True, message="", n_measured=len(tried))
    over = ", ".join(f"{k} by {v:.1f} %" for k, v in missed["excess_pct"].items() if v is not None and v > 0)
    missed["message"] = (f"predicted to meet {budget.label} but misses it when measured ({over}); "
                         f"{len(tried)} candidate(s) measured")
    return missed


def _pick_unpredicted(budget: Budget, trials, measure: Measurer, smallest: dict[str, Any],
                      n_candidates: int) -> dict[str, Any]:
    """No trial is predicted to meet ``budget``, yet the predictors may overestimate. If the space's
    smallest architecture (measured already) misses it too, it is infeasible. Else the
    ``n_candidates`` trials predicted to miss it by least are measured as well, and the most
    accurate of them and the smallest that meets it when measured is the pick."""
    measured_min = (smallest.get("measured_latency_ms"), smallest.get("measured_peak_mem_mb"))
    if None not in measured_min and not budget.meets(*measured_min):
        return _infeasible(budget, smallest, n_measured=1)
    done = trials[trials["state"] == "COMPLETE"]
    excess = [budget.excess(lat, mem) for lat, mem in zip(done["pred_latency_ms"], done["pred_peak_mem_mb"])]
    near = (done.assign(_excess=excess).sort_values(["_excess", "val_acc"], ascending=[True, False])
            .drop_duplicates("arch_id").head(n_candidates))
    tried = [(ArchConfig.from_json(row.arch_json), int(row.number), _predicted(row)) for row in near.itertuples()]
    if smallest.get("min_arch") is not None and smallest["min_arch_id"] not in set(near["arch_id"]):
        tried.append((ArchConfig.from_dict(smallest["min_arch"]), None, smallest["min_arch_predicted"]))
    measured = [(arch, measure(arch), number, predicted) for arch, number, predicted in tried]
    met = [t for t in measured if budget.meets(t[1]["latency_ms"], t[1]["peak_mem_mb"])]
    if not met:
        return _infeasible(budget, smallest, n_measured=len(measured))
    arch, m, number, predicted = max(met, key=lambda t: (t[3]["val_acc"], -t[1]["latency_ms"]))
    return _picked(budget, arch, m, trial_number=number, predicted=predicted, predicted_to_meet=False,
                   message=(f"meets {budget.label} when measured, although no trial was predicted to (the "
                            f"predictors overestimate here); {len(measured)} candidate(s) measured"),
                   n_measured=len(measured))


def smallest_record(trials, supernet, scorer: ArchScorer, measure: Measurer) -> dict[str, Any]:
    done = trials[trials["state"] == "COMPLETE"]
    min_arch = supernet.space.min_arch()
    s = scorer.score([min_arch])[0]
    m = measure(min_arch)
    return {"pred_latency_ms": float(min(done["pred_latency_ms"].min(), s.latency_ms)),
            "pred_peak_mem_mb": float(min(done["pred_peak_mem_mb"].min(), s.peak_mem_mb)),
            "measured_latency_ms": m["latency_ms"], "measured_peak_mem_mb": m["peak_mem_mb"],
            "min_arch_id": min_arch.arch_id, "min_arch": min_arch.to_dict(),
            "min_arch_predicted": {"val_acc": float(s.val_acc), "val_acc_se": float(s.val_acc_se),
                                   "latency_ms": float(s.latency_ms),
                                   "peak_mem_mb": float(s.peak_mem_mb)}}

