"""User errors end every tool with one line on stderr and exit code 2; --debug shows the traceback."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pydetectron.config import ConfigKeyError
from pydetectron.data.shapes import write_shapes_dataset
from pydetectron.engine.cli import ToolArgumentParser, one_line

ROOT = Path(__file__).resolve().parents[2]
SHAPES_CONFIG = ROOT / "configs" / "shapes" / "e2e_faster_rcnn_R-50-FPN_shapes.yaml"


def load(name):
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tools():
    return {name: load(name) for name in ("train_net_step", "test_net", "infer_simple", "print_config",
                                          "make_shapes_dataset")}  # fmt: skip


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    """A 2-image COCO-format dataset given as name=json:images."""
    root = tmp_path_factory.mktemp("tiny")
    json_file = write_shapes_dataset(root, 2, seed=0, min_side=64, max_side=80)
    return f"tiny_errors={json_file}:{root / 'images'}"


@pytest.fixture(scope="module")
def truncated_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "model_step9.pth"
    torch.save({"model": {"w": torch.zeros(1000)}, "step": 9, "cfg": "MODEL: {NUM_CLASSES: 5}\n"}, path)
    path.write_bytes(path.read_bytes()[:1500])
    return path


def one_error_line(capsys, prog: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"{prog}: error: "), err[0]
    return err[0]


def train(tools, tmp_path, *extra):
    argv = ["--dataset", "shapes", "--cfg", str(SHAPES_CONFIG), "--no_cuda", "--nw", "0", "--output_dir",
            str(tmp_path / "out"), *extra]  # fmt: skip
    return tools["train_net_step"].main(argv)


def test_train_typo_in_a_set_key(tools, tmp_path, capsys):
    assert train(tools, tmp_path, "--set", "TEST.NMSS", "0.5") == 2
    line = one_error_line(capsys, "train_net_step.py")
    assert line.endswith("command line: TEST.NMSS: no such key; did you mean TEST.NMS?")


def test_train_typo_in_a_config_file(tools, tmp_path, capsys):
    bad = tmp_path / "typo.yaml"
    bad.write_text(SHAPES_CONFIG.read_text().replace("  SCALES: (192,)", "  SCALE: (192,)"))
    assert tools["train_net_step"].main(["--dataset", "shapes", "--cfg", str(bad)]) == 2
    line = one_error_line(capsys, "train_net_step.py")
    assert f"{bad}: TRAIN.SCALE: no such key; did you mean TRAIN.SCALES" in line


def test_train_invalid_yaml(tools, tmp_path, capsys):
    bad = tmp_path / "broken.yaml"
    bad.write_text("MODEL:\n  TYPE: [generalized_rcnn\nSOLVER: {BASE_LR: 0.01}\n")
    assert tools["train_net_step"].main(["--dataset", "shapes", "--cfg", str(bad)]) == 2
    assert f"{bad}: not a valid safe YAML config" in one_error_line(capsys, "train_net_step.py")


def test_train_missing_cfg(tools, capsys):
    with pytest.raises(SystemExit) as exit_info:
        tools["train_net_step"].main(["--dataset", "shapes"])
    assert exit_info.value.code == 2
    assert "the following arguments are required: --cfg (see --help)" in one_error_line(capsys, "train_net_step.py")
    with pytest.raises(SystemExit):
        tools["train_net_step"].main(["--dataset", "shapes", "--cfg", "no/such.yaml"])
    assert "--cfg: file not found: no/such.yaml" in one_error_line(capsys, "train_net_step.py")


def test_train_non_coco_json(tools, tmp_path, capsys):
    not_coco = tmp_path / "labels.json"
    not_coco.write_text(json.dumps({"labels": [1, 2, 3]}))
    (tmp_path / "images").mkdir()
    assert train(tools, tmp_path, "--dataset", f"mine={not_coco}:{tmp_path / 'images'}") == 2
    line = one_error_line(capsys, "train_net_step.py")
    assert "labels.json" in line and "missing top-level key 'categories'" in line


def test_train_truncated_checkpoint(tools, tmp_path, tiny_set, truncated_ckpt, capsys):
    assert train(tools, tmp_path, "--dataset", tiny_set, "--resume", "--load_ckpt", str(truncated_ckpt)) == 2
    line = one_error_line(capsys, "train_net_step.py")
    assert f"{truncated_ckpt}: not a readable checkpoint, the file is truncated or corrupt" in line
    assert train(tools, tmp_path, "--dataset", tiny_set, "--load_ckpt", str(truncated_ckpt), "--set",
                 "FPN.DIM", "16") == 2  # fmt: skip
    line = one_error_line(capsys, "train_net_step.py")
    assert line.startswith(f"train_net_step.py: error: --load_ckpt: {truncated_ckpt}: not a readable")


def test_train_batch_size_zero(tools, capsys):
    with pytest.raises(SystemExit) as exit_info:
        tools["train_net_step"].main(["--dataset", "shapes", "--cfg", str(SHAPES_CONFIG), "--bs", "0"])
    assert exit_info.value.code == 2
    assert "argument --bs: must be >= 1, got 0" in one_error_line(capsys, "train_net_step.py")


def test_train_unknown_dataset_and_odd_set(tools, tmp_path, capsys):
    assert train(tools, tmp_path, "--dataset", "coco2071") == 2
    assert "--dataset: unknown dataset ['coco2071']" in one_error_line(capsys, "train_net_step.py")
    with pytest.raises(SystemExit):
        train(tools, tmp_path, "--set", "TEST.NMS")
    assert "--set needs KEY VALUE pairs" in one_error_line(capsys, "train_net_step.py")


def test_debug_shows_the_traceback_instead(tools, tmp_path):
    with pytest.raises(ConfigKeyError, match="TEST.NMSS"):
        train(tools, tmp_path, "--set", "TEST.NMSS", "0.5", "--debug")


def test_a_subprocess_prints_exactly_one_line(tmp_path):
    command = [sys.executable, str(ROOT / "tools" / "train_net_step.py"), "--dataset", "shapes", "--cfg",
               str(SHAPES_CONFIG), "--set", "SOLVER.BASE_LR", "fast"]  # fmt: skip
    process = subprocess.run(command, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert process.returncode == 2
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("train_net_step.py: error: command line: SOLVER.BASE_LR: type ")
    assert lines[0].endswith("got str 'fast'")


def test_test_net_and_infer_simple_errors(tools, tmp_path, truncated_ckpt, capsys):
    assert tools["test_net"].main(["--load_ckpt", str(truncated_ckpt), "--dataset", "shapes"]) == 2
    assert "not a readable checkpoint" in one_error_line(capsys, "test_net.py")
    assert tools["test_net"].main(["--cfg", str(SHAPES_CONFIG), "--dataset", "nope"]) == 2
    assert "--dataset: unknown dataset 'nope'" in one_error_line(capsys, "test_net.py")
    no_cfg = tmp_path / "no_cfg.pth"
    torch.save({"model": {}}, no_cfg)
    assert tools["infer_simple"].main(["--load_ckpt", str(no_cfg), "--images", "a.jpg"]) == 2
    line = one_error_line(capsys, "infer_simple.py")
    assert "the checkpoint does not carry its config; give --cfg" in line
    (tmp_path / "empty").mkdir()
    assert tools["infer_simple"].main(["--cfg", str(SHAPES_CONFIG), "--image_dir", str(tmp_path / "empty"),
                                       "--no_cuda"]) == 2  # fmt: skip
    assert "--image_dir: no image files" in one_error_line(capsys, "infer_simple.py")


def test_a_misspelled_head_or_body_name_or_heads_that_do_not_fit(tools, tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.zeros((61, 83, 3), np.uint8)).save(images / "a.png")
    argv = ["--cfg", str(SHAPES_CONFIG), "--image_dir", str(images), "--output_dir", str(tmp_path / "out"),
            "--no_cuda", "--set"]  # fmt: skip
    assert tools["infer_simple"].main([*argv, "FAST_RCNN.ROI_BOX_HEAD", "fast_rcnn_heads.roi_3mlp_head"]) == 2
    line = one_error_line(capsys, "infer_simple.py")
    assert "FAST_RCNN.ROI_BOX_HEAD: no entry named 'fast_rcnn_heads.roi_3mlp_head'; did you mean" in line
    assert "'fast_rcnn_heads.roi_2mlp_head'" in line
    assert tools["infer_simple"].main([*argv, "MODEL.CONV_BODY", "toolbox.vovnet19_slim_ese+fpm"]) == 2
    assert "MODEL.CONV_BODY 'toolbox.vovnet19_slim_ese+fpm': unknown neck 'fpm'" in one_error_line(
        capsys, "infer_simple.py"
    )
    # settings that do not fit together (an FPN box head with the mask head sharing C4's res5)
    argv[1] = str(SHAPES_CONFIG).replace("faster_rcnn", "mask_rcnn")
    shared_res5 = "mask_rcnn_heads.mask_rcnn_fcn_head_v0upshare"
    assert tools["infer_simple"].main([*argv, "MRCNN.ROI_MASK_HEAD", shared_res5]) == 2
    line = one_error_line(capsys, "infer_simple.py")
    assert "cannot be built: MRCNN.ROI_MASK_HEAD mask_rcnn_fcn_head_v0upshare shares res5 with the box head" in line


def test_print_config_and_make_shapes_errors(tools, tmp_path, capsys):
    assert tools["print_config"].main(["--cfg", str(SHAPES_CONFIG), "--set", "MODEL.NUM_CLASES", "3"]) == 2
    assert "MODEL.NUM_CLASES: no such key; did you mean MODEL.NUM_CLASSES?" in one_error_line(capsys, "print_config.py")
    with pytest.raises(SystemExit):
        tools["make_shapes_dataset"].main(["--num_images", "0", "--out", str(tmp_path)])
    assert "--num_images must be >= 1" in one_error_line(capsys, "make_shapes_dataset.py")


def test_flags_take_both_spellings(tools, tmp_path, monkeypatch):
    dashed = tools["make_shapes_dataset"].parse_args(["--data-dir", "x", "--num-images", "3"])
    underscored = tools["make_shapes_dataset"].parse_args(["--data_dir", "x", "--num_images", "3"])
    assert vars(dashed) == vars(underscored) and dashed.data_dir == "x" and dashed.num_images == 3
    args = tools["test_net"].parse_args(["--multi-gpu-testing", "--num-procs", "2"])
    assert args.multi_gpu_testing and args.num_procs == 2
    assert tools["test_net"].strip_parent_flags(["--multi-gpu-testing", "--num-procs", "2", "--output-dir=o",
                                                 "--dataset", "shapes"]) == ["--dataset", "shapes"]  # fmt: skip
    args = tools["train_net_step"].parse_args(["--dataset", "s", "--cfg", str(SHAPES_CONFIG), "--eval-period", "5",
                                               "--best-metric", "bbox/AP50", "--no-cuda"])  # fmt: skip
    assert (args.eval_period, args.best_metric, args.cuda) == (5, "bbox/AP50", False)
    # the data root: --data_dir, else PYDETECTRON_DATA_DIR
    monkeypatch.setenv("PYDETECTRON_DATA_DIR", str(tmp_path / "env_root"))
    assert tools["make_shapes_dataset"].main(["--split", "val", "--num_images", "2", "--keypoints"]) == 0
    assert (tmp_path / "env_root" / "shapes" / "keypoints_shapes_val" / "annotations.json").is_file()


def test_one_line_of_a_loader_worker_error():
    wrapped = RuntimeError(
        "Caught ImageReadError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 3, in f\n    raise X\n'
        "pydetectron.data.transforms.ImageReadError: could not read image 'a.jpg' (truncated JPEG: no end)\n"
    )
    assert one_line(wrapped) == "could not read image 'a.jpg' (truncated JPEG: no end)"
    missing = FileNotFoundError(2, "No such file or directory", "a/b.json")
    assert one_line(missing) == "No such file or directory: a/b.json"
    parser = ToolArgumentParser(prog="p")
    parser.add_argument("--multi-gpu-testing", action="store_true")
    assert parser.parse_args(["--multi_gpu_testing"]).multi_gpu_testing
