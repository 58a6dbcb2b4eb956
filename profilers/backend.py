"""Profiler backends: everything measuring does differently on a CPU and on a CUDA device.

A :class:`ProfilerBackend` is bound to one ``torch.device`` and answers, for that device: how to
wait for queued work and time one call, which intra-op thread count applies, the device's
fingerprint and clock readings, the peak memory of a callable, and the per-op (and on CUDA
per-kernel) records of one profiled call; plus what training needs to know of the device (the
``torch.distributed`` backend, the DDP device ids, the random generator state). The
implementations are :class:`profilers.cpu.CPUBackend` and :class:`profilers.cuda.CUDABackend`,
registered in :data:`BACKENDS` by device type; :func:`backend_for` picks one for a device.

:func:`check_device` is the one check of a device argument: ``'cpu'``, ``'cuda'`` or
``'cuda:N'`` and, with ``available``, present on this machine.
"""

from __future__ import annotations

import abc
import contextlib
import re
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import torch

__all__ = ["BACKENDS", "ProfilerBackend", "as_device", "backend_for", "check_device", "kinds_text", "present_backends",
           "register_backend"]

_DEVICE_RE = re.compile(r"cpu|cuda(:[0-9]+)?")


class ProfilerBackend(abc.ABC):
    """How to measure on one device (see the module docstring); subclasses register by ``kind``."""

    kind: ClassVar[str]  # the torch device type: "cpu" | "cuda"
    records_kernels: ClassVar[bool] = False  # whether op records include per-kernel launch records
    dist_backend: ClassVar[str]  # torch.distributed backend for training on this device
    rng_key: ClassVar[str]  # where a checkpoint keeps this device's generator state

    def __init__(self, device: torch.device) -> None:
        if device.type != self.kind:
            raise ValueError(f"{type(self).__name__} measures {self.kind} devices, not {device}")
        self.device = device

    # --- presence -------------------------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def present(cls) -> bool:
        """Whether this machine has such a device."""

    @classmethod
    def device_count(cls) -> int:
        return 1 if cls.present() else 0

    @classmethod
    @abc.abstractmethod
    def get_rng_state(cls) -> Any:
        """The generator state(s) of this device kind, for a checkpoint (plain tensors)."""

    @classmethod
    @abc.abstractmethod
    def set_rng_state(cls, state: Any) -> None: ...

    # --- identity ---------------------------------------------------------------------------
    @abc.abstractmethod
    def name(self) -> str:
        """Human-readable name (the GPU's or the CPU model's)."""

    @abc.abstractmethod
    def fingerprint(self, threads: int | None = None):
        """The :class:`profilers.fingerprint.DeviceFingerprint` of this device; ``threads`` is the
        intra-op thread count used (CPU; default torch's)."""

    @abc.abstractmethod
    def read_clocks(self):
        """A :class:`profilers.fingerprint.ClockReading` of this device now."""

    # --- running and timing -------------------------------------------------------------------
    def synchronize(self) -> None:
        """Wait for work queued on the device (nothing to wait for on a CPU)."""
        return None

    @abc.abstractmethod
    def time_once_ms(self, fn: Callable[[], object]) -> float:
        """Milliseconds one call of ``fn`` takes on the device."""

    @contextlib.contextmanager
    def threads(self, threads: int | None) -> Iterator[None]:
        """Run the block with ``threads`` intra-op threads where the device uses them (CPU); torch's
        setting is restored afterwards. ``None`` keeps the current setting."""
        yield

    def threads_in_use(self) -> int | None:
        """The intra-op thread count measurements on this device run with (``None``: not a CPU)."""
        return None

    # --- memory and records -------------------------------------------------------------------
    @abc.abstractmethod
    def peak_bytes(self, fn: Callable[[], object], *, live_bytes: int) -> int:
        """Peak memory while ``fn`` runs, in bytes, counting what was live before it (``live_bytes``:
        parameters, buffers, inputs — a CPU measurement adds them, a GPU's allocator counts them
        itself)."""

    @abc.abstractmethod
    def memory_and_ops(self, infer: Callable[[], object], train: Callable[[], object], *, infer_live_bytes: int,
                       train_live_bytes: int, with_ops: bool, fingerprint: Any) -> tuple[int, int, tuple, tuple]:
        """``(peak_infer_bytes, peak_train_bytes, ops, kernels)`` of one inference call and one
        training step (``train`` leaves the model as it found it), in the order the device measures
        them best, and with ``with_ops`` the per-op records (:class:`profilers.ops.OpRecord`) of
        one inference call and, where the device has them, its per-kernel records
        (:class:`profilers.kernels.KernelRecord`, which need the device's ``fingerprint``)."""

    def device_peak_bytes(self, fn: Callable[[], object], *, warm_up: bool = False) -> int | None:
        """The device allocator's own peak while ``fn`` runs, after one untimed call of it with
        ``warm_up`` (state such as an optimizer's allocated first); ``None`` where the device has no
        such allocator (CPU), and then ``fn`` is not called at all."""
        return None

    # --- training on the device -----------------------------------------------------------------
    def ddp_device_ids(self) -> list[int] | None:
        """``device_ids`` for ``DistributedDataParallel`` (None: the module's own device, CPU)."""
        return None

    def for_local_rank(self, local_rank: int) -> str:
        """The device a ``torchrun`` rank with this local rank uses (pinning it where needed)."""
        return str(self.device)


BACKENDS: dict[str, type[ProfilerBackend]] = {}


def register_backend(cls: type[ProfilerBackend]) -> type[ProfilerBackend]:
    """Class decorator: add a backend to :data:`BACKENDS` under its device type."""
    if cls.kind in BACKENDS:
        raise ValueError(f"a profiler backend for {cls.kind!r} is already registered")
    BACKENDS[cls.kind] = cls
    return cls


def kinds_text() -> str:
    """The registered device kinds for messages: ``'cpu' or 'cuda'``."""
    return " or ".join(repr(kind) for kind in BACKENDS)


def as_device(device: torch.device | str) -> torch.device:
    """``device`` as a ``torch.device``; a string torch cannot parse ('CPU', 'bogus', 'cuda:x') or
    anything else is a ``ValueError`` naming the valid forms, not torch's ``RuntimeError``. Device
    types without a backend are left to the caller (:func:`backend_for` refuses them)."""
    if isinstance(device, torch.device):
        return device
    if isinstance(device, str):
        try:
            return torch.device(device)
        except RuntimeError:
            pass
    raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")


def check_device(device: object, *, name: str = "device", available: bool = False) -> str:
    """Return ``device`` if it is 'cpu', 'cuda' or 'cuda:N' (the devices this project runs on).

    With ``available``, a CUDA device must also exist here. ``name`` is what the messages call
    the value: a field (``device``) or a command-line option (``--device``).
    """
    if not isinstance(device, str) or not _DEVICE_RE.fullmatch(device):
        raise ValueError(f"{name} must be 'cpu' or 'cuda[:N]', got {device!r}")
    if available:
        kind, _, index = device.partition(":")
        cls = BACKENDS[kind]
        flag = name.startswith("-")
        head = f"{name} {device}" if flag else f"{name} {device!r}"
        use = f"use {name} cpu" if flag else f"use {name}='cpu'"
        if not cls.present():
            raise ValueError(f"{head}: no {kind.upper()} device is available here (torch {torch.__version__}); "
                             f"{use}")
        count = cls.device_count()
        if int(index or 0) >= count:
            valid = ", ".join(f"{kind}:{i}" for i in range(count))
            raise ValueError(f"{head}: this machine has {count} {kind.upper()} device(s) ({valid}); choose one of "
                             f"them or {use}")
    return device


def backend_for(device: torch.device | str) -> ProfilerBackend:
    """The backend measuring ``device`` (a ``torch.device`` or its name); a device type without one
    (``meta``, ``mps``) is a ``ValueError`` naming the valid kinds."""
    device = as_device(device)
    if device.type not in BACKENDS:
        raise ValueError(f"device must be {kinds_text()}, got {device}")
    return BACKENDS[device.type](device)


def present_backends() -> list[type[ProfilerBackend]]:
    """The backend classes whose devices this machine has (CPU always)."""
    return [cls for cls in BACKENDS.values() if cls.present()]
