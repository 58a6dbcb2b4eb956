"""SearchSpace.spread and SearchSpace.mutate: members of the space, seeded, as documented."""

from __future__ import annotations

import random

import pytest

from search_spaces.networks import QuadraNet, count_params
from search_spaces.space import create_space, space_names


def _diff_dims(a, b) -> int:
    """Number of single-dimension differences between two archs of one space."""
    n = 0
    for sa, sb in zip(a.stages, b.stages):
        n += sa.width != sb.width
        n += sa.depth != sb.depth
        for ba, bb in zip(sa.blocks, sb.blocks):
            n += (ba.kernel_size != bb.kernel_size) + (ba.mlp_ratio != bb.mlp_ratio) + (ba.order != bb.order)
    return n


@pytest.mark.parametrize("name", space_names())
def test_mutate_gives_a_different_member(name):
    space = create_space(name)
    rng = random.Random(0)
    for _ in range(100):
        arch = space.sample(rng)
        child = space.mutate(arch, rng)
        assert space.validate(child) is child
        assert child.arch_id != arch.arch_id
        # One change: a width, a depth (which keeps the surviving blocks) or one block field.
        assert _diff_dims(arch, child) == 1


def test_mutate_is_seeded_and_counts_changes():
    space = create_space("digits-s")
    arch = space.sample(random.Random(3))
    a = [space.mutate(arch, random.Random(7), n_changes=3) for _ in range(2)]
    assert a[0] == a[1]
    assert 1 <= _diff_dims(arch, a[0]) <= 3


def test_mutate_rejects_an_arch_outside_the_space():
    space = create_space("digits-s")
    other = create_space("cifar10-m").sample(random.Random(0))
    with pytest.raises(ValueError, match="space"):
        space.mutate(other, random.Random(0))


def test_spread_runs_from_smallest_to_largest_by_key():
    space = create_space("digits-s")
    key = lambda a: count_params(QuadraNet(space.to_net_config(a)))  # noqa: E731
    archs = space.spread(8, key=key, seed=0, pool=200)
    keys = [key(a) for a in archs]
    assert len({a.arch_id for a in archs}) == 8
    assert keys == sorted(keys)
    assert archs[0] == space.min_arch() and archs[-1] == space.max_arch()
    assert space.spread(8, key=key, seed=0, pool=200) == archs  # seeded


def test_spread_respects_exclude_and_bad_k(tiny_space):
    space = create_space("digits-s")
    key = lambda a: sum(a.widths)  # noqa: E731
    first = space.spread(5, key=key, seed=1, pool=100)
    again = space.spread(5, key=key, seed=1, pool=100, exclude={a.arch_id for a in first})
    assert not {a.arch_id for a in first} & {a.arch_id for a in again}
    # ArchConfigs themselves exclude the same architectures (they were silently ignored)
    assert space.spread(5, key=key, seed=1, pool=100, exclude=set(first)) == again
    for bad_exclude, match in (("abc", "collection of arch_id strings"), ({1, 2}, "got int 1"),
                               (5, "collection of arch_id strings")):
        with pytest.raises(TypeError, match=match):
            space.spread(5, key=key, seed=1, pool=100, exclude=bad_exclude)
    for bad in (0, -1, True, 2.0):
        with pytest.raises(ValueError, match="k must be"):
            space.spread(bad, key=key, seed=0)
    tiny = tiny_space(num_classes=10, depth_choices=((1,),), width_choices=((8,),), kernel_choices=(3,))
    assert tiny.size() == 2
    assert len(tiny.spread(2, key=key, seed=0, pool=20)) == 2
    with pytest.raises(ValueError, match="only 2 distinct"):
        tiny.spread(3, key=key, seed=0, pool=20)
