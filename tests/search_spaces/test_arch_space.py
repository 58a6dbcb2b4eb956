"""Architectures and search spaces (search_spaces.arch, search_spaces.space) and ``nas space``.

References are written out here: ``arch_id`` as SHA-256 of the canonical JSON computed by hand,
a space's size as a brute-force enumeration of every member of a tiny space (and the product
formula written out for a preset), the presets' choices as literals.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
from dataclasses import replace

import pytest

from nas.cli import main
from search_spaces.arch import ArchConfig, ArchError, BlockArch, StageArch
from search_spaces.space import SPACES, SearchSpace, create_space, load_arch, register_space, space_names
from search_spaces.templates import TEMPLATES, template_names

PRESETS = ("cifar10-m", "digits-s", "imagenet-quadranet-t")


def _fixed_arch(space: str = "digits-s") -> ArchConfig:
    return ArchConfig(space=space, stages=(
        StageArch(width=8, blocks=(BlockArch(kernel_size=3, mlp_ratio=2, order=1),)),
        StageArch(width=16, blocks=(BlockArch(kernel_size=5, mlp_ratio=3, order=2),
                                    BlockArch(kernel_size=7, mlp_ratio=4, order=1))),
    ))


# ---- ArchConfig: JSON round trip and arch_id ------------------------------------------------

@pytest.mark.parametrize("name", space_names())
def test_json_round_trip_every_space(name):
    assert set(space_names()) == set(PRESETS)
    space = create_space(name)
    rng = random.Random(11)
    archs = [space.max_arch(), space.min_arch()] + [space.sample(rng) for _ in range(20)]
    for arch in archs:
        for text in (arch.to_json(), arch.to_json(indent=2)):
            back = ArchConfig.from_json(text)
            assert back == arch
            assert back.arch_id == arch.arch_id
            assert space.arch_from_json(text) == arch
        assert ArchConfig.from_dict(json.loads(arch.to_json())) == arch
        # The JSON form is the documented one, field by field.
        data = json.loads(arch.to_json())
        assert data["space"] == name
        assert [s["width"] for s in data["stages"]] == list(arch.widths)
        assert [len(s["blocks"]) for s in data["stages"]] == list(arch.depths)
        for s_json, s in zip(data["stages"], arch.stages):
            assert s_json["blocks"] == [
                {"kernel_size": b.kernel_size, "mlp_ratio": b.mlp_ratio, "order": b.order} for b in s.blocks
            ]


def test_arch_id_definition_and_stable_value():
    arch = _fixed_arch()
    canonical = (
        '{"space":"digits-s","stages":[{"blocks":[{"kernel_size":3,"mlp_ratio":2,"order":1}],"width":8},'
        '{"blocks":[{"kernel_size":5,"mlp_ratio":3,"order":2},{"kernel_size":7,"mlp_ratio":4,"order":1}],'
        '"width":16}]}'
    )
    assert json.dumps(arch.to_dict(), sort_keys=True, separators=(",", ":")) == canonical
    assert arch.arch_id == hashlib.sha256(canonical.encode()).hexdigest()[:12]
    assert arch.arch_id == "3bb98cc48ee4"  # pinned: ids in saved results must never change
    assert re.fullmatch(r"[0-9a-f]{12}", arch.arch_id)


def _variants(arch: ArchConfig) -> dict[str, ArchConfig]:
    s0, s1 = arch.stages
    b1 = s1.blocks[0]
    return {
        "width": replace(arch, stages=(replace(s0, width=16), s1)),
        "kernel": replace(arch, stages=(s0, replace(s1, blocks=(replace(b1, kernel_size=3), s1.blocks[1])))),
        "ratio": replace(arch, stages=(s0, replace(s1, blocks=(replace(b1, mlp_ratio=2), s1.blocks[1])))),
        "order": replace(arch, stages=(s0, replace(s1, blocks=(replace(b1, order=1), s1.blocks[1])))),
        "block added": replace(arch, stages=(s0, replace(s1, blocks=s1.blocks + (b1,)))),
        "block order swapped": replace(arch, stages=(s0, replace(s1, blocks=s1.blocks[::-1]))),
        "space": replace(arch, space="cifar10-m"),
    }


def test_arch_id_equal_for_equal_and_differs_for_any_change():
    arch = _fixed_arch()
    assert _fixed_arch().arch_id == arch.arch_id
    assert ArchConfig.from_json(arch.to_json(indent=2)).arch_id == arch.arch_id
    ids = {arch.arch_id}
    for what, other in _variants(arch).items():
        assert other != arch, what
        assert re.fullmatch(r"[0-9a-f]{12}", other.arch_id), what
        assert other.arch_id != arch.arch_id, what
        ids.add(other.arch_id)
    assert len(ids) == 1 + len(_variants(arch))


def test_arch_properties():
    arch = _fixed_arch()
    assert arch.depths == (1, 2)
    assert arch.widths == (8, 16)
    assert arch.n_quadratic == 1
    assert arch.describe() == "8:[3r2L] 16:[5r3Q 7r4L]"
    assert [b.is_quadratic for b in arch.stages[1].blocks] == [True, False]


# ---- ArchConfig / validation errors name the field -----------------------------------------

def _base() -> dict:
    """A valid digits-s arch as JSON data: 4 stages, widths 8/16/24/32, depths 1/1/1/1."""
    return create_space("digits-s").min_arch().to_dict()


def _set(path, value):
    def mutate(d):
        target = d
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return d
    return mutate


def _del(path):
    def mutate(d):
        target = d
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
        return d
    return mutate


BAD_JSON = [
    # (case id, mutation of the base data, expected field, substrings of the message)
    ("unknown top-level", _set(["extra"], 1), "extra", ["unknown field", "space, stages"]),
    ("unknown stage field", _set(["stages", 2, "depth"], 1), "stages[2].depth", ["unknown field", "width, blocks"]),
    ("unknown block field", _set(["stages", 1, "blocks", 0, "stride"], 1), "stages[1].blocks[0].stride",
     ["unknown field", "kernel_size, mlp_ratio, order"]),
    ("missing space", _del(["space"]), "space", ["missing"]),
    ("missing stages", _del(["stages"]), "stages", ["missing"]),
    ("missing width", _del(["stages", 0, "width"]), "stages[0].width", ["missing"]),
    ("missing blocks", _del(["stages", 3, "blocks"]), "stages[3].blocks", ["missing"]),
    ("missing order", _del(["stages", 3, "blocks", 0, "order"]), "stages[3].blocks[0].order", ["missing"]),
    ("kernel outside space", _set(["stages", 2, "blocks", 0, "kernel_size"], 9), "stages[2].blocks[0].kernel_size",
     ["9", "(3, 5, 7)"]),
    ("ratio outside space", _set(["stages", 1, "blocks", 0, "mlp_ratio"], 5), "stages[1].blocks[0].mlp_ratio",
     ["5", "(2, 3, 4)"]),
    ("width not in choices", _set(["stages", 1, "width"], 40), "stages[1].width", ["40", "(16, 24, 32)"]),
    ("depth not allowed", _set(["stages", 0, "blocks"], [{"kernel_size": 3, "mlp_ratio": 2, "order": 1}] * 3),
     "stages[0].blocks", ["3 blocks", "(1, 2)"]),
    ("deeper stage depth not allowed",
     _set(["stages", 2, "blocks"], [{"kernel_size": 3, "mlp_ratio": 2, "order": 1}] * 4),
     "stages[2].blocks", ["4 blocks", "(1, 2, 3)"]),
    ("too few stages", lambda d: {**d, "stages": d["stages"][:3]}, "stages", ["3 stages", "4"]),
    ("too many stages", lambda d: {**d, "stages": d["stages"] + d["stages"][:1]}, "stages", ["5 stages", "4"]),
    ("wrong space", _set(["space"], "cifar10-m"), "space", ["cifar10-m", "digits-s"]),
    ("order 3", _set(["stages", 0, "blocks", 0, "order"], 3), "stages[0].blocks[0].order", ["1", "2", "3"]),
    ("order 0", _set(["stages", 0, "blocks", 0, "order"], 0), "stages[0].blocks[0].order", ["positive integer"]),
    ("bool kernel", _set(["stages", 0, "blocks", 0, "kernel_size"], True), "stages[0].blocks[0].kernel_size",
     ["positive integer", "True"]),
    ("str kernel", _set(["stages", 0, "blocks", 0, "kernel_size"], "3"), "stages[0].blocks[0].kernel_size",
     ["positive integer", "'3'"]),
    ("float kernel", _set(["stages", 0, "blocks", 0, "kernel_size"], 3.0), "stages[0].blocks[0].kernel_size",
     ["positive integer"]),
    ("negative ratio", _set(["stages", 2, "blocks", 0, "mlp_ratio"], -2), "stages[2].blocks[0].mlp_ratio",
     ["positive integer", "-2"]),
    ("bool order", _set(["stages", 0, "blocks", 0, "order"], False), "stages[0].blocks[0].order",
     ["positive integer"]),
    ("negative width", _set(["stages", 1, "width"], -16), "stages[1].width", ["positive integer", "-16"]),
    ("bool width", _set(["stages", 1, "width"], True), "stages[1].width", ["positive integer"]),
    ("str width", _set(["stages", 1, "width"], "16"), "stages[1].width", ["positive integer"]),
    ("empty space", _set(["space"], ""), "space", ["non-empty"]),
    ("int space", _set(["space"], 7), "space", ["non-empty"]),
    ("stages not a list", _set(["stages"], {"width": 8}), "stages", ["list", "dict"]),
    ("empty stages", _set(["stages"], []), "stages", ["at least one stage"]),
    ("stage not an object", _set(["stages", 1], 16), "stages[1]", ["JSON object", "int"]),
    ("blocks not a list", _set(["stages", 0, "blocks"], "3r2Q"), "stages[0].blocks", ["list", "str"]),
    ("empty blocks", _set(["stages", 0, "blocks"], []), "stages[0].blocks", ["at least one block"]),
    ("block not an object", _set(["stages", 0, "blocks", 0], [3, 2, 1]), "stages[0].blocks[0]",
     ["JSON object", "list"]),
]


@pytest.mark.parametrize(("mutate", "field", "parts"), [c[1:] for c in BAD_JSON], ids=[c[0] for c in BAD_JSON])
def test_bad_json_names_the_field(mutate, field, parts):
    space = create_space("digits-s")
    assert space.arch_from_json(json.dumps(_base())) == space.min_arch()  # the base is valid
    text = json.dumps(mutate(_base()))
    with pytest.raises(ArchError) as info:
        space.arch_from_json(text)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.field == field
    message = str(err)
    assert message.startswith(f"{field}: ")
    for part in parts:
        assert part in message, (part, message)


@pytest.mark.parametrize(("text", "parts"), [
    ("{", ["not valid JSON"]),
    ("", ["not valid JSON"]),
    ("digits-s 8:[3r2Q]", ["not valid JSON"]),
    ("[]", ["JSON object", "list"]),
    ("42", ["JSON object", "int"]),
    ("null", ["JSON object", "NoneType"]),
    ('"digits-s"', ["JSON object", "str"]),
    ("[" * 100_000 + "]" * 100_000, ["nested too deeply"]),
])
def test_not_json_or_not_an_object(text, parts):
    with pytest.raises(ArchError) as info:
        ArchConfig.from_json(text)
    assert info.value.field == "arch"
    for part in parts:
        assert part in str(info.value)


@pytest.mark.parametrize(("make", "field"), [
    (lambda: BlockArch(kernel_size=0, mlp_ratio=2, order=1), "kernel_size"),
    (lambda: BlockArch(kernel_size=3, mlp_ratio=True, order=1), "mlp_ratio"),
    (lambda: BlockArch(kernel_size=3, mlp_ratio=2, order=3), "order"),
    (lambda: StageArch(width=0, blocks=(BlockArch(3, 2, 1),)), "width"),
    (lambda: StageArch(width=8, blocks=()), "blocks"),
    (lambda: ArchConfig(space="", stages=(StageArch(8, (BlockArch(3, 2, 1),)),)), "space"),
    (lambda: ArchConfig(space="digits-s", stages=()), "stages"),
])
def test_dataclass_constructors_validate(make, field):
    with pytest.raises(ArchError) as info:
        make()
    assert info.value.field == field


def test_validate_rejects_non_arch():
    space = create_space("digits-s")
    with pytest.raises(ArchError) as info:
        space.validate(space.max_arch().to_dict())
    assert info.value.field == "arch" and "ArchConfig" in str(info.value)
    arch = space.max_arch()
    assert space.validate(arch) is arch


def test_validate_order_outside_a_space_without_first_order(tiny_space):
    space = tiny_space(order_choices=(2,))
    arch = tiny_space().min_arch()  # order 1 everywhere
    with pytest.raises(ArchError) as info:
        space.validate(arch)
    assert info.value.field == "stages[0].blocks[0].order"
    assert "(2,)" in str(info.value)


# ---- load_arch --------------------------------------------------------------------------------

def test_load_arch_reads_and_validates(tmp_path):
    space = create_space("digits-s")
    arch = space.sample(random.Random(4))
    path = tmp_path / "arch.json"
    path.write_text(arch.to_json(indent=2))
    assert load_arch(path) == arch
    assert load_arch(str(path), space) == arch
    # Validated against the space given, which is not the one the file names.
    with pytest.raises(ArchError) as info:
        load_arch(path, create_space("cifar10-m"))
    assert info.value.field == "space"
    assert str(path) in str(info.value)


def test_load_arch_errors_name_field_and_file(tmp_path):
    data = _base()
    data["stages"][2]["blocks"][0]["kernel_size"] = 9
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ArchError) as info:
        load_arch(path)
    assert info.value.field == "stages[2].blocks[0].kernel_size"
    assert "(3, 5, 7)" in str(info.value)
    assert str(path) in str(info.value)

    path.write_text("{not json")
    with pytest.raises(ArchError) as info:
        load_arch(path)
    assert info.value.field == "arch"
    assert "not valid JSON" in str(info.value) and str(path) in str(info.value)

    data = _base()
    del data["stages"][1]["blocks"][0]["mlp_ratio"]
    path.write_text(json.dumps(data))
    with pytest.raises(ArchError) as info:
        load_arch(path)
    assert info.value.field == "stages[1].blocks[0].mlp_ratio"
    assert str(path) in str(info.value)


def test_load_arch_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "arch.json"
    with pytest.raises(FileNotFoundError) as info:
        load_arch(path)
    assert str(path) in str(info.value)
    with pytest.raises(FileNotFoundError) as info:  # a directory is not a readable file either
        load_arch(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_load_arch_unknown_space_names_file(tmp_path):
    data = _base()
    data["space"] = "nope"
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError) as info:
        load_arch(path)
    assert "digits-s" in str(info.value)  # lists the valid names (this part holds today)
    assert str(path) in str(info.value)


def test_load_arch_binary_file_names_file(tmp_path):
    path = tmp_path / "arch.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError) as info:
        load_arch(path)
    assert str(path) in str(info.value)


# ---- SearchSpace --------------------------------------------------------------------------

def _enumerate(space: SearchSpace):
    """Every member of ``space``, built from its choices with itertools."""
    blocks = [BlockArch(kernel_size=k, mlp_ratio=r, order=o)
              for k, r, o in itertools.product(space.kernel_choices, space.mlp_ratio_choices, space.order_choices)]
    per_stage = []
    for ds, ws in zip(space.depth_choices, space.width_choices):
        per_stage.append([StageArch(width=w, blocks=bs)
                          for w in ws for d in ds for bs in itertools.product(blocks, repeat=d)])
    for stages in itertools.product(*per_stage):
        yield ArchConfig(space=space.name, stages=stages)


def test_size_equals_brute_force_enumeration(tiny_space):
    space = tiny_space()
    archs = list(_enumerate(space))
    ids = {a.arch_id for a in archs}
    assert len(ids) == len(archs)  # distinct members have distinct ids
    assert space.size() == len(ids) == 1600  # (2 widths · (4 + 4²))² with 4 = 2 kernels · 1 ratio · 2 orders
    for a in archs[::37]:
        assert space.validate(a) is a
    # A second, lopsided space: three stages, different choices per stage, one order.
    other = tiny_space(depth_choices=((1,), (1, 3), (2,)), width_choices=((8,), (8, 16, 24), (16,)),
                        input_shape=(2, 16, 16), kernel_choices=(3, 5, 7), mlp_ratio_choices=(2, 4),
                        order_choices=(2,))
    assert other.size() == len({a.arch_id for a in _enumerate(other)}) == 6 * (3 * (6 + 6**3)) * 6**2


def test_size_of_digits_s_written_out():
    m = 3 * 3 * 2  # kernels · ratios · orders per block
    expected = (2 * (m + m**2)) * (3 * (m + m**2)) * (4 * (m + m**2 + m**3)) * (4 * (m + m**2))
    assert create_space("digits-s").size() == expected


def test_sample_valid_deterministic_and_covers_every_choice():
    space = create_space("digits-s")
    assert [space.sample(random.Random(7)) for _ in range(3)] == [space.sample(random.Random(7))] * 3
    rng_a, rng_b = random.Random(123), random.Random(123)
    assert [space.sample(rng_a) for _ in range(5)] == [space.sample(rng_b) for _ in range(5)]
    rng = random.Random(0)
    samples = [space.sample(rng) for _ in range(400)]
    assert len({a.arch_id for a in samples}) > 390  # random, not a handful of repeats
    for a in samples:
        assert space.validate(a) is a
        assert a.space == "digits-s"
    for i in range(space.n_stages):
        assert {a.stages[i].width for a in samples} == set(space.width_choices[i])
        assert {a.stages[i].depth for a in samples} == set(space.depth_choices[i])
    blocks = [b for a in samples for s in a.stages for b in s.blocks]
    assert {b.kernel_size for b in blocks} == {3, 5, 7}
    assert {b.mlp_ratio for b in blocks} == {2, 3, 4}
    assert {b.order for b in blocks} == {1, 2}
    # Per block, not per stage: blocks of one stage differ.
    assert any(len({s.blocks[0], s.blocks[-1]}) == 2 for a in samples for s in a.stages if s.depth > 1)


@pytest.mark.parametrize("name", space_names())
def test_sample_draw_order_written_out(name):
    """A seed names the same arch across versions: per stage width then depth, then per block
    kernel, ratio, order, each one ``rng.choice`` over the sorted choices."""
    space = create_space(name)

    def reference(rng):
        stages = []
        for ds, ws in zip(space.depth_choices, space.width_choices):
            width, depth = rng.choice(ws), rng.choice(ds)
            blocks = []
            for _ in range(depth):
                k = rng.choice(space.kernel_choices)
                r = rng.choice(space.mlp_ratio_choices)
                o = rng.choice(space.order_choices)
                blocks.append(BlockArch(kernel_size=k, mlp_ratio=r, order=o))
            stages.append(StageArch(width=width, blocks=tuple(blocks)))
        return ArchConfig(space=name, stages=tuple(stages))

    for seed in range(10):
        assert space.sample(random.Random(seed)) == reference(random.Random(seed))


@pytest.mark.parametrize("name", space_names())
def test_max_and_min_are_the_extremes(name):
    space = create_space(name)
    big, small = space.max_arch(), space.min_arch()
    assert big.depths == tuple(max(d) for d in space.depth_choices)
    assert big.widths == tuple(max(w) for w in space.width_choices)
    assert small.depths == tuple(min(d) for d in space.depth_choices)
    assert small.widths == tuple(min(w) for w in space.width_choices)
    for b in (b for s in big.stages for b in s.blocks):
        assert (b.kernel_size, b.mlp_ratio, b.order) == (7, 4, 2)
    for b in (b for s in small.stages for b in s.blocks):
        assert (b.kernel_size, b.mlp_ratio, b.order) == (3, 2, 1)
    assert space.validate(big) is big and space.validate(small) is small
    rng = random.Random(1)
    for _ in range(50):
        a = space.sample(rng)
        for i, s in enumerate(a.stages):
            assert small.stages[i].depth <= s.depth <= big.stages[i].depth
            assert small.stages[i].width <= s.width <= big.stages[i].width
            for b in s.blocks:
                assert 3 <= b.kernel_size <= 7 and 2 <= b.mlp_ratio <= 4


@pytest.mark.parametrize(("kw", "parts"), [
    ({"width_choices": ((8, 12), (8, 16))}, ["width_choices[0]", "multiples of 8", "12"]),
    ({"width_choices": ((8,), (20,))}, ["width_choices[1]", "multiples of 8"]),
    ({"kernel_choices": (3, 4)}, ["kernel_choices", "odd"]),
    ({"kernel_choices": (2,)}, ["kernel_choices", "odd"]),
    ({"order_choices": (1, 3)}, ["order_choices", "(1, 2)"]),
    ({"order_choices": ()}, ["order_choices", "non-empty"]),
    ({"depth_choices": ((1,), (1,), (1,))}, ["3 stages", "2 stages", "same"]),
    ({"depth_choices": (), "width_choices": ()}, ["non-zero"]),
    ({"depth_choices": ((1, 0), (1,))}, ["depth_choices[0]", "positive integers"]),
    ({"depth_choices": ((1, 1), (1,))}, ["depth_choices[0]", "duplicates"]),
    ({"width_choices": ((8, True), (8,))}, ["width_choices[0]", "positive integers"]),
    ({"mlp_ratio_choices": (2.5,)}, ["mlp_ratio_choices", "positive integers"]),
    # Input shape vs. number of stages: 8×8 cannot be halved 4 times; 12×12 not 3 times.
    ({"depth_choices": ((1,),) * 5, "width_choices": ((8,),) * 5}, ["input_shape", "5 stages", "16"]),
    ({"input_shape": (1, 12, 12), "depth_choices": ((1,),) * 4, "width_choices": ((8,),) * 4},
     ["input_shape", "4 stages", "8"]),
    ({"input_shape": (1, 8)}, ["input_shape"]),
    ({"num_classes": 0}, ["num_classes"]),
])
def test_space_constructor_validates(tiny_space, kw, parts):
    with pytest.raises(ValueError) as info:
        tiny_space(**kw)
    for part in parts:
        assert part in str(info.value), (part, str(info.value))


def test_choices_are_sorted_tuples(tiny_space):
    space = tiny_space(kernel_choices=[5, 3], width_choices=[[16, 8], (8,)])
    assert space.kernel_choices == (3, 5)
    assert space.width_choices == ((8, 16), (8,))


def test_create_space_unknown_lists_names():
    with pytest.raises(ValueError) as info:
        create_space("nope")
    message = str(info.value)
    assert "'nope'" in message
    for name in PRESETS:
        assert name in message
    with pytest.raises(ValueError):
        create_space(None)


def test_register_space_refuses_duplicates(tiny_space):
    before = dict(SPACES)
    with pytest.raises(ValueError, match="already registered"):
        register_space("digits-s")(lambda: tiny_space(name="digits-s"))
    assert SPACES == before


def test_to_net_config_maps_each_block():
    space = create_space("digits-s")
    arch = space.sample(random.Random(2))
    arch = replace(arch, stages=(replace(arch.stages[0], blocks=(BlockArch(7, 3, 2), BlockArch(5, 4, 1))),
                                 *arch.stages[1:]))
    cfg = space.to_net_config(arch)
    assert cfg.input_shape == (1, 8, 8) and cfg.num_classes == 10
    assert (cfg.stem_kernel, cfg.stem_stride, cfg.layer_scale_init) == (3, 1, 1e-6)
    assert cfg.widths == arch.widths and cfg.depths == arch.depths
    assert [(b.mixer, b.kernel_size, b.mlp_ratio) for b in cfg.stages[0].blocks] == [
        ("quadra", 7, 3), ("first_order", 5, 4)]
    for s_cfg, s in zip(cfg.stages, arch.stages):
        for b_cfg, b in zip(s_cfg.blocks, s.blocks):
            assert b_cfg.mixer == {2: "quadra", 1: "first_order"}[b.order]
            assert (b_cfg.kernel_size, b_cfg.mlp_ratio) == (b.kernel_size, b.mlp_ratio)
    assert cfg.name == f"digits-s/{arch.arch_id}"


def test_describe_lists_every_dimension(tiny_space):
    text = tiny_space().describe()
    assert "stage 0: depth [1, 2], width [8, 16]" in text
    assert "stage 1: depth [1, 2], width [8, 16]" in text
    assert "kernel [3, 5], mlp_ratio [2], order [1, 2]" in text
    assert "architectures: 1,600" in text


# ---- presets ------------------------------------------------------------------------------

PRESET_FACTS = {
    "digits-s": ((1, 8, 8), 10),
    "cifar10-m": ((3, 32, 32), 10),
    "imagenet-quadranet-t": ((3, 224, 224), 1000),
}


@pytest.mark.parametrize("name", space_names())
def test_preset(name):
    space = create_space(name)
    assert space.name == name
    assert (space.input_shape, space.num_classes) == PRESET_FACTS[name]
    assert space.n_stages == 4
    for ws in space.width_choices:
        assert ws and all(w % 8 == 0 for w in ws)
    assert set(space.kernel_choices) == {3, 5, 7}
    assert set(space.mlp_ratio_choices) == {2, 3, 4}
    assert set(space.order_choices) == {1, 2}
    assert space.description
    assert space.to_dict()["name"] == name
    # The network of every extreme builds as a config (input shape fits the four stages).
    for arch in (space.max_arch(), space.min_arch()):
        assert space.to_net_config(arch).input_shape == space.input_shape


def test_imagenet_preset_contains_quadranet_tiny():
    """QuadraNet-tiny (3-3-27-3, C=64, k=7, r=4, all quadratic) is a member, with the preset's network."""
    from search_spaces.presets import model_config

    space = create_space("imagenet-quadranet-t")
    block = BlockArch(kernel_size=7, mlp_ratio=4, order=2)
    tiny = ArchConfig(space=space.name, stages=tuple(
        StageArch(width=w, blocks=(block,) * d) for d, w in zip((3, 3, 27, 3), (64, 128, 256, 512))))
    assert space.validate(tiny) is tiny
    assert space.to_net_config(tiny) == replace(model_config("quadranet_tiny"), drop_path_rate=0.0)


# ---- CLI: nas space ---------------------------------------------------------------------

def test_cli_space_list(capsys):
    assert main(["space", "list"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.strip()]
    assert [r[0] for r in rows] == space_names() + template_names()
    for row in rows[:len(space_names())]:
        assert row[1] == f"{create_space(row[0]).size():.3e}"
    for row, name in zip(rows[len(space_names()):], template_names()):
        assert row[1] == "template" and f"(native {TEMPLATES[name].native_px}px)" in " ".join(row)


def test_cli_space_show(capsys):
    space = create_space("digits-s")
    assert main(["space", "show", "digits-s"]) == 0
    out = capsys.readouterr().out
    for i, (ds, ws) in enumerate(zip(space.depth_choices, space.width_choices)):
        assert f"stage {i}: depth {list(ds)}, width {list(ws)}" in out
    assert "kernel [3, 5, 7], mlp_ratio [2, 3, 4], order [1, 2]" in out
    assert "input 1x8x8, 10 classes" in out
    size = space.size()
    assert f"{size:,}" in out and "," in f"{size:,}"


@pytest.mark.parametrize("name", ["imagenet-quadranet-t", "m-3x64x64-5c"])
def test_cli_space_show_a_space_without_a_default_dataset(name, capsys):
    assert main(["space", "show", name]) == 0
    assert f"space {name}:" in capsys.readouterr().out


def test_cli_space_show_fits_a_template(capsys):
    assert main(["space", "show", "s", "--dataset", "cluttered-digits"]) == 0
    assert "space s-1x16x16-10c:" in capsys.readouterr().out
    assert main(["space", "show", "s"]) == 2
    assert "space 's' is a template" in capsys.readouterr().err


def test_cli_space_sample_seed_out(tmp_path, capsys):
    out_file = tmp_path / "sub" / "arch.json"
    assert main(["space", "sample", "digits-s", "--seed", "3", "--out", str(out_file)]) == 0
    expected = create_space("digits-s").sample(random.Random(3))
    assert load_arch(out_file) == expected
    printed = capsys.readouterr().out
    assert expected.arch_id in printed and str(out_file) in printed
    # Another seed is another architecture (the seed is used).
    other = tmp_path / "other.json"
    assert main(["space", "sample", "digits-s", "--seed", "4", "--out", str(other)]) == 0
    assert load_arch(other) == create_space("digits-s").sample(random.Random(4)) != expected


def test_cli_space_sample_stdout_max_min(tmp_path, capsys):
    space = create_space("cifar10-m")
    assert main(["space", "sample", "cifar10-m", "--max"]) == 0
    assert ArchConfig.from_json(capsys.readouterr().out) == space.max_arch()
    assert main(["space", "sample", "cifar10-m", "--min"]) == 0
    assert ArchConfig.from_json(capsys.readouterr().out) == space.min_arch()
    assert main(["space", "sample", "cifar10-m"]) == 0  # default seed 0
    assert ArchConfig.from_json(capsys.readouterr().out) == space.sample(random.Random(0))
    path = tmp_path / "max.json"
    assert main(["space", "sample", "cifar10-m", "--max", "--out", str(path)]) == 0
    assert load_arch(path) == space.max_arch()


@pytest.mark.parametrize("argv", [["space", "show", "nope"], ["space", "sample", "nope"]])
def test_cli_unknown_space(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "nope" in err
    for name in PRESETS:
        assert name in err


@pytest.mark.parametrize("argv", [
    ["space", "sample", "digits-s", "--max", "--min"],
    ["space", "sample", "digits-s", "--seed", "1", "--max"],
    ["space", "sample", "digits-s", "--seed", "x"],
    ["space", "show"],
    ["space"],
])
def test_cli_space_bad_arguments(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage" in capsys.readouterr().err


def test_create_space_does_not_hide_a_factorys_own_type_error(monkeypatch):
    from search_spaces import space as space_mod

    def broken():
        raise TypeError("bug inside the factory")

    monkeypatch.setitem(space_mod.SPACES, "broken-space", broken)
    with pytest.raises(TypeError, match="bug inside the factory"):
        create_space("broken-space")


def test_numpy_integer_is_refused_with_a_hint_to_convert():
    import numpy as np

    from search_spaces.layers import check_positive_int

    assert check_positive_int("width", 8) == 8
    with pytest.raises(ValueError, match=re.escape("width must be a positive integer (a Python int: pass "
                                                   "int(np.int64(8)) for a NumPy or pandas integer)")):
        check_positive_int("width", np.int64(8))
    with pytest.raises(ValueError, match=r"width must be a positive integer, got np.int64\(0\)"):
        check_positive_int("width", np.int64(0))
    with pytest.raises(ValueError, match=r"width must be a positive integer, got True"):
        check_positive_int("width", True)


def test_arch_objects_refuse_plain_dicts_and_other_spaces():
    from search_spaces.arch import BlockArch, StageArch

    block = {"kernel_size": 3, "mlp_ratio": 2, "order": 1}
    with pytest.raises(ArchError, match=r"^blocks\[0\]: must be a BlockArch \(ArchConfig.from_dict reads plain "
                                        r"dicts\), got dict$"):
        StageArch(width=8, blocks=(block,))
    with pytest.raises(ArchError, match=r"^stages\[0\]: must be a StageArch .* got dict$"):
        ArchConfig(space="digits-s", stages=[{"width": 8, "blocks": [block]}])
    assert StageArch(width=8, blocks=[BlockArch(kernel_size=3, mlp_ratio=2, order=1)]).depth == 1
    with pytest.raises(ArchError, match="^arch: must be JSON text, got NoneType$"):
        ArchConfig.from_json(None)
    digits, cifar = create_space("digits-s"), create_space("cifar10-m")
    with pytest.raises(ArchError, match="architecture is for space 'cifar10-m', not 'digits-s'"):
        digits.to_net_config(cifar.max_arch())
    assert digits.to_net_config(digits.min_arch()).name == f"digits-s/{digits.min_arch().arch_id}"


def test_space_arguments_take_a_name_or_a_search_space(tmp_path):
    from predictors.features import arch_features
    from search_spaces.space import as_space

    space = create_space("digits-s")
    assert as_space("digits-s") == space and as_space(space) is space and as_space(None) is None
    with pytest.raises(TypeError, match="space must be a SearchSpace or a registered space's name, got int"):
        as_space(3)
    with pytest.raises(ValueError, match="unknown search space 'nope'; valid: cifar10-m, digits-s"):
        as_space("nope")
    path = tmp_path / "a.json"
    path.write_text(space.max_arch().to_json())
    assert load_arch(path, "digits-s") == space.max_arch()
    with pytest.raises(ArchError, match="cifar10-m"):
        load_arch(path, "cifar10-m")
    assert arch_features(space.min_arch(), 1, space="digits-s") == arch_features(space.min_arch(), 1)
