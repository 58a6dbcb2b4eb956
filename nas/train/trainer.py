"""A small seeded trainer: AdamW, linear warm-up + cosine schedule, label smoothing, and an
optional soft-target (distillation) loss for in-place distillation in supernet training.

One training step is :meth:`Trainer.step`; :func:`train_model` runs whole epochs over a
:class:`~nas.data.DatasetSplits`, selects nothing on the test split (it is only reported),
and returns a :class:`TrainResult` record.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from nas.data import DatasetSplits, augment_batch
from nas.train.config import TrainConfig
from profilers import check_device

__all__ = ["EpochRecord", "TrainResult", "Trainer", "evaluate", "soft_cross_entropy", "train_model"]


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-Σ_k p_k log softmax(logits)_k`` (in-place distillation loss)."""
    if logits.shape != target_probs.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and soft targets {tuple(target_probs.shape)} differ")
    return -(target_probs * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    # No weight decay on biases, norms and layer scales (every parameter with ndim <= 1).
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class Trainer:
    """Owns the optimizer and schedule for one model; :meth:`step` is one update."""

    def __init__(self, model: nn.Module, *, config: TrainConfig, steps_per_epoch: int) -> None:
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        self.model = model
        self.config = config
        self.device = torch.device(config.device)
        self.total_steps = config.epochs * steps_per_epoch
        self.warmup_steps = int(round(config.warmup_epochs * steps_per_epoch))
        self.optimizer = torch.optim.AdamW(_param_groups(model, config.weight_decay), lr=config.lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.lr_factor)
        self.step_count = 0

    def lr_factor(self, step: int) -> float:
        """Multiplier of the base lr at ``step``: linear warm-up, then cosine to min_lr_ratio."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        lo = self.config.min_lr_ratio
        return lo + (1.0 - lo) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def loss(self, logits: torch.Tensor, y: torch.Tensor, soft_targets: torch.Tensor | None = None) -> torch.Tensor:
        if soft_targets is not None:
            return soft_cross_entropy(logits, soft_targets)
        return F.cross_entropy(logits, y, label_smoothing=self.config.label_smoothing)

    def step(self, x: torch.Tensor, y: torch.Tensor, *, soft_targets: torch.Tensor | None = None):
        """One forward/backward/update; returns (loss value, logits detached)."""
        self.model.train()
        logits = self.model(x)
        loss = self.loss(logits, y, soft_targets)
        return self.update(loss), logits.detach()

    def update(self, loss: torch.Tensor) -> float:
        """Backward of ``loss`` and one optimizer + schedule step; returns the loss value.

        A non-finite loss raises ``FloatingPointError`` before any weight changes.
        """
        value = loss.item()
        if not math.isfinite(value):
            raise FloatingPointError(f"non-finite training loss {value} at step {self.step_count}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip_norm is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.step_count += 1
        return value

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "step_count": self.step_count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step_count = int(state["step_count"])


def _check_dataset(data: object, name: str) -> None:
    if isinstance(data, DatasetSplits):
        raise TypeError(f"{name} must be one split (e.g. splits.val or splits.test), not the whole DatasetSplits")
    if not isinstance(data, Dataset):
        raise TypeError(f"{name} must be a torch Dataset of (input, label) pairs, got {type(data).__name__}")


@torch.no_grad()
def evaluate(model: nn.Module, data: TensorDataset, *, device: str = "cpu",
             batch_size: int = 256) -> tuple[float, float]:
    """(mean cross-entropy loss, accuracy in [0, 1]) of ``model`` on ``data``."""
    check_device(device, available=True)
    _check_dataset(data, "data")
    model.eval()
    total_loss, correct, n = 0.0, 0, 0
    for x, y in DataLoader(data, batch_size=batch_size):
        x, y = x.to(device), y.to(device)
        logits = model(x)
        total_loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(dim=-1) == y).sum().item()
        n += y.numel()
    return total_loss / max(n, 1), correct / max(n, 1)


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    lr: float
    seconds: float


@dataclass
class TrainResult:
    """What one run produced; ``test_acc`` is reported, never used for selection."""

    config: TrainConfig
    history: list[EpochRecord] = field(default_factory=list)
    test_loss: float = float("nan")
    test_acc: float = float("nan")
    params: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "history": [asdict(r) for r in self.history],
            "test_loss": self.test_loss,
            "test_acc": self.test_acc,
            "params": self.params,
            "seconds": self.seconds,
        }


@torch.no_grad()
def _check_outputs(model: nn.Module, splits: DatasetSplits, device: torch.device) -> None:
    """One eval-mode forward of one training sample: the model must give a logit per class."""
    was_training = model.training
    model.eval()
    try:
        logits = model(splits.train[:1][0].to(device))
    finally:
        model.train(was_training)
    if logits.ndim != 2 or logits.shape[-1] != splits.num_classes:
        raise ValueError(f"the model gives outputs of shape {tuple(logits.shape)} for one input, but dataset "
                         f"{splits.name!r} has {splits.num_classes} classes: build it with "
                         f"num_classes={splits.num_classes}")


def train_model(model: nn.Module, splits: DatasetSplits, config: TrainConfig, *, progress: bool = True) -> TrainResult:
    """Train ``model`` on ``splits.train``, track ``splits.val`` per epoch, report ``splits.test``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch nn.Module, got {type(model).__name__}")
    if not isinstance(splits, DatasetSplits):
        raise TypeError(f"splits must be a DatasetSplits (from nas.data.load_dataset), got {type(splits).__name__}")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    device = torch.device(config.device)
    model.to(device)
    _check_outputs(model, splits, device)
    augment = splits.augment if config.augment is None else config.augment
    gen = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(splits.train, batch_size=config.batch_size, shuffle=True, generator=gen, drop_last=False)
    trainer = Trainer(model, config=config, steps_per_epoch=len(loader))
    result = TrainResult(config=config, params=sum(p.numel() for p in model.parameters()))
    t_start = time.perf_counter()
    bar = tqdm(total=trainer.total_steps, desc="train", unit="step", disable=not progress, leave=False)
    try:
        for epoch in range(1, config.epochs + 1):
            t0 = time.perf_counter()
            loss_sum, correct, seen = 0.0, 0, 0
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                x = augment_batch(x, augment, generator=gen)
                loss, logits = trainer.step(x, y)
                loss_sum += loss * y.numel()
                correct += (logits.argmax(-1) == y).sum().item()
                seen += y.numel()
                bar.update(1)
            val_loss, val_acc = evaluate(model, splits.val, device=config.device)
            record = EpochRecord(
                epoch=epoch, train_loss=loss_sum / seen, train_acc=correct / seen, val_loss=val_loss,
                val_acc=val_acc, lr=trainer.optimizer.param_groups[0]["lr"], seconds=time.perf_counter() - t0,
            )
            result.history.append(record)
            bar.set_postfix(epoch=epoch, loss=f"{record.train_loss:.3f}", val_acc=f"{val_acc:.3f}")
    finally:
        bar.close()
    result.test_loss, result.test_acc = evaluate(model, splits.test, device=config.device)
    result.seconds = time.perf_counter() - t_start
    return result
