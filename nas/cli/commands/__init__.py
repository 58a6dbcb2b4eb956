"""The table of ``nas`` commands: the only list of them, with the help of their groups."""

from __future__ import annotations

from nas.cli.base import Command
from nas.cli.commands.bench import (
    BenchDeviceCheck,
    BenchMixer,
    BenchPicks,
    BenchPredictors,
    BenchRanking,
    BenchReliability,
    BenchRuntimes,
    BenchSearch,
    BenchStaircase,
)
from nas.cli.commands.info import Datasets, Models, SpaceList, SpaceSample, SpaceShow
from nas.cli.commands.profiling import PredictorsFit, PredictorsPredict, PredictorsRefit, PredictorsShow, Profile
from nas.cli.commands.search import Export, Report, Search
from nas.cli.commands.train import SupernetEval, TrainNet, TrainSupernet

__all__ = ["COMMANDS", "GROUPS"]

# Command words -> command, in the order `nas --help` lists them.
COMMANDS: dict[tuple[str, ...], type[Command]] = {cls.name: cls for cls in (
    Models, Datasets, TrainNet, SpaceList, SpaceShow, SpaceSample, TrainSupernet, SupernetEval, Profile,
    PredictorsFit, PredictorsRefit, PredictorsShow, PredictorsPredict, Search, Export, Report,
    BenchMixer, BenchRanking, BenchPicks, BenchPredictors, BenchRuntimes, BenchStaircase, BenchSearch, BenchReliability,
    BenchDeviceCheck,
)}

# The commands that group actions: their help and what `nas GROUP --help` calls the action.
GROUPS = {
    "space": ("search spaces: list, show, sample", "ACTION"),
    "supernet": ("use a trained supernet", "ACTION"),
    "predictors": ("latency / memory predictors: fit, refit, show, predict", "ACTION"),
    "bench": ("benchmarks (JSON output)", "BENCH"),
}
