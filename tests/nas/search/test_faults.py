"""Faults a long search meets: a training loss that turns NaN, damaged artifacts in a run
directory. Each stops with a message naming what is wrong and leaves every file as it was."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from nas.cli import main, search_main
from nas.search import SearchConfig, run_search
from nas.train import SandwichLoss, SupernetConfig, TrainConfig, load_checkpoint, train_supernet
from support import REPO

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
    ("predictors/latency/model.safetensors", "truncate"),
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
    (run / "study.journal").write_bytes(b"this is not a journal\n" * 100)
    code = search_main(["--out", str(run), "--resume", "--quick", "--trials", "12", "--population-size", "8",
                        "--no-progress", "--format", "safetensors", "--latency-budget-ms", "1000",
                        "--memory-budget-mb", "1000"])
    assert code == 3
    err = capsys.readouterr().err
    assert "study.journal" in err and "storage" in err
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


# ---- Ctrl-C ----------------------------------------------------------------------------------------

def _env_for_subprocess() -> dict:
    import os

    env = os.environ.copy()
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _wait_for(predicate, timeout_s: float) -> None:
    import time

    end = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.1)


def test_ctrl_c_prints_one_line_with_the_way_on(tmp_path, capsys):
    import argparse

    from nas.cli import run_command

    def interrupted(args):
        Path(args.out).mkdir()
        (Path(args.out) / "config.json").write_text("{}")
        raise KeyboardInterrupt

    out = tmp_path / "run"
    args = argparse.Namespace(func=interrupted, command="search", out=str(out))
    assert run_command(args, prog="nas-search") == 130
    assert capsys.readouterr().err == (f"\nnas-search: interrupted; what was done is kept in {out}: continue with "
                                       f"`nas-search --out {out} --resume`\n")
    args = argparse.Namespace(func=interrupted, command="train-supernet", out=str(tmp_path / "sn"))
    assert run_command(args, prog="nas train-supernet") == 130
    assert "run the same command with --resume" in capsys.readouterr().err
    args = argparse.Namespace(func=lambda a: (_ for _ in ()).throw(KeyboardInterrupt), command="export", out=None)
    assert run_command(args, prog="nas export") == 130
    assert capsys.readouterr().err == "\nnas export: interrupted\n"


def test_ctrl_c_stops_a_search_and_its_workers_and_resume_finishes_it(search_run, tmp_path):
    """A real SIGINT to the main process of `nas-search --workers 2`: one line and exit 130, the
    helper stops with it (the study stops growing), and --resume completes the study."""
    import signal
    import subprocess
    import sys
    import time

    import optuna

    out = tmp_path / "w"
    argv = [sys.executable, "-m", "nas.cli", "search", "--out", str(out), "--quick", "--workers", "2",
            "--trials", "5000", "--population-size", "8", "--supernet", str(search_run / "supernet"),
            "--predictors", str(search_run / "predictors"), "--latency-budget-ms", "1000",
            "--memory-budget-mb", "1000", "--format", "safetensors", "--no-progress"]
    # SIGINT back to its default in the child: a test run started in the background (nohup, `&`)
    # ignores it, and a child inherits that, so Python would never raise KeyboardInterrupt
    proc = subprocess.Popen(argv, env=_env_for_subprocess(), stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def complete() -> int:
        if not (out / "study.journal").is_file():  # opening the storage would create the file
            return 0
        try:
            study = optuna.load_study(study_name="nas-search-digits-s", storage=_journal(out))
        except Exception:  # not created yet
            return 0
        return sum(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False))

    try:
        _wait_for(lambda: complete() >= 40 or proc.poll() is not None, 240)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert complete() >= 40, err
    assert proc.returncode == 130, err
    assert "Traceback" not in err and f"continue with `nas-search --out {out} --resume`" in err
    stopped = complete()
    time.sleep(3)
    assert complete() == stopped < 5000  # no orphaned helper keeps adding trials
    assert search_main(["--out", str(out), "--resume", "--quick", "--trials", str(stopped + 8), "--population-size",
                        "8", "--latency-budget-ms", "1000", "--memory-budget-mb", "1000", "--format", "safetensors",
                        "--no-progress"]) == 0
    assert complete() == stopped + 8


def _journal(out: Path):
    from nas.search.storage import create_storage

    return create_storage(f"journal:///{out / 'study.journal'}")
