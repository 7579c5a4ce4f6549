"""`LoadReport`: what a weights load did, and its few log lines."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

_SHOWN = 8


def _sample(names: list[str], shown: int = _SHOWN) -> str:
    more = f", ... ({len(names) - shown} more)" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


@dataclass
class LoadReport:
    """The outcome of `load_weights`.

    source_format: what the file was ('Detectron .pkl', 'Caffe ImageNet .pkl', 'torchvision
        ImageNet', 'torchvision detection', 'pydetectron checkpoint', 'pydetectron state dict').
    source: the file (or '<state dict>').
    loaded: our state-dict names set from the file.
    missing: our tensors the file does not have (they keep their initialisation).
    unused: file tensors nothing in the model took.
    ignored: file tensors knowingly left out (`_momentum`, ImageNet classifier, Caffe conv
        biases, BatchNorm counters).
    skipped: our tensors whose file tensor has another shape (e.g. another number of
        classes): name -> (file shape, model shape). They keep their initialisation.
    derived: our tensors set by convention rather than copied (BatchNorm statistics for a
        Detectron affine norm).
    cfg_text: the configuration text stored in a Detectron file, kept as it is (never parsed).
    notes: anything else worth a line (e.g. a likely configuration mismatch).
    """

    source_format: str
    source: str = "<state dict>"
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    skipped: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)
    derived: list[str] = field(default_factory=list)
    cfg_text: str | None = None
    notes: list[str] = field(default_factory=list)
    body_only: bool = False

    def lines(self) -> list[tuple[int, str]]:
        """(logging level, text) of each line the report logs."""
        total = len(self.loaded) + len(self.missing) + len(self.skipped)
        out = [
            (
                logging.INFO,
                f"Loaded {len(self.loaded)} of {total} model tensors from {self.source} ({self.source_format})",
            )
        ]
        if self.skipped:
            shapes = [f"{k} file {tuple(f)} vs model {tuple(m)}" for k, (f, m) in self.skipped.items()]
            out.append(
                (
                    logging.WARNING,
                    f"  skipped {len(self.skipped)} tensors whose shapes differ (e.g. another number of classes; "
                    f"they keep their initialisation): {_sample(shapes)}",
                )
            )
        if self.missing:
            level = logging.INFO if self.body_only else logging.WARNING
            why = "the file initialises the body only" if self.body_only else "they keep their initialisation"
            out.append((level, f"  {len(self.missing)} model tensors not in the file ({why}): {_sample(self.missing)}"))
        if self.derived:
            out.append(
                (logging.INFO, f"  {len(self.derived)} BatchNorm statistics set to identity for Detectron affine norms")
            )
        if self.unused:
            out.append((logging.WARNING, f"  {len(self.unused)} file tensors unused: {_sample(self.unused)}"))
        if self.ignored:
            out.append(
                (
                    logging.INFO,
                    f"  {len(self.ignored)} file tensors ignored (momentum, ImageNet classifier, conv biases): "
                    f"{_sample(self.ignored, 4)}",
                )
            )
        out.extend((logging.WARNING, f"  note: {note}") for note in self.notes)
        return out

    def log(self, logger: logging.Logger) -> None:
        for level, text in self.lines():
            logger.log(level, "%s", text)
