"""``nas train-supernet``: train a QuadraNet supernet with the sandwich rule and in-place
distillation (Yu & Huang, "Universally Slimmable Networks", ICCV 2019; BigNAS, ECCV 2020).

Each step trains the largest subnet on the labels and, with the largest subnet's soft outputs
as targets (in-place distillation), the smallest subnet and ``n_random`` random ones. The
subnets of step ``s`` are drawn from ``random.Random(f"{seed}:{s}")`` and the batch
augmentation from a generator seeded the same way, so a resumed run repeats exactly what an
uninterrupted run would have done.

The whole sandwich is one forward of :class:`SandwichLoss` (summed losses) and one backward:
that is what lets the same code run under ``torchrun`` with ``DistributedDataParallel``
(gloo on CPU, NCCL on GPU; the largest subnet uses every weight, so no parameter goes
unused). It holds the activations of all subnets of a step at once.

Run directory: ``config.json``, ``checkpoint.pt`` (latest; supernet, optimizer, schedule,
RNG state, counters, history, training time so far — written every ``checkpoint_every`` steps
and at each epoch end), ``history.csv`` (rewritten at each epoch end and at the end, from the
checkpoint's history), and at the end ``train_log.json`` (inherited accuracies of the largest
and smallest subnets, training time in all sessions (``seconds``) and in this one
(``seconds_this_session``), the weight digest of every rank) and last ``supernet.safetensors``.
Every file is written atomically (temporary file + rename). ``resume`` continues from the
checkpoint with the same recipe (only the device and ``checkpoint_every`` may change) and keeps
``config.json``; a resume of a finished run rewrites ``history.csv``, ``train_log.json`` and the
weights. Temporary files left by a killed writer are ignored and removed; one that a live
process on this host is writing makes the run refuse to start (another run is using it).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from nas.data import augment_batch, load_dataset
from nas.rundir import write_json
from nas.train.checkpoint import capture_rng_state, restore_rng_state, save_checkpoint
from nas.train.config import TrainConfig, set_seed
from nas.train.distributed import DistContext, cleanup_distributed, init_distributed, weights_digest
from nas.train.supernet_run import (
    CHECKPOINT,
    WEIGHTS,
    check_data,
    evaluate_arch,
    load_supernet,
    prepare_run,
    remove_dead_writers_files,
    run_entries,
    write_history,
)
from nas.train.trainer import Trainer, soft_cross_entropy
from profilers import backend_for
from search_spaces.arch import ArchConfig
from search_spaces.atomic import write_atomic
from search_spaces.elastic import QuadraSupernet
from search_spaces.space import SearchSpace, create_space

__all__ = ["SandwichLoss", "SupernetConfig", "SupernetResult", "finished_supernet", "sandwich_archs", "train_supernet"]


@dataclass(frozen=True)
class SupernetConfig:
    """The training recipe plus the sandwich rule's settings."""

    train: TrainConfig = field(default_factory=TrainConfig)
    n_random: int = 2  # random subnets per step besides largest and smallest
    distill: bool = True  # in-place distillation from the largest subnet (--no-distill: every subnet learns the labels)
    checkpoint_every: int = 0  # steps between checkpoints (0: epoch ends)

    def __post_init__(self) -> None:
        if not isinstance(self.train, TrainConfig):
            raise TypeError(f"train must be a TrainConfig, got {type(self.train).__name__}")
        if isinstance(self.n_random, bool) or not isinstance(self.n_random, int) or self.n_random < 0:
            raise ValueError(f"n_random must be a non-negative integer, got {self.n_random!r}")
        if isinstance(self.checkpoint_every, bool) or not isinstance(self.checkpoint_every, int) \
                or self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be a non-negative integer, got {self.checkpoint_every!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SupernetConfig:
        data = dict(data)
        return cls(train=TrainConfig(**data.pop("train")), **data)


def sandwich_archs(space: SearchSpace, step: int, *, seed: int, n_random: int) -> list[ArchConfig]:
    """The subnets of training step ``step``: largest, smallest, then ``n_random`` random ones."""
    rng = random.Random(f"{seed}:{step}")
    return [space.max_arch(), space.min_arch()] + [space.sample(rng) for _ in range(n_random)]


class SandwichLoss(nn.Module):
    """Summed loss of one sandwich step; ``archs[0]`` (the largest) is the in-place teacher."""

    def __init__(self, supernet: QuadraSupernet, *, label_smoothing: float, distill: bool) -> None:
        super().__init__()
        self.supernet = supernet
        self.label_smoothing = label_smoothing
        self.distill = distill

    def forward(self, x: torch.Tensor, y: torch.Tensor, archs: list[ArchConfig]) -> torch.Tensor:
        self.supernet.set_active(archs[0])
        logits = self.supernet(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        teacher = logits.detach().softmax(dim=-1)
        for arch in archs[1:]:
            self.supernet.set_active(arch)
            out = self.supernet(x)
            if self.distill:
                loss = loss + soft_cross_entropy(out, teacher)
            else:
                loss = loss + F.cross_entropy(out, y, label_smoothing=self.label_smoothing)
        return loss



@dataclass
class SupernetResult:
    supernet: QuadraSupernet
    run_dir: Path
    history: list[dict[str, Any]]
    log: dict[str, Any]
    is_main: bool = True  # False on the non-zero ranks of a torchrun job



def train_supernet(
    *,
    space: str,
    dataset: str,
    config: SupernetConfig,
    out: str | Path,
    data_dir: str | Path | None = None,
    data_options: dict[str, Any] | None = None,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> SupernetResult:
    """Train (or, with ``resume``, continue training) a supernet; see the module docstring."""
    sp = create_space(space)
    tc = config.train
    out = Path(out)
    data_options = dict(data_options or {})
    splits = load_dataset(dataset, seed=tc.seed, data_dir=data_dir, **data_options)
    check_data(sp, splits)
    run_config = {"space": space, "dataset": dataset, "seed": tc.seed,
                  "data_dir": None if data_dir is None else str(data_dir), "data_options": data_options,
                  "supernet": config.to_dict()}
    ctx = init_distributed(tc.device)
    try:
        state = prepare_run(out, resume, run_config)
        ctx.barrier()  # every rank has checked the directory before the main rank writes to it
        return _train(sp, splits, config, run_config, out, state, ctx, progress, on_step)
    finally:
        cleanup_distributed(ctx)


def _train(sp, splits, config, run_config, out, state, ctx: DistContext, progress, on_step) -> SupernetResult:
    tc = config.train
    device = torch.device(ctx.device)
    if ctx.is_main:  # every rank has ignored these (and refused a live writer's) in prepare_run
        remove_dead_writers_files(out)
    if ctx.is_main and state is None:  # a resume keeps the record of the recipe it continues
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", {**run_config, "world_size": ctx.world_size})
    set_seed(tc.seed)
    supernet = QuadraSupernet(sp).to(device)
    sandwich = SandwichLoss(supernet, label_smoothing=tc.label_smoothing, distill=config.distill)
    model: nn.Module = sandwich
    if ctx.distributed:
        model = DistributedDataParallel(sandwich, device_ids=backend_for(device).ddp_device_ids())
    sampler = DistributedSampler(splits.train, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                 seed=tc.seed, drop_last=False)
    loader = DataLoader(splits.train, batch_size=tc.batch_size, sampler=sampler)
    trainer = Trainer(model, config=tc, steps_per_epoch=len(loader))
    augment = splits.augment if tc.augment is None else tc.augment

    history: list[dict[str, Any]] = []
    epoch, done_in_epoch, step = 1, 0, 0
    running = {"loss_sum": 0.0, "n_steps": 0}  # the epoch in progress, kept across a resume
    seconds_before = 0.0  # training time of the earlier sessions, up to their last checkpoint
    if state is not None:
        supernet.load_state_dict(state["supernet"])
        trainer.load_state_dict(state["trainer"])
        restore_rng_state(state["rng"])
        history = list(state["history"])
        epoch, done_in_epoch, step = state["epoch"], state["batches_done"], state["global_step"]
        running = dict(state["running"])
        # a checkpoint from before "seconds" was kept: at least its finished epochs' time
        seconds_before = float(state.get("seconds", sum(row.get("seconds", 0.0) for row in history)))
        if done_in_epoch >= len(loader):
            epoch, done_in_epoch = epoch + 1, 0

    def checkpoint(ep: int, batches_done: int) -> None:
        if ctx.is_main:
            save_checkpoint(out / CHECKPOINT, {
                "kind": "quadranas-supernet", "config": run_config, "supernet": supernet.state_dict(),
                "trainer": trainer.state_dict(), "rng": capture_rng_state(), "epoch": ep,
                "batches_done": batches_done, "global_step": step, "history": history, "running": running,
                "seconds": seconds_before + time.perf_counter() - t_start,
            })
        ctx.barrier()

    t_start = time.perf_counter()
    bar = tqdm(total=trainer.total_steps, initial=step, desc=f"supernet {sp.name}", unit="step",
               disable=not (progress and ctx.is_main), leave=False)
    try:
        for ep in range(epoch, tc.epochs + 1):
            sampler.set_epoch(ep)
            t0 = time.perf_counter()
            if ep != epoch or done_in_epoch == 0:
                running = {"loss_sum": 0.0, "n_steps": 0}
            for i, (x, y) in enumerate(loader):
                if ep == epoch and i < done_in_epoch:
                    continue  # already trained before the interruption
                x, y = x.to(device), y.to(device)
                gen = torch.Generator().manual_seed(tc.seed * 1_000_003 + step)
                x = augment_batch(x, augment, generator=gen)
                archs = sandwich_archs(sp, step, seed=tc.seed, n_random=config.n_random)
                running["loss_sum"] += trainer.update(model(x, y, archs))
                running["n_steps"] += 1
                step += 1
                bar.update(1)
                # A step checkpoint on an epoch's last batch would mark the epoch done before it
                # is evaluated; the epoch-end checkpoint below covers that step instead.
                if config.checkpoint_every and step % config.checkpoint_every == 0 and i + 1 < len(loader):
                    checkpoint(ep, i + 1)
                if on_step is not None:
                    on_step(step)
            _, acc_max = evaluate_arch(supernet, sp.max_arch(), splits.val, device=ctx.device)
            _, acc_min = evaluate_arch(supernet, sp.min_arch(), splits.val, device=ctx.device)
            history.append({"epoch": ep, "train_loss": running["loss_sum"] / max(running["n_steps"], 1),
                            "val_acc_max": acc_max,
                            "val_acc_min": acc_min, "lr": trainer.optimizer.param_groups[0]["lr"],
                            "seconds": time.perf_counter() - t0})
            bar.set_postfix(epoch=ep, max=f"{acc_max:.3f}", min=f"{acc_min:.3f}")
            checkpoint(ep, len(loader))
            if ctx.is_main:
                write_history(out, history)
    finally:
        bar.close()

    digests = ctx.all_gather(weights_digest(supernet))
    if len(set(digests)) != 1:
        raise RuntimeError(f"ranks ended with different supernet weights: {digests}")
    last = history[-1]  # evaluated on these final weights at the end of the last epoch
    session = time.perf_counter() - t_start
    log = {"space": sp.name, "steps": step, "epochs": tc.epochs, "world_size": ctx.world_size,
           "val_acc_max": last["val_acc_max"], "val_acc_min": last["val_acc_min"],
           "seconds": seconds_before + session, "seconds_this_session": session, "rank_weight_digests": digests}
    if ctx.is_main:
        # Also when a resume found the run finished: a kill after the last checkpoint may have cut
        # these short. The weights come last: their file marks the run finished (finished_supernet).
        write_history(out, history)
        write_json(out / "train_log.json", log)
        weights = {k: v.detach().cpu().contiguous() for k, v in supernet.state_dict().items()}
        write_atomic(out / WEIGHTS, lambda tmp: save_file(weights, str(tmp)))
    ctx.barrier()
    model = trainer = None  # the DDP wrapper holds the process group: free it before the group is destroyed
    return SupernetResult(supernet=supernet, run_dir=out, history=history, log=log, is_main=ctx.is_main)


def finished_supernet(*, space: str, dataset: str, config: SupernetConfig, out: str | Path,
                      data_dir: str | Path | None = None, data_options: dict[str, Any] | None = None,
                      progress: bool = True) -> QuadraSupernet:
    """The supernet of run directory ``out`` in eval mode: loaded when its training finished,
    else trained — resumed when ``out`` already holds part of a run (a checkpoint, or only the
    ``config.json`` of a run stopped before its first checkpoint; killed writers' temporary files
    do not count)."""
    out = Path(out)
    if (out / "supernet.safetensors").is_file():
        return load_supernet(out)[0]
    result = train_supernet(space=space, dataset=dataset, config=config, out=out, data_dir=data_dir,
                            data_options=data_options,
                            resume=bool(run_entries(out)), progress=progress)
    return result.supernet.eval()

