"""End-to-end tests of ``nas-search``: one small real run (supernet, profiles, predictors, study,
picks measured, exports, report) shared by the module, then resume, reuse and bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from optuna.trial import TrialState

import nas
from nas.cli import main, search_main
from nas.data import load_dataset
from nas.export import check_onnx
from nas.search import Budget, SearchConfig, run_search
from nas.search.storage import create_storage
from nas.train import load_supernet
from search_spaces.arch import ArchConfig

pytestmark = pytest.mark.slow

SMALL = dict(quick=True, trials=24, population_size=8, supernet_epochs=1, profile_n=8, measure_candidates=2)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "run"
    result = run_search(SearchConfig(out=str(out), **SMALL), progress=False)
    return result


def _brute_front(df: pd.DataFrame) -> set[str]:
    pts = np.c_[-df["val_acc"], df["pred_latency_ms"], df["pred_peak_mem_mb"]]
    keep = set()
    for i in range(len(pts)):
        dominated = any(np.all(pts[j] <= pts[i]) and np.any(pts[j] < pts[i]) for j in range(len(pts)) if j != i)
        if not dominated:
            keep.add(df["arch_id"].iloc[i])
    return keep


def test_run_directory_holds_every_record(run):
    out = run.run_dir
    for name in ("config.json", "study.journal", "trials.csv", "pareto.csv", "picks.json", "summary.json",
                 "profiles.csv",
                 "pareto.png", "hypervolume.png", "report.html", "report.md", "supernet/supernet.safetensors",
                 "predictors/latency/predictor.json", "predictors/memory/predictor.json"):
        assert (out / name).is_file(), name
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["space"] == "digits-s" and cfg["dataset"] == "digits" and cfg["trials"] == 24
    assert len(cfg["budgets"]) == 2 and all(b["source"] == "auto" for b in cfg["budgets"])
    assert cfg["storage"].startswith("journal:///") and cfg["storage"].endswith("study.journal")


def test_trials_and_pareto_tables(run):
    trials = pd.read_csv(run.run_dir / "trials.csv", dtype={"arch_id": str})
    assert len(trials) == 24 and (trials["state"] == "COMPLETE").all()
    assert trials["val_acc"].between(0, 1).all() and (trials["pred_latency_ms"] > 0).all()
    for row in trials.itertuples():
        arch = ArchConfig.from_json(row.arch_json)
        assert arch.arch_id == row.arch_id and arch.n_quadratic == row.n_quadratic
        feasible = [b.meets(row.pred_latency_ms, row.pred_peak_mem_mb) for b in run.budgets]
        assert [getattr(row, f"feasible_b{i}") for i in range(len(run.budgets))] == feasible
        assert row.feasible == any(feasible)
    pareto = pd.read_csv(run.run_dir / "pareto.csv", dtype={"arch_id": str})
    assert set(pareto["arch_id"]) == _brute_front(trials.drop_duplicates("arch_id"))
    assert list(pareto["pred_latency_ms"]) == sorted(pareto["pred_latency_ms"])


def test_picks_are_measured_and_explained(run):
    picks = json.loads((run.run_dir / "picks.json").read_text())
    assert len(picks["picks"]) == len(run.budgets) == 2
    trials = pd.read_csv(run.run_dir / "trials.csv", dtype={"arch_id": str}).set_index("number")
    for i, p in enumerate(picks["picks"]):
        budget = Budget.from_dict(p["budget"])
        if p["status"] == "infeasible":
            assert "smallest achievable" in p["message"]
            continue
        assert p["status"] in ("met", "missed")
        m = p["measured"]
        if p["predicted_to_meet"] is False:  # no trial was predicted to meet it; measured, it does
            assert p["status"] == "met" and not trials[f"feasible_b{i}"].any()
            if p["trial_number"] is None:
                assert p["arch_id"] == picks["smallest"]["min_arch_id"]
            else:
                assert trials.loc[p["trial_number"], "arch_id"] == p["arch_id"]
        else:
            row = trials.loc[p["trial_number"]]
            assert row["arch_id"] == p["arch_id"] and row[f"feasible_b{i}"]
            assert p["predicted"]["latency_ms"] == pytest.approx(row["pred_latency_ms"])
        assert m["latency_ms"] > 0 and m["peak_mem_mb"] > 0 and 0 <= m["test_acc"] <= 1
        assert (p["status"] == "met") == budget.meets(m["latency_ms"], m["peak_mem_mb"])
        if budget.latency_ms is not None:
            assert p["excess_pct"]["latency"] == pytest.approx(100 * (m["latency_ms"] / budget.latency_ms - 1))
        # the pick is the most accurate of the candidates that meet the budget by prediction
        feasible = trials[trials[f"feasible_b{i}"] == True]  # noqa: E712
        if p["predicted_to_meet"] and p["status"] == "met" and p["candidates_measured"] == 1:
            assert p["predicted"]["val_acc"] == pytest.approx(feasible["val_acc"].max())
        assert (run.run_dir / p["export_dir"] / "model.onnx").is_file()
        assert p["arch_id"] in (run.run_dir / "report.html").read_text()


def test_exported_pick_round_trips_and_runs_in_onnxruntime(run):
    picks = [p for p in json.loads((run.run_dir / "picks.json").read_text())["picks"] if p["arch_id"]]
    assert picks
    supernet, _ = load_supernet(run.run_dir / "supernet")
    for p in picks:
        d = run.run_dir / p["export_dir"]
        arch = ArchConfig.from_dict(p["arch"])
        model = nas.load_model(d)
        x = torch.randn(5, 1, 8, 8)
        with torch.no_grad():
            assert torch.equal(model(x), supernet.extract(arch).eval()(x))
        assert check_onnx(d / "model.onnx", model, x, atol=1e-4) <= 1e-4
        card = json.loads((d / "card.json").read_text())["card"]
        assert card["test_acc"] == pytest.approx(p["measured"]["test_acc"])
        assert card["latency_ms"] == pytest.approx(p["measured"]["latency_ms"])


def test_export_card_says_how_to_prepare_inputs_and_onnx_reproduces_the_test_accuracy(run):
    """A deployer with only the export: raw pixels prepared as the card says, run in ONNX Runtime,
    give the card's test accuracy (without the card's mean/std they would not)."""
    import onnxruntime

    pick = next(p for p in json.loads((run.run_dir / "picks.json").read_text())["picks"] if p["arch_id"])
    d = run.run_dir / pick["export_dir"]
    card = json.loads((d / "card.json").read_text())["card"]
    spec = card["input"]
    assert spec["layout"] == "NCHW" and spec["dtype"] == "float32" and spec["shape"] == ["batch", 1, 8, 8]
    assert spec["pixel_max"] == 16.0 and len(spec["mean"]) == len(spec["std"]) == 1
    assert spec["class_names"] == [str(i) for i in range(10)]
    split = load_dataset("digits", seed=json.loads((run.run_dir / "config.json").read_text())["data_seed"])
    x_norm, y = split.test.tensors
    mean, std = spec["mean"][0], spec["std"][0]
    pixels = ((x_norm * std + mean) * spec["pixel_max"]).double()  # what a camera would give: 0..16
    assert torch.allclose(pixels, pixels.round(), atol=1e-3) and pixels.min() >= -1e-3 and pixels.max() <= 16 + 1e-3
    prepared = ((pixels.round() / spec["pixel_max"] - mean) / std).float().numpy()  # the card's formula
    session = onnxruntime.InferenceSession(str(d / "model.onnx"))
    logits = session.run(["logits"], {"images": prepared})[0]
    assert (logits.argmax(1) == y.numpy()).mean() == pytest.approx(card["test_acc"], abs=1e-9)
    text = (d / "MODEL_CARD.md").read_text()
    assert "## Input" in text and spec["normalise"] in text and json.dumps(spec["mean"]) in text
    assert 'session.run(["logits"], {"images": x.numpy()})' in text and "torch.jit.load" in text


def test_report_rebuilds_from_the_study_alone(run, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(run.run_dir, copy, ignore=shutil.ignore_patterns("supernet", "predictors", "exports"))
    cfg = json.loads((copy / "config.json").read_text())
    cfg["storage"] = f"journal:///{copy / 'study.journal'}"
    (copy / "config.json").write_text(json.dumps(cfg))
    before = pd.read_csv(copy / "trials.csv")
    for name in ("report.html", "report.md", "pareto.png", "trials.csv"):
        (copy / name).unlink()
    assert main(["report", "--run", str(copy)]) == 0
    for name in ("report.html", "report.md", "pareto.png", "trials.csv"):
        assert (copy / name).is_file()
    after = pd.read_csv(copy / "trials.csv")
    pd.testing.assert_frame_equal(before.drop(columns=["duration_s"]), after.drop(columns=["duration_s"]))


def test_export_command(run, tmp_path, capsys):
    pareto = pd.read_csv(run.run_dir / "pareto.csv", dtype={"arch_id": str})
    arch_id = pareto["arch_id"].iloc[-1]
    out = tmp_path / "exp"
    assert main(["export", "--run", str(run.run_dir), "--arch-id", arch_id, "--format", "onnx", "--out", str(out)]) == 0
    assert (out / "model.onnx").is_file() and (out / "model.safetensors").is_file()
    assert not (out / "model.pt").exists()
    assert ArchConfig.from_json((out / "arch.json").read_text()).arch_id == arch_id
    spec = json.loads((out / "card.json").read_text())["card"]["input"]  # the supernet's split's constants
    assert spec == load_dataset("digits", seed=json.loads((run.run_dir / "config.json").read_text())["data_seed"]
                                ).input_spec()
    # again into the same directory: refused, nothing changed
    stamp = (out / "model.onnx").stat().st_mtime_ns
    assert main(["export", "--run", str(run.run_dir), "--arch-id", arch_id, "--out", str(out)]) == 2
    assert (out / "model.onnx").stat().st_mtime_ns == stamp
    capsys.readouterr()
    assert main(["export", "--run", str(run.run_dir), "--arch-id", "000000000000"]) == 2
    err = capsys.readouterr().err
    assert "000000000000" in err and arch_id in err  # lists the Pareto-optimal ids


@pytest.mark.parametrize("edit, field", [
    (lambda d: d["stages"][0]["blocks"][0].update(kernel_size=9), "stages[0].blocks[0].kernel_size"),
    (lambda d: d.update(stagez=[]), "stagez"),
    (lambda d: d["stages"][2].update(blocks=d["stages"][2]["blocks"] * 4), "stages[2].blocks"),
    (lambda d: d["stages"][1].pop("width"), "stages[1].width"),
])
def test_export_malformed_arch_names_the_field(run, tmp_path, capsys, edit, field):
    data = json.loads(ArchConfig.from_json(pd.read_csv(run.run_dir / "pareto.csv")["arch_json"].iloc[0]).to_json())
    edit(data)
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(data))
    assert main(["export", "--run", str(run.run_dir), "--arch", str(path), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert field in err and "arch.json" in err
    assert not (tmp_path / "e").exists()


def test_export_unknown_format_lists_valid(run, capsys):
    arch_id = pd.read_csv(run.run_dir / "pareto.csv", dtype={"arch_id": str})["arch_id"].iloc[0]
    assert main(["export", "--run", str(run.run_dir), "--arch-id", arch_id, "--format", "tflite"]) == 2
    err = capsys.readouterr().err
    assert "tflite" in err and "safetensors" in err and "onnx" in err


def test_resume_tops_up_without_retraining(run, tmp_path):
    copy = tmp_path / "resumed"
    shutil.copytree(run.run_dir, copy)
    weights = copy / "supernet" / "supernet.safetensors"
    stamp = weights.stat().st_mtime_ns
    n_profiles = len(pd.read_csv(copy / "profiles.csv"))
    assert json.loads((copy / "summary.json").read_text())["sessions"] == 1
    result = run_search(SearchConfig(out=str(copy), resume=True, **{**SMALL, "trials": 30}), progress=False)
    assert result.summary["trials_completed"] == 30 and result.summary["trials_this_session"] == 6
    # the record counts the run's sessions (each start that reached its study), not only this one
    assert result.summary["sessions"] == json.loads((copy / "config.json").read_text())["sessions"] == 2
    assert "| sessions | 2 |" in (copy / "report.md").read_text()
    assert weights.stat().st_mtime_ns == stamp
    assert len(pd.read_csv(copy / "profiles.csv")) == n_profiles
    assert len(pd.read_csv(copy / "trials.csv")) == 30


def _reusing(run, out, *extra: str, trials: int = 8) -> list[str]:
    """CLI arguments of a small search that reuses ``run``'s supernet and predictors."""
    return ["--out", str(out), "--supernet", str(run.run_dir / "supernet"), "--predictors",
            str(run.run_dir / "predictors"), "--quick", "--trials", str(trials), "--population-size", "8",
            "--no-progress", "--format", "safetensors", "--latency-budget-ms", "1000", "--memory-budget-mb", "1000",
            *extra]


def test_a_run_begun_on_sqlite_resumes_on_its_own_study_db(run, tmp_path):
    # what runs of earlier versions hold: study.db in the run directory, recorded in config.json
    out = tmp_path / "old"
    assert search_main(_reusing(run, out, "--storage", f"sqlite:///{out / 'study.db'}")) == 0
    assert search_main(_reusing(run, out, "--resume", trials=11)) == 0
    study = optuna.load_study(study_name="nas-search-digits-s", storage=create_storage(f"sqlite:///{out / 'study.db'}"))
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 11
    assert not (out / "study.journal").exists() and len(pd.read_csv(out / "trials.csv")) == 11


def test_resume_continues_the_recorded_storage_and_study_name(run, tmp_path):
    out = tmp_path / "own"
    journal = tmp_path / "elsewhere" / "s.journal"
    assert search_main(_reusing(run, out, "--storage", f"journal:///{journal}", "--study-name", "mine")) == 0
    # resumed without repeating --storage / --study-name: the same study goes on (not a new, empty one)
    assert search_main(_reusing(run, out, "--resume", trials=12)) == 0
    study = optuna.load_study(study_name="mine", storage=create_storage(f"journal:///{journal}"))
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 12
    assert not (out / "study.db").exists() and not (out / "study.journal").exists()
    assert len(pd.read_csv(out / "trials.csv")) == 12
    stored = json.loads((out / "config.json").read_text())
    assert stored["storage"] == f"journal:///{journal}" and stored["study_name"] == "mine"
    assert stored["storage_in_run_dir"] is False


def test_a_copied_or_moved_run_directory_goes_on_with_its_own_study_file(run, tmp_path):
    first = tmp_path / "first"
    assert search_main(_reusing(run, first)) == 0
    copy = tmp_path / "copy"
    shutil.copytree(first, copy)
    assert search_main(_reusing(run, copy, "--resume", trials=10)) == 0  # the copy's study, not the original's
    assert len(pd.read_csv(copy / "trials.csv")) == 10
    original = optuna.load_study(study_name="nas-search-digits-s",
                                 storage=create_storage(f"journal:///{first / 'study.journal'}"))
    assert len(original.trials) == 8
    moved = tmp_path / "moved"
    shutil.move(first, moved)
    assert main(["report", "--run", str(moved)]) == 0
    assert len(pd.read_csv(moved / "trials.csv")) == 8
    assert search_main(_reusing(run, moved, "--resume", trials=9)) == 0
    assert len(pd.read_csv(moved / "trials.csv")) == 9
    stored = json.loads((moved / "config.json").read_text())
    assert stored["storage"] == f"journal:///{(moved / 'study.journal').resolve()}"
    assert stored["storage_in_run_dir"] is True
    assert not first.exists()  # nothing was recreated at the old place


def test_report_without_its_storage_renders_from_the_tables_on_disk(run, tmp_path, capsys):
    copy = tmp_path / "offline"
    shutil.copytree(run.run_dir, copy, ignore=shutil.ignore_patterns("supernet", "predictors", "exports"))
    cfg = json.loads((copy / "config.json").read_text())
    cfg["storage"] = "postgresql://nobody@127.0.0.1:9/none"  # nothing listens on port 9
    (copy / "config.json").write_text(json.dumps(cfg))
    before = (copy / "trials.csv").read_text()
    (copy / "report.html").unlink()
    with pytest.warns(UserWarning, match="cannot be read.*rendered from the trials.csv"):
        assert main(["report", "--run", str(copy)]) == 0
    assert (copy / "report.html").is_file() and (copy / "trials.csv").read_text() == before
    (copy / "trials.csv").unlink()  # nothing to fall back on: the storage error is the answer
    assert main(["report", "--run", str(copy)]) == 3
    assert "127.0.0.1:9" in capsys.readouterr().err


def test_report_names_a_missing_study_file_and_creates_none(run, tmp_path, capsys):
    copy = tmp_path / "nostudy"
    shutil.copytree(run.run_dir, copy,
                    ignore=shutil.ignore_patterns("supernet", "predictors", "exports", "study.journal*"))
    assert main(["report", "--run", str(copy)]) == 2
    err = capsys.readouterr().err
    assert "study.journal" in err and "does not exist" in err
    assert not (copy / "study.journal").exists()


def test_resume_names_a_missing_study_file_and_creates_none(run, tmp_path, capsys):
    copy = tmp_path / "nostudy"
    shutil.copytree(run.run_dir, copy, ignore=shutil.ignore_patterns("study.journal*"))
    before = pd.read_csv(copy / "trials.csv")
    assert search_main(["--out", str(copy), "--resume", "--quick", "--trials", "30", "--population-size", "8",
                        "--no-progress", "--supernet-epochs", "1", "--profile-n", "8"]) == 2
    err = capsys.readouterr().err
    assert "study.journal" in err and "does not exist" in err
    assert not (copy / "study.journal").exists()
    pd.testing.assert_frame_equal(pd.read_csv(copy / "trials.csv"), before)


def test_resume_of_a_search_stopped_before_its_supernet_checkpointed_trains_it(run, tmp_path):
    copy = tmp_path / "early"
    shutil.copytree(run.run_dir, copy)
    for name in ("supernet.safetensors", "checkpoint.pt", "history.csv", "train_log.json"):
        (copy / "supernet" / name).unlink()  # what a kill during the supernet's first steps leaves
    assert [p.name for p in (copy / "supernet").iterdir()] == ["config.json"]
    result = run_search(SearchConfig(out=str(copy), resume=True, **{**SMALL, "trials": 26}), progress=False)
    assert result.summary["trials_completed"] == 26
    assert (copy / "supernet" / "supernet.safetensors").is_file()


def test_resume_with_other_objectives_is_refused(run, tmp_path, capsys):
    copy = tmp_path / "other"
    shutil.copytree(run.run_dir, copy)
    before = pd.read_csv(copy / "trials.csv")
    code = search_main(["--out", str(copy), "--resume", "--quick", "--trials", "30", "--objectives",
                        "accuracy,latency", "--no-progress", "--supernet-epochs", "1", "--profile-n", "8",
                        "--population-size", "8"])
    assert code == 2
    err = capsys.readouterr().err
    assert "objectives" in err and "refused" in err
    pd.testing.assert_frame_equal(pd.read_csv(copy / "trials.csv"), before)


def test_infeasible_budget_exits_2_and_still_reports(run, tmp_path, capsys):
    out = tmp_path / "infeasible"
    code = search_main(["--out", str(out), "--quick", "--trials", "16", "--population-size", "8", "--no-progress",
                        "--supernet", str(run.run_dir / "supernet"), "--predictors", str(run.run_dir / "predictors"),
                        "--latency-budget-ms", "0.0001", "--memory-budget-mb", "0.0001"])
    assert code == 2
    err = capsys.readouterr().err
    assert "smallest achievable" in err and " ms" in err and " MB" in err
    assert (out / "report.html").is_file() and "smallest achievable" in (out / "report.html").read_text()
    picks = json.loads((out / "picks.json").read_text())["picks"]
    assert [p["status"] for p in picks] == ["infeasible"]
    assert not (out / "supernet").exists()  # reused, not retrained


def test_reused_predictors_of_another_batch_size_are_refused(run, tmp_path, capsys):
    code = search_main(["--out", str(tmp_path / "b8"), "--quick", "--batch-size", "8", "--no-progress",
                        "--supernet", str(run.run_dir / "supernet"), "--predictors", str(run.run_dir / "predictors")])
    assert code == 2
    assert "batch sizes [1]" in capsys.readouterr().err


def test_existing_run_directory_without_resume_is_refused(run, capsys):
    stamp = (run.run_dir / "trials.csv").stat().st_mtime_ns
    assert search_main(["--out", str(run.run_dir), "--quick", "--no-progress"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert (run.run_dir / "trials.csv").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("args, bad, valid", [
    (["--space", "mnist-xl"], "mnist-xl", "digits-s"),
    (["--dataset", "imagenet"], "imagenet", "digits"),
    (["--sampler", "cmaes"], "cmaes", "nsga2, tpe, random"),
    (["--objectives", "accuracy,energy"], "energy", "accuracy, latency, memory"),
    (["--format", "tflite"], "tflite", "onnx"),
])
def test_unknown_names_list_valid_ones(tmp_path, capsys, args, bad, valid):
    assert search_main(["--out", str(tmp_path / "x"), "--no-progress", *args]) == 2
    err = capsys.readouterr().err
    assert bad in err and valid in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("args, message", [
    (["--latency-budget-ms", "1", "--latency-budget-ms", "2", "--memory-budget-mb", "1", "--memory-budget-mb", "2",
      "--memory-budget-mb", "3"], "cannot be paired"),
    (["--latency-budget-ms", "-1"], "latency_budget_ms"),
    (["--memory-budget-mb", "nan"], "memory_budget_mb"),
    (["--resume"], "--resume needs --out"),
    (["--trials", "0"], "trials"),
    (["--population-size", "1"], "NSGA-II needs a population of at least 2 (--population-size)"),
    (["--storage", "sqlite:///"], "names no file"),
])
def test_bad_options_exit_2(tmp_path, capsys, args, message):
    argv = [*args] if "--resume" in args else ["--out", str(tmp_path / "x"), *args]
    assert search_main([*argv, "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("args, message", [
    (["--dataset", "synthetic"], "expects inputs (1, 8, 8)"),
    (["--predictors", "no-such-dir"], "no latency predictor"),
    (["--supernet", "no-such-dir"], "no-such-dir"),
    (["--dataset", "cifar10", "--space", "cifar10-m", "--data-dir", "no-such-dir"], "no-such-dir"),
])
def test_inputs_found_wrong_leave_no_run_directory(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "x"
    assert search_main(["--out", str(out), "--quick", "--no-progress", *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()  # the same --out works once the typo is fixed


def test_unreachable_database_is_said_before_the_long_phases(tmp_path, capsys):
    out = tmp_path / "x"
    code = search_main(["--out", str(out), "--quick", "--no-progress", "--storage",
                        "postgresql://nobody@127.0.0.1:9/none"])
    assert code == 3
    err = capsys.readouterr().err
    assert "cannot open the study storage" in err and "127.0.0.1:9" in err
    assert not out.exists()


def test_resume_keeps_the_reused_supernet_and_predictors(run, tmp_path, capsys):
    out = tmp_path / "reuse"
    assert search_main(_reusing(run, out)) == 0
    common = ["--out", str(out), "--resume", "--quick", "--population-size", "8", "--no-progress", "--format",
              "safetensors", "--latency-budget-ms", "1000", "--memory-budget-mb", "1000"]
    assert search_main([*common, "--trials", "10"]) == 0  # no --supernet / --predictors: the recorded ones
    assert not (out / "supernet").exists() and not (out / "predictors").exists()
    assert len(pd.read_csv(out / "trials.csv")) == 10
    capsys.readouterr()
    assert search_main([*common, "--trials", "12", "--supernet", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err
    assert "--resume refused" in err and str(run.run_dir / "supernet") in err
    assert len(pd.read_csv(out / "trials.csv")) == 10


def test_resume_of_a_directory_that_is_not_a_search_run_is_refused(run, tmp_path, capsys):
    assert search_main(["--out", str(run.run_dir / "supernet"), "--resume", "--quick", "--no-progress"]) == 2
    assert "is not the record of a nas-search run" in capsys.readouterr().err


def test_bench_search_record(run, tmp_path):
    from nas.bench.search import SearchBenchConfig, run_search_bench, study_hypervolumes  # noqa: F401

    config = SearchBenchConfig(trials=24, seeds=2, population_size=8, supernet=str(run.run_dir / "supernet"),
                               predictors=str(run.run_dir / "predictors"))
    record = run_search_bench(config, out=tmp_path / "bench", progress=False)
    assert json.loads((tmp_path / "bench" / "search_bench.json").read_text())["hv_ratio"] == record["hv_ratio"]
    hv = record["hypervolumes"]
    assert sorted(hv) == ["nsga2:0", "nsga2:1", "random:0", "random:1"]
    assert record["hypervolume_default"] == pytest.approx(np.median([hv["nsga2:0"], hv["nsga2:1"]]))
    assert record["hv_ratio"] == pytest.approx(record["hypervolume_default"] / record["hypervolume_random"])
    for key in ("trials_per_s", "trials_per_s_random", "trials_per_s_cached", "trials_per_s_sqlite",
                "trials_per_s_own_storage", "trials_per_s_own_storage_cached"):
        assert record[key] > 0
    assert record["own_storage"] == "journal"  # the run's own study file, as nas-search writes it
    # every hypervolume is in the normalised box [0, 1.1]^3 of the shared reference; it is 0 only for
    # a study none of whose 24 trials was predicted to meet a budget (seen once in CI with 8 profiled
    # architectures), so at least one study has a positive one
    assert all(0 <= v <= 1.1 ** 3 for v in hv.values()) and max(hv.values()) > 0
    assert [b["source"] for b in record["budgets"]] == ["auto", "auto"]


def test_study_hypervolumes_share_one_normalisation():
    from nas.bench.search import study_hypervolumes
    from nas.pareto import hypervolume

    def frame(rows):
        return pd.DataFrame([{"state": "COMPLETE", "val_acc": a, "pred_latency_ms": lat, "pred_peak_mem_mb": m,
                              "feasible": f} for a, lat, m, f in rows])

    a = frame([(0.9, 1.0, 1.0, True), (0.5, 3.0, 2.0, True)])
    b = frame([(0.7, 2.0, 1.5, True), (0.95, 0.5, 0.5, False)])  # b's best is infeasible: ignored
    hv = study_hypervolumes({"a": a, "b": b}, ("val_acc", "latency_ms", "peak_mem_mb"))
    # bounds over all trials: error 0.05..0.5, latency 0.5..3, memory 0.5..2
    norm = lambda e, lat, m: [(e - 0.05) / 0.45, (lat - 0.5) / 2.5, (m - 0.5) / 1.5]  # noqa: E731
    ref = np.full(3, 1.1)
    assert hv["a"] == pytest.approx(hypervolume(np.array([norm(0.1, 1.0, 1.0), norm(0.5, 3.0, 2.0)]), ref))
    assert hv["b"] == pytest.approx(hypervolume(np.array([norm(0.3, 2.0, 1.5)]), ref))


def test_pick_rescales_predictions_after_a_miss():
    from nas.search.picks import pick as _pick
    from search_spaces.space import create_space

    space = create_space("digits-s")
    archs = space.spread(6, key=lambda a: sum(a.widths), seed=0)
    # accuracy rises with predicted latency; the measurement is 25 % slower than predicted
    rows = [{"number": i, "state": "COMPLETE", "val_acc": 0.5 + 0.05 * i, "pred_latency_ms": 1.0 + 0.1 * i,
             "pred_peak_mem_mb": 1.0, "feasible_b0": True, "arch_id": a.arch_id, "arch_json": a.to_json()}
            for i, a in enumerate(archs)]
    trials = pd.DataFrame(rows)
    by_id = {r["arch_id"]: r for r in rows}
    measured = []

    def measure(arch):
        measured.append(arch.arch_id)
        r = by_id[arch.arch_id]
        return {"latency_ms": 1.25 * r["pred_latency_ms"], "peak_mem_mb": 1.0, "test_acc": r["val_acc"]}

    budget = Budget(latency_ms=1.55)  # trials 0..5 all predicted to meet it (≤ 1.5 ms)
    pick = _pick(budget, 0, trials, measure, {}, n_candidates=3)
    # first: the most accurate (1.5 ms predicted → 1.875 measured, a miss); then the most accurate
    # whose prediction × 1.25 fits 1.55 ms: 1.2 ms (trial 2) → 1.5 ms measured, which meets it
    assert measured == [archs[5].arch_id, archs[2].arch_id]
    assert pick["status"] == "met" and pick["trial_number"] == 2 and pick["candidates_measured"] == 2
    measured.clear()
    pick = _pick(Budget(latency_ms=1.0), 0, trials.assign(feasible_b0=[True] + [False] * 5), measure, {},
                 n_candidates=3)
    assert pick["status"] == "missed" and pick["excess_pct"]["latency"] == pytest.approx(25.0)
    assert "latency by 25.0 %" in pick["message"]


def test_pick_ranks_by_validation_loss_when_the_study_scored_loss():
    from nas.search.picks import pick as _pick
    from search_spaces.space import create_space

    archs = create_space("digits-s").spread(3, key=lambda a: sum(a.widths), seed=0)
    # trial 0: the highest accuracy; trial 2: the lowest loss
    rows = [{"number": i, "state": "COMPLETE", "val_acc": 0.9 - 0.1 * i, "val_loss": 1.0 - 0.3 * i,
             "pred_latency_ms": 1.0, "pred_peak_mem_mb": 1.0, "feasible_b0": True, "arch_id": a.arch_id,
             "arch_json": a.to_json()} for i, a in enumerate(archs)]
    measure = lambda arch: {"latency_ms": 0.5, "peak_mem_mb": 1.0, "test_acc": 0.5}  # noqa: E731
    by_acc = _pick(Budget(latency_ms=1.0), 0, pd.DataFrame(rows), measure, {}, n_candidates=1)
    by_loss = _pick(Budget(latency_ms=1.0), 0, pd.DataFrame(rows), measure, {}, n_candidates=1,
                    accuracy_metric="loss")
    assert by_acc["trial_number"] == 0 and by_loss["trial_number"] == 2


def test_pick_measures_near_misses_when_no_trial_is_predicted_to_meet_the_budget():
    from nas.search.picks import pick as _pick
    from search_spaces.space import create_space

    space = create_space("digits-s")
    archs = space.spread(5, key=lambda a: sum(a.widths), seed=0)
    smallest_arch = space.min_arch()
    # predicted 2.0 .. 2.4 ms; the predictors overestimate: every measurement is 0.6 × the prediction
    rows = [{"number": i, "state": "COMPLETE", "val_acc": 0.9 - 0.01 * i, "pred_latency_ms": 2.0 + 0.1 * i,
             "pred_peak_mem_mb": 1.0, "feasible_b0": False, "arch_id": a.arch_id, "arch_json": a.to_json()}
            for i, a in enumerate(archs)]
    trials = pd.DataFrame(rows)
    pred = {r["arch_id"]: r["pred_latency_ms"] for r in rows} | {smallest_arch.arch_id: 1.9}
    measured = []

    def measure(arch):
        measured.append(arch.arch_id)
        return {"latency_ms": 0.6 * pred[arch.arch_id], "peak_mem_mb": 1.0, "test_acc": 0.5}

    smallest = {"pred_latency_ms": 1.9, "pred_peak_mem_mb": 1.0, "measured_latency_ms": 1.14,
                "measured_peak_mem_mb": 1.0, "min_arch_id": smallest_arch.arch_id,
                "min_arch": smallest_arch.to_dict(),
                "min_arch_predicted": {"val_acc": 0.7, "latency_ms": 1.9, "peak_mem_mb": 1.0}}
    # 1.3 ms: trials 0 and 1 (1.2, 1.26 ms measured) and the smallest (1.14 ms) meet it; trial 2 (1.32) misses
    pick = _pick(Budget(latency_ms=1.3), 0, trials, measure, smallest, n_candidates=3)
    assert measured == [archs[0].arch_id, archs[1].arch_id, archs[2].arch_id, smallest_arch.arch_id]
    assert pick["status"] == "met" and pick["predicted_to_meet"] is False
    assert pick["trial_number"] == 0 and pick["arch_id"] == archs[0].arch_id  # the most accurate that meets it
    assert pick["measured"]["latency_ms"] == pytest.approx(1.2) and pick["candidates_measured"] == 4
    assert pick["export_dir"] == f"exports/{archs[0].arch_id}" and "overestimate" in pick["message"]
    # only the smallest architecture meets 1.15 ms: it is the pick, with no trial number
    pick = _pick(Budget(latency_ms=1.15), 0, trials, measure, smallest, n_candidates=2)
    assert pick["status"] == "met" and pick["arch_id"] == smallest_arch.arch_id and pick["trial_number"] is None
    assert pick["predicted"] == smallest["min_arch_predicted"]
    # the smallest architecture misses 1.0 ms when measured: infeasible at once, naming the smallest
    # achievable cost, without measuring the near misses (larger networks)
    measured.clear()
    pick = _pick(Budget(latency_ms=1.0), 0, trials, measure, smallest, n_candidates=3)
    assert pick["status"] == "infeasible" and pick["arch_id"] is None and pick["export_dir"] is None
    assert "1.14 ms" in pick["message"] and pick["candidates_measured"] == 1 and measured == []


def test_pick_falls_back_to_the_smallest_architecture_when_every_predicted_candidate_misses():
    from nas.search.picks import pick as _pick
    from search_spaces.space import create_space

    space = create_space("digits-s")
    archs = space.spread(4, key=lambda a: sum(a.widths), seed=1)
    smallest_arch = space.min_arch()
    rows = [{"number": i, "state": "COMPLETE", "val_acc": 0.9 - 0.01 * i, "pred_latency_ms": 0.9,
             "pred_peak_mem_mb": 1.0, "feasible_b0": True, "arch_id": a.arch_id, "arch_json": a.to_json()}
            for i, a in enumerate(archs)]
    latency = {a.arch_id: 1.5 for a in archs} | {smallest_arch.arch_id: 0.8}  # all 50 % + slower than predicted
    smallest = {"pred_latency_ms": 0.7, "pred_peak_mem_mb": 1.0, "measured_latency_ms": 0.8,
                "measured_peak_mem_mb": 1.0, "min_arch_id": smallest_arch.arch_id, "min_arch": smallest_arch.to_dict(),
                "min_arch_predicted": {"val_acc": 0.6, "latency_ms": 0.7, "peak_mem_mb": 1.0}}
    measure = lambda arch: {"latency_ms": latency[arch.arch_id], "peak_mem_mb": 1.0, "test_acc": 0.5}  # noqa: E731
    pick = _pick(Budget(latency_ms=1.0), 0, pd.DataFrame(rows), measure, smallest, n_candidates=2)
    assert pick["status"] == "met" and pick["arch_id"] == smallest_arch.arch_id and pick["trial_number"] is None
    assert pick["predicted_to_meet"] is True and pick["candidates_measured"] == 3
    assert "the 2 candidate(s) predicted to meet it miss it when measured" in pick["message"]
    # a budget even the smallest misses: the candidate that misses by least, as before
    latency[smallest_arch.arch_id] = 1.6
    pick = _pick(Budget(latency_ms=1.0), 0, pd.DataFrame(rows), measure, smallest, n_candidates=2)
    assert pick["status"] == "missed" and pick["trial_number"] == 0 and pick["excess_pct"]["latency"] == 50.0


@pytest.mark.parametrize("content, message", [(None, "holds no config.json"), ("{not json", "not valid JSON"),
                                              ('{"space": "digits-s"}', "lacks 'storage'")])
def test_report_on_a_bad_run_directory_names_the_file(tmp_path, capsys, content, message):
    if content is not None:
        (tmp_path / "config.json").write_text(content)
    assert main(["report", "--run", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(tmp_path) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if content is None else ["config.json"])


def test_search_config_takes_one_budget_as_a_number_and_names_bad_ones():
    from nas.search import SearchConfig

    config = SearchConfig(latency_budgets_ms=2.0, memory_budgets_mb=None)
    assert config.latency_budgets_ms == (2.0,) and config.memory_budgets_mb == ()
    assert [b.latency_ms for b in config.budgets()] == [2.0]
    assert SearchConfig(latency_budgets_ms=[1, 2], memory_budgets_mb=[3, 4]).latency_budgets_ms == (1, 2)
    with pytest.raises(TypeError, match="latency_budgets_ms must be a number or a sequence of numbers .* got '25'"):
        SearchConfig(latency_budgets_ms="25")  # not read character by character
    with pytest.raises(TypeError, match="memory_budgets_mb must be .* got <object"):
        SearchConfig(memory_budgets_mb=object())
    for name in ("quick", "force", "resume", "join"):
        with pytest.raises(TypeError, match=f"{name} must be True or False, got 'no'"):
            SearchConfig(**{name: "no"})


def test_a_reused_supernet_brings_its_own_data_split(run, tmp_path):
    """A search with another --seed scores and tests on the supernet's split, not on images the
    supernet was trained on (the seed-1 split shares most of its val/test images with seed 0's train)."""
    from nas.train import evaluate_arch

    out = tmp_path / "seed1"
    result = run_search(SearchConfig(out=str(out), seed=1, supernet=str(run.run_dir / "supernet"),
                                     predictors=str(run.run_dir / "predictors"),
                                     **{**SMALL, "trials": 8, "population_size": 4}), progress=False)
    assert json.loads((out / "config.json").read_text())["data_seed"] == 0
    supernet, _ = load_supernet(run.run_dir / "supernet")
    split0 = load_dataset("digits", seed=0)
    trials = pd.read_csv(out / "trials.csv", dtype={"arch_id": str})
    row = trials[trials["state"] == "COMPLETE"].iloc[0]
    assert row["val_acc"] == pytest.approx(evaluate_arch(supernet, ArchConfig.from_json(row["arch_json"]),
                                                         split0.val)[1])
    for pick in result.picks:
        if pick["measured"]:
            arch = ArchConfig.from_dict(pick["arch"])
            assert pick["measured"]["test_acc"] == pytest.approx(evaluate_arch(supernet, arch, split0.test)[1])


def test_bench_search_takes_data_dir_and_checks_the_data_before_writing(tmp_path, capsys):
    from nas.bench.search import SearchBenchConfig

    assert SearchBenchConfig(space="cifar10-m", data_dir="/data/cifar").data_dir == "/data/cifar"
    out = tmp_path / "bench"
    assert main(["bench", "search", "--space", "cifar10-m", "--data-dir", str(tmp_path / "none"), "--out", str(out),
                 "--no-progress"]) == 2
    assert f"--data-dir {tmp_path / 'none'} does not exist" in capsys.readouterr().err
    assert not out.exists()


def test_search_config_refuses_a_seed_the_samplers_and_predictors_cannot_take():
    from nas.search import SearchConfig

    assert SearchConfig(seed=2**32 - 1).seed == 2**32 - 1
    with pytest.raises(ValueError, match=r"seed must be at most 4294967295 with 1 worker\(s\)"):
        SearchConfig(seed=2**32)  # refused before the run directory, not after the supernet trained
    with pytest.raises(ValueError, match=r"seed must be at most 4294966295 with 2 worker\(s\)"):
        SearchConfig(seed=2**32 - 1, workers=2)


def test_resume_keeps_the_data_split_its_trials_were_scored_on(run, tmp_path, capsys):
    """A reused supernet retrained with another seed would move the split under a resumed study."""
    sn = tmp_path / "sn"
    shutil.copytree(run.run_dir / "supernet", sn)
    out = tmp_path / "r"
    argv = _reusing(run, out)
    argv[argv.index("--supernet") + 1] = str(sn)
    assert search_main(argv) == 0
    record = json.loads((out / "config.json").read_text())
    assert record["data_seed"] == 0 and record["sessions"] == 1
    sn_config = json.loads((sn / "config.json").read_text())
    (sn / "config.json").write_text(json.dumps({**sn_config, "seed": 3}))  # "retrained" with seed 3
    capsys.readouterr()
    assert search_main(["--out", str(out), "--resume", "--quick", "--trials", "12", "--population-size", "8",
                        "--no-progress", "--format", "safetensors", "--latency-budget-ms", "1000",
                        "--memory-budget-mb", "1000"]) == 2
    assert "scored its trials on the data split of seed 0, but its supernet" in capsys.readouterr().err
    # a run recorded before data_seed existed goes on with its --seed split
    (sn / "config.json").write_text(json.dumps(sn_config))
    del record["data_seed"]
    (out / "config.json").write_text(json.dumps({**record, "seed": 0}))
    assert search_main(["--out", str(out), "--resume", "--quick", "--trials", "12", "--population-size", "8",
                        "--no-progress", "--format", "safetensors", "--latency-budget-ms", "1000",
                        "--memory-budget-mb", "1000"]) == 0
    assert json.loads((out / "config.json").read_text())["data_seed"] == 0
