"""The depthwise quadratic convolution of QuadraNet and its memory-efficient autograd function.

    y = (W_a ∗ x) ⊙ (W_b ∗ x) + (W_c ∗ x)        (QuadraNet, Xu et al., 2023)

Each ``W`` is a depthwise k×k kernel with a per-channel bias, stride 1, zero padding ``padding``.

Two implementations, selected by ``impl``:

- ``"plain"`` — the reference composition of PyTorch ops. Autograd keeps the conv input and
  both factors ``a = W_a ∗ x`` and ``b = W_b ∗ x`` alive for backward.
- ``"efficient"`` — a custom ``torch.autograd.Function`` that saves only its input ``x`` and
  the weights, and recomputes ``a`` and ``b`` in backward (QuadraLib's "hybrid
  back-propagation", MLSys 2022). Activation memory is then that of a first-order depthwise
  conv. On the PyTorch path the forward is three depthwise convs and an ``addcmul``; backward
  recomputes only ``a`` and ``b``, sums three depthwise input-gradients for ``dx`` and takes
  all weight gradients from one grouped ``convolution_backward`` over
  ``dz = [g ⊙ b, g ⊙ a, g]`` (channel ``3c + j``; depthwise weight-gradients are slow on CPU,
  one grouped call costs about as much as one of them).

On CUDA with Triton available (``backend="auto"``) the forward is one fused Triton kernel that
reads ``x`` once and writes ``y`` once, and backward builds ``dz`` in one fused kernel that
recomputes ``a, b`` (see :mod:`search_spaces.triton_quadratic`). ``backend="triton"`` forces
those kernels (e.g. on CPU under ``TRITON_INTERPRET=1`` in tests), ``backend="torch"`` forbids
them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

__all__ = ["QUADRA_IMPLS", "QUADRA_BACKENDS", "quadratic_dwconv"]

QUADRA_IMPLS = ("efficient", "plain")
QUADRA_BACKENDS = ("auto", "torch", "triton")


def _stack_weights(w_a, w_b, w_c, b_a, b_b, b_c):
    """(C, 1, k, k) ×3, (C,) ×3 -> interleaved (C, 3, k, k), (C, 3)."""
    weight = torch.cat((w_a, w_b, w_c), dim=1)  # (C, 3, k, k)
    bias = torch.stack((b_a, b_b, b_c), dim=1)  # (C, 3)
    return weight, bias


def _dw(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, padding: int) -> torch.Tensor:
    """One depthwise conv: (B, C, H, W) -> (B, C, H', W')."""
    return F.conv2d(x, weight, bias, padding=padding, groups=x.shape[1])


def _use_triton(x: torch.Tensor, backend: str) -> bool:
    if backend == "torch":
        return False
    from search_spaces import triton_quadratic

    if backend == "triton":
        return True
    return x.is_cuda and triton_quadratic.is_available()


class _QuadraticDWConvFn(torch.autograd.Function):
    """Saves only ``x`` and the weights; recomputes ``a`` and ``b`` in backward."""

    @staticmethod
    def forward(ctx, x, w_a, w_b, w_c, b_a, b_b, b_c, padding: int, use_triton: bool):
        if use_triton:
            from search_spaces.triton_quadratic import dwquad_forward

            y = dwquad_forward(x, *_stack_weights(w_a, w_b, w_c, b_a, b_b, b_c), padding)
        else:
            a, b, lin = (_dw(x, w, bb, padding) for w, bb in ((w_a, b_a), (w_b, b_b), (w_c, b_c)))
            y = torch.addcmul(lin, a, b)
        ctx.save_for_backward(x, w_a, w_b, w_c, b_a, b_b, b_c)
        ctx.padding = padding
        ctx.use_triton = use_triton
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        x, w_a, w_b, w_c, b_a, b_b, b_c = ctx.saved_tensors
        weight, bias = _stack_weights(w_a, w_b, w_c, b_a, b_b, b_c)
        c, _, k, _ = weight.shape
        grad_y = grad_y.contiguous()
        need_x = ctx.needs_input_grad[0]
        need_w = any(ctx.needs_input_grad[1:4])
        need_b = any(ctx.needs_input_grad[4:7])
        pad = [ctx.padding, ctx.padding]
        if ctx.use_triton:
            from search_spaces.triton_quadratic import dwquad_backward_dz

            # dz = [g ⊙ b, g ⊙ a, g], a and b recomputed inside the kernel: (B, 3C, H', W').
            dz = dwquad_backward_dz(x, grad_y, weight, bias, ctx.padding)
            dx, dw, db = torch.ops.aten.convolution_backward(
                dz, x, weight.reshape(3 * c, 1, k, k), [3 * c], [1, 1], pad, [1, 1], False, [0, 0], c,
                [need_x, need_w, need_b],
            )
        else:
            # Recompute only what backward needs: a and b (not W_c ∗ x).
            a, b = _dw(x, w_a, b_a, ctx.padding), _dw(x, w_b, b_b, ctx.padding)
            grads = (grad_y * b, grad_y * a, grad_y)  # d/da, d/db, d/dc
            del a, b
            dx = None
            if need_x:  # three depthwise input-gradients (fast path) summed
                dx = sum(
                    torch.ops.aten.convolution_backward(
                        g, x, w, None, [1, 1], pad, [1, 1], False, [0, 0], c, [True, False, False]
                    )[0]
                    for g, w in zip(grads, (w_a, w_b, w_c))
                )
            dw = db = None
            if need_w:  # one grouped weight-gradient call for all three kernels
                dz = torch.stack(grads, dim=2).flatten(1, 2)  # (B, 3C, H', W'), channel 3c + j
                dw = torch.ops.aten.convolution_backward(
                    dz, x, weight.reshape(3 * c, 1, k, k), None, [1, 1], pad, [1, 1], False, [0, 0], c,
                    [False, True, False],
                )[1]
            if need_b:
                db = torch.stack([g.sum(dim=(0, 2, 3)) for g in grads], dim=1)  # (C, 3)
        grads_w = dw.view(c, 3, k, k).split(1, dim=1) if dw is not None else (None, None, None)
        grads_b = db.view(c, 3).unbind(1) if db is not None else (None, None, None)
        return (dx, *grads_w, *grads_b, None, None)


def _plain(x, w_a, w_b, w_c, b_a, b_b, b_c, padding: int) -> torch.Tensor:
    # The reference composition: autograd saves x, a and b.
    return _dw(x, w_a, b_a, padding) * _dw(x, w_b, b_b, padding) + _dw(x, w_c, b_c, padding)


def quadratic_dwconv(
    x: torch.Tensor,
    weight_a: torch.Tensor,
    weight_b: torch.Tensor,
    weight_c: torch.Tensor,
    bias_a: torch.Tensor,
    bias_b: torch.Tensor,
    bias_c: torch.Tensor,
    *,
    padding: int,
    impl: str = "efficient",
    backend: str = "auto",
) -> torch.Tensor:
    """``(W_a ∗ x) ⊙ (W_b ∗ x) + W_c ∗ x`` for x (B, C, H, W), weights (C, 1, k, k), biases (C,)."""
    if impl not in QUADRA_IMPLS:
        raise ValueError(f"unknown quadratic conv impl {impl!r}; valid: {', '.join(QUADRA_IMPLS)}")
    if backend not in QUADRA_BACKENDS:
        raise ValueError(f"unknown quadratic conv backend {backend!r}; valid: {', '.join(QUADRA_BACKENDS)}")
    if x.ndim != 4 or x.shape[1] != weight_a.shape[0]:
        raise ValueError(
            f"quadratic_dwconv expects x of shape (B, {weight_a.shape[0]}, H, W), got {tuple(x.shape)}"
        )
    if impl == "plain":
        return _plain(x, weight_a, weight_b, weight_c, bias_a, bias_b, bias_c, padding)
    return _QuadraticDWConvFn.apply(
        x, weight_a, weight_b, weight_c, bias_a, bias_b, bias_c, padding, _use_triton(x, backend)
    )
