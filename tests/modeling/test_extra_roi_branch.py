"""Adding a head is one registered module: a toy RoI branch defined here trains and predicts."""

from pathlib import Path

import torch
from torch import nn

from pydetectron.config import assert_and_infer_cfg, get_cfg, merge_cfg_from_file, merge_cfg_from_list
from pydetectron.modeling import ROI_BRANCHES, RoIBranch, build_model
from pydetectron.structures.boxes import box_area
from pydetectron.structures.ground_truth import GroundTruth

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "shapes" / "e2e_faster_rcnn_R-50-FPN_shapes.yaml"


@ROI_BRANCHES.register("test_log_area")
class LogAreaBranch(RoIBranch):
    """Regresses the log area of each foreground RoI's object from its pooled features."""

    def __init__(self, in_features, pooler, channels):
        super().__init__()
        self.in_features, self.pooler = list(in_features), pooler
        self.fc = nn.Linear(channels, 1)

    @classmethod
    def from_cfg(cls, cfg, input_shape, box_branch):
        channels = input_shape[box_branch.in_features[0]].channels
        return cls(box_branch.in_features, box_branch.pooler, channels)

    def _predict(self, features, rois):
        return self.fc(self.pooler([features[n] for n in self.in_features], rois).mean(dim=(2, 3)))[:, 0]

    def losses(self, features, samples, targets):
        fg = samples.labels > 0
        rois, gt = samples.rois[fg], samples.matched_gt_index[fg]
        image = rois[:, 0].long()
        areas = torch.cat([box_area(targets[i].boxes[gt[image == i]]) for i in range(len(targets))])
        order = torch.cat([torch.nonzero(image == i, as_tuple=True)[0] for i in range(len(targets))])
        return {"loss_log_area": ((self._predict(features, rois[order]) - areas.log()) ** 2).mean()}

    def predict(self, features, detections, images):
        for index, det in enumerate(detections):
            rois = torch.cat([torch.full_like(det.input_boxes[:, :1], index), det.input_boxes], dim=1)
            det.log_area = self._predict(features, rois)


def test_registered_branch_trains_and_predicts():
    torch.manual_seed(0)
    cfg = get_cfg()
    merge_cfg_from_file(CONFIG, target=cfg)
    merge_cfg_from_list(["MODEL.EXTRA_ROI_BRANCHES", "('test_log_area',)", "TEST.SCORE_THRESH", "0.0"], target=cfg)
    assert_and_infer_cfg(target=cfg)
    model = build_model(cfg)
    assert isinstance(model.roi_heads.branches["test_log_area"], LogAreaBranch)
    images = torch.randn(2, 3, 96, 128)
    im_info = torch.tensor([[96.0, 128.0, 1.0], [96.0, 128.0, 1.0]])
    targets = [
        GroundTruth(torch.tensor([[10.0, 10.0, 60.0, 50.0]]), torch.tensor([1])),
        GroundTruth(torch.tensor([[20.0, 30.0, 110.0, 90.0], [5.0, 5.0, 25.0, 25.0]]), torch.tensor([2, 3])),
    ]
    branch = model.roi_heads.branches["test_log_area"]
    for param in model.parameters():  # train the new branch only: a short, cheap backward
        param.requires_grad_(False)
    branch.fc.requires_grad_(True)
    optimizer = torch.optim.Adam(branch.fc.parameters(), lr=0.05)
    model.train()
    history = []
    for _ in range(10):
        losses = model(images, im_info, targets)
        optimizer.zero_grad()
        losses["loss_log_area"].backward()
        optimizer.step()
        history.append(float(losses["loss_log_area"]))
    assert history[-1] < 0.5 * history[0], history
    with torch.no_grad():
        detections = model.eval()(images, im_info)
    assert all(det.log_area.shape == det.scores.shape for det in detections)
