"""Stage *profiling*: profile tables measured on the target device, and predictors fitted on them.

Owns ``nas profile`` — :func:`collect_profiles` (spread and adaptive sampling, passes, the
interleaved reference architecture, resumable CSV table and per-op / per-kernel records;
:mod:`nas.profiling.collect`, :mod:`~nas.profiling.adaptive`, :mod:`~nas.profiling.measure`,
:mod:`~nas.profiling.config`) — and ``nas predictors fit``: selecting a table's rows and fitting
and saving one predictor per target (:mod:`nas.profiling.fit`).

May import: ``nas.rundir``, ``predictors``, ``profilers``, ``search_spaces``.
"""

from nas.profiling.collect import collect_profiles, records_path
from nas.profiling.config import ProfileRunConfig
from nas.profiling.fit import DEFAULT_TARGETS, artifact_dirs, fit_predictors, select_rows
from nas.profiling.measure import PAIRED_LATENCY, measure_arch, reference_arch

__all__ = ["DEFAULT_TARGETS", "PAIRED_LATENCY", "ProfileRunConfig", "artifact_dirs", "collect_profiles",
           "fit_predictors", "measure_arch", "records_path", "reference_arch", "select_rows"]
