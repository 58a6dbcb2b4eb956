"""The search's samplers: the registry of Optuna samplers a study can run, and their random state.

:data:`SAMPLERS` (name → :class:`Sampler`) is the only list: ``nsga2`` (NSGA-II, the default;
``population_size`` per generation), ``tpe`` (multi-objective TPE) and ``random``. Optuna keeps a
sampler's populations in the trials but not its random generator: :func:`save_sampler_state`
stores it with the study after every batch and :func:`restore_sampler_state` puts it back on a
resume, so a resumed NSGA-II goes on from its generation instead of replaying its first proposals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import optuna

from search_spaces.layers import check_positive_int

__all__ = ["SAMPLERS", "SAMPLER_STATE_ATTR", "Sampler", "check_population", "create_sampler", "register_sampler",
           "restore_sampler_state", "sampler_names", "save_sampler_state"]

SAMPLER_STATE_ATTR = "quadranas_sampler_state"


@dataclass(frozen=True)
class Sampler:
    """A registered sampler: ``build(seed, population_size)`` makes it."""

    name: str
    label: str  # what messages call it: NSGA-II
    description: str
    build: Callable[[int, int], optuna.samplers.BaseSampler]
    min_population: int = 1  # NSGA-II breeds pairs


SAMPLERS: dict[str, Sampler] = {}


def register_sampler(sampler: Sampler) -> Sampler:
    if sampler.name in SAMPLERS:
        raise ValueError(f"sampler {sampler.name!r} is already registered")
    SAMPLERS[sampler.name] = sampler
    return sampler


register_sampler(Sampler(
    name="nsga2", label="NSGA-II", description="NSGA-II, the default (--population-size per generation)",
    min_population=2,
    build=lambda seed, population: optuna.samplers.NSGAIISampler(population_size=population, seed=seed)))
register_sampler(Sampler(
    name="tpe", label="TPE", description="multi-objective TPE",
    build=lambda seed, population: optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(20, population))))
register_sampler(Sampler(
    name="random", label="random sampling", description="random sampling, which ignores the budgets",
    build=lambda seed, population: optuna.samplers.RandomSampler(seed=seed)))


def sampler_names() -> list[str]:
    return list(SAMPLERS)


def _sampler(name: str) -> Sampler:
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; valid: {', '.join(SAMPLERS)}")
    return SAMPLERS[name]


def check_population(sampler: str, population_size: int) -> None:
    """A positive population size; NSGA-II needs at least 2 (it breeds pairs)."""
    check_positive_int("population_size", population_size)
    entry = _sampler(sampler)
    if population_size < entry.min_population:
        raise ValueError(f"{entry.label} needs a population of at least {entry.min_population} (--population-size), "
                         f"got {population_size}")


def create_sampler(name: str, *, seed: int, population_size: int = 50) -> optuna.samplers.BaseSampler:
    """A fresh sampler by name (see :data:`SAMPLERS`)."""
    entry = _sampler(name)
    check_population(name, population_size)
    return entry.build(seed, population_size)


def save_sampler_state(study: optuna.Study) -> None:
    """Store the sampler's random state with the study (Optuna keeps populations in the trials
    but not the RNG), so a resumed NSGA-II continues instead of replaying its first proposals."""
    state = {}
    for name, rng in _sampler_rngs(study.sampler).items():
        kind, keys, pos, has_gauss, cached = rng.get_state()
        state[name] = [kind, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)]
    study.set_user_attr(SAMPLER_STATE_ATTR, {"sampler": type(study.sampler).__name__, "rngs": state})


def restore_sampler_state(study: optuna.Study) -> bool:
    """Restore the state :func:`save_sampler_state` stored, if it is of this sampler's type."""
    stored = study.user_attrs.get(SAMPLER_STATE_ATTR)
    if not stored or stored.get("sampler") != type(study.sampler).__name__:
        return False
    rngs = _sampler_rngs(study.sampler)
    for name, (kind, keys, pos, has_gauss, cached) in stored["rngs"].items():
        if name in rngs:
            rngs[name].set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    return True


def _sampler_rngs(sampler: optuna.samplers.BaseSampler) -> dict[str, np.random.RandomState]:
    """The numpy generators of an Optuna sampler and of the random sampler inside it."""
    out = {}
    for name, owner in (("sampler", sampler), ("random_sampler", getattr(sampler, "_random_sampler", None))):
        lazy = getattr(owner, "_rng", None)
        if lazy is not None and hasattr(lazy, "rng"):
            out[name] = lazy.rng
    return out

