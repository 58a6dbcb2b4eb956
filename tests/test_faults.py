"""Faults a long search meets: a training loss that turns NaN, damaged artifacts in a run
directory. Each stops with a message naming what is wrong and leaves every file as it was."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from nas.checkpoint import load_checkpoint
from nas.cli import main, search_main
from nas.search import SearchConfig, run_search
from nas.supernet_train import SandwichLoss, SupernetConfig, train_supernet
from nas.train import TrainConfig

pytestmark = pytest.mark.slow


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    out = tmp_path / "sn"
    calls = {"n": 0}
    forward = SandwichLoss.forward

    def poisoned(self, x, y, archs):
        calls["n"] += 1
        loss = forward(self, x, y, archs)
        return loss * float("nan") if calls["n"] == 13 else loss  # step 13 of 20 per epoch

    monkeypatch.setattr(SandwichLoss, "forward", poisoned)
    code = main(["train-supernet", "--space", "digits-s", "--dataset", "digits", "--epochs", "2",
                 "--checkpoint-every", "5", "--out", str(out), "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err
    assert "training stopped" in err and "non-finite" in err
    state = load_checkpoint(out / "checkpoint.pt", required=("supernet", "global_step"))
    assert state["global_step"] == 10  # the last checkpoint before the NaN step
    assert all(torch.isfinite(v).all() for v in state["supernet"].values() if v.is_floating_point())
    assert not (out / "supernet.safetensors").exists()
    # with the cause gone, --resume continues from that checkpoint to the end
    monkeypatch.setattr(SandwichLoss, "forward", forward)
    result = train_supernet(space="digits-s", dataset="digits", out=out, resume=True, progress=False,
                            config=SupernetConfig(train=TrainConfig(epochs=2), checkpoint_every=5))
    assert result.log["steps"] == 40 and (out / "supernet.safetensors").is_file()


def _resume_argv(run: Path) -> list[str]:
    return ["--out", str(run), "--resume", "--quick", "--trials", "12", "--population-size", "8",
            "--supernet-epochs", "1", "--profile-n", "8", "--no-progress", "--format", "safetensors",
            "--latency-budget-ms", "1000", "--memory-budget-mb", "1000"]


@pytest.fixture(scope="module")
def search_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("faults") / "run"
    run_search(SearchConfig(out=str(out), quick=True, trials=8, population_size=8, supernet_epochs=1, profile_n=8,
                            formats=("safetensors",), latency_budgets_ms=(1000.0,), memory_budgets_mb=(1000.0,)),
               progress=False)
    return out


@pytest.mark.parametrize("victim, damage", [
    ("predictors/latency/model.pkl", "truncate"),
    ("predictors/memory/predictor.json", "garbage"),
    ("supernet/supernet.safetensors", "truncate"),
    ("supernet/config.json", "garbage"),
])
def test_damaged_artifact_in_a_run_is_named_and_nothing_is_overwritten(search_run, tmp_path, capsys, victim, damage):
    run = tmp_path / "run"
    shutil.copytree(search_run, run)
    path = run / victim
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x00not what was written{")
    before = _digest(run)
    code = search_main(_resume_argv(run))
    assert code == 2
    err = capsys.readouterr().err
    assert Path(victim).name in err or str(path.parent) in err
    assert _digest(run) == before  # nothing rewritten, nothing added


def test_corrupt_study_storage_is_named(search_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(search_run, run)
    (run / "study.db").write_bytes(b"this is not a database" * 100)
    for extra in ("study.db-wal", "study.db-shm"):
        (run / extra).unlink(missing_ok=True)
    code = search_main(["--out", str(run), "--resume", "--quick", "--trials", "12", "--population-size", "8",
                        "--no-progress", "--format", "safetensors", "--latency-budget-ms", "1000",
                        "--memory-budget-mb", "1000"])
    assert code == 3
    err = capsys.readouterr().err
    assert "study.db" in err and "storage" in err
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["trials"] == 8  # the record of the run is not rewritten by the failed resume


@pytest.mark.parametrize("damage", [b"\xff\xfe binary garbage \x00", b"arch_id,latency_ms\n1,2\n"])
def test_damaged_profile_table_is_named_and_kept(search_run, tmp_path, capsys, damage):
    run = tmp_path / "run"
    shutil.copytree(search_run, run)
    shutil.rmtree(run / "predictors")  # the resume must profile and fit again, from profiles.csv
    (run / "profiles.csv").write_bytes(damage)
    before = _digest(run)
    code = search_main(_resume_argv(run))
    assert code == 2
    err = capsys.readouterr().err
    assert "profiles.csv" in err
    assert _digest(run) == before
