"""Space templates ``s``, ``m``, ``l``: search spaces instantiated for any input shape and class count.

A template holds the choices (depth and width per stage, kernel, MLP ratio, order) and a native
image size; :func:`instantiate` builds the concrete :class:`SearchSpace` for one dataset's
``(C, H, W)`` and class count. The concrete space's name spells its instantiation —
``TEMPLATE-CxHxW-Kc``, e.g. ``m-3x64x64-5c`` — so :func:`search_spaces.space.create_space`
rebuilds it from the name any record stores (an architecture, a predictor artifact, an export).

**Stem and stage-stride rule.** Four stages; between stages a 2×2 stride-2 downsampling
halves the resolution (three times), so a stem output of side ``h`` ends at ``h / 8``. The stem
stride is the smallest ``s`` in (1, 2, 4) whose output side ``min(H, W) / s`` is at most 32 (the
scale the small templates are sized for); a stride-1 stem is a 3×3 convolution, a stride-``s``
stem an ``s``×``s`` patchify convolution (as QuadraNet's 4×4 stride-4 ImageNet stem). Valid
inputs: both sides divisible by ``8·s`` and the last stage at least 2×2 (``min(H, W) ≥ 16``),
so 16² to 224² and more (e.g. 16, 24, 32, 48, 64, 96, 128, 224). Anything else is refused with
the nearest valid sizes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from search_spaces.space import SPACE_RESOLVERS, SearchSpace

__all__ = ["TEMPLATES", "SpaceTemplate", "concrete_name", "instantiate", "parse_concrete_name", "stem_for",
           "template_names", "valid_sizes"]

_STEM_STRIDES = (1, 2, 4)
_TARGET_STEM_PX = 32
_DOWNSAMPLE = 8  # three 2x2 stride-2 downsamplings between four stages
_MIN_LAST_PX = 2
_NAME = re.compile(r"^(?P<template>[a-z]+)-(?P<c>\d+)x(?P<h>\d+)x(?P<w>\d+)-(?P<k>\d+)c$")


@dataclass(frozen=True)
class SpaceTemplate:
    """The choices of a search space without its input: instantiated by :func:`instantiate`."""

    name: str
    native_px: int  # the default --image-size for datasets resized to this template
    depth_choices: tuple[tuple[int, ...], ...]
    width_choices: tuple[tuple[int, ...], ...]
    kernel_choices: tuple[int, ...] = (3, 5, 7)
    mlp_ratio_choices: tuple[int, ...] = (2, 3, 4)
    order_choices: tuple[int, ...] = (1, 2)
    description: str = ""


TEMPLATES: dict[str, SpaceTemplate] = {t.name: t for t in (
    SpaceTemplate(
        name="s", native_px=16,
        depth_choices=((1, 2), (1, 2), (1, 2, 3), (1, 2)),
        width_choices=((8, 16), (16, 24, 32), (24, 32, 48), (32, 48, 64)),
        description="small: CPU-searchable in minutes (15 k to 222 k parameters at 1x16x16, 10 classes)"),
    SpaceTemplate(
        name="m", native_px=32,
        depth_choices=((1, 2), (1, 2), (2, 3, 4), (1, 2)),
        width_choices=((16, 24, 32), (32, 48, 64), (64, 96, 128), (128, 192, 256)),
        description="medium: the choices of cifar10-m (155 k to 2.0 M parameters at 3x32x32, 10 classes)"),
    SpaceTemplate(
        name="l", native_px=64,
        depth_choices=((1, 2, 3), (1, 2, 3), (3, 6, 9), (1, 2, 3)),
        width_choices=((32, 48, 64), (64, 96, 128), (128, 192, 256), (256, 384, 512)),
        description="large: a scaled-down QuadraNet-tiny, GPU-sized (0.67 M to 12.9 M parameters at 3x64x64, "
                    "10 classes)"),
)}


def template_names() -> list[str]:
    return sorted(TEMPLATES)


def _template(name: str) -> SpaceTemplate:
    try:
        return TEMPLATES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown space template {name!r}; valid: {', '.join(template_names())}") from None


def stem_for(height: int, width: int) -> tuple[int, int]:
    """``(stem_kernel, stem_stride)`` for an input of ``height`` × ``width`` (the module's rule);
    an input the rule cannot serve raises ``ValueError`` naming valid sizes."""
    side = min(height, width)
    stride = next((s for s in _STEM_STRIDES if side / s <= _TARGET_STEM_PX), _STEM_STRIDES[-1])
    step = _DOWNSAMPLE * stride
    if side < _MIN_LAST_PX * _DOWNSAMPLE or height % step or width % step:
        raise ValueError(
            f"input {height}x{width} does not fit the space templates: both sides must be multiples of {step} "
            f"(stem stride {stride}, then three 2x2 downsamplings) and at least {_MIN_LAST_PX * _DOWNSAMPLE} so the "
            f"last stage keeps {_MIN_LAST_PX}x{_MIN_LAST_PX}; valid sides near it: "
            f"{', '.join(map(str, valid_sizes(side)))}"
            f" (pass --image-size)")
    return (3 if stride == 1 else stride), stride


def valid_sizes(near: int, *, count: int = 4) -> list[int]:
    """Square sides the stem rule accepts, the ``count`` nearest to ``near``."""
    ok = []
    for side in range(_MIN_LAST_PX * _DOWNSAMPLE, 1025):
        stride = next((s for s in _STEM_STRIDES if side / s <= _TARGET_STEM_PX), _STEM_STRIDES[-1])
        if side % (_DOWNSAMPLE * stride) == 0:
            ok.append(side)
    return sorted(sorted(ok, key=lambda s: (abs(s - near), s))[:count])


def concrete_name(template: str, input_shape: tuple[int, int, int], num_classes: int) -> str:
    c, h, w = input_shape
    return f"{template}-{c}x{h}x{w}-{num_classes}c"


def parse_concrete_name(name: str) -> tuple[str, tuple[int, int, int], int] | None:
    """``(template, (C, H, W), classes)`` of a concrete template space's name, or ``None``."""
    match = _NAME.match(name) if isinstance(name, str) else None
    if match is None or match["template"] not in TEMPLATES:
        return None
    return match["template"], (int(match["c"]), int(match["h"]), int(match["w"])), int(match["k"])


def instantiate(template: str, *, input_shape: tuple[int, int, int], num_classes: int) -> SearchSpace:
    """The concrete space of ``template`` for inputs ``(C, H, W)`` and ``num_classes`` classes."""
    t = _template(template)
    if (not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in input_shape)):
        raise ValueError(f"input_shape must be three positive ints (C, H, W), got {input_shape!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    c, h, w = (int(v) for v in input_shape)
    stem_kernel, stem_stride = stem_for(h, w)
    return SearchSpace(
        name=concrete_name(t.name, (c, h, w), num_classes), input_shape=(c, h, w), num_classes=num_classes,
        depth_choices=t.depth_choices, width_choices=t.width_choices, kernel_choices=t.kernel_choices,
        mlp_ratio_choices=t.mlp_ratio_choices, order_choices=t.order_choices, stem_kernel=stem_kernel,
        stem_stride=stem_stride,
        description=f"template {t.name} ({t.description}) for {c}x{h}x{w} inputs, {num_classes} classes")


def _concrete_space(name: object) -> SearchSpace | None:
    """or a template (s, m, l) fitted to a dataset, named like m-3x32x32-10c"""
    parsed = parse_concrete_name(name)
    if parsed is None:
        return None
    template, input_shape, num_classes = parsed
    return instantiate(template, input_shape=input_shape, num_classes=num_classes)


SPACE_RESOLVERS.append(_concrete_space)
