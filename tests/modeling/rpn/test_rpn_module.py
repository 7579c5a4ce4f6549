"""The RPN module: built from the config, trains and infers on random features, matches torchvision."""

import pytest
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator as TVAnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork
from torchvision.models.detection.rpn import RPNHead as TVRPNHead

from pydetectron.config import get_cfg
from pydetectron.modeling.rpn import RPN, FPNRPNHead, SingleScaleRPNHead


def _gt(generator_seed: int, count: int, width: float, height: float) -> torch.Tensor:
    gen = torch.Generator().manual_seed(generator_seed)
    xy = torch.rand(count, 2, generator=gen) * torch.tensor([width * 0.6, height * 0.6])
    wh = 12 + torch.rand(count, 2, generator=gen) * 40
    return torch.cat([xy, torch.minimum(xy + wh, torch.tensor([width - 1, height - 1]))], dim=1)


def _small_cfg(fpn: bool):
    cfg = get_cfg()
    cfg.FPN.FPN_ON = fpn
    cfg.FPN.MULTILEVEL_RPN = fpn
    for mode in (cfg.TRAIN, cfg.TEST):
        mode.RPN_PRE_NMS_TOP_N = 200
        mode.RPN_POST_NMS_TOP_N = 50
    cfg.TRAIN.RPN_BATCH_SIZE_PER_IM = 64
    return cfg


def test_single_scale_rpn_trains_and_infers():
    torch.manual_seed(0)
    rpn = RPN.from_cfg(_small_cfg(fpn=False), in_channels=32, strides=[16])
    assert isinstance(rpn.head, SingleScaleRPNHead) and rpn.head.num_anchors == 12
    features = [torch.randn(2, 32, 8, 10)]
    im_info = torch.tensor([[128.0, 160.0, 1.0], [120.0, 150.0, 0.8]])
    gt = [_gt(1, 3, 160, 128), _gt(2, 2, 150, 120)]
    rpn.train()
    proposals, scores, losses = rpn(features, im_info, gt, [torch.zeros(3), torch.tensor([0, 1])])
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_bbox"}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    (losses["loss_rpn_cls"] + losses["loss_rpn_bbox"]).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in rpn.head.parameters())
    assert len(proposals) == len(scores) == 2 and all(0 < p.shape[0] <= 50 for p in proposals)

    rpn.eval()
    with torch.no_grad():
        proposals, scores, losses = rpn(features, im_info)
    assert losses == {}
    for boxes, image_scores, (h, w, _) in zip(proposals, scores, im_info.tolist()):
        assert 0 < boxes.shape[0] <= 50 and image_scores.shape == (boxes.shape[0],)
        assert bool((image_scores[:-1] >= image_scores[1:]).all())
        assert boxes[:, 0::2].max() <= w - 1 and boxes[:, 1::2].max() <= h - 1 and boxes.min() >= 0


def test_fpn_rpn_takes_coarsest_first_features_and_trains():
    torch.manual_seed(1)
    strides = [64, 32, 16, 8, 4]  # Detectron's FPN body order
    rpn = RPN.from_cfg(_small_cfg(fpn=True), in_channels=16, strides=strides)
    assert isinstance(rpn.head, FPNRPNHead) and rpn.strides == strides
    mapping, _ = rpn.detectron_weight_mapping()
    assert mapping["head.conv.weight"] == "conv_rpn_fpn2_w"
    # Anchor size 32 * 2**(level - 2): the stride-64 (level 6) cell anchors are 512 px.
    square = rpn.anchor_generator._cells[0][1]
    assert (square[2] - square[0] + 1).item() == 512
    features = [torch.randn(2, 16, 128 // s, 128 // s) for s in strides]
    im_info = torch.tensor([[128.0, 128.0, 1.0], [100.0, 128.0, 1.0]])
    gt = [_gt(3, 4, 128, 128), torch.zeros(0, 4)]
    rpn.train()
    proposals, _, _ = rpn(features, im_info, gt)
    assert [p.shape[0] for p in proposals] == [50, 50]
    # Overfit the fixed sample (same seed each step); rpn_only skips the proposals.
    rpn.rpn_only = True
    optimizer = torch.optim.SGD(rpn.parameters(), lr=0.5)
    gen = torch.Generator()
    history = []
    for _ in range(15):
        _, _, losses = rpn(features, im_info, gt, generator=gen.manual_seed(0))
        total = losses["loss_rpn_cls"] + losses["loss_rpn_bbox"]
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append(total.item())
    assert history[-1] < 0.8 * history[0]


def test_rpn_only_skips_training_proposals():
    cfg = _small_cfg(fpn=False)
    cfg.MODEL.RPN_ONLY = True
    rpn = RPN.from_cfg(cfg, in_channels=8, strides=[16]).train()
    im_info = torch.tensor([[64.0, 64.0, 1.0]])
    proposals, scores, losses = rpn([torch.randn(1, 8, 4, 4)], im_info, [_gt(0, 1, 64, 64)])
    assert proposals == [] and scores == [] and set(losses) == {"loss_rpn_cls", "loss_rpn_bbox"}
    rpn.eval()
    proposals, _, _ = rpn([torch.randn(1, 8, 4, 4)], im_info)
    assert len(proposals) == 1 and proposals[0].shape[0] > 0


def test_configuration_errors_are_reported():
    cfg = _small_cfg(fpn=True)
    with pytest.raises(ValueError, match="one feature map per level 2..6"):
        RPN.from_cfg(cfg, in_channels=8, strides=[32, 16, 8, 4])
    with pytest.raises(ValueError, match="RPN.STRIDE"):
        RPN.from_cfg(_small_cfg(fpn=False), in_channels=8, strides=[32])
    rpn = RPN.from_cfg(_small_cfg(fpn=False), in_channels=8, strides=[16]).train()
    with pytest.raises(ValueError, match="gt_boxes"):
        rpn([torch.randn(1, 8, 4, 4)], torch.tensor([[64.0, 64.0, 1.0]]))
    with pytest.raises(ValueError, match="expects 1 feature maps"):
        rpn([torch.randn(1, 8, 4, 4)] * 2, torch.tensor([[64.0, 64.0, 1.0]]))


def test_torchvision_preset_reproduces_torchvision_rpn_inference():
    torch.manual_seed(4)
    tv_head = TVRPNHead(16, 3)
    for p in tv_head.parameters():
        torch.nn.init.normal_(p, std=0.1)
    tv_rpn = RegionProposalNetwork(
        TVAnchorGenerator(((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0),) * 5),
        tv_head,
        fg_iou_thresh=0.7,
        bg_iou_thresh=0.3,
        batch_size_per_image=256,
        positive_fraction=0.5,
        pre_nms_top_n={"training": 100, "testing": 100},
        post_nms_top_n={"training": 60, "testing": 60},
        nms_thresh=0.7,
    ).eval()
    cfg = _small_cfg(fpn=True)
    cfg.MODEL.BOX_PLUS_ONE = False
    cfg.RPN.ANCHOR_CONVENTION = "torchvision"
    cfg.RPN.MIN_SIZE_RULE = "torchvision"
    cfg.TEST.RPN_PRE_NMS_TOP_N, cfg.TEST.RPN_POST_NMS_TOP_N, cfg.TEST.RPN_MIN_SIZE = 100, 60, 1e-3
    strides = [4, 8, 16, 32, 64]  # torchvision's order: finest first
    rpn = RPN.from_cfg(cfg, in_channels=16, strides=strides).eval()
    state = {k.replace("conv.0.0.", "conv."): v for k, v in tv_head.state_dict().items()}
    rpn.head.load_state_dict(state)

    image_sizes = [(128, 120), (100, 128)]
    features = [torch.randn(2, 16, 128 // s, 128 // s) for s in strides]
    with torch.no_grad():
        tv_boxes, _ = tv_rpn(ImageList(torch.zeros(2, 3, 128, 128), image_sizes), dict(enumerate(features)))
        boxes, scores, _ = rpn(features, torch.tensor([[h, w, 1.0] for h, w in image_sizes]))
    for image in range(2):
        assert tv_boxes[image].shape[0] == 60
        assert torch.equal(boxes[image], tv_boxes[image])


@pytest.mark.cuda
def test_cuda_matches_cpu():
    torch.manual_seed(6)
    strides = [64, 32, 16, 8, 4]
    rpn = RPN.from_cfg(_small_cfg(fpn=True), in_channels=8, strides=strides).train()
    features = [torch.randn(2, 8, 128 // s, 128 // s) for s in strides]
    cls, deltas = rpn.head(features)
    cls, deltas = [c.detach() for c in cls], [d.detach() for d in deltas]
    anchors = rpn.anchor_generator([f.shape[-2:] for f in features], torch.device("cpu"))
    im_info = torch.tensor([[128.0, 128.0, 1.0], [100.0, 120.0, 1.5]])
    gt = [_gt(7, 5, 128, 128), _gt(8, 2, 120, 100)]

    def run(device):
        to = [t.to(device) for t in (*cls, *deltas, *anchors)]
        n = len(strides)
        boxes, scores = rpn.train_proposals(to[:n], to[n : 2 * n], to[2 * n :], im_info.to(device))
        targets = rpn.target_assigner(
            torch.cat(to[2 * n :]),
            im_info.to(device),
            [g.to(device) for g in gt],
            generator=torch.Generator().manual_seed(0),
        )
        return boxes, scores, targets

    cpu_boxes, cpu_scores, cpu_targets = run("cpu")
    gpu_boxes, gpu_scores, gpu_targets = run("cuda")
    for a, b in zip(cpu_boxes + cpu_scores, gpu_boxes + gpu_scores):
        torch.testing.assert_close(b.cpu(), a, atol=1e-4, rtol=1e-5)
    assert torch.equal(gpu_targets.labels.cpu(), cpu_targets.labels)
    torch.testing.assert_close(gpu_targets.bbox_targets.cpu(), cpu_targets.bbox_targets)
