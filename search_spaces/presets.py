"""Named network presets: a registry of functions returning a :class:`NetConfig`.

ImageNet shapes (224×224×3, 1000 classes, 4×4 stride-4 stem) follow the published models:

- ``quadranet_tiny`` / ``quadranet_base`` — QuadraNet, depths 3-3-27-3, C = 64 / 128, 7×7.
- ``hornet_tiny`` — HorNet-T 7×7: depths 2-3-18-2, C = 64, gⁿConv orders 2, 3, 4, 5 by stage.
- ``firstorder_tiny`` — QuadraNet-tiny's shape with one depthwise 7×7 conv as the mixer.

Small presets use a 3×3 stride-1 stem: ``*_digits`` for 8×8×1 digits, ``*_cifar`` for
32×32×3 CIFAR-10, each for the three mixers. Build with :func:`create_model` by name; keyword
overrides (``num_classes``, ``input_shape``, ``quadra_impl``, ``drop_path_rate``,
``layer_scale_init``) are passed to the preset.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from search_spaces.networks import NetConfig, QuadraNet, uniform_net

__all__ = ["MODELS", "create_model", "model_config", "model_names", "register_model"]

MODELS: dict[str, Callable[..., NetConfig]] = {}

_HORNET_ORDERS = (2, 3, 4, 5)


def register_model(fn: Callable[..., NetConfig]) -> Callable[..., NetConfig]:
    """Register a preset under its function name."""
    if fn.__name__ in MODELS:
        raise ValueError(f"model preset {fn.__name__!r} is already registered")
    MODELS[fn.__name__] = fn
    return fn


def _widths(c: int) -> tuple[int, int, int, int]:
    return (c, 2 * c, 4 * c, 8 * c)


_IMAGENET = {"input_shape": (3, 224, 224), "num_classes": 1000, "stem_kernel": 4, "stem_stride": 4}
_CIFAR = {"input_shape": (3, 32, 32), "num_classes": 10, "stem_kernel": 3, "stem_stride": 1}
_DIGITS = {"input_shape": (1, 8, 8), "num_classes": 10, "stem_kernel": 3, "stem_stride": 1}


def _make(name: str, base: dict[str, Any], overrides: dict[str, Any], **arch: Any) -> NetConfig:
    return uniform_net(name=name, **{**base, **arch, **overrides})


@register_model
def quadranet_tiny(**kw: Any) -> NetConfig:
    return _make("quadranet_tiny", _IMAGENET, kw, depths=(3, 3, 27, 3), widths=_widths(64))


@register_model
def quadranet_base(**kw: Any) -> NetConfig:
    return _make("quadranet_base", _IMAGENET, kw, depths=(3, 3, 27, 3), widths=_widths(128))


@register_model
def hornet_tiny(**kw: Any) -> NetConfig:
    return _make("hornet_tiny", _IMAGENET, kw, depths=(2, 3, 18, 2), widths=_widths(64),
                 mixer="gnconv", gn_orders=_HORNET_ORDERS)


@register_model
def firstorder_tiny(**kw: Any) -> NetConfig:
    return _make("firstorder_tiny", _IMAGENET, kw, depths=(3, 3, 27, 3), widths=_widths(64),
                 mixer="first_order")


@register_model
def quadranet_cifar(**kw: Any) -> NetConfig:
    return _make("quadranet_cifar", _CIFAR, kw, depths=(2, 2, 4, 2), widths=_widths(32))


@register_model
def hornet_cifar(**kw: Any) -> NetConfig:
    return _make("hornet_cifar", _CIFAR, kw, depths=(2, 2, 4, 2), widths=_widths(32),
                 mixer="gnconv", gn_orders=_HORNET_ORDERS)


@register_model
def firstorder_cifar(**kw: Any) -> NetConfig:
    return _make("firstorder_cifar", _CIFAR, kw, depths=(2, 2, 4, 2), widths=_widths(32),
                 mixer="first_order")


@register_model
def quadranet_digits(**kw: Any) -> NetConfig:
    return _make("quadranet_digits", _DIGITS, kw, depths=(1, 1, 2, 1), widths=_widths(16), kernel_size=3)


@register_model
def hornet_digits(**kw: Any) -> NetConfig:
    return _make("hornet_digits", _DIGITS, kw, depths=(1, 1, 2, 1), widths=_widths(16), kernel_size=3,
                 mixer="gnconv", gn_orders=_HORNET_ORDERS)


@register_model
def firstorder_digits(**kw: Any) -> NetConfig:
    return _make("firstorder_digits", _DIGITS, kw, depths=(1, 1, 2, 1), widths=_widths(16), kernel_size=3,
                 mixer="first_order")


def model_names() -> list[str]:
    """Registered preset names, sorted."""
    return sorted(MODELS)


def model_config(name: str, **overrides: Any) -> NetConfig:
    """The :class:`NetConfig` of preset ``name`` with ``overrides`` applied."""
    try:
        fn = MODELS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(model_names())}") from None
    return fn(**overrides)


def create_model(name: str, **overrides: Any) -> QuadraNet:
    """Build preset ``name`` as a :class:`QuadraNet`."""
    return QuadraNet(model_config(name, **overrides))
