"""Which device a predictor speaks for: fingerprints compared, another device refused.

A predictor keeps the fingerprint of the device its table was measured on — a plain dict of
identity fields, as ``profilers.fingerprint.DeviceFingerprint.to_dict()`` gives (this package does
not import ``profilers``). Fingerprints are compared field by field (:func:`fingerprint_diffs`);
:class:`DeviceMismatch` is raised where a predictor would be used for, or scored on, another
device; :func:`check_table_device` checks the rows of a profile table.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

__all__ = ["DeviceMismatch", "check_fingerprint_arg", "check_table_device", "describe_fingerprint",
           "fingerprint_diffs"]


class DeviceMismatch(ValueError):
    """A predictor is being used for a device other than the one it was fitted on."""


# Identity fields a fingerprint leaves out at their default (a torch-eager measurement's runtime).
_IMPLIED = {"runtime": "torch"}


def fingerprint_diffs(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """``field: A != B`` for every identity field where ``a`` and ``b`` differ, sorted by field (a
    field left out counts as its default: no ``runtime`` is torch eager)."""
    def get(fp: dict[str, Any], k: str) -> Any:
        return fp.get(k, _IMPLIED.get(k))

    return [f"{k}: {get(a, k)!r} != {get(b, k)!r}" for k in sorted(set(a) | set(b)) if get(a, k) != get(b, k)]


def describe_fingerprint(fp: dict[str, Any]) -> str:
    """A target in words: ``KIND NAME`` and, where known, the runtime and thread count
    (``cpu NAME, onnxruntime 1.32.0, 1 thread``; a fingerprint without a runtime is torch eager's)."""
    runtime = " ".join(str(v) for v in (fp.get("runtime", "torch"), fp.get("runtime_version")) if v)
    threads = fp.get("threads")
    parts = [f"{fp.get('kind', '?')} {fp.get('name', '?')}", runtime]
    if threads:
        parts.append(f"{threads} thread{'s' if threads != 1 else ''}")
    return ", ".join(parts)


def check_fingerprint_arg(fingerprint: object) -> dict[str, Any]:
    """``fingerprint`` as given to :meth:`Predictor.check_device` / ``load``: a dict of identity fields."""
    if not isinstance(fingerprint, dict):
        hint = " (pass fingerprint.to_dict())" if callable(getattr(fingerprint, "to_dict", None)) else ""
        raise TypeError(f"fingerprint must be a dict of the device's identity fields, as DeviceFingerprint.to_dict() "
                        f"gives, got {type(fingerprint).__name__} {fingerprint!r}{hint}")
    return fingerprint


def check_table_device(fingerprint: dict[str, Any], table: pd.DataFrame, *, what: str, target: str) -> None:
    """Refuse (:class:`DeviceMismatch`) a profile table whose rows are not all of the device
    ``fingerprint`` of a ``target`` predictor; ``what`` names the table's use in messages."""
    ids = sorted(table["fingerprint_id"].astype(str).unique())
    texts = table["fingerprint"].astype(str).unique()
    fps = []
    for text in texts:
        try:
            fp = json.loads(text)
        except ValueError:
            fp = None
        if not isinstance(fp, dict):
            raise ValueError(f"{what}: column fingerprint must hold the device's fingerprint as a JSON object "
                             f"(as `nas profile` writes it), got {text[:60]!r}")
        if fp not in fps:
            fps.append(fp)
    if len(fps) > 1:
        raise DeviceMismatch(f"{what}: the table holds rows of {len(fps)} devices (fingerprint_id {ids}); this "
                             f"{target} predictor is for {describe_fingerprint(fingerprint)}: select that "
                             f"device's rows first")
    diffs = fingerprint_diffs(fingerprint, fps[0])
    if diffs:
        raise DeviceMismatch(
            f"{what}: this {target} predictor was fitted on {describe_fingerprint(fingerprint)}, but the "
            f"table was measured on {describe_fingerprint(fps[0])} (fingerprint_id {', '.join(ids)}); differing: "
            f"{'; '.join(diffs)}. Use a table measured on the predictor's device, or pass force=True to use "
            f"this one anyway")
