"""The global config: Detectron's default options, merging from YAML / command line, checks.

Typical use in a tool::

    from pydetectron.config import cfg, merge_cfg_from_file, merge_cfg_from_list
    merge_cfg_from_file("configs/baselines/e2e_faster_rcnn_R-50-FPN_1x.yaml")
    merge_cfg_from_list(["TEST.NMS", "0.5"])
    assert_and_infer_cfg()          # fills inferred keys, checks, then freezes cfg

Every default below is Detectron's (detectron/core/config.py) or one of Detectron.pytorch's
additions, so Detectron YAML files merge as they are; keys this project adds are marked
"[pydetectron]". Only tools and `from_cfg` builders read the global `cfg`; library code
takes its settings as arguments. Every merge function takes an optional `target` to work on
another tree (e.g. one from `get_cfg()`) instead of the global one.
"""

from __future__ import annotations

import ast
import copy
import difflib
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from pydetectron.utils.collections import AttrDict, FrozenConfigError
from pydetectron.utils.paths import default_data_dir

__all__ = [
    "AttrDict",
    "ConfigFileError",
    "ConfigKeyError",
    "ConfigTypeError",
    "ConfigValueError",
    "DeprecatedConfigKeyWarning",
    "FrozenConfigError",
    "RenamedConfigKeyError",
    "assert_and_infer_cfg",
    "cfg",
    "check_retinanet_cfg",
    "get_cfg",
    "merge_cfg_from_cfg",
    "merge_cfg_from_file",
    "merge_cfg_from_list",
    "reset_cfg",
]

# Repository root (lib/pydetectron/config.py -> ../..); data/ and configs/ live there.
_ROOT_DIR = Path(__file__).resolve().parents[2]


# ============================================================================================
# Errors
# ============================================================================================
class ConfigKeyError(KeyError):
    """A key that the config tree does not have (the message suggests the closest ones)."""

    def __str__(self) -> str:  # KeyError would print the message inside quotes
        return str(self.args[0]) if self.args else ""


class RenamedConfigKeyError(ConfigKeyError):
    """A Detectron key that was renamed; the message names its replacement."""


class ConfigTypeError(ValueError, TypeError):
    """A value whose type does not fit the key's default (names key, expected and given type)."""


class ConfigValueError(ValueError):
    """A value or combination of values that cannot work (found by assert_and_infer_cfg)."""


class ConfigFileError(ValueError):
    """A config file that cannot be read safely (bad YAML, unsafe tag, not a mapping)."""


class UnsupportedConfigKeyError(ConfigKeyError):
    """A Detectron key kept so its YAMLs load, set to a value pydetectron does not implement."""


class DeprecatedConfigKeyWarning(UserWarning):
    """A Detectron key that no longer has any effect; it is ignored."""


# ============================================================================================
# Defaults
# ============================================================================================
def _train_defaults() -> AttrDict:
    t = AttrDict()
    t.WEIGHTS = ""  # weights (.pkl / .pth / URL) to initialise the network from
    t.DATASETS = ()  # dataset names from the catalog; several are trained on as their union
    t.SCALES = (600,)  # shorter-side pixel sizes; one is drawn per image (scale jitter)
    t.MAX_SIZE = 1000  # cap on the longer side of a scaled image
    t.IMS_PER_BATCH = 2  # images per GPU per minibatch
    t.BATCH_SIZE_PER_IM = 64  # sampled RoIs per image for the box head
    t.FG_FRACTION = 0.25  # target share of foreground RoIs in that sample
    t.FG_THRESH = 0.5  # IoU >= this with a gt box: foreground RoI
    t.BG_THRESH_HI = 0.5  # IoU in [LO, HI): background RoI
    t.BG_THRESH_LO = 0.0
    t.USE_FLIPPED = True  # also train on horizontally flipped images
    t.BBOX_THRESH = 0.5  # IoU an RoI needs with its gt box to get a regression target
    t.SNAPSHOT_ITERS = 80000  # checkpoint period (divided by NUM_GPUS by the trainer)
    t.PROPOSAL_FILES = ()  # precomputed proposals, one file per entry of DATASETS
    t.ASPECT_GROUPING = True  # batch images of like aspect ratio (saves padding memory)
    t.ASPECT_CROPPING = False  # crop images whose aspect ratio is outside [ASPECT_LO, ASPECT_HI]
    t.ASPECT_HI = 2
    t.ASPECT_LO = 0.5
    # RPN training
    t.GENERATE_PROPOSALS_ON_GPU = False
    t.RPN_POSITIVE_OVERLAP = 0.7  # anchor IoU >= this: positive
    t.RPN_NEGATIVE_OVERLAP = 0.3  # anchor IoU < this: negative
    t.RPN_FG_FRACTION = 0.5  # share of positives in an RPN minibatch
    t.RPN_BATCH_SIZE_PER_IM = 256  # anchors sampled per image
    t.RPN_NMS_THRESH = 0.7  # NMS on proposals during end-to-end training
    t.RPN_PRE_NMS_TOP_N = 12000  # top proposals kept before NMS (per level with FPN)
    t.RPN_POST_NMS_TOP_N = 2000  # proposals kept after NMS (in total)
    t.RPN_STRADDLE_THRESH = 0  # drop anchors further than this outside the image; -1 keeps all
    t.RPN_MIN_SIZE = 0.0  # minimum proposal side, in original image pixels
    t.CROWD_FILTER_THRESH = 0.7  # drop proposals this much inside crowd regions
    t.GT_MIN_AREA = -1  # ignore gt objects smaller than this area
    t.FREEZE_CONV_BODY = False  # train the heads only
    t.AUTO_RESUME = True  # resume from the newest checkpoint in the output folder
    t.COPY_WEIGHTS = False  # copy TRAIN.WEIGHTS in as a candidate checkpoint
    t.FREEZE_AT = 2  # stop gradients at this ResNet stage (stem and stages up to it frozen)
    t.KEEP_EMPTY_IMAGES = False  # [pydetectron] keep images that have no usable gt box
    t.AMP = ""  # [pydetectron] mixed precision: '' (off), 'fp16' or 'bf16'
    t.EVAL_PERIOD = 0  # [pydetectron] evaluate TEST.DATASETS every N steps and at the end; 0 = off
    t.EMA_DECAY = 0.0  # [pydetectron] keep an exponential moving average of the weights; 0 = off
    return t


def _data_loader_defaults() -> AttrDict:
    d = AttrDict()
    d.NUM_THREADS = 4  # data loading workers
    d.MINIBATCH_QUEUE_SIZE = 64  # Detectron's shared minibatch queue size
    d.BLOBS_QUEUE_CAPACITY = 8  # Detectron's per-GPU queue capacity
    d.SKIP_MISSING_IMAGES = False  # [pydetectron] skip (with a warning) unreadable images
    d.PIN_MEMORY = True  # [pydetectron] pinned host memory for faster GPU copies
    return d


def _test_augmentation(area_keys: dict[str, int], heuristics: dict[str, str]) -> AttrDict:
    """One TEST.*_AUG section; they differ only in their heuristic and area keys."""
    a = AttrDict()
    a.ENABLED = False
    a.update(heuristics)  # how the augmented predictions are combined
    a.H_FLIP = False  # horizontal flip at the original scale
    a.SCALES = ()  # extra shorter-side sizes
    a.MAX_SIZE = 4000  # cap on the longer side at those scales
    a.SCALE_H_FLIP = False  # flip at every extra scale too
    a.SCALE_SIZE_DEP = False  # pick scales by object size
    a.update(area_keys)
    a.ASPECT_RATIOS = ()  # extra aspect ratios (relative to image width)
    a.ASPECT_RATIO_H_FLIP = False
    return a


def _test_defaults() -> AttrDict:
    t = AttrDict()
    t.WEIGHTS = ""  # weights to evaluate
    t.DATASETS = ()  # datasets evaluated one after another
    t.SCALE = 600  # shorter-side size at test time
    t.MAX_SIZE = 1000
    t.NMS = 0.3  # IoU threshold of the per-class NMS on detections
    t.BBOX_REG = True  # apply the box head's regression
    t.PROPOSAL_FILES = ()  # precomputed proposals, one file per entry of DATASETS
    t.GENERATE_PROPOSALS_ON_GPU = False
    t.PROPOSAL_LIMIT = 2000  # proposals per image used from precomputed files
    t.RPN_NMS_THRESH = 0.7
    t.RPN_PRE_NMS_TOP_N = 12000  # per level with FPN
    t.RPN_POST_NMS_TOP_N = 2000  # in total
    t.RPN_MIN_SIZE = 0.0  # minimum proposal side (see TRAIN.RPN_MIN_SIZE)
    t.DETECTIONS_PER_IM = 100  # COCO's limit
    t.DETECTIONS_KEEP_TIES = True  # [pydetectron] keep detections tied with the last one (Detectron)
    t.BOX_MIN_SIZE = 0.0  # [pydetectron] drop detections smaller than this before NMS (torchvision: 0.01)
    t.BOX_DECODE_SPACE = "original"  # [pydetectron] decode in 'original' image pixels (Detectron) or 'input'
    t.SCORE_THRESH = 0.05  # drop detections scoring lower
    t.COMPETITION_MODE = True  # keep the result files after evaluation
    t.FORCE_JSON_DATASET_EVAL = False  # use the COCO evaluator for any dataset
    t.PRECOMPUTED_PROPOSALS = True  # [inferred] False with RPN or RetinaNet
    t.CLASS_SPECIFIC_AR = False  # average recall per class, then averaged
    t.BBOX_AUG = _test_augmentation(
        {"AREA_TH_LO": 50**2, "AREA_TH_HI": 180**2},
        {"SCORE_HEUR": "UNION", "COORD_HEUR": "UNION"},  # 'ID', 'AVG' or 'UNION'
    )
    t.MASK_AUG = _test_augmentation(
        {"AREA_TH": 180**2}, {"HEUR": "SOFT_AVG"}  # 'SOFT_AVG', 'SOFT_MAX' or 'LOGIT_AVG'
    )
    t.KPS_AUG = _test_augmentation(
        {"AREA_TH": 180**2}, {"HEUR": "HM_AVG"}  # 'HM_AVG' or 'HM_MAX'
    )
    t.SOFT_NMS = AttrDict()
    t.SOFT_NMS.ENABLED = False  # soft NMS instead of NMS (its IoU threshold is TEST.NMS)
    t.SOFT_NMS.METHOD = "linear"  # 'linear' or 'gaussian'
    t.SOFT_NMS.SIGMA = 0.5
    t.BBOX_VOTE = AttrDict()
    t.BBOX_VOTE.ENABLED = False  # box voting after NMS
    t.BBOX_VOTE.VOTE_TH = 0.8  # IoU of the boxes that vote
    t.BBOX_VOTE.SCORING_METHOD = "ID"  # 'ID', 'AVG', 'IOU_AVG', 'GENERALIZED_AVG', 'QUASI_SUM'
    t.BBOX_VOTE.SCORING_METHOD_BETA = 1.0
    return t


def _model_defaults() -> AttrDict:
    m = AttrDict()
    m.TYPE = ""  # the model in modeling.MODEL_TYPES: 'generalized_rcnn' or 'retinanet'
    m.CONV_BODY = ""  # registered body name, e.g. 'FPN.fpn_ResNet50_conv5_body'
    m.NUM_CLASSES = -1  # including background (81 for COCO); must be set
    m.CLS_AGNOSTIC_BBOX_REG = False  # one box regressor shared by all classes
    m.BBOX_REG_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # (dx, dy, dw, dh) target weights
    m.FASTER_RCNN = False  # RPN + Fast R-CNN trained end to end / RPN proposals at test
    m.MASK_ON = False  # predict instance masks
    m.KEYPOINTS_ON = False  # predict keypoints
    m.RPN_ONLY = False  # the model stops at RPN proposals
    m.EXECUTION_TYPE = "dag"  # Detectron's Caffe2 net type (kept for config compatibility)
    m.SHARE_RES5 = False  # [inferred] mask/keypoint head reuses the box head's res5
    m.LOAD_IMAGENET_PRETRAINED_WEIGHTS = False  # load RESNETS.IMAGENET_PRETRAINED_WEIGHTS
    m.UNSUPERVISED_POSE = False
    m.BOX_PLUS_ONE = True  # [pydetectron] Detectron's +1 in box widths/areas; False: torchvision
    m.EXTRA_ROI_BRANCHES = ()  # [pydetectron] names of registered RoI branches added to the RoI heads
    return m


def _retinanet_defaults() -> AttrDict:
    r = AttrDict()
    r.RETINANET_ON = False  # build a RetinaNet (as MODEL.TYPE: retinanet does)
    r.ASPECT_RATIOS = (0.5, 1.0, 2.0)
    r.SCALES_PER_OCTAVE = 3
    r.ANCHOR_SCALE = 4  # anchor size = ANCHOR_SCALE * level stride (times the octave scale)
    r.NUM_CONVS = 4  # convs in the class and box towers (before the logits conv)
    r.BBOX_REG_WEIGHT = 1.0
    r.BBOX_REG_BETA = 0.11  # smooth-L1 beta (0: L1)
    r.PRE_NMS_TOP_N = 1000  # per level, at inference
    r.POSITIVE_OVERLAP = 0.5
    r.NEGATIVE_OVERLAP = 0.4
    r.LOSS_ALPHA = 0.25  # focal loss alpha
    r.LOSS_GAMMA = 2.0  # focal loss gamma
    r.PRIOR_PROB = 0.01  # initial foreground probability (sets the logits bias)
    r.SHARE_CLS_BBOX_TOWER = False
    r.CLASS_SPECIFIC_BBOX = False
    r.SOFTMAX = False
    r.INFERENCE_TH = 0.05  # score threshold at inference
    # [pydetectron] score threshold on the coarsest level (Detectron: 0, so every image has
    # candidates; torchvision: the same as INFERENCE_TH)
    r.COARSEST_INFERENCE_TH = 0.0
    # [pydetectron] anchors: 'detectron' (generate_anchors, octave-major cells) or 'torchvision'
    # (its cell rounding and aspect-major order, octave sizes truncated to integers)
    r.ANCHOR_CONVENTION = "detectron"
    # [pydetectron] a gt box's best anchors are foreground 'unless_background' (IoU below
    # NEGATIVE_OVERLAP: Detectron), 'always' (torchvision) or not at all ('none')
    r.LOW_QUALITY_MATCHES = "unless_background"
    # [pydetectron] losses / (sum over images of foreground + 1) ('batch_fg_plus_one', Detectron),
    # or per image / max(1, foreground), averaged over images ('per_image_fg', torchvision)
    r.LOSS_NORMALIZATION = "batch_fg_plus_one"
    # [pydetectron] the sigmoid classifier also has a logit for class 0, always a negative and never
    # reported (torchvision predicts NUM_CLASSES logits; Detectron NUM_CLASSES - 1)
    r.BACKGROUND_LOGIT = False
    return r


def _solver_defaults() -> AttrDict:
    s = AttrDict()
    s.TYPE = "SGD"  # 'SGD', 'Adam' or 'AdamW' (any case)
    s.BETAS = (0.9, 0.999)  # [pydetectron] Adam / AdamW betas
    s.EPS = 1e-8  # [pydetectron] Adam / AdamW epsilon
    s.LAYER_DECAY = 1.0  # [pydetectron] AdamW layer-wise LR decay of a ported backbone (ViTDet: 0.7); 1.0 = off
    s.BASE_LR = 0.001
    s.LR_POLICY = "step"  # 'step', 'steps_with_decay', 'steps_with_lrs', 'cosine_decay', ...
    s.GAMMA = 0.1  # decay factor of the step policies; final/initial LR for 'exp_decay'
    s.STEP_SIZE = 30000  # for 'step'
    s.STEPS = []  # iterations where 'steps_with_*' policies move to the next step
    s.LRS = []  # learning rates of 'steps_with_lrs'
    s.MAX_ITER = 40000
    s.MOMENTUM = 0.9
    s.WEIGHT_DECAY = 0.0005
    s.WEIGHT_DECAY_GN = 0.0  # for GroupNorm scales and shifts
    s.BIAS_DOUBLE_LR = True  # biases learn at twice the LR
    s.BIAS_WEIGHT_DECAY = False  # apply weight decay to biases too
    s.WARM_UP_ITERS = 500
    s.WARM_UP_FACTOR = 1.0 / 3.0  # warm-up starts at BASE_LR * this
    s.WARM_UP_METHOD = "linear"  # or 'constant'
    s.SCALE_MOMENTUM = True  # rescale momentum history when the LR changes
    s.SCALE_MOMENTUM_THRESHOLD = 1.1  # ...only if it changes by more than this ratio
    s.LOG_LR_CHANGE_THRESHOLD = 1.1
    s.CLIP_GRAD_NORM = 0.0  # [pydetectron] clip the total gradient norm; 0 = off
    return s


def _fast_rcnn_defaults() -> AttrDict:
    f = AttrDict()
    f.ROI_BOX_HEAD = ""  # registered box head, e.g. 'fast_rcnn_heads.roi_2mlp_head'
    f.MLP_HEAD_DIM = 1024
    f.CONV_HEAD_DIM = 256
    f.NUM_STACKED_CONVS = 4
    f.ROI_XFORM_METHOD = "RoIPoolF"  # 'RoIPoolF' (= RoIPool), 'RoIAlign' or 'RoICrop'
    f.ROI_XFORM_SAMPLING_RATIO = 0  # RoIAlign sampling points per bin (0 = adaptive)
    f.ROI_XFORM_RESOLUTION = 14
    f.ROI_XFORM_ALIGNED = False  # [pydetectron] RoIAlign half-pixel 'aligned' mode
    return f


def _rpn_defaults() -> AttrDict:
    r = AttrDict()
    r.RPN_ON = False  # [inferred] the model has an RPN
    r.OUT_DIM_AS_IN_DIM = True  # hidden conv width equals its input width (Detectron)
    r.OUT_DIM = 512  # hidden conv width when OUT_DIM_AS_IN_DIM is False
    r.CLS_ACTIVATION = "sigmoid"  # objectness as 'sigmoid' (Detectron) or 2-way 'softmax'
    r.SIZES = (64, 128, 256, 512)  # anchor sizes in input pixels (not used by FPN)
    r.STRIDE = 16  # stride of the feature map the RPN sits on
    r.ASPECT_RATIOS = (0.5, 1, 2)
    r.ANCHOR_CONVENTION = "detectron"  # [pydetectron] 'detectron' (generate_anchors) or 'torchvision'
    r.MIN_SIZE_RULE = "detectron"  # [pydetectron] proposal min size in original px + centre check, or 'torchvision'
    r.SCORE_THRESH = 0.0  # [pydetectron] drop proposals with objectness below this (torchvision)
    r.CLS_LOSS_NORMALIZATION = ""  # [pydetectron] '' (Detectron's), 'num_sampled' or 'batch_size_per_im'
    r.BBOX_LOSS_NORMALIZATION = "per_image"  # [pydetectron] RPN box loss normalisation (Detectron: per_image)
    return r


def _fpn_defaults() -> AttrDict:
    f = AttrDict()
    f.FPN_ON = False
    f.DIM = 256  # channels of every FPN level
    f.ZERO_INIT_LATERAL = False
    f.COARSEST_STRIDE = 32  # inputs are padded to a multiple of this
    f.MULTILEVEL_ROIS = False  # RoIs pooled from the level their size maps to
    f.ROI_CANONICAL_SCALE = 224  # RoI of this size maps to ROI_CANONICAL_LEVEL
    f.ROI_CANONICAL_LEVEL = 4
    f.ROI_MAX_LEVEL = 5
    f.ROI_MIN_LEVEL = 2
    f.ROI_LEVEL_MAPPING = "detectron"  # [pydetectron] RoI -> level rule: 'detectron' or 'torchvision'
    f.MULTILEVEL_RPN = False  # RPN on every FPN level
    f.RPN_MAX_LEVEL = 6
    f.RPN_MIN_LEVEL = 2
    f.RPN_ASPECT_RATIOS = (0.5, 1, 2)
    f.RPN_ANCHOR_START_SIZE = 32  # anchor size at RPN_MIN_LEVEL, doubling per level
    f.RPN_COLLECT_SCALE = 1  # [inferred by the trainer] scales RPN_POST_NMS_TOP_N
    f.EXTRA_CONV_LEVELS = False  # RetinaNet's extra levels
    f.EXTRA_CONV_LEVELS_INPUT = "backbone"  # [pydetectron] the first reads C5 ('backbone', Detectron) or P5 ('pyramid')
    f.USE_GN = False  # GroupNorm in the FPN layers
    return f


def _mrcnn_defaults() -> AttrDict:
    m = AttrDict()
    m.ROI_MASK_HEAD = ""  # registered mask head
    m.RESOLUTION = 14  # mask prediction size
    m.ROI_XFORM_METHOD = "RoIAlign"
    m.ROI_XFORM_RESOLUTION = 7
    m.ROI_XFORM_SAMPLING_RATIO = 0
    m.DIM_REDUCED = 256  # mask head channels
    m.DILATION = 2
    m.UPSAMPLE_RATIO = 1
    m.USE_FC_OUTPUT = False
    m.CONV_INIT = "GaussianFill"  # or 'MSRAFill'
    m.CLS_SPECIFIC_MASK = True
    m.WEIGHT_LOSS_MASK = 1.0
    m.THRESH_BINARIZE = 0.5  # soft mask -> binary mask threshold
    m.MEMORY_EFFICIENT_LOSS = True
    return m


def _krcnn_defaults() -> AttrDict:
    k = AttrDict()
    k.ROI_KEYPOINTS_HEAD = ""  # registered keypoint head
    k.HEATMAP_SIZE = -1  # output (and loss) heatmap size, e.g. 56
    k.UP_SCALE = -1  # bilinear upsampling factor of the final heatmap
    k.USE_DECONV = False
    k.DECONV_DIM = 256
    k.USE_DECONV_OUTPUT = False
    k.DILATION = 1
    k.DECONV_KERNEL = 4
    k.NUM_KEYPOINTS = -1  # 17 for COCO
    k.NUM_STACKED_CONVS = 8
    k.CONV_HEAD_DIM = 256
    k.CONV_HEAD_KERNEL = 3
    k.CONV_INIT = "GaussianFill"
    k.NMS_OKS = False  # NMS by object keypoint similarity
    k.KEYPOINT_CONFIDENCE = "bbox"  # 'bbox', 'logit' or 'prob'
    k.ROI_XFORM_METHOD = "RoIAlign"
    k.ROI_XFORM_RESOLUTION = 7
    k.ROI_XFORM_SAMPLING_RATIO = 0
    k.MIN_KEYPOINT_COUNT_FOR_VALID_MINIBATCH = 20
    k.INFERENCE_MIN_SIZE = 0
    k.LOSS_WEIGHT = 1.0
    k.NORMALIZE_BY_VISIBLE_KEYPOINTS = True
    k.UPSAMPLE_MODE = "deconv"  # [pydetectron] UP_SCALE upsampling: 'deconv' (Detectron) or 'interpolate' (torchvision)
    return k


def _resnets_defaults() -> AttrDict:
    r = AttrDict()
    r.NUM_GROUPS = 1  # 1: ResNet, > 1: ResNeXt
    r.WIDTH_PER_GROUP = 64
    r.STRIDE_1X1 = True  # stride on the 1x1 conv (MSRA models); False for C2/Torch models
    r.TRANS_FUNC = "bottleneck_transformation"
    r.STEM_FUNC = "basic_bn_stem"
    r.SHORTCUT_FUNC = "basic_bn_shortcut"
    r.RES5_DILATION = 1
    r.NORM = ""  # [pydetectron] '' (from *_FUNC), 'AffineChannel', 'FrozenBN', 'BN' or 'GN'
    r.FREEZE_AT = 2  # Detectron.pytorch spelling of TRAIN.FREEZE_AT (0 = nothing frozen, 1 = stem)
    r.IMAGENET_PRETRAINED_WEIGHTS = ""  # body weights; relative paths start at ROOT_DIR
    r.USE_GN = False  # GroupNorm instead of frozen BatchNorm
    return r


def _group_norm_defaults() -> AttrDict:
    g = AttrDict()
    g.DIM_PER_GP = -1  # channels per group (-1: use NUM_GROUPS)
    g.NUM_GROUPS = 32  # groups (-1: use DIM_PER_GP)
    g.EPSILON = 1e-5
    return g


def _toolbox_defaults() -> AttrDict:
    """[pydetectron] Options of the `toolbox.<backbone>+<neck>` conv bodies (MODEL.CONV_BODY)."""
    t = AttrDict()
    t.PRETRAINED = ""  # local backbone weights: a train_classifier.py checkpoint, timm .safetensors / .pth, ...
    t.BACKBONE_KWARGS = ""  # extra constructor arguments as a Python dict literal, e.g. "{'depths': (1, 1, 2, 1)}"
    t.NORM = ""  # '' keeps the backbone's own norms; 'FrozenBN' freezes every BatchNorm2d's statistics and affine
    t.FREEZE_AT = 0  # 0 trains all; k > 0 freezes the parameters that the maps at strides <= 2**k depend on
    t.OUT_NORMS = True  # Swin / ConvNeXt: a LayerNorm on each output map (their detection papers)
    t.DROP_PATH_RATE = 0.0  # stochastic depth of the ported backbones (ViT, Swin, ConvNeXt, ...)
    t.IMG_SIZE = 0  # ViT / Swin pre-training size its position tables are made for (0: the variant's default)
    t.VIT_WINDOW_SIZE = 14  # ViT with simple_fpn: window attention size in the non-global blocks (0: all global)
    t.VIT_GLOBAL_BLOCKS = ()  # ViT with simple_fpn: global-attention blocks; () = 4 evenly spaced (B: 2, 5, 8, 11)
    t.VIT_REL_POS = True  # ViT with simple_fpn: decomposed relative position bias in every block (ViTDet)
    t.NECK_CHANNELS = 256  # width of every neck output (the RPN and RoI heads read it)
    t.NECK_NORM = ""  # neck conv norm: '' the neck's own (BN; LN for simple_fpn), 'none', 'BN', 'GN', 'FrozenBN', 'LN'
    t.NECK_FUSION = "sum"  # fpn / pan / semantic_fpn: 'sum' or 'concat' of lateral and top-down maps
    t.NECK_LAYERS = 1  # bifpn: number of repeated BiFPN layers
    return t


def _build_defaults() -> AttrDict:
    """A fresh tree holding every default value."""
    c = AttrDict()
    c.TRAIN = _train_defaults()
    c.DATA_LOADER = _data_loader_defaults()
    c.TEST = _test_defaults()
    c.MODEL = _model_defaults()
    c.RETINANET = _retinanet_defaults()
    c.SOLVER = _solver_defaults()
    c.FAST_RCNN = _fast_rcnn_defaults()
    c.RPN = _rpn_defaults()
    c.FPN = _fpn_defaults()
    c.MRCNN = _mrcnn_defaults()
    c.KRCNN = _krcnn_defaults()
    c.RFCN = AttrDict(PS_GRID_SIZE=3)  # position-sensitive RoI pooling grid
    c.RESNETS = _resnets_defaults()
    c.GROUP_NORM = _group_norm_defaults()
    c.TOOLBOX = _toolbox_defaults()
    c.NUM_GPUS = 1
    c.USE_NCCL = False
    c.DEDUP_BOXES = 1.0 / 16.0  # scale used to find boxes equal in feature space
    c.BBOX_XFORM_CLIP = math.log(1000.0 / 16.0)  # clamp on predicted dw, dh before exp
    c.PIXEL_MEANS = (102.9801, 115.9465, 122.7717)  # subtracted per channel, INPUT_FORMAT order
    c.PIXEL_STDS = (1.0, 1.0, 1.0)  # [pydetectron] divides after mean subtraction (0-255 units)
    c.INPUT_FORMAT = "BGR"  # [pydetectron] channel order the network sees: 'BGR' or 'RGB'
    c.INPUT_RESIZE = "detectron"  # [pydetectron] resize rule: 'detectron' (OpenCV, rounded) or 'torchvision'
    c.RNG_SEED = 3
    c.EPS = 1e-14
    c.ROOT_DIR = str(_ROOT_DIR)
    c.DATA_DIR = default_data_dir()  # $PYDETECTRON_DATA_DIR, else <ROOT_DIR>/data
    c.OUTPUT_DIR = "/tmp"
    c.MATLAB = "matlab"
    c.MEMONGER = True
    c.MEMONGER_SHARE_ACTIVATIONS = False
    c.VIS = False  # save detection visualizations
    c.VIS_TH = 0.9  # score threshold of those
    c.EXPECTED_RESULTS = []  # [[dataset, task, metric, value], ...] checked after testing
    c.EXPECTED_RESULTS_RTOL = 0.1
    c.EXPECTED_RESULTS_ATOL = 0.005
    c.EXPECTED_RESULTS_SIGMA_TOL = 4
    c.EXPECTED_RESULTS_EMAIL = ""
    c.DOWNLOAD_CACHE = "/tmp/detectron-download-cache"
    c.CLUSTER = AttrDict(ON_CLUSTER=False)
    c.POOLING_MODE = "crop"  # Detectron.pytorch legacy RoI transform name
    c.POOLING_SIZE = 7  # Detectron.pytorch legacy RoI output size
    c.CROP_RESIZE_WITH_MAX_POOL = True  # RoICrop: crop at 2x then max-pool
    c.CUDA = False  # [inferred by the tools] a GPU is used
    c.DEBUG = False
    return c


# Keys that no longer do anything: ignored with a warning. Detectron's list, plus
# Detectron.pytorch keys this project does not carry.
_DEPRECATED_KEYS = frozenset(
    {
        "FINAL_MSG",
        "MODEL.DILATION",
        "ROOT_GPU_ID",
        "RPN.ON",
        "TRAIN.BBOX_NORMALIZE_TARGETS_PRECOMPUTED",
        "TRAIN.DROPOUT",
        "USE_GPU_NMS",
        "TEST.NUM_TEST_IMAGES",
        "PYTORCH_VERSION_LESS_THAN_040",
        "TRAIN.BBOX_NORMALIZE_TARGETS",
        "TRAIN.BBOX_INSIDE_WEIGHTS",
        "TRAIN.BBOX_NORMALIZE_MEANS",
        "TRAIN.BBOX_NORMALIZE_STDS",
    }
)

_TUPLE_NOTE = "Also convert it to a tuple, e.g. {} -> {}."
# Renamed keys: old name -> new name, or (new name, what else to change).
_RENAMED_KEYS: dict[str, str | tuple[str, str]] = {
    "EXAMPLE.RENAMED.KEY": "EXAMPLE.KEY",  # an example entry
    "MODEL.PS_GRID_SIZE": "RFCN.PS_GRID_SIZE",
    "MODEL.ROI_HEAD": "FAST_RCNN.ROI_BOX_HEAD",
    "MRCNN.MASK_HEAD_NAME": "MRCNN.ROI_MASK_HEAD",
    "TRAIN.DATASET": (
        "TRAIN.DATASETS",
        _TUPLE_NOTE.format(
            "'coco_2014_train:coco_2014_valminusminival'",
            "('coco_2014_train', 'coco_2014_valminusminival')",
        ),
    ),
    "TRAIN.PROPOSAL_FILE": (
        "TRAIN.PROPOSAL_FILES",
        _TUPLE_NOTE.format("'path/a.pkl:path/b.pkl'", "('path/a.pkl', 'path/b.pkl')"),
    ),
    "TEST.SCALES": ("TEST.SCALE", "Also convert it from a tuple to an int, e.g. (600,) -> 600."),
    "TEST.DATASET": (
        "TEST.DATASETS",
        _TUPLE_NOTE.format("'coco_2014_minival'", "('coco_2014_minival',)"),
    ),
    "TEST.PROPOSAL_FILE": (
        "TEST.PROPOSAL_FILES",
        _TUPLE_NOTE.format("'path/props.pkl'", "('path/props.pkl',)"),
    ),
}

_PRECOMPUTED = "precomputed-proposal (Fast R-CNN) models are not supported yet; use an RPN (MODEL.FASTER_RCNN)"
# Keys kept so Detectron / Detectron.pytorch YAMLs load, whose non-default values pydetectron
# does not implement: setting one to anything but its default is an error with this message.
_UNSUPPORTED_KEYS: dict[str, str] = {
    "TRAIN.BBOX_THRESH": _PRECOMPUTED,
    "TRAIN.CROWD_FILTER_THRESH": _PRECOMPUTED,
    "TEST.PROPOSAL_LIMIT": _PRECOMPUTED,
    "DEDUP_BOXES": _PRECOMPUTED,
    "TRAIN.GENERATE_PROPOSALS_ON_GPU": "proposals are always generated on the model's device; remove the key",
    "TEST.GENERATE_PROPOSALS_ON_GPU": "proposals are always generated on the model's device; remove the key",
    "TRAIN.COPY_WEIGHTS": "not supported; TRAIN.WEIGHTS is read in place",
    "DATA_LOADER.MINIBATCH_QUEUE_SIZE": "Detectron's Caffe2 queue; set DATA_LOADER.NUM_THREADS (or --nw) instead",
    "DATA_LOADER.BLOBS_QUEUE_CAPACITY": "Detectron's Caffe2 queue; set DATA_LOADER.NUM_THREADS (or --nw) instead",
    "TEST.COMPETITION_MODE": "result files are always kept; remove the key",
    "TEST.FORCE_JSON_DATASET_EVAL": "every dataset is evaluated with the COCO json evaluator already; remove the key",
    "TEST.CLASS_SPECIFIC_AR": "per-class average recall is not supported yet",
    "TEST.BBOX_AUG.SCALE_SIZE_DEP": "size-dependent test-time scales are not supported yet",
    "TEST.MASK_AUG.SCALE_SIZE_DEP": "size-dependent test-time scales are not supported yet",
    "TEST.KPS_AUG.SCALE_SIZE_DEP": "size-dependent test-time scales are not supported yet",
    "MODEL.EXECUTION_TYPE": "Caffe2 net types do not apply to PyTorch; remove the key",
    "MODEL.UNSUPERVISED_POSE": "unsupervised pose training is not supported",
    "MRCNN.MEMORY_EFFICIENT_LOSS": "the mask loss is always computed on the sampled foreground only; remove the key",
    "RFCN.PS_GRID_SIZE": "R-FCN models are not supported",
    "USE_NCCL": "multi-GPU training runs through torchrun (DDP, NCCL on GPUs); remove the key",
    "EPS": "not used by pydetectron; remove the key",
    "MATLAB": "MATLAB evaluation is not supported; datasets are evaluated with pycocotools",
    "MEMONGER": "Caffe2 memory optimisation does not apply to PyTorch; remove the key",
    "MEMONGER_SHARE_ACTIVATIONS": "Caffe2 memory optimisation does not apply to PyTorch; remove the key",
    "EXPECTED_RESULTS_EMAIL": "e-mail reports are not sent; test_net.py exits with code 1 on a FAIL instead",
    "DOWNLOAD_CACHE": "set the PYDETECTRON_CACHE environment variable instead",
    "CLUSTER.ON_CLUSTER": "cluster launchers are not supported; use torchrun",
    "POOLING_MODE": "use FAST_RCNN.ROI_XFORM_METHOD (RoIAlign, RoIPoolF) instead",
    "POOLING_SIZE": "use FAST_RCNN.ROI_XFORM_RESOLUTION (and MRCNN / KRCNN's) instead",
    "DEBUG": "use the tools' --debug flag instead",
}
# Keys that only matter when another key is set: (that key, what it needs to be).
_DEPENDENT_KEYS: dict[str, str] = {
    "TEST.BBOX_AUG.AREA_TH_LO": "TEST.BBOX_AUG.SCALE_SIZE_DEP",
    "TEST.BBOX_AUG.AREA_TH_HI": "TEST.BBOX_AUG.SCALE_SIZE_DEP",
    "TEST.MASK_AUG.AREA_TH": "TEST.MASK_AUG.SCALE_SIZE_DEP",
    "TEST.KPS_AUG.AREA_TH": "TEST.KPS_AUG.SCALE_SIZE_DEP",
}


# Keys assert_and_infer_cfg sets from others (a config may only repeat the inferred value).
_INFERRED_KEYS: dict[str, str] = {
    "RPN.RPN_ON": "MODEL.FASTER_RCNN / MODEL.RPN_ONLY",
    "TEST.PRECOMPUTED_PROPOSALS": "RPN.RPN_ON / RETINANET.RETINANET_ON",
    "MODEL.SHARE_RES5": "MRCNN.ROI_MASK_HEAD / KRCNN.ROI_KEYPOINTS_HEAD",
}


def inferred_keys() -> dict[str, str]:
    """Keys set by assert_and_infer_cfg: key -> the keys it is inferred from."""
    return dict(_INFERRED_KEYS)


def unsupported_keys() -> dict[str, str]:
    """Keys accepted only at their default value, each with what to do instead."""
    return dict(_UNSUPPORTED_KEYS)


def dependent_keys() -> dict[str, str]:
    """Keys read only when another (unsupported) key is set: key -> that key."""
    return dict(_DEPENDENT_KEYS)


# Mask / keypoint heads that run on the box head's res5 output (Detectron.pytorch).
_SHARE_RES5_HEADS = frozenset({"mask_rcnn_heads.mask_rcnn_fcn_head_v0upshare"})

# The global config. Tools merge into it; `from_cfg` builders read it.
cfg = _build_defaults()


def _value_at(node: AttrDict, full_key: str) -> Any:
    for part in full_key.split("."):
        node = node[part]
    return node


_DEFAULTS = _build_defaults()  # read-only: what each key is before any merge
# The default of each unsupported key (what a config may still set it to).
_DEFAULT_VALUES = {key: copy.deepcopy(_value_at(cfg, key)) for key in _UNSUPPORTED_KEYS}


def get_cfg() -> AttrDict:
    """A fresh, mutable tree of the default values (independent of the global `cfg`)."""
    return _build_defaults()


def reset_cfg() -> None:
    """Put the global `cfg` back to the defaults, in place and unfrozen (tests use this)."""
    cfg.immutable(False)
    dict.clear(cfg)
    dict.update(cfg, _build_defaults())


# ============================================================================================
# Merging
# ============================================================================================
def merge_cfg_from_file(path: str | Path, target: AttrDict | None = None) -> None:
    """Merge a YAML config file into `target` (default: the global `cfg`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigFileError(f"{path}: cannot read the config file ({error})") from error
    data = _load_yaml(text, str(path))
    _merge_atomically([data], _target(target), str(path))


def merge_cfg_from_cfg(other: Mapping[str, Any], target: AttrDict | None = None) -> None:
    """Merge another config tree (or a nested mapping) into `target` (default: `cfg`)."""
    _merge_atomically([other], _target(target), "merged config")


def merge_cfg_from_list(pairs: Sequence[Any], target: AttrDict | None = None) -> None:
    """Merge ``["KEY.PATH", "VALUE", ...]`` (e.g. from ``--set``) into `target` (default: `cfg`).

    String values are read as Python literals ("0.5", "(800,)", "True", "[1, 2]"); a value
    that is no literal stays a string ("coco_2014_train", "path/to/file").
    """
    if isinstance(pairs, str) or len(pairs) % 2 != 0:
        raise ValueError(
            f"merge_cfg_from_list expects KEY VALUE pairs; got {len(pairs)} items: {pairs!r}"
        )
    updates = []
    for full_key, value in zip(pairs[0::2], pairs[1::2]):
        if not isinstance(full_key, str) or not full_key:
            raise ConfigKeyError(f"command line: {full_key!r}: a config key must be a dotted string")
        update: Any = value
        for part in reversed(full_key.split(".")):
            update = {part: update}
        updates.append(update)
    _merge_atomically(updates, _target(target), "command line")


def _target(target: AttrDict | None) -> AttrDict:
    return cfg if target is None else target


def _load_yaml(text: str, source: str) -> Any:
    """Parse YAML with the safe loader: python tags are refused, nothing is constructed."""
    try:
        data = yaml.load(text, Loader=_ConfigLoader)  # a SafeLoader subclass
    except yaml.YAMLError as error:
        raise ConfigFileError(f"{source}: not a valid safe YAML config: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigFileError(
            f"{source}: a config file must hold a mapping of keys, got {type(data).__name__}"
        )
    return data


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader whose mapping keys stay strings: YAML 1.1 would read `ON:` as True."""

    _PLAIN_KEY_TAGS = frozenset(
        f"tag:yaml.org,2002:{kind}" for kind in ("bool", "int", "float", "null")
    )

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag in self._PLAIN_KEY_TAGS:
                key_node.tag = "tag:yaml.org,2002:str"
        return super().construct_mapping(node, deep)


def _merge_atomically(
    sources: Sequence[Mapping[str, Any]], target: AttrDict, source_name: str
) -> None:
    """Merge every mapping in order into a copy of `target`, then commit: all or nothing."""
    if target.is_immutable():
        raise FrozenConfigError(
            f"cannot merge {source_name} into a frozen config; call .immutable(False) first"
        )
    staged = copy.deepcopy(target)
    for source in sources:
        if not isinstance(source, Mapping):
            raise ConfigTypeError(
                f"{source_name}: expected a mapping of config keys, got {type(source).__name__}"
            )
        _merge_into(source, staged, "", staged, source_name)
    _commit(staged, target)


def _commit(staged: AttrDict, target: AttrDict) -> None:
    """Write the merged values back into the existing nodes (keeps their identity)."""
    for key, value in staged.items():
        if isinstance(value, AttrDict):
            _commit(value, target[key])
        else:
            target[key] = value


def _merge_into(
    source: Mapping[Any, Any], node: AttrDict, prefix: str, root: AttrDict, source_name: str
) -> None:
    for key, raw in source.items():
        full_key = f"{prefix}{key}"
        if not isinstance(key, str):
            raise ConfigKeyError(f"{source_name}: {full_key!r}: config keys must be strings")
        if key not in node:
            _handle_missing_key(full_key, raw, root, source_name)
            continue
        default = node[key]
        if isinstance(default, AttrDict):
            section = _decode(raw, default)
            if not isinstance(section, Mapping):
                raise ConfigTypeError(
                    f"{source_name}: {full_key}: type mismatch: expected a section (a mapping "
                    f"of keys), got {_type_name(section)} {section!r}"
                )
            _merge_into(section, default, full_key + ".", root, source_name)
        else:
            value = _coerce(full_key, _decode(raw, default), default, source_name)
            _raise_if_unsupported(full_key, value, root, source_name)
            node[key] = value


def _raise_if_unsupported(full_key: str, value: Any, root: AttrDict, source_name: str) -> None:
    """A kept-for-compatibility key set away from its default: say what to do instead."""
    if full_key in _UNSUPPORTED_KEYS and value != _DEFAULT_VALUES[full_key]:
        raise UnsupportedConfigKeyError(
            f"{source_name}: {full_key}: {value!r} is not supported: {_UNSUPPORTED_KEYS[full_key]}"
        )


def _handle_missing_key(full_key: str, raw: Any, root: AttrDict, source_name: str) -> None:
    """Deprecated keys: warn and skip. Renamed keys and unknown keys: raise."""
    if _skip_if_deprecated(full_key, source_name):
        return
    _raise_if_renamed(full_key, source_name)
    if isinstance(raw, Mapping) and raw:  # an unknown section: report its own leaves
        for sub_key, sub_raw in raw.items():
            _handle_missing_key(f"{full_key}.{sub_key}", sub_raw, root, source_name)
        return
    raise ConfigKeyError(
        f"{source_name}: {full_key}: no such key{_suggestion(full_key, root)}"
    )


def _skip_if_deprecated(full_key: str, source_name: str) -> bool:
    if full_key not in _DEPRECATED_KEYS:
        return False
    warnings.warn(
        f"{source_name}: {full_key}: deprecated config key, ignored",
        DeprecatedConfigKeyWarning,
        stacklevel=2,
    )
    return True


def _raise_if_renamed(full_key: str, source_name: str) -> None:
    if full_key not in _RENAMED_KEYS:
        return
    new_key = _RENAMED_KEYS[full_key]
    note = ""
    if isinstance(new_key, tuple):
        new_key, note = new_key[0], " " + new_key[1]
    raise RenamedConfigKeyError(
        f"{source_name}: {full_key}: this key was renamed to {new_key}; "
        f"please update the config.{note}"
    )


def _suggestion(full_key: str, root: AttrDict) -> str:
    """'; did you mean A?' naming the closest valid keys, or '' when none is close."""
    valid = _all_keys(root)
    wanted = full_key.upper()
    scores = {
        key: difflib.SequenceMatcher(None, wanted, key).ratio() for key in valid
    }
    best = max(scores.values(), default=0.0)
    names = [key for key in valid if scores[key] >= max(_MIN_SIMILARITY, best - _SIMILARITY_SPAN)]
    names.sort(key=lambda key: -scores[key])
    if not names:  # the right leaf name in the wrong place, e.g. "NMS" -> "TEST.NMS"
        leaf = wanted.rsplit(".", 1)[-1]
        names = [key for key in valid if key.rsplit(".", 1)[-1] == leaf]
    names = names[:3]
    if not names:
        return ""
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    return f"; did you mean {listed}?"


# A suggested key must be this similar (difflib ratio), and within this span of the best one.
_MIN_SIMILARITY = 0.75
_SIMILARITY_SPAN = 0.08


def _all_keys(node: AttrDict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in node.items():
        full_key = f"{prefix}{key}"
        keys.append(full_key)
        if isinstance(value, AttrDict):
            keys += _all_keys(value, full_key + ".")
    return keys


def _decode(raw: Any, default: Any) -> Any:
    """Strings are read as Python literals when they are one ('0.5', '(800,)', 'True').

    For a string-typed key only a quoted literal is unwrapped, so text such as '1e-5' or
    'True' given for a path or a name stays exactly as written.
    """
    if not isinstance(raw, str):
        return raw
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return raw
    if isinstance(default, str) and not isinstance(value, str):
        return raw
    return value


def _coerce(full_key: str, value: Any, default: Any, source_name: str) -> Any:
    """Return `value` in the type of `default`, or raise ConfigTypeError.

    Allowed besides an exact match: anything for a None default; numbers and booleans for a
    string (Detectron's str coercion); list <-> tuple; int -> float; numpy values.
    """
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):
        value = value.tolist()  # numpy arrays and scalars (e.g. from a Detectron cfg object)
    if full_key in _PIXEL_TRIPLET_KEYS:
        return _pixel_triplet(full_key, value, source_name)
    if default is None or type(value) is type(default):
        return value
    if isinstance(default, str) and isinstance(value, int | float):
        return str(value)
    if isinstance(default, tuple) and isinstance(value, list):
        return tuple(value)
    if isinstance(default, list) and isinstance(value, tuple):
        return list(value)
    if type(default) is float and type(value) is int:
        return float(value)
    raise ConfigTypeError(
        f"{source_name}: {full_key}: type mismatch: expected {_type_name(default)} "
        f"(default {default!r}), got {_type_name(value)} {value!r}"
    )


# Per-channel triplets: also accept Detectron's [[[b, g, r]]] array layout.
_PIXEL_TRIPLET_KEYS = frozenset({"PIXEL_MEANS", "PIXEL_STDS"})


def _pixel_triplet(full_key: str, value: Any, source_name: str) -> tuple[float, float, float]:
    flat = value
    while isinstance(flat, list | tuple) and len(flat) == 1 and isinstance(flat[0], list | tuple):
        flat = flat[0]
    numbers_ok = isinstance(flat, list | tuple) and all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in flat
    )
    if not numbers_ok or len(flat) != 3:
        raise ConfigTypeError(
            f"{source_name}: {full_key}: type mismatch: expected a tuple of 3 numbers "
            f"(one per channel), got {_type_name(value)} {value!r}"
        )
    return (float(flat[0]), float(flat[1]), float(flat[2]))


def _type_name(value: Any) -> str:
    return "a section" if isinstance(value, Mapping) else type(value).__name__


# ============================================================================================
# Inference and checks
# ============================================================================================
def assert_and_infer_cfg(make_immutable: bool = True, target: AttrDict | None = None) -> None:
    """Fill in the inferred keys, check the values, then freeze `target` (default: `cfg`).

    Call it once every merge is done. Inferences (Detectron's and Detectron.pytorch's):
    MODEL.TYPE retinanet -> RETINANET.RETINANET_ON; MODEL.RPN_ONLY or MODEL.FASTER_RCNN ->
    RPN.RPN_ON; an RPN or RetinaNet -> no TEST.PRECOMPUTED_PROPOSALS; a res5-sharing
    mask/keypoint head -> MODEL.SHARE_RES5.
    Calling it again on a frozen config is allowed and leaves it frozen.
    """
    c = _target(target)
    was_frozen = c.is_immutable()
    c.immutable(False)
    try:
        if c.MODEL.TYPE == "retinanet":  # a switch of its own too (Detectron configs set it)
            c.RETINANET.RETINANET_ON = True
        _infer(c, "RPN.RPN_ON", bool(c.RPN.RPN_ON or c.MODEL.RPN_ONLY or c.MODEL.FASTER_RCNN))
        _infer(c, "TEST.PRECOMPUTED_PROPOSALS", not (c.RPN.RPN_ON or c.RETINANET.RETINANET_ON))
        shares = bool({c.MRCNN.ROI_MASK_HEAD, c.KRCNN.ROI_KEYPOINTS_HEAD} & _SHARE_RES5_HEADS)
        _infer(c, "MODEL.SHARE_RES5", shares)
        _check_values(c)
    except Exception:
        c.immutable(was_frozen)  # a failed check leaves a mutable config mutable, to be fixed
        raise
    c.immutable(make_immutable or was_frozen)


def _infer(c: AttrDict, key: str, value: bool) -> None:
    """Set an inferred key; a config that set it to something else gets a one-line error."""
    section, _, name = key.rpartition(".")
    node = c[section]
    if node[name] != _value_at(_DEFAULTS, key) and node[name] != value:
        raise ConfigValueError(
            f"{key}: is inferred from {_INFERRED_KEYS[key]} (here {value!r}) but the config sets "
            f"{node[name]!r}; remove it from the config"
        )
    node[name] = value


# Keys that take one of a few strings (the numeric-convention switches among them).
_CHOICES = {
    "RPN.ANCHOR_CONVENTION": ("detectron", "torchvision"),
    "RPN.MIN_SIZE_RULE": ("detectron", "torchvision"),
    "RPN.CLS_LOSS_NORMALIZATION": ("", "num_sampled", "batch_size_per_im"),
    "RPN.BBOX_LOSS_NORMALIZATION": ("per_image", "num_sampled"),
    "FPN.ROI_LEVEL_MAPPING": ("detectron", "torchvision"),
    "TEST.BOX_DECODE_SPACE": ("original", "input"),
    "RESNETS.NORM": ("", "AffineChannel", "FrozenBN", "BN", "GN"),
    "FAST_RCNN.ROI_XFORM_METHOD": ("RoIPoolF", "RoIAlign", "RoICrop"),
    "INPUT_RESIZE": ("detectron", "torchvision"),
    "KRCNN.UPSAMPLE_MODE": ("deconv", "interpolate"),
    "FPN.EXTRA_CONV_LEVELS_INPUT": ("backbone", "pyramid"),
    "RETINANET.ANCHOR_CONVENTION": ("detectron", "torchvision"),
    "RETINANET.LOW_QUALITY_MATCHES": ("unless_background", "always", "none"),
    "RETINANET.LOSS_NORMALIZATION": ("batch_fg_plus_one", "per_image_fg"),
    "TOOLBOX.NORM": ("", "FrozenBN"),
    "TOOLBOX.NECK_NORM": ("", "none", "BN", "GN", "FrozenBN", "LN"),
    "TOOLBOX.NECK_FUSION": ("sum", "concat"),
}


def _check_values(c: AttrDict) -> None:
    """Raise ConfigValueError naming the key for values that cannot work together."""
    _require(c.INPUT_FORMAT in ("BGR", "RGB"), "INPUT_FORMAT", "must be 'BGR' or 'RGB'", c)
    _require(c.TRAIN.AMP in ("", "fp16", "bf16"), "TRAIN.AMP", "must be '', 'fp16' or 'bf16'", c)
    for key in ("PIXEL_MEANS", "PIXEL_STDS"):
        _require(len(c[key]) == 3, key, "must hold 3 values (one per channel)", c)
    _require(all(s > 0 for s in c.PIXEL_STDS), "PIXEL_STDS", "must be positive", c)
    _require(c.SOLVER.CLIP_GRAD_NORM >= 0, "SOLVER.CLIP_GRAD_NORM", "must be >= 0 (0 = off)", c)
    _require(
        str(c.SOLVER.TYPE).lower() in ("sgd", "adam", "adamw"), "SOLVER.TYPE", "must be 'SGD', 'Adam' or 'AdamW'", c
    )
    _require(len(c.SOLVER.BETAS) == 2, "SOLVER.BETAS", "must hold 2 values", c)
    _require(0.0 < c.SOLVER.LAYER_DECAY <= 1.0, "SOLVER.LAYER_DECAY", "must lie in (0, 1] (1 = off)", c)
    _require(
        c.SOLVER.LAYER_DECAY == 1.0 or str(c.SOLVER.TYPE).lower() == "adamw",
        "SOLVER.LAYER_DECAY",
        "needs SOLVER.TYPE 'AdamW'",
        c,
    )
    _require(0 <= c.TOOLBOX.FREEZE_AT <= 5, "TOOLBOX.FREEZE_AT", "must lie in 0..5", c)
    _require(c.TRAIN.EVAL_PERIOD >= 0, "TRAIN.EVAL_PERIOD", "must be >= 0 (0 = off)", c)
    _require(0.0 <= c.TRAIN.EMA_DECAY < 1.0, "TRAIN.EMA_DECAY", "must lie in [0, 1) (0 = off)", c)
    for key, allowed in _CHOICES.items():
        section, _, name = key.rpartition(".")
        node = c[section] if section else c
        _require(node[name] in allowed, key, f"must be one of {allowed}", c)
    for split in ("TRAIN", "TEST"):
        files, datasets = c[split].PROPOSAL_FILES, c[split].DATASETS
        _require(
            not files or len(files) == len(datasets),
            f"{split}.PROPOSAL_FILES",
            f"needs one file per entry of {split}.DATASETS ({len(datasets)})",
            c,
        )
    for key in ("MULTILEVEL_RPN", "MULTILEVEL_ROIS"):
        _require(not c.FPN[key] or c.FPN.FPN_ON, f"FPN.{key}", "needs FPN.FPN_ON: True", c)
    _require(
        not c.MODEL.LOAD_IMAGENET_PRETRAINED_WEIGHTS or bool(c.RESNETS.IMAGENET_PRETRAINED_WEIGHTS),
        "MODEL.LOAD_IMAGENET_PRETRAINED_WEIGHTS",
        "is True but RESNETS.IMAGENET_PRETRAINED_WEIGHTS is empty",
        c,
    )
    if c.RETINANET.RETINANET_ON or c.MODEL.TYPE == "retinanet":
        check_retinanet_cfg(c)


def check_retinanet_cfg(c: AttrDict) -> None:
    """Raise ConfigValueError for keys a RetinaNet (MODEL.TYPE retinanet or RETINANET.RETINANET_ON)
    cannot honour: another model type, R-CNN parts, box test-time augmentation or voting."""
    _require(
        c.MODEL.TYPE in ("retinanet", ""),
        "MODEL.TYPE",
        "must be 'retinanet' (or empty) when RETINANET.RETINANET_ON is True; set MODEL.TYPE: retinanet",
        c,
    )
    for key in ("FASTER_RCNN", "RPN_ONLY", "MASK_ON", "KEYPOINTS_ON", "EXTRA_ROI_BRANCHES"):
        _require(not c.MODEL[key], f"MODEL.{key}", "must be off: a RetinaNet has no RPN or RoI heads", c)
    _require(
        not c.TEST.BBOX_AUG.ENABLED,
        "TEST.BBOX_AUG.ENABLED",
        "box test-time augmentation is not supported for RetinaNet",
        c,
    )
    _require(
        not c.TEST.BBOX_VOTE.ENABLED,
        "TEST.BBOX_VOTE.ENABLED",
        "box voting is not supported for RetinaNet (nor by Detectron)",
        c,
    )
    _require(c.RETINANET.NUM_CONVS >= 0, "RETINANET.NUM_CONVS", "must be >= 0", c)


def _require(ok: bool, key: str, what: str, c: AttrDict) -> None:
    if not ok:
        value = c
        for part in key.split("."):
            value = value[part]
        raise ConfigValueError(f"{key}: {what} (got {value!r})")
