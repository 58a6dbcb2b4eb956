"""The weight-sharing supernet (search_spaces.elastic) against written-out references.

- exactness: the extracted stand-alone QuadraNet against the supernet with that arch active,
  with every parameter randomised (layer scales of 1e-6 would hide errors);
- slicing: the extracted weights against the slice written out here (leading channels, leading
  hidden units, centre k×k crop with offset (K - k) // 2), and one elastic block against the
  block formula composed from F.conv2d / LayerNorm / GELU formulas;
- gradients reach exactly the active slice;
- the order-2 mixer in the supernet saves what the memory-efficient operator saves.
"""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.arch import ArchConfig, ArchError, BlockArch, StageArch
from search_spaces.blocks import Block
from search_spaces.elastic import ElasticBlock, QuadraSupernet
from search_spaces.mixers import DWConv, QuadraConv
from search_spaces.networks import QuadraNet
from search_spaces.space import SearchSpace, create_space
from support.spaces import tiny_space

EPS = 1e-6  # every LayerNorm in the design



# Two stages at 16×16 and 8×8, so every tap of a 7×7 kernel sees data (the crop matters).
K357 = dict(name="tiny-k357", input_shape=(2, 16, 16), num_classes=5, depth_choices=((1, 2), (1, 2, 3)),
            width_choices=((8, 16), (16, 24, 32)), kernel_choices=(3, 5, 7), mlp_ratio_choices=(2, 3),
            order_choices=(1, 2))


def _tiny_space(**kw) -> SearchSpace:
    return tiny_space(**{**K357, **kw})


def _space(name: str) -> SearchSpace:
    return _tiny_space() if name == "tiny-k357" else create_space(name)


def _perturb(module: nn.Module, seed: int) -> None:
    """Every parameter random: N(0, 0.2²); LayerNorm weights 1 + N(0, 0.2²)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in module.modules():
            for name, p in mod.named_parameters(recurse=False):
                noise = 0.2 * torch.randn(p.shape, generator=gen, dtype=p.dtype)
                p.copy_(noise + 1.0 if isinstance(mod, nn.LayerNorm) and name == "weight" else noise)


def _supernet(name: str, seed: int = 0) -> QuadraSupernet:
    torch.manual_seed(seed)
    net = QuadraSupernet(_space(name))
    _perturb(net, seed + 100)
    return net


def _input(space: SearchSpace, batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, *space.input_shape, generator=torch.Generator().manual_seed(seed))


def _arch(space: str, *stages) -> ArchConfig:
    """``stages``: (width, [(kernel, ratio, order), …]) per stage."""
    return ArchConfig(space=space, stages=tuple(
        StageArch(width=w, blocks=tuple(BlockArch(kernel_size=k, mlp_ratio=r, order=o) for k, r, o in blocks))
        for w, blocks in stages))


# ---- extraction is exact ---------------------------------------------------------------------

@pytest.mark.parametrize(("name", "n_sampled"), [("digits-s", 32), ("tiny-k357", 32), ("cifar10-m", 12)])
def test_extract_equals_supernet_slice(name, n_sampled):
    supernet = _supernet(name).eval()
    space = supernet.space
    x = _input(space)
    rng = random.Random(5)
    archs = [space.min_arch(), space.max_arch()] + [space.sample(rng) for _ in range(n_sampled)]
    assert len({a.arch_id for a in archs}) == len(archs)
    outputs = []
    with torch.no_grad():
        for arch in archs:
            supernet.set_active(arch)
            y_super = supernet(x)
            net = supernet.extract(arch)
            assert not net.training
            y_net = net(x)
            assert y_super.shape == (2, space.num_classes)
            assert (y_net - y_super).abs().max().item() <= 1e-5, arch.describe()
            outputs.append(y_super)
    # The randomisation makes subnets differ, so the comparison above is not vacuous.
    assert min((outputs[0] - o).abs().max().item() for o in outputs[1:]) > 1e-2
    assert outputs[0].abs().max().item() > 0.1


@pytest.mark.parametrize("name", ["digits-s", "cifar10-m"])
def test_stages_run_piecewise_give_the_whole_forward(name):
    supernet = _supernet(name).eval()
    space = supernet.space
    x = _input(space)
    rng = random.Random(8)
    with torch.no_grad():
        for arch in [space.max_arch(), space.min_arch()] + [space.sample(rng) for _ in range(6)]:
            supernet.set_active(arch)
            whole = supernet(x)
            n = len(arch.stages)
            for k in range(n + 1):  # stem and stages 0..k-1, then the rest, then the head
                h = supernet.run_stages(supernet.run_stages(x, arch, 0, k), arch, k, n)
                assert torch.equal(supernet.run_head(h, arch), whole)


@pytest.mark.parametrize("start, stop", [(-1, 2), (2, 1), (0, 5)])
def test_run_stages_refuses_a_range_outside_the_architecture(start, stop):
    supernet = _supernet("digits-s").eval()
    arch = supernet.space.max_arch()
    with pytest.raises(ValueError, match="out of range for 4 stages"):
        supernet.run_stages(_input(supernet.space), arch, start, stop)


def test_extract_at_initialisation_largest_equals_supernet():
    """No perturbation: the supernet's own initialisation, largest and smallest arch."""
    torch.manual_seed(0)
    supernet = QuadraSupernet(create_space("digits-s")).eval()
    x = _input(supernet.space)
    with torch.no_grad():
        for arch in (supernet.max_arch(), supernet.min_arch()):
            supernet.set_active(arch)
            torch.testing.assert_close(supernet.extract()(x), supernet(x), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", ["digits-s", "tiny-k357"])
def test_extract_is_a_plain_quadranet(name):
    supernet = _supernet(name)
    space = supernet.space
    rng = random.Random(9)
    for arch in [space.max_arch(), space.min_arch()] + [space.sample(rng) for _ in range(6)]:
        net = supernet.extract(arch)
        assert type(net) is QuadraNet
        assert net.config == space.to_net_config(arch)
        assert not any(isinstance(m, (ElasticBlock, QuadraSupernet)) for m in net.modules())
        assert net.stem[0].out_channels == arch.stages[0].width
        assert (net.head.in_features, net.head.out_features) == (arch.stages[-1].width, space.num_classes)
        assert len(net.stages) == len(arch.stages)
        for stage_net, stage in zip(net.stages, arch.stages):
            assert len(stage_net) == stage.depth
            for block, choice in zip(stage_net, stage.blocks):
                assert type(block) is Block and block.dim == stage.width
                mixer_type = QuadraConv if choice.order == 2 else DWConv
                assert type(block.mixer) is mixer_type
                assert block.mixer.kernel_size == choice.kernel_size
                if choice.order == 2:
                    assert block.mixer.weight_a.shape == (stage.width, 1, choice.kernel_size, choice.kernel_size)
                    assert block.mixer.impl == "efficient"
                else:
                    assert block.mixer.conv.weight.shape == (stage.width, 1, choice.kernel_size, choice.kernel_size)
                assert (block.fc1.in_features, block.fc1.out_features) == (stage.width, choice.mlp_ratio * stage.width)
                assert (block.fc2.in_features, block.fc2.out_features) == (choice.mlp_ratio * stage.width, stage.width)


def test_extract_copies_do_not_share_storage():
    supernet = _supernet("digits-s").eval()
    x = _input(supernet.space)
    arch = supernet.max_arch()  # full-size slices: the easiest case to share by accident
    super_ptrs = {t.untyped_storage().data_ptr() for t in supernet.state_dict().values()}
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    with torch.no_grad():
        y_before = supernet(x)
        net = supernet.extract(arch)
        assert not super_ptrs & {t.untyped_storage().data_ptr() for t in net.state_dict().values()}
        for p in net.parameters():
            p.add_(1.0)
        assert (net(x) - y_before).abs().max() > 1e-3  # the mutation did change the copy
        for k, v in supernet.state_dict().items():
            assert torch.equal(v, before[k]), k
        assert torch.equal(supernet(x), y_before)


def test_extract_defaults_to_active_and_follows_mode():
    supernet = _supernet("digits-s")
    arch = supernet.space.sample(random.Random(2))
    supernet.set_active(arch)
    net = supernet.extract()
    assert net.config == supernet.space.to_net_config(arch)
    assert net.training
    supernet.eval()
    assert not supernet.extract(arch).training


# ---- slicing semantics against a written-out slice -------------------------------------------

def test_extracted_weights_are_the_written_out_slice():
    supernet = _supernet("tiny-k357")
    K = 7  # the supernet keeps the largest kernel
    # Stage 0: width 8 of 16; stage 1: width 24 of 32, depth 2 of 3; kernels 3 and 5 and 7.
    arch = _arch("tiny-k357", (8, [(3, 2, 2), (5, 3, 1)]), (24, [(5, 2, 2), (7, 3, 2)]))
    net = supernet.extract(arch)
    assert supernet.stages[1][0].mixer.weight_a.shape == (32, 1, K, K)

    def same(a, b):
        assert a.shape == b.shape and torch.equal(a, b)

    same(net.stem[0].weight, supernet.stem[0].weight[:8])
    same(net.stem[0].bias, supernet.stem[0].bias[:8])
    same(net.stem[1].weight, supernet.stem[1].weight[:8])
    same(net.downsamples[0][0].weight, supernet.downsamples[0][0].weight[:8])
    same(net.downsamples[0][1].weight, supernet.downsamples[0][1].weight[:24, :8])
    same(net.downsamples[0][1].bias, supernet.downsamples[0][1].bias[:24])
    same(net.norm.weight, supernet.norm.weight[:24])
    same(net.head.weight, supernet.head.weight[:, :24])
    same(net.head.bias, supernet.head.bias)
    for i, stage in enumerate(arch.stages):
        c = stage.width
        for j, choice in enumerate(stage.blocks):
            k, h = choice.kernel_size, choice.mlp_ratio * c
            o = (K - k) // 2
            src, dst = supernet.stages[i][j], net.stages[i][j]
            if choice.order == 2:
                for name in ("weight_a", "weight_b", "weight_c"):
                    same(getattr(dst.mixer, name), getattr(src.mixer, name)[:c, :, o:o + k, o:o + k])
                for name in ("bias_a", "bias_b", "bias_c"):
                    same(getattr(dst.mixer, name), getattr(src.mixer, name)[:c])
            else:
                same(dst.mixer.conv.weight, src.mixer.weight_c[:c, :, o:o + k, o:o + k])
                same(dst.mixer.conv.bias, src.mixer.bias_c[:c])
            for name in ("weight", "bias"):
                same(getattr(dst.norm1, name), getattr(src.norm1, name)[:c])
                same(getattr(dst.norm2, name), getattr(src.norm2, name)[:c])
            same(dst.gamma1, src.gamma1[:c])
            same(dst.gamma2, src.gamma2[:c])
            same(dst.fc1.weight, src.fc1.weight[:h, :c])
            same(dst.fc1.bias, src.fc1.bias[:h])
            same(dst.fc2.weight, src.fc2.weight[:c, :h])
            same(dst.fc2.bias, src.fc2.bias[:c])
    # Concretely for one block: kernel 3 of 7 is rows/cols 2..4; kernel 5 is rows/cols 1..5.
    same(net.stages[0][0].mixer.weight_a, supernet.stages[0][0].mixer.weight_a[:8, :, 2:5, 2:5])
    same(net.stages[1][0].mixer.weight_b, supernet.stages[1][0].mixer.weight_b[:24, :, 1:6, 1:6])


def _ln_channels_first(x, weight, bias):  # (B, C, H, W), LayerNorm over C from its formula
    mu = x.mean(dim=1, keepdim=True)
    var = ((x - mu) ** 2).mean(dim=1, keepdim=True)
    return (x - mu) / torch.sqrt(var + EPS) * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)


def _elastic_block_ref(x, blk: ElasticBlock, c: int, choice: BlockArch):
    """x + γ₁·mixer(LN(x)), then x + γ₂·fc2(GELU(fc1(LN(x)))) on the slice, written out."""
    K, k, h = blk.mixer.kernel_size, choice.kernel_size, choice.mlp_ratio * c
    o = (K - k) // 2
    m = blk.mixer
    y = _ln_channels_first(x, blk.norm1.weight[:c], blk.norm1.bias[:c])

    def dw(weight, bias):
        return F.conv2d(y, weight[:c, :, o:o + k, o:o + k], bias[:c], padding=k // 2, groups=c)

    mix = dw(m.weight_c, m.bias_c)
    if choice.order == 2:
        mix = dw(m.weight_a, m.bias_a) * dw(m.weight_b, m.bias_b) + mix
    x = x + blk.gamma1[:c].view(1, -1, 1, 1) * mix
    z = _ln_channels_first(x, blk.norm2.weight[:c], blk.norm2.bias[:c]).permute(0, 2, 3, 1)
    u = z @ blk.fc1.weight[:h, :c].T + blk.fc1.bias[:h]
    u = 0.5 * u * (1.0 + torch.erf(u / math.sqrt(2.0)))
    z = u @ blk.fc2.weight[:c, :h].T + blk.fc2.bias[:c]
    return x + (blk.gamma2[:c] * z).permute(0, 3, 1, 2)


@pytest.mark.parametrize(("c", "k", "r", "order"), [
    (32, 7, 3, 2), (32, 7, 3, 1), (16, 3, 2, 2), (16, 3, 2, 1), (24, 5, 3, 2), (8, 5, 2, 1), (24, 3, 3, 2),
])
def test_elastic_block_matches_formula(c, k, r, order):
    blk = ElasticBlock(max_width=32, max_kernel=7, max_ratio=3, layer_scale_init=1e-6).double()
    _perturb(blk, seed=c + k + r + order)
    x = torch.randn(2, c, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    choice = BlockArch(kernel_size=k, mlp_ratio=r, order=order)
    y = blk(x, c, choice)
    ref = _elastic_block_ref(x, blk, c, choice)
    assert y.shape == x.shape
    torch.testing.assert_close(y, ref, atol=1e-12, rtol=1e-12)
    assert (y - x).abs().max() > 1e-2  # the branches contribute (random layer scales)


# ---- gradients reach exactly the active slice ------------------------------------------------

def _assert_grad_on(p: torch.Tensor, used: tuple, what: str) -> None:
    """Gradient nonzero on every element of ``p[used]`` and exactly zero elsewhere."""
    assert p.grad is not None, what
    mask = torch.zeros_like(p, dtype=torch.bool)
    mask[used] = True
    assert (p.grad[mask] != 0).all(), f"{what}: part of the active slice got no gradient"
    assert (p.grad[~mask] == 0).all(), f"{what}: gradient outside the active slice"


def _assert_no_grad(p: torch.Tensor, what: str) -> None:
    assert p.grad is None or (p.grad == 0).all(), what


def test_gradients_only_in_active_slice():
    supernet = _supernet("tiny-k357").train()
    K = 7
    arch = _arch("tiny-k357", (8, [(3, 2, 2)]), (16, [(5, 3, 1), (3, 2, 2)]))  # of 16 / 32 wide, 2 / 3 deep
    supernet.set_active(arch)
    x = _input(supernet.space)
    out = supernet(x)
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(0))).sum().backward()
    s = slice(None)

    _assert_grad_on(supernet.stem[0].weight, (slice(0, 8),), "stem conv")
    _assert_grad_on(supernet.stem[0].bias, (slice(0, 8),), "stem bias")
    _assert_grad_on(supernet.stem[1].weight, (slice(0, 8),), "stem LN")
    _assert_grad_on(supernet.downsamples[0][0].weight, (slice(0, 8),), "downsample LN")
    _assert_grad_on(supernet.downsamples[0][1].weight, (slice(0, 16), slice(0, 8)), "downsample conv")
    _assert_grad_on(supernet.downsamples[0][1].bias, (slice(0, 16),), "downsample bias")
    _assert_grad_on(supernet.norm.weight, (slice(0, 16),), "final LN")
    _assert_grad_on(supernet.head.weight, (s, slice(0, 16)), "head")
    _assert_grad_on(supernet.head.bias, (s,), "head bias")

    for i, stage in enumerate(arch.stages):
        c = stage.width
        for j, blk in enumerate(supernet.stages[i]):
            where = f"stages[{i}][{j}]"
            if j >= stage.depth:  # an inactive deeper block
                for name, p in blk.named_parameters():
                    _assert_no_grad(p, f"{where}.{name}")
                continue
            choice = stage.blocks[j]
            k, h = choice.kernel_size, choice.mlp_ratio * c
            o = (K - k) // 2
            crop = (slice(0, c), s, slice(o, o + k), slice(o, o + k))
            factors = ("weight_a", "weight_b", "weight_c") if choice.order == 2 else ("weight_c",)
            for name in ("weight_a", "weight_b", "weight_c"):
                if name in factors:
                    _assert_grad_on(getattr(blk.mixer, name), crop, f"{where}.mixer.{name}")
                    _assert_grad_on(getattr(blk.mixer, "bias" + name[6:]), (slice(0, c),), f"{where}.mixer.bias")
                else:  # order 1: the product term is not used
                    _assert_no_grad(getattr(blk.mixer, name), f"{where}.mixer.{name}")
                    _assert_no_grad(getattr(blk.mixer, "bias" + name[6:]), f"{where}.mixer.bias")
            for name in ("norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "gamma1", "gamma2",
                         "fc2.bias"):
                _assert_grad_on(blk.get_parameter(name), (slice(0, c),), f"{where}.{name}")
            _assert_grad_on(blk.fc1.weight, (slice(0, h), slice(0, c)), f"{where}.fc1.weight")
            _assert_grad_on(blk.fc1.bias, (slice(0, h),), f"{where}.fc1.bias")
            _assert_grad_on(blk.fc2.weight, (slice(0, c), slice(0, h)), f"{where}.fc2.weight")


def test_gradients_match_extracted_subnet():
    """The supernet's gradient on the slice equals the extracted net's gradient."""
    supernet = _supernet("tiny-k357").train()
    arch = _arch("tiny-k357", (16, [(5, 2, 2), (3, 3, 1)]), (24, [(7, 2, 2)]))
    supernet.set_active(arch)
    net = supernet.extract(arch)
    x = _input(supernet.space)
    supernet(x).square().sum().backward()
    net(x).square().sum().backward()
    o = (7 - 5) // 2
    torch.testing.assert_close(net.stages[0][0].mixer.weight_a.grad,
                               supernet.stages[0][0].mixer.weight_a.grad[:16, :, o:o + 5, o:o + 5],
                               atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(net.stages[0][1].mixer.conv.weight.grad,
                               supernet.stages[0][1].mixer.weight_c.grad[:16, :, 2:5, 2:5], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(net.stages[1][0].fc1.weight.grad, supernet.stages[1][0].fc1.weight.grad[:48, :24],
                               atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(net.stem[0].weight.grad, supernet.stem[0].weight.grad[:16], atol=1e-5, rtol=1e-4)


# ---- the memory-efficient operator inside the supernet ---------------------------------------

def _saved_activation_bytes(fn, params) -> tuple[torch.Tensor, int]:
    """Run ``fn`` and return its output and the bytes of the distinct storages autograd saved
    for backward, leaving out parameter storages (weights, and slices of them)."""
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = fn()
    param_ptrs = {p.untyped_storage().data_ptr() for p in params}
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in saved
                if t.untyped_storage().data_ptr() not in param_ptrs}
    return y, sum(storages.values())


def test_supernet_order2_block_saves_like_efficient_operator():
    supernet = _supernet("tiny-k357").train()
    choice = BlockArch(kernel_size=5, mlp_ratio=2, order=2)
    arch = _arch("tiny-k357", (8, [(3, 2, 1)]), (16, [(5, 2, 2)]))
    net = supernet.extract(arch)
    elastic, block = supernet.stages[1][0], net.stages[1][0]
    assert block.mixer.impl == "efficient"
    x = torch.randn(2, 16, 8, 8, generator=torch.Generator().manual_seed(4), requires_grad=True)

    y_super, bytes_super = _saved_activation_bytes(lambda: elastic(x, 16, choice), supernet.parameters())
    y_eff, bytes_eff = _saved_activation_bytes(lambda: block(x), net.parameters())
    block.mixer.impl = "plain"
    y_plain, bytes_plain = _saved_activation_bytes(lambda: block(x), net.parameters())
    torch.testing.assert_close(y_super, y_eff, atol=1e-6, rtol=0)
    torch.testing.assert_close(y_plain, y_eff, atol=1e-5, rtol=1e-5)
    assert bytes_super == bytes_eff
    # The plain composition also keeps both factors a = W_a∗x and b = W_b∗x, each the size of x.
    assert bytes_plain - bytes_super == 2 * x.numel() * x.element_size()
    y_super.sum().backward()  # and what was saved is enough for backward
    assert elastic.mixer.weight_a.grad is not None


def test_supernet_order2_block_saves_as_much_as_order1():
    """QuadraLib's claim: with the efficient operator a quadratic block keeps no more activations
    than the first-order block (only the mixer's input, which the first-order conv keeps too)."""
    supernet = _supernet("tiny-k357").train()
    elastic = supernet.stages[1][0]
    x = torch.randn(2, 16, 8, 8, requires_grad=True)
    _, quad = _saved_activation_bytes(lambda: elastic(x, 16, BlockArch(5, 2, 2)), supernet.parameters())
    _, lin = _saved_activation_bytes(lambda: elastic(x, 16, BlockArch(5, 2, 1)), supernet.parameters())
    assert lin == quad > 0


# ---- active architecture and bad inputs -------------------------------------------------------

def test_set_active_rejects_foreign_or_invalid_arch():
    supernet = _supernet("digits-s")
    start = supernet.space.sample(random.Random(1))
    supernet.set_active(start)
    cases = [
        (create_space("cifar10-m").max_arch(), "space", ["cifar10-m", "digits-s"]),
        (_arch("digits-s", (8, [(3, 2, 1)]), (16, [(3, 2, 1)])), "stages", ["2 stages"]),
        (_arch("digits-s", (8, [(9, 2, 1)]), (16, [(3, 2, 1)]), (24, [(3, 2, 1)]), (32, [(3, 2, 1)])),
         "stages[0].blocks[0].kernel_size", ["(3, 5, 7)"]),
        (_arch("digits-s", (8, [(3, 2, 1)]), (16, [(3, 2, 1)]), (24, [(3, 2, 1)]), (40, [(3, 2, 1)])),
         "stages[3].width", ["(32, 64, 96, 128)"]),
        (_arch("digits-s", (8, [(3, 2, 1)] * 3), (16, [(3, 2, 1)]), (24, [(3, 2, 1)]), (32, [(3, 2, 1)])),
         "stages[0].blocks", ["(1, 2)"]),
        ("digits-s", "arch", ["ArchConfig"]),
    ]
    for arch, field, parts in cases:
        with pytest.raises(ArchError) as info:
            supernet.set_active(arch)
        assert info.value.field == field
        for part in parts:
            assert part in str(info.value)
        assert supernet.active == start  # a rejected arch leaves the active one in place
        with pytest.raises(ArchError) as info:
            supernet.extract(arch)
        assert info.value.field == field


def test_sample_active_returns_what_it_set_and_is_seeded():
    supernet = _supernet("digits-s").eval()
    x = _input(supernet.space)
    arch = supernet.sample_active(random.Random(42))
    assert supernet.active == arch
    assert arch == supernet.space.sample(random.Random(42))
    assert supernet.sample_active(random.Random(42)) == arch
    with torch.no_grad():
        y = supernet(x)
        supernet.set_active(supernet.min_arch())
        assert (supernet(x) - y).abs().max() > 1e-3  # the active arch drives the forward
        supernet.set_active(arch)
        assert torch.equal(supernet(x), y)
    rng = random.Random(0)
    drawn = [supernet.sample_active(rng) for _ in range(10)]
    assert len({a.arch_id for a in drawn}) == 10
    assert supernet.active == drawn[-1]
    assert supernet.max_arch() == supernet.space.max_arch()
    assert supernet.min_arch() == supernet.space.min_arch()


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (2, 1, 16, 16), (1, 8, 8), (2, 1, 8, 8, 1)])
def test_wrong_input_shape(shape):
    supernet = _supernet("digits-s")
    with pytest.raises(ValueError) as info:
        supernet(torch.zeros(shape))
    assert "(B, 1, 8, 8)" in str(info.value)
    assert str(tuple(shape)) in str(info.value)


@pytest.mark.parametrize("bad", ["digits-s", None, create_space("digits-s").to_dict()])
def test_supernet_needs_a_space(bad):
    with pytest.raises(TypeError, match="SearchSpace"):
        QuadraSupernet(bad)


# ---- regressions: first-order-only spaces, dtype ---------------------------------------------

def test_supernet_of_first_order_only_space():
    space = _tiny_space(order_choices=(1,))
    supernet = QuadraSupernet(space).eval()
    _perturb(supernet, 0)
    x = _input(space)
    with torch.no_grad():
        for arch in (space.max_arch(), space.min_arch()):
            supernet.set_active(arch)
            assert (supernet.extract(arch)(x) - supernet(x)).abs().max() <= 1e-5


def test_extract_keeps_dtype():
    supernet = _supernet("digits-s").double().eval()
    arch = supernet.space.sample(random.Random(3))
    supernet.set_active(arch)
    x = _input(supernet.space).double()
    net = supernet.extract(arch)
    assert all(p.dtype == torch.float64 for p in net.parameters())
    with torch.no_grad():
        torch.testing.assert_close(net(x), supernet(x), atol=1e-12, rtol=0)
