"""Stage *export*: chosen architectures as stand-alone model directories, and loading them back.

Owns the export formats registry (:mod:`nas.export.formats`: safetensors, TorchScript, ONNX),
the model card (:mod:`nas.export.card`), writing an export directory atomically
(:func:`export_model`, :mod:`nas.export.model`), loading one and checking the ONNX file
(:func:`load_model`, :func:`check_onnx`, :mod:`nas.export.load`) and ``nas export``: one
architecture of a search run with the run's supernet weights (:func:`export_from_run`,
:mod:`nas.export.from_run`).

May import: ``nas.data``, ``nas.train`` (the supernet), ``nas.rundir``, ``search_spaces``, torch,
safetensors, onnx / onnxruntime (lazily).
"""

from nas.export.card import CARD_FIELDS, card_record, render_model_card
from nas.export.formats import FORMATS, ExportFormat, export_formats, parse_formats, register_format
from nas.export.from_run import export_from_run
from nas.export.load import check_onnx, load_model
from nas.export.model import check_out_dir, export_files, export_model, load_arch_json

__all__ = ["CARD_FIELDS", "FORMATS", "ExportFormat", "card_record", "check_onnx", "check_out_dir", "export_files",
           "export_formats", "export_from_run", "export_model", "load_arch_json", "load_model", "parse_formats",
           "register_format", "render_model_card"]
