"""RetinaNet's anchors: SCALES_PER_OCTAVE sizes x ASPECT_RATIOS at every location of every level.

Level k (stride 2**k) has sizes ANCHOR_SCALE * 2**k * 2**(o / SCALES_PER_OCTAVE) for
o = 0..SCALES_PER_OCTAVE - 1. The two conventions (RETINANET.ANCHOR_CONVENTION):
  'detectron':   generate_anchors boxes, a cell ordered octave-major then aspect ratio
                 (test_retinanet._create_cell_anchors), placed every 2**k pixels;
  'torchvision': torchvision's rounded cell anchors for sizes truncated to integers
                 (``int(32 * 2 ** (1 / 3)) = 40``), ordered aspect-ratio-major then size,
                 placed every (padded image size // map size) pixels, as
                 retinanet_resnet50_fpn's AnchorGenerator does.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..rpn.anchors import AnchorGenerator

ANCHOR_CONVENTIONS = ("detectron", "torchvision")


def retinanet_anchor_sizes(
    level: int, anchor_scale: float = 4.0, scales_per_octave: int = 3, convention: str = "detectron"
) -> tuple[float, ...]:
    """The anchor sizes of pyramid level `level`, smallest first."""
    if convention not in ANCHOR_CONVENTIONS:
        raise ValueError(f"convention must be one of {ANCHOR_CONVENTIONS}, got {convention!r}")
    if scales_per_octave < 1:
        raise ValueError(f"scales_per_octave must be >= 1, got {scales_per_octave}")
    base = float(anchor_scale) * 2.0**level
    sizes = [base * 2.0 ** (octave / float(scales_per_octave)) for octave in range(scales_per_octave)]
    if convention == "torchvision":
        sizes = [float(int(size)) for size in sizes]
    return tuple(sizes)


def retinanet_anchor_generator(
    levels: Sequence[int],
    anchor_scale: float = 4.0,
    scales_per_octave: int = 3,
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
    convention: str = "detectron",
) -> AnchorGenerator:
    """An `AnchorGenerator` over pyramid `levels` (finest first) with A = scales_per_octave *
    len(aspect_ratios) anchors per location, in the convention's cell order."""
    return AnchorGenerator(
        strides=[2**level for level in levels],
        sizes=[retinanet_anchor_sizes(level, anchor_scale, scales_per_octave, convention) for level in levels],
        aspect_ratios=tuple(float(r) for r in aspect_ratios),
        convention=convention,
        cell_order="size_major" if convention == "detectron" else "ratio_major",
    )
