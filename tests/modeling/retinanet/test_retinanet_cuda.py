"""RetinaNet on a GPU: targets, losses (compiled focal losses) and detections equal the CPU's."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_retinanet_configs import load, small_batch  # noqa: E402
from test_retinanet_inference import IMAGES, detectron_anchors, head_outputs  # noqa: E402

from pydetectron.modeling.model_builder import build_model  # noqa: E402
from pydetectron.modeling.retinanet import RetinaNetPostProcessor  # noqa: E402

pytestmark = pytest.mark.cuda


def test_detections_on_cuda_equal_cpu():
    post = RetinaNetPostProcessor(6, score_thresh=0.05, pre_nms_top_n=40, nms_thresh=0.5, detections_per_image=25)
    logits, deltas = head_outputs(5, 4, dtype=torch.float32)
    anchors = detectron_anchors(torch.float32)
    on_cpu = post(logits, deltas, anchors, IMAGES)
    on_gpu = post([x.cuda() for x in logits], [d.cuda() for d in deltas], [a.cuda() for a in anchors], IMAGES)
    for cpu, gpu in zip(on_cpu, on_gpu):
        assert len(cpu) == len(gpu) > 5
        assert torch.equal(cpu.classes, gpu.classes.cpu())
        torch.testing.assert_close(gpu.scores.cpu(), cpu.scores, rtol=0, atol=1e-6)
        torch.testing.assert_close(gpu.boxes.cpu(), cpu.boxes, rtol=0, atol=1e-3)


@pytest.mark.parametrize("options", [[], ["RETINANET.SOFTMAX", "True", "RETINANET.CLASS_SPECIFIC_BBOX", "True"]])
def test_training_step_on_cuda_equals_cpu(options):
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    cfg = load("shapes/retinanet_R-50-FPN_shapes.yaml", ["RESNETS.NORM", "FrozenBN", "FPN.DIM", "32"] + options)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    images, im_info, targets = small_batch(cfg.MODEL.NUM_CLASSES)
    cpu = model(images, im_info, targets)
    gpu = model.cuda()(images.cuda(), im_info.cuda(), [t.to("cuda") for t in targets])
    for key in ("retnet_fg_num", "retnet_bg_num"):
        assert gpu[key].item() == cpu[key].item()
    for key in ("loss_retnet_cls", "loss_retnet_bbox"):
        torch.testing.assert_close(gpu[key].cpu(), cpu[key], rtol=1e-4, atol=1e-6)
    (gpu["loss_retnet_cls"] + gpu["loss_retnet_bbox"]).backward()
    assert torch.isfinite(model.head.cls_logits.weight.grad).all()
