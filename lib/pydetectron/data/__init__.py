"""Datasets and data loading: catalog, COCO json -> roidb, shapes, minibatches, samplers."""

from pydetectron.data.build import (
    build_test_dataset,
    build_test_loader,
    build_train_loader,
    build_train_roidb,
)
from pydetectron.data.catalog import (
    SHORT_NAMES,
    dataset_names,
    register_dataset,
    register_dataset_from_string,
    register_datasets_from_yaml,
    resolve_dataset,
    short_name,
)
from pydetectron.data.coco_json import DatasetFormatError, parse_coco_json
from pydetectron.data.dataset_info import DatasetInfo
from pydetectron.data.json_dataset import load_coco_roidb
from pydetectron.data.loader import TrainLoader
from pydetectron.data.minibatch import RoidbDataset, SampleKey, collate_minibatch
from pydetectron.data.roidb import Roidb
from pydetectron.data.samplers import GroupedBatchSampler, InferenceSampler
from pydetectron.data.shapes import ensure_shapes_dataset, write_shapes_dataset
from pydetectron.data.training_roidb import combined_roidb_for_training, filter_for_training
from pydetectron.data.transforms import (
    ImageReadError,
    compute_scale,
    images_to_batch,
    prepare_image,
    read_image,
)

__all__ = [
    "SHORT_NAMES",
    "DatasetFormatError",
    "DatasetInfo",
    "GroupedBatchSampler",
    "ImageReadError",
    "InferenceSampler",
    "Roidb",
    "RoidbDataset",
    "SampleKey",
    "TrainLoader",
    "build_test_dataset",
    "build_test_loader",
    "build_train_loader",
    "build_train_roidb",
    "collate_minibatch",
    "combined_roidb_for_training",
    "compute_scale",
    "dataset_names",
    "ensure_shapes_dataset",
    "filter_for_training",
    "images_to_batch",
    "load_coco_roidb",
    "parse_coco_json",
    "prepare_image",
    "read_image",
    "register_dataset",
    "register_dataset_from_string",
    "register_datasets_from_yaml",
    "resolve_dataset",
    "short_name",
    "write_shapes_dataset",
]
