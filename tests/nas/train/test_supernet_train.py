"""Tests for nas.train.supernet and nas.train.supernet_run (sandwich rule, in-place distillation,
checkpoints/resume, torchrun DDP) and its CLI commands ``train-supernet`` / ``supernet eval``.

References written out here: the sandwich loss as CE + Σ soft-CE with a detached teacher,
``evaluate_arch`` recomputed on saved weights, an uninterrupted run for every resumed one
(same final ``weights_digest``, same history), and every rank's weights for DDP.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import nas.train.supernet as supernet_train
import nas.train.supernet_run as supernet_run
from nas.cli import main
from nas.data import load_dataset
from nas.train import (
    SandwichLoss,
    SupernetConfig,
    TrainConfig,
    evaluate_arch,
    load_checkpoint,
    load_supernet,
    sandwich_archs,
    set_seed,
    train_supernet,
    weights_digest,
)
from search_spaces import space as space_module
from search_spaces.elastic import QuadraSupernet
from search_spaces.space import create_space
from support import REPO
from support.processes import sigkill_when

SPACE = "digits-s"
DATASET = "digits"
_DIST_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
             "GROUP_RANK", "ROLE_RANK", "TORCHELASTIC_RUN_ID")

# The resume recipe of the brief: 2 epochs of ~20 steps (batch 64), a checkpoint every 7 steps.
RESUME_CFG = SupernetConfig(train=TrainConfig(epochs=2, batch_size=64), n_random=1, checkpoint_every=7)


@pytest.fixture(scope="module", autouse=True)
def _single_process():
    """No torchrun variables in this process, so every in-process run is single-process."""
    with pytest.MonkeyPatch.context() as mp:
        for key in _DIST_ENV:
            mp.delenv(key, raising=False)
        yield


def _subprocess_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DIST_ENV}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _steps_per_epoch(batch_size: int, world_size: int = 1) -> int:
    n_train = len(load_dataset(DATASET, seed=0).train)
    return math.ceil(math.ceil(n_train / world_size) / batch_size)


def _files(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir())}


def _history_without(history: list[dict], *drop: str) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in drop} for row in history]


def _run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _logits(supernet: QuadraSupernet, arch, x: torch.Tensor) -> torch.Tensor:
    supernet.eval()
    supernet.set_active(arch)
    with torch.no_grad():
        return supernet(x)


# ---- sandwich_archs ------------------------------------------------------------------------------

def test_sandwich_archs_largest_smallest_then_random():
    sp = create_space(SPACE)
    archs = sandwich_archs(sp, 3, seed=0, n_random=3)
    assert len(archs) == 5
    assert archs[0] == sp.max_arch()
    assert archs[1] == sp.min_arch()
    for arch in archs[2:]:
        assert sp.validate(arch) is arch
    # The module docstring's contract: step s draws from random.Random(f"{seed}:{s}").
    rng = random.Random("0:3")
    assert archs[2:] == [sp.sample(rng) for _ in range(3)]
    assert sandwich_archs(sp, 3, seed=0, n_random=0) == [sp.max_arch(), sp.min_arch()]


def test_sandwich_archs_repeat_for_same_step_and_seed_only():
    sp = create_space(SPACE)
    first = sandwich_archs(sp, 11, seed=5, n_random=2)
    random.seed(123)  # the global generator plays no part
    assert sandwich_archs(sp, 11, seed=5, n_random=2) == first
    random.seed(456)
    assert sandwich_archs(sp, 11, seed=5, n_random=2) == first
    by_step = [tuple(sandwich_archs(sp, s, seed=5, n_random=2)[2:]) for s in range(6)]
    assert len(set(by_step)) == 6, "different steps must draw different random subnets"
    assert sandwich_archs(sp, 11, seed=6, n_random=2)[2:] != first[2:], "the seed must matter"


# ---- SandwichLoss against the formula ------------------------------------------------------------

def _supernet_with_active_blocks(seed: int = 0) -> QuadraSupernet:
    """A supernet whose layer scales are O(1), so every block (and its kernel/width) matters."""
    torch.manual_seed(seed)
    net = QuadraSupernet(create_space(SPACE))
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "gamma" in name:
                p.copy_(0.5 * torch.randn_like(p))
    return net


def _reference_loss(net, x, y, archs, *, label_smoothing, distill, detach_teacher=True):
    """CE(largest, y) + Σ soft-CE(subnet, softmax(largest)) — or Σ CE without distillation."""
    net.set_active(archs[0])
    big = net(x)
    loss = F.cross_entropy(big, y, label_smoothing=label_smoothing)
    probs = big.softmax(dim=-1)
    if detach_teacher:
        probs = probs.detach()
    for arch in archs[1:]:
        net.set_active(arch)
        out = net(x)
        if distill:
            loss = loss + (-(probs * out.log_softmax(dim=-1)).sum(dim=-1)).mean()
        else:
            loss = loss + F.cross_entropy(out, y, label_smoothing=label_smoothing)
    return loss


def _grads(net, loss) -> dict[str, torch.Tensor]:
    net.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.clone() if p.grad is not None else torch.zeros_like(p) for n, p in net.named_parameters()}


@pytest.fixture(scope="module")
def sandwich_case():
    net = _supernet_with_active_blocks()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(6, 1, 8, 8, generator=gen)
    y = torch.randint(0, 10, (6,), generator=gen)
    archs = sandwich_archs(net.space, 4, seed=0, n_random=2)
    return net, x, y, archs


@pytest.mark.parametrize("distill", [True, False])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_sandwich_loss_equals_formula(sandwich_case, distill, label_smoothing):
    net, x, y, archs = sandwich_case
    loss = SandwichLoss(net, label_smoothing=label_smoothing, distill=distill)(x, y, archs)
    ref = _reference_loss(net, x, y, archs, label_smoothing=label_smoothing, distill=distill)
    torch.testing.assert_close(loss, ref, rtol=1e-6, atol=1e-6)
    # The two modes give different numbers (distillation does use the teacher, not the labels).
    other = _reference_loss(net, x, y, archs, label_smoothing=label_smoothing, distill=not distill)
    assert abs(loss.item() - other.item()) > 1e-3


def test_sandwich_loss_teacher_targets_are_detached(sandwich_case):
    net, x, y, archs = sandwich_case
    loss_fn = SandwichLoss(net, label_smoothing=0.1, distill=True)
    got = _grads(net, loss_fn(x, y, archs))
    want = _grads(net, _reference_loss(net, x, y, archs, label_smoothing=0.1, distill=True))
    leaky = _grads(net, _reference_loss(net, x, y, archs, label_smoothing=0.1, distill=True,
                                        detach_teacher=False))
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-7, msg=name)
    # The check can fail: a teacher that is not detached gives visibly different gradients.
    assert max((leaky[n] - want[n]).abs().max().item() for n in want) > 1e-4


# ---- SupernetConfig ------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, exc, text", [
    ({"n_random": -1}, ValueError, "n_random"),
    ({"n_random": True}, ValueError, "n_random"),
    ({"n_random": 1.5}, ValueError, "n_random"),
    ({"checkpoint_every": -1}, ValueError, "checkpoint_every"),
    ({"checkpoint_every": False}, ValueError, "checkpoint_every"),
    ({"checkpoint_every": 2.0}, ValueError, "checkpoint_every"),
    ({"train": {"epochs": 1}}, TypeError, "TrainConfig"),
    ({"train": None}, TypeError, "TrainConfig"),
])
def test_supernet_config_rejects_bad_values(kwargs, exc, text):
    with pytest.raises(exc, match=text):
        SupernetConfig(**kwargs)


def test_supernet_config_round_trips_through_dict():
    cfg = SupernetConfig(train=TrainConfig(epochs=3, batch_size=32, seed=4), n_random=0, distill=False,
                         checkpoint_every=9)
    assert SupernetConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


# ---- a short run: files, weights, history ---------------------------------------------------------

class _RecordingSupernet(QuadraSupernet):
    """QuadraSupernet that remembers its instances, so a test can snapshot weights mid-run."""

    instances: list[QuadraSupernet] = []

    def __init__(self, space):
        super().__init__(space)
        _RecordingSupernet.instances.append(self)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """The uninterrupted reference run of RESUME_CFG, with the weights at the end of epoch 1."""
    out = tmp_path_factory.mktemp("full") / "run"
    per_epoch = _steps_per_epoch(RESUME_CFG.train.batch_size)
    steps, snapshot = [], {}

    def on_step(step: int) -> None:
        steps.append(step)
        if step == per_epoch:  # after the last update of epoch 1, before its evaluation
            snapshot.update({k: v.clone() for k, v in _RecordingSupernet.instances[-1].state_dict().items()})

    _RecordingSupernet.instances = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(supernet_train, "QuadraSupernet", _RecordingSupernet)
        result = train_supernet(space=SPACE, dataset=DATASET, config=RESUME_CFG, out=out, progress=False,
                                on_step=on_step)
    return {"result": result, "out": out, "steps": steps, "epoch1": snapshot, "per_epoch": per_epoch}


def test_run_writes_its_files(full_run):
    out, result = full_run["out"], full_run["result"]
    assert full_run["per_epoch"] == 20  # digits train split 1257 images / batch 64
    assert full_run["steps"] == list(range(1, 2 * 20 + 1))
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.pt", "config.json", "history.csv", "supernet.safetensors", "train_log.json"]
    assert result.run_dir == out
    config = json.loads((out / "config.json").read_text())
    assert (config["space"], config["dataset"], config["seed"], config["world_size"]) == (SPACE, DATASET, 0, 1)
    assert SupernetConfig.from_dict(config["supernet"]) == RESUME_CFG
    log = json.loads((out / "train_log.json").read_text())
    assert log == result.log
    assert (log["steps"], log["epochs"], log["world_size"], log["space"]) == (40, 2, 1, SPACE)
    assert log["rank_weight_digests"] == [weights_digest(result.supernet)]
    ckpt = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert (ckpt["kind"], ckpt["epoch"], ckpt["batches_done"], ckpt["global_step"]) == \
        ("quadranas-supernet", 2, 20, 40)
    assert ckpt["history"] == result.history
    assert ckpt["trainer"]["step_count"] == 40


def test_history_csv_has_one_row_per_epoch(full_run):
    result = full_run["result"]
    with open(full_run["out"] / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert [h["epoch"] for h in result.history] == [1, 2]
    for row, rec in zip(rows, result.history):
        for key in ("train_loss", "val_acc_max", "val_acc_min", "lr"):
            assert float(row[key]) == rec[key], key
    assert result.history[-1]["lr"] == pytest.approx(2e-3 * 0.01)  # cosine ends at min_lr_ratio


def test_history_accuracies_equal_evaluate_arch(full_run):
    result = full_run["result"]
    sp = create_space(SPACE)
    val = load_dataset(DATASET, seed=0).val
    # Epoch 1: the weights snapshotted after its last step.
    net = QuadraSupernet(sp)
    net.load_state_dict(full_run["epoch1"])
    assert result.history[0]["val_acc_max"] == evaluate_arch(net, sp.max_arch(), val)[1]
    assert result.history[0]["val_acc_min"] == evaluate_arch(net, sp.min_arch(), val)[1]
    # Epoch 2 = the final weights, also what train_log.json reports.
    acc_max = evaluate_arch(result.supernet, sp.max_arch(), val)[1]
    acc_min = evaluate_arch(result.supernet, sp.min_arch(), val)[1]
    assert result.history[1]["val_acc_max"] == acc_max == result.log["val_acc_max"]
    assert result.history[1]["val_acc_min"] == acc_min == result.log["val_acc_min"]
    assert acc_max != acc_min  # the two subnets are really different networks
    # evaluate_arch = accuracy written out here.
    net = result.supernet
    x, y = val.tensors
    assert acc_max == (_logits(net, sp.max_arch(), x).argmax(-1) == y).sum().item() / len(y)


def test_load_supernet_gives_identical_outputs(full_run, tmp_path):
    result, out = full_run["result"], full_run["out"]
    sp = create_space(SPACE)
    x = load_dataset(DATASET, seed=0).val.tensors[0][:32]
    loaded, run_config = load_supernet(out)
    assert run_config["space"] == SPACE and run_config["dataset"] == DATASET
    assert weights_digest(loaded) == weights_digest(result.supernet)
    assert not loaded.training
    archs = [sp.max_arch(), sp.min_arch(), sp.sample(random.Random(7))]
    for arch in archs:
        assert torch.equal(_logits(loaded, arch, x), _logits(result.supernet, arch, x))
    # Without supernet.safetensors the latest checkpoint (here: the final one) is used.
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "supernet.safetensors").unlink()
    from_ckpt, _ = load_supernet(copy)
    assert weights_digest(from_ckpt) == weights_digest(result.supernet)
    # ...and the trained weights are not the initial ones.
    set_seed(0)
    assert weights_digest(QuadraSupernet(sp)) != weights_digest(result.supernet)


def test_load_supernet_bad_directories(full_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_supernet(tmp_path)
    bad = tmp_path / "bad"
    shutil.copytree(full_run["out"], bad)
    (bad / "supernet.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match=re.escape(str(bad / "supernet.safetensors"))):
        load_supernet(bad)
    (bad / "supernet.safetensors").unlink()
    (bad / "checkpoint.pt").unlink()
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_supernet(bad)
    (bad / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json"):
        load_supernet(bad)
    for content in ("[1, 2]", '"digits-s"', '{"epochs": 3}'):
        (bad / "config.json").write_text(content)
        with pytest.raises(ValueError, match="expected a JSON object with 'space'"):
            load_supernet(bad)
    # a nas-search run directory: its supernet is named
    search_run = tmp_path / "search"
    search_run.mkdir()
    (search_run / "config.json").write_text(json.dumps({"space": "digits-s", "trials": 60,
                                                        "objectives": ["accuracy", "latency"]}))
    with pytest.raises(ValueError, match=re.escape(f"nas-search run directory, not a supernet's; its supernet is "
                                                   f"in {search_run / 'supernet'}")):
        load_supernet(search_run)


# ---- resume is exact ------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=[14, 17], ids=["at-checkpoint-step", "between-checkpoints"])
def resumed(request, tmp_path_factory):
    """Interrupt RESUME_CFG with KeyboardInterrupt at ``stop`` (14: a checkpoint step; 17: not),
    then resume to completion."""
    stop = request.param
    out = tmp_path_factory.mktemp(f"resume{stop}") / "run"

    def interrupt(step: int) -> None:
        if step == stop:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_supernet(space=SPACE, dataset=DATASET, config=RESUME_CFG, out=out, progress=False, on_step=interrupt)
    after_interrupt = sorted(p.name for p in out.iterdir())
    ckpt = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    steps: list[int] = []
    result = train_supernet(space=SPACE, dataset=DATASET, config=RESUME_CFG, out=out, progress=False,
                            resume=True, on_step=steps.append)
    return {"stop": stop, "out": out, "files_after_interrupt": after_interrupt, "ckpt": ckpt,
            "steps": steps, "result": result}


def test_interruption_leaves_the_last_checkpoint(resumed):
    ckpt = resumed["ckpt"]
    # checkpoint_every=7: the last checkpoint before step 14 or 17 is the one of step 14.
    assert (ckpt["epoch"], ckpt["batches_done"], ckpt["global_step"]) == (1, 14, 14)
    assert ckpt["trainer"]["step_count"] == 14
    assert ckpt["history"] == []
    assert resumed["files_after_interrupt"] == ["checkpoint.pt", "config.json"]


def test_resume_runs_only_the_missing_steps(resumed):
    assert resumed["steps"] == list(range(15, 41))
    assert resumed["result"].log["steps"] == 40


def test_resume_ends_with_identical_weights(resumed, full_run):
    result, ref = resumed["result"], full_run["result"]
    assert weights_digest(result.supernet) == weights_digest(ref.supernet)
    assert result.log["rank_weight_digests"] == ref.log["rank_weight_digests"]
    assert weights_digest(load_supernet(resumed["out"])[0]) == weights_digest(ref.supernet)


def test_resume_ends_with_identical_accuracies(resumed, full_run):
    result, ref = resumed["result"], full_run["result"]
    assert _history_without(result.history, "seconds", "train_loss") == \
        _history_without(ref.history, "seconds", "train_loss")
    assert (result.log["val_acc_max"], result.log["val_acc_min"]) == (ref.log["val_acc_max"], ref.log["val_acc_min"])
    with open(resumed["out"] / "history.csv", newline="") as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == [1, 2]


def test_resume_ends_with_identical_train_loss(resumed, full_run):
    assert _history_without(resumed["result"].history, "seconds") == \
        _history_without(full_run["result"].history, "seconds")


@pytest.fixture(scope="module")
def epoch_end_runs(tmp_path_factory):
    """checkpoint_every equal to the steps per epoch, so a step checkpoint would fall on an epoch's
    last batch, before that epoch is evaluated; interrupt right after epoch 2's last batch and
    resume (from epoch 1's end-of-epoch checkpoint: no step checkpoint may claim epoch 2 done)."""
    batch = 256
    per_epoch = _steps_per_epoch(batch)
    cfg = SupernetConfig(train=TrainConfig(epochs=3, batch_size=batch), n_random=0, checkpoint_every=per_epoch)
    root = tmp_path_factory.mktemp("epoch-end")
    ref = train_supernet(space=SPACE, dataset=DATASET, config=cfg, out=root / "ref", progress=False)

    def interrupt(step: int) -> None:
        if step == 2 * per_epoch:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_supernet(space=SPACE, dataset=DATASET, config=cfg, out=root / "run", progress=False,
                       on_step=interrupt)
    result = train_supernet(space=SPACE, dataset=DATASET, config=cfg, out=root / "run", progress=False,
                            resume=True)
    return ref, result


def test_resume_after_epoch_end_step_checkpoint_ends_with_identical_weights(epoch_end_runs):
    ref, result = epoch_end_runs
    assert weights_digest(result.supernet) == weights_digest(ref.supernet)


def test_resume_after_epoch_end_step_checkpoint_keeps_every_epoch_row(epoch_end_runs):
    ref, result = epoch_end_runs
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert _history_without(result.history, "seconds") == _history_without(ref.history, "seconds")
    assert _history_without(result.history, "seconds") == _history_without(ref.history, "seconds")


# ---- bad input: run directories and resume --------------------------------------------------------

def _train(out, *, config=None, space=SPACE, dataset=DATASET, resume=False):
    return train_supernet(space=space, dataset=dataset, config=config or RESUME_CFG, out=out, progress=False,
                          resume=resume)


def test_occupied_run_directory_is_refused_untouched(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="--resume"):
        _train(out)
    assert _files(out) == {"notes.txt": b"keep me"}
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(FileExistsError, match=re.escape(str(a_file))):
        _train(a_file)
    assert a_file.read_text() == "x"


def test_resume_without_checkpoint_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        _train(tmp_path / "missing", resume=True)
    assert not (tmp_path / "missing").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=re.escape(str(empty / "checkpoint.pt"))):
        _train(empty, resume=True)
    assert list(empty.iterdir()) == []


@pytest.fixture
def run_copy(full_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(full_run["out"], copy)
    return copy


def test_resume_with_another_seed_is_refused(run_copy):
    before = _files(run_copy)
    cfg = replace(RESUME_CFG, train=replace(RESUME_CFG.train, seed=1))
    with pytest.raises(ValueError, match=r"seed=0, not 1") as info:
        _train(run_copy, config=cfg, resume=True)
    assert str(run_copy / "checkpoint.pt") in str(info.value)
    assert _files(run_copy) == before


@pytest.mark.parametrize("change, message", [
    (dict(train=replace(RESUME_CFG.train, batch_size=32)), "train.batch_size=64, not train.batch_size=32"),
    (dict(train=replace(RESUME_CFG.train, lr=0.5, epochs=3)), "train.epochs=2, train.lr=0.002, not train.epochs=3, "
                                                               "train.lr=0.5"),
    (dict(n_random=3, distill=False), "distill=True, n_random=1, not distill=False, n_random=3"),
])
def test_resume_with_another_recipe_is_refused(run_copy, change, message):
    before = _files(run_copy)
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        _train(run_copy, config=replace(RESUME_CFG, **change), resume=True)
    assert str(run_copy / "checkpoint.pt") in str(info.value) and "same settings" in str(info.value)
    assert _files(run_copy) == before  # config.json and the checkpoint are untouched


def test_resume_may_save_more_often_and_keeps_the_recorded_config(run_copy):
    before = (run_copy / "config.json").read_text()
    _train(run_copy, config=replace(RESUME_CFG, checkpoint_every=3), resume=True)  # a finished run: nothing to do
    assert (run_copy / "config.json").read_text() == before


def test_resume_of_a_run_stopped_before_its_first_checkpoint_starts_it_over(full_run, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    shutil.copy(full_run["out"] / "config.json", out / "config.json")  # all a kill in the first steps leaves
    with pytest.raises(FileExistsError, match="--resume"):
        _train(out)
    other = replace(RESUME_CFG, train=replace(RESUME_CFG.train, lr=0.5))
    with pytest.raises(ValueError, match=re.escape(f"{out / 'config.json'} was trained with train.lr=0.002")):
        _train(out, config=other, resume=True)
    result = _train(out, resume=True)
    assert weights_digest(result.supernet) == weights_digest(full_run["result"].supernet)


def test_resume_with_another_space_is_refused(run_copy, monkeypatch):
    # A second space on the same 8x8 digits, registered for this test only.
    monkeypatch.setitem(space_module.SPACES, "digits-s-b", lambda: replace(create_space(SPACE), name="digits-s-b"))
    before = _files(run_copy)
    with pytest.raises(ValueError, match=r"space='digits-s', not 'digits-s-b'"):
        _train(run_copy, space="digits-s-b", resume=True)
    assert _files(run_copy) == before


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_resume_from_corrupted_checkpoint_is_refused(run_copy, damage):
    ckpt = run_copy / "checkpoint.pt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2] if damage == "truncated" else os.urandom(4096))
    before = _files(run_copy)
    with pytest.raises(ValueError, match=re.escape(str(ckpt))):
        _train(run_copy, resume=True)
    assert _files(run_copy) == before, "a failed resume must not overwrite anything"


def test_checkpoint_of_another_command_is_refused(run_copy):
    torch.save({"model": {}}, run_copy / "checkpoint.pt")
    with pytest.raises(ValueError, match="lacks supernet, trainer, rng, config"):
        _train(run_copy, resume=True)


def test_space_and_dataset_shape_mismatch(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError) as info:
        _train(out, space="cifar10-m")
    msg = str(info.value)
    for part in ("cifar10-m", "digits", "(3, 32, 32)", "(1, 8, 8)"):
        assert part in msg
    assert not out.exists()


# ---- a kill mid-write: temporary files, history.csv, train_log.json -------------------------------
# A SIGKILL while a file is written leaves its temporary file (``.NAME.tmp-PID`` or
# ``.NAME.PID-THREAD.tmp``) or, before the end's writes, a history.csv without the last epoch:
# made here by hand, with the PID of a process that has exited.

SMALL_CFG = SupernetConfig(train=TrainConfig(epochs=1, batch_size=256), n_random=0)
RUN_FILES = ["checkpoint.pt", "config.json", "history.csv", "supernet.safetensors", "train_log.json"]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@contextlib.contextmanager
def _live_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("small") / "run"
    return train_supernet(space=SPACE, dataset=DATASET, config=SMALL_CFG, out=out, progress=False)


def _killed_in_first_checkpoint(small_run, out: Path, pid: int) -> Path:
    """What a kill while the first checkpoint is written leaves: config.json and an empty temp file."""
    out.mkdir()
    shutil.copy(small_run.run_dir / "config.json", out / "config.json")
    tmp = out / f".checkpoint.pt.tmp-{pid}"
    tmp.write_bytes(b"")
    return tmp


@pytest.mark.parametrize("how", ["resume", "finished_supernet"])
@pytest.mark.parametrize("writer", ["exited", "pid-now-this-process"])
def test_killed_first_checkpoint_write_starts_the_run_over(small_run, tmp_path, how, writer):
    out = tmp_path / "run"
    tmp = _killed_in_first_checkpoint(small_run, out, _dead_pid() if writer == "exited" else os.getpid())
    before = _files(out)
    with pytest.raises(FileExistsError, match="already holds files; pass --resume"):  # as with config.json alone
        _train(out, config=SMALL_CFG)
    assert _files(out) == before
    if how == "resume":
        result = _train(out, config=SMALL_CFG, resume=True)
    else:
        result = supernet_train.finished_supernet(space=SPACE, dataset=DATASET, config=SMALL_CFG, out=out,
                                                  progress=False)
    assert not tmp.exists()
    assert sorted(p.name for p in out.iterdir()) == RUN_FILES
    supernet = result if how == "finished_supernet" else result.supernet
    assert weights_digest(supernet) == weights_digest(small_run.supernet)
    assert (out / "config.json").read_bytes() == (small_run.run_dir / "config.json").read_bytes()


def test_killed_config_write_alone_counts_as_an_empty_directory(small_run, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    tmp = out / f".config.json.{_dead_pid()}-139872.tmp"  # the previous version's text-writer scheme
    tmp.write_text('{"spa')
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):  # as an empty directory
        _train(out, config=SMALL_CFG, resume=True)
    assert tmp.exists()
    result = _train(out, config=SMALL_CFG)
    assert sorted(p.name for p in out.iterdir()) == RUN_FILES
    assert weights_digest(result.supernet) == weights_digest(small_run.supernet)
    again = tmp_path / "again"
    again.mkdir()
    (again / tmp.name).write_text('{"spa')
    net = supernet_train.finished_supernet(space=SPACE, dataset=DATASET, config=SMALL_CFG, out=again, progress=False)
    assert weights_digest(net) == weights_digest(small_run.supernet)
    assert sorted(p.name for p in again.iterdir()) == RUN_FILES


def test_resume_removes_killed_writers_temp_files_only(run_copy):
    dead = _dead_pid()
    leftovers = [f".checkpoint.pt.tmp-{dead}", f".history.csv.{dead}-1.tmp", f".train_log.json.{dead}-2.tmp",
                 f".supernet.safetensors.tmp-{dead}"]
    for name in leftovers:
        (run_copy / name).write_bytes(b"half")
    others = {".notes.txt.tmp-1": b"not ours", "checkpoint.pt.tmp-1": b"no dot: not a temp file of ours"}
    for name, data in others.items():
        (run_copy / name).write_bytes(data)
    _train(run_copy, resume=True)
    assert not any((run_copy / name).exists() for name in leftovers)
    assert {name: (run_copy / name).read_bytes() for name in others} == others


def test_temp_file_of_a_live_writer_is_kept_and_the_run_refused(small_run, full_run, tmp_path):
    with _live_pid() as pid:
        out = tmp_path / "run"
        tmp = _killed_in_first_checkpoint(small_run, out, pid)
        (tmp_path / "fresh").mkdir()
        fresh_tmp = tmp_path / "fresh" / f".config.json.{pid}-5.tmp"
        fresh_tmp.write_text("{")
        finished = tmp_path / "finished"
        shutil.copytree(full_run["out"], finished)
        (finished / tmp.name).write_bytes(b"")
        for run_dir, resume in ((out, True), (out, False), (tmp_path / "fresh", False), (finished, True)):
            before = _files(run_dir)
            with pytest.raises(FileExistsError, match=rf"being written by process {pid}: another run is using"):
                _train(run_dir, config=SMALL_CFG if run_dir != finished else None, resume=resume)
            assert _files(run_dir) == before, run_dir
        with pytest.raises(FileExistsError, match=rf"being written by process {pid}"):
            supernet_train.finished_supernet(space=SPACE, dataset=DATASET, config=SMALL_CFG, out=out, progress=False)
        code, _, err = _run_cli(CLI_TRAIN + ["--out", str(out), "--resume"])
        assert code == 2 and f"being written by process {pid}" in err
        assert tmp.exists() and fresh_tmp.exists()


@pytest.mark.skipif(not Path("/proc/self/stat").is_file() or os.name == "nt", reason="process start times: Linux")
def test_temp_file_whose_pid_was_reused_after_it_was_written_is_stale(run_copy):
    with _live_pid() as pid:  # a process started after the temp file was last written cannot be its writer
        tmp = run_copy / f".checkpoint.pt.tmp-{pid}"
        tmp.write_bytes(b"")
        os.utime(tmp, (time.time() - 3600, time.time() - 3600))
        _train(run_copy, resume=True)
        assert not tmp.exists()


@pytest.mark.parametrize("damage", ["empty", "last-epoch-missing", "missing"])
def test_resume_of_a_finished_run_rewrites_a_cut_history(run_copy, full_run, damage):
    """A kill in the last epoch after its checkpoint: history.csv empty (cut while written, before it
    was atomic), without the last epoch, or not yet written; the end's files may be missing too."""
    expected = (run_copy / "history.csv").read_bytes()
    if damage == "empty":
        (run_copy / "history.csv").write_bytes(b"")
    elif damage == "last-epoch-missing":
        (run_copy / "history.csv").write_bytes(b"".join(expected.splitlines(keepends=True)[:-1]))
    else:
        for name in ("history.csv", "train_log.json", "supernet.safetensors"):
            (run_copy / name).unlink()
    result = _train(run_copy, resume=True)
    assert (run_copy / "history.csv").read_bytes() == expected
    with open(run_copy / "history.csv", newline="") as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == [1, 2]
    assert result.history == full_run["result"].history
    assert sorted(p.name for p in run_copy.iterdir()) == RUN_FILES
    assert weights_digest(load_supernet(run_copy)[0]) == weights_digest(full_run["result"].supernet)


def test_history_csv_is_written_atomically(tmp_path, monkeypatch):
    rows = [{"epoch": 1, "train_loss": 1.5}, {"epoch": 2, "train_loss": 1.25}]
    supernet_run.write_history(tmp_path, rows)
    before = (tmp_path / "history.csv").read_bytes()
    assert before == b"epoch,train_loss\r\n1,1.5\r\n2,1.25\r\n"

    def crash(self, rows):  # the process dies while the rows are written
        raise KeyboardInterrupt

    monkeypatch.setattr(csv.DictWriter, "writerows", crash)
    with pytest.raises(KeyboardInterrupt):
        supernet_run.write_history(tmp_path, rows + [{"epoch": 3, "train_loss": 1.0}])
    assert _files(tmp_path) == {"history.csv": before}


def test_train_log_keeps_the_training_time_of_every_session(full_run, resumed, run_copy):
    # uninterrupted: one session
    log = full_run["result"].log
    assert log["seconds"] == log["seconds_this_session"] > 0
    assert 0 < torch.load(full_run["out"] / "checkpoint.pt", weights_only=False)["seconds"] <= log["seconds"]
    # interrupted, then resumed: the first session's time up to its last checkpoint counts too
    before = resumed["ckpt"]["seconds"]
    log = resumed["result"].log
    assert before > 0 and log["seconds_this_session"] > 0
    assert log["seconds"] == pytest.approx(before + log["seconds_this_session"], rel=1e-12)
    assert json.loads((resumed["out"] / "train_log.json").read_text()) == log
    # resuming a finished run trains nothing and keeps the total
    ckpt = torch.load(run_copy / "checkpoint.pt", weights_only=False)
    log = _train(run_copy, resume=True).log
    assert log["seconds"] == pytest.approx(ckpt["seconds"] + log["seconds_this_session"], rel=1e-12)
    assert log["seconds"] >= ckpt["seconds"] > 10 * log["seconds_this_session"]
    assert json.loads((run_copy / "train_log.json").read_text())["seconds"] == log["seconds"]
    # a checkpoint written before the total was kept: at least the finished epochs' time
    del ckpt["seconds"]
    torch.save(ckpt, run_copy / "checkpoint.pt")
    log = _train(run_copy, resume=True).log
    assert log["seconds"] >= sum(row["seconds"] for row in ckpt["history"]) > 0


# ---- CLI -------------------------------------------------------------------------------------------

CLI_TRAIN = ["train-supernet", "--space", SPACE, "--dataset", DATASET, "--epochs", "1", "--batch-size", "256",
             "--n-random", "1", "--no-progress"]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    code, stdout, stderr = _run_cli(CLI_TRAIN + ["--out", str(out)])
    return {"out": out, "code": code, "stdout": stdout, "stderr": stderr}


def test_cli_train_supernet_prints_run_dir_and_accuracies(cli_run):
    assert cli_run["code"] == 0, cli_run["stderr"]
    out, stdout = cli_run["out"], cli_run["stdout"]
    assert f"run directory: {out}" in stdout.splitlines()
    log = json.loads((out / "train_log.json").read_text())
    assert log["steps"] == _steps_per_epoch(256) == 5
    m = re.search(r"largest=(\d+\.\d\d)% smallest=(\d+\.\d\d)%", stdout)
    assert m, stdout
    sp = create_space(SPACE)
    net, _ = load_supernet(out)
    val = load_dataset(DATASET, seed=0).val
    assert m.group(1) == f"{100 * evaluate_arch(net, sp.max_arch(), val)[1]:.2f}" == f"{100 * log['val_acc_max']:.2f}"
    assert m.group(2) == f"{100 * evaluate_arch(net, sp.min_arch(), val)[1]:.2f}" == f"{100 * log['val_acc_min']:.2f}"
    cfg = SupernetConfig.from_dict(json.loads((out / "config.json").read_text())["supernet"])
    assert (cfg.n_random, cfg.train.epochs, cfg.train.batch_size, cfg.distill) == (1, 1, 256, True)


@pytest.mark.parametrize("which", ["--max", "--min"])
def test_cli_supernet_eval_matches_evaluate_arch(cli_run, tmp_path, which):
    arch_file = tmp_path / "A.json"
    code, _, err = _run_cli(["space", "sample", SPACE, which, "--out", str(arch_file)])
    assert code == 0, err
    code, stdout, err = _run_cli(["supernet", "eval", "--checkpoint", str(cli_run["out"]), "--arch", str(arch_file)])
    assert code == 0, err
    m = re.search(r"inherited val_acc=(\d+\.\d\d)%", stdout)
    assert m, stdout
    sp = create_space(SPACE)
    arch = sp.max_arch() if which == "--max" else sp.min_arch()
    net, _ = load_supernet(cli_run["out"])
    acc = evaluate_arch(net, arch, load_dataset(DATASET, seed=0).val)[1]
    assert m.group(1) == f"{100 * acc:.2f}"
    assert arch.arch_id in stdout


def _broken_arch(kind: str) -> tuple[dict, str]:
    data = create_space(SPACE).max_arch().to_dict()
    if kind == "unknown-field":
        data["stages"][0]["blocks"][0]["dilation"] = 2
        return data, "stages[0].blocks[0].dilation"
    data["stages"][1]["blocks"][0]["kernel_size"] = 9
    return data, "stages[1].blocks[0].kernel_size"


@pytest.mark.parametrize("kind", ["unknown-field", "kernel-9"])
def test_cli_supernet_eval_malformed_arch_file(cli_run, tmp_path, kind):
    data, field_path = _broken_arch(kind)
    arch_file = tmp_path / "bad.json"
    arch_file.write_text(json.dumps(data))
    code, stdout, err = _run_cli(["supernet", "eval", "--checkpoint", str(cli_run["out"]), "--arch", str(arch_file)])
    assert code == 2
    assert field_path in err and str(arch_file) in err
    assert stdout == ""


def test_cli_supernet_eval_missing_arch_file(cli_run, tmp_path):
    missing = tmp_path / "nope.json"
    code, _, err = _run_cli(["supernet", "eval", "--checkpoint", str(cli_run["out"]), "--arch", str(missing)])
    assert code == 2 and str(missing) in err


def test_cli_supernet_eval_non_run_directory(tmp_path):
    arch_file = tmp_path / "A.json"
    arch_file.write_text(create_space(SPACE).max_arch().to_json())
    for directory in (tmp_path / "empty", tmp_path / "does-not-exist"):
        if directory.name == "empty":
            directory.mkdir()
        code, stdout, err = _run_cli(["supernet", "eval", "--checkpoint", str(directory), "--arch", str(arch_file)])
        assert code == 2
        assert "not a supernet run directory" in err and str(directory) in err
        assert stdout == ""


def test_cli_train_supernet_bad_directories(tmp_path):
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("keep me")
    code, _, err = _run_cli(CLI_TRAIN + ["--out", str(occupied)])
    assert code == 2 and "--resume" in err and str(occupied) in err
    assert _files(occupied) == {"notes.txt": b"keep me"}
    code, _, err = _run_cli(CLI_TRAIN + ["--out", str(tmp_path / "fresh"), "--resume"])
    assert code == 2 and "no checkpoint at" in err
    assert not (tmp_path / "fresh").exists()


def test_cli_train_supernet_resume_with_another_seed(cli_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(cli_run["out"], copy)
    before = _files(copy)
    code, _, err = _run_cli(CLI_TRAIN + ["--out", str(copy), "--resume", "--seed", "3"])
    assert code == 2 and "seed=0, not 3" in err
    assert _files(copy) == before


def test_cli_train_supernet_shape_mismatch(tmp_path):
    out = tmp_path / "run"
    code, _, err = _run_cli(["train-supernet", "--space", "cifar10-m", "--dataset", DATASET, "--epochs", "1",
                             "--out", str(out), "--no-progress"])
    assert code == 2 and "cifar10-m" in err and "digits" in err
    assert not out.exists()


# ---- a real kill, then --resume --------------------------------------------------------------------

def _cli_cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "nas.cli", "train-supernet", "--space", SPACE, "--dataset", DATASET,
            "--epochs", "3", "--checkpoint-every", "5", "--out", str(out), "--no-progress", *extra]


def _checkpoint_step(path: Path) -> int:
    """The global_step of the checkpoint at ``path`` (-1 while there is none, or it is half visible)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)["global_step"]
    except Exception:  # absent, replaced or being written while we read: try again
        return -1


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    env = _subprocess_env()
    killed, ref = tmp_path / "killed", tmp_path / "ref"
    sigkill_when(_cli_cmd(killed), lambda: _checkpoint_step(killed / "checkpoint.pt") >= 10,
                 log=tmp_path / "killed.log", env=env, what="a checkpoint at step 10")
    assert not (killed / "train_log.json").exists() and not (killed / "supernet.safetensors").exists()
    at_kill = torch.load(killed / "checkpoint.pt", map_location="cpu", weights_only=False)["global_step"]
    assert 10 <= at_kill < 60

    resumed = subprocess.run(_cli_cmd(killed, "--resume"), capture_output=True, text=True, env=env, cwd=REPO,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    full = subprocess.run(_cli_cmd(ref), capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert full.returncode == 0, full.stdout + full.stderr

    digest = weights_digest(load_supernet(ref)[0])
    assert weights_digest(load_supernet(killed)[0]) == digest
    log_killed = json.loads((killed / "train_log.json").read_text())
    log_ref = json.loads((ref / "train_log.json").read_text())
    assert log_killed["rank_weight_digests"] == log_ref["rank_weight_digests"] == [digest]
    assert log_killed["steps"] == log_ref["steps"] == 60


# ---- DDP under torchrun (gloo, 2 CPU processes) ---------------------------------------------------

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_ranks_end_with_the_saved_weights(tmp_path):
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available in this torch build")
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           "-m", "nas.cli", "train-supernet", "--space", SPACE, "--dataset", DATASET, "--epochs", "1",
           "--out", str(out), "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_subprocess_env(), cwd=REPO, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = json.loads((out / "train_log.json").read_text())
    assert log["world_size"] == 2
    assert json.loads((out / "config.json").read_text())["world_size"] == 2
    # Each rank sees half the training images: ceil(ceil(1257 / 2) / 64) = 10 steps.
    assert log["steps"] == _steps_per_epoch(64, world_size=2) == 10
    digests = log["rank_weight_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
    net, _ = load_supernet(out)
    assert weights_digest(net) == digests[0]
    set_seed(0)
    assert weights_digest(QuadraSupernet(create_space(SPACE))) != digests[0], "no training happened"
    assert proc.stdout.count("run directory:") == 1, "only rank 0 prints"


# ---- a planted pickle never runs -------------------------------------------------------------

class _Planted:
    """Unpickled with ``weights_only=False``, this creates the file ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_planted_pickle_in_place_of_a_checkpoint_is_refused_and_never_run(run_copy, tmp_path):
    probe = tmp_path / "probe-ran"
    torch.save({"supernet": _Planted(probe)}, tmp_path / "probe.pt")
    torch.load(tmp_path / "probe.pt", weights_only=False)  # the payload works: an unrestricted load runs it
    assert probe.exists()
    marker = tmp_path / "planted-ran"
    ckpt = run_copy / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=True)
    torch.save({**state, "rng": _Planted(marker)}, ckpt)  # a real checkpoint with one poisoned entry
    before = _files(run_copy)
    for load in (lambda: load_checkpoint(ckpt), lambda: _train(run_copy, resume=True)):
        with pytest.raises(ValueError) as info:
            load()
        assert f"checkpoint {ckpt} was refused" in str(info.value) and "could run code" in str(info.value)
    (run_copy / "supernet.safetensors").unlink()  # a shared --supernet whose weights file is gone: the checkpoint
    with pytest.raises(ValueError, match="was refused"):
        load_supernet(run_copy)
    code, _, err = _run_cli(CLI_TRAIN + ["--out", str(run_copy), "--resume"])
    assert code == 2 and "was refused" in err
    assert not marker.exists()
    assert _files(run_copy) == {k: v for k, v in before.items() if k != "supernet.safetensors"}


def test_checkpoints_of_this_command_hold_data_only(full_run):
    state = torch.load(full_run["out"] / "checkpoint.pt", weights_only=True)  # the restricted unpickler accepts it
    assert {"supernet", "trainer", "rng", "config", "running"} <= set(state)
