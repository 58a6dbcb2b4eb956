"""Analytic features of an architecture at a batch size: what a cost model sees.

The network a :class:`~search_spaces.arch.ArchConfig` describes is walked layer by layer
(:func:`layer_costs`, the same layers :class:`~search_spaces.networks.QuadraNet` builds) and
each layer gets its multiply-accumulates, parameters, input/output elements and an estimate of
the kernels it launches. :func:`arch_features` sums them globally and per stage:

- ``macs_*``, ``params``, ``act_elems_*`` (outputs written), ``bytes_moved_*`` (fp32 bytes
  read and written: inputs, weights, outputs), operator counts (``n_ops``, ``n_gemm``,
  ``n_dwconv``, ``n_norm``, ``n_elementwise``), blocks (``n_quadratic``, ``n_first_order``);
- memory estimates: ``param_bytes``, ``input_bytes``, ``infer_peak_bytes`` (parameters, input and the most
  elements live at any step of an inference forward, counted per layer), ``max_live_bytes`` (the largest sum of one
  layer's input and output with the residual stream), ``saved_bytes`` (inputs kept for
  backward);
- per stage ``s{i}_*``: width, depth, MACs, bytes moved, activation elements, quadratic and
  first-order blocks, kernel-size and MLP-hidden sums;
- with ``sm_count`` (a CUDA device): **launch-shape features** — each kernel's estimated grid
  (the fused quadratic kernel's exact grid from
  :func:`search_spaces.triton_quadratic.launch_shape`; 128×128 output tiles for GEMMs; 1024
  elements per block for element-wise, norm and other convolution kernels), its waves
  ``⌈blocks ÷ (SMs × resident blocks)⌉`` and how empty its last wave is — what lets a learned
  model follow the tail-effect staircase that FLOPs cannot.

Feature names are stable; :func:`feature_names` gives a device's schema in order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from search_spaces.arch import ArchConfig
from search_spaces.blocks import mlp_hidden
from search_spaces.layers import check_positive_int, plain_int
from search_spaces.networks import NetConfig
from search_spaces.space import SearchSpace, as_space, create_space
from search_spaces.triton_quadratic import launch_shape

__all__ = ["LayerCost", "arch_features", "feature_names", "layer_costs"]

BYTES = 4  # fp32
_GEMM_TILE = 128
_ELEMS_PER_BLOCK = 1024
_GEMM_RESIDENT, _ELEMENTWISE_RESIDENT = 1, 8  # resident blocks per SM assumed per kernel family


@dataclass(frozen=True)
class LayerCost:
    """One layer of the network at batch size ``B``."""

    stage: int  # -1: stem, n_stages: head
    kind: str  # conv | dwconv | quadconv | gemm | norm | elementwise | pool
    macs: int
    params: int
    in_elems: int
    out_elems: int
    launches: int  # operators this layer runs on the PyTorch path (counted in n_ops)
    # Estimated thread blocks of each CUDA kernel the layer launches (for waves); one entry per
    # launch, except the quadratic conv: its 4 PyTorch-path ops are one fused Triton kernel on CUDA.
    grid_blocks: tuple[int, ...] = ()
    kernel_size: int = 0  # depthwise convolutions: k
    peak_elems: int = 0  # elements live at this layer's peak (inference), residual stream included


def _eltwise_blocks(elems: int) -> int:
    return max(1, math.ceil(elems / _ELEMS_PER_BLOCK))


def layer_costs(net: NetConfig, batch_size: int) -> list[LayerCost]:
    """Every layer of ``net`` in forward order, costed at ``batch_size``."""
    B = batch_size
    c_in = net.input_shape[0]
    h, w = net.stem_output_hw
    k, w0 = net.stem_kernel, net.stages[0].width
    out: list[LayerCost] = []
    n_in = B * c_in * net.input_shape[1] * net.input_shape[2]
    n_out = B * w0 * h * w
    out.append(LayerCost(-1, "conv", macs=n_out * c_in * k * k, params=w0 * c_in * k * k + w0, in_elems=n_in,
                         out_elems=n_out, launches=1, grid_blocks=(_eltwise_blocks(n_out),), peak_elems=n_in + n_out))
    out.append(LayerCost(-1, "norm", 0, 2 * w0, n_out, n_out, 1, (_eltwise_blocks(n_out),), peak_elems=3 * n_out))
    prev = w0
    for i, stage in enumerate(net.stages):
        c = stage.width
        if i > 0:
            n_prev = B * prev * h * w
            h, w = h // 2, w // 2
            n = B * c * h * w
            out.append(LayerCost(i, "norm", 0, 2 * prev, n_prev, n_prev, 1, (_eltwise_blocks(n_prev),),
                                 peak_elems=3 * n_prev))
            out.append(LayerCost(i, "conv", macs=n * prev * 4, params=c * prev * 4 + c, in_elems=n_prev,
                                 out_elems=n, launches=1, grid_blocks=(_eltwise_blocks(n),), peak_elems=n_prev + n))
        n = B * c * h * w
        tokens = B * h * w
        for j, blk in enumerate(stage.blocks):
            # The stage's input stays referenced by the caller of the stage's Sequential, so from
            # the second block on it is live beside the block's own input.
            held = n if j > 0 else 0
            kk = blk.kernel_size
            hidden = mlp_hidden(c, blk.mlp_ratio)
            # Live at each step (inference): the block input x (n) stays alive through the block;
            # the mixer holds LN(x) and its outputs (quadratic: a, b, W_c∗x and y), the MLP holds
            # x, x + γ₁·mixer, LN of it and the hidden pre- and post-GELU (tokens × hidden each).
            out.append(LayerCost(i, "norm", 0, 2 * c, n, n, 1, (_eltwise_blocks(n),), peak_elems=held + 3 * n))
            if blk.mixer == "quadra":
                grid = launch_shape(B, c, h, w)["grid"]
                out.append(LayerCost(i, "quadconv", macs=3 * n * kk * kk + n, params=3 * (c * kk * kk + c),
                                     in_elems=n, out_elems=n, launches=4, grid_blocks=(grid[0] * grid[1],),
                                     kernel_size=kk, peak_elems=held + 6 * n))
            elif blk.mixer == "first_order":
                out.append(LayerCost(i, "dwconv", macs=n * kk * kk, params=c * kk * kk + c, in_elems=n,
                                     out_elems=n, launches=1, grid_blocks=(_eltwise_blocks(n),), kernel_size=kk,
                                     peak_elems=held + 3 * n))
            else:
                raise ValueError(f"features cover the quadra and first_order mixers, got {blk.mixer!r}")
            out.append(LayerCost(i, "elementwise", 0, c, 2 * n, n, 2, (_eltwise_blocks(n),) * 2,
                                 peak_elems=held + 4 * n))  # γ₁·y, x + …
            out.append(LayerCost(i, "norm", 0, 2 * c, n, n, 1, (_eltwise_blocks(n),), peak_elems=held + 4 * n))
            gemm1 = math.ceil(tokens / _GEMM_TILE) * math.ceil(hidden / _GEMM_TILE)
            gemm2 = math.ceil(tokens / _GEMM_TILE) * math.ceil(c / _GEMM_TILE)
            th = tokens * hidden
            out.append(LayerCost(i, "gemm", tokens * c * hidden, c * hidden + hidden, n, th, 1, (gemm1,),
                                 peak_elems=held + 3 * n + th))
            out.append(LayerCost(i, "elementwise", 0, 0, th, th, 1, (_eltwise_blocks(th),),
                                 peak_elems=held + 3 * n + 2 * th))  # GELU
            out.append(LayerCost(i, "gemm", tokens * hidden * c, hidden * c + c, th, n, 1, (gemm2,),
                                 peak_elems=held + 2 * n + th + n))
            out.append(LayerCost(i, "elementwise", 0, c, 2 * n, n, 2, (_eltwise_blocks(n),) * 2,
                                 peak_elems=held + 4 * n))  # γ₂·y, x + …
        prev = c
    n = B * prev * h * w
    head = len(net.stages)
    out.append(LayerCost(head, "pool", 0, 0, n, B * prev, 1, (_eltwise_blocks(B * prev),), peak_elems=n + B * prev))
    out.append(LayerCost(head, "norm", 0, 2 * prev, B * prev, B * prev, 1, (1,)))
    out.append(LayerCost(head, "gemm", B * prev * net.num_classes, prev * net.num_classes + net.num_classes,
                         B * prev, B * net.num_classes, 1,
                         (math.ceil(B / _GEMM_TILE) * math.ceil(net.num_classes / _GEMM_TILE),)))
    return out


def feature_names(space: SearchSpace, *, cuda: bool = False) -> list[str]:
    """The feature schema of ``space``, in order (launch-shape features for a CUDA device)."""
    names = ["batch_size", "macs", "params", "act_elems", "bytes_moved", "macs_gemm", "macs_dw", "macs_conv",
             "n_ops", "n_gemm", "n_dwconv", "n_norm", "n_elementwise", "n_blocks", "n_quadratic", "n_first_order",
             "param_bytes", "input_bytes", "max_live_bytes", "infer_peak_bytes", "saved_bytes"]
    names += [f"macs_dw_k{k}" for k in space.kernel_choices]
    for i in range(space.n_stages):
        names += [f"s{i}_{f}" for f in ("width", "depth", "macs", "macs_dw", "macs_gemm", "bytes_moved", "act_elems",
                                        "n_quadratic", "n_first_order", "kernel_sum", "hidden_sum")]
    if cuda:
        names += ["waves", "waves_gemm", "waves_elementwise", "tail_idle", "blocks_total"]
    return names


def arch_features(arch: ArchConfig, batch_size: int, *, space: SearchSpace | None = None,
                  sm_count: int | None = None) -> dict[str, float]:
    """The features of ``arch`` at ``batch_size`` (launch-shape ones when ``sm_count`` is given)."""
    batch_size = check_positive_int("batch_size", plain_int(batch_size))
    space = as_space(space) or create_space(arch.space)
    net = space.to_net_config(space.validate(arch))
    layers = layer_costs(net, batch_size)
    f: dict[str, float] = dict.fromkeys(feature_names(space, cuda=sm_count is not None), 0.0)
    f["batch_size"] = batch_size
    stream = 0  # residual stream elements alive beside each layer
    for layer in layers:
        f["macs"] += layer.macs
        f["params"] += layer.params
        f["act_elems"] += layer.out_elems
        moved = BYTES * (layer.in_elems + layer.out_elems + layer.params)
        f["bytes_moved"] += moved
        f["n_ops"] += layer.launches
        if layer.kind == "gemm":
            f["macs_gemm"] += layer.macs
            f["n_gemm"] += 1
        elif layer.kind in ("dwconv", "quadconv"):
            f["macs_dw"] += layer.macs
            f[f"macs_dw_k{layer.kernel_size}"] += layer.macs
            f["n_dwconv"] += 3 if layer.kind == "quadconv" else 1
        elif layer.kind == "conv":
            f["macs_conv"] += layer.macs
        elif layer.kind == "norm":
            f["n_norm"] += 1
        else:
            f["n_elementwise"] += layer.launches
        if layer.kind in ("conv", "pool"):
            stream = 0
        live = BYTES * (layer.in_elems + layer.out_elems + stream)
        f["max_live_bytes"] = max(f["max_live_bytes"], live)
        f["infer_peak_bytes"] = max(f["infer_peak_bytes"], BYTES * layer.peak_elems)
        f["saved_bytes"] += BYTES * layer.in_elems
        if layer.kind == "conv":
            stream = layer.out_elems
        if 0 <= layer.stage < len(net.stages):
            s = f"s{layer.stage}_"
            f[s + "macs"] += layer.macs
            if layer.kind == "gemm":
                f[s + "macs_gemm"] += layer.macs
            elif layer.kind in ("dwconv", "quadconv"):
                f[s + "macs_dw"] += layer.macs
            f[s + "bytes_moved"] += moved
            f[s + "act_elems"] += layer.out_elems
        if sm_count is not None:
            resident = _GEMM_RESIDENT if layer.kind == "gemm" else _ELEMENTWISE_RESIDENT
            for blocks in layer.grid_blocks:
                per_wave = sm_count * resident
                n_waves = math.ceil(blocks / per_wave)
                f["waves"] += n_waves
                f["waves_gemm" if layer.kind == "gemm" else "waves_elementwise"] += n_waves
                f["tail_idle"] += 1.0 - (blocks - (n_waves - 1) * per_wave) / per_wave
                f["blocks_total"] += blocks
    for i, stage in enumerate(net.stages):
        s = f"s{i}_"
        f[s + "width"] = stage.width
        f[s + "depth"] = stage.depth
        f[s + "n_quadratic"] = sum(b.mixer == "quadra" for b in stage.blocks)
        f[s + "n_first_order"] = sum(b.mixer != "quadra" for b in stage.blocks)
        f[s + "kernel_sum"] = sum(b.kernel_size for b in stage.blocks)
        f[s + "hidden_sum"] = sum(mlp_hidden(stage.width, b.mlp_ratio) for b in stage.blocks)
    f["n_blocks"] = sum(net.depths)
    f["n_quadratic"] = sum(f[f"s{i}_n_quadratic"] for i in range(len(net.stages)))
    f["n_first_order"] = f["n_blocks"] - f["n_quadratic"]
    f["param_bytes"] = BYTES * f["params"]
    f["input_bytes"] = BYTES * batch_size * math.prod(net.input_shape)
    f["infer_peak_bytes"] += f["param_bytes"] + f["input_bytes"]
    return {k: float(v) for k, v in f.items()}
