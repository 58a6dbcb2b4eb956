"""The deployable form of a network: what ``nas export`` writes and what profiling measures.

A network is deployed as a CPU float32 copy in eval mode whose quadratic mixers use the
``"plain"`` implementation — the same formula ``(W_a∗x) ⊙ (W_b∗x) + W_c∗x`` as plain PyTorch ops,
because the memory-efficient implementation is a ``torch.autograd.Function`` that TorchScript
cannot serialise (:func:`deploy_copy`). From it, :func:`write_torchscript` traces ``model.pt``
and :func:`write_onnx` exports ``model.onnx`` (opset :data:`ONNX_OPSET`: input ``images``
(B, C, H, W) → output ``logits`` (B, num_classes), batch size free), both from the same seeded
example input (:func:`example_input`, batch :data:`EXAMPLE_BATCH`).

These are the one implementation of those files: :mod:`nas.export` writes them into an export
directory, and the runtimes of :mod:`profilers.runtimes` write them into a temporary directory
and load them back, so a latency measured in ONNX Runtime or TorchScript is the latency of the
very artifact an export ships.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from search_spaces.networks import NetConfig, QuadraNet

__all__ = ["EXAMPLE_BATCH", "ONNX_OPSET", "deploy_copy", "example_input", "write_onnx", "write_torchscript"]

ONNX_OPSET = 17
EXAMPLE_BATCH = 2  # batch size of the example input the traced formats are made from


def deploy_copy(model: nn.Module, config: NetConfig | None = None) -> nn.Module:
    """A CPU float32 copy of ``model`` in eval mode, quadratic mixers as plain ops (traceable and
    serialisable); ``model`` itself is left as it was. A :class:`QuadraNet` is rebuilt from
    ``config`` (default its own) with the plain implementation; any other module is deep-copied
    as it is (it has no quadratic mixers to swap)."""
    if isinstance(model, QuadraNet):
        net = QuadraNet(replace(config or model.config, quadra_impl="plain"))
        state = {k: v.detach().to("cpu", torch.float32) for k, v in model.state_dict().items()}
        net.load_state_dict(state, strict=True)
        return net.eval()
    import copy

    return copy.deepcopy(model).to("cpu", torch.float32).eval()


def example_input(input_shape: tuple[int, ...]) -> torch.Tensor:
    """The seeded example input the traced formats are made from: ``EXAMPLE_BATCH`` × ``input_shape``."""
    return torch.randn(EXAMPLE_BATCH, *input_shape, generator=torch.Generator().manual_seed(0))


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence the tracer's and exporters' warnings: shape checks traced as constants (batch size
    stays free), and the deprecation notices of ``torch.jit.trace`` / the TorchScript ONNX exporter."""
    with warnings.catch_warnings():
        for category in (torch.jit.TracerWarning, DeprecationWarning, FutureWarning, UserWarning):
            warnings.simplefilter("ignore", category)
        yield


def write_torchscript(net: nn.Module, path: str | Path, example: torch.Tensor) -> None:
    """Trace ``net`` (a :func:`deploy_copy`) on ``example`` and save it as TorchScript at ``path``."""
    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(net, example)
        torch.jit.save(traced, str(path))


def write_onnx(net: nn.Module, path: str | Path, example: torch.Tensor) -> None:
    """Export ``net`` (a :func:`deploy_copy`) as ONNX at ``path``: opset :data:`ONNX_OPSET`, input
    ``images``, output ``logits``, batch dimension free."""
    with _quiet(), torch.no_grad():
        torch.onnx.export(
            net, (example,), str(path), dynamo=False, opset_version=ONNX_OPSET,
            input_names=["images"], output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
        )
