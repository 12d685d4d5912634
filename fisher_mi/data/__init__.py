"""Datasets for fisher_mi: a registry of named datasets behind one ``load_dataset(spec, split)``.

Importing this package registers the bundled digit sets (``mnist``, ``digits``), the
on-disk ``folder`` loader, and the face datasets the MI literature uses, read in their own
on-disk layouts: ``celeba``, ``ffhq``, ``facescrub``, ``att``. Images are float32
``C x H x W`` tensors in [0, 1], decoded and transformed with Pillow only.
"""

from __future__ import annotations

from fisher_mi.data import (  # noqa: F401  (importing registers the datasets)
    att,
    bundled,
    celeba,
    facescrub,
    ffhq,
    folder,
)
from fisher_mi.data.datasets import ImageFileDataset, ImageTensorDataset, LabelledDataset
from fisher_mi.data.images import CentreCrop, image_to_tensor, open_image
from fisher_mi.data.labels import MAX_CLASSES
from fisher_mi.data.locate import find_shared_data, shared_data_skip_reason
from fisher_mi.data.registry import (
    DATASETS,
    SPLITS,
    DatasetEntry,
    load_dataset,
    register_dataset,
)
from fisher_mi.data.shaped import load_for

__all__ = [
    "DATASETS",
    "MAX_CLASSES",
    "SPLITS",
    "CentreCrop",
    "DatasetEntry",
    "ImageFileDataset",
    "ImageTensorDataset",
    "LabelledDataset",
    "find_shared_data",
    "image_to_tensor",
    "load_dataset",
    "load_for",
    "open_image",
    "register_dataset",
    "shared_data_skip_reason",
]
