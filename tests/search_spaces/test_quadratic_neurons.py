"""The seven QuadraLib neuron designs (search_spaces.quadratic) against their formulas.

Every reference is written out here from the layer's own weights: dense layers with matrix
products, convolutions with ``F.unfold`` patches and per-group matrix products (no call to the
layer's ``nn.Conv2d``s), the factorised bilinear term as an explicit ``xᵀ (Σ_r u_r v_rᵀ) x``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from search_spaces.quadratic import QUADRATIC_NEURONS, create_quadratic, quadratic_names

DTYPE = torch.float64
ATOL = 1e-10
RANKED = ("t1", "t1&2")  # designs with a bilinear xᵀW_a x term


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randomize(layer: torch.nn.Module, seed: int) -> None:
    """Give every parameter (biases included) a non-trivial random value."""
    gen = _gen(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5)


def _build(name: str, seed: int = 0, **kw) -> torch.nn.Module:
    layer = create_quadratic(name, **kw).to(DTYPE)
    _randomize(layer, seed)
    return layer


# ----------------------------------------------------------------------------------- dense


def _affine(x, m):
    """W x + b of a dense first-order map, from its weights."""
    y = x @ m.weight.T
    return y if m.bias is None else y + m.bias


def _bilinear_dense(x, w):
    """xᵀ W_o x for every output o: (..., in), (out, in, in) -> (..., out)."""
    return torch.stack([((x @ w[o]) * x).sum(-1) for o in range(w.shape[0])], dim=-1)


DENSE_REF = {
    "ours": lambda L, x: _affine(x, L.lin_a) * _affine(x, L.lin_b) + _affine(x, L.lin_c),
    "t1": lambda L, x: _bilinear_dense(x, L.quad.weight) + _affine(x, L.lin_b),
    "t2": lambda L, x: _affine(x**2, L.lin_a),
    "t3": lambda L, x: _affine(x, L.lin_a) ** 2,
    "t4": lambda L, x: _affine(x, L.lin_a) * _affine(x, L.lin_b),
    "t1&2": lambda L, x: _bilinear_dense(x, L.quad.weight) + _affine(x**2, L.lin_b),
    "t2&4": lambda L, x: _affine(x, L.lin_a) * _affine(x, L.lin_b) + _affine(x**2, L.lin_c),
}


def test_every_registered_design_has_a_reference():
    assert set(quadratic_names()) == set(QUADRATIC_NEURONS) == set(DENSE_REF)
    assert len(quadratic_names()) == 7


def test_dense_bilinear_reference_matches_einsum():
    """The per-output loop used above is xᵀ W_o x (checked once against einsum)."""
    x = torch.randn(3, 5, generator=_gen(1), dtype=DTYPE)
    w = torch.randn(4, 5, 5, generator=_gen(2), dtype=DTYPE)
    torch.testing.assert_close(_bilinear_dense(x, w), torch.einsum("bi,oij,bj->bo", x, w, x),
                               atol=ATOL, rtol=0)
    assert _bilinear_dense(x, w)[1, 2].item() == pytest.approx(float(x[1] @ w[2] @ x[1]), abs=ATOL)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("name", quadratic_names())
def test_dense_matches_formula(name, bias):
    layer = _build(name, in_channels=5, out_channels=4, bias=bias)
    assert not layer.is_conv
    for sub in ("lin_a", "lin_b", "lin_c"):
        m = getattr(layer, sub, None)
        if m is not None:
            assert isinstance(m, torch.nn.Linear)
            assert (m.bias is not None) == bias
    if name in RANKED:
        assert layer.quad.weight.shape == (4, 5, 5)
    x = torch.randn(3, 5, generator=_gen(10), dtype=DTYPE)
    y = layer(x)
    assert y.shape == (3, 4)
    torch.testing.assert_close(y, DENSE_REF[name](layer, x), atol=ATOL, rtol=0)
    # Leading dims (..., in) are batch dims: same rows, same answer.
    xb = torch.randn(2, 3, 5, generator=_gen(11), dtype=DTYPE)
    yb = layer(xb)
    assert yb.shape == (2, 3, 4)
    torch.testing.assert_close(yb, DENSE_REF[name](layer, xb), atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", quadratic_names())
def test_dense_is_quadratic_not_linear(name):
    """Every design has a genuinely second-order term: y(2x) != 2 y(x) with biases off."""
    layer = _build(name, in_channels=5, out_channels=4, bias=False)
    x = torch.randn(3, 5, generator=_gen(12), dtype=DTYPE)
    y1, y2 = layer(x), layer(2 * x)
    assert not torch.allclose(y2, 2 * y1)
    if name in ("t2", "t3", "t4"):  # purely quadratic, no first-order term
        torch.testing.assert_close(y2, 4 * y1, atol=ATOL, rtol=0)


# ------------------------------------------------------------------------------------ conv


def _out_hw(h, w, k, stride, padding):
    return (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1


def _patches(x, k, stride, padding, groups):
    """Receptive-field patches per group: (B, G, C_in/G · k · k, L)."""
    b, c = x.shape[:2]
    cols = F.unfold(x, k, padding=padding, stride=stride)  # (B, C·k·k, L), channel-major
    return cols.view(b, groups, (c // groups) * k * k, cols.shape[-1])


def _apply(p, weight, bias, hw):
    """Per-group matrix product of patches with flattened filters -> (B, out, H', W')."""
    b, groups, _, _ = p.shape
    out = weight.shape[0]
    w = weight.reshape(groups, out // groups, -1)  # (G, out/G, C_in/G · k · k)
    y = torch.einsum("bgpl,gop->bgol", p, w).reshape(b, out, *hw)
    return y if bias is None else y + bias.view(1, -1, 1, 1)


def conv_ref(x, weight, bias, stride, padding, groups):
    """2-D convolution from unfold patches and per-group matrix products."""
    k = weight.shape[-1]
    hw = _out_hw(x.shape[-2], x.shape[-1], k, stride, padding)
    return _apply(_patches(x, k, stride, padding, groups), weight, bias, hw)


@pytest.mark.parametrize(("cin", "cout", "k", "stride", "padding", "groups"), [
    (4, 6, 3, 1, 1, 1), (4, 6, 3, 2, 1, 2), (6, 6, 5, 1, 2, 6), (3, 4, 1, 1, 0, 1), (4, 2, 3, 1, 0, 2),
])
def test_conv_ref_matches_conv2d(cin, cout, k, stride, padding, groups):
    x = torch.randn(2, cin, 7, 6, generator=_gen(3), dtype=DTYPE)
    w = torch.randn(cout, cin // groups, k, k, generator=_gen(4), dtype=DTYPE)
    b = torch.randn(cout, generator=_gen(5), dtype=DTYPE)
    torch.testing.assert_close(conv_ref(x, w, b, stride, padding, groups),
                               F.conv2d(x, w, b, stride=stride, padding=padding, groups=groups),
                               atol=ATOL, rtol=0)


def _lin(P, m, hw, sq=False):
    """W ∗ x (or W ∗ x² with sq=True) of a first-order conv map, from its weights and patches."""
    return _apply(P**2 if sq else P, m.weight, m.bias, hw)


def _bilinear_conv(P, quad, out, groups, hw):
    """xᵀ A_o x per output position, A_o = Σ_r u_{oR+r} v_{oR+r}ᵀ (filters flattened)."""
    rank = quad.rank
    u = quad.u.weight.reshape(out * rank, -1)  # (out·R, C_in/G · k · k)
    v = quad.v.weight.reshape(out * rank, -1)
    per_group = out // groups
    cols = []
    for o in range(out):
        A = sum(torch.outer(u[o * rank + r], v[o * rank + r]) for r in range(rank))
        Pg = P[:, o // per_group]  # (B, C_in/G · k · k, L): the group output o reads
        cols.append(torch.einsum("bpl,pq,bql->bl", Pg, A, Pg))
    return torch.stack(cols, dim=1).reshape(P.shape[0], out, *hw)


def conv_layer_ref(name, L, x):
    k, s, p, g = L.kernel_size, L.stride, L.padding, L.groups
    hw = _out_hw(x.shape[-2], x.shape[-1], k, s, p)
    P = _patches(x, k, s, p, g)
    out = L.out_channels
    if name == "ours":
        return _lin(P, L.lin_a, hw) * _lin(P, L.lin_b, hw) + _lin(P, L.lin_c, hw)
    if name == "t1":
        return _bilinear_conv(P, L.quad, out, g, hw) + _lin(P, L.lin_b, hw)
    if name == "t2":
        return _lin(P, L.lin_a, hw, sq=True)
    if name == "t3":
        return _lin(P, L.lin_a, hw) ** 2
    if name == "t4":
        return _lin(P, L.lin_a, hw) * _lin(P, L.lin_b, hw)
    if name == "t1&2":
        return _bilinear_conv(P, L.quad, out, g, hw) + _lin(P, L.lin_b, hw, sq=True)
    if name == "t2&4":
        return _lin(P, L.lin_a, hw) * _lin(P, L.lin_b, hw) + _lin(P, L.lin_c, hw, sq=True)
    raise AssertionError(f"no conv reference for {name!r}")


# (in, out, kernel, stride, padding (None = k//2), groups)
CONV_CASES = [
    pytest.param(4, 6, 1, 1, None, 1, id="k1"),
    pytest.param(4, 6, 3, 1, None, 1, id="k3"),
    pytest.param(4, 6, 3, 1, None, 2, id="k3-g2"),
    pytest.param(6, 6, 3, 1, None, 6, id="k3-depthwise"),
    pytest.param(4, 4, 5, 1, None, 1, id="k5"),
    pytest.param(4, 6, 5, 1, None, 2, id="k5-g2"),
    pytest.param(4, 6, 3, 2, None, 2, id="k3-s2-g2"),
    pytest.param(3, 4, 3, 1, 0, 1, id="k3-p0"),
]


@pytest.mark.parametrize(("cin", "cout", "k", "stride", "padding", "groups"), CONV_CASES)
@pytest.mark.parametrize("name", quadratic_names())
def test_conv_matches_formula(name, cin, cout, k, stride, padding, groups):
    kw = dict(in_channels=cin, out_channels=cout, kernel_size=k, stride=stride, groups=groups)
    if padding is not None:
        kw["padding"] = padding
    layer = _build(name, **kw)
    assert layer.is_conv
    assert layer.padding == (k // 2 if padding is None else padding)
    for sub in ("lin_a", "lin_b", "lin_c"):
        m = getattr(layer, sub, None)
        if m is not None:
            assert isinstance(m, torch.nn.Conv2d)
            assert m.weight.shape == (cout, cin // groups, k, k)
    x = torch.randn(2, cin, 7, 6, generator=_gen(20), dtype=DTYPE)
    y = layer(x)
    assert y.shape == (2, cout, *_out_hw(7, 6, k, stride, layer.padding))
    torch.testing.assert_close(y, conv_layer_ref(name, layer, x), atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", quadratic_names())
def test_conv_without_bias_matches_formula(name):
    layer = _build(name, in_channels=4, out_channels=6, kernel_size=3, groups=2, bias=False)
    for sub in ("lin_a", "lin_b", "lin_c"):
        m = getattr(layer, sub, None)
        assert m is None or m.bias is None
    x = torch.randn(2, 4, 5, 5, generator=_gen(21), dtype=DTYPE)
    torch.testing.assert_close(layer(x), conv_layer_ref(name, layer, x), atol=ATOL, rtol=0)


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("name", RANKED)
def test_conv_bilinear_term_is_sum_over_rank(name, rank, groups):
    """quad(x)[o] = Σ_r (u_{oR+r} · patch)(v_{oR+r} · patch), u, v in the group of output o."""
    layer = _build(name, in_channels=4, out_channels=6, kernel_size=3, groups=groups, rank=rank)
    quad = layer.quad
    assert quad.rank == rank
    assert quad.u.weight.shape == quad.v.weight.shape == (6 * rank, 4 // groups, 3, 3)
    assert quad.u.bias is None and quad.v.bias is None
    x = torch.randn(2, 4, 6, 5, generator=_gen(22), dtype=DTYPE)
    P = _patches(x, 3, 1, 1, groups)  # (B, G, C_in/G · 9, L)
    u = quad.u.weight.reshape(6 * rank, -1)
    v = quad.v.weight.reshape(6 * rank, -1)
    per_group = 6 // groups
    ref = torch.zeros(2, 6, 30, dtype=DTYPE)
    for o in range(6):
        Pg = P[:, o // per_group]
        for r in range(rank):
            ref[:, o] += (u[o * rank + r] @ Pg) * (v[o * rank + r] @ Pg)
    torch.testing.assert_close(quad(x), ref.view(2, 6, 6, 5), atol=ATOL, rtol=0)


def test_default_conv_rank_is_two():
    assert create_quadratic("t1", in_channels=3, out_channels=2, kernel_size=3).quad.rank == 2
    assert create_quadratic("t1&2", in_channels=3, out_channels=2, kernel_size=3).quad.rank == 2


@pytest.mark.parametrize("groups", [1, 2])
def test_t1_rank1_product_term_is_t4(groups):
    """Rank 1: t1's bilinear term is (U ∗ x) ⊙ (V ∗ x), i.e. a bias-free t4 with W_a=U, W_b=V."""
    t1 = _build("t1", in_channels=4, out_channels=6, kernel_size=3, groups=groups, rank=1)
    t4 = _build("t4", seed=1, in_channels=4, out_channels=6, kernel_size=3, groups=groups, bias=False)
    with torch.no_grad():
        t4.lin_a.weight.copy_(t1.quad.u.weight)
        t4.lin_b.weight.copy_(t1.quad.v.weight)
    x = torch.randn(2, 4, 5, 6, generator=_gen(23), dtype=DTYPE)
    q = t1.quad(x)
    torch.testing.assert_close(q, t1.quad.u(x) * t1.quad.v(x), atol=ATOL, rtol=0)
    torch.testing.assert_close(q, t4(x), atol=ATOL, rtol=0)
    torch.testing.assert_close(t1(x), t4(x) + t1.lin_b(x), atol=ATOL, rtol=0)


# ---------------------------------------------------------------------------------- errors

CONV_KW = dict(in_channels=4, out_channels=6, kernel_size=3)
DENSE_KW = dict(in_channels=5, out_channels=4)


@pytest.mark.parametrize("bad", ["nope", "T1", "", None, 3])
def test_unknown_name_lists_valid_names(bad):
    with pytest.raises(ValueError, match="unknown quadratic neuron") as err:
        create_quadratic(bad, **DENSE_KW)
    for name in quadratic_names():
        assert name in str(err.value)


@pytest.mark.parametrize("name", [n for n in quadratic_names() if n not in RANKED])
@pytest.mark.parametrize("kw", [CONV_KW, DENSE_KW], ids=["conv", "dense"])
def test_rank_rejected_for_designs_without_bilinear_term(name, kw):
    with pytest.raises(ValueError, match="rank applies only to") as err:
        create_quadratic(name, rank=2, **kw)
    assert name in str(err.value)
    for ranked in RANKED:
        assert ranked in str(err.value)


@pytest.mark.parametrize("name", RANKED)
def test_rank_rejected_for_dense_bilinear(name):
    with pytest.raises(ValueError, match="exact; rank applies to convolutions only"):
        create_quadratic(name, rank=2, **DENSE_KW)


@pytest.mark.parametrize("name", RANKED)
@pytest.mark.parametrize("rank", [0, -1, 1.5, True])
def test_bad_rank_raises(name, rank):
    with pytest.raises(ValueError, match="rank must be a positive integer"):
        create_quadratic(name, rank=rank, **CONV_KW)


@pytest.mark.parametrize("name", quadratic_names())
@pytest.mark.parametrize("arg", ["in_channels", "out_channels"])
@pytest.mark.parametrize("value", [0, -3, 2.0, True, "4"])
def test_bad_channels_raise(name, arg, value):
    kw = {**CONV_KW, arg: value}
    with pytest.raises(ValueError, match=f"{arg} must be a positive integer"):
        create_quadratic(name, **kw)


@pytest.mark.parametrize("name", quadratic_names())
@pytest.mark.parametrize(("cin", "cout", "groups"), [(4, 6, 4), (6, 4, 4), (4, 6, 0), (4, 6, 3)])
def test_groups_must_divide_channels(name, cin, cout, groups):
    with pytest.raises(ValueError, match=rf"groups={groups} must be a positive integer dividing "
                                         rf"in_channels={cin} and out_channels={cout}"):
        create_quadratic(name, in_channels=cin, out_channels=cout, kernel_size=3, groups=groups)


@pytest.mark.parametrize("name", quadratic_names())
@pytest.mark.parametrize("extra", [{"stride": 2}, {"padding": 1}, {"padding": 0}, {"groups": 5}])
def test_conv_arguments_rejected_for_dense(name, extra):
    with pytest.raises(ValueError, match="apply to convolutions only.*kernel_size"):
        create_quadratic(name, **DENSE_KW, **extra)


@pytest.mark.parametrize("name", quadratic_names())
@pytest.mark.parametrize(("extra", "match"), [
    ({"kernel_size": 0}, "kernel_size must be a positive integer"),
    ({"kernel_size": 3, "stride": 0}, "stride must be a positive integer"),
    ({"kernel_size": 3, "padding": -1}, "padding must be a non-negative integer"),
])
def test_bad_conv_geometry_raises(name, extra, match):
    with pytest.raises(ValueError, match=match):
        create_quadratic(name, in_channels=4, out_channels=6, **extra)


@pytest.mark.parametrize("name", quadratic_names())
@pytest.mark.parametrize("shape", [(3, 6), (3, 5, 1), ()])
def test_dense_wrong_input_shape_raises(name, shape):
    layer = create_quadratic(name, **DENSE_KW)
    with pytest.raises(ValueError, match=r"expects input \(\.\.\., 5\), got shape") as err:
        layer(torch.zeros(shape))
    assert str(tuple(shape)) in str(err.value)
    assert type(layer).__name__ in str(err.value)


@pytest.mark.parametrize("name", quadratic_names())
@pytest.mark.parametrize("shape", [(2, 3, 5, 5), (2, 5, 5, 5), (4, 5, 5)])
def test_conv_wrong_input_shape_raises(name, shape):
    layer = create_quadratic(name, **CONV_KW)
    with pytest.raises(ValueError, match=r"expects input \(B, 4, H, W\), got shape") as err:
        layer(torch.zeros(shape))
    assert str(tuple(shape)) in str(err.value)


@pytest.mark.parametrize("kind", ["dense", "conv"])
@pytest.mark.parametrize("name", quadratic_names())
def test_gradients_match_reference(name, kind):
    """Backward of the layer equals backward of the written-out formula (input and weights)."""
    if kind == "dense":
        layer = _build(name, in_channels=5, out_channels=4)
        x = torch.randn(3, 5, generator=_gen(30), dtype=DTYPE)
        ref_fn = DENSE_REF[name]
    else:
        layer = _build(name, in_channels=4, out_channels=6, kernel_size=3, groups=2)
        x = torch.randn(2, 4, 5, 5, generator=_gen(31), dtype=DTYPE)
        ref_fn = lambda L, x: conv_layer_ref(name, L, x)  # noqa: E731
    x.requires_grad_(True)
    params = list(layer.parameters())
    y = layer(x)
    g = torch.randn(y.shape, generator=_gen(32), dtype=DTYPE)
    got = torch.autograd.grad(y, [x, *params], g)
    want = torch.autograd.grad(ref_fn(layer, x), [x, *params], g)
    for a, b in zip(got, want):
        assert a.abs().max() > 0
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


def test_conv_stride_and_padding_reject_bools():
    with pytest.raises(ValueError, match="stride"):
        create_quadratic("ours", in_channels=2, out_channels=2, kernel_size=3, stride=True)
    with pytest.raises(ValueError, match="padding"):
        create_quadratic("ours", in_channels=2, out_channels=2, kernel_size=3, padding=True)


def test_rank_none_is_accepted_for_any_design():
    layer = create_quadratic("t2", in_channels=2, out_channels=3, rank=None)
    assert layer(torch.randn(4, 2)).shape == (4, 3)
