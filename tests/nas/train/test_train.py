"""Tests for nas.train (trainer, config) and nas.data.augment: schedule, losses, optimizer groups,
seeded training, config validation and batch augmentation, each against a reference written out here."""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas.data import AUGMENTATIONS, augment_batch, load_dataset
from nas.train import (
    EpochRecord,
    TrainConfig,
    Trainer,
    TrainResult,
    evaluate,
    set_seed,
    soft_cross_entropy,
    train_model,
)
from search_spaces.presets import create_model


def _toy_model() -> nn.Module:
    """Conv + norm + linear: parameters of ndim 4, 2 and 1."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
        nn.LayerNorm(4 * 8 * 8), nn.Linear(4 * 8 * 8, 5),
    )


# ---- learning-rate schedule ------------------------------------------------------------------

def _reference_factor(step: int, *, warmup: int, total: int, lo: float) -> float:
    """Linear warm-up (step+1)/warmup, then cosine from 1 to ``lo`` over the remaining steps."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / (total - warmup))
    return lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * progress))


def test_lr_factor_matches_warmup_cosine_formula():
    # 10 epochs x 8 steps = 80 steps, warm-up 1.5 epochs = 12 steps.
    cfg = TrainConfig(epochs=10, warmup_epochs=1.5, min_lr_ratio=0.05, lr=1e-2)
    trainer = Trainer(_toy_model(), config=cfg, steps_per_epoch=8)
    assert trainer.warmup_steps == 12 and trainer.total_steps == 80
    for step in range(0, 81):
        expected = _reference_factor(step, warmup=12, total=80, lo=0.05)
        assert trainer.lr_factor(step) == pytest.approx(expected, rel=1e-12, abs=1e-15), step
    # Landmarks written out by hand.
    assert trainer.lr_factor(0) == pytest.approx(1 / 12)             # first step
    assert trainer.lr_factor(11) == pytest.approx(1.0)               # last warm-up step
    assert trainer.lr_factor(12) == pytest.approx(1.0)               # cosine starts at the peak
    assert trainer.lr_factor(46) == pytest.approx(0.05 + 0.95 * 0.5)  # progress 34/68 = 1/2
    assert trainer.lr_factor(79) == pytest.approx(
        0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * 67 / 68)))      # last step
    assert trainer.lr_factor(80) == pytest.approx(0.05)              # end of schedule
    assert trainer.lr_factor(500) == pytest.approx(0.05)             # clamped past the end


def test_lr_factor_without_warmup_starts_at_peak():
    cfg = TrainConfig(epochs=2, warmup_epochs=0.0, min_lr_ratio=0.0)
    trainer = Trainer(_toy_model(), config=cfg, steps_per_epoch=5)
    assert trainer.warmup_steps == 0
    assert trainer.lr_factor(0) == pytest.approx(1.0)
    assert trainer.lr_factor(5) == pytest.approx(0.5)  # progress 5/10
    assert trainer.lr_factor(10) == pytest.approx(0.0, abs=1e-15)


def test_optimizer_lr_follows_factor_after_each_step():
    cfg = TrainConfig(epochs=3, batch_size=4, lr=3e-3, warmup_epochs=1.0, min_lr_ratio=0.1)
    model = _toy_model()
    trainer = Trainer(model, config=cfg, steps_per_epoch=4)  # 12 steps, warm-up 4
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(4, 1, 8, 8, generator=gen), torch.randint(0, 5, (4,), generator=gen)
    for group in trainer.optimizer.param_groups:
        assert group["lr"] == pytest.approx(3e-3 * _reference_factor(0, warmup=4, total=12, lo=0.1))
    for k in range(1, 13):
        trainer.step(x, y)
        assert trainer.step_count == k
        expected = 3e-3 * _reference_factor(k, warmup=4, total=12, lo=0.1)
        for group in trainer.optimizer.param_groups:
            assert group["lr"] == pytest.approx(expected, rel=1e-12), k


def test_trainer_rejects_zero_steps_per_epoch():
    with pytest.raises(ValueError, match="steps_per_epoch"):
        Trainer(_toy_model(), config=TrainConfig(), steps_per_epoch=0)


# ---- losses ----------------------------------------------------------------------------------

def test_soft_cross_entropy_matches_hand_formula():
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(6, 5, generator=gen)
    p = torch.softmax(torch.randn(6, 5, generator=gen), dim=-1)
    # -(1/B) Σ_b Σ_k p_bk (z_bk - log Σ_j exp z_bj), written without log_softmax
    log_probs = z - torch.logsumexp(z, dim=-1, keepdim=True)
    expected = -(p * log_probs).sum(-1).mean()
    assert torch.allclose(soft_cross_entropy(z, p), expected, rtol=1e-6, atol=1e-7)
    expected_loop = -sum(
        sum(p[b, k].item() * (z[b, k].item() - math.log(sum(math.exp(v) for v in z[b].tolist())))
            for k in range(5)) for b in range(6)) / 6
    assert soft_cross_entropy(z, p).item() == pytest.approx(expected_loop, rel=1e-5)


def test_soft_cross_entropy_equals_cross_entropy_for_one_hot():
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(7, 4, generator=gen)
    y = torch.randint(0, 4, (7,), generator=gen)
    p = F.one_hot(y, 4).float()
    assert torch.allclose(soft_cross_entropy(z, p), F.cross_entropy(z, y), rtol=1e-6, atol=1e-7)


def test_soft_cross_entropy_shape_mismatch_raises():
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(3, 5\)"):
        soft_cross_entropy(torch.zeros(3, 4), torch.zeros(3, 5))


@pytest.mark.parametrize("ls", [0.0, 0.1, 0.3])
def test_trainer_loss_uses_label_smoothing(ls):
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(8, 5, generator=gen)
    y = torch.randint(0, 5, (8,), generator=gen)
    trainer = Trainer(_toy_model(), config=TrainConfig(label_smoothing=ls), steps_per_epoch=1)
    got = trainer.loss(z, y)
    assert torch.allclose(got, F.cross_entropy(z, y, label_smoothing=ls), rtol=1e-6, atol=1e-7)
    # Smoothed target: (1 - ls) on the label plus ls/K on every class.
    log_probs = torch.log_softmax(z, dim=-1)
    nll = -log_probs.gather(1, y[:, None]).squeeze(1)
    uniform = -log_probs.mean(dim=-1)
    expected = ((1 - ls) * nll + ls * uniform).mean()
    assert torch.allclose(got, expected, rtol=1e-6, atol=1e-7)
    if ls > 0:
        assert not torch.allclose(got, F.cross_entropy(z, y))


def test_trainer_loss_with_soft_targets_is_soft_cross_entropy():
    gen = torch.Generator().manual_seed(4)
    z = torch.randn(5, 3, generator=gen)
    y = torch.randint(0, 3, (5,), generator=gen)
    p = torch.softmax(torch.randn(5, 3, generator=gen), dim=-1)
    trainer = Trainer(_toy_model(), config=TrainConfig(label_smoothing=0.2), steps_per_epoch=1)
    expected = -(p * torch.log_softmax(z, -1)).sum(-1).mean()
    assert torch.allclose(trainer.loss(z, y, soft_targets=p), expected, rtol=1e-6, atol=1e-7)


# ---- optimizer parameter groups ------------------------------------------------------------

@pytest.mark.parametrize("build", [_toy_model, lambda: create_model("quadranet_digits")],
                         ids=["toy", "quadranet_digits"])
def test_weight_decay_groups_by_ndim(build):
    model = build()
    frozen = next(p for p in model.parameters() if p.ndim > 1)
    frozen.requires_grad_(False)
    trainer = Trainer(model, config=TrainConfig(weight_decay=0.123), steps_per_epoch=1)
    wd_of: dict[int, float] = {}
    for group in trainer.optimizer.param_groups:
        for p in group["params"]:
            assert id(p) not in wd_of, "a parameter is in two groups"
            wd_of[id(p)] = group["weight_decay"]
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert set(wd_of) == {id(p) for p in trainable}
    assert id(frozen) not in wd_of
    n_no_decay = 0
    for p in trainable:
        if p.ndim <= 1:
            assert wd_of[id(p)] == 0.0
            n_no_decay += 1
        else:
            assert wd_of[id(p)] == 0.123
    assert 0 < n_no_decay < len(trainable)


# ---- non-finite loss -------------------------------------------------------------------------

class _NaNHead(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) * self.value


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_loss_raises_and_leaves_weights(value):
    model = _NaNHead(value)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(model, config=TrainConfig(), steps_per_epoch=1)
    with pytest.raises(FloatingPointError, match="non-finite training loss"):
        trainer.step(torch.ones(2, 4), torch.tensor([0, 1]))
    assert trainer.step_count == 0
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


# ---- seeded training on a learnable synthetic task -----------------------------------------

def _synthetic():
    return load_dataset("synthetic", input_shape=(1, 8, 8), num_classes=4, n_train=128, n_val=32, n_test=32)


def _run(splits, seed: int, epochs: int = 8) -> tuple[TrainResult, nn.Module]:
    set_seed(seed)
    model = create_model("quadranet_digits", num_classes=4)
    cfg = TrainConfig(epochs=epochs, batch_size=32, lr=2e-3, seed=seed)
    return train_model(model, splits, cfg, progress=False), model


def _without_time(history: list[EpochRecord]) -> list[tuple]:
    return [(r.epoch, r.train_loss, r.train_acc, r.val_loss, r.val_acc, r.lr) for r in history]


def test_train_model_is_deterministic_and_learns():
    splits = _synthetic()
    set_seed(0)
    untrained = create_model("quadranet_digits", num_classes=4)
    _, untrained_val_acc = evaluate(untrained, splits.val)

    first, model_a = _run(splits, seed=0)
    second, model_b = _run(splits, seed=0)
    assert _without_time(first.history) == _without_time(second.history)
    assert (first.test_loss, first.test_acc) == (second.test_loss, second.test_acc)
    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    assert state_a.keys() == state_b.keys()
    for k in state_a:
        assert torch.equal(state_a[k], state_b[k]), k

    # Record contents.
    assert [r.epoch for r in first.history] == list(range(1, 9))
    assert first.params == sum(p.numel() for p in model_a.parameters())
    assert first.history[-1].lr == pytest.approx(2e-3 * _reference_factor(32, warmup=4, total=32, lo=0.01))
    assert first.to_dict()["history"][0]["val_acc"] == first.history[0].val_acc
    # The reported test numbers are evaluate() on the test split.
    assert (first.test_loss, first.test_acc) == pytest.approx(evaluate(model_a, splits.test))

    # Learns: chance is 1/4, the majority class of val is at most 11/32.
    labels = splits.val.tensors[1]
    majority = torch.bincount(labels, minlength=4).max().item() / len(labels)
    final_val = first.history[-1].val_acc
    assert final_val >= 0.45
    assert final_val > majority and final_val > untrained_val_acc
    assert first.history[-1].train_loss < first.history[0].train_loss
    assert first.history[-1].train_acc > 0.9


def test_train_model_seed_changes_the_run():
    splits = _synthetic()
    a, model_a = _run(splits, seed=0, epochs=1)
    b, model_b = _run(splits, seed=1, epochs=1)
    assert _without_time(a.history) != _without_time(b.history)
    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    assert any(not torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_train_model_data_order_comes_from_config_seed():
    """Same initial weights, different global RNG state: config.seed alone fixes the run."""
    splits = _synthetic()
    set_seed(0)
    init = create_model("quadranet_digits", num_classes=4).state_dict()
    histories = []
    for global_seed in (11, 12):
        model = create_model("quadranet_digits", num_classes=4)
        model.load_state_dict(init)
        torch.manual_seed(global_seed)
        result = train_model(model, splits, TrainConfig(epochs=2, batch_size=32, seed=3), progress=False)
        histories.append(_without_time(result.history))
    assert histories[0] == histories[1]


def test_set_seed_seeds_python_and_torch():
    set_seed(7)
    first = (random.random(), torch.rand(3))
    random.random(), torch.rand(3)
    set_seed(7)
    second = (random.random(), torch.rand(3))
    assert first[0] == second[0] and torch.equal(first[1], second[1])
    set_seed(8)
    assert random.random() != first[0]


# ---- TrainConfig validation ------------------------------------------------------------------

@pytest.mark.parametrize("field,value", [
    ("epochs", 0),
    ("epochs", 2.5),
    ("batch_size", -1),
    ("batch_size", 0),
    ("lr", 0.0),
    ("lr", -1e-3),
    ("lr", float("nan")),
    ("label_smoothing", 1.0),
    ("label_smoothing", -0.1),
    ("weight_decay", -0.01),
    ("warmup_epochs", -1.0),
    ("min_lr_ratio", 1.5),
    ("min_lr_ratio", -0.1),
    ("augment", "mixup"),
    ("device", "not_a_device"),
    ("device", "mps"),   # parsed by torch.device but not supported here
    ("device", "meta"),
    ("device", "CPU"),
    ("device", "cuda:x"),
    ("lr", float("inf")),
    ("weight_decay", float("inf")),
    ("warmup_epochs", float("inf")),
    ("grad_clip_norm", 0.0),
    ("grad_clip_norm", -1.0),
    ("grad_clip_norm", float("inf")),
    ("label_smoothing", "0.1"),  # a string: named, not a bare TypeError from the comparison
    ("min_lr_ratio", "0.1"),
    ("grad_clip_norm", "1"),
])
def test_train_config_rejects_bad_field(field, value):
    with pytest.raises(ValueError, match=rf"^{field} ") as info:
        TrainConfig(**{field: value})
    assert repr(value) in str(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error shown when CUDA is missing")
def test_train_config_rejects_cuda_without_cuda():
    with pytest.raises(ValueError, match=r"^device 'cuda': no CUDA device is available here \(torch .+\); "
                                         r"use device='cpu'$"):
        TrainConfig(device="cuda")


@pytest.mark.parametrize("field", ["lr", "weight_decay", "warmup_epochs"])
@pytest.mark.parametrize("value", [float("inf"), float("-inf")])
def test_train_config_rejects_infinite_values(field, value):
    with pytest.raises(ValueError, match=rf"^{field} must be a finite number >=? 0, got -?inf$"):
        TrainConfig(**{field: value})


@pytest.mark.parametrize("field", ["weight_decay", "warmup_epochs", "lr", "label_smoothing", "min_lr_ratio"])
def test_train_config_rejects_nan(field):
    with pytest.raises(ValueError, match=rf"^{field} "):
        TrainConfig(**{field: float("nan")})


@pytest.mark.parametrize("field, value", [("epochs", True), ("batch_size", True), ("seed", -1), ("seed", 1.5)])
def test_train_config_rejects_bools_and_bad_seeds(field, value):
    with pytest.raises(ValueError, match=rf"^{field} "):
        TrainConfig(**{field: value})


def test_train_config_bad_augment_lists_valid_kinds():
    with pytest.raises(ValueError) as info:
        TrainConfig(augment="mixup")
    for kind in AUGMENTATIONS:
        assert kind in str(info.value)


def test_train_config_accepts_valid_values():
    cfg = TrainConfig(epochs=1, batch_size=1, lr=1e-5, weight_decay=0.0, label_smoothing=0.0,
                      warmup_epochs=0.0, min_lr_ratio=1.0, grad_clip_norm=1.0, augment="crop_flip",
                      device="cpu")
    assert cfg.augment == "crop_flip" and cfg.grad_clip_norm == 1.0


# ---- augment_batch ---------------------------------------------------------------------------

def _images(b: int = 6, c: int = 2, h: int = 8, w: int = 10, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_augment_none_is_identity():
    x = _images()
    out = augment_batch(x, "none", generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, x)


def test_augment_crop_flip_shape_and_determinism():
    x = _images(b=16)
    a = augment_batch(x, "crop_flip", generator=torch.Generator().manual_seed(5))
    b = augment_batch(x, "crop_flip", generator=torch.Generator().manual_seed(5))
    c = augment_batch(x, "crop_flip", generator=torch.Generator().manual_seed(6))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(x, _images(b=16)), "input modified in place"


def _matching_crops(sample: torch.Tensor, out: torch.Tensor, pad: int = 4) -> list[tuple[int, int, bool]]:
    """All (dy, dx, flip) whose crop of the zero-padded ``sample`` (optionally flipped) is ``out``."""
    c, h, w = sample.shape
    padded = torch.zeros(c, h + 2 * pad, w + 2 * pad)
    padded[:, pad:pad + h, pad:pad + w] = sample
    hits = []
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[:, dy:dy + h, dx:dx + w]
            for flip in (False, True):
                if torch.equal(crop.flip(-1) if flip else crop, out):
                    hits.append((dy, dx, flip))
    return hits


def test_augment_crop_flip_outputs_are_padded_crops():
    x = _images(b=24, seed=1)
    out = augment_batch(x, "crop_flip", generator=torch.Generator().manual_seed(0))
    found = []
    for i in range(len(x)):
        hits = _matching_crops(x[i], out[i])
        assert len(hits) == 1, (i, hits)  # Gaussian images: the crop is unique
        found.append(hits[0])
    # Not the identity: offsets and flips vary across the batch.
    assert len({(dy, dx) for dy, dx, _ in found}) > 1
    assert {f for _, _, f in found} == {False, True}
    # Same draws as written out here: dy, dx ~ U{0..8}, flip with probability 1/2.
    gen = torch.Generator().manual_seed(0)
    dy = torch.randint(0, 9, (24,), generator=gen).tolist()
    dx = torch.randint(0, 9, (24,), generator=gen).tolist()
    flip = (torch.rand(24, generator=gen) < 0.5).tolist()
    assert found == list(zip(dy, dx, flip))


def test_augment_unknown_kind_lists_valid():
    with pytest.raises(ValueError, match="mixup") as info:
        augment_batch(_images(), "mixup")
    for kind in AUGMENTATIONS:
        assert kind in str(info.value)


def test_train_config_refuses_a_warmup_longer_than_training():
    assert TrainConfig(epochs=2, warmup_epochs=2.0).warmup_epochs == 2.0
    with pytest.raises(ValueError, match=r"^warmup_epochs must not exceed epochs \(2\): the lr would never reach lr, "
                                         r"got 50$"):
        TrainConfig(epochs=2, warmup_epochs=50)


def test_train_model_names_wrong_arguments_before_training():
    splits = load_dataset("digits", seed=0)
    model = create_model("quadranet_digits", num_classes=10)
    five = create_model("quadranet_digits", num_classes=5)
    before = [p.detach().clone() for p in five.parameters()]
    with pytest.raises(ValueError, match=r"outputs of shape \(1, 5\) for one input, but dataset 'digits' has 10 "
                                         r"classes: build it with num_classes=10"):
        train_model(five, splits, TrainConfig(epochs=1), progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, five.parameters()))  # refused before any step
    assert five.training  # its mode restored after the check's forward
    with pytest.raises(TypeError, match="splits must be a DatasetSplits"):
        train_model(model, (splits.train, splits.val, splits.test), TrainConfig(epochs=1), progress=False)
    with pytest.raises(TypeError, match="config must be a TrainConfig, got dict"):
        train_model(model, splits, {"epochs": 1}, progress=False)
    with pytest.raises(TypeError, match="model must be a torch nn.Module, got NoneType"):
        train_model(None, splits, TrainConfig(epochs=1), progress=False)


def test_evaluate_names_a_bad_device_or_data():
    splits = load_dataset("digits", seed=0)
    model = create_model("quadranet_digits", num_classes=10)
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda\\[:N\\]', got 'gpu'"):
        evaluate(model, splits.val, device="gpu")
    with pytest.raises(TypeError, match="one split \\(e.g. splits.val or splits.test\\), not the whole DatasetSplits"):
        evaluate(model, splits)
    with pytest.raises(TypeError, match="data must be a torch Dataset of \\(input, label\\) pairs, got list"):
        evaluate(model, [1, 2])
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device is available here"):
            evaluate(model, splits.val, device="cuda")
