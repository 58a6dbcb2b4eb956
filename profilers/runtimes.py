"""Runtimes a network is deployed with, and how each one runs and measures it.

A :class:`Runtime` turns a network into the artifact a user deploys and loads it back
(:meth:`Runtime.deploy` → :class:`Deployed`), so that profiling times exactly what ships:

- ``torch`` — PyTorch eager: the module itself, on its device, under ``torch.inference_mode``.
- ``torchscript`` — ``model.pt`` as ``nas export`` writes it (traced from the deployable copy,
  :mod:`search_spaces.deploy`), loaded with ``torch.jit.load``.
- ``onnxruntime`` — ``model.onnx`` as ``nas export`` writes it, in an ONNX Runtime
  ``InferenceSession``: the CPU execution provider with ``intra_op_num_threads`` set to the
  measurement's thread count (one inter-op thread, sequential execution, all graph
  optimisations), or on a CUDA device the CUDA provider where the installed ONNX Runtime has it.

Memory is defined per runtime (:attr:`Runtime.memory_definition`): for ``torch`` and
``torchscript`` it is what the device's profiler backend measures of the call (on a CPU the
peak of live tensor allocations plus parameters and input; on CUDA the allocator's peak);
both run on PyTorch's allocator. ONNX Runtime allocates outside PyTorch, so its figure is built
from what ONNX Runtime itself holds and reports: the weights as it keeps them (the model's
initializers, which it places outside its arena), the input, and the peak bytes in use of its
CPU arena (``mem_in_use_peak`` in its profiler's records) over creating a session and one
inference — pre-packed weights and activations. Process RSS growth was the alternative; it
was not taken because the networks of the small spaces need well under a megabyte, below the
noise of the process's heap, while these counts are exact and repeatable.

:data:`RUNTIMES` is the only list of them; :func:`create_runtime` builds one by name, refusing
an unknown name or a runtime whose package is not installed, naming what is valid.
"""

from __future__ import annotations

import abc
import json
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from search_spaces.deploy import deploy_copy, example_input, write_onnx, write_torchscript

__all__ = ["RUNTIMES", "Deployed", "Runtime", "check_runtime", "create_runtime", "register_runtime"]


class Deployed(abc.ABC):
    """A network loaded in a runtime, ready to run on inputs of its shape."""

    runtime: str

    @abc.abstractmethod
    def infer_fn(self, x: torch.Tensor) -> Callable[[], object]:
        """A call running one inference on ``x`` (converted once, outside the call)."""

    @abc.abstractmethod
    def run(self, x: torch.Tensor) -> torch.Tensor:
        """The logits of ``x`` (B, C, H, W), as a CPU tensor."""

    def peak_infer_bytes(self, x: torch.Tensor) -> int | None:
        """The runtime's own memory figure of one inference on ``x`` (bytes); ``None`` where it is
        measured by the device's profiler backend instead (the PyTorch runtimes)."""
        return None


class Runtime(abc.ABC):
    """One way of running a deployed network (see the module docstring)."""

    name: ClassVar[str]
    description: ClassVar[str]
    memory_definition: ClassVar[str]
    package: ClassVar[str | None] = None  # the Python package it needs beyond torch

    @classmethod
    def missing(cls) -> str | None:
        """Why this runtime cannot run here (its package is not installed), or ``None``."""
        if cls.package is None:
            return None
        import importlib.util

        if importlib.util.find_spec(cls.package) is None:
            return f"runtime {cls.name!r} needs the {cls.package} package, which is not installed"
        return None

    @classmethod
    def version(cls) -> str | None:
        """The runtime's version where it is not torch's own (``None``: torch's, in the fingerprint)."""
        return None

    @abc.abstractmethod
    def deploy(self, model: nn.Module, *, input_shape: tuple[int, int, int], device: torch.device,
               threads: int | None) -> Deployed:
        """``model`` as this runtime runs it on ``device`` with ``threads`` intra-op threads."""


RUNTIMES: dict[str, type[Runtime]] = {}


def register_runtime(cls: type[Runtime]) -> type[Runtime]:
    """Class decorator: add a runtime to :data:`RUNTIMES` under its name."""
    if cls.name in RUNTIMES:
        raise ValueError(f"a runtime {cls.name!r} is already registered")
    RUNTIMES[cls.name] = cls
    return cls


def check_runtime(name: object, *, option: str = "runtime", installed: bool = True) -> str:
    """``name`` if it is a registered runtime (and, with ``installed``, usable here)."""
    if not isinstance(name, str) or name not in RUNTIMES:
        raise ValueError(f"{option} must be one of {', '.join(RUNTIMES)}, got {name!r}")
    why = RUNTIMES[name].missing() if installed else None
    if why:
        raise ValueError(f"{option} {name}: {why}; install it (pip install {RUNTIMES[name].package}) or use "
                         f"{option} torch")
    return name


def create_runtime(name: str) -> Runtime:
    """The runtime ``name`` (see :data:`RUNTIMES`); refused when unknown or not installed here."""
    return RUNTIMES[check_runtime(name)]()


# --- torch eager ---------------------------------------------------------------------------------
class _Eager(Deployed):
    """A module PyTorch runs: eager, or a loaded TorchScript module."""

    def __init__(self, model: nn.Module, runtime: str) -> None:
        self.model, self.runtime = model, runtime

    def infer_fn(self, x: torch.Tensor) -> Callable[[], object]:
        model = self.model

        def infer() -> None:
            with torch.inference_mode():
                model(x)

        return infer

    def run(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model(x).detach().cpu()


@register_runtime
class TorchRuntime(Runtime):
    name = "torch"
    description = "PyTorch eager, the module as built"
    memory_definition = ("the device's profiler backend: on a CPU the peak of live tensor allocations during the "
                         "call plus parameters, buffers and input; on CUDA torch.cuda.max_memory_allocated")

    def deploy(self, model: nn.Module, *, input_shape: tuple[int, int, int], device: torch.device,
               threads: int | None) -> Deployed:
        return _Eager(model.to(device).eval(), self.name)


# --- TorchScript ---------------------------------------------------------------------------------
@register_runtime
class TorchScriptRuntime(Runtime):
    name = "torchscript"
    description = "model.pt as nas export writes it (torch.jit.trace of the deployable copy), torch.jit.load"
    memory_definition = TorchRuntime.memory_definition + " (TorchScript runs on PyTorch's allocator)"

    def deploy(self, model: nn.Module, *, input_shape: tuple[int, int, int], device: torch.device,
               threads: int | None) -> Deployed:
        with tempfile.TemporaryDirectory(prefix="quadranas-ts-") as tmp:
            path = Path(tmp) / "model.pt"
            write_torchscript(deploy_copy(model), path, example_input(input_shape))
            with warnings.catch_warnings():  # torch.jit.load's deprecation notice: the file is what export ships
                warnings.simplefilter("ignore", DeprecationWarning)
                loaded = torch.jit.load(str(path), map_location=device)
        return _Eager(loaded.eval(), self.name)


# --- ONNX Runtime --------------------------------------------------------------------------------
class _OrtSession(Deployed):
    runtime = "onnxruntime"

    def __init__(self, model_bytes: bytes, *, device: torch.device, threads: int | None) -> None:
        self.model_bytes, self.device, self.threads = model_bytes, device, threads
        self.session = self._session()
        self.initializer_bytes = _initializer_bytes(model_bytes)

    def _providers(self) -> list[Any]:
        import onnxruntime as ort

        if self.device.type == "cpu":
            return ["CPUExecutionProvider"]
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ValueError(f"runtime onnxruntime on {self.device}: the installed onnxruntime {ort.__version__} has "
                             f"no CUDA execution provider (it has {', '.join(ort.get_available_providers())}); "
                             f"install onnxruntime-gpu or measure on the CPU")
        return [("CUDAExecutionProvider", {"device_id": self.device.index or 0}), "CPUExecutionProvider"]

    def _session(self, profile_prefix: str | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if self.threads is not None:
            options.intra_op_num_threads = int(self.threads)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only: no optimiser notices on the terminal
        if profile_prefix is not None:
            options.enable_profiling = True
            options.profile_file_prefix = profile_prefix
        return ort.InferenceSession(self.model_bytes, options, providers=self._providers())

    def infer_fn(self, x: torch.Tensor) -> Callable[[], object]:
        feed = {"images": x.detach().cpu().numpy()}
        session = self.session

        def infer() -> None:
            session.run(["logits"], feed)

        return infer

    def run(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(["logits"], {"images": x.detach().cpu().numpy()})[0])

    def peak_infer_bytes(self, x: torch.Tensor) -> int:
        import onnxruntime as ort

        feed = {"images": x.detach().cpu().numpy()}
        with tempfile.TemporaryDirectory(prefix="quadranas-ort-") as tmp:
            session = self._session(profile_prefix=str(Path(tmp) / "profile"))
            session.run(["logits"], feed)
            events = json.loads(Path(session.end_profiling()).read_text(encoding="utf-8"))
        peaks = [int(e["args"]["mem_in_use_peak"]) for e in events
                 if isinstance(e, dict) and "mem_in_use_peak" in (e.get("args") or {})]
        if not peaks:
            raise RuntimeError(f"onnxruntime {ort.__version__} reports no arena memory (mem_in_use_peak) in its "
                               f"profile; the onnxruntime memory figure needs a version whose profiler records it "
                               f"(1.32 does)")
        return self.initializer_bytes + feed["images"].nbytes + max(peaks)


def _initializer_bytes(model_bytes: bytes) -> int:
    """Bytes of an ONNX model's initializers (its weights), from their shapes and element types."""
    import numpy as np
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    model = onnx.load_from_string(model_bytes)
    return sum(int(np.prod(t.dims, dtype=np.int64)) * np.dtype(tensor_dtype_to_np_dtype(t.data_type)).itemsize
               for t in model.graph.initializer)


@register_runtime
class OnnxRuntime(Runtime):
    name = "onnxruntime"
    description = ("model.onnx as nas export writes it, in an ONNX Runtime InferenceSession (CPU execution provider "
                   "with intra_op_num_threads = the thread count; the CUDA provider on a GPU)")
    memory_definition = ("what ONNX Runtime holds: the model's initializers (weights, kept outside its arena), the "
                         "input, and its CPU arena's peak bytes in use (mem_in_use_peak in its profiler's records) "
                         "over creating a session and one inference: pre-packed weights and activations")
    package = "onnxruntime"

    @classmethod
    def version(cls) -> str | None:
        import onnxruntime as ort

        return str(ort.__version__)

    def deploy(self, model: nn.Module, *, input_shape: tuple[int, int, int], device: torch.device,
               threads: int | None) -> Deployed:
        with tempfile.TemporaryDirectory(prefix="quadranas-onnx-") as tmp:
            path = Path(tmp) / "model.onnx"
            write_onnx(deploy_copy(model), path, example_input(input_shape))
            data = path.read_bytes()
        return _OrtSession(data, device=device, threads=threads)
