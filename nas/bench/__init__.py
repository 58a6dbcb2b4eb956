"""Stage *bench*: the benchmarks — each a JSON record measured side by side in one process.

Owns ``nas bench mixer`` (the quadratic mixer against gⁿConv and first-order ones,
:mod:`nas.bench.mixer`), ``ranking`` (supernet ranking against stand-alone training,
:mod:`nas.bench.ranking`), ``predictors`` (cost models on held-out architectures,
:mod:`nas.bench.predictors`), ``runtimes`` (ONNX Runtime and TorchScript against PyTorch eager,
:mod:`nas.bench.runtimes`), ``staircase`` (latency against one stage's width,
:mod:`nas.bench.staircase`), ``search`` (NSGA-II against random sampling,
:mod:`nas.bench.search`), ``reliability`` (SIGKILL and resume, :mod:`nas.bench.reliability`) and
``device-check`` (the prepared GPU check, :mod:`nas.bench.device_check`).

May import: every stage below it (``nas.search`` and down), ``predictors``, ``profilers``,
``search_spaces``.
"""

from nas.bench.device_check import DeviceCheckConfig, run_device_check
from nas.bench.mixer import MIXER_VARIANTS, MixerBenchConfig, run_mixer_bench
from nas.bench.predictors import PredictorBenchConfig, run_predictor_bench
from nas.bench.ranking import RankingBenchConfig, run_ranking_bench
from nas.bench.reliability import ReliabilityBenchConfig, run_reliability_bench
from nas.bench.runtimes import RuntimeBenchConfig, run_runtime_bench
from nas.bench.search import SearchBenchConfig, run_search_bench
from nas.bench.staircase import StaircaseBenchConfig, run_staircase_bench

__all__ = ["DeviceCheckConfig", "MIXER_VARIANTS", "MixerBenchConfig", "PredictorBenchConfig", "RankingBenchConfig",
           "ReliabilityBenchConfig", "RuntimeBenchConfig", "SearchBenchConfig", "StaircaseBenchConfig",
           "run_device_check", "run_mixer_bench", "run_predictor_bench", "run_ranking_bench", "run_reliability_bench",
           "run_runtime_bench", "run_search_bench", "run_staircase_bench"]
