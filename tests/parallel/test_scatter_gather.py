"""Per-device re-padding, scattering and gathering of the variable-size DataParallel (CPU devices)."""

import pytest
import torch

from pydetectron.parallel import (
    VariableSizeDataParallel,
    all_reduce_mean,
    chunk_sizes,
    gather_outputs,
    scatter_minibatch,
    split_padded_batch,
    unwrap_model,
)

SIZES = [(40, 56), (64, 30), (20, 20), (33, 70), (50, 50)]  # (h, w) of each image


def padded_batch(stride=0):
    """Random images and, independently of the code under test, their padded batch."""
    g = torch.Generator().manual_seed(0)
    images = [torch.randn(3, h, w, generator=g) for h, w in SIZES]
    height = max(h for h, _ in SIZES)
    width = max(w for _, w in SIZES)
    batch = torch.zeros(len(images), 3, height, width)
    for i, image in enumerate(images):
        batch[i, :, : image.shape[1], : image.shape[2]] = image
    im_info = torch.tensor([[h, w, 1.5] for h, w in SIZES], dtype=torch.float32)
    return images, batch, im_info


def test_chunk_sizes():
    assert chunk_sizes(5, 2) == [3, 2]
    assert chunk_sizes(8, 4) == [2, 2, 2, 2]
    assert chunk_sizes(2, 4) == [1, 1]  # never an empty chunk
    with pytest.raises(ValueError):
        chunk_sizes(0, 2)


@pytest.mark.parametrize("stride", [0, 32])
def test_each_chunk_is_padded_to_its_own_images(stride):
    images, batch, im_info = padded_batch()
    chunks = split_padded_batch(batch, im_info, [3, 2], size_divisibility=stride)

    def round_up(x):
        return -(-x // stride) * stride if stride else x

    for chunk, group in zip(chunks, (images[:3], images[3:])):
        height = round_up(max(im.shape[1] for im in group))
        width = round_up(max(im.shape[2] for im in group))
        assert chunk.shape == (len(group), 3, height, width)
        for padded, image in zip(chunk, group):
            assert torch.equal(padded[:, : image.shape[1], : image.shape[2]], image)
            outside = padded.clone()
            outside[:, : image.shape[1], : image.shape[2]] = 0
            assert not outside.any()  # zeros elsewhere
    # the first chunk's images are at most 64 x 56, smaller than the 64 x 70 of the whole batch
    if not stride:
        assert chunks[0].shape[-2:] == (64, 56) and chunks[1].shape[-2:] == (50, 70)


def test_scatter_keeps_cpu_keywords_and_splits_per_image_inputs():
    _, batch, im_info = padded_batch()
    targets = [{"boxes": torch.full((i + 1, 4), float(i)), "gt_classes": torch.ones(i + 1, dtype=torch.long)}
               for i in range(len(SIZES))]
    inputs = {"images": batch, "im_info": im_info, "targets": targets, "original_sizes": None}
    scattered = scatter_minibatch(inputs, ["cpu", "cpu"], cpu_keywords=("im_info",))
    assert [c["images"].shape[0] for c in scattered] == [3, 2]
    assert torch.equal(scattered[1]["im_info"], im_info[3:])
    assert [float(t["boxes"][0, 0]) for t in scattered[1]["targets"]] == [3.0, 4.0]
    assert scattered[0]["original_sizes"] is None


def test_gather_weights_scalar_losses_by_images_and_concatenates_the_rest():
    outputs = [
        {"loss_cls": torch.tensor(1.0), "scores": torch.ones(2)},
        {"loss_cls": torch.tensor(4.0), "scores": torch.zeros(1)},
    ]
    merged = gather_outputs(outputs, "cpu", weights=[3, 1])
    assert float(merged["loss_cls"]) == pytest.approx((3 * 1.0 + 1 * 4.0) / 4)
    assert merged["scores"].tolist() == [1.0, 1.0, 0.0]
    assert gather_outputs([["a", "b"], ["c"]], "cpu", [2, 1]) == ["a", "b", "c"]


def test_gathered_loss_of_per_image_means_equals_the_whole_batch_loss():
    images, batch, im_info = padded_batch()
    model = torch.nn.Conv2d(3, 1, 1)

    def per_image_mean_loss(chunk, info):
        values = [model(im[None, :, : int(h), : int(w)]).mean() for im, (h, w, _) in zip(chunk, info.tolist())]
        return {"loss": torch.stack(values).mean()}

    scattered = scatter_minibatch({"images": batch, "im_info": im_info}, ["cpu", "cpu"])
    outputs = [per_image_mean_loss(c["images"], c["im_info"]) for c in scattered]
    merged = gather_outputs(outputs, "cpu", weights=[3, 2])
    whole = per_image_mean_loss(batch, im_info)
    torch.testing.assert_close(merged["loss"], whole["loss"])


def test_bad_inputs_are_named():
    _, batch, im_info = padded_batch()
    with pytest.raises(ValueError, match="do not add up"):
        split_padded_batch(batch, im_info, [2, 2])
    bad_info = im_info.clone()
    bad_info[0, 0] = 500
    with pytest.raises(ValueError, match="does not fit"):
        split_padded_batch(batch, bad_info, [5])


def test_helpers_without_a_process_group():
    values = torch.tensor([1.0, float("nan")])
    assert all_reduce_mean(values) is values
    module = torch.nn.Linear(2, 2)
    assert unwrap_model(torch.nn.DataParallel(module)) is module
    assert unwrap_model(module) is module


def test_data_parallel_needs_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="CUDA device"):
        VariableSizeDataParallel(torch.nn.Linear(2, 2))


@pytest.mark.cuda
def test_data_parallel_on_gpus_matches_the_module():
    if torch.cuda.device_count() < 2:
        pytest.skip("needs 2 GPUs")
    _, batch, im_info = padded_batch()
    model = torch.nn.Conv2d(3, 1, 1).cuda()

    class PerImageLoss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = model

        def forward(self, images, im_info, targets=None, original_sizes=None):
            sizes = [(int(h), int(w)) for h, w, _ in im_info.tolist()]
            values = [self.conv(im[None, :, :h, :w]).mean() for im, (h, w) in zip(images, sizes)]
            return {"loss": torch.stack(values).mean()}

    wrapped = VariableSizeDataParallel(PerImageLoss(), device_ids=[0, 1])
    merged = wrapped(batch, im_info)
    whole = PerImageLoss()(batch.cuda(), im_info)
    torch.testing.assert_close(merged["loss"], whole["loss"])
    merged["loss"].backward()
    assert model.weight.grad is not None
