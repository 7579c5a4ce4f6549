"""Class and keypoint names used to label pictures and results.

Contiguous class ids are 1-based with index 0 the background, as in Detectron: a
model's class `c` is `names[c]`. `COCO_CLASSES` is Detectron's COCO list (81 entries);
other datasets get their names from their COCO-format `categories`, in json order
(the order the data loader numbers them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

BACKGROUND = "__background__"

COCO_CLASSES: tuple[str, ...] = (
    BACKGROUND,
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
)  # fmt: skip

COCO_PERSON_CLASSES: tuple[str, ...] = (BACKGROUND, "person")

COCO_KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

# The built-in synthetic datasets (their json categories, in json order).
SHAPES_CLASSES: tuple[str, ...] = (BACKGROUND, "circle", "square", "triangle", "star")
KEYPOINTS_SHAPES_CLASSES: tuple[str, ...] = (BACKGROUND, "triangle")


def class_names_from_categories(categories: Sequence[Mapping]) -> list[str]:
    """`['__background__', ...]` from a COCO `categories` list, in json order.

    Raises ValueError naming the entry when a category has no name.
    """
    names = [BACKGROUND]
    for i, category in enumerate(categories):
        name = category.get("name") if isinstance(category, Mapping) else None
        if not isinstance(name, str) or not name:
            raise ValueError(f"categories[{i}] has no 'name' string: {category!r}")
        names.append(name)
    return names


def generic_class_names(num_classes: int) -> list[str]:
    """`['__background__', 'class 1', ...]` for a model whose dataset is unknown."""
    if num_classes < 1:
        raise ValueError(f"num_classes counts the background and must be >= 1, got {num_classes}")
    return [BACKGROUND] + [f"class {i}" for i in range(1, num_classes)]


def class_names_for_dataset(
    dataset_name: str | None = None,
    num_classes: int | None = None,
    categories: Sequence[Mapping] | None = None,
) -> list[str]:
    """Names for a dataset: its `categories` when given, else a known list for its name.

    COCO names (`coco_*`, `coco2017`, ...) give `COCO_CLASSES`, COCO keypoint sets the
    person list, `shapes*` / `keypoints_shapes*` the shapes lists. When `num_classes` is
    given and the list found has another length, generic names are returned instead
    (a model trained on other data must not be labelled with wrong names).
    """
    names: list[str] | None = None
    if categories is not None:
        names = class_names_from_categories(categories)
    elif dataset_name:
        lowered = dataset_name.lower()
        if lowered.startswith("keypoints_coco"):
            names = list(COCO_PERSON_CLASSES)
        elif lowered.startswith("coco"):
            names = list(COCO_CLASSES)
        elif lowered.startswith("keypoints_shapes"):
            names = list(KEYPOINTS_SHAPES_CLASSES)
        elif lowered.startswith("shapes"):
            names = list(SHAPES_CLASSES)
    if names is None and num_classes is None:
        raise ValueError(f"no class names known for dataset {dataset_name!r}; pass num_classes or categories")
    if names is None or (num_classes is not None and len(names) != num_classes):
        return generic_class_names(int(num_classes))
    return names


def class_label(names: Sequence[str], class_id: int) -> str:
    """`names[class_id]`, or `'class <id>'` when the id is outside the list."""
    if 0 <= class_id < len(names):
        return names[class_id]
    return f"class {class_id}"
