"""The study's parameters: one categorical parameter per dimension of the space.

An architecture is proposed through ``s{i}.depth``, ``s{i}.width`` and, for every block slot up
to the stage's largest depth, ``s{i}.b{j}.kernel`` / ``.mlp`` / ``.order``. The parameter set is
the same for every trial (a slot beyond a stage's depth is sampled and ignored), which is what
NSGA-II's crossover needs.
"""

from __future__ import annotations

from typing import Any

from search_spaces.arch import ArchConfig, ArchError, BlockArch, StageArch
from search_spaces.space import SearchSpace

__all__ = ["arch_from_params", "arch_params"]


def arch_params(space: SearchSpace) -> list[tuple[str, tuple[int, ...]]]:
    """The study's parameters: (name, choices) for every dimension and block slot of ``space``."""
    params: list[tuple[str, tuple[int, ...]]] = []
    for i, (ds, ws) in enumerate(zip(space.depth_choices, space.width_choices)):
        params += [(f"s{i}.depth", tuple(ds)), (f"s{i}.width", tuple(ws))]
        for j in range(max(ds)):
            params += [(f"s{i}.b{j}.kernel", tuple(space.kernel_choices)),
                       (f"s{i}.b{j}.mlp", tuple(space.mlp_ratio_choices)),
                       (f"s{i}.b{j}.order", tuple(space.order_choices))]
    return params


def arch_from_params(space: SearchSpace, params: dict[str, Any]) -> ArchConfig:
    """The architecture a trial's parameters describe (block slots beyond the depth ignored)."""
    stages = []
    for i in range(space.n_stages):
        depth = params[f"s{i}.depth"]
        if depth not in space.depth_choices[i]:
            raise ArchError(f"stages[{i}].blocks", f"depth {depth!r} not in allowed {space.depth_choices[i]}")
        blocks = []
        for j in range(depth):
            try:
                blocks.append(BlockArch(kernel_size=params[f"s{i}.b{j}.kernel"], mlp_ratio=params[f"s{i}.b{j}.mlp"],
                                        order=params[f"s{i}.b{j}.order"]))
            except ArchError as err:
                raise ArchError(f"stages[{i}].blocks[{j}].{err.field}", err.detail) from None
        try:
            stages.append(StageArch(width=params[f"s{i}.width"], blocks=tuple(blocks)))
        except ArchError as err:
            raise ArchError(f"stages[{i}].{err.field}", err.detail) from None
    return space.validate(ArchConfig(space=space.name, stages=tuple(stages)))
