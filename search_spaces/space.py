"""``SearchSpace``: the choices per dimension of an elastic QuadraNet, and named presets.

Dimensions, as in once-for-all (Cai et al., ICLR 2020) plus the neuron order:

- depth per stage (the first ``d`` blocks of the stage are active);
- width per stage, multiples of 8 (GPU-friendly granularity);
- per block: mixer kernel size, MLP ratio, and **neuron order** — 2 is QuadraNet's quadratic
  mixer, 1 keeps only its ``W_c`` path (a first-order block), so a search decides *where*
  quadratic interactions pay off.

A space knows its size, its largest and smallest member, how to sample, how to validate an
:class:`ArchConfig` (errors name the field and the allowed values), and how to turn an
architecture into the :class:`NetConfig` of a stand-alone :class:`QuadraNet`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from search_spaces.arch import ArchConfig, ArchError, BlockArch, StageArch
from search_spaces.networks import BlockConfig, NetConfig, StageConfig

__all__ = [
    "SPACES", "SPACE_RESOLVERS", "SearchSpace", "arch_ids", "as_space", "create_space", "load_arch", "parse_arch",
    "register_space",
    "space_names",
]

ORDER_MIXER = {2: "quadra", 1: "first_order"}


def arch_ids(items: Iterable[object], *, name: str = "exclude") -> frozenset[str]:
    """The ``arch_id``s of ``items``: each an ``arch_id`` string or an :class:`ArchConfig`."""
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise TypeError(f"{name} must be a collection of arch_id strings or ArchConfigs, got {items!r}")
    ids = set()
    for item in items:
        if isinstance(item, ArchConfig):
            ids.add(item.arch_id)
        elif isinstance(item, str):
            ids.add(item)
        else:
            raise TypeError(f"{name} must hold arch_id strings or ArchConfigs, got {type(item).__name__} {item!r}")
    return frozenset(ids)


def _choices(name: str, values: Any) -> tuple[int, ...]:
    values = tuple(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ValueError(f"{name} must be a non-empty list of positive integers, got {values!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"{name} has duplicates: {values!r}")
    return tuple(sorted(values))


@dataclass(frozen=True)
class SearchSpace:
    """Choices per stage (depth, width) and per block (kernel, MLP ratio, order)."""

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    depth_choices: tuple[tuple[int, ...], ...]
    width_choices: tuple[tuple[int, ...], ...]
    kernel_choices: tuple[int, ...] = (3, 5, 7)
    mlp_ratio_choices: tuple[int, ...] = (2, 3, 4)
    order_choices: tuple[int, ...] = (1, 2)
    stem_kernel: int = 3
    stem_stride: int = 1
    layer_scale_init: float = 1e-6
    description: str = ""

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "input_shape", tuple(self.input_shape))
        if len(self.depth_choices) != len(self.width_choices) or not self.depth_choices:
            raise ValueError(
                f"depth_choices ({len(self.depth_choices)} stages) and width_choices "
                f"({len(self.width_choices)} stages) must list the same, non-zero number of stages"
            )
        set_(self, "depth_choices", tuple(_choices(f"depth_choices[{i}]", d) for i, d in enumerate(self.depth_choices)))
        set_(self, "width_choices", tuple(_choices(f"width_choices[{i}]", w) for i, w in enumerate(self.width_choices)))
        for i, ws in enumerate(self.width_choices):
            if any(w % 8 for w in ws):
                raise ValueError(f"width_choices[{i}] must be multiples of 8, got {ws}")
        set_(self, "kernel_choices", _choices("kernel_choices", self.kernel_choices))
        if any(k % 2 == 0 for k in self.kernel_choices):
            raise ValueError(f"kernel_choices must be odd, got {self.kernel_choices}")
        set_(self, "mlp_ratio_choices", _choices("mlp_ratio_choices", self.mlp_ratio_choices))
        set_(self, "order_choices", _choices("order_choices", self.order_choices))
        if not set(self.order_choices) <= {1, 2}:
            raise ValueError(f"order_choices must be drawn from (1, 2), got {self.order_choices}")
        self.to_net_config(self.max_arch())  # validates input shape vs. stages, stem, classes

    # --- size and extremes -------------------------------------------------------------------
    @property
    def n_stages(self) -> int:
        return len(self.depth_choices)

    @property
    def block_choices(self) -> int:
        return len(self.kernel_choices) * len(self.mlp_ratio_choices) * len(self.order_choices)

    def size(self) -> int:
        """Number of distinct architectures: Π_stages |widths| · Σ_depths (|k|·|r|·|o|)^depth."""
        m = self.block_choices
        return math.prod(len(ws) * sum(m**d for d in ds) for ds, ws in zip(self.depth_choices, self.width_choices))

    def _uniform(self, pick: Callable[[tuple[int, ...]], int]) -> ArchConfig:
        block = BlockArch(kernel_size=pick(self.kernel_choices), mlp_ratio=pick(self.mlp_ratio_choices),
                          order=pick(self.order_choices))
        return ArchConfig(space=self.name, stages=tuple(
            StageArch(width=pick(ws), blocks=(block,) * pick(ds))
            for ds, ws in zip(self.depth_choices, self.width_choices)
        ))

    def max_arch(self) -> ArchConfig:
        """Deepest, widest, largest kernels and ratios, all blocks quadratic (if allowed)."""
        return self._uniform(max)

    def min_arch(self) -> ArchConfig:
        """Shallowest, narrowest, smallest kernels and ratios, all blocks first-order (if allowed)."""
        return self._uniform(min)

    def sample(self, rng: random.Random) -> ArchConfig:
        """Uniform choice per dimension (per stage, then per block)."""
        stages = []
        for ds, ws in zip(self.depth_choices, self.width_choices):
            width = rng.choice(ws)
            depth = rng.choice(ds)
            blocks = tuple(
                BlockArch(kernel_size=rng.choice(self.kernel_choices), mlp_ratio=rng.choice(self.mlp_ratio_choices),
                          order=rng.choice(self.order_choices))
                for _ in range(depth)
            )
            stages.append(StageArch(width=width, blocks=blocks))
        return ArchConfig(space=self.name, stages=tuple(stages))

    def spread(self, k: int, *, key: Callable[[ArchConfig], float], seed: int, pool: int = 400,
               exclude: Iterable[str | ArchConfig] = frozenset()) -> list[ArchConfig]:
        """``k`` distinct members spread over the range of ``key`` (a size or cost).

        The smallest and largest members come first and last; in between, evenly spaced
        quantiles of ``key`` over ``pool`` random samples (seeded). ``exclude`` lists
        architectures (``arch_id``s or ``ArchConfig``s) that must not be picked (e.g. a training
        set, for a held-out one).
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        exclude = arch_ids(exclude)
        rng = random.Random(seed)
        candidates = {a.arch_id: a for a in (self.sample(rng) for _ in range(max(pool, 4 * k)))}
        for extreme in (self.min_arch(), self.max_arch()):
            candidates.setdefault(extreme.arch_id, extreme)
        ranked = sorted((a for a in candidates.values() if a.arch_id not in exclude), key=lambda a: (key(a), a.arch_id))
        if len(ranked) < k:
            raise ValueError(f"space {self.name!r} gave only {len(ranked)} distinct new architectures for k={k}")
        if k == 1:
            return [ranked[0]]
        picks: dict[str, ArchConfig] = {}
        for i in range(k):
            a = ranked[round(i * (len(ranked) - 1) / (k - 1))]
            picks.setdefault(a.arch_id, a)
        rest = iter(a for a in ranked if a.arch_id not in picks)  # fill any duplicates' places
        while len(picks) < k:
            a = next(rest)
            picks[a.arch_id] = a
        return sorted(picks.values(), key=lambda a: (key(a), a.arch_id))

    def mutate(self, arch: ArchConfig, rng: random.Random, *, n_changes: int = 1) -> ArchConfig:
        """``arch`` with ``n_changes`` random single-dimension changes (a stage's width or depth,
        or one block's kernel, MLP ratio or order); the result is a member of this space."""
        self.validate(arch)
        stages = [[s.width, list(s.blocks)] for s in arch.stages]
        for _ in range(n_changes):
            i = rng.randrange(self.n_stages)
            options = ["width"] * (len(self.width_choices[i]) > 1) + ["depth"] * (len(self.depth_choices[i]) > 1)
            options += ["kernel_size"] * (len(self.kernel_choices) > 1)
            options += ["mlp_ratio"] * (len(self.mlp_ratio_choices) > 1)
            options += ["order"] * (len(self.order_choices) > 1)
            if not options:
                break
            dim = rng.choice(options)
            if dim == "width":
                stages[i][0] = rng.choice([w for w in self.width_choices[i] if w != stages[i][0]])
            elif dim == "depth":
                depth = rng.choice([d for d in self.depth_choices[i] if d != len(stages[i][1])])
                blocks = stages[i][1][:depth]
                while len(blocks) < depth:
                    blocks.append(BlockArch(kernel_size=rng.choice(self.kernel_choices),
                                            mlp_ratio=rng.choice(self.mlp_ratio_choices),
                                            order=rng.choice(self.order_choices)))
                stages[i][1] = blocks
            else:
                choices = {"kernel_size": self.kernel_choices, "mlp_ratio": self.mlp_ratio_choices,
                           "order": self.order_choices}[dim]
                j = rng.randrange(len(stages[i][1]))
                old = stages[i][1][j]
                new_value = rng.choice([v for v in choices if v != getattr(old, dim)])
                stages[i][1][j] = replace(old, **{dim: new_value})
        return ArchConfig(space=self.name, stages=tuple(StageArch(width=w, blocks=tuple(b)) for w, b in stages))

    # --- validation and conversion -----------------------------------------------------------
    def _check_of_space(self, arch: object) -> None:
        """Raise :class:`ArchError` unless ``arch`` is an ArchConfig naming this space."""
        if not isinstance(arch, ArchConfig):
            raise ArchError("arch", f"expected an ArchConfig, got {type(arch).__name__}")
        if arch.space != self.name:
            raise ArchError("space", f"architecture is for space {arch.space!r}, not {self.name!r}")

    def validate(self, arch: ArchConfig) -> ArchConfig:
        """Return ``arch`` if it is a member of this space, else raise :class:`ArchError`."""
        self._check_of_space(arch)
        if len(arch.stages) != self.n_stages:
            raise ArchError("stages", f"{len(arch.stages)} stages given; space {self.name!r} has {self.n_stages}")
        for i, (stage, ds, ws) in enumerate(zip(arch.stages, self.depth_choices, self.width_choices)):
            if stage.width not in ws:
                raise ArchError(f"stages[{i}].width", f"{stage.width} not in allowed {ws}")
            if stage.depth not in ds:
                raise ArchError(f"stages[{i}].blocks", f"{stage.depth} blocks given; allowed depths {ds}")
            for j, b in enumerate(stage.blocks):
                for fname, allowed in (("kernel_size", self.kernel_choices), ("mlp_ratio", self.mlp_ratio_choices),
                                       ("order", self.order_choices)):
                    if getattr(b, fname) not in allowed:
                        raise ArchError(f"stages[{i}].blocks[{j}].{fname}",
                                        f"{getattr(b, fname)} not in allowed {allowed}")
        return arch

    def to_net_config(self, arch: ArchConfig) -> NetConfig:
        """The stand-alone network of ``arch`` (order 2 → quadra mixer, order 1 → first-order).

        ``arch`` must be of this space; its choices are not checked against the space's (the
        supernet builds its all-quadratic layout, the staircase bench wider stages, through it).
        """
        self._check_of_space(arch)
        stages = tuple(
            StageConfig(width=s.width, blocks=tuple(
                BlockConfig(mixer=ORDER_MIXER[b.order], kernel_size=b.kernel_size, mlp_ratio=b.mlp_ratio)
                for b in s.blocks))
            for s in arch.stages
        )
        return NetConfig(
            input_shape=self.input_shape, num_classes=self.num_classes, stages=stages,
            stem_kernel=self.stem_kernel, stem_stride=self.stem_stride, layer_scale_init=self.layer_scale_init,
            name=f"{self.name}/{arch.arch_id}",
        )

    def arch_from_json(self, text: str) -> ArchConfig:
        return self.validate(ArchConfig.from_json(text))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "input_shape": list(self.input_shape), "num_classes": self.num_classes,
            "depth_choices": [list(d) for d in self.depth_choices],
            "width_choices": [list(w) for w in self.width_choices],
            "kernel_choices": list(self.kernel_choices), "mlp_ratio_choices": list(self.mlp_ratio_choices),
            "order_choices": list(self.order_choices), "stem_kernel": self.stem_kernel,
            "stem_stride": self.stem_stride, "layer_scale_init": self.layer_scale_init,
            "description": self.description,
        }

    def describe(self) -> str:
        """Multi-line human summary (what ``nas space show`` prints)."""
        c, h, w = self.input_shape
        lines = [f"space {self.name}: {self.description}".rstrip(": "),
                 f"  input {c}x{h}x{w}, {self.num_classes} classes, stem {self.stem_kernel}x{self.stem_kernel} "
                 f"stride {self.stem_stride}"]
        for i, (ds, ws) in enumerate(zip(self.depth_choices, self.width_choices)):
            lines.append(f"  stage {i}: depth {list(ds)}, width {list(ws)}")
        lines.append(f"  per block: kernel {list(self.kernel_choices)}, mlp_ratio {list(self.mlp_ratio_choices)}, "
                     f"order {list(self.order_choices)} (2 = quadratic, 1 = first-order)")
        lines.append(f"  architectures: {self.size():,} (~{self.size():.3e})")
        return "\n".join(lines)


SPACES: dict[str, Callable[[], SearchSpace]] = {}
# Functions name -> SearchSpace | None for spaces built from their name (their docstring's first line
# says which names, for the unknown-space error).
SPACE_RESOLVERS: list[Callable[[object], SearchSpace | None]] = []


def register_space(name: str) -> Callable[[Callable[[], SearchSpace]], Callable[[], SearchSpace]]:
    def deco(fn: Callable[[], SearchSpace]) -> Callable[[], SearchSpace]:
        if name in SPACES:
            raise ValueError(f"search space {name!r} is already registered")
        SPACES[name] = fn
        return fn
    return deco


@register_space("digits-s")
def _digits_s() -> SearchSpace:
    return SearchSpace(
        name="digits-s", input_shape=(1, 8, 8), num_classes=10,
        depth_choices=((1, 2), (1, 2), (1, 2, 3), (1, 2)),
        width_choices=((8, 16), (16, 24, 32), (24, 32, 48, 64), (32, 64, 96, 128)),
        kernel_choices=(3, 5, 7), mlp_ratio_choices=(2, 3, 4), order_choices=(1, 2),
        stem_kernel=3, stem_stride=1,
        description="scikit-learn digits 8x8x1, 10 classes: a small space for CPU search",
    )


@register_space("cifar10-m")
def _cifar10_m() -> SearchSpace:
    return SearchSpace(
        name="cifar10-m", input_shape=(3, 32, 32), num_classes=10,
        depth_choices=((1, 2), (1, 2), (2, 3, 4), (1, 2)),
        width_choices=((16, 24, 32), (32, 48, 64), (64, 96, 128), (128, 192, 256)),
        stem_kernel=3, stem_stride=1,
        description="CIFAR-10 32x32x3, 10 classes: a medium space",
    )


@register_space("imagenet-quadranet-t")
def _imagenet_quadranet_t() -> SearchSpace:
    return SearchSpace(
        name="imagenet-quadranet-t", input_shape=(3, 224, 224), num_classes=1000,
        depth_choices=((1, 2, 3), (1, 2, 3), tuple(range(9, 28, 3)), (1, 2, 3)),
        width_choices=((48, 56, 64), (96, 112, 128), (192, 224, 256), (384, 448, 512)),
        stem_kernel=4, stem_stride=4,
        description="ImageNet 224x224x3, 1000 classes: around QuadraNet-tiny (3-3-27-3, C=64)",
    )


def space_names() -> list[str]:
    return sorted(SPACES)


def create_space(name: str) -> SearchSpace:
    """The registered search space ``name``, or one a resolver of :data:`SPACE_RESOLVERS` builds
    from its name (the templates' concrete spaces, ``TEMPLATE-CxHxW-Kc``: :mod:`search_spaces.templates`)."""
    try:
        factory = SPACES[name]
    except (KeyError, TypeError):  # TypeError: an unhashable name
        for resolver in SPACE_RESOLVERS:
            space = resolver(name)
            if space is not None:
                return space
        hints = "".join(f"; {r.__doc__.strip().splitlines()[0]}" for r in SPACE_RESOLVERS if r.__doc__)
        raise ValueError(f"unknown search space {name!r}; valid: {', '.join(space_names())}{hints}") from None
    return factory()


def as_space(space: SearchSpace | str | None) -> SearchSpace | None:
    """A ``space`` argument as a :class:`SearchSpace`: a registered space's name is created,
    ``None`` stays ``None`` (the caller's default); anything else is a ``TypeError``."""
    if space is None or isinstance(space, SearchSpace):
        return space
    if isinstance(space, str):
        return create_space(space)
    raise TypeError(f"space must be a SearchSpace or a registered space's name, got {type(space).__name__}")


def load_arch(path: str | Path, space: SearchSpace | str | None = None) -> ArchConfig:
    """Read an architecture JSON file; validate it against ``space`` (default: the one it names)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise FileNotFoundError(f"cannot read architecture file {path}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise ArchError("arch", f"{path} is not UTF-8 JSON text: {err.reason}") from None
    return parse_arch(text, source=str(path), space=space)


def parse_arch(data: str | Mapping[str, Any], *, source: str, space: SearchSpace | str | None = None) -> ArchConfig:
    """Architecture JSON text (or its parsed dict) validated against ``space`` (a SearchSpace or
    its name; default: the space it names); errors are :class:`ArchError` naming the field and
    ``source``."""
    space = as_space(space)
    try:
        arch = ArchConfig.from_json(data) if isinstance(data, str) else ArchConfig.from_dict(
            dict(data) if isinstance(data, Mapping) else data)
        if space is None:
            try:
                space = create_space(arch.space)
            except ValueError as err:
                raise ArchError("space", str(err)) from None
        return space.validate(arch)
    except ArchError as err:
        raise ArchError(err.field, f"{err.detail} (in {source})") from None
