"""The per-anchor output layout of a RetinaNet head, shared by the loss and the post-processor."""

from __future__ import annotations

from pydetectron.utils.settings_repr import SettingsRepr


class OutputLayout(SettingsRepr):
    """Class logits and box deltas per anchor.

    num_classes: C, classes including background. softmax: C softmax logits
    (RETINANET.SOFTMAX) instead of per-class sigmoids; background_logit: the sigmoids include
    class 0 (RETINANET.BACKGROUND_LOGIT); class_specific_bbox: 4 deltas per foreground class
    (RETINANET.CLASS_SPECIFIC_BBOX) instead of 4.
    """

    def set_layout(self, num_classes: int, softmax: bool, background_logit: bool, class_specific_bbox: bool) -> None:
        if num_classes < 2:
            raise ValueError(f"num_classes counts background and must be >= 2, got {num_classes}")
        if softmax and background_logit:
            raise ValueError("background_logit is for sigmoid classification; softmax always has a background logit")
        self.num_classes = int(num_classes)
        self.softmax = bool(softmax)
        self.background_logit = bool(background_logit)
        self.class_specific_bbox = bool(class_specific_bbox)

    @property
    def num_logits(self) -> int:
        """Class logits per anchor."""
        return self.num_classes if (self.softmax or self.background_logit) else self.num_classes - 1

    @property
    def box_dim(self) -> int:
        """Deltas per anchor."""
        return 4 * (self.num_classes - 1) if self.class_specific_bbox else 4
