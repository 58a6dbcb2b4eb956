"""Tests for ``nas.report``: a run directory rendered into plots and a report, from files only.

Every test writes its own synthetic run directory (40 random trials plus failed and running
ones, three budgets whose picks are met, infeasible and missed). References are written out
here: the normalisation ``(p − min) / (max − min)`` and ``1 − val_acc`` computed by hand and
passed to ``nas.pareto.hypervolume``, block counts taken from the ``ArchConfig``, the expected
figures typed in as strings (4 significant digits for ms and MB, two decimals for %).
"""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pandas as pd
import pytest

from nas.pareto import hypervolume, pareto_mask
from nas.report import (
    REPORT_FILES,
    arch_html,
    arch_markdown,
    hypervolume_plot,
    hypervolume_series,
    pareto_plot,
    read_run,
    write_report,
)
from search_spaces.arch import ArchConfig

OBJECTIVES = ["val_acc", "latency_ms", "peak_mem_mb"]
BUDGETS = [
    {"latency_ms": 2.0, "memory_mb": 40.0, "source": "user", "label": "latency ≤ 2 ms, memory ≤ 40 MB"},
    {"latency_ms": 0.1, "memory_mb": 1.0, "source": "user", "label": "latency ≤ 0.1 ms, memory ≤ 1 MB"},
    {"latency_ms": 3.0, "memory_mb": None, "source": "auto", "label": "latency ≤ 3 ms"},
]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def random_arch(rng: random.Random) -> ArchConfig:
    return ArchConfig.from_dict({
        "space": "digits-s",
        "stages": [{"width": w, "blocks": [{"kernel_size": rng.choice([3, 5, 7]), "mlp_ratio": rng.choice([2, 3, 4]),
                                            "order": rng.choice([1, 2])} for _ in range(rng.randint(1, 3))]}
                   for w in (8, 16, 24, 32)],
    })


def excess(budget: dict, latency_ms: float, memory_mb: float) -> float:
    out = []
    if budget["latency_ms"] is not None:
        out.append(latency_ms / budget["latency_ms"] - 1.0)
    if budget["memory_mb"] is not None:
        out.append(memory_mb / budget["memory_mb"] - 1.0)
    return max(out)


def trial_row(number: int, arch: ArchConfig, val_acc: float, latency_ms: float, memory_mb: float) -> dict:
    row = {"number": number, "state": "COMPLETE", "val_acc": val_acc, "pred_latency_ms": latency_ms,
           "pred_peak_mem_mb": memory_mb}
    meets = [excess(b, latency_ms, memory_mb) <= 0 for b in BUDGETS]
    row["constraint"] = min(excess(b, latency_ms, memory_mb) for b in BUDGETS)
    row["feasible"] = any(meets)
    for k, m in enumerate(meets):
        row[f"feasible_b{k}"] = m
    row.update(arch_id=arch.arch_id, n_quadratic=arch.n_quadratic, n_blocks=sum(arch.depths),
               depths="-".join(map(str, arch.depths)), widths="-".join(map(str, arch.widths)),
               arch_json=arch.to_json(), duration_s=0.25)
    return row


def make_run(tmp_path, *, n_trials: int = 40, seed: int = 0, config_extra: dict | None = None):
    """A synthetic run directory; returns (run_dir, {"met": arch, "missed": arch})."""
    rng = random.Random(seed)
    rows = []
    for i in range(n_trials):
        arch = random_arch(rng)
        rows.append(trial_row(i, arch, rng.uniform(0.5, 0.93), rng.uniform(0.5, 5.0), rng.uniform(5.0, 60.0)))
    # The met pick: a fixed, clearly best trial within budget 0 (figures chosen to format exactly).
    met_arch = random_arch(rng)
    rows[7] = trial_row(7, met_arch, 0.9346, 1.654, 28.77)
    missed_arch = ArchConfig.from_dict(json.loads(rows[11]["arch_json"]))
    rows[11] = trial_row(11, missed_arch, 0.9012, 2.875, 45.5)
    empty = {k: "" for k in rows[0]}
    rows.append({**empty, "number": n_trials, "state": "FAIL"})
    rows.append({**empty, "number": n_trials + 1, "state": "FAIL"})
    rows.append({**empty, "number": n_trials + 2, "state": "RUNNING"})
    trials = pd.DataFrame(rows)
    run = tmp_path / "run"
    run.mkdir()
    trials.to_csv(run / "trials.csv", index=False)
    done = trials[trials["state"] == "COMPLETE"]
    values = done[["val_acc", "pred_latency_ms", "pred_peak_mem_mb"]].to_numpy(float)
    done[pareto_mask(values, ("maximize", "minimize", "minimize"))].to_csv(run / "pareto.csv", index=False)
    config = {"space": "digits-s", "dataset": "digits", "device": "cpu", "device_name": "AMD EPYC 7B13",
              "fingerprint_id": "3bf3dad91145", "batch_size": 1, "sampler": "nsga2", "trials": n_trials + 3,
              "seed": 0, "objectives": OBJECTIVES, "budgets": BUDGETS, "study_name": "digits-s-cpu-test",
              "storage": "sqlite:///study.db", **(config_extra or {})}
    (run / "config.json").write_text(json.dumps(config))
    picks = {"picks": [
        {"budget": BUDGETS[0], "status": "met", "message": "meets the budget as measured",
         "arch_id": met_arch.arch_id, "arch": met_arch.to_dict(), "trial_number": 7,
         "predicted": {"val_acc": 0.9346, "latency_ms": 1.654, "peak_mem_mb": 28.77},
         "measured": {"test_acc": 0.9123, "latency_ms": 1.876, "latency_p10_ms": 1.802, "latency_p90_ms": 1.953,
                      "peak_mem_mb": 31.25, "suspect": False},
         "excess_pct": {"latency": -6.2, "memory": -21.875}, "candidates_measured": 1,
         "export_dir": f"exports/{met_arch.arch_id}"},
        {"budget": BUDGETS[1], "status": "infeasible", "message": "no trial meets this budget",
         "arch_id": None, "arch": None, "trial_number": None, "predicted": None, "measured": None,
         "excess_pct": None, "candidates_measured": 0, "export_dir": None},
        {"budget": BUDGETS[2], "status": "missed", "message": "measured latency over budget",
         "arch_id": missed_arch.arch_id, "arch": missed_arch.to_dict(), "trial_number": 11,
         "predicted": {"val_acc": 0.9012, "latency_ms": 2.875, "peak_mem_mb": 45.5},
         "measured": {"test_acc": 0.8871, "latency_ms": 3.3, "latency_p10_ms": 3.21, "latency_p90_ms": 3.42,
                      "peak_mem_mb": 47.0, "suspect": True},
         "excess_pct": {"latency": 10.0, "memory": None}, "candidates_measured": 3,
         "export_dir": f"exports/{missed_arch.arch_id}"},
    ], "smallest": {"pred_latency_ms": 0.4321, "pred_peak_mem_mb": 3.125, "measured_latency_ms": 0.5012,
                    "measured_peak_mem_mb": 3.5}}
    (run / "picks.json").write_text(json.dumps(picks))
    (run / "summary.json").write_text(json.dumps({"phases": {"supernet_s": 120.5, "profiling_s": 33.0,
                                                             "search_s": 12.25}, "trials_per_s": 3.5,
                                                  "minutes": 2.7791666666, "all_budgets_met": False}))
    return run, {"met": met_arch, "missed": missed_arch}


def budget_sections(text: str) -> list[str]:
    return text.split('<section class="budget"')[1:]


# ---------------------------------------------------------------------------- write_report


def test_write_report_files_and_html_content(tmp_path):
    run, archs = make_run(tmp_path)
    paths = write_report(run)
    assert sorted(p.name for p in paths.values()) == sorted(REPORT_FILES)
    for name in REPORT_FILES:
        assert (run / name).is_file() and (run / name).stat().st_size > 0
    for name in ("pareto.png", "hypervolume.png"):
        assert (run / name).read_bytes()[:8] == PNG_MAGIC
    assert not [p.name for p in run.iterdir() if ".tmp" in p.name]  # temp files moved into place

    text = (run / "report.html").read_text(encoding="utf-8")
    # Self-contained: both plots inline, nothing fetched from elsewhere.
    assert text.count("data:image/png;base64,") == 2
    assert 'src="http' not in text and 'href="http' not in text and "<link" not in text and "<script" not in text
    assert "pareto.png" not in text and "hypervolume.png" not in text
    # Summary of the run.
    assert "digits-s" in text and "AMD EPYC 7B13" in text and "nsga2" in text
    assert re.search(r"<th>trials completed</th><td>40</td>", text)
    assert re.search(r"<th>trials failed</th><td>2</td>", text)
    assert "120.5 s" in text and "12.25 s" in text  # summary.json phases
    assert "<th>minutes</th><td>2.779</td>" in text and "<th>all budgets met</th><td>False</td>" in text
    # One table per budget, in budget order.
    assert text.count('class="budget-table"') == len(BUDGETS)
    met, infeasible, missed = budget_sections(text)
    assert "latency ≤ 2 ms, memory ≤ 40 MB" in met
    assert "latency ≤ 0.1 ms" in infeasible and "latency ≤ 3 ms" in missed
    # Met: predicted and measured side by side, formatted.
    assert archs["met"].arch_id in met
    assert re.search(r"<td>93\.46 %</td><td>91\.23 %</td>", met)
    assert re.search(r"<td>1\.654</td><td>1\.876 \(p10–p90 1\.802–1\.953\)</td><td>-6\.2 %</td>", met)
    assert re.search(r"<td>28\.77</td><td>31\.25</td><td>-21\.9 %</td>", met)
    assert f"exports/{archs['met'].arch_id}" in met
    # Infeasible: the sentence with the smallest achievable latency and memory; no architecture.
    assert "no architecture meets this budget; the smallest achievable is 0.4321 ms and 3.125 MB" in infeasible
    assert "measured 0.5012 ms and 3.5 MB" in infeasible
    assert 'class="qn-arch"' not in infeasible
    # Missed: named, with the overshoot.
    assert archs["missed"].arch_id in missed
    assert "Missed:" in missed and "latency +10.0 %" in missed and "3 candidates" in missed
    assert "flagged suspect" in missed and "flagged suspect" not in met
    assert re.search(r"<td>2\.875</td><td>3\.3 \(p10–p90 3\.21–3\.42\)</td><td>\+10\.0 %</td>", missed)
    # The chosen architectures are drawn.
    assert met.count('class="qn-arch"') == 1 and missed.count('class="qn-arch"') == 1
    # The Pareto table lists Pareto-optimal trials; the met pick (best accuracy) is its first row.
    pareto_table = text.split('class="pareto-table"')[1]
    assert re.search(rf"<td>7</td><td>{archs['met'].arch_id}</td><td>93\.46 %</td>", pareto_table)


def test_write_report_markdown(tmp_path):
    run, archs = make_run(tmp_path)
    write_report(run)
    md = (run / "report.md").read_text(encoding="utf-8")
    headings = re.findall(r"^### Budget (\d): (.*) \(", md, flags=re.M)
    assert [(int(n), label) for n, label in headings] == [(i + 1, b["label"]) for i, b in enumerate(BUDGETS)]
    assert archs["met"].arch_id in md and archs["missed"].arch_id in md
    assert "![accuracy against predicted latency and memory](pareto.png)" in md
    assert "![hypervolume history](hypervolume.png)" in md
    assert "data:image" not in md
    assert "the smallest achievable is 0.4321 ms and 3.125 MB" in md
    assert "| latency (ms) | ≤ 2 ms | 1.654 | 1.876 (p10–p90 1.802–1.953) | -6.2 % |" in md
    assert arch_markdown(archs["met"].to_dict()) in md


def test_write_report_overwrites(tmp_path):
    run, _ = make_run(tmp_path)
    write_report(run)
    picks = json.loads((run / "picks.json").read_text())
    picks["smallest"]["pred_latency_ms"] = 0.7777
    (run / "picks.json").write_text(json.dumps(picks))
    write_report(run)
    text = (run / "report.html").read_text(encoding="utf-8")
    assert "0.7777 ms" in text and "0.4321 ms" not in text
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []


def test_html_and_markdown_escape_config_text(tmp_path):
    run, _ = make_run(tmp_path, config_extra={"study_name": "<script>alert(1)</script>", "note": "a|b <b>x</b>"})
    write_report(run)
    text = (run / "report.html").read_text(encoding="utf-8")
    assert "<script" not in text and "<b>x</b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "&lt;b&gt;x&lt;/b&gt;" in text
    md = (run / "report.md").read_text(encoding="utf-8")
    assert "<script" not in md and "&lt;script&gt;" in md
    assert "a\\|b" in md  # a pipe does not split a Markdown table cell


# ---------------------------------------------------------------------------- hypervolume


def direct_hypervolume(trials: pd.DataFrame, objectives: list[str]) -> float:
    """Hypervolume of the feasible COMPLETE trials, normalisation and reference written out."""
    done = trials[trials["state"] == "COMPLETE"]
    cols = {"val_acc": 1.0 - done["val_acc"].astype(float), "latency_ms": done["pred_latency_ms"].astype(float),
            "peak_mem_mb": done["pred_peak_mem_mb"].astype(float)}
    points = np.stack([cols[o].to_numpy() for o in objectives], axis=1)
    lower, upper = points.min(axis=0), points.max(axis=0)
    scaled = (points - lower) / (upper - lower)
    feasible = done["feasible"].to_numpy(dtype=bool)
    return hypervolume(scaled[feasible], [1.1] * len(objectives))


@pytest.mark.parametrize("objectives", [OBJECTIVES, ["val_acc", "latency_ms"], ["latency_ms", "peak_mem_mb"],
                                        ["val_acc"]])
def test_hypervolume_series_matches_direct(tmp_path, objectives):
    run, _ = make_run(tmp_path)
    trials = read_run(run).trials
    series = hypervolume_series(trials, objectives)
    assert len(series) == 40  # one per COMPLETE trial; FAIL and RUNNING rows have no metrics
    assert np.all(np.diff(series) >= 0)
    assert series[-1] > 0
    assert series[-1] == pytest.approx(direct_hypervolume(trials, objectives), rel=1e-12)
    if "peak_mem_mb" in objectives:  # low-memory, slow trials are infeasible yet on the front
        assert series[-1] < direct_hypervolume(trials.assign(feasible=True), objectives) - 1e-6


def test_hypervolume_series_ignores_infeasible(tmp_path):
    run, _ = make_run(tmp_path)
    trials = read_run(run).trials
    before = hypervolume_series(trials, OBJECTIVES)
    done = trials[trials["state"] == "COMPLETE"]
    # Best value of every objective at once: dominates every trial, inside the min/max range.
    best = {**done.iloc[0].to_dict(), "number": 1000, "val_acc": done["val_acc"].max(),
            "pred_latency_ms": done["pred_latency_ms"].min(), "pred_peak_mem_mb": done["pred_peak_mem_mb"].min()}
    infeasible = pd.concat([trials, pd.DataFrame([{**best, "feasible": False}])], ignore_index=True)
    after = hypervolume_series(infeasible, OBJECTIVES)
    np.testing.assert_array_equal(after[:-1], before)
    assert after[-1] == before[-1]
    # The same trial marked feasible does raise the hypervolume: the check above can fail.
    feasible = pd.concat([trials, pd.DataFrame([{**best, "feasible": True}])], ignore_index=True)
    assert hypervolume_series(feasible, OBJECTIVES)[-1] > before[-1] + 1e-6


def test_hypervolume_series_follows_trial_number(tmp_path):
    run, _ = make_run(tmp_path)
    trials = read_run(run).trials
    shuffled = trials.sample(frac=1.0, random_state=3)
    np.testing.assert_array_equal(hypervolume_series(shuffled, OBJECTIVES), hypervolume_series(trials, OBJECTIVES))


def test_hypervolume_series_rejects_unknown_objective(tmp_path):
    run, _ = make_run(tmp_path)
    with pytest.raises(ValueError, match="params.*val_acc, latency_ms, peak_mem_mb|val_acc, latency_ms, peak_mem_mb"):
        hypervolume_series(read_run(run).trials, ["params"])


# ---------------------------------------------------------------------------- plots


@pytest.mark.parametrize("objectives", [OBJECTIVES, ["latency_ms", "peak_mem_mb"]])
def test_plots_write_png(tmp_path, objectives):
    run, _ = make_run(tmp_path, config_extra={"objectives": objectives})
    record = read_run(run)
    for draw, name in ((pareto_plot, "p.png"), (hypervolume_plot, "h.png")):
        out = draw(record, tmp_path / "plots" / name)
        assert out == tmp_path / "plots" / name
        assert out.read_bytes()[:8] == PNG_MAGIC


# ---------------------------------------------------------------------------- architecture drawings


@pytest.mark.parametrize("seed", range(4))
def test_arch_html_marks_quadratic_blocks(seed):
    arch = random_arch(random.Random(seed))
    if seed == 2:  # all quadratic, then
        arch = ArchConfig.from_dict({**arch.to_dict(), "stages": [
            {"width": s.width, "blocks": [{"kernel_size": b.kernel_size, "mlp_ratio": b.mlp_ratio, "order": 2}
                                          for b in s.blocks]} for s in arch.stages]})
    if seed == 3:  # none quadratic
        arch = ArchConfig.from_dict({**arch.to_dict(), "stages": [
            {"width": s.width, "blocks": [{"kernel_size": b.kernel_size, "mlp_ratio": b.mlp_ratio, "order": 1}
                                          for b in s.blocks]} for s in arch.stages]})
    n_blocks = sum(arch.depths)
    text = arch_html(arch.to_dict())
    assert text.count('data-order="2"') == arch.n_quadratic
    assert text.count('data-order="1"') == n_blocks - arch.n_quadratic
    assert len(re.findall(r"<b>Q</b>", text)) == arch.n_quadratic
    assert len(re.findall(r"<b>L</b>", text)) == n_blocks - arch.n_quadratic
    for i, s in enumerate(arch.stages):
        assert f"stage {i + 1} (w={s.width})" in text
        labels = re.findall(r"k(\d) r(\d) <b>", text.split("qn-stage")[i + 1])
        assert labels == [(str(b.kernel_size), str(b.mlp_ratio)) for b in s.blocks]
    assert "<style" not in text and "<link" not in text

    md = arch_markdown(arch.to_dict())
    assert md.count(" Q]") == arch.n_quadratic
    assert md.count(" L]") == n_blocks - arch.n_quadratic
    lines = md.splitlines()
    assert len(lines) == len(arch.stages)
    for i, (line, s) in enumerate(zip(lines, arch.stages)):
        expected = " ".join(f"[{b.kernel_size}r{b.mlp_ratio} {'Q' if b.order == 2 else 'L'}]" for b in s.blocks)
        assert line == f"stage {i + 1} (w={s.width}): {expected}"


def test_arch_html_rejects_malformed_arch():
    with pytest.raises(ValueError, match=r"stages\[0\]\.blocks\[0\]\.order"):
        arch_html({"space": "x", "stages": [{"width": 8, "blocks": [{"kernel_size": 3, "mlp_ratio": 2, "order": 3}]}]})


# ---------------------------------------------------------------------------- read_run


def test_read_run_record(tmp_path):
    run, _ = make_run(tmp_path)
    record = read_run(run)
    assert record.run_dir == run and record.objectives == OBJECTIVES
    assert len(record.trials) == 43 and (record.trials["state"] == "COMPLETE").sum() == 40
    assert record.trials["feasible"].dtype == bool and record.trials["feasible_b2"].dtype == bool
    assert not record.trials.loc[record.trials["state"] == "FAIL", "feasible"].any()
    assert record.summary["trials_per_s"] == 3.5
    assert [p["status"] for p in record.picks["picks"]] == ["met", "infeasible", "missed"]
    (run / "summary.json").unlink()
    assert read_run(run).summary is None  # optional


def test_read_run_keeps_numeric_looking_arch_ids(tmp_path):
    run, _ = make_run(tmp_path)
    trials = pd.read_csv(run / "trials.csv", dtype={"arch_id": str})
    # Hex ids of digits only (and one with an "e"), which pandas would read as numbers.
    ids = [f"{i:012d}" for i in range(len(trials))]
    ids[1] = "1234e5678901"
    trials["arch_id"] = ids
    trials.to_csv(run / "trials.csv", index=False)
    assert list(read_run(run).trials["arch_id"]) == ids


@pytest.mark.parametrize("name", ["trials.csv", "pareto.csv", "config.json", "picks.json"])
def test_read_run_missing_file(tmp_path, name):
    run, _ = make_run(tmp_path)
    (run / name).unlink()
    with pytest.raises(FileNotFoundError, match=rf"{re.escape(name)}.*nas-search"):
        read_run(run)


@pytest.mark.parametrize("name, content, match", [
    ("picks.json", "{not json", "not valid JSON"),
    ("picks.json", json.dumps({"picks": []}), "0 picks for 3 budgets"),
    ("picks.json", json.dumps({"picks": [{"status": "great"}] * 3}), "met, missed, infeasible"),
    ("config.json", json.dumps({"objectives": ["params"]}), "unknown objective"),
    ("summary.json", "[1, 2", "not valid JSON"),
    ("trials.csv", "", "empty"),
    ("trials.csv", "number,state\n0,COMPLETE\n", "missing column"),
])
def test_read_run_corrupt_file(tmp_path, name, content, match):
    run, _ = make_run(tmp_path)
    (run / name).write_text(content)
    with pytest.raises(ValueError, match=rf"{re.escape(name)}.*{match}.*nas-search"):
        read_run(run)
    with pytest.raises(ValueError, match=re.escape(name)):
        write_report(run)


def test_read_run_names_a_supernet_directory(tmp_path):
    supernet = tmp_path / "supernet"
    supernet.mkdir()
    (supernet / "config.json").write_text(json.dumps({"space": "digits-s", "epochs": 3}))
    (supernet / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=re.escape(f"{supernet} is a supernet run directory (`nas train-supernet`), "
                                                   f"not a `nas-search` run")):
        read_run(supernet)


def test_read_run_of_an_unfinished_search_says_to_resume_it(tmp_path):
    run, _ = make_run(tmp_path)
    (run / "picks.json").unlink()  # stopped before its picks
    with pytest.raises(FileNotFoundError, match=re.escape(
            f"picks.json not found in run directory {run}: the search there has not finished (stopped or still "
            f"running); finish it with `nas-search --out {run} --resume`, then report")):
        read_run(run)
