"""Conv bodies `toolbox.<backbone>+<neck>`: any registered backbone with any neck.

`MODEL.CONV_BODY: toolbox.vovnet39_ese+fpn` builds the backbone `vovnet39_ese` of
`pydetectron.backbones`, wraps it as a body (`BackboneBody`: maps named ``c<level>`` with
their channels and strides) and puts the neck on top with the one `NeckBody` every FPN body
uses, so the outputs are the pyramid maps ``p2``..``p5`` (plus ``p6``, a max-pool with
kernel 1 and stride 2 of ``p5``, when the RPN or RoI levels reach 6, as Detectron's FPN
body does) and the RPN and RoI heads work unchanged. No entry is registered per name: the
BODIES registry resolves the ``toolbox.`` prefix with `resolve_toolbox_body`.

Necks (TOOLBOX.NECK_* keys):
- ``fpn``, ``pan``, ``bifpn``: `pydetectron.necks` over the backbone maps at strides 4..32;
- ``semantic_fpn``: one stride-4 map (``p2``), for single-level heads (FPN.MULTILEVEL_* off);
- ``simple_fpn``: ViTDet's simple feature pyramid from a plain ViT's stride-16 map.

Ported families get their detection form from TOOLBOX keys: Swin and ConvNeXt a LayerNorm on
each output (TOOLBOX.OUT_NORMS, and Swin's detection windowing); ViT windowed attention in
every block but a few global ones (TOOLBOX.VIT_*), its absolute position embedding resampled
to the input's patch grid; inputs that are not multiples of the patch or window are padded
inside the backbone.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..levels import HIGHEST_BACKBONE_LEVEL, LOWEST_BACKBONE_LEVEL, ShapeSpec, fpn_min_max_levels, level_of_stride
from ..necks.neck_body import NeckBody
from ..registry import BODIES, RegistryEntry

PREFIX = "toolbox."
NECKS = ("fpn", "pan", "bifpn", "semantic_fpn", "simple_fpn")
VIT_GLOBAL_BLOCKS = 4  # ViTDet: 4 global blocks, evenly spaced (B: 2, 5, 8, 11)


class BackboneBody(nn.Module):
    """A `pydetectron.backbones` backbone as a conv body: ``{"c<level>": map}`` and `output_shape()`.

    Args:
        backbone: a Backbone (`get_feature_maps`, `out_channels_list`, `feature_strides`).
        min_level, max_level: pyramid levels of the maps to return (2..5: strides 4..32).
        freeze_at: 0 trains everything; k > 0 freezes (requires_grad False) every parameter
            that the backbone's maps at strides up to 2**k depend on (1: the stem).
    """

    def __init__(
        self,
        backbone: nn.Module,
        min_level: int = LOWEST_BACKBONE_LEVEL,
        max_level: int = HIGHEST_BACKBONE_LEVEL,
        freeze_at: int = 0,
    ):
        super().__init__()
        self.net = backbone
        name = type(backbone).__name__
        strides = [int(s) for s in backbone.feature_strides]
        channels = [int(c) for c in backbone.out_channels_list]
        levels = []
        for stride in strides:
            try:
                levels.append(level_of_stride(stride))
            except ValueError:
                raise ValueError(
                    f"{name}: feature stride {stride} is not a power of two, so it has no pyramid level "
                    "(a patch-14 ViT cannot feed the detection heads; use a patch-16 one)"
                ) from None
        self._indices = [i for i, level in enumerate(levels) if min_level <= level <= max_level]
        if not self._indices:
            raise ValueError(f"{name}: no map at levels {min_level}..{max_level}; its strides are {strides}")
        self._shapes = {f"c{levels[i]}": ShapeSpec(channels[i], strides[i]) for i in self._indices}
        self.freeze_at = int(freeze_at)
        if self.freeze_at:
            self._freeze(self.freeze_at)

    def output_shape(self) -> dict[str, ShapeSpec]:
        return dict(self._shapes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        maps = self.net.get_feature_maps(x)
        return {name: maps[i] for name, i in zip(self._shapes, self._indices)}

    def _freeze(self, freeze_at: int) -> None:
        """Freeze the parameters upstream of the maps at strides <= 2**freeze_at (found by autograd)."""
        if not 0 <= freeze_at <= HIGHEST_BACKBONE_LEVEL:
            raise ValueError(f"TOOLBOX.FREEZE_AT must be in 0..{HIGHEST_BACKBONE_LEVEL}, got {freeze_at}")
        wanted = [i for i, s in enumerate(self.net.feature_strides) if s <= 2**freeze_at]
        if not wanted:
            return
        params = [p for p in self.net.parameters() if p.requires_grad]
        was_training = self.net.training
        self.net.eval()  # no BatchNorm statistics update from the probe
        probe = torch.zeros(1, 3, 64, 64, device=params[0].device if params else None)
        with torch.enable_grad():
            maps = self.net.get_feature_maps(probe)
            grads = torch.autograd.grad(sum(maps[i].sum() for i in wanted), params, allow_unused=True)
        self.net.train(was_training)
        for param, grad in zip(params, grads):
            if grad is not None:
                param.requires_grad_(False)

    def detectron_weight_mapping(self) -> tuple[dict[str, str], list[str]]:
        """Toolbox backbones have no Detectron blob names."""
        return {}, []


@dataclass(frozen=True)
class ToolboxSettings:
    """The TOOLBOX.* keys (see config.py for each one's meaning)."""

    pretrained: str = ""
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    norm: str = ""
    freeze_at: int = 0
    out_norms: bool = True
    drop_path_rate: float = 0.0
    img_size: int = 0
    vit_window_size: int = 14
    vit_global_blocks: tuple[int, ...] = ()
    vit_rel_pos: bool = True
    neck_channels: int = 256
    neck_norm: str = ""
    neck_fusion: str = "sum"
    neck_layers: int = 1

    @classmethod
    def from_cfg(cls, cfg) -> ToolboxSettings:
        t = cfg.TOOLBOX
        return cls(
            pretrained=str(t.PRETRAINED),
            backbone_kwargs=parse_backbone_kwargs(str(t.BACKBONE_KWARGS)),
            norm=str(t.NORM),
            freeze_at=int(t.FREEZE_AT),
            out_norms=bool(t.OUT_NORMS),
            drop_path_rate=float(t.DROP_PATH_RATE),
            img_size=int(t.IMG_SIZE),
            vit_window_size=int(t.VIT_WINDOW_SIZE),
            vit_global_blocks=tuple(int(i) for i in t.VIT_GLOBAL_BLOCKS),
            vit_rel_pos=bool(t.VIT_REL_POS),
            neck_channels=int(t.NECK_CHANNELS),
            neck_norm=str(t.NECK_NORM),
            neck_fusion=str(t.NECK_FUSION),
            neck_layers=int(t.NECK_LAYERS),
        )


def parse_backbone_kwargs(text: str) -> dict[str, Any]:
    """TOOLBOX.BACKBONE_KWARGS: a Python dict literal ("{'depths': (1, 1, 2, 1)}") or ''."""
    if not text.strip():
        return {}
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as error:
        raise ValueError(f"TOOLBOX.BACKBONE_KWARGS: not a Python dict literal: {text!r} ({error})") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"TOOLBOX.BACKBONE_KWARGS: expected a dict of keyword arguments, got {text!r}")
    return value


def split_body_name(name: str) -> tuple[str, str]:
    """'toolbox.vovnet39_ese+fpn' -> ('vovnet39_ese', 'fpn'); a ValueError names what is wrong."""
    from ...backbones import BACKBONES

    rest = name[len(PREFIX) :] if name.startswith(PREFIX) else name
    backbone, plus, neck = rest.rpartition("+")
    if not plus or not backbone or not neck:
        raise KeyError(
            f"MODEL.CONV_BODY {name!r}: expected 'toolbox.<backbone>+<neck>', e.g. 'toolbox.vovnet39_ese+fpn'"
        )
    if neck not in NECKS:
        raise KeyError(f"MODEL.CONV_BODY {name!r}: unknown neck {neck!r}; expected one of {NECKS}")
    BACKBONES.get(backbone)  # a KeyError listing close backbone names
    return backbone, neck


def backbone_kwargs(backbone_name: str, neck: str, settings: ToolboxSettings) -> dict[str, Any]:
    """Constructor arguments giving the backbone its detection form (by family), then BACKBONE_KWARGS."""
    from ...backbones import BACKBONES
    from ...backbones.ported import ConvNeXt, SwinTransformer, VisionTransformer

    family = getattr(BACKBONES.get(backbone_name), "backbone_class", None)
    kwargs: dict[str, Any] = {}
    if family is not None and settings.drop_path_rate > 0:
        kwargs["drop_path_rate"] = settings.drop_path_rate
    if family is not None and settings.img_size > 0 and family in (VisionTransformer, SwinTransformer):
        kwargs["img_size"] = settings.img_size
    if family in (SwinTransformer, ConvNeXt):
        kwargs["out_norms"] = settings.out_norms
    if family is SwinTransformer:
        kwargs["always_partition"] = True
    if family is VisionTransformer and neck == "simple_fpn":
        kwargs["window_size"] = settings.vit_window_size
        kwargs["rel_pos"] = settings.vit_rel_pos
        kwargs["global_blocks"] = settings.vit_global_blocks
    kwargs.update(settings.backbone_kwargs)
    if family is VisionTransformer and kwargs.get("window_size") and not kwargs.get("global_blocks"):
        depth = int(kwargs.get("depth", BACKBONES.get(backbone_name).defaults["depth"]))
        kwargs["global_blocks"] = default_global_blocks(depth)
    return kwargs


def default_global_blocks(depth: int, count: int = VIT_GLOBAL_BLOCKS) -> tuple[int, ...]:
    """ViTDet's global-attention blocks: `count` evenly spaced, the last block included (12 -> 2, 5, 8, 11)."""
    count = min(count, depth)
    return tuple(sorted({depth * (i + 1) // count - 1 for i in range(count)}))


def build_backbone_for_body(backbone_name: str, neck: str, settings: ToolboxSettings) -> nn.Module:
    """The backbone with its detection-form arguments, TOOLBOX.NORM and TOOLBOX.PRETRAINED applied."""
    from ...backbones import build_backbone
    from ...backbones.toolbox.layers import freeze_batch_norm

    kwargs = backbone_kwargs(backbone_name, neck, settings)
    try:
        backbone = build_backbone(backbone_name, **kwargs)
    except TypeError as error:
        raise ValueError(f"backbone {backbone_name!r} does not take the arguments {sorted(kwargs)}: {error}") from None
    if settings.pretrained:
        path = os.path.expanduser(settings.pretrained)
        try:
            backbone.load_pretrained(path)
        except (OSError, ValueError) as error:
            raise ValueError(f"TOOLBOX.PRETRAINED {path}: {error}".replace("\n", " ")) from None
    if settings.norm == "FrozenBN":
        freeze_batch_norm(backbone)
    elif settings.norm:
        raise ValueError(f"TOOLBOX.NORM must be '' (the backbone's own norms) or 'FrozenBN', got {settings.norm!r}")
    return backbone


def build_neck(
    kind: str, in_channels: Sequence[int], in_strides: Sequence[int], num_extra_levels: int, settings: ToolboxSettings
) -> nn.Module:
    """The neck `kind` over maps of `in_channels` (finest first) with `num_extra_levels` max-pooled levels."""
    from ...backbones.ported import SimpleFeaturePyramid
    from ...necks import FPN, PAN, BiFPN, SemanticFPN

    norm = neck_norm(kind, settings.neck_norm)
    channels = settings.neck_channels
    if kind == "fpn":
        return FPN(in_channels, channels, fusion=settings.neck_fusion, norm=norm, num_extra_levels=num_extra_levels)
    if kind == "pan":
        return PAN(in_channels, channels, fusion=settings.neck_fusion, norm=norm, num_extra_levels=num_extra_levels)
    if kind == "bifpn":
        return BiFPN(
            in_channels, channels, num_layers=settings.neck_layers, norm=norm, num_extra_levels=num_extra_levels
        )
    if kind == "semantic_fpn":
        if num_extra_levels:
            raise ValueError(
                "the semantic_fpn neck returns one stride-4 map (p2); it cannot feed FPN levels above it: "
                "set FPN.MULTILEVEL_RPN and FPN.MULTILEVEL_ROIS to False"
            )
        return SemanticFPN(in_channels, channels, fusion=settings.neck_fusion, norm=norm)
    if len(in_channels) != 1:
        raise ValueError(
            f"the simple_fpn neck takes a plain ViT's single map; this backbone has {len(in_channels)} maps "
            "(use fpn, pan or bifpn)"
        )
    return SimpleFeaturePyramid(
        in_channels[0],
        channels,
        in_stride=int(in_strides[0]),
        norm=norm == "LN",
        num_extra_levels=num_extra_levels,
    )


def neck_norm(kind: str, setting: str) -> str | None:
    """TOOLBOX.NECK_NORM for neck `kind`: '' is the neck's own norm (BN; LN for simple_fpn), 'none' is None."""
    if setting == "none":
        return None
    if not setting:
        return "LN" if kind == "simple_fpn" else "BN"
    allowed = ("LN",) if kind == "simple_fpn" else ("BN", "GN", "FrozenBN")
    if setting not in allowed:
        raise ValueError(
            f"TOOLBOX.NECK_NORM {setting!r} does not fit the {kind} neck; expected '', 'none' or {allowed}"
        )
    return setting


class ToolboxBody(NeckBody):
    """A toolbox backbone and neck (``toolbox.<backbone>+<neck>``) returning ``p<min_level>``..``p<max_level>``."""

    def __init__(
        self,
        backbone_name: str,
        neck: str,
        settings: ToolboxSettings = ToolboxSettings(),
        min_level: int = LOWEST_BACKBONE_LEVEL,
        max_level: int = HIGHEST_BACKBONE_LEVEL + 1,
    ) -> None:
        if neck not in NECKS:
            raise ValueError(f"unknown neck {neck!r}; expected one of {NECKS}")
        backbone = build_backbone_for_body(backbone_name, neck, settings)
        bottom_up = BackboneBody(backbone, min_level, HIGHEST_BACKBONE_LEVEL, freeze_at=settings.freeze_at)
        shapes = bottom_up.output_shape()
        in_features = list(shapes)
        top_level = level_of_stride(shapes[in_features[-1]].stride)
        if neck == "simple_fpn":
            top_level += 1  # its coarsest output is a 2x max-pool of the input map (strides 4..32 from 16)
        num_extra = max(0, max_level - top_level)
        neck_module = build_neck(
            neck, [s.channels for s in shapes.values()], [s.stride for s in shapes.values()], num_extra, settings
        )
        super().__init__(bottom_up, neck_module, in_features)

    @classmethod
    def from_cfg(cls, cfg, backbone_name: str, neck: str) -> ToolboxBody:
        """TOOLBOX.* keys and the FPN level range (FPN.RPN_* / ROI_* levels)."""
        min_level, max_level = fpn_min_max_levels(cfg)
        return cls(backbone_name, neck, ToolboxSettings.from_cfg(cfg), min_level, max_level)


def resolve_toolbox_body(name: str) -> RegistryEntry:
    """BODIES resolver of 'toolbox.<backbone>+<neck>': `ToolboxBody` with that backbone and neck."""
    backbone_name, neck = split_body_name(name)
    return RegistryEntry(name, ToolboxBody, {"backbone_name": backbone_name, "neck": neck})


BODIES.register_prefix(PREFIX, resolve_toolbox_body)
