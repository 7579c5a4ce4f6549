"""Classifier data: the recipe's transforms, ImageFolder, WebDataset-style tar shards, batch mixing.

WebDataset shards are plain tar files in which the files of one sample share a key
(`<key>.jpg` or `.png` / `.jpeg` / `.webp`, and `<key>.cls` holding the class index as
text), stored next to each other as webdataset's writer does. They are read with the
standard library's tarfile; no webdataset package is needed.
"""

from __future__ import annotations

import glob
import io
import os
import random
import re
import tarfile
from collections.abc import Callable, Iterator

import torch
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T

# ImageNet statistics for RGB images scaled to [0, 1] (the torchvision convention).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")


def train_transform(
    crop_size: int, trivial_augment: bool = True, random_erasing: float = 0.0, min_crop_scale: float = 0.08
) -> Callable:
    """RandomResizedCrop, flip, TrivialAugmentWide, normalise, RandomErasing (torchvision's recipe).

    `min_crop_scale` is the smallest crop area (fraction of the image) RandomResizedCrop takes.
    """
    steps: list = [
        T.RandomResizedCrop(
            crop_size, scale=(min_crop_scale, 1.0), interpolation=InterpolationMode.BILINEAR, antialias=True
        ),
        T.RandomHorizontalFlip(),
    ]
    if trivial_augment:
        steps.append(T.TrivialAugmentWide(interpolation=InterpolationMode.BILINEAR))
    steps += [T.PILToTensor(), T.ToDtype(torch.float32, scale=True), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if random_erasing > 0:
        steps.append(T.RandomErasing(p=random_erasing, value="random"))
    return T.Compose(steps)


def val_transform(resize_size: int, crop_size: int) -> Callable:
    """Resize the short side to `resize_size`, centre crop `crop_size`, normalise."""
    return T.Compose(
        [
            T.Resize(resize_size, interpolation=InterpolationMode.BILINEAR, antialias=True),
            T.CenterCrop(crop_size),
            T.PILToTensor(),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


class BatchMix:
    """CutMix or MixUp on a batch, one of them chosen at random per batch (never both).

    Returns the mixed images and soft targets [N, num_classes]; with both alphas 0 the
    batch is returned unchanged with its integer labels.
    """

    def __init__(self, num_classes: int, cutmix_alpha: float = 1.0, mixup_alpha: float = 0.2):
        choices = []
        if cutmix_alpha > 0:
            choices.append(T.CutMix(alpha=cutmix_alpha, num_classes=num_classes))
        if mixup_alpha > 0:
            choices.append(T.MixUp(alpha=mixup_alpha, num_classes=num_classes))
        self.mix = T.RandomChoice(choices) if choices else None

    @property
    def enabled(self) -> bool:
        return self.mix is not None

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mix is None:
            return images, labels
        return self.mix(images, labels)


def expand_shards(spec: str) -> list[str]:
    """Shard paths from a spec: comma-separated items, each a folder (its *.tar), a glob, or a
    brace range as webdataset writes them (`train-{000000..000146}.tar`)."""
    paths: list[str] = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        match = re.search(r"\{(\d+)\.\.(\d+)\}", item)
        if match:
            first, last = match.groups()
            width = len(first)
            for number in range(int(first), int(last) + 1):
                paths += expand_shards(item[: match.start()] + f"{number:0{width}d}" + item[match.end() :])
        elif os.path.isdir(item):
            paths += sorted(glob.glob(os.path.join(item, "*.tar")))
        elif any(c in item for c in "*?["):
            paths += sorted(glob.glob(item))
        else:
            paths.append(item)
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"tar shards not found: {missing[:5]} (from {spec!r})")
    if not paths:
        raise FileNotFoundError(f"no tar shards in {spec!r}")
    return paths


def _split_name(name: str) -> tuple[str, str]:
    """webdataset's split: the key is the path up to the first dot of the file name."""
    folder, base = os.path.split(name)
    stem, dot, extension = base.partition(".")
    return os.path.join(folder, stem), extension.lower() if dot else ""


def read_shard(path: str) -> Iterator[tuple[str, bytes, int]]:
    """(key, image bytes, label) of each complete sample of one tar shard, in file order."""
    key, files = None, {}

    def finish():
        image = next((files[e] for e in IMAGE_EXTENSIONS if e in files), None)
        if image is None or "cls" not in files:
            raise ValueError(f"{path}: sample {key!r} needs an image ({'/'.join(IMAGE_EXTENSIONS)}) and a .cls")
        try:
            label = int(files["cls"].decode().strip())
        except ValueError as error:
            raise ValueError(f"{path}: {key}.cls is not an integer class index") from error
        return key, image, label

    with tarfile.open(path, mode="r|*") as archive:
        for member in archive:
            if not member.isfile():
                continue
            member_key, extension = _split_name(member.name)
            if member_key != key:
                if key is not None:
                    yield finish()
                key, files = member_key, {}
            files[extension] = archive.extractfile(member).read()
    if key is not None:
        yield finish()


def count_samples(paths: list[str]) -> int:
    """Number of `.cls` entries in the shards (reads tar headers only)."""
    total = 0
    for path in paths:
        with tarfile.open(path, mode="r:*") as archive:
            total += sum(1 for name in archive.getnames() if name.endswith(".cls"))
    return total


class TarShardDataset(IterableDataset):
    """(image, label) samples streamed from WebDataset-style tar shards.

    Each DataLoader worker reads its own share of the shards. With `shuffle`, the shard
    order changes every epoch (`set_epoch`) and samples pass through a shuffle buffer of
    `buffer_size`.
    """

    def __init__(
        self,
        shards: str | list[str],
        transform: Callable | None = None,
        shuffle: bool = False,
        buffer_size: int = 1000,
        seed: int = 0,
    ):
        self.shards = expand_shards(shards) if isinstance(shards, str) else list(shards)
        self.transform = transform
        self.shuffle = shuffle
        self.buffer_size = buffer_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _decode(self, sample: tuple[str, bytes, int]):
        key, data, label = sample
        try:
            image = Image.open(io.BytesIO(data)).convert("RGB")
        except Exception as error:
            raise ValueError(f"tar sample {key!r}: image cannot be decoded ({error})") from error
        return (self.transform(image) if self.transform else image), label

    def __iter__(self):
        worker = get_worker_info()
        worker_id, workers = (worker.id, worker.num_workers) if worker else (0, 1)
        rng = random.Random(hash((self.seed, self.epoch, worker_id)))
        shards = list(self.shards)
        if self.shuffle:
            random.Random(hash((self.seed, self.epoch))).shuffle(shards)
        samples = (s for shard in shards[worker_id::workers] for s in read_shard(shard))
        if not self.shuffle:
            yield from map(self._decode, samples)
            return
        buffer = []
        for sample in samples:
            if len(buffer) < self.buffer_size:
                buffer.append(sample)
                continue
            index = rng.randrange(len(buffer))
            buffer[index], sample = sample, buffer[index]
            yield self._decode(sample)
        rng.shuffle(buffer)
        yield from map(self._decode, buffer)
