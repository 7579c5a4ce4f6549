"""A short shapes training of Mask / Keypoint R-CNN, evaluated by tools/test_net.py: mask and
keypoint AP > 0, and the AP the tool reports is the one pycocotools computes from its result files."""

import contextlib
import io
import json
import sys
from pathlib import Path

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "evaluation"))
sys.path.insert(0, str(REPO / "tests" / "tools"))
from evaluation_fixtures import one_torch_thread, save_checkpoint, short_train, tiny_cfg  # noqa: E402
from test_test_net import load_tool  # noqa: E402

from pydetectron.evaluation.coco_eval import keypoint_sigmas  # noqa: E402

MASK = [
    "MODEL.MASK_ON", "True",
    "MRCNN.ROI_MASK_HEAD", "mask_rcnn_heads.mask_rcnn_fcn_head_v1up",
    "MRCNN.DIM_REDUCED", "64",
    "MRCNN.RESOLUTION", "14",
    "MRCNN.ROI_XFORM_RESOLUTION", "7",
    "MRCNN.ROI_XFORM_SAMPLING_RATIO", "2",
    "MRCNN.DILATION", "1",
    "MRCNN.CONV_INIT", "MSRAFill",
]  # fmt: skip
KEYPOINTS = [
    "MODEL.NUM_CLASSES", "2",
    "MODEL.KEYPOINTS_ON", "True",
    "TRAIN.DATASETS", "('keypoints_shapes_train',)",
    "TEST.DATASETS", "('keypoints_shapes_val',)",
    "KRCNN.ROI_KEYPOINTS_HEAD", "keypoint_rcnn_heads.roi_pose_head_v1convX",
    "KRCNN.NUM_KEYPOINTS", "4",
    "KRCNN.NUM_STACKED_CONVS", "2",
    "KRCNN.CONV_HEAD_DIM", "64",
    "KRCNN.UP_SCALE", "2",
    "KRCNN.HEATMAP_SIZE", "14",
    "KRCNN.ROI_XFORM_RESOLUTION", "7",
    "KRCNN.ROI_XFORM_SAMPLING_RATIO", "2",
    "KRCNN.MIN_KEYPOINT_COUNT_FOR_VALID_MINIBATCH", "0",
]  # fmt: skip


def pycocotools_ap(json_file: Path, results_file: Path, task: str) -> float:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(json_file))
        evaluator = COCOeval(gt, gt.loadRes(json.loads(results_file.read_text())), task)
        if task == "keypoints":
            evaluator.params.kpt_oks_sigmas = keypoint_sigmas(gt)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[0])


@pytest.mark.slow
@pytest.mark.parametrize(
    "dataset,options,task,result_file,steps,lr",
    [
        ("shapes", MASK, "segm", "segmentations_shapes_val_results.json", 60, 0.02),
        ("keypoints_shapes", KEYPOINTS, "keypoints", "keypoints_keypoints_shapes_val_results.json", 100, 0.01),
    ],
)
def test_short_training_gives_positive_mask_and_keypoint_ap(
    dataset, options, task, result_file, steps, lr, tmp_path_factory, tmp_path
):
    data_dir = tmp_path_factory.mktemp("data")
    with one_torch_thread():
        cfg = tiny_cfg(data_dir, ["FPN.RPN_ANCHOR_START_SIZE", "16", *options])
        model = short_train(cfg, steps=steps, lr=lr)
        ckpt = save_checkpoint(tmp_path / "trained.pth", model, cfg)
        argv = ["--dataset", dataset, "--load_ckpt", str(ckpt), "--output_dir", str(tmp_path / "test"),
                "--no_cuda", "--nw", "0", "--data_dir", str(data_dir), "--set", "TEST.SCORE_THRESH", "0.0"]  # fmt: skip
        assert load_tool().main(argv) == 0
    metrics = json.loads((tmp_path / "test" / "metrics.json").read_text())[f"{dataset}_val"]
    assert set(metrics) == {"bbox", task}
    assert metrics[task]["AP"] > 0.0
    json_file = data_dir / "shapes" / f"{dataset}_val" / "annotations.json"
    assert metrics[task]["AP"] == pytest.approx(pycocotools_ap(json_file, tmp_path / "test" / result_file, task))
