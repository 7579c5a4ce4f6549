"""Pieces of the classifier recipe against independent references: torch's LR schedulers,
hand-computed accuracies, tar shards written here with tarfile, torch.load(weights_only)."""

import io
import tarfile

import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from pydetectron import backbones
from pydetectron.classification import (
    BatchMix,
    TarShardDataset,
    build_classifier,
    classifier_checkpoint,
    count_samples,
    expand_shards,
    parameter_groups,
    save_checkpoint,
    topk_correct,
    warmup_cosine_factor,
)


def test_schedule_equals_torch_linear_warmup_then_cosine():
    total, warmup, base = 50, 10, 0.4
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=base)
    reference = torch.optim.lr_scheduler.SequentialLR(
        optimizer,
        [
            torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=warmup),
            torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total - warmup),
        ],
        milestones=[warmup],
    )
    for step in range(total):
        assert base * warmup_cosine_factor(step, total, warmup, 0.01) == pytest.approx(
            optimizer.param_groups[0]["lr"], abs=1e-9
        ), step
        optimizer.step()
        reference.step()
    assert warmup_cosine_factor(total + 5, total, warmup) == 0.0  # stays at the end value


def test_weight_decay_skips_norms_and_biases():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=True), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    groups = parameter_groups(model, weight_decay=1e-4)
    by_decay = {}
    for group in groups:
        by_decay.setdefault(group["weight_decay"], set()).update(id(p) for p in group["params"])
    assert by_decay[1e-4] == {id(model[0].weight), id(model[3].weight)}
    assert by_decay[0.0] == {id(model[1].weight), id(model[1].bias), id(model[0].bias), id(model[3].bias)}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_topk_correct_hand_computed():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.5, 0.2, 0.3], [0.2, 0.3, 0.5]])
    labels = torch.tensor([1, 2, 0])
    # row 0: top-1 hit; row 1: label 2 is 2nd; row 2: label 0 is 3rd.
    assert topk_correct(logits, labels, (1, 2, 3)) == [1, 2, 3]


def test_batch_mix_gives_soft_targets_or_passes_through():
    images, labels = torch.rand(8, 3, 16, 16), torch.arange(8) % 4
    mixed, targets = BatchMix(4, cutmix_alpha=1.0, mixup_alpha=0.2)(images, labels)
    assert mixed.shape == images.shape and targets.shape == (8, 4)
    torch.testing.assert_close(targets.sum(dim=1), torch.ones(8))
    assert not BatchMix(4, 0.0, 0.0).enabled
    same, same_labels = BatchMix(4, 0.0, 0.0)(images, labels)
    assert same is images and same_labels is labels


def write_shard(path, samples, extension="png"):
    with tarfile.open(path, "w") as archive:
        for key, color, label in samples:
            buffer = io.BytesIO()
            Image.new("RGB", (4, 3), color).save(buffer, format="PNG" if extension == "png" else "JPEG")
            for name, data in ((f"{key}.{extension}", buffer.getvalue()), (f"{key}.cls", str(label).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))


def test_tar_shards_yield_every_sample_once(tmp_path):
    for shard in range(3):
        samples = [(f"s{shard}/{i:03d}", (10 * shard + i, 0, 0), shard) for i in range(4)]
        write_shard(tmp_path / f"train-{shard:04d}.tar", samples)
    paths = expand_shards(str(tmp_path / "train-{0000..0002}.tar"))
    assert [p.split("/")[-1] for p in paths] == ["train-0000.tar", "train-0001.tar", "train-0002.tar"]
    assert expand_shards(str(tmp_path)) == paths == expand_shards(str(tmp_path / "train-*.tar"))
    assert count_samples(paths) == 12

    def red(image):
        return image.getpixel((0, 0))[0]

    ordered = [(red(image), label) for image, label in TarShardDataset(paths)]
    assert ordered == [(10 * s + i, s) for s in range(3) for i in range(4)]
    dataset = TarShardDataset(paths, transform=red, shuffle=True, buffer_size=5, seed=1)
    dataset.set_epoch(3)
    loader = DataLoader(dataset, batch_size=None, num_workers=2)
    shuffled = [(int(value), int(label)) for value, label in loader]
    assert sorted(shuffled) == ordered and shuffled != ordered


def test_tar_shard_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="tar shards not found"):
        expand_shards(str(tmp_path / "none-{00..01}.tar"))
    path = tmp_path / "bad.tar"
    with tarfile.open(path, "w") as archive:
        info = tarfile.TarInfo("k1.cls")
        info.size = 1
        archive.addfile(info, io.BytesIO(b"3"))
    with pytest.raises(ValueError, match="sample 'k1' needs an image"):
        list(TarShardDataset([str(path)]))


def test_checkpoint_loads_weights_only_and_initialises_the_backbone(tmp_path):
    model = build_classifier("darknet_yolov5n", 3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    checkpoint = classifier_checkpoint(model, "darknet_yolov5n", ["a", "b", "c"], epoch=2, top1=0.5)
    path = tmp_path / "ckpt" / "best.pth"
    save_checkpoint(checkpoint, path)
    data = torch.load(path, weights_only=True)
    assert data["format"] == "pydetectron.classifier" and data["classes"] == ["a", "b", "c"]
    assert data["num_classes"] == 3 and data["epoch"] == 2 and data["input"]["color"] == "RGB"
    assert set(data["model"]) == {f"backbone.{k}" for k in model.backbone.state_dict()} | {"head.weight", "head.bias"}

    backbone = backbones.darknet_yolov5n(pretrained=str(path))
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(backbone.state_dict()[key], value), key
    with pytest.raises(ValueError, match="does not fit"):
        backbones.darknet_yolov5s(pretrained=str(path))
