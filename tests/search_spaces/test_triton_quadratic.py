"""Fused Triton quadratic depthwise conv against the plain PyTorch composition.

The kernels run on CPU tensors under ``TRITON_INTERPRET=1`` (slow, so tensors are tiny); the
compiled kernels are checked by the ``cuda`` test where a GPU exists.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton")

from search_spaces import triton_quadratic as tq  # noqa: E402


@pytest.fixture
def interpret(monkeypatch):
    """Run the kernels in Triton's CPU interpreter; rebuild them for this setting."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    tq._build_kernels.cache_clear()
    yield
    tq._build_kernels.cache_clear()


def _make(B, C, H, W, K, dtype=torch.float32, device="cpu", seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B, C, H, W, generator=gen)
    weight = torch.randn(C, 3, K, K, generator=gen) / K
    bias = torch.randn(C, 3, generator=gen)
    return (t.to(device=device, dtype=dtype) for t in (x, weight, bias))


def _reference_z(x, weight, bias, padding):
    """z = [a, b, c] as (B, C, 3, H_out, W_out): one grouped conv with 3C output channels."""
    C, K = weight.shape[0], weight.shape[-1]
    z = F.conv2d(x, weight.reshape(3 * C, 1, K, K), bias.reshape(3 * C),
                 padding=padding, groups=C)
    return z.view(x.shape[0], C, 3, z.shape[-2], z.shape[-1])


def _reference_y(x, weight, bias, padding):
    z = _reference_z(x, weight, bias, padding)
    return z[:, :, 0] * z[:, :, 1] + z[:, :, 2]


def _reference_dz(x, g, weight, bias, padding):
    z = _reference_z(x, weight, bias, padding)
    a, b = z[:, :, 0], z[:, :, 1]
    dz = torch.stack((g * b, g * a, g), dim=2)  # (B, C, 3, Ho, Wo): channel 3c + j
    return dz.flatten(1, 2)


# (B, C, H, W): odd sizes inside one tile, and 20x20 = 400 outputs = two tiles of 256.
SIZES = [(2, 3, 5, 7), (1, 2, 20, 20)]
CASES = [(K, pad) for K in (3, 5, 7) for pad in (K // 2, 0)]


def _fits(size, K, pad):
    _, _, H, W = size
    return H + 2 * pad >= K and W + 2 * pad >= K


PARAMS = [
    pytest.param(size, K, pad, id=f"{'x'.join(map(str, size))}-k{K}-p{pad}")
    for size in SIZES for K, pad in CASES if _fits(size, K, pad)
]


@pytest.mark.parametrize(("size", "K", "padding"), PARAMS)
def test_forward_matches_reference(interpret, size, K, padding):
    x, weight, bias = _make(*size, K)
    y = tq.dwquad_forward(x, weight, bias, padding)
    y_ref = _reference_y(x, weight, bias, padding)
    assert y.shape == y_ref.shape == (size[0], size[1], size[2] + 2 * padding - K + 1,
                                      size[3] + 2 * padding - K + 1)
    assert y.dtype == x.dtype
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("size", "K", "padding"), PARAMS)
def test_backward_dz_matches_reference(interpret, size, K, padding):
    x, weight, bias = _make(*size, K)
    y_shape = _reference_y(x, weight, bias, padding).shape
    g = torch.randn(y_shape, generator=torch.Generator().manual_seed(1))
    dz = tq.dwquad_backward_dz(x, g, weight, bias, padding)
    dz_ref = _reference_dz(x, g, weight, bias, padding)
    assert dz.shape == (size[0], 3 * size[1], *y_shape[-2:])
    torch.testing.assert_close(dz, dz_ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("size", "K", "padding"), [
    pytest.param((2, 3, 5, 7), 3, 1, id="2x3x5x7-k3-p1"),
    pytest.param((1, 2, 20, 20), 5, 0, id="1x2x20x20-k5-p0"),
])
def test_convolution_backward_from_dz_matches_autograd(interpret, size, K, padding):
    """dz fed to aten.convolution_backward gives the autograd dx, dW, db of the reference."""
    x, weight, bias = _make(*size, K)
    x.requires_grad_(True)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    y_ref = _reference_y(x, weight, bias, padding)
    g = torch.randn(y_ref.shape, generator=torch.Generator().manual_seed(2))
    dx_ref, dw_ref, db_ref = torch.autograd.grad(y_ref, (x, weight, bias), g)

    C = size[1]
    with torch.no_grad():
        dz = tq.dwquad_backward_dz(x, g, weight, bias, padding)
        dx, dw, db = torch.ops.aten.convolution_backward(
            dz, x, weight.reshape(3 * C, 1, K, K), [3 * C],
            [1, 1], [padding, padding], [1, 1], False, [0, 0], C, [True, True, True],
        )
    torch.testing.assert_close(dx, dx_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(dw.reshape(C, 3, K, K), dw_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(db.reshape(C, 3), db_ref, atol=1e-5, rtol=1e-5)


def test_half_precision_io_accumulates_in_fp32(interpret):
    """fp16 in -> fp16 out, equal to the fp32 reference rounded once."""
    x, weight, bias = _make(1, 2, 6, 5, 3, dtype=torch.float16)
    y = tq.dwquad_forward(x, weight, bias, 1)
    assert y.dtype == torch.float16
    y_ref = _reference_y(x.float(), weight.float(), bias.float(), 1)
    torch.testing.assert_close(y.float(), y_ref, atol=2e-3, rtol=2e-3)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(3)).half()
    dz = tq.dwquad_backward_dz(x, g, weight, bias, 1)
    assert dz.dtype == torch.float16
    dz_ref = _reference_dz(x.float(), g.float(), weight.float(), bias.float(), 1)
    torch.testing.assert_close(dz.float(), dz_ref, atol=2e-3, rtol=2e-3)


def test_non_contiguous_input(interpret):
    x, weight, bias = _make(1, 2, 6, 6, 3)
    x_t = x.transpose(-1, -2)  # non-contiguous view
    y = tq.dwquad_forward(x_t, weight, bias, 1)
    torch.testing.assert_close(y, _reference_y(x_t, weight, bias, 1), atol=1e-5, rtol=1e-5)


def test_launch_shape():
    assert tq.launch_shape(2, 3, 5, 7) == {"grid": (6, 1), "BLOCK": 128, "num_warps": 4}
    assert tq.launch_shape(1, 2, 20, 20) == {"grid": (2, 2), "BLOCK": 256, "num_warps": 4}
    assert tq.launch_shape(8, 64, 56, 56)["grid"] == (512, 13)  # ceil(3136 / 256) = 13


@pytest.mark.parametrize(("args", "match"), [
    ((torch.zeros(3, 5, 5), torch.zeros(3, 3, 3, 3), torch.zeros(3, 3), 1), "4-D"),
    ((torch.zeros(1, 4, 5, 5), torch.zeros(3, 3, 3, 3), torch.zeros(3, 3), 1),
     "channel mismatch"),
    ((torch.zeros(1, 3, 5, 5), torch.zeros(3, 3, 3, 3), torch.zeros(2, 3), 1),
     "channel mismatch"),
    ((torch.zeros(1, 3, 5, 5), torch.zeros(3, 3, 3, 5), torch.zeros(3, 3), 1), "square"),
    ((torch.zeros(1, 3, 5, 5), torch.zeros(3, 2, 3, 3), torch.zeros(3, 2), 1), r"\(C, 3, K, K\)"),
    ((torch.zeros(1, 3, 5, 5), torch.zeros(3, 3, 3, 3), torch.zeros(3), 1), r"\(C, 3\)"),
    ((torch.zeros(1, 3, 5, 5), torch.zeros(3, 3, 3, 3), torch.zeros(3, 3), -1), ">= 0"),
    ((torch.zeros(1, 3, 2, 5), torch.zeros(3, 3, 5, 5), torch.zeros(3, 3), 1), "output size"),
    ((torch.zeros(1, 3, 5, 5, dtype=torch.int64), torch.zeros(3, 3, 3, 3), torch.zeros(3, 3), 1),
     "floating-point"),
    ((torch.zeros(1, 3, 5, 5), torch.zeros(3, 3, 3, 3), torch.zeros(3, 3, device="meta"), 1),
     "one device"),
])
def test_bad_inputs_raise(interpret, args, match):
    with pytest.raises(ValueError, match=match):
        tq.dwquad_forward(*args)


def test_bad_grad_y_raises(interpret):
    x, weight, bias = _make(1, 2, 5, 5, 3)
    with pytest.raises(ValueError, match="output shape"):
        tq.dwquad_backward_dz(x, torch.zeros(1, 2, 4, 4), weight, bias, 1)


def test_cpu_tensors_without_interpreter_raise(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    x, weight, bias = _make(1, 2, 5, 5, 3)
    with pytest.raises(ValueError, match="CUDA tensors"):
        tq.dwquad_forward(x, weight, bias, 1)


def test_missing_triton_raises_import_error(interpret, monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)
    monkeypatch.setitem(sys.modules, "triton.language", None)
    tq._build_kernels.cache_clear()
    assert not tq.is_available()
    x, weight, bias = _make(1, 2, 5, 5, 3)
    with pytest.raises(ImportError, match="backend='torch'"):
        tq.dwquad_forward(x, weight, bias, 1)


def test_module_imports_without_triton():
    code = ("import sys; sys.modules['triton'] = None\n"
            "import search_spaces.triton_quadratic as tq\n"
            "assert not tq.is_available()\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device for compiled "
                    "Triton kernels (CPU runs use TRITON_INTERPRET=1 above)")
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-4), (torch.float16, 1e-2)])
@pytest.mark.parametrize(("size", "K", "padding"), [
    ((2, 3, 5, 7), 3, 1), ((2, 8, 33, 31), 7, 3), ((4, 16, 56, 56), 5, 0),
])
def test_compiled_kernels_on_cuda(monkeypatch, dtype, tol, size, K, padding):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    tq._build_kernels.cache_clear()
    x, weight, bias = _make(*size, K, dtype=dtype, device="cuda")
    f32 = [t.float() for t in (x, weight, bias)]
    y = tq.dwquad_forward(x, weight, bias, padding)
    assert y.dtype == dtype
    torch.testing.assert_close(y.float(), _reference_y(*f32, padding), atol=tol, rtol=tol)
    g = torch.randn(y.shape, device="cuda").to(dtype)
    dz = tq.dwquad_backward_dz(x, g, weight, bias, padding)
    assert dz.dtype == dtype
    dz_ref = _reference_dz(f32[0], g.float(), f32[1], f32[2], padding)
    torch.testing.assert_close(dz.float(), dz_ref, atol=tol, rtol=tol)


# --- The memory-efficient autograd function, end to end through the Triton kernels ---------------

@pytest.mark.parametrize("K", [3, 5])
def test_efficient_op_on_triton_backend_matches_plain_reference(interpret, K):
    """quadratic_dwconv(impl='efficient', backend='triton'): forward and every gradient equal the
    plain PyTorch composition (the kernels run under the interpreter on CPU)."""
    from search_spaces.quadratic_op import quadratic_dwconv

    torch.manual_seed(1)
    C = 3
    x = torch.randn(2, C, 6, 5)
    params = [torch.randn(C, 1, K, K) for _ in range(3)] + [torch.randn(C) for _ in range(3)]
    g = torch.randn(2, C, 6, 5)

    def run(impl, backend):
        leaves = [t.clone().requires_grad_(True) for t in [x, *params]]
        y = quadratic_dwconv(*leaves, padding=K // 2, impl=impl, backend=backend)
        y.backward(g)
        return y.detach(), [t.grad for t in leaves]

    y_ref, grads_ref = run("plain", "torch")
    y_tri, grads_tri = run("efficient", "triton")
    torch.testing.assert_close(y_tri, y_ref, atol=1e-5, rtol=1e-5)
    for got, want in zip(grads_tri, grads_ref):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-5)
