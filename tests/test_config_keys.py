"""Every config key is read by the code, or refused away from its default with a message."""

import re
from pathlib import Path

import pytest

from pydetectron.config import (
    ConfigValueError,
    UnsupportedConfigKeyError,
    assert_and_infer_cfg,
    dependent_keys,
    get_cfg,
    inferred_keys,
    merge_cfg_from_file,
    merge_cfg_from_list,
    unsupported_keys,
)

REPO = Path(__file__).resolve().parents[1]
CONFIG_PY = REPO / "lib" / "pydetectron" / "config.py"


def leaf_keys(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from leaf_keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def code_outside_config() -> str:
    files = [*(REPO / "lib" / "pydetectron").rglob("*.py"), *(REPO / "tools").glob("*.py")]
    return "\n".join(p.read_text(encoding="utf-8") for p in files if p != CONFIG_PY)


def is_read(key: str, code: str) -> bool:
    """The key's last name appears as an attribute or a string in the code (config.py excluded)."""
    leaf = re.escape(key.rsplit(".", 1)[-1])
    return re.search(rf"\.{leaf}\b|[\"']{leaf}[\"']", code) is not None


def test_every_key_is_read_or_listed_as_unsupported():
    code = code_outside_config()
    refused, dependent, inferred = unsupported_keys(), dependent_keys(), inferred_keys()
    listed = refused | dependent | inferred
    unread = [k for k in leaf_keys(get_cfg()) if k not in listed and not is_read(k, code)]
    assert unread == [], "keys nothing reads: read them, or list them in config._UNSUPPORTED_KEYS"
    stale = [k for k in refused if is_read(k, code) and k.rsplit(".", 1)[-1] not in _SHARED_LEAF_NAMES]
    assert stale == [], "keys listed as unsupported that the code now reads: remove them from the list"
    assert all(k in refused for k in dependent.values())


# Leaf names that other, supported keys share (so a match says nothing about this key).
_SHARED_LEAF_NAMES = {"SCALE_SIZE_DEP", "GENERATE_PROPOSALS_ON_GPU", "DEBUG", "EPS"}


@pytest.mark.parametrize("key", sorted(unsupported_keys()))
def test_an_unsupported_key_away_from_its_default_is_refused_with_its_name(key, tmp_path):
    default = get_cfg()
    for part in key.split("."):
        default = default[part]
    changed = {bool: lambda v: not v, int: lambda v: v + 1, float: lambda v: v * 2 + 1, str: lambda v: v + "x",
               list: lambda v: [[1]]}  # fmt: skip
    value = changed[type(default)](default)
    parts = key.split(".")
    text = "".join(f"{'  ' * i}{p}:\n" for i, p in enumerate(parts[:-1]))
    text += f"{'  ' * (len(parts) - 1)}{parts[-1]}: {value!r}\n"
    path = tmp_path / "user.yaml"
    path.write_text(text)
    with pytest.raises(UnsupportedConfigKeyError) as error:
        merge_cfg_from_file(path, target=get_cfg())
    message = str(error.value)
    assert message.startswith(f"{path}: {key}: ") and "\n" not in message
    assert unsupported_keys()[key] in message
    merge_cfg_from_list([key, repr(default)], target=get_cfg())  # the default value is accepted


def test_an_inferred_key_may_repeat_its_inferred_value_but_not_contradict_it():
    cfg = get_cfg()
    merge_cfg_from_list(["MODEL.FASTER_RCNN", "True", "RPN.RPN_ON", "True", "TEST.PRECOMPUTED_PROPOSALS", "False"], cfg)
    assert_and_infer_cfg(target=cfg)  # a config dumped after inference merges back unchanged
    assert cfg.RPN.RPN_ON and not cfg.TEST.PRECOMPUTED_PROPOSALS
    cfg = get_cfg()
    merge_cfg_from_list(["MODEL.FASTER_RCNN", "False", "TEST.PRECOMPUTED_PROPOSALS", "False"], cfg)
    with pytest.raises(ConfigValueError, match=r"^TEST.PRECOMPUTED_PROPOSALS: is inferred from RPN.RPN_ON / RETINA"):
        assert_and_infer_cfg(target=cfg)
    cfg = get_cfg()
    merge_cfg_from_list(["MODEL.SHARE_RES5", "True"], cfg)
    with pytest.raises(ConfigValueError, match=r"^MODEL.SHARE_RES5: is inferred from MRCNN.ROI_MASK_HEAD"):
        assert_and_infer_cfg(target=cfg)


def test_a_detectron_yaml_with_compatibility_keys_at_their_defaults_loads(tmp_path):
    """The keys Detectron's own YAMLs set (PROPOSAL_LIMIT, USE_NCCL, test-time AREA_TH...) load."""
    path = tmp_path / "keypoint_rcnn_R-50-FPN_1x_tta.yaml"
    path.write_text(
        """
MODEL:
  TYPE: generalized_rcnn
  CONV_BODY: FPN.add_fpn_ResNet50_conv5_body
  NUM_CLASSES: 2
  FASTER_RCNN: True
  KEYPOINTS_ON: True
  EXECUTION_TYPE: dag
NUM_GPUS: 8
USE_NCCL: False
SOLVER:
  WEIGHT_DECAY: 0.0001
  LR_POLICY: steps_with_decay
  BASE_LR: 0.02
  GAMMA: 0.1
  MAX_ITER: 90000
  STEPS: [0, 60000, 80000]
FPN:
  FPN_ON: True
  MULTILEVEL_ROIS: True
  MULTILEVEL_RPN: True
FAST_RCNN:
  ROI_BOX_HEAD: fast_rcnn_heads.add_roi_2mlp_head
  ROI_XFORM_METHOD: RoIAlign
  ROI_XFORM_RESOLUTION: 7
  ROI_XFORM_SAMPLING_RATIO: 2
KRCNN:
  ROI_KEYPOINTS_HEAD: keypoint_rcnn_heads.add_roi_pose_head_v1convX
  NUM_STACKED_CONVS: 8
  NUM_KEYPOINTS: 17
  USE_DECONV_OUTPUT: True
  CONV_INIT: MSRAFill
  CONV_HEAD_DIM: 512
  UP_SCALE: 2
  HEATMAP_SIZE: 56
  ROI_XFORM_METHOD: RoIAlign
  ROI_XFORM_RESOLUTION: 14
  ROI_XFORM_SAMPLING_RATIO: 2
  KEYPOINT_CONFIDENCE: bbox
TRAIN:
  WEIGHTS: https://dl.fbaipublicfiles.com/detectron/ImageNetPretrained/MSRA/R-50.pkl
  DATASETS: ('keypoints_coco_2014_train', 'keypoints_coco_2014_valminusminival')
  SCALES: (640, 672, 704, 736, 768, 800)
  MAX_SIZE: 1333
  BATCH_SIZE_PER_IM: 512
  RPN_PRE_NMS_TOP_N: 2000
  CROWD_FILTER_THRESH: 0.7
  BBOX_THRESH: 0.5
  GENERATE_PROPOSALS_ON_GPU: False
TEST:
  DATASETS: ('keypoints_coco_2014_minival',)
  SCALE: 800
  MAX_SIZE: 1333
  NMS: 0.5
  PROPOSAL_LIMIT: 2000
  RPN_PRE_NMS_TOP_N: 1000
  RPN_POST_NMS_TOP_N: 1000
  BBOX_AUG:
    ENABLED: True
    SCORE_HEUR: UNION
    COORD_HEUR: UNION
    H_FLIP: True
    SCALES: (400, 500, 600, 700, 900, 1000, 1100, 1200)
    MAX_SIZE: 2000
    SCALE_H_FLIP: True
    SCALE_SIZE_DEP: False
    AREA_TH_LO: 2500
    AREA_TH_HI: 32400
  KPS_AUG:
    ENABLED: True
    HEUR: HM_AVG
    H_FLIP: True
    SCALES: (400, 500, 600, 700, 900, 1000, 1100, 1200)
    MAX_SIZE: 2000
    SCALE_H_FLIP: True
    SCALE_SIZE_DEP: False
    AREA_TH: 32400
    ASPECT_RATIOS: ()
    ASPECT_RATIO_H_FLIP: False
OUTPUT_DIR: .
"""
    )
    cfg = get_cfg()
    merge_cfg_from_file(path, target=cfg)
    assert cfg.TEST.KPS_AUG.ENABLED and cfg.TEST.KPS_AUG.AREA_TH == 32400 and cfg.TEST.PROPOSAL_LIMIT == 2000
