"""Range files: round trip, reuse only with the same fingerprint, planning of missing ranges."""

import numpy as np
import pytest
import torch

from pydetectron.evaluation import (
    ImageResult,
    RangeResult,
    find_ranges,
    load_range,
    merge_ranges,
    plan_ranges,
    save_range,
)
from pydetectron.evaluation.detection_store import range_path


def image_result(index, count, seed=0, with_extras=False):
    rng = np.random.default_rng([seed, index])
    boxes = rng.uniform(0, 100, (count, 4)).astype(np.float32)
    return ImageResult(
        index=index,
        image_id=100 + index,
        boxes=boxes,
        scores=rng.uniform(0, 1, count).astype(np.float32),
        classes=rng.integers(1, 5, count),
        masks=[{"size": [4, 4], "counts": "04L"} for _ in range(count)] if with_extras else None,
        keypoints=rng.uniform(0, 9, (count, 3, 3)).astype(np.float32) if with_extras else None,
    )


@pytest.mark.parametrize("with_extras", [False, True])
def test_range_file_round_trip(tmp_path, with_extras):
    images = [image_result(i, c, with_extras=with_extras) for i, c in zip(range(3, 7), (2, 0, 5, 1))]
    images.append(ImageResult.failed(7, 107, "ImageReadError: could not read image 'x.jpg'"))
    if with_extras:
        images[-1].masks, images[-1].keypoints = [], np.zeros((0, 3, 3), np.float32)
    path = save_range(tmp_path, RangeResult(3, 8, "abc", images))
    assert path == range_path(tmp_path, 3, 8) and path.name == "detections_range_3_8.pth"
    torch.load(path, weights_only=True)  # safe to load
    back = load_range(path)
    assert (back.start, back.end, back.fingerprint) == (3, 8, "abc")
    for a, b in zip(images, back.images):
        assert (a.index, a.image_id, a.error) == (b.index, b.image_id, b.error)
        np.testing.assert_array_equal(a.boxes.reshape(-1, 4), b.boxes)
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.classes, b.classes)
        assert a.masks == b.masks
        if with_extras:
            np.testing.assert_array_equal(a.keypoints, b.keypoints)
        else:
            assert b.keypoints is None


def test_find_ranges_skips_other_fingerprints_and_corrupt_files(tmp_path):
    save_range(tmp_path, RangeResult(0, 2, "mine", [image_result(0, 1), image_result(1, 1)]))
    save_range(tmp_path, RangeResult(2, 4, "theirs", [image_result(2, 1), image_result(3, 1)]))
    range_path(tmp_path, 4, 6).write_bytes(b"not a torch file")
    (tmp_path / "unrelated.pth").write_bytes(b"")
    assert find_ranges(tmp_path, "mine") == {(0, 2): range_path(tmp_path, 0, 2)}
    assert find_ranges(tmp_path / "absent", "mine") == {}
    with pytest.raises(ValueError, match="detections_range_4_6.pth"):
        load_range(range_path(tmp_path, 4, 6))


def test_plan_covers_the_range_with_existing_files_and_grid_chunks():
    existing = {(0, 10): "a", (10, 25): "b", (40, 50): "c", (45, 60): "d", (90, 120): "outside"}
    plan = plan_ranges(0, 100, existing, chunk_size=20)
    assert plan == [
        (0, 10, "a"),
        (10, 25, "b"),
        (25, 40, None),  # up to the next existing file
        (40, 50, "c"),
        (50, 60, None),  # 'd' starts inside 'c': not usable
        (60, 80, None),
        (80, 100, None),
    ]
    # the chunks are contiguous and cover exactly [start, end)
    assert all(a[1] == b[0] for a, b in zip(plan, plan[1:]))
    assert plan_ranges(5, 5, {}, 10) == []
    assert plan_ranges(3, 7, {}, 10) == [(3, 7, None)]
    with pytest.raises(ValueError, match="chunk_size"):
        plan_ranges(0, 4, {}, 0)


def test_merge_ranges_orders_entries_and_names_gaps():
    parts = [
        RangeResult(2, 4, "f", [image_result(2, 1), image_result(3, 0)]),
        RangeResult(0, 2, "f", [image_result(0, 2), image_result(1, 1)]),
    ]
    merged = merge_ranges(parts, 4)
    assert [m.index for m in merged] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match=r"1 entries have no detections, e.g. \[4\]"):
        merge_ranges(parts, 5)
    with pytest.raises(ValueError, match="entry 0 appears in more than one"):
        merge_ranges(parts + [RangeResult(0, 1, "f", [image_result(0, 1)])], 4)
