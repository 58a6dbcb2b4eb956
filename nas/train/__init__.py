"""Stage *train*: training networks and the weight-sharing supernet.

Owns the recipe (:class:`TrainConfig`, :mod:`nas.train.config`), the trainer and evaluation
(:mod:`nas.train.trainer`), ``nas train-net`` (:mod:`nas.train.train_net`), supernet training with
the sandwich rule and in-place distillation (:mod:`nas.train.supernet`) and its run directory —
resume checks, loading a trained supernet, inherited-weight evaluation
(:mod:`nas.train.supernet_run`) — data-only checkpoints (:mod:`nas.train.checkpoint`) and the
``torch.distributed`` set-up for ``torchrun`` (:mod:`nas.train.distributed`).

May import: ``nas.data``, ``nas.rundir``, ``profilers`` (devices), ``search_spaces``, torch,
safetensors.
"""

from nas.train.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from nas.train.config import TrainConfig, set_seed
from nas.train.distributed import DistContext, cleanup_distributed, init_distributed, weights_digest
from nas.train.supernet import (
    SandwichLoss,
    SupernetConfig,
    SupernetResult,
    finished_supernet,
    sandwich_archs,
    train_supernet,
)
from nas.train.supernet_run import check_data, evaluate_arch, load_supernet
from nas.train.train_net import train_net
from nas.train.trainer import EpochRecord, Trainer, TrainResult, evaluate, soft_cross_entropy, train_model

__all__ = [
    "DistContext", "EpochRecord", "SandwichLoss", "SupernetConfig", "SupernetResult", "TrainConfig", "TrainResult",
    "Trainer", "capture_rng_state", "check_data", "cleanup_distributed", "evaluate", "evaluate_arch",
    "finished_supernet", "init_distributed", "load_checkpoint", "load_supernet", "restore_rng_state",
    "sandwich_archs", "save_checkpoint", "set_seed", "soft_cross_entropy", "train_model", "train_net",
    "train_supernet", "weights_digest",
]
