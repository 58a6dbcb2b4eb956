"""Export formats: the registry of files an export directory can hold besides its architecture.

Each :class:`ExportFormat` names its file, how it is written from the export copy of a network
(a CPU float32 :class:`QuadraNet` in eval mode, quadratic mixers as plain ops) and an example
input, and the lines of the model card's *Loading* section that load it. :data:`FORMATS` is the
only list of them: ``safetensors`` (the weights; always written, :func:`nas.export.load_model`
rebuilds the network from them), ``torchscript`` (``torch.jit.trace``) and ``onnx`` (opset 17:
input ``images`` (B, C, H, W) → output ``logits`` (B, num_classes), batch size free). The files
are written by :mod:`search_spaces.deploy`, which the profilers' runtimes use too: what a
search measures in ONNX Runtime or TorchScript is the file an export ships.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from search_spaces.arch import ArchConfig
from search_spaces.deploy import ONNX_OPSET, write_onnx, write_torchscript
from search_spaces.networks import QuadraNet

__all__ = ["FORMATS", "ONNX_OPSET", "ExportFormat", "export_formats", "parse_formats", "register_format"]


@dataclass(frozen=True)
class ExportFormat:
    """One file an export can hold: ``write(net, path, arch, example)`` writes it."""

    name: str
    file: str
    description: str
    write: Callable[[QuadraNet, Path, ArchConfig, torch.Tensor], None]
    loading: tuple[str, ...] = ()  # Python lines that load it (the model card's Loading section)


FORMATS: dict[str, ExportFormat] = {}


def register_format(fmt: ExportFormat) -> ExportFormat:
    if fmt.name in FORMATS:
        raise ValueError(f"export format {fmt.name!r} is already registered")
    FORMATS[fmt.name] = fmt
    return fmt


def _write_safetensors(net: QuadraNet, path: Path, arch: ArchConfig) -> None:
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(path), metadata={"arch_id": arch.arch_id, "space": arch.space})


register_format(ExportFormat(
    name="safetensors", file="model.safetensors", description="the weights, float32 (always written)",
    write=lambda net, path, arch, example: _write_safetensors(net, path, arch)))
register_format(ExportFormat(
    name="torchscript", file="model.pt", description="TorchScript (traced)",
    write=lambda net, path, arch, example: write_torchscript(net, path, example),
    loading=("import torch", "", 'scripted = torch.jit.load("model.pt")  # logits = scripted(x)')))
register_format(ExportFormat(
    name="onnx", file="model.onnx", description=f"ONNX, opset {ONNX_OPSET}, dynamic batch",
    write=lambda net, path, arch, example: write_onnx(net, path, example),
    loading=("import onnxruntime", "", 'session = onnxruntime.InferenceSession("model.onnx")',
             'logits = session.run(["logits"], {"images": x.numpy()})[0]  # any batch size')))

def export_formats() -> tuple[str, ...]:
    """The names of the registered formats, in registration order (read when asked: a format
    registered later is included)."""
    return tuple(FORMATS)


def parse_formats(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"safetensors,onnx"`` or ``["onnx", "torchscript"]`` -> valid names, deduplicated in order.

    ``None`` means every format; an unknown name or an empty selection raises ``ValueError``.
    """
    if value is None:
        return tuple(FORMATS)
    items = [value] if isinstance(value, str) else list(value)
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"export formats must be strings, got {item!r}; valid: {', '.join(FORMATS)}")
        for name in item.split(","):
            name = name.strip().lower()
            if name and name not in FORMATS:
                raise ValueError(f"unknown export format {name!r}; valid: {', '.join(FORMATS)}")
            if name and name not in names:
                names.append(name)
    if not names:
        raise ValueError(f"no export format given; valid: {', '.join(FORMATS)}")
    return tuple(names)
