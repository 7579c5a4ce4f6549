"""Classification heads and the ImageNet-style pre-training recipe of tools/train_classifier.py."""

from .data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BatchMix,
    TarShardDataset,
    count_samples,
    expand_shards,
    read_shard,
    train_transform,
    val_transform,
)
from .engine import (
    CHECKPOINT_FORMAT,
    classifier_checkpoint,
    evaluate,
    make_ema,
    save_checkpoint,
    topk_correct,
    train_one_epoch,
)
from .model import ImageClassifier, build_classifier
from .optim import parameter_groups, warmup_cosine_factor
from .shapes_folder import write_shapes_image_folder

__all__ = [
    "CHECKPOINT_FORMAT",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BatchMix",
    "ImageClassifier",
    "TarShardDataset",
    "build_classifier",
    "classifier_checkpoint",
    "count_samples",
    "evaluate",
    "expand_shards",
    "make_ema",
    "parameter_groups",
    "read_shard",
    "save_checkpoint",
    "topk_correct",
    "train_one_epoch",
    "train_transform",
    "val_transform",
    "warmup_cosine_factor",
    "write_shapes_image_folder",
]
