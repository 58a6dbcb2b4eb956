"""Checkpoints of long training runs: written atomically, read back as data only, with clear errors.

A checkpoint is one ``torch.save`` file holding plain data — state dicts (tensors), RNG states,
counters, the run's config as dicts, lists and numbers. It is written with the one atomic writer
(:func:`search_spaces.atomic.write_atomic`: temporary file beside it, fsync, rename), so a crash
mid-write never leaves a truncated checkpoint behind; a killed writer's temporary file is found
by :func:`search_spaces.atomic.temp_paths`.

It is read with ``torch.load(..., weights_only=True)``: torch's restricted unpickler builds
tensors and plain containers only and refuses any other global, so a checkpoint planted in a
shared ``--supernet`` directory cannot run code when it is loaded; such a file is refused with
an error naming it. (The checkpoints this workbench writes have always held plain data, so those
of earlier versions load unchanged.)
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import torch

from profilers import present_backends
from search_spaces.atomic import write_atomic

__all__ = ["capture_rng_state", "load_checkpoint", "restore_rng_state", "save_checkpoint"]


def capture_rng_state() -> dict[str, Any]:
    """Python's generator state and torch's, per device kind present (CPU, and CUDA if there)."""
    state: dict[str, Any] = {"python": random.getstate()}
    for backend in present_backends():
        state[backend.rng_key] = backend.get_rng_state()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    for backend in present_backends():
        if backend.rng_key in state:
            backend.set_rng_state(state[backend.rng_key])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename)."""
    return write_atomic(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path, *, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read a checkpoint as data only; a missing, unreadable, incomplete or code-carrying file
    raises naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # the restricted unpickler met something other than data
        why = next((line.strip() for line in str(err).splitlines() if "WeightsUnpickler error" in line),
                   str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)
        raise ValueError(f"checkpoint {path} was refused: it holds objects other than tensors and plain data "
                         f"({why[:200]}), and loading them could run code; a checkpoint written by `nas "
                         f"train-supernet` holds none. Restore it from a copy you trust, or train again into a "
                         f"new run directory (another --out)") from None
    except Exception as err:  # torch raises many types for a damaged file
        raise ValueError(f"checkpoint {path} is unreadable (truncated or corrupted?): {err}") from None
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path} does not hold a checkpoint record")
    missing = [k for k in required if k not in state]
    if missing:
        raise ValueError(f"checkpoint {path} lacks {', '.join(missing)}; it was not written by this command")
    return state
