"""Stage *profiling*: profile tables measured on the target device, and predictors fitted on them.

Owns ``nas profile`` — :func:`collect_profiles` (spread and adaptive sampling, passes, the
interleaved reference architecture, resumable CSV table and per-op / per-kernel records;
:mod:`nas.profiling.collect`, :mod:`~nas.profiling.adaptive`, :mod:`~nas.profiling.measure`,
:mod:`~nas.profiling.config`) — and ``nas predictors fit``: selecting a table's rows and fitting
and saving one predictor per target (:mod:`nas.profiling.fit`) — and the machine's speed now, at
which predictions are stated (:func:`read_speed`, :mod:`nas.profiling.speed`).

May import: ``nas.rundir``, ``predictors``, ``profilers``, ``search_spaces``.
"""

from nas.profiling.collect import collect_profiles, records_path
from nas.profiling.config import ProfileRunConfig
from nas.profiling.fit import DEFAULT_TARGETS, artifact_dirs, fit_predictors, select_rows
from nas.profiling.measure import PAIRED_LATENCY, deploy_reference, measure_arch, reference_arch
from nas.profiling.speed import SpeedReading, read_speed

__all__ = ["DEFAULT_TARGETS", "PAIRED_LATENCY", "ProfileRunConfig", "SpeedReading", "artifact_dirs",
           "collect_profiles", "deploy_reference", "fit_predictors", "measure_arch", "read_speed", "records_path",
           "reference_arch", "select_rows"]
