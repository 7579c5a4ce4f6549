"""Every ```python and ```bash block of README.md runs as written, in order, on tiny inputs.

How the blocks are made cheap (nothing in a block is changed):
- they run in a scratch folder holding links to the checkout's `configs/` and `tools/`, an
  empty `data/` that `PYDETECTRON_DATA_DIR` points at, and the `Outputs/` the blocks write;
- `python` on PATH is a small wrapper around this interpreter that appends arguments to two
  heavy tools (`SHRINK`): `tools/make_shapes_dataset.py` writes 4 images per dataset, and
  `tools/train_net_step.py` trains 2 steps of a thinner model on 64-pixel images;
- python blocks run as scripts, bash blocks through `bash -e`.

A block may be skipped only when it needs the network, a GPU or several machines: the line
before it says `<!-- readme-test: skip network|gpu (why) -->`, and `SKIPPED` below lists them.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

ALLOWED_SKIP_REASONS = ("network", "gpu", "machines")
# (reason, first line) of every block that is not run.
SKIPPED = [
    ("network", "make demo   # set up .venv, build, then train, evaluate and draw Mask R-CNN on the built-in shapes data"),  # noqa: E501
    ("network", "python -m venv .venv && .venv/bin/pip install -r requirements.txt"),
    ("network", "python tools/test_net.py --dataset coco2017 --cfg configs/baselines/e2e_mask_rcnn_R-50-FPN_1x.yaml \\"),  # noqa: E501
    ("gpu", "# one GPU, 4 images per step"),
]

# Arguments the `python` wrapper appends for a tool (see the docstring).
SHRINK = {
    "tools/make_shapes_dataset.py": ["--num_images", "4"],
    "tools/train_net_step.py": [
        "--set", "SOLVER.MAX_ITER", "2", "TRAIN.SCALES", "(64,)", "TRAIN.MAX_SIZE", "96", "TEST.SCALE", "64",
        "TEST.MAX_SIZE", "96", "FPN.DIM", "32", "FAST_RCNN.MLP_HEAD_DIM", "32", "TRAIN.RPN_PRE_NMS_TOP_N", "200",
        "TRAIN.RPN_POST_NMS_TOP_N", "50", "TEST.RPN_PRE_NMS_TOP_N", "200", "TEST.RPN_POST_NMS_TOP_N", "50",
    ],
}  # fmt: skip


@dataclass
class Block:
    language: str
    code: str
    line: int
    skip: str = ""  # the marker's reason: '' (run it), 'network', 'gpu', 'machines'

    @property
    def first_line(self) -> str:
        return self.code.strip().splitlines()[0].strip()


FENCE = re.compile(r"^```(\w*)\s*$")
MARKER = re.compile(r"^<!--\s*readme-test:\s*skip\s+(\w+)\b.*-->\s*$")


def readme_blocks(text: str) -> list[Block]:
    blocks, lines = [], text.splitlines()
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == "```")
        previous = lines[index - 1] if index > 0 else ""
        marker = MARKER.match(previous)
        blocks.append(Block(match.group(1), "\n".join(lines[index + 1 : end]) + "\n", index + 1,
                            marker.group(1) if marker else ""))  # fmt: skip
        index = end + 1
    return blocks


def test_every_block_is_python_or_bash_and_only_the_listed_ones_are_skipped():
    blocks = readme_blocks(README.read_text())
    assert blocks and all(block.language in ("python", "bash") for block in blocks), [b.line for b in blocks]
    skipped = [(block.skip, block.first_line) for block in blocks if block.skip]
    assert skipped == SKIPPED
    assert all(reason in ALLOWED_SKIP_REASONS for reason, _ in skipped)


def python_wrapper(folder: Path) -> Path:
    """A `python` that appends SHRINK's arguments for the heavy tools."""
    cases = "\n".join(
        f'  {tool}|*/{tool}) exec "{sys.executable}" "$@" {" ".join(repr(a) for a in extra)} ;;'
        for tool, extra in SHRINK.items()
    )
    script = f'#!/usr/bin/env bash\ncase "$1" in\n{cases}\n  *) exec "{sys.executable}" "$@" ;;\nesac\n'
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "python"
    path.write_text(script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.mark.slow
def test_readme_blocks_run_as_written(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    for name in ("configs", "tools"):
        (scratch / name).symlink_to(ROOT / name)
    (scratch / "data").mkdir()
    python_wrapper(tmp_path / "bin")
    env = dict(os.environ)
    env.update(
        PATH=f"{tmp_path / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        PYDETECTRON_DATA_DIR=str(scratch / "data"),
        PYTHONPATH=os.pathsep.join([str(ROOT / "lib"), *filter(None, [env.get("PYTHONPATH")])]),
        OMP_NUM_THREADS="1",
    )
    for number, block in enumerate(readme_blocks(README.read_text())):
        if block.skip:
            continue
        if block.language == "python":
            script = scratch / f"readme_block_{number}.py"
            script.write_text(block.code)
            command = ["python", script.name]
        else:
            command = ["bash", "-e", "-c", block.code]
        process = subprocess.run(command, cwd=scratch, env=env, capture_output=True, text=True, timeout=900)
        assert process.returncode == 0, (
            f"README.md block at line {block.line} failed ({process.returncode}):\n{block.code}\n"
            f"--- stdout ---\n{process.stdout[-3000:]}\n--- stderr ---\n{process.stderr[-3000:]}"
        )
    # the blocks did what they say: a trained checkpoint, its evaluation, pictures
    assert (scratch / "Outputs" / "shapes" / "ckpt" / "model_best.pth").is_file()
    assert (scratch / "Outputs" / "shapes" / "test" / "metrics.json").is_file()
    assert len(list((scratch / "Outputs" / "shapes" / "pictures").glob("*.png"))) == 4
