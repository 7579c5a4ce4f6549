"""Tests of pydetectron.config: defaults, merging, errors, freezing, dump, configs/*.yaml."""

from __future__ import annotations

import copy
import math
import pickle
import warnings
from pathlib import Path

import pytest
import yaml

from pydetectron import config as config_module
from pydetectron.config import (
    AttrDict,
    ConfigFileError,
    ConfigKeyError,
    ConfigTypeError,
    ConfigValueError,
    DeprecatedConfigKeyWarning,
    FrozenConfigError,
    RenamedConfigKeyError,
    assert_and_infer_cfg,
    cfg,
    get_cfg,
    merge_cfg_from_cfg,
    merge_cfg_from_file,
    merge_cfg_from_list,
    reset_cfg,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_FILES = sorted((REPO_ROOT / "configs").rglob("*.yaml"))


@pytest.fixture(autouse=True)
def fresh_global_cfg():
    """Every test starts and ends with the global cfg at its (unfrozen) defaults."""
    reset_cfg()
    yield
    reset_cfg()


def get_key(tree, full_key):
    node = tree
    for part in full_key.split("."):
        node = node[part]
    return node


def write_yaml(tmp_path, text, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def assert_same_tree(a, b, path="cfg"):
    """Equal keys, values and value types (1 == 1.0 and (1,) vs [1] would slip past ==)."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, dict):
        assert list(a) == list(b), path
        for key in a:
            assert_same_tree(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tree(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} vs {b!r}"


# ------------------------------------------------------------------------------------------
# Defaults
# ------------------------------------------------------------------------------------------
# Values written by hand from Detectron's detectron/core/config.py.
DETECTRON_DEFAULTS = {
    "TRAIN.WEIGHTS": "",
    "TRAIN.DATASETS": (),
    "TRAIN.SCALES": (600,),
    "TRAIN.MAX_SIZE": 1000,
    "TRAIN.IMS_PER_BATCH": 2,
    "TRAIN.BATCH_SIZE_PER_IM": 64,
    "TRAIN.FG_FRACTION": 0.25,
    "TRAIN.FG_THRESH": 0.5,
    "TRAIN.BG_THRESH_HI": 0.5,
    "TRAIN.BG_THRESH_LO": 0.0,
    "TRAIN.USE_FLIPPED": True,
    "TRAIN.SNAPSHOT_ITERS": 80000,
    "TRAIN.ASPECT_GROUPING": True,
    "TRAIN.RPN_POSITIVE_OVERLAP": 0.7,
    "TRAIN.RPN_NEGATIVE_OVERLAP": 0.3,
    "TRAIN.RPN_BATCH_SIZE_PER_IM": 256,
    "TRAIN.RPN_PRE_NMS_TOP_N": 12000,
    "TRAIN.RPN_POST_NMS_TOP_N": 2000,
    "TRAIN.RPN_STRADDLE_THRESH": 0,
    "TRAIN.CROWD_FILTER_THRESH": 0.7,
    "TRAIN.GT_MIN_AREA": -1,
    "TRAIN.FREEZE_AT": 2,
    "TRAIN.AUTO_RESUME": True,
    "DATA_LOADER.NUM_THREADS": 4,
    "DATA_LOADER.MINIBATCH_QUEUE_SIZE": 64,
    "DATA_LOADER.BLOBS_QUEUE_CAPACITY": 8,
    "TEST.SCALE": 600,
    "TEST.MAX_SIZE": 1000,
    "TEST.NMS": 0.3,
    "TEST.BBOX_REG": True,
    "TEST.PROPOSAL_LIMIT": 2000,
    "TEST.RPN_PRE_NMS_TOP_N": 12000,
    "TEST.RPN_POST_NMS_TOP_N": 2000,
    "TEST.DETECTIONS_PER_IM": 100,
    "TEST.SCORE_THRESH": 0.05,
    "TEST.COMPETITION_MODE": True,
    "TEST.PRECOMPUTED_PROPOSALS": True,
    "TEST.BBOX_AUG.ENABLED": False,
    "TEST.BBOX_AUG.SCORE_HEUR": "UNION",
    "TEST.BBOX_AUG.COORD_HEUR": "UNION",
    "TEST.BBOX_AUG.MAX_SIZE": 4000,
    "TEST.BBOX_AUG.AREA_TH_LO": 2500,
    "TEST.BBOX_AUG.AREA_TH_HI": 32400,
    "TEST.MASK_AUG.HEUR": "SOFT_AVG",
    "TEST.MASK_AUG.AREA_TH": 32400,
    "TEST.KPS_AUG.HEUR": "HM_AVG",
    "TEST.KPS_AUG.ASPECT_RATIOS": (),
    "TEST.SOFT_NMS.ENABLED": False,
    "TEST.SOFT_NMS.METHOD": "linear",
    "TEST.SOFT_NMS.SIGMA": 0.5,
    "TEST.BBOX_VOTE.ENABLED": False,
    "TEST.BBOX_VOTE.VOTE_TH": 0.8,
    "TEST.BBOX_VOTE.SCORING_METHOD": "ID",
    "TEST.BBOX_VOTE.SCORING_METHOD_BETA": 1.0,
    "MODEL.TYPE": "",
    "MODEL.CONV_BODY": "",
    "MODEL.NUM_CLASSES": -1,
    "MODEL.CLS_AGNOSTIC_BBOX_REG": False,
    "MODEL.BBOX_REG_WEIGHTS": (10.0, 10.0, 5.0, 5.0),
    "MODEL.FASTER_RCNN": False,
    "MODEL.MASK_ON": False,
    "MODEL.KEYPOINTS_ON": False,
    "MODEL.RPN_ONLY": False,
    "MODEL.EXECUTION_TYPE": "dag",
    "RETINANET.RETINANET_ON": False,
    "RETINANET.ASPECT_RATIOS": (0.5, 1.0, 2.0),
    "RETINANET.SCALES_PER_OCTAVE": 3,
    "RETINANET.ANCHOR_SCALE": 4,
    "RETINANET.BBOX_REG_BETA": 0.11,
    "RETINANET.NEGATIVE_OVERLAP": 0.4,
    "RETINANET.LOSS_ALPHA": 0.25,
    "RETINANET.LOSS_GAMMA": 2.0,
    "RETINANET.PRIOR_PROB": 0.01,
    "SOLVER.BASE_LR": 0.001,
    "SOLVER.LR_POLICY": "step",
    "SOLVER.GAMMA": 0.1,
    "SOLVER.STEP_SIZE": 30000,
    "SOLVER.STEPS": [],
    "SOLVER.LRS": [],
    "SOLVER.MAX_ITER": 40000,
    "SOLVER.MOMENTUM": 0.9,
    "SOLVER.WEIGHT_DECAY": 0.0005,
    "SOLVER.WEIGHT_DECAY_GN": 0.0,
    "SOLVER.WARM_UP_ITERS": 500,
    "SOLVER.WARM_UP_FACTOR": 1.0 / 3.0,
    "SOLVER.WARM_UP_METHOD": "linear",
    "SOLVER.SCALE_MOMENTUM": True,
    "SOLVER.SCALE_MOMENTUM_THRESHOLD": 1.1,
    "SOLVER.LOG_LR_CHANGE_THRESHOLD": 1.1,
    "FAST_RCNN.ROI_BOX_HEAD": "",
    "FAST_RCNN.MLP_HEAD_DIM": 1024,
    "FAST_RCNN.CONV_HEAD_DIM": 256,
    "FAST_RCNN.NUM_STACKED_CONVS": 4,
    "FAST_RCNN.ROI_XFORM_METHOD": "RoIPoolF",
    "FAST_RCNN.ROI_XFORM_SAMPLING_RATIO": 0,
    "FAST_RCNN.ROI_XFORM_RESOLUTION": 14,
    "RPN.RPN_ON": False,
    "RPN.SIZES": (64, 128, 256, 512),
    "RPN.STRIDE": 16,
    "RPN.ASPECT_RATIOS": (0.5, 1, 2),
    "FPN.FPN_ON": False,
    "FPN.DIM": 256,
    "FPN.ZERO_INIT_LATERAL": False,
    "FPN.COARSEST_STRIDE": 32,
    "FPN.ROI_CANONICAL_SCALE": 224,
    "FPN.ROI_CANONICAL_LEVEL": 4,
    "FPN.ROI_MAX_LEVEL": 5,
    "FPN.ROI_MIN_LEVEL": 2,
    "FPN.RPN_MAX_LEVEL": 6,
    "FPN.RPN_MIN_LEVEL": 2,
    "FPN.RPN_ANCHOR_START_SIZE": 32,
    "FPN.EXTRA_CONV_LEVELS": False,
    "FPN.USE_GN": False,
    "MRCNN.ROI_MASK_HEAD": "",
    "MRCNN.RESOLUTION": 14,
    "MRCNN.ROI_XFORM_METHOD": "RoIAlign",
    "MRCNN.ROI_XFORM_RESOLUTION": 7,
    "MRCNN.DIM_REDUCED": 256,
    "MRCNN.DILATION": 2,
    "MRCNN.UPSAMPLE_RATIO": 1,
    "MRCNN.CONV_INIT": "GaussianFill",
    "MRCNN.CLS_SPECIFIC_MASK": True,
    "MRCNN.THRESH_BINARIZE": 0.5,
    "KRCNN.HEATMAP_SIZE": -1,
    "KRCNN.UP_SCALE": -1,
    "KRCNN.DECONV_DIM": 256,
    "KRCNN.DECONV_KERNEL": 4,
    "KRCNN.NUM_KEYPOINTS": -1,
    "KRCNN.NUM_STACKED_CONVS": 8,
    "KRCNN.CONV_HEAD_KERNEL": 3,
    "KRCNN.KEYPOINT_CONFIDENCE": "bbox",
    "KRCNN.MIN_KEYPOINT_COUNT_FOR_VALID_MINIBATCH": 20,
    "KRCNN.NORMALIZE_BY_VISIBLE_KEYPOINTS": True,
    "RFCN.PS_GRID_SIZE": 3,
    "RESNETS.NUM_GROUPS": 1,
    "RESNETS.WIDTH_PER_GROUP": 64,
    "RESNETS.STRIDE_1X1": True,
    "RESNETS.TRANS_FUNC": "bottleneck_transformation",
    "RESNETS.STEM_FUNC": "basic_bn_stem",
    "RESNETS.SHORTCUT_FUNC": "basic_bn_shortcut",
    "RESNETS.RES5_DILATION": 1,
    "GROUP_NORM.DIM_PER_GP": -1,
    "GROUP_NORM.NUM_GROUPS": 32,
    "GROUP_NORM.EPSILON": 1e-5,
    "NUM_GPUS": 1,
    "USE_NCCL": False,
    "DEDUP_BOXES": 0.0625,
    "RNG_SEED": 3,
    "EPS": 1e-14,
    "OUTPUT_DIR": "/tmp",
    "VIS": False,
    "VIS_TH": 0.9,
    "EXPECTED_RESULTS": [],
    "EXPECTED_RESULTS_RTOL": 0.1,
    "EXPECTED_RESULTS_ATOL": 0.005,
    "EXPECTED_RESULTS_SIGMA_TOL": 4,
    "EXPECTED_RESULTS_EMAIL": "",
    "DOWNLOAD_CACHE": "/tmp/detectron-download-cache",
    "CLUSTER.ON_CLUSTER": False,
}

# Values written by hand from Detectron.pytorch's lib/core/config.py additions.
DETECTRON_PYTORCH_DEFAULTS = {
    "TRAIN.ASPECT_CROPPING": False,
    "TRAIN.ASPECT_HI": 2,
    "TRAIN.ASPECT_LO": 0.5,
    "SOLVER.TYPE": "SGD",
    "SOLVER.BIAS_DOUBLE_LR": True,
    "SOLVER.BIAS_WEIGHT_DECAY": False,
    "MODEL.SHARE_RES5": False,
    "MODEL.UNSUPERVISED_POSE": False,
    "RPN.OUT_DIM_AS_IN_DIM": True,
    "RPN.OUT_DIM": 512,
    "RPN.CLS_ACTIVATION": "sigmoid",
    "FPN.RPN_COLLECT_SCALE": 1,
    "MRCNN.MEMORY_EFFICIENT_LOSS": True,
    "RESNETS.FREEZE_AT": 2,
    "RESNETS.IMAGENET_PRETRAINED_WEIGHTS": "",
    "RESNETS.USE_GN": False,
    "POOLING_MODE": "crop",
    "POOLING_SIZE": 7,
    "CROP_RESIZE_WITH_MAX_POOL": True,
    "CUDA": False,
    "DEBUG": False,
}

PROJECT_DEFAULTS = {
    "PIXEL_STDS": (1.0, 1.0, 1.0),
    "INPUT_FORMAT": "BGR",
    "MODEL.BOX_PLUS_ONE": True,
    "MODEL.LOAD_IMAGENET_PRETRAINED_WEIGHTS": False,
    "DATA_LOADER.SKIP_MISSING_IMAGES": False,
    "DATA_LOADER.PIN_MEMORY": True,
    "TRAIN.KEEP_EMPTY_IMAGES": False,
    "TRAIN.AMP": "",
    "SOLVER.CLIP_GRAD_NORM": 0.0,
}


@pytest.mark.parametrize(
    "full_key, expected",
    [*DETECTRON_DEFAULTS.items(), *DETECTRON_PYTORCH_DEFAULTS.items(), *PROJECT_DEFAULTS.items()],
)
def test_default_value(full_key, expected):
    assert_same_tree(get_key(cfg, full_key), expected, full_key)


def test_defaults_with_computed_values():
    assert cfg.PIXEL_MEANS == pytest.approx((102.9801, 115.9465, 122.7717))
    assert isinstance(cfg.PIXEL_MEANS, tuple)
    assert cfg.BBOX_XFORM_CLIP == pytest.approx(4.135166556742356)  # ln(1000 / 16)
    assert Path(cfg.ROOT_DIR) == REPO_ROOT
    assert Path(cfg.DATA_DIR) == REPO_ROOT / "data"


def test_every_detectron_section_is_a_frozenable_attrdict():
    sections = [
        "TRAIN", "DATA_LOADER", "TEST", "TEST.BBOX_AUG", "TEST.MASK_AUG", "TEST.KPS_AUG",
        "TEST.SOFT_NMS", "TEST.BBOX_VOTE", "MODEL", "RETINANET", "SOLVER", "FAST_RCNN", "RPN",
        "FPN", "MRCNN", "KRCNN", "RFCN", "RESNETS", "GROUP_NORM", "CLUSTER",
    ]  # fmt: skip
    for name in sections:
        assert isinstance(get_key(cfg, name), AttrDict), name


def test_get_cfg_is_a_fresh_mutable_copy_of_the_defaults():
    first, second = get_cfg(), get_cfg()
    assert_same_tree(first, cfg)
    assert first is not second and first.TEST is not second.TEST
    first.TEST.NMS = 0.9
    first.SOLVER.STEPS.append(5)
    assert second.TEST.NMS == 0.3 and cfg.TEST.NMS == 0.3
    assert second.SOLVER.STEPS == [] and cfg.SOLVER.STEPS == []
    assert_and_infer_cfg()  # freezing the global cfg does not freeze later copies
    assert not get_cfg().is_immutable()


def test_reset_cfg_restores_defaults_in_place():
    global_object = cfg
    merge_cfg_from_list(["TEST.NMS", "0.9"])
    assert_and_infer_cfg()
    reset_cfg()
    assert config_module.cfg is global_object
    assert not cfg.is_immutable() and not cfg.TEST.is_immutable()
    assert_same_tree(cfg, get_cfg())


# ------------------------------------------------------------------------------------------
# Merging
# ------------------------------------------------------------------------------------------
def test_merge_cfg_from_file_into_global_cfg(tmp_path):
    path = write_yaml(
        tmp_path,
        """
MODEL:
  TYPE: generalized_rcnn
  NUM_CLASSES: 81
  FASTER_RCNN: True
SOLVER:
  BASE_LR: 1          # int for a float key
  STEPS: [0, 60000, 80000]
TRAIN:
  SCALES: (800,)      # a Python literal inside a YAML string
  DATASETS: ('coco_2014_train', 'coco_2014_valminusminival')
TEST:
  BBOX_AUG:
    ENABLED: True
OUTPUT_DIR: .
""",
    )
    merge_cfg_from_file(path)
    assert cfg.MODEL.TYPE == "generalized_rcnn"
    assert cfg.MODEL.NUM_CLASSES == 81 and cfg.MODEL.FASTER_RCNN is True
    assert_same_tree(cfg.SOLVER.BASE_LR, 1.0)
    assert_same_tree(cfg.SOLVER.STEPS, [0, 60000, 80000])
    assert_same_tree(cfg.TRAIN.SCALES, (800,))
    assert_same_tree(cfg.TRAIN.DATASETS, ("coco_2014_train", "coco_2014_valminusminival"))
    assert cfg.TEST.BBOX_AUG.ENABLED is True
    assert cfg.TEST.BBOX_AUG.MAX_SIZE == 4000  # untouched neighbours keep their defaults
    assert cfg.OUTPUT_DIR == "."


def test_merge_with_target_leaves_global_cfg_alone(tmp_path):
    other = get_cfg()
    merge_cfg_from_file(write_yaml(tmp_path, "TEST:\n  NMS: 0.6\n"), target=other)
    merge_cfg_from_list(["TRAIN.MAX_SIZE", "1333"], target=other)
    merge_cfg_from_cfg({"RNG_SEED": 7}, target=other)
    assert (other.TEST.NMS, other.TRAIN.MAX_SIZE, other.RNG_SEED) == (0.6, 1333, 7)
    assert_same_tree(cfg, get_cfg())


def test_merge_cfg_from_cfg_accepts_attrdict_and_plain_mapping():
    other = get_cfg()
    other.TEST.SCALE = 800
    other.MODEL.BBOX_REG_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
    merge_cfg_from_cfg(other)
    assert cfg.TEST.SCALE == 800 and cfg.MODEL.BBOX_REG_WEIGHTS == (1.0, 1.0, 1.0, 1.0)
    merge_cfg_from_cfg({"TEST": {"SCALE": 500}, "FPN": {"FPN_ON": True}})
    assert cfg.TEST.SCALE == 500 and cfg.FPN.FPN_ON is True
    other.TEST.SCALE = 1  # the merged values are copies, not shared objects
    assert cfg.TEST.SCALE == 500


def test_merging_keeps_section_objects(tmp_path):
    test_section = cfg.TEST
    merge_cfg_from_file(write_yaml(tmp_path, "TEST:\n  NMS: 0.6\n"))
    assert cfg.TEST is test_section and test_section.NMS == 0.6


@pytest.mark.parametrize(
    "full_key, raw, expected",
    [
        ("TEST.NMS", "0.5", 0.5),
        ("TEST.NMS", 0.45, 0.45),  # non-string values pass through
        ("TEST.NMS", "1", 1.0),  # int -> float
        ("TRAIN.MAX_SIZE", "1333", 1333),
        ("MODEL.FASTER_RCNN", "True", True),
        ("TRAIN.SCALES", "(800, 1000)", (800, 1000)),
        ("TRAIN.SCALES", "[640, 672]", (640, 672)),  # list -> tuple
        ("SOLVER.STEPS", "(0, 10, 20)", [0, 10, 20]),  # tuple -> list
        ("TRAIN.DATASETS", "('coco_2014_train',)", ("coco_2014_train",)),
        ("TEST.BBOX_AUG.SCALES", "()", ()),
        ("MODEL.TYPE", "generalized_rcnn", "generalized_rcnn"),  # not a literal: a string
        ("OUTPUT_DIR", "/some/path/out", "/some/path/out"),
        ("OUTPUT_DIR", "'quoted'", "quoted"),
        ("OUTPUT_DIR", "1e-5", "1e-5"),  # a string key keeps what was typed
        ("OUTPUT_DIR", "True", "True"),
        ("OUTPUT_DIR", 123, "123"),  # Detectron's str coercion of numbers
        ("EXPECTED_RESULTS", "[['coco', 'box', 'AP', 0.37]]", [["coco", "box", "AP", 0.37]]),
        ("PIXEL_MEANS", "[[[1, 2, 3]]]", (1.0, 2.0, 3.0)),  # Detectron's array layout
        ("PIXEL_STDS", "(57.375, 57.12, 58.395)", (57.375, 57.12, 58.395)),
        ("TEST", "{'NMS': 0.7, 'SCALE': 700}", None),  # a whole section as a dict literal
    ],
)
def test_merge_cfg_from_list_parses_literals(full_key, raw, expected):
    merge_cfg_from_list([full_key, raw])
    if full_key == "TEST":
        assert (cfg.TEST.NMS, cfg.TEST.SCALE, cfg.TEST.MAX_SIZE) == (0.7, 700, 1000)
    else:
        assert_same_tree(get_key(cfg, full_key), expected, full_key)


def test_merge_cfg_from_list_applies_pairs_in_order():
    merge_cfg_from_list(["TEST.NMS", "0.4", "TEST.SCALE", "700", "TEST.NMS", "0.6"])
    assert (cfg.TEST.NMS, cfg.TEST.SCALE) == (0.6, 700)


def test_merge_cfg_from_list_needs_pairs():
    with pytest.raises(ValueError, match="KEY VALUE pairs"):
        merge_cfg_from_list(["TEST.NMS", "0.5", "TEST.SCALE"])


# ------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad_key, suggestion",
    [
        ("TEST.NMSS", "TEST.NMS"),
        ("TRAIN.SCALE", "TRAIN.SCALES"),
        ("MODEL.NUM_CLASS", "MODEL.NUM_CLASSES"),
        ("TEST.BBOX_AUG.ENABLE", "TEST.BBOX_AUG.ENABLED"),
        ("test.nms", "TEST.NMS"),
        ("NMS", "TEST.NMS"),  # right leaf, missing section
    ],
)
def test_unknown_key_names_it_and_suggests_the_closest(bad_key, suggestion):
    with pytest.raises(ConfigKeyError) as error:
        merge_cfg_from_list([bad_key, "1"])
    assert f"{bad_key}: no such key; did you mean {suggestion}?" in str(error.value)


def test_unknown_key_message_exact_for_the_documented_example():
    with pytest.raises(KeyError) as error:
        merge_cfg_from_list(["TEST.NMSS", "0.5"])
    assert str(error.value) == "command line: TEST.NMSS: no such key; did you mean TEST.NMS?"


def test_unknown_key_without_close_match_has_no_suggestion():
    with pytest.raises(ConfigKeyError) as error:
        merge_cfg_from_list(["TRAIN.QQQ_ZZZ_WWW", "1"])
    assert str(error.value).endswith("TRAIN.QQQ_ZZZ_WWW: no such key")


def test_unknown_key_in_file_names_file_and_full_key(tmp_path):
    path = write_yaml(tmp_path, "TSET:\n  NMS: 0.5\nTEST:\n  BBOX_AUG:\n    ENABLD: True\n")
    with pytest.raises(ConfigKeyError) as error:
        merge_cfg_from_file(path)
    message = str(error.value)
    assert message.startswith(f"{path}: TSET.NMS: no such key; did you mean TEST.NMS")
    path.write_text("TEST:\n  BBOX_AUG:\n    ENABLD: True\n")
    with pytest.raises(ConfigKeyError, match=r"TEST\.BBOX_AUG\.ENABLD: no such key; did you mean "
                       r"TEST\.BBOX_AUG\.ENABLED\?"):  # fmt: skip
        merge_cfg_from_file(path)


@pytest.mark.parametrize(
    "full_key, raw, expected_type, given_type",
    [
        ("TEST.NMS", "abc", "float", "str"),
        ("TRAIN.MAX_SIZE", "1.5", "int", "float"),
        ("TRAIN.SCALES", "coco_2014_train", "tuple", "str"),
        ("MODEL.FASTER_RCNN", "1", "bool", "int"),
        ("SOLVER.STEPS", "5", "list", "int"),
        ("TEST", "0.5", "a section", "float"),
        ("TEST.NMS", "{'a': 1}", "float", "a section"),
    ],
)
def test_type_mismatch_names_key_expected_and_given_type(full_key, raw, expected_type, given_type):
    with pytest.raises(ConfigTypeError) as error:
        merge_cfg_from_list([full_key, raw])
    message = str(error.value)
    assert f"{full_key}: type mismatch: expected {expected_type}" in message
    assert f"got {given_type}" in message
    assert isinstance(error.value, ValueError)


def test_string_key_refuses_a_yaml_list(tmp_path):
    with pytest.raises(ConfigTypeError, match="OUTPUT_DIR: type mismatch: expected str .*got list"):
        merge_cfg_from_file(write_yaml(tmp_path, "OUTPUT_DIR: [1, 2]\n"))


def test_pixel_triplet_needs_three_numbers():
    with pytest.raises(ConfigTypeError, match="PIXEL_MEANS: type mismatch: expected a tuple of 3"):
        merge_cfg_from_list(["PIXEL_MEANS", "(1.0, 2.0)"])


def test_failed_merge_changes_nothing(tmp_path):
    with pytest.raises(ConfigTypeError):
        merge_cfg_from_list(["TEST.NMS", "0.6", "TRAIN.MAX_SIZE", "big"])
    path = write_yaml(tmp_path, "TEST:\n  SCALE: 900\n  NMSS: 0.1\n")
    with pytest.raises(ConfigKeyError):
        merge_cfg_from_file(path)
    assert_same_tree(cfg, get_cfg())


def test_unsafe_yaml_tag_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "marker"
    payload = f'!!python/object/apply:os.system ["touch {marker}"]'
    top_level = write_yaml(tmp_path, payload + "\n", "top.yaml")
    as_value = write_yaml(tmp_path, f"OUTPUT_DIR: {payload}\n", "value.yaml")
    for path in (top_level, as_value):
        with pytest.raises(ConfigFileError) as error:
            merge_cfg_from_file(path)
        assert str(path) in str(error.value)
        assert not marker.exists()
    assert_same_tree(cfg, get_cfg())
    # The payload is live: a full (unsafe) loader does run it, so the checks above mean something.
    yaml.unsafe_load(top_level.read_text())
    assert marker.exists()


@pytest.mark.parametrize(
    "text",
    ["!!python/name:os.system\n", "OUTPUT_DIR: !!python/object/new:os.getcwd []\n"],
)
def test_other_python_tags_are_refused(tmp_path, text):
    with pytest.raises(ConfigFileError, match="not a valid safe YAML config"):
        merge_cfg_from_file(write_yaml(tmp_path, text))


def test_bad_config_files(tmp_path):
    with pytest.raises(ConfigFileError, match="cannot read"):
        merge_cfg_from_file(tmp_path / "missing.yaml")
    with pytest.raises(ConfigFileError, match="must hold a mapping"):
        merge_cfg_from_file(write_yaml(tmp_path, "- TEST\n- NMS\n"))
    with pytest.raises(ConfigFileError, match="not a valid safe YAML"):
        merge_cfg_from_file(write_yaml(tmp_path, "TEST: [unclosed\n"))
    merge_cfg_from_file(write_yaml(tmp_path, "# only a comment\n"))  # empty: nothing to merge
    assert_same_tree(cfg, get_cfg())


@pytest.mark.parametrize("via", ["list", "file"])
def test_deprecated_keys_are_ignored_with_a_warning(tmp_path, via):
    with pytest.warns(DeprecatedConfigKeyWarning) as record:
        if via == "list":
            merge_cfg_from_list(["USE_GPU_NMS", "True", "TEST.NMS", "0.6", "RPN.ON", "True"])
        else:  # `ON:` stays the key "ON" (plain YAML 1.1 would read it as the boolean True)
            path = write_yaml(tmp_path, "USE_GPU_NMS: True\nTEST:\n  NMS: 0.6\nRPN:\n  ON: True\n")
            merge_cfg_from_file(path)
    messages = [str(w.message) for w in record]
    assert any("USE_GPU_NMS: deprecated config key, ignored" in m for m in messages)
    assert any("RPN.ON: deprecated config key, ignored" in m for m in messages)
    assert cfg.TEST.NMS == 0.6
    assert "USE_GPU_NMS" not in cfg and "ON" not in cfg.RPN


RENAMED = {
    "EXAMPLE.RENAMED.KEY": "EXAMPLE.KEY",
    "MODEL.PS_GRID_SIZE": "RFCN.PS_GRID_SIZE",
    "MODEL.ROI_HEAD": "FAST_RCNN.ROI_BOX_HEAD",
    "MRCNN.MASK_HEAD_NAME": "MRCNN.ROI_MASK_HEAD",
    "TRAIN.DATASET": "TRAIN.DATASETS",
    "TRAIN.PROPOSAL_FILE": "TRAIN.PROPOSAL_FILES",
    "TEST.SCALES": "TEST.SCALE",
    "TEST.DATASET": "TEST.DATASETS",
    "TEST.PROPOSAL_FILE": "TEST.PROPOSAL_FILES",
}


@pytest.mark.parametrize("old_key, new_key", RENAMED.items())
def test_renamed_keys_say_what_replaced_them(old_key, new_key):
    with pytest.raises(RenamedConfigKeyError) as error:
        merge_cfg_from_list([old_key, "x"])
    assert f"{old_key}: this key was renamed to {new_key}; please update the config" in str(
        error.value
    )
    assert isinstance(error.value, KeyError)


def test_renamed_key_in_file_with_conversion_note(tmp_path):
    path = write_yaml(tmp_path, "TRAIN:\n  DATASET: coco_2014_train\n")
    with pytest.raises(RenamedConfigKeyError, match=r"renamed to TRAIN\.DATASETS.*tuple"):
        merge_cfg_from_file(path)
    nested = write_yaml(tmp_path, "EXAMPLE:\n  RENAMED:\n    KEY: 1\n", "nested.yaml")
    with pytest.raises(RenamedConfigKeyError, match=r"EXAMPLE\.RENAMED\.KEY: .*EXAMPLE\.KEY"):
        merge_cfg_from_file(nested)


# ------------------------------------------------------------------------------------------
# Freezing
# ------------------------------------------------------------------------------------------
def _attribute_set(tree):
    tree.TEST.NMS = 0.9


def _item_set(tree):
    tree["TEST"]["NMS"] = 0.9


def _nested_attribute_set(tree):
    tree.TEST.BBOX_AUG.ENABLED = True


def _nested_item_set(tree):
    tree["TEST"]["BBOX_AUG"]["ENABLED"] = True


def _top_attribute_set(tree):
    tree.RNG_SEED = 5


def _top_item_set(tree):
    tree["RNG_SEED"] = 5


def _new_key(tree):
    tree.TEST.NEW_KEY = 1


def _attribute_delete(tree):
    del tree.TEST.NMS


def _item_delete(tree):
    del tree["TEST"]["NMS"]


def _update(tree):
    tree.TEST.update(NMS=0.9)


def _setdefault(tree):
    tree.TEST.setdefault("NEW_KEY", 1)


def _pop(tree):
    tree.TEST.pop("NMS")


def _clear(tree):
    tree.TEST.clear()


@pytest.mark.parametrize(
    "change, key_in_message",
    [
        (_attribute_set, "TEST.NMS"),
        (_item_set, "TEST.NMS"),
        (_nested_attribute_set, "TEST.BBOX_AUG.ENABLED"),
        (_nested_item_set, "TEST.BBOX_AUG.ENABLED"),
        (_top_attribute_set, "RNG_SEED"),
        (_top_item_set, "RNG_SEED"),
        (_new_key, "TEST.NEW_KEY"),
        (_attribute_delete, "TEST.NMS"),
        (_item_delete, "TEST.NMS"),
        (_update, "TEST.NMS"),
        (_setdefault, "TEST.NEW_KEY"),
        (_pop, "TEST.NMS"),
        (_clear, "TEST"),
    ],
)
def test_frozen_cfg_refuses_every_change(change, key_in_message):
    assert_and_infer_cfg()
    before = copy.deepcopy(cfg)
    with pytest.raises(FrozenConfigError) as error:
        change(cfg)
    assert str(error.value).startswith(f"{key_in_message}: cannot change a frozen config")
    assert_same_tree(cfg, before)


def test_frozen_cfg_refuses_merges(tmp_path):
    assert_and_infer_cfg()
    with pytest.raises(FrozenConfigError):
        merge_cfg_from_list(["TEST.NMS", "0.6"])
    with pytest.raises(FrozenConfigError):
        merge_cfg_from_file(write_yaml(tmp_path, "TEST:\n  NMS: 0.6\n"))
    with pytest.raises(FrozenConfigError):
        merge_cfg_from_cfg({"TEST": {"NMS": 0.6}})
    assert cfg.TEST.NMS == 0.3


def test_immutable_can_be_lifted_again():
    assert_and_infer_cfg()
    assert cfg.is_immutable() and cfg.TEST.BBOX_AUG.is_immutable()
    cfg.immutable(False)
    assert not cfg.TEST.BBOX_AUG.is_immutable()
    cfg.TEST.BBOX_AUG.ENABLED = True
    assert cfg.TEST.BBOX_AUG.ENABLED is True


def test_frozen_error_is_an_attribute_and_type_error():
    assert_and_infer_cfg()
    with pytest.raises(AttributeError):
        cfg.TEST.NMS = 0.1
    with pytest.raises(TypeError):
        cfg["TEST"]["NMS"] = 0.1


# ------------------------------------------------------------------------------------------
# AttrDict
# ------------------------------------------------------------------------------------------
def test_attrdict_attribute_and_item_access_agree():
    tree = AttrDict({"A": {"B": 1}}, C=2)
    assert isinstance(tree.A, AttrDict) and tree.A.B == tree["A"]["B"] == 1
    tree.D = 3
    assert tree["D"] == 3
    tree["E"] = 4
    assert tree.E == 4
    del tree.D
    assert "D" not in tree
    assert not hasattr(tree, "MISSING")
    tree.immutable(True)  # freezing also records each node's dotted path, for messages
    with pytest.raises(AttributeError, match="A.MISSING: no such key"):
        _ = tree.A.MISSING


def test_attrdict_copies_and_pickles_keep_values_and_frozen_state():
    tree = get_cfg()
    tree.immutable(True)
    for duplicate in (copy.deepcopy(tree), pickle.loads(pickle.dumps(tree))):
        assert_same_tree(duplicate, tree)
        assert duplicate.is_immutable() and duplicate.TEST.SOFT_NMS.is_immutable()
        assert duplicate.TEST is not tree.TEST
        with pytest.raises(FrozenConfigError, match="TEST.SOFT_NMS.SIGMA"):
            duplicate.TEST.SOFT_NMS.SIGMA = 1.0
    shallow = copy.copy(tree)
    assert shallow.TEST is tree.TEST and shallow.is_immutable()


# ------------------------------------------------------------------------------------------
# Dump
# ------------------------------------------------------------------------------------------
def test_dump_round_trip(tmp_path):
    merge_cfg_from_file(REPO_ROOT / "configs/baselines/e2e_faster_rcnn_R-50-FPN_1x.yaml")
    merge_cfg_from_list(
        [
            "OUTPUT_DIR", "1e-5",  # a string that looks like a number
            "MODEL.TYPE", "True",  # a string that looks like a bool
            "EXPECTED_RESULTS", "[['coco_2014_minival', 'box', 'AP', 0.37]]",
            "SOLVER.WARM_UP_FACTOR", "0.1",
            "PIXEL_STDS", "(57.375, 57.12, 58.395)",
        ]
    )  # fmt: skip
    assert_and_infer_cfg()
    text = cfg.dump()
    assert "!!" not in text  # plain YAML, no python tags
    assert yaml.safe_load(text)["TEST"]["NMS"] == 0.5
    restored = get_cfg()
    merge_cfg_from_file(write_yaml(tmp_path, text), target=restored)
    assert_same_tree(restored, cfg)
    # A dumped default tree merges back to the defaults too.
    defaults = get_cfg()
    merge_cfg_from_cfg(yaml.safe_load(get_cfg().dump()), target=defaults)
    assert_same_tree(defaults, get_cfg())


# ------------------------------------------------------------------------------------------
# assert_and_infer_cfg
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "settings, rpn_on, precomputed",
    [
        ([], False, True),
        (["MODEL.FASTER_RCNN", "True"], True, False),
        (["MODEL.RPN_ONLY", "True"], True, False),
        (["RETINANET.RETINANET_ON", "True"], False, False),
        (["RPN.RPN_ON", "True"], True, False),
    ],
)
def test_assert_and_infer_cfg_rpn_inferences(settings, rpn_on, precomputed):
    merge_cfg_from_list(settings)
    assert_and_infer_cfg()
    assert cfg.RPN.RPN_ON is rpn_on
    assert cfg.TEST.PRECOMPUTED_PROPOSALS is precomputed


def test_assert_and_infer_cfg_share_res5_inference():
    merge_cfg_from_list(["MRCNN.ROI_MASK_HEAD", "mask_rcnn_heads.mask_rcnn_fcn_head_v1up4convs"])
    assert_and_infer_cfg(make_immutable=False)
    assert cfg.MODEL.SHARE_RES5 is False
    merge_cfg_from_list(["MRCNN.ROI_MASK_HEAD", "mask_rcnn_heads.mask_rcnn_fcn_head_v0upshare"])
    assert_and_infer_cfg(make_immutable=False)
    assert cfg.MODEL.SHARE_RES5 is True


def test_assert_and_infer_cfg_freezing_options():
    other = get_cfg()
    assert_and_infer_cfg(make_immutable=False, target=other)
    assert not other.is_immutable()
    assert_and_infer_cfg(target=other)
    assert other.is_immutable() and other.TEST.BBOX_AUG.is_immutable()
    assert not cfg.is_immutable()  # `target` left the global cfg alone
    assert_and_infer_cfg(make_immutable=False, target=other)  # again: allowed, stays frozen
    assert other.is_immutable()


@pytest.mark.parametrize(
    "settings, key",
    [
        (["INPUT_FORMAT", "RGBA"], "INPUT_FORMAT"),
        (["TRAIN.AMP", "fp8"], "TRAIN.AMP"),
        (["PIXEL_STDS", "(1.0, 0.0, 1.0)"], "PIXEL_STDS"),
        (["SOLVER.CLIP_GRAD_NORM", "-1.0"], "SOLVER.CLIP_GRAD_NORM"),
        (["TRAIN.DATASETS", "('a', 'b')", "TRAIN.PROPOSAL_FILES", "('a.pkl',)"],
         "TRAIN.PROPOSAL_FILES"),
        (["TEST.PROPOSAL_FILES", "('a.pkl',)"], "TEST.PROPOSAL_FILES"),
        (["FPN.MULTILEVEL_RPN", "True"], "FPN.MULTILEVEL_RPN"),
        (["FPN.MULTILEVEL_ROIS", "True"], "FPN.MULTILEVEL_ROIS"),
        (["MODEL.LOAD_IMAGENET_PRETRAINED_WEIGHTS", "True"],
         "MODEL.LOAD_IMAGENET_PRETRAINED_WEIGHTS"),
    ],
)  # fmt: skip
def test_assert_and_infer_cfg_rejects_impossible_values(settings, key):
    merge_cfg_from_list(settings)
    with pytest.raises(ConfigValueError) as error:
        assert_and_infer_cfg()
    assert str(error.value).startswith(f"{key}: ")
    assert not cfg.is_immutable()  # a failed check does not freeze: the user can fix it


def test_assert_and_infer_cfg_accepts_consistent_settings():
    merge_cfg_from_list(
        [
            "INPUT_FORMAT", "RGB", "TRAIN.AMP", "bf16", "SOLVER.CLIP_GRAD_NORM", "10.0",
            "TRAIN.DATASETS", "('a', 'b')", "TRAIN.PROPOSAL_FILES", "('a.pkl', 'b.pkl')",
            "FPN.FPN_ON", "True", "FPN.MULTILEVEL_RPN", "True",
            "MODEL.LOAD_IMAGENET_PRETRAINED_WEIGHTS", "True",
            "RESNETS.IMAGENET_PRETRAINED_WEIGHTS", "data/pretrained/R-50.pkl",
        ]
    )  # fmt: skip
    assert_and_infer_cfg()
    assert cfg.is_immutable()


# ------------------------------------------------------------------------------------------
# configs/
# ------------------------------------------------------------------------------------------
def test_expected_config_files_exist():
    names = {path.relative_to(REPO_ROOT / "configs").as_posix() for path in CONFIG_FILES}
    for body in ("R-50-C4", "R-50-FPN", "R-101-FPN", "X-101-64x4d-FPN", "X-101-32x8d-FPN"):
        for schedule in ("1x", "2x"):
            assert f"baselines/e2e_faster_rcnn_{body}_{schedule}.yaml" in names
    for gpus in (1, 2, 4, 8):
        assert f"getting_started/tutorial_{gpus}gpu_e2e_faster_rcnn_R-50-FPN.yaml" in names


@pytest.mark.parametrize(
    "path", CONFIG_FILES, ids=[str(p.relative_to(REPO_ROOT / "configs")) for p in CONFIG_FILES]
)
def test_every_config_file_merges_and_passes_checks(path):
    tree = get_cfg()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecatedConfigKeyWarning)  # configs must be current
        merge_cfg_from_file(path, target=tree)
    assert_and_infer_cfg(target=tree)
    assert tree.is_immutable()


def _baseline(name):
    tree = get_cfg()
    merge_cfg_from_file(REPO_ROOT / "configs" / name, target=tree)
    assert_and_infer_cfg(target=tree)
    return tree


def test_r50_fpn_1x_baseline_has_detectron_settings():
    tree = _baseline("baselines/e2e_faster_rcnn_R-50-FPN_1x.yaml")
    assert tree.MODEL.TYPE == "generalized_rcnn"
    assert tree.MODEL.NUM_CLASSES == 81 and tree.MODEL.FASTER_RCNN is True
    assert tree.RPN.RPN_ON is True and tree.TEST.PRECOMPUTED_PROPOSALS is False
    assert tree.NUM_GPUS == 8
    assert (tree.SOLVER.BASE_LR, tree.SOLVER.MAX_ITER) == (0.02, 90000)
    assert tree.SOLVER.STEPS == [0, 60000, 80000] and tree.SOLVER.WEIGHT_DECAY == 0.0001
    assert tree.SOLVER.LR_POLICY == "steps_with_decay"
    assert tree.FPN.FPN_ON and tree.FPN.MULTILEVEL_ROIS and tree.FPN.MULTILEVEL_RPN
    assert tree.FAST_RCNN.ROI_XFORM_METHOD == "RoIAlign"
    assert (tree.FAST_RCNN.ROI_XFORM_RESOLUTION, tree.FAST_RCNN.ROI_XFORM_SAMPLING_RATIO) == (7, 2)
    assert tree.TRAIN.WEIGHTS == (
        "https://dl.fbaipublicfiles.com/detectron/ImageNetPretrained/MSRA/R-50.pkl"
    )
    assert tree.TRAIN.DATASETS == ("coco_2014_train", "coco_2014_valminusminival")
    assert (tree.TRAIN.SCALES, tree.TRAIN.MAX_SIZE) == ((800,), 1333)
    assert (tree.TRAIN.BATCH_SIZE_PER_IM, tree.TRAIN.RPN_PRE_NMS_TOP_N) == (512, 2000)
    assert tree.TEST.DATASETS == ("coco_2014_minival",)
    assert (tree.TEST.SCALE, tree.TEST.MAX_SIZE, tree.TEST.NMS) == (800, 1333, 0.5)
    assert (tree.TEST.RPN_PRE_NMS_TOP_N, tree.TEST.RPN_POST_NMS_TOP_N) == (1000, 1000)


def test_r50_c4_and_resnext_baselines():
    c4 = _baseline("baselines/e2e_faster_rcnn_R-50-C4_1x.yaml")
    assert c4.FPN.FPN_ON is False and c4.TRAIN.IMS_PER_BATCH == 1
    assert c4.RPN.SIZES == (32, 64, 128, 256, 512)
    assert (c4.SOLVER.BASE_LR, c4.SOLVER.MAX_ITER) == (0.01, 180000)
    assert c4.TEST.RPN_PRE_NMS_TOP_N == 6000
    for name, groups, width in (("X-101-64x4d", 64, 4), ("X-101-32x8d", 32, 8)):
        x = _baseline(f"baselines/e2e_faster_rcnn_{name}-FPN_1x.yaml")
        assert (x.RESNETS.NUM_GROUPS, x.RESNETS.WIDTH_PER_GROUP) == (groups, width)
        assert x.RESNETS.STRIDE_1X1 is False
        assert x.TRAIN.WEIGHTS.endswith(f"/{name}.pkl")


@pytest.mark.parametrize("body", ["R-50-C4", "R-50-FPN", "R-101-FPN", "X-101-64x4d-FPN",
                                  "X-101-32x8d-FPN"])  # fmt: skip
def test_2x_schedule_doubles_the_1x_schedule(body):
    one = _baseline(f"baselines/e2e_faster_rcnn_{body}_1x.yaml")
    two = _baseline(f"baselines/e2e_faster_rcnn_{body}_2x.yaml")
    assert two.SOLVER.MAX_ITER == 2 * one.SOLVER.MAX_ITER
    assert two.SOLVER.STEPS == [2 * step for step in one.SOLVER.STEPS]
    one.immutable(False)
    one.SOLVER.MAX_ITER, one.SOLVER.STEPS = two.SOLVER.MAX_ITER, two.SOLVER.STEPS
    assert_same_tree(one, two)  # nothing else differs


@pytest.mark.parametrize("gpus, base_lr, max_iter", [(1, 0.0025, 60000), (2, 0.005, 30000),
                                                     (4, 0.01, 15000), (8, 0.02, 7500)])  # fmt: skip
def test_getting_started_schedules_scale_linearly(gpus, base_lr, max_iter):
    tree = _baseline(f"getting_started/tutorial_{gpus}gpu_e2e_faster_rcnn_R-50-FPN.yaml")
    assert tree.NUM_GPUS == gpus
    assert tree.SOLVER.BASE_LR == pytest.approx(base_lr)
    assert tree.SOLVER.MAX_ITER == max_iter
    assert tree.SOLVER.STEPS == [0, max_iter // 2, max_iter * 2 // 3]
    assert math.isclose(tree.SOLVER.BASE_LR * tree.SOLVER.MAX_ITER, 150.0)
    assert (tree.TRAIN.SCALES, tree.TRAIN.MAX_SIZE, tree.TEST.SCALE) == ((500,), 833, 500)
    assert tree.TRAIN.DATASETS == ("coco_2014_train",)
