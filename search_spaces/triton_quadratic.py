"""Fused Triton kernels for the depthwise quadratic convolution of QuadraNet.

QuadraNet (Xu et al., "QuadraNet: Improving High-Order Neural Interaction Efficiency with
Hardware-Aware Quadratic Neural Networks", 2023) replaces the token mixer of a
HorNet/ConvNeXt block by a depthwise k×k *quadratic* convolution

    y = (W_a ∗ x) ⊙ (W_b ∗ x) + (W_c ∗ x)          # every W: depthwise k×k with bias

Written as plain PyTorch this is one grouped conv2d with 3·C output channels followed by an
element-wise multiply-add, and autograd keeps the (B, 3C, H, W) intermediate ``z = [a, b, c]``
alive for backward -- three times the activation memory of the input. QuadraLib (Xu et al.,
"QuadraLib: A Performant Quadratic Neural Network Library for Architecture Optimization and
Design Exploration", MLSys 2022) proposes *hybrid back-propagation*: keep only the input and
the weights, and recompute the cheap first-order terms during backward.

This module provides the two fused kernels such a memory-efficient autograd function needs:

* :func:`dwquad_forward` -- one kernel computes ``a``, ``b`` and ``c`` for a tile of output
  positions in float32 registers (looping over the K×K taps, zero padding by masked loads) and
  writes ``y = a*b + c`` once in ``x``'s dtype. ``x`` is read once, ``y`` written once;
  ``a``, ``b``, ``c`` never reach memory.
* :func:`dwquad_backward_dz` -- recomputes ``a`` and ``b`` from ``x`` with the same tap loop
  and writes ``dz = dL/dz`` for ``z = grouped_conv(x)`` (channel ``3c + j`` for
  ``j in (a, b, c)``): ``(g*b, g*a, g)``. Because ``z`` is exactly the output of
  ``F.conv2d(x, weight.reshape(3C, 1, K, K), bias.reshape(3C), padding=padding, groups=C)``,
  the caller obtains ``dx``, ``dW`` and ``db`` from
  ``torch.ops.aten.convolution_backward`` (cuDNN) on this ``dz``.

Triton is imported lazily (inside :func:`_kernels`), so this module imports without it; the
kernels run on CUDA tensors, or on CPU tensors under ``TRITON_INTERPRET=1`` (the tests).

Launch shape (both kernels)::

    grid      = (B * C, ceil(H_out * W_out / BLOCK))   # one program per (plane, tile)
    BLOCK     = min(256, max(128, next_pow2(H_out * W_out)))   # output positions per program
    num_warps = 4                                        # 128 threads, 1-2 positions each

Axis 0 walks (batch, channel) planes -- it may be large (grid.x allows 2³¹-1), axis 1 the tiles
of one plane (grid.y allows 65535). :func:`launch_shape` returns these numbers so profilers can
reason about waves and occupancy without launching anything.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import torch

__all__ = [
    "BLOCK_MAX",
    "BLOCK_MIN",
    "NUM_WARPS",
    "dwquad_backward_dz",
    "dwquad_forward",
    "is_available",
    "launch_shape",
]

#: Largest tile of output positions one program handles (a power of two).
BLOCK_MAX = 256
#: Smallest tile: 4 warps × 32 threads, so every thread owns at least one position.
BLOCK_MIN = 128
#: Warps per program for both kernels.
NUM_WARPS = 4
#: CUDA limit on grid.y (the tile axis).
_GRID_Y_MAX = 65535

#: ``triton.language``, bound by :func:`_build_kernels` on first use (lazy import).
tl: Any = None

_TRITON_MISSING = "triton is needed for the fused CUDA path; install triton or use backend='torch'"


def is_available() -> bool:
    """True when ``triton`` can be imported (the fused kernels can be built)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _interpret() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def _kernels() -> Any:
    """The jitted kernels for the current ``TRITON_INTERPRET`` setting (built once per setting)."""
    return _build_kernels(_interpret())


@functools.lru_cache(maxsize=2)
def _build_kernels(interpret: bool) -> Any:
    # ``interpret`` is only the cache key: ``triton.jit`` reads TRITON_INTERPRET when decorating,
    # and returns an InterpretedFunction (runs on CPU tensors) when it is "1".
    #
    # Notes for the interpreter (TRITON_INTERPRET=1), which re-executes kernel source against
    # the module's *globals* and patches only the ``triton.language`` it finds there:
    # * ``tl`` is bound as a module global here (a lazy import), not as a closure variable;
    # * the tap loop is written out in both kernels rather than shared through a nested
    #   @triton.jit helper, which would be a closure variable too;
    # * only builtins are used (``tl.full``, not ``tl.zeros``): the standard-library @jit
    #   helpers were decorated when triton was first imported, perhaps before the variable
    #   was set, and then do not run in the interpreter.
    del interpret
    global tl
    try:
        import triton
        import triton.language as tl
    except ImportError as exc:
        raise ImportError(_TRITON_MISSING) from exc

    @triton.jit
    def forward_kernel(
        x_ptr,  # (B, C, H, W) contiguous
        w_ptr,  # (C, 3, K, K) contiguous
        bias_ptr,  # (C, 3) contiguous
        y_ptr,  # (B, C, H_out, W_out) contiguous, x's dtype
        C,
        H,
        W,
        W_out,
        HW_out,
        K: tl.constexpr,
        PAD: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        # grid = (B * C, cdiv(H_out * W_out, BLOCK))
        plane = tl.program_id(0).to(tl.int64)
        c = plane % C
        offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        out_mask = offs < HW_out
        oh = offs // W_out
        ow = offs % W_out
        # --- tap loop (kept identical in both kernels; see note above) ---
        x_base = x_ptr + plane * H * W
        w_base = w_ptr + c * (3 * K * K)  # weight (C, 3, K, K) contiguous
        zero = tl.full((BLOCK,), 0.0, tl.float32)
        acc_a = zero + tl.load(bias_ptr + c * 3).to(tl.float32)  # bias (C, 3) contiguous
        acc_b = zero + tl.load(bias_ptr + c * 3 + 1).to(tl.float32)
        acc_c = zero + tl.load(bias_ptr + c * 3 + 2).to(tl.float32)
        for kh in tl.static_range(K):
            ih = oh + (kh - PAD)
            row_ok = out_mask & (ih >= 0) & (ih < H)  # zero padding: masked loads read 0
            row_ptr = x_base + ih * W
            for kw in tl.static_range(K):
                iw = ow + (kw - PAD)
                m = row_ok & (iw >= 0) & (iw < W)
                xv = tl.load(row_ptr + iw, mask=m, other=0.0).to(tl.float32)
                tap = kh * K + kw
                acc_a += xv * tl.load(w_base + tap).to(tl.float32)
                acc_b += xv * tl.load(w_base + K * K + tap).to(tl.float32)
                acc_c += xv * tl.load(w_base + 2 * K * K + tap).to(tl.float32)
        y = acc_a * acc_b + acc_c
        tl.store(y_ptr + plane * HW_out + offs, y.to(y_ptr.dtype.element_ty), mask=out_mask)

    @triton.jit
    def backward_dz_kernel(
        x_ptr,  # (B, C, H, W) contiguous
        w_ptr,  # (C, 3, K, K) contiguous
        bias_ptr,  # (C, 3) contiguous
        g_ptr,  # grad_y (B, C, H_out, W_out) contiguous
        dz_ptr,  # (B, 3C, H_out, W_out) contiguous, grad_y's dtype
        C,
        H,
        W,
        W_out,
        HW_out,
        K: tl.constexpr,
        PAD: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        # grid = (B * C, cdiv(H_out * W_out, BLOCK))
        plane = tl.program_id(0).to(tl.int64)
        c = plane % C
        offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        out_mask = offs < HW_out
        oh = offs // W_out
        ow = offs % W_out
        # --- tap loop (as in forward_kernel, without W_c: c is not needed) ---
        x_base = x_ptr + plane * H * W
        w_base = w_ptr + c * (3 * K * K)  # weight (C, 3, K, K) contiguous
        zero = tl.full((BLOCK,), 0.0, tl.float32)
        acc_a = zero + tl.load(bias_ptr + c * 3).to(tl.float32)  # bias (C, 3) contiguous
        acc_b = zero + tl.load(bias_ptr + c * 3 + 1).to(tl.float32)
        for kh in tl.static_range(K):
            ih = oh + (kh - PAD)
            row_ok = out_mask & (ih >= 0) & (ih < H)  # zero padding: masked loads read 0
            row_ptr = x_base + ih * W
            for kw in tl.static_range(K):
                iw = ow + (kw - PAD)
                m = row_ok & (iw >= 0) & (iw < W)
                xv = tl.load(row_ptr + iw, mask=m, other=0.0).to(tl.float32)
                tap = kh * K + kw
                acc_a += xv * tl.load(w_base + tap).to(tl.float32)
                acc_b += xv * tl.load(w_base + K * K + tap).to(tl.float32)
        a, b = acc_a, acc_b
        g = tl.load(g_ptr + plane * HW_out + offs, mask=out_mask, other=0.0).to(tl.float32)
        # dz channel 3c + j of batch b starts at ((b*3C) + 3c + j) * HW_out = (3*plane + j) * HW_out
        dz_base = dz_ptr + plane * (3 * HW_out) + offs
        out_ty = dz_ptr.dtype.element_ty
        tl.store(dz_base, (g * b).to(out_ty), mask=out_mask)  # d/da (a*b + c) = b
        tl.store(dz_base + HW_out, (g * a).to(out_ty), mask=out_mask)  # d/db = a
        tl.store(dz_base + 2 * HW_out, g.to(out_ty), mask=out_mask)  # d/dc = 1

    return forward_kernel, backward_dz_kernel


def launch_shape(
    batch: int, channels: int, h_out: int, w_out: int
) -> dict[str, int | tuple[int, int]]:
    """Grid, BLOCK and num_warps both kernels use for a (batch, channels, h_out, w_out) output.

    ``grid = (batch * channels, ceil(h_out * w_out / BLOCK))``; ``BLOCK`` is the power of two
    covering one output plane, clamped to ``[BLOCK_MIN, BLOCK_MAX]``.
    """
    hw = h_out * w_out
    block = min(BLOCK_MAX, max(BLOCK_MIN, 1 << max(hw - 1, 0).bit_length()))
    tiles = -(-hw // block)
    return {"grid": (batch * channels, tiles), "BLOCK": block, "num_warps": NUM_WARPS}


def _check_inputs(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                  padding: int) -> tuple[int, int, int, int, int, int, int]:
    """Validate shapes/devices; return (B, C, H, W, K, H_out, W_out)."""
    for name, t in (("x", x), ("weight", weight), ("bias", bias)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D (B, C, H, W), got shape {tuple(x.shape)}")
    if weight.ndim != 4 or weight.shape[1] != 3:
        raise ValueError(f"weight must be (C, 3, K, K) with [:, 0..2] = W_a, W_b, W_c, "
                         f"got shape {tuple(weight.shape)}")
    if weight.shape[2] != weight.shape[3]:
        raise ValueError(f"weight kernel must be square (K, K), got {tuple(weight.shape[2:])}")
    if bias.ndim != 2 or bias.shape[1] != 3:
        raise ValueError(f"bias must be (C, 3), got shape {tuple(bias.shape)}")
    B, C, H, W = x.shape
    if weight.shape[0] != C or bias.shape[0] != C:
        raise ValueError(f"channel mismatch: x has C={C}, weight has {weight.shape[0]}, "
                         f"bias has {bias.shape[0]}; all must be equal")
    if isinstance(padding, bool) or not isinstance(padding, int):
        raise TypeError(f"padding must be an int, got {type(padding).__name__}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    K = weight.shape[2]
    if K < 1:
        raise ValueError(f"kernel size must be >= 1, got {K}")
    H_out, W_out = H + 2 * padding - K + 1, W + 2 * padding - K + 1
    if H_out < 1 or W_out < 1:
        raise ValueError(f"output size ({H_out}, {W_out}) < 1 for input ({H}, {W}), kernel {K}, "
                         f"padding {padding}; need H + 2*padding >= K and W + 2*padding >= K")
    if weight.device != x.device or bias.device != x.device:
        raise ValueError(f"x, weight and bias must be on one device, got {x.device}, "
                         f"{weight.device}, {bias.device}")
    if x.device.type != "cuda" and not _interpret():
        raise ValueError(f"compiled Triton kernels need CUDA tensors, x is on {x.device}; "
                         "set TRITON_INTERPRET=1 to run them on CPU (slow, for tests)")
    return B, C, H, W, K, H_out, W_out


def _grid(B: int, C: int, H_out: int, W_out: int) -> tuple[tuple[int, int], int]:
    shape = launch_shape(B, C, H_out, W_out)
    grid = shape["grid"]
    assert isinstance(grid, tuple)
    if grid[1] > _GRID_Y_MAX:
        raise ValueError(f"output plane of {H_out}x{W_out} needs {grid[1]} tiles of "
                         f"{shape['BLOCK']}, over the CUDA grid.y limit {_GRID_Y_MAX}")
    return grid, int(shape["BLOCK"])  # type: ignore[arg-type]


def dwquad_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                   padding: int) -> torch.Tensor:
    """``y = (W_a∗x + b_a) ⊙ (W_b∗x + b_b) + (W_c∗x + b_c)``, depthwise, stride 1, fused.

    Args:
        x: ``(B, C, H, W)`` float tensor (fp32/fp16/bf16).
        weight: ``(C, 3, K, K)``; ``[:, 0]`` = W_a, ``[:, 1]`` = W_b, ``[:, 2]`` = W_c.
        bias: ``(C, 3)``.
        padding: zero padding on each side (usually ``K // 2``).

    Returns:
        ``y`` of shape ``(B, C, H_out, W_out)`` in ``x.dtype``, ``H_out = H + 2*padding - K + 1``.
        Accumulation is float32.
    """
    B, C, H, W, K, H_out, W_out = _check_inputs(x, weight, bias, padding)
    forward_kernel, _ = _kernels()
    x = x.contiguous()
    weight = weight.contiguous()
    bias = bias.contiguous()
    y = torch.empty((B, C, H_out, W_out), dtype=x.dtype, device=x.device)  # (B, C, Ho, Wo)
    if y.numel() == 0:
        return y
    grid, block = _grid(B, C, H_out, W_out)  # (B*C, ceil(Ho*Wo / BLOCK))
    forward_kernel[grid](
        x, weight, bias, y, C, H, W, W_out, H_out * W_out,
        K=K, PAD=padding, BLOCK=block, num_warps=NUM_WARPS,
    )
    return y


def dwquad_backward_dz(x: torch.Tensor, grad_y: torch.Tensor, weight: torch.Tensor,
                       bias: torch.Tensor, padding: int) -> torch.Tensor:
    """Gradient w.r.t. ``z = [a, b, c]``, the output of the grouped (3C-channel) convolution.

    ``a`` and ``b`` are recomputed from ``x`` (hybrid back-propagation); nothing from the
    forward pass but ``x`` and the weights is needed.

    Args:
        x, weight, bias, padding: as in :func:`dwquad_forward`.
        grad_y: ``(B, C, H_out, W_out)``, the gradient of the loss w.r.t. ``y``.

    Returns:
        ``dz`` of shape ``(B, 3C, H_out, W_out)`` in ``grad_y.dtype``, channel ``3c + j`` for
        ``j in (a, b, c)``: ``(grad_y*b, grad_y*a, grad_y)``. It is the output gradient of
        ``F.conv2d(x, weight.reshape(3C, 1, K, K), bias.reshape(3C), padding=padding,
        groups=C)``, ready for ``torch.ops.aten.convolution_backward``.
    """
    B, C, H, W, K, H_out, W_out = _check_inputs(x, weight, bias, padding)
    if not isinstance(grad_y, torch.Tensor) or not grad_y.is_floating_point():
        raise ValueError("grad_y must be a floating-point torch.Tensor")
    if tuple(grad_y.shape) != (B, C, H_out, W_out):
        raise ValueError(f"grad_y must have the output shape {(B, C, H_out, W_out)}, "
                         f"got {tuple(grad_y.shape)}")
    if grad_y.device != x.device:
        raise ValueError(f"grad_y must be on x's device {x.device}, got {grad_y.device}")
    _, backward_dz_kernel = _kernels()
    x = x.contiguous()
    grad_y = grad_y.contiguous()
    weight = weight.contiguous()
    bias = bias.contiguous()
    dz = torch.empty((B, 3 * C, H_out, W_out), dtype=grad_y.dtype, device=x.device)
    if dz.numel() == 0:
        return dz
    grid, block = _grid(B, C, H_out, W_out)  # (B*C, ceil(Ho*Wo / BLOCK))
    backward_dz_kernel[grid](
        x, weight, bias, grad_y, dz, C, H, W, W_out, H_out * W_out,
        K=K, PAD=padding, BLOCK=block, num_warps=NUM_WARPS,
    )
    return dz
