"""Loading an export back: :func:`load_model` (``arch.json`` + ``model.safetensors``, data only)
and :func:`check_onnx` (the ONNX file in ONNX Runtime against the PyTorch model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nas.export.formats import FORMATS
from nas.export.model import ARCH_FILE
from search_spaces.arch import ArchConfig
from search_spaces.networks import QuadraNet
from search_spaces.space import create_space, load_arch

__all__ = ["check_onnx", "load_model"]


def _import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ImportError("checking an ONNX export needs ONNX Runtime: pip install onnxruntime") from None
    return onnxruntime


@torch.no_grad()
def _eval_forward(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` in eval mode, the model's mode restored afterwards; (B, classes) on CPU."""
    was_training = model.training
    device = next(model.parameters()).device
    try:
        return model.eval()(x.to(device)).float().cpu()
    finally:
        model.train(was_training)


def check_onnx(path: str | Path, model: torch.nn.Module, x: torch.Tensor, *, atol: float = 1e-4) -> float:
    """Max abs difference between the ONNX file run in ONNX Runtime (CPU) and ``model(x)`` in
    eval mode; ``ValueError`` if it exceeds ``atol``."""
    ort = _import_onnxruntime()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no ONNX file at {path}")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    got = torch.from_numpy(session.run(None, {name: x.detach().cpu().float().numpy()})[0])
    want = _eval_forward(model, x)
    if got.shape != want.shape:
        raise ValueError(f"ONNX output of {path} has shape {tuple(got.shape)}, the model's {tuple(want.shape)}")
    diff = (got - want).abs().max().item()
    if not diff <= atol:  # also catches NaN
        raise ValueError(f"ONNX output of {path} differs from the PyTorch model by {diff:.3g} "
                         f"(max abs) > atol {atol:g}")
    return diff


def _state_mismatch(net: QuadraNet, state: dict[str, torch.Tensor]) -> str:
    """'' if ``state`` fits ``net`` exactly, else what does not fit (first few keys)."""
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    problems = [f"missing {k}" for k in expected if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in expected]
    problems += [f"{k} has shape {tuple(v.shape)}, needs {expected[k]}"
                 for k, v in state.items() if k in expected and tuple(v.shape) != expected[k]]
    more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
    return "; ".join(problems[:3]) + more


def _load_weights(net: QuadraNet, path: Path, arch: ArchConfig) -> None:
    from safetensors import safe_open

    if not path.is_file():
        raise FileNotFoundError(f"no weights file {path} (every export directory has one)")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # safetensors raises its own error types for a damaged file
        raise ValueError(f"weights file {path} is unreadable (truncated or corrupted?): {err}") from None
    problem = _state_mismatch(net, state)
    if problem:
        saved_for = f" (they were saved for arch_id {metadata['arch_id']})" if "arch_id" in metadata else ""
        raise ValueError(f"the weights in {path} do not fit arch_id {arch.arch_id}{saved_for}: {problem}")
    net.load_state_dict(state, strict=True)


def load_model(directory: str | Path) -> QuadraNet:
    """The :class:`QuadraNet` of an export directory (``arch.json`` + ``model.safetensors``), in
    eval mode on CPU. Errors name the file (and for a bad architecture, the field)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no export directory at {directory}")
    arch = load_arch(directory / ARCH_FILE)
    net = QuadraNet(create_space(arch.space).to_net_config(arch))
    _load_weights(net, directory / FORMATS["safetensors"].file, arch)
    return net.eval()
