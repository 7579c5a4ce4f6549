"""Predictor: same inputs and outputs as the test loader + model, image conversions, bad input."""

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluation"))
from evaluation_fixtures import one_torch_thread, tiny_cfg  # noqa: E402

from pydetectron.data import build_test_dataset, build_test_loader, compute_scale, ensure_shapes_dataset  # noqa: E402
from pydetectron.data.transforms import ImageReadError  # noqa: E402
from pydetectron.engine.predictor import Predictor, as_bgr_uint8, load_image  # noqa: E402
from pydetectron.modeling.model_builder import build_model  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    ensure_shapes_dataset(root / "shapes", split="val", num_images=3)
    return root


@pytest.fixture(scope="module")
def cfg(data_dir):
    return tiny_cfg(data_dir)


@pytest.fixture(scope="module")
def state(cfg):
    torch.manual_seed(0)
    return build_model(cfg).state_dict()


@pytest.fixture(scope="module")
def predictor(cfg, state):
    return Predictor(cfg, {"model": state}, device="cpu")


def random_image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_matches_test_loader_and_model_in_original_pixels(cfg, state, predictor):
    """Reference: the dataset's test loader batch through the model, with the roidb's sizes."""
    roidb = build_test_dataset(cfg, "shapes_val")
    model = build_model(cfg)
    model.load_state_dict(state)
    model.eval()
    loader = build_test_loader(cfg, roidb, num_workers=0)
    for index, batch in enumerate(loader):
        entry = roidb.entry(index, with_segms=False)
        with torch.no_grad():
            expected = model(batch["data"], batch["im_info"], original_sizes=[(entry["height"], entry["width"])])[0]
        got = predictor(roidb.image_path(index))
        assert got.image_size == (entry["height"], entry["width"])
        assert len(got) == len(expected.scores) > 0
        np.testing.assert_allclose(got.boxes, expected.boxes.numpy(), rtol=0, atol=1e-4)
        np.testing.assert_allclose(got.scores, expected.scores.numpy(), rtol=0, atol=1e-6)
        np.testing.assert_array_equal(got.classes, expected.classes.numpy())


def test_outputs_are_shaped_sorted_and_inside_the_image(cfg, predictor):
    image = random_image(150, 260)
    out = predictor(image)
    n = len(out)
    assert 0 < n <= cfg.TEST.DETECTIONS_PER_IM
    assert out.boxes.shape == (n, 4) and out.boxes.dtype == np.float32
    assert out.scores.shape == (n,) and out.classes.shape == (n,) and out.classes.dtype == np.int64
    assert out.masks is None and out.keypoints is None
    assert np.all(np.diff(out.scores) <= 0)
    assert np.all((out.classes >= 1) & (out.classes < cfg.MODEL.NUM_CLASSES))
    # Detectron's +1 convention: clipped to [0, W - 1] x [0, H - 1] of the original image
    assert out.boxes[:, [0, 2]].min() >= 0 and out.boxes[:, [0, 2]].max() <= 259
    assert out.boxes[:, [1, 3]].min() >= 0 and out.boxes[:, [1, 3]].max() <= 149
    assert np.all(out.boxes[:, 2] >= out.boxes[:, 0]) and np.all(out.boxes[:, 3] >= out.boxes[:, 1])
    # the network input follows TEST.SCALE / TEST.MAX_SIZE and FPN's padding
    prepared = predictor.transform(image)
    scale = compute_scale(150, 260, cfg.TEST.SCALE, cfg.TEST.MAX_SIZE)
    assert scale == pytest.approx(192 / 260)  # 260 * 128 / 150 > 192: the long side caps it
    assert prepared.im_info.tolist() == pytest.approx([round(150 * scale), round(260 * scale), scale])
    data, _ = predictor.transform.batch([prepared])
    assert data.shape[2] % 32 == 0 and data.shape[3] % 32 == 0


def test_batch_equals_one_by_one(predictor):
    images = [random_image(128, 160, seed) for seed in (1, 2, 3)]
    batched = predictor.batch(images, batch_size=2)
    assert isinstance(predictor(images), list)
    for image, got in zip(images, batched):
        single = predictor(image)
        np.testing.assert_allclose(got.boxes, single.boxes, atol=1e-3)
        np.testing.assert_allclose(got.scores, single.scores, atol=1e-5)
        np.testing.assert_array_equal(got.classes, single.classes)


def test_gray_bgra_and_16_bit_images_are_converted(predictor):
    bgr = random_image(120, 140)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    bgra = np.concatenate([bgr, np.full((120, 140, 1), 7, np.uint8)], axis=2)
    wide = bgr.astype(np.uint16) * 256 + 100  # the low byte is dropped
    assert np.array_equal(as_bgr_uint8(gray), np.repeat(gray[:, :, None], 3, axis=2))
    assert np.array_equal(as_bgr_uint8(gray[:, :, None]), as_bgr_uint8(gray))
    assert np.array_equal(as_bgr_uint8(bgra), bgr)
    assert np.array_equal(as_bgr_uint8(wide), bgr)
    reference = predictor(bgr)
    for variant in (bgra, wide):
        got = predictor(variant)
        np.testing.assert_array_equal(got.boxes, reference.boxes)
        np.testing.assert_array_equal(got.scores, reference.scores)
    gray_out = predictor(gray)
    np.testing.assert_array_equal(gray_out.scores, predictor(as_bgr_uint8(gray)).scores)


def test_image_files_of_every_kind_are_read(tmp_path):
    bgr = random_image(40, 50)
    cv2.imwrite(str(tmp_path / "gray.png"), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(tmp_path / "alpha.png"), np.concatenate([bgr, np.zeros((40, 50, 1), np.uint8)], axis=2))
    cv2.imwrite(str(tmp_path / "wide.png"), bgr.astype(np.uint16) * 256)
    assert load_image(tmp_path / "gray.png").shape == (40, 50, 3)
    assert np.array_equal(load_image(tmp_path / "alpha.png"), bgr)
    assert np.array_equal(load_image(tmp_path / "wide.png"), bgr)


def test_huge_image_is_shrunk_before_conversion_and_mapped_back(predictor):
    huge = cv2.resize(random_image(100, 150), (3000, 2000), interpolation=cv2.INTER_NEAREST)
    prepared = predictor.transform(huge)
    # the float input is network-sized; the source is at most twice that
    assert prepared.tensor.shape[1:] == (128, 192)
    assert prepared.source_size == (256, 384) and prepared.original_size == (2000, 3000)
    assert prepared.box_ratio == pytest.approx((3000 / 384, 2000 / 256))
    out = predictor(huge)
    assert out.image_size == (2000, 3000) and len(out) > 0
    assert out.boxes[:, [0, 2]].max() <= 3000 and out.boxes[:, [1, 3]].max() <= 2000
    assert out.boxes[:, [0, 2]].max() > 384  # original pixels, not the shrunk image's


def test_bad_images_are_reported_by_name(tmp_path, predictor):
    with pytest.raises(ImageReadError, match="missing.jpg.*not found"):
        predictor(str(tmp_path / "missing.jpg"))
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    with pytest.raises(ImageReadError, match="corrupt.jpg"):
        predictor(corrupt)
    with pytest.raises(ValueError, match="image 1: expected uint8 or uint16 pixels, got float32"):
        predictor.batch([random_image(20, 20), np.zeros((20, 20, 3), np.float32)])
    with pytest.raises(ValueError, match="image 0: expected HxW, HxWx3 or HxWx4 pixels"):
        predictor(np.zeros((20, 20, 2), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        predictor(np.zeros((0, 20, 3), np.uint8))


def test_weights_by_path_and_by_state_dict_agree(tmp_path, cfg, state, predictor):
    path = tmp_path / "model.pth"
    torch.save({"model": state, "cfg": cfg.dump()}, path)
    from_path = Predictor(cfg, path, device="cpu")
    image = random_image(128, 128, 5)
    np.testing.assert_array_equal(from_path(image).scores, predictor(image).scores)
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        Predictor(cfg, tmp_path / "nothere.pth", device="cpu")


def test_missing_gpu_is_a_clear_error(cfg):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        Predictor(cfg, device="cuda")


@pytest.mark.cuda
def test_gpu_and_cpu_agree(cfg, state, predictor):
    gpu = Predictor(cfg, {"model": state}, device="cuda")
    image = random_image(128, 160, 9)
    a, b = gpu(image), predictor(image)
    keep = min(len(a), len(b), 10)
    np.testing.assert_allclose(a.scores[:keep], b.scores[:keep], atol=1e-3)
    np.testing.assert_allclose(a.boxes[:keep], b.boxes[:keep], atol=0.5)
