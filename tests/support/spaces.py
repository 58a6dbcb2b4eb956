"""Tiny search spaces for tests: fast to build, train and profile."""

from __future__ import annotations

from search_spaces.space import SearchSpace

# 2 stages, depth (1, 2), widths (8, 16), kernels (3, 5), ratio 2, orders (1, 2), 8x8 grey input, 3 classes.
TINY = dict(name="tiny", input_shape=(1, 8, 8), num_classes=3, depth_choices=((1, 2), (1, 2)),
            width_choices=((8, 16), (8, 16)), kernel_choices=(3, 5), mlp_ratio_choices=(2,), order_choices=(1, 2))


def tiny_space(**overrides) -> SearchSpace:
    """A small unregistered :class:`SearchSpace` (:data:`TINY`, with ``overrides``)."""
    return SearchSpace(**{**TINY, **overrides})
