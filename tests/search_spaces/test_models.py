"""Mixers, blocks, networks and presets (search_spaces.mixers/blocks/networks/presets).

References are written out here: the quadratic depthwise conv and gⁿConv as F.conv2d
compositions from the module's weights, LayerNorm and GELU from their formulas, the whole
network as stem → (downsample → blocks)* → pool → LN → head, parameter counts from the layer
shapes. The memory claim is checked on what autograd actually saves for backward.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from search_spaces.blocks import Block, QuadraBlock
from search_spaces.layers import DropPath, LayerNorm2d
from search_spaces.mixers import DWConv, GnConv, QuadraConv, create_mixer, gnconv_dims
from search_spaces.networks import (
    BlockConfig,
    NetConfig,
    QuadraNet,
    StageConfig,
    count_params,
    uniform_net,
)
from search_spaces.presets import MODELS, create_model, model_config, model_names
from search_spaces.quadratic_op import quadratic_dwconv

DTYPE = torch.float64
EPS = 1e-6  # every LayerNorm in the design


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randomize(module: torch.nn.Module, seed: int, scale: float = 0.3) -> None:
    """Non-trivial values for every parameter (LN weights/biases and layer scales included)."""
    gen = _gen(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale)


# ---------------------------------------------------------------------- written-out references


def ln_last(x, w, b):
    """LayerNorm over the last dim, from its formula (biased variance, eps 1e-6)."""
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + EPS) * w + b


def ln_channels(x, w, b):
    """LayerNorm over C of (B, C, H, W)."""
    return ln_last(x.permute(0, 2, 3, 1), w, b).permute(0, 3, 1, 2)


def gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def quadra_ref(x, wa, wb, wc, ba, bb, bc, padding):
    c = x.shape[1]
    return (F.conv2d(x, wa, ba, padding=padding, groups=c) * F.conv2d(x, wb, bb, padding=padding, groups=c)
            + F.conv2d(x, wc, bc, padding=padding, groups=c))


def quadra_mixer_ref(m, x):
    return quadra_ref(x, m.weight_a, m.weight_b, m.weight_c, m.bias_a, m.bias_b, m.bias_c,
                      m.kernel_size // 2)


def gnconv_ref(m, x, order, scale=1.0 / 3.0):
    """HorNet's gⁿConv step by step from the module's weights."""
    c = x.shape[1]
    k = m.kernel_size
    dims = [c // 2 ** (order - 1 - i) for i in range(order)]
    fused = F.conv2d(x, m.proj_in.weight, m.proj_in.bias)  # (B, 2C, H, W)
    assert fused.shape[1] == 2 * c == dims[0] + sum(dims)
    p0, q = fused[:, : dims[0]], fused[:, dims[0]:]
    dq = F.conv2d(q, m.dwconv.weight, m.dwconv.bias, padding=k // 2, groups=sum(dims)) * scale
    f, start = [], 0
    for d in dims:
        f.append(dq[:, start:start + d])
        start += d
    y = p0 * f[0]
    for i in range(1, order):
        pw = m.pws[i - 1]
        y = F.conv2d(y, pw.weight, pw.bias) * f[i]
    return F.conv2d(y, m.proj_out.weight, m.proj_out.bias)


def mixer_ref(block, x):
    m = block.mixer
    if block.mixer_name == "quadra":
        return quadra_mixer_ref(m, x)
    if block.mixer_name == "gnconv":
        return gnconv_ref(m, x, m.order)
    if block.mixer_name == "first_order":
        k = m.kernel_size
        return F.conv2d(x, m.conv.weight, m.conv.bias, padding=k // 2, groups=x.shape[1])
    raise AssertionError(block.mixer_name)


def block_ref(block, x):
    """x + γ₁·mixer(LN_c(x)), then x + γ₂·fc2(GELU(fc1(LN(x)))) (channels-last MLP)."""
    g1 = block.gamma1.view(1, -1, 1, 1)
    x = x + g1 * mixer_ref(block, ln_channels(x, block.norm1.weight, block.norm1.bias))
    y = ln_last(x.permute(0, 2, 3, 1), block.norm2.weight, block.norm2.bias)  # (B, H, W, C)
    y = gelu(y @ block.fc1.weight.T + block.fc1.bias) @ block.fc2.weight.T + block.fc2.bias
    return x + (block.gamma2 * y).permute(0, 3, 1, 2)


def net_ref(model, x, stem_padding):
    cfg = model.config
    stem = model.stem[0]
    x = F.conv2d(x, stem.weight, stem.bias, stride=cfg.stem_stride, padding=stem_padding)
    x = ln_channels(x, model.stem[1].weight, model.stem[1].bias)
    for i, stage in enumerate(model.stages):
        if i > 0:
            ln, conv = model.downsamples[i - 1]
            x = F.conv2d(ln_channels(x, ln.weight, ln.bias), conv.weight, conv.bias, stride=2)
        for block in stage:
            x = block_ref(block, x)
    x = ln_last(x.mean(dim=(2, 3)), model.norm.weight, model.norm.bias)
    return x @ model.head.weight.T + model.head.bias


# ----------------------------------------------------------------------------- QuadraConv


def _quadra(dim, k, impl, seed=0):
    m = QuadraConv(dim=dim, kernel_size=k, impl=impl).to(DTYPE)
    _randomize(m, seed, scale=0.5)
    return m


def test_quadraconv_init():
    m = QuadraConv(dim=4, kernel_size=5)
    assert m.impl == "efficient"
    for w in (m.weight_a, m.weight_b, m.weight_c):
        assert w.shape == (4, 1, 5, 5)
        assert w.abs().max() <= 1 / 5 and w.abs().max() > 0
    assert torch.equal(m.bias_a, torch.ones(4))
    assert torch.equal(m.bias_b, torch.zeros(4)) and torch.equal(m.bias_c, torch.zeros(4))


@pytest.mark.parametrize("impl", ["efficient", "plain"])
@pytest.mark.parametrize("k", [3, 5, 7])
def test_quadraconv_matches_formula(impl, k):
    m = _quadra(4, k, impl)
    x = torch.randn(2, 4, 9, 8, generator=_gen(1), dtype=DTYPE)
    y = m(x)
    assert y.shape == x.shape
    wa, wb, wc, ba, bb, bc = m.weight_a, m.weight_b, m.weight_c, m.bias_a, m.bias_b, m.bias_c
    ref = (F.conv2d(x, wa, ba, padding=k // 2, groups=4) * F.conv2d(x, wb, bb, padding=k // 2, groups=4)
           + F.conv2d(x, wc, bc, padding=k // 2, groups=4))
    torch.testing.assert_close(y, ref, atol=1e-12, rtol=0)


def _grads(m, x, g):
    x = x.clone().requires_grad_(True)
    m.zero_grad()
    (m(x) * g).sum().backward()
    return [x.grad] + [p.grad.clone() for p in m.parameters()]


@pytest.mark.parametrize("k", [3, 5, 7])
def test_quadraconv_efficient_gradients_equal_plain(k):
    eff, plain = _quadra(3, k, "efficient"), _quadra(3, k, "plain")
    plain.load_state_dict(eff.state_dict())
    x = torch.randn(2, 3, 7, 6, generator=_gen(2), dtype=DTYPE)
    g = torch.randn(2, 3, 7, 6, generator=_gen(3), dtype=DTYPE)
    ge, gp = _grads(eff, x, g), _grads(plain, x, g)
    assert len(ge) == 7
    for a, b in zip(ge, gp):
        assert a.abs().max() > 0
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("which", ["x_only", "weights_only", "biases_only", "w_b_only"])
def test_quadratic_dwconv_partial_requires_grad(which):
    """Only some inputs need grad: the efficient backward still gives the plain gradients."""
    gen = _gen(4)
    x = torch.randn(2, 3, 6, 5, generator=gen, dtype=DTYPE)
    ws = [torch.randn(3, 1, 3, 3, generator=gen, dtype=DTYPE) for _ in range(3)]
    bs = [torch.randn(3, generator=gen, dtype=DTYPE) for _ in range(3)]
    args = [x, *ws, *bs]
    need = {"x_only": [0], "weights_only": [1, 2, 3], "biases_only": [4, 5, 6], "w_b_only": [2]}[which]
    results = {}
    for impl in ("efficient", "plain"):
        inp = [a.clone().requires_grad_(i in need) for i, a in enumerate(args)]
        y = quadratic_dwconv(*inp, padding=1, impl=impl, backend="torch")
        grads = torch.autograd.grad((y * y).sum(), [inp[i] for i in need])
        results[impl] = grads
    for a, b in zip(results["efficient"], results["plain"]):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize(("k", "padding"), [(3, 1), (3, 0), (5, 2)])
def test_quadratic_dwconv_gradcheck(k, padding):
    gen = _gen(5)
    x = torch.randn(2, 3, 5, 6, generator=gen, dtype=DTYPE)
    ws = [torch.randn(3, 1, k, k, generator=gen, dtype=DTYPE) / k for _ in range(3)]
    bs = [torch.randn(3, generator=gen, dtype=DTYPE) for _ in range(3)]
    inputs = tuple(t.requires_grad_(True) for t in (x, *ws, *bs))

    def fn(*a):
        return quadratic_dwconv(*a, padding=padding, impl="efficient", backend="torch")

    assert fn(*inputs).shape == (2, 3, 5 + 2 * padding - k + 1, 6 + 2 * padding - k + 1)
    torch.testing.assert_close(fn(*inputs), quadra_ref(*inputs, padding), atol=1e-12, rtol=0)
    assert torch.autograd.gradcheck(fn, inputs)


def _saved_for_backward(module, x):
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = module(x)
    return y, saved


def _unique_bytes(tensors):
    """Bytes of the distinct storages behind ``tensors``."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


def test_efficient_quadraconv_saves_only_input_and_weights():
    m = QuadraConv(dim=8, kernel_size=7, impl="efficient")
    x = torch.randn(2, 8, 16, 16, requires_grad=True)
    y, saved = _saved_for_backward(m, x)
    params = [m.weight_a, m.weight_b, m.weight_c, m.bias_a, m.bias_b, m.bias_c]
    assert len(saved) == 7
    assert sorted(t.data_ptr() for t in saved) == sorted(t.data_ptr() for t in [x, *params])
    activation_sized = [t for t in saved if t.numel() >= x.numel()]
    assert len(activation_sized) == 1 and activation_sized[0].data_ptr() == x.data_ptr()
    y.sum().backward()  # the saved set is enough for backward
    assert x.grad is not None and m.weight_a.grad is not None


def test_plain_quadraconv_saves_more():
    x = torch.randn(2, 8, 16, 16, requires_grad=True)
    eff = QuadraConv(dim=8, kernel_size=7, impl="efficient")
    plain = QuadraConv(dim=8, kernel_size=7, impl="plain")
    _, saved_e = _saved_for_backward(eff, x)
    _, saved_p = _saved_for_backward(plain, x)
    bytes_e, bytes_p = _unique_bytes(saved_e), _unique_bytes(saved_p)
    param_bytes = sum(p.numel() * p.element_size() for p in eff.parameters())
    x_bytes = x.numel() * x.element_size()
    assert bytes_e == x_bytes + param_bytes
    assert bytes_p > bytes_e
    # plain keeps both factors a = W_a∗x and b = W_b∗x (each the size of x) beside x.
    assert bytes_p >= 3 * x_bytes
    assert sum(t.numel() >= x.numel() and t.data_ptr() != x.data_ptr() for t in saved_p) >= 2


@pytest.mark.parametrize(("kw", "match"), [
    ({"dim": 4, "kernel_size": 4}, "odd"),
    ({"dim": 0}, "dim must be a positive integer"),
    ({"dim": 4, "impl": "fast"}, "unknown impl 'fast'; valid: efficient, plain"),
    ({"dim": 4, "backend": "cuda"}, "unknown backend 'cuda'; valid: auto, torch, triton"),
])
def test_quadraconv_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        QuadraConv(**kw)


def test_quadratic_dwconv_bad_arguments():
    x, w, b = torch.zeros(1, 3, 5, 5), torch.zeros(3, 1, 3, 3), torch.zeros(3)
    with pytest.raises(ValueError, match="impl 'x'; valid: efficient, plain"):
        quadratic_dwconv(x, w, w, w, b, b, b, padding=1, impl="x")
    with pytest.raises(ValueError, match="backend 'x'; valid: auto, torch, triton"):
        quadratic_dwconv(x, w, w, w, b, b, b, padding=1, backend="x")
    with pytest.raises(ValueError, match=r"x of shape \(B, 3, H, W\), got \(1, 4, 5, 5\)"):
        quadratic_dwconv(torch.zeros(1, 4, 5, 5), w, w, w, b, b, b, padding=1)


# ------------------------------------------------------------------------- GnConv, DWConv


@pytest.mark.parametrize("order", [2, 3, 4, 5])
def test_gnconv_matches_hornet(order):
    m = GnConv(dim=16, order=order, kernel_size=5).to(DTYPE)
    _randomize(m, order)
    assert m.scale == pytest.approx(1 / 3)
    assert m.dims == [16 // 2 ** (order - 1 - i) for i in range(order)]
    assert m.proj_in.weight.shape == (32, 16, 1, 1)
    assert m.dwconv.weight.shape == (sum(m.dims), 1, 5, 5)
    assert [(pw.in_channels, pw.out_channels) for pw in m.pws] == list(zip(m.dims[:-1], m.dims[1:]))
    x = torch.randn(2, 16, 6, 5, generator=_gen(6), dtype=DTYPE)
    y = m(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y, gnconv_ref(m, x, order), atol=1e-12, rtol=0)


def test_gnconv_scale_is_used():
    m = GnConv(dim=8, order=3, kernel_size=3, scale=0.5).to(DTYPE)
    _randomize(m, 7)
    x = torch.randn(1, 8, 4, 4, generator=_gen(8), dtype=DTYPE)
    torch.testing.assert_close(m(x), gnconv_ref(m, x, 3, scale=0.5), atol=1e-12, rtol=0)
    assert not torch.allclose(m(x), gnconv_ref(m, x, 3, scale=1 / 3))


@pytest.mark.parametrize(("dim", "order", "dims"), [
    (64, 1, [64]), (64, 2, [32, 64]), (64, 3, [16, 32, 64]), (64, 4, [8, 16, 32, 64]),
    (64, 5, [4, 8, 16, 32, 64]), (48, 5, [3, 6, 12, 24, 48]),
])
def test_gnconv_dims(dim, order, dims):
    assert gnconv_dims(dim, order) == dims
    assert sum(dims) + dims[0] == 2 * dim  # proj_in's 2C outputs are exactly p0 and q


@pytest.mark.parametrize(("dim", "order", "need"), [(12, 4, 8), (20, 5, 16), (3, 2, 2)])
def test_gnconv_dims_not_divisible(dim, order, need):
    with pytest.raises(ValueError, match=f"order {order} needs dim divisible by {need}, got {dim}"):
        gnconv_dims(dim, order)
    with pytest.raises(ValueError, match=f"divisible by {need}"):
        GnConv(dim=dim, order=order)


def test_gnconv_bad_order():
    with pytest.raises(ValueError, match="order must be a positive integer"):
        gnconv_dims(16, 0)


def test_dwconv_and_create_mixer():
    m = create_mixer("first_order", dim=6, kernel_size=5).to(DTYPE)
    assert isinstance(m, DWConv)
    x = torch.randn(1, 6, 7, 7, generator=_gen(9), dtype=DTYPE)
    ref = F.conv2d(x, m.conv.weight, m.conv.bias, padding=2, groups=6)
    torch.testing.assert_close(m(x), ref, atol=1e-12, rtol=0)
    assert m.conv.weight.shape == (6, 1, 5, 5)
    assert isinstance(create_mixer("quadra", dim=4), QuadraConv)
    assert isinstance(create_mixer("gnconv", dim=4, order=2), GnConv)
    with pytest.raises(ValueError, match="unknown mixer 'nope'; valid: quadra, gnconv, first_order"):
        create_mixer("nope", dim=4)


# --------------------------------------------------------------------------------- blocks


@pytest.mark.parametrize("mixer", ["quadra", "gnconv", "first_order"])
def test_block_matches_formula(mixer):
    block = Block(dim=8, mixer=mixer, kernel_size=3, mlp_ratio=3.0, gn_order=3,
                  layer_scale_init=0.7).to(DTYPE)
    for gamma in (block.gamma1, block.gamma2):  # built in float32, then cast
        torch.testing.assert_close(gamma, torch.full((8,), 0.7, dtype=DTYPE), atol=1e-7, rtol=0)
    assert isinstance(block.norm1, LayerNorm2d) and block.norm1.eps == EPS and block.norm2.eps == EPS
    assert (block.fc1.in_features, block.fc1.out_features) == (8, 24)
    assert (block.fc2.in_features, block.fc2.out_features) == (24, 8)
    x = torch.randn(2, 8, 5, 6, generator=_gen(10), dtype=DTYPE)
    torch.testing.assert_close(block(x), block_ref(block, x), atol=1e-10, rtol=0)
    # Per-channel layer scales and non-trivial LN affine parameters.
    _randomize(block, 11)
    torch.testing.assert_close(block(x), block_ref(block, x), atol=1e-10, rtol=0)
    assert block.is_quadratic == (mixer == "quadra")
    assert block.gn_order == (3 if mixer == "gnconv" else None)


def test_block_default_layer_scale():
    block = Block(dim=4)
    assert torch.all(block.gamma1 == 1e-6) and torch.all(block.gamma2 == 1e-6)
    assert isinstance(block.mixer, QuadraConv) and block.mixer.kernel_size == 7


def test_quadrablock():
    block = QuadraBlock(dim=8, kernel_size=5, layer_scale_init=0.7, quadra_impl="plain").to(DTYPE)
    assert isinstance(block.mixer, QuadraConv) and block.mixer.impl == "plain"
    x = torch.randn(1, 8, 4, 4, generator=_gen(12), dtype=DTYPE)
    torch.testing.assert_close(block(x), block_ref(block, x), atol=1e-10, rtol=0)
    with pytest.raises(ValueError, match="mixer is always 'quadra'"):
        QuadraBlock(dim=8, mixer="gnconv")


def test_layernorm2d_matches_formula():
    ln = LayerNorm2d(5, eps=EPS).to(DTYPE)
    _randomize(ln, 13)
    x = torch.randn(2, 5, 3, 4, generator=_gen(14), dtype=DTYPE)
    torch.testing.assert_close(ln(x), ln_channels(x, ln.weight, ln.bias), atol=1e-12, rtol=0)


def test_droppath_eval_is_identity():
    dp = DropPath(0.5).eval()
    x = torch.randn(8, 3, 2, 2)
    assert torch.equal(dp(x), x)
    assert torch.equal(DropPath(0.0).train()(x), x)


@pytest.mark.parametrize("p", [0.3, 0.5])
def test_droppath_train_drops_whole_samples(p):
    dp = DropPath(p).train()
    x = torch.rand(2000, 3, 2, 2) + 0.5  # no zeros in x
    torch.manual_seed(0)
    y = dp(x)
    flat_x, flat_y = x.flatten(1), y.flatten(1)
    dropped = (flat_y == 0).all(dim=1)
    kept = ~dropped
    assert ((flat_y == 0).any(dim=1) == dropped).all()  # a sample is zeroed whole or not at all
    torch.testing.assert_close(flat_y[kept], flat_x[kept] / (1 - p), atol=1e-6, rtol=1e-6)
    assert abs(kept.float().mean().item() - (1 - p)) < 0.05
    torch.manual_seed(0)
    assert torch.equal(dp(x), y)  # seeded: reproducible


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_droppath_bad_p(p):
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        DropPath(p)


# -------------------------------------------------------------------------------- presets


def _is_large(name):
    return model_config(name).input_shape[-1] >= 224


PRESETS = [pytest.param(n, marks=pytest.mark.slow) if _is_large(n) else n for n in model_names()]


def test_registry():
    names = model_names()
    assert names == sorted(MODELS)
    for expected in ("quadranet_tiny", "quadranet_base", "hornet_tiny", "firstorder_tiny",
                     "quadranet_cifar", "hornet_cifar", "firstorder_cifar",
                     "quadranet_digits", "hornet_digits", "firstorder_digits"):
        assert expected in names
    for n in names:
        assert _is_large(n) == (n.endswith("_tiny") or n.endswith("_base"))


@pytest.mark.parametrize("name", PRESETS)
def test_preset_forward_shape(name):
    model = create_model(name).eval()
    cfg = model.config
    assert cfg.name == name
    batch = 1 if _is_large(name) else 2
    x = torch.randn(batch, *cfg.input_shape, generator=_gen(15))
    with torch.no_grad():
        y = model(x)
    assert y.shape == (batch, cfg.num_classes)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", model_names())
def test_preset_wrong_input_shape(name):
    model = create_model(name)
    c, h, w = model.config.input_shape
    expected = rf"expects input of shape \(B, {c}, {h}, {w}\)"
    for shape in [(1, c + 1, h, w), (1, c, h + 4, w), (1, c, h, w // 2), (c, h, w)]:
        with pytest.raises(ValueError, match=expected) as err:
            model(torch.zeros(shape))
        assert str(shape) in str(err.value)
        assert name in str(err.value)


def expected_param_count(cfg: NetConfig) -> int:
    """Parameters from the layer shapes of the design (written out independently)."""
    c_in, w0, ks = cfg.input_shape[0], cfg.widths[0], cfg.stem_kernel
    n = c_in * w0 * ks * ks + w0 + 2 * w0  # stem conv + LN
    prev = w0
    for i, stage in enumerate(cfg.stages):
        w = stage.width
        if i > 0:
            n += 2 * prev + prev * w * 4 + w  # LN + 2×2 conv
        for b in stage.blocks:
            k, h = b.kernel_size, round(b.mlp_ratio * w)
            if b.mixer == "quadra":
                mixer = 3 * (w * k * k + w)
            elif b.mixer == "first_order":
                mixer = w * k * k + w
            else:
                d = [w // 2 ** (b.gn_order - 1 - j) for j in range(b.gn_order)]
                s = sum(d)
                mixer = (w * 2 * w + 2 * w) + (s * k * k + s) + (w * w + w)
                mixer += sum(d[j] * d[j + 1] + d[j + 1] for j in range(b.gn_order - 1))
            # norm1, mixer, γ1, norm2, fc1, fc2, γ2
            n += 2 * w + mixer + w + 2 * w + (w * h + h) + (h * w + w) + w
        prev = w
    return n + 2 * prev + prev * cfg.num_classes + cfg.num_classes  # LN + head


@pytest.mark.parametrize("name", model_names())
def test_param_count_matches_layer_shapes(name):
    model = create_model(name)
    assert count_params(model) == expected_param_count(model.config)


@pytest.mark.parametrize(("name", "published"), [("hornet_tiny", 22.4e6), ("quadranet_tiny", 23.6e6)])
def test_param_count_matches_published(name, published):
    n = count_params(create_model(name))
    assert abs(n - published) / published < 0.03, n


def test_published_shapes():
    q = model_config("quadranet_tiny")
    assert q.depths == (3, 3, 27, 3) and q.widths == (64, 128, 256, 512)
    assert q.input_shape == (3, 224, 224) and q.num_classes == 1000
    assert (q.stem_kernel, q.stem_stride) == (4, 4)
    assert all(b.mixer == "quadra" and b.kernel_size == 7 and b.mlp_ratio == 4.0
               for s in q.stages for b in s.blocks)
    assert q.layer_scale_init == 1e-6
    base = model_config("quadranet_base")
    assert base.depths == (3, 3, 27, 3) and base.widths == (128, 256, 512, 1024)
    h = model_config("hornet_tiny")
    assert h.depths == (2, 3, 18, 2) and h.widths == (64, 128, 256, 512)
    assert [{b.gn_order for b in s.blocks} for s in h.stages] == [{2}, {3}, {4}, {5}]
    assert all(b.mixer == "gnconv" for s in h.stages for b in s.blocks)
    model = QuadraNet(h)
    assert [[blk.mixer.order for blk in stage] for stage in model.stages] == [
        [o] * d for o, d in zip((2, 3, 4, 5), (2, 3, 18, 2))]
    f = model_config("firstorder_tiny")
    assert f.depths == q.depths and f.widths == q.widths
    assert all(b.mixer == "first_order" for s in f.stages for b in s.blocks)


def test_create_model_unknown_lists_names():
    with pytest.raises(ValueError, match="unknown model 'nope'") as err:
        create_model("nope")
    for n in model_names():
        assert n in str(err.value)


def test_create_model_overrides():
    model = create_model("quadranet_digits", num_classes=7, quadra_impl="plain", layer_scale_init=0.5)
    assert model.head.out_features == 7
    blocks = [b for s in model.stages for b in s]
    assert all(b.mixer.impl == "plain" for b in blocks)
    assert all(torch.all(b.gamma1 == 0.5) for b in blocks)
    with pytest.raises(ValueError, match="quadra_impl"):
        create_model("quadranet_digits", quadra_impl="bogus")


def test_drop_path_rates_rise_linearly():
    model = create_model("quadranet_cifar", drop_path_rate=0.2)
    rates = [b.drop_path.p for s in model.stages for b in s]
    n = len(rates)
    assert n == 10
    assert rates == pytest.approx([0.2 * i / (n - 1) for i in range(n)])


# ------------------------------------------------------------------------------ networks


@pytest.mark.parametrize("name", ["quadranet_digits", "hornet_digits", "firstorder_digits"])
def test_network_matches_composition(name):
    model = create_model(name, layer_scale_init=0.5).to(DTYPE).eval()
    cfg = model.config
    assert (cfg.stem_kernel, cfg.stem_stride) == (3, 1)
    x = torch.randn(2, *cfg.input_shape, generator=_gen(16), dtype=DTYPE)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net_ref(model, x, stem_padding=1), atol=1e-10, rtol=0)


def test_imagenet_stem_and_stage_resolutions():
    cfg = model_config("quadranet_tiny")
    assert cfg.stem_padding == 0 and cfg.stem_output_hw == (56, 56)
    small = uniform_net(depths=(1, 1, 1, 1), widths=(8, 16, 32, 64), input_shape=(3, 64, 64),
                        num_classes=5, stem_kernel=4, stem_stride=4, layer_scale_init=0.5)
    model = QuadraNet(small).to(DTYPE).eval()
    sizes = []
    for stage in model.stages:
        stage.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[1:])))
    x = torch.randn(1, 3, 64, 64, generator=_gen(17), dtype=DTYPE)
    with torch.no_grad():
        y = model(x)
        torch.testing.assert_close(y, net_ref(model, x, stem_padding=0), atol=1e-10, rtol=0)
    assert sizes == [(8, 16, 16), (16, 8, 8), (32, 4, 4), (64, 2, 2)]


def _hybrid() -> NetConfig:
    return NetConfig(
        input_shape=(3, 16, 12), num_classes=4,
        stages=(
            StageConfig(width=8, blocks=(BlockConfig("quadra", 3, 2.0), BlockConfig("gnconv", 5, 4.0, 2))),
            StageConfig(width=16, blocks=(BlockConfig("first_order", 7, 1.5),)),
        ),
        stem_kernel=3, stem_stride=2, layer_scale_init=0.3, drop_path_rate=0.1,
        quadra_impl="plain", name="hybrid",
    )


@pytest.mark.parametrize("name", model_names() + ["hybrid"])
def test_netconfig_json_round_trip(name):
    cfg = _hybrid() if name == "hybrid" else model_config(name)
    back = NetConfig.from_dict(json.loads(cfg.to_json()))
    assert back == cfg
    assert back.name == cfg.name
    assert back.depths == cfg.depths and back.widths == cfg.widths
    assert isinstance(back.input_shape, tuple) and isinstance(back.stages[0].blocks, tuple)
    assert back != replace(cfg, num_classes=cfg.num_classes + 1)


def test_hybrid_network_forward():
    model = QuadraNet(_hybrid()).to(DTYPE).eval()
    x = torch.randn(2, 3, 16, 12, generator=_gen(18), dtype=DTYPE)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net_ref(model, x, stem_padding=1), atol=1e-10, rtol=0)


def _stage(width=16, **block_kw):
    return StageConfig(width=width, blocks=(BlockConfig(**block_kw),))


@pytest.mark.parametrize(("make", "field"), [
    (lambda: BlockConfig(mixer="attention"), "mixer"),
    (lambda: BlockConfig(kernel_size=4), "kernel_size"),
    (lambda: BlockConfig(kernel_size=0), "kernel_size"),
    (lambda: BlockConfig(mlp_ratio=0), "mlp_ratio"),
    (lambda: BlockConfig(gn_order=0), "gn_order"),
    (lambda: StageConfig(width=0, blocks=(BlockConfig(),)), "width"),
    (lambda: StageConfig(width=16, blocks=()), "blocks"),
    (lambda: StageConfig(width=12, blocks=(BlockConfig(mixer="gnconv", gn_order=4),)), r"blocks\[0\]\.gn_order"),
    (lambda: NetConfig(input_shape=(3, 8, 8), num_classes=2, stages=()), "stages"),
    (lambda: NetConfig(input_shape=(3, 8, 8), num_classes=0, stages=(_stage(),)), "num_classes"),
    (lambda: NetConfig(input_shape=(3, 8), num_classes=2, stages=(_stage(),)), "input_shape"),
    (lambda: uniform_net(depths=(1, 1, 1, 1), widths=(8, 16, 32, 64), input_shape=(3, 12, 12),
                         num_classes=2, stem_kernel=3, stem_stride=1), "input_shape"),
    (lambda: uniform_net(depths=(1, 1, 1, 1), widths=(8, 16, 32, 64), input_shape=(3, 224, 224),
                         num_classes=2, stem_kernel=4, stem_stride=8), "input_shape"),
    (lambda: NetConfig(input_shape=(3, 8, 8), num_classes=2, stages=(_stage(),), drop_path_rate=1.0),
     "drop_path_rate"),
    (lambda: NetConfig(input_shape=(3, 8, 8), num_classes=2, stages=(_stage(),), drop_path_rate=-0.1),
     "drop_path_rate"),
    (lambda: NetConfig(input_shape=(3, 8, 8), num_classes=2, stages=(_stage(),), quadra_impl="fast"),
     "quadra_impl"),
    (lambda: model_config("hornet_cifar", input_shape=(3, 20, 20)), "input_shape"),
])
def test_config_validation_names_field(make, field):
    with pytest.raises(ValueError, match=rf"^{field}[: ]") as err:
        make()
    assert len(str(err.value)) > len(field) + 10  # says what was wrong too


def test_gnconv_width_error_is_explained():
    with pytest.raises(ValueError, match=r"blocks\[0\]\.gn_order: .*divisible by 8, got 12"):
        StageConfig(width=12, blocks=(BlockConfig(mixer="gnconv", gn_order=4),))
    with pytest.raises(ValueError, match="3 stages need a multiple of 4"):
        uniform_net(depths=(1, 1, 1), widths=(8, 16, 32), input_shape=(1, 6, 6), num_classes=2,
                    stem_kernel=3, stem_stride=1)


def test_quadranet_rejects_non_config():
    for bad in (model_config("quadranet_digits").to_dict(), "quadranet_digits", None):
        with pytest.raises(TypeError, match="QuadraNet takes a NetConfig"):
            QuadraNet(bad)


def test_efficient_and_plain_networks_agree():
    eff = create_model("quadranet_cifar", layer_scale_init=0.5, quadra_impl="efficient").to(DTYPE)
    plain = create_model("quadranet_cifar", layer_scale_init=0.5, quadra_impl="plain").to(DTYPE)
    _randomize(eff, 19, scale=0.1)
    plain.load_state_dict(eff.state_dict())
    assert {b.mixer.impl for s in eff.stages for b in s} == {"efficient"}
    assert {b.mixer.impl for s in plain.stages for b in s} == {"plain"}
    x = torch.randn(2, 3, 32, 32, generator=_gen(20), dtype=DTYPE)
    with torch.no_grad():
        y_e, y_p = eff.eval()(x), plain.eval()(x)
    torch.testing.assert_close(y_e, y_p, atol=1e-10, rtol=1e-10)
    # The quadratic branches matter: a network with its product terms removed differs.
    lin = create_model("quadranet_cifar", layer_scale_init=0.5, quadra_impl="plain").to(DTYPE)
    lin.load_state_dict(eff.state_dict())
    with torch.no_grad():
        for s in lin.stages:
            for b in s:
                b.mixer.weight_a.zero_()
                b.mixer.bias_a.zero_()
        assert not torch.allclose(lin.eval()(x), y_e, atol=1e-6)

    labels = torch.tensor([1, 7])
    for model in (eff, plain):
        model.train()
        model.zero_grad()
        F.cross_entropy(model(x), labels).backward()
    ge, gp = dict(eff.named_parameters()), dict(plain.named_parameters())
    assert ge.keys() == gp.keys()
    for name in ge:
        assert ge[name].grad is not None, name
        torch.testing.assert_close(ge[name].grad, gp[name].grad, atol=1e-10, rtol=1e-8, msg=name)


@pytest.mark.parametrize("kwargs, field", [
    ({"kernel_size": True}, "kernel_size"),
])
def test_block_config_rejects_bool_kernel(kwargs, field):
    with pytest.raises(ValueError, match=rf"^{field}"):
        BlockConfig(**kwargs)


@pytest.mark.parametrize("rate", ["0.1", True, float("nan")])
def test_net_config_rejects_non_numeric_drop_path_rate(rate):
    base = model_config("quadranet_digits")
    with pytest.raises(ValueError, match=r"^drop_path_rate"):
        NetConfig(input_shape=base.input_shape, num_classes=10, stages=base.stages, drop_path_rate=rate)
