"""What a COCO-format dataset declares: its classes, their json ids and its keypoints."""

from __future__ import annotations

from dataclasses import dataclass, field


def keypoint_flip_pairs(names: list[str]) -> list[tuple[int, int]]:
    """Index pairs of keypoints that swap under a horizontal flip.

    A name with a `left` token pairs with the same name spelled with `right`
    (`left_eye` <-> `right_eye`, `left_corner` <-> `right_corner`), which gives
    Detectron's COCO person flip map exactly.
    """
    index = {name: i for i, name in enumerate(names)}
    pairs = []
    for i, name in enumerate(names):
        for left, right in (("left", "right"), ("Left", "Right"), ("LEFT", "RIGHT")):
            if left in name:
                j = index.get(name.replace(left, right))
                if j is not None and j != i:
                    pairs.append((i, j))
                break
    return pairs


@dataclass
class DatasetInfo:
    """Metadata of one dataset: where it lives and how its ids map to contiguous classes.

    `classes[0]` is `__background__`; contiguous class `c >= 1` is json category
    `json_category_ids[c - 1]` (json order, as Detectron's `COCO.getCatIds()`).
    """

    name: str
    json_file: str
    image_dir: str
    classes: list[str]
    json_category_ids: list[int]
    image_prefix: str = ""
    keypoint_names: list[str] | None = None
    keypoint_flip_pairs: list[tuple[int, int]] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        """Number of classes including background."""
        return len(self.classes)

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoint_names) if self.keypoint_names else 0

    @property
    def json_category_id_to_contiguous_id(self) -> dict[int, int]:
        return {json_id: i + 1 for i, json_id in enumerate(self.json_category_ids)}

    @property
    def contiguous_category_id_to_json_id(self) -> dict[int, int]:
        return {i + 1: json_id for i, json_id in enumerate(self.json_category_ids)}

    @property
    def keypoint_flip_map(self) -> dict[str, str]:
        """Detectron's name form of the flip pairs (`{'left_eye': 'right_eye', ...}`)."""
        names = self.keypoint_names or []
        return {names[i]: names[j] for i, j in self.keypoint_flip_pairs if i < j}

    def same_classes_as(self, other: DatasetInfo) -> bool:
        """True when both datasets name the same classes and keypoints in the same order."""
        return self.classes == other.classes and self.keypoint_names == other.keypoint_names

    def to_json(self) -> dict:
        """A JSON-serialisable dict (for the roidb cache)."""
        return {
            "name": self.name,
            "json_file": self.json_file,
            "image_dir": self.image_dir,
            "classes": self.classes,
            "json_category_ids": self.json_category_ids,
            "image_prefix": self.image_prefix,
            "keypoint_names": self.keypoint_names,
            "keypoint_flip_pairs": [list(p) for p in self.keypoint_flip_pairs],
        }

    @classmethod
    def from_json(cls, data: dict) -> DatasetInfo:
        return cls(
            name=data["name"],
            json_file=data["json_file"],
            image_dir=data["image_dir"],
            classes=list(data["classes"]),
            json_category_ids=[int(i) for i in data["json_category_ids"]],
            image_prefix=data.get("image_prefix", ""),
            keypoint_names=data.get("keypoint_names"),
            keypoint_flip_pairs=[(int(a), int(b)) for a, b in data.get("keypoint_flip_pairs", [])],
        )
