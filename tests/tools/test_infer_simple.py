"""tools/infer_simple.py: a picture per image, changed where the detections are; merged PDFs; bad input."""

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "evaluation"))
from evaluation_fixtures import one_torch_thread, parse_pdf, save_checkpoint, tiny_cfg  # noqa: E402

from pydetectron.modeling.model_builder import build_model  # noqa: E402

BOX = (20, 30, 70, 80)  # x1, y1, x2, y2 of the confident detection
FAINT = (100, 10, 140, 40)  # a detection below --thresh


def load_tool():
    spec = importlib.util.spec_from_file_location("infer_simple_tool", REPO / "tools" / "infer_simple.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def tool():
    return load_tool()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    cfg = tiny_cfg()
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "random.pth", build_model(cfg), cfg)


class KnownPredictor:
    """Two detections (one under the threshold), a mask and keypoints, whatever the image."""

    def __init__(self, cfg, weights=None, device=None):
        self.calls = 0

    def __call__(self, image):
        h, w = image.shape[:2]
        masks = np.zeros((2, h, w), bool)
        masks[0, 40:70, 30:60] = True
        keypoints = np.zeros((2, 4, 3), np.float32)
        keypoints[0] = [[25, 35, 5], [65, 35, 5], [65, 75, 5], [45, 55, 0]]  # the last is below kp_thresh
        return SimpleNamespace(
            boxes=np.array([BOX, FAINT], np.float32), scores=np.array([0.95, 0.3], np.float32),
            classes=np.array([1, 2]), masks=masks, keypoints=keypoints,
        )  # fmt: skip


def write_inputs(folder: Path) -> dict[str, np.ndarray]:
    """Plain, grayscale, RGBA and 16-bit images; returns the BGR picture each should give."""
    folder.mkdir(parents=True, exist_ok=True)
    base = np.full((120, 160, 3), (90, 120, 150), np.uint8)
    gray = np.full((120, 160), 110, np.uint8)
    cv2.imwrite(str(folder / "plain.png"), base)
    cv2.imwrite(str(folder / "gray.png"), gray)
    cv2.imwrite(str(folder / "alpha.png"), np.concatenate([base, np.full((120, 160, 1), 50, np.uint8)], axis=2))
    cv2.imwrite(str(folder / "wide.png"), base.astype(np.uint16) * 256)
    (folder / "notes.txt").write_text("not an image, not listed")
    return {"plain": base, "gray": cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), "alpha": base, "wide": base}


def changed(a, b):
    return np.any(a != b, axis=2)


def test_pictures_change_only_where_detections_are(tool, ckpt, tmp_path, monkeypatch):
    expected = write_inputs(tmp_path / "in")
    monkeypatch.setattr(tool, "Predictor", KnownPredictor)
    out = tmp_path / "out"
    assert tool.main(["--load_ckpt", str(ckpt), "--image_dir", str(tmp_path / "in"), "--output_dir", str(out),
                      "--thresh", "0.5", "--kp_thresh", "2", "--no_cuda"]) == 0  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["alpha.png", "gray.png", "plain.png", "wide.png"]
    x1, y1, x2, y2 = BOX
    for name, source in expected.items():
        picture = cv2.imread(str(out / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        assert picture.shape == source.shape and picture.dtype == np.uint8
        diff = changed(picture, source)
        assert diff[y1, x1:x2].all() and diff[y2, x1:x2].all()  # the box outline
        assert diff[50:60, 40:50].all()  # the translucent mask
        assert diff[35, 65] and diff[75, 65]  # keypoints
        assert diff[y1 - 12 : y1, x1 : x1 + 20].any()  # the label above the box
        fx1, fy1, fx2, fy2 = FAINT
        assert not diff[fy1 + 1 : fy2, fx2 + 2 :].any()  # the faint detection is not drawn
        assert not diff[y2 + 2 :, :].any() and not diff[:, x2 + 2 : fx1].any()  # nothing elsewhere


def test_pdf_pages_and_merged_pdf(tool, ckpt, tmp_path, monkeypatch, caplog):
    write_inputs(tmp_path / "in")
    monkeypatch.setattr(tool, "Predictor", KnownPredictor)
    out = tmp_path / "out"
    images = [str(tmp_path / "in" / n) for n in ("plain.png", "missing.png", "gray.png", "notes.txt", "wide.png")]
    with caplog.at_level("WARNING"):
        assert tool.main(["--load_ckpt", str(ckpt), "--images", *images, "--output_dir", str(out),
                          "--output_ext", "pdf", "--merge_pdfs", "--no_cuda"]) == 0  # fmt: skip
    assert "2 of 5 images skipped" in caplog.text and "missing.png" in caplog.text and "notes.txt" in caplog.text
    for name in ("plain", "gray", "wide"):
        single = parse_pdf((out / f"{name}.pdf").read_bytes())
        assert len(single["pages"]) == 1
    merged = parse_pdf((out / "results.pdf").read_bytes())
    assert len(merged["pages"]) == 3 and len(merged["images"]) == 3
    page = cv2.imdecode(np.frombuffer(merged["images"][0], np.uint8), cv2.IMREAD_COLOR)
    assert page.shape == (120, 160, 3)
    assert np.abs(page[5:15, 5:15].astype(int) - [90, 120, 150]).max() < 12  # untouched corner, JPEG-close


def test_jpg_output_with_the_real_model(tool, ckpt, tmp_path):
    write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    assert tool.main(["--load_ckpt", str(ckpt), "--images", str(tmp_path / "in" / "plain.png"), "--output_dir",
                      str(out), "--output_ext", "jpg", "--thresh", "0.0", "--no_cuda"]) == 0  # fmt: skip
    picture = cv2.imread(str(out / "plain.jpg"))
    assert picture.shape == (120, 160, 3)
    assert np.abs(picture.astype(int) - [90, 120, 150]).max() > 60  # boxes were drawn


def test_outputs_never_overwrite_inputs_and_names_stay_unique(tool, tmp_path):
    inputs = [tmp_path / "a.png", tmp_path / "sub" / "a.jpg", tmp_path / "other" / "a.png", tmp_path / "b.jpg"]
    protected = {p.resolve() for p in inputs}
    taken = set()
    names = [tool.output_path(tmp_path, str(p), "png", taken, protected).name for p in inputs]
    assert names == ["a_png_det.png", "a_jpg_det.png", "a_png_det2.png", "b.png"]


def test_bad_arguments_and_all_failed(tool, ckpt, tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit):
        tool.main(["--load_ckpt", str(ckpt), "--image_dir", str(tmp_path / "nowhere")])
    assert "nowhere" in capsys.readouterr().err
    monkeypatch.setattr(tool, "Predictor", KnownPredictor)
    assert tool.main(["--load_ckpt", str(ckpt), "--images", str(tmp_path / "x.png"), "--output_dir",
                      str(tmp_path / "out"), "--no_cuda"]) == 1  # fmt: skip


def test_real_mask_model_draws_its_masks(tool, tmp_path):
    """A random tiny Mask R-CNN checkpoint: the picture is tinted inside the predicted masks."""
    sys.path.insert(0, str(REPO / "tests" / "tools"))
    from test_test_net_masks_keypoints import MASK

    from pydetectron import Predictor

    cfg = tiny_cfg(None, MASK + ["TEST.SCORE_THRESH", "0.0", "TEST.DETECTIONS_PER_IM", "3"])
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "mask.pth", build_model(cfg), cfg)
    inputs = write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    assert tool.main(["--load_ckpt", str(ckpt), "--images", str(tmp_path / "in" / "plain.png"), "--output_dir",
                      str(out), "--thresh", "0.0", "--no_cuda"]) == 0  # fmt: skip
    prediction = Predictor(cfg, str(ckpt), device="cpu")(inputs["plain"])
    assert prediction.masks is not None and prediction.masks.any()
    picture = cv2.imread(str(out / "plain.png"))
    inside = prediction.masks.any(axis=0)
    assert changed(picture, inputs["plain"])[inside].mean() > 0.9


def test_each_image_says_how_many_detections_it_drew(tool, ckpt, tmp_path, monkeypatch, caplog):
    write_inputs(tmp_path / "in")
    monkeypatch.setattr(tool, "Predictor", KnownPredictor)
    plain = str(tmp_path / "in" / "plain.png")
    with caplog.at_level("INFO"):
        assert tool.main(["--load_ckpt", str(ckpt), "--images", plain, "--output_dir", str(tmp_path / "a"),
                          "--thresh", "0.25", "--no_cuda"]) == 0  # fmt: skip
        assert tool.main(["--load_ckpt", str(ckpt), "--images", plain, "--output_dir", str(tmp_path / "b"),
                          "--thresh", "0.5", "--no_cuda"]) == 0  # fmt: skip
        assert tool.main(["--load_ckpt", str(ckpt), "--images", plain, "--output_dir", str(tmp_path / "c"),
                          "--no_cuda", "--thresh", "0.99"]) == 0  # fmt: skip
    messages = [r.getMessage() for r in caplog.records if r.name == "infer_simple" and plain in r.getMessage()]
    assert messages == [
        f"{plain}: drew 2 detections (score >= --thresh 0.25)",
        f"{plain}: drew 1 detection (score >= --thresh 0.5)",
        f"{plain}: drew nothing: no detection scored >= --thresh 0.99 (the best scored 0.950); lower --thresh to "
        "see more",
    ]
