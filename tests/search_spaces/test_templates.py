"""Space templates: the stem and stride rule over 16² to 224², concrete names that rebuild the
same space, and :func:`nas.data.task.resolve_task` fitting a template to a dataset."""

from __future__ import annotations

import pytest
import torch

from nas.data.task import resolve_task
from search_spaces.networks import QuadraNet
from search_spaces.space import create_space
from search_spaces.templates import TEMPLATES, instantiate, parse_concrete_name, stem_for, valid_sizes

# side -> (stem kernel, stem stride): stride the smallest of 1, 2, 4 giving a stem output <= 32
RULE = {16: (3, 1), 24: (3, 1), 32: (3, 1), 48: (2, 2), 64: (2, 2), 96: (4, 4), 128: (4, 4), 224: (4, 4)}


@pytest.mark.parametrize("side", sorted(RULE))
def test_stem_rule_and_last_stage_at_least_2x2(side) -> None:
    assert stem_for(side, side) == RULE[side]
    space = instantiate("m", input_shape=(3, side, side), num_classes=7)
    assert (space.stem_kernel, space.stem_stride) == RULE[side]
    stem_px = side // space.stem_stride
    assert stem_px // 8 >= 2  # three 2x2 downsamplings leave the last stage at least 2x2
    assert stem_px <= 32 or space.stem_stride == 4  # beyond 128 px the stride stays 4 (224: 56, as ImageNet's)
    net = QuadraNet(space.to_net_config(space.min_arch())).eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 3, side, side)).shape == (1, 7)


@pytest.mark.parametrize("side", [8, 12, 20, 30, 100])
def test_sizes_the_rule_cannot_serve_are_refused_with_valid_ones(side) -> None:
    with pytest.raises(ValueError, match=r"does not fit the space templates.*valid sides near it: .*--image-size"):
        instantiate("s", input_shape=(1, side, side), num_classes=2)


def test_valid_sizes_are_all_accepted() -> None:
    for side in valid_sizes(64, count=10) + valid_sizes(200, count=6):
        stem_for(side, side)


def test_concrete_name_rebuilds_the_same_space() -> None:
    space = instantiate("l", input_shape=(1, 64, 96), num_classes=4)
    assert space.name == "l-1x64x96-4c" and parse_concrete_name(space.name) == ("l", (1, 64, 96), 4)
    assert create_space(space.name) == space
    assert parse_concrete_name("x-1x2x3-4c") is None and parse_concrete_name("digits-s") is None


@pytest.mark.parametrize("kwargs, match", [
    ({"input_shape": (3, 32), "num_classes": 2}, "three positive ints"),
    ({"input_shape": (3, 32, 32), "num_classes": 1}, "num_classes must be an int >= 2"),
])
def test_bad_instantiation(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        instantiate("s", **kwargs)
    with pytest.raises(ValueError, match="unknown space template 'xl'; valid: l, m, s"):
        instantiate("xl", input_shape=(3, 32, 32), num_classes=2)


def test_registered_spaces_keep_their_names_and_meaning() -> None:
    assert create_space("digits-s").input_shape == (1, 8, 8)
    cifar = create_space("cifar10-m")
    m = instantiate("m", input_shape=(3, 32, 32), num_classes=10)
    assert (cifar.depth_choices, cifar.width_choices, cifar.stem_stride) == (m.depth_choices, m.width_choices, 1)
    assert create_space("imagenet-quadranet-t").stem_stride == 4


def test_resolve_task_fits_a_template_to_the_dataset() -> None:
    task = resolve_task("s", "cluttered-digits")
    assert task.space == "s-1x16x16-10c" and task.dataset == "cluttered-digits" and task.data_options == {}
    assert resolve_task("digits-s", None).dataset == "digits"
    with pytest.raises(ValueError, match="space 'm' is a template.*pass --dataset"):
        resolve_task("m", None)


def test_resolve_task_gives_file_sources_the_native_size(tmp_path) -> None:
    from support.images import write_folder

    write_folder(tmp_path / "d", per_class=8, rgb=False)
    task = resolve_task("l", "imagefolder", data_dir=tmp_path / "d")
    assert task.space == f"l-1x{TEMPLATES['l'].native_px}x{TEMPLATES['l'].native_px}-3c"
    assert task.data_options == {"image_size": 64, "channels": 1}  # found in the images, then recorded
    assert resolve_task(task.space, "imagefolder", data_dir=tmp_path / "d").data_options == task.data_options
    assert resolve_task("s", "imagefolder", data_dir=tmp_path / "d", data_options={"image_size": 32}).space == \
        "s-1x32x32-3c"


def test_a_fixed_space_gives_file_sources_its_own_size_and_channels(tmp_path) -> None:
    from nas.data import load_dataset
    from nas.train import check_data
    from support.images import write_folder

    write_folder(tmp_path / "d", per_class=8, rgb=True)
    task = resolve_task("digits-s", "imagefolder", data_dir=tmp_path / "d")
    assert task.data_options == {"image_size": 8, "channels": 1}
    splits = load_dataset("imagefolder", seed=0, data_dir=tmp_path / "d", **task.data_options)
    with pytest.raises(ValueError, match="expects inputs .* with 10 classes.*a space template"):
        check_data(create_space("digits-s"), splits)  # 3 classes: the template is the way
    assert resolve_task("s-1x16x16-3c", "imagefolder", data_dir=tmp_path / "d").data_options == {
        "image_size": 16, "channels": 1}
