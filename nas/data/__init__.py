"""Stage *data*: the datasets the workbench trains and scores on, and their augmentation.

Owns :class:`DatasetSplits` (train/val/test tensors, input shape, classes, how raw pixels become
the input), the :class:`DatasetSource` registry :data:`DATASETS` — ``digits`` (embedded),
``cifar10`` (python batches read from ``--data-dir`` through a data-only unpickler),
``synthetic`` — with :func:`load_dataset`, and batch augmentation (:mod:`nas.data.augment`).

May import: torch, numpy, scikit-learn, Pillow, the standard library and ``search_spaces`` (to fit
a space template to a dataset, :mod:`nas.data.task`); nothing else of ``nas``.
"""

from nas.data.augment import AUGMENTATIONS, augment_batch

# The sources register themselves on import; DATASETS is their only list.
from nas.data.cifar10 import CIFAR10_CLASSES, CIFAR10_FILES, CIFAR10_TRAIN_FILES, Cifar10Source
from nas.data.cluttered import ClutteredDigitsSource
from nas.data.csvfile import CsvSource
from nas.data.digits import DigitsSource
from nas.data.elpv import ElpvSource
from nas.data.imagefolder import ImageFolderSource
from nas.data.npz import NpzSource
from nas.data.options import DataOptions, check_data_options
from nas.data.source import DATASETS, DatasetSource, dataset_names, default_dataset, load_dataset, register_dataset
from nas.data.splits import DatasetSplits
from nas.data.synthetic import SyntheticSource

__all__ = [
    "AUGMENTATIONS", "CIFAR10_CLASSES", "CIFAR10_FILES", "CIFAR10_TRAIN_FILES", "DATASETS", "Cifar10Source",
    "ClutteredDigitsSource", "CsvSource", "DataOptions", "DatasetSource", "DatasetSplits", "DigitsSource", "ElpvSource",
    "ImageFolderSource", "NpzSource", "SyntheticSource", "augment_batch", "check_data_options", "dataset_names",
    "default_dataset", "load_dataset", "register_dataset",
]
