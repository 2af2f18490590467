"""Frames and frame sizes the qwen-vl-utils way (``marc.compression.vlm.sampling``).

Expected values are derived by hand from Video-R1's ``src/qwen-vl-utils/src/qwen_vl_utils/
vision_process.py`` (``smart_nframes``, ``fetch_video``, ``smart_resize``), as commented.
"""

from __future__ import annotations

import dataclasses
import doctest
import json

import pytest

from marc.compression.vlm import sampling
from marc.compression.vlm.sampling import (
    frame_indices,
    smart_nframes,
    smart_resize,
    video_frame_size,
    video_pixel_bounds,
)


@pytest.mark.parametrize(
    ("total", "fps", "max_frames", "expected"),
    [
        (90, 30.0, 64, 6),  # 3 s x 2 fps
        (30, 30.0, 64, 4),  # 1 s: 2 frames, raised to the minimum 4
        (18000, 30.0, 64, 64),  # 10 min: capped at 64
        (18000, 30.0, 16, 16),  # Video-R1's training cap
        (187, 25.0, 64, 14),  # 7.48 s: 14.96, floored to even
        (250, 25.0, 64, 20),
        (8, 4.0, 64, 4),  # bench/synthetic.py's 2 s clips
        (61, 2.0, 64, 60),  # 61 frames at 2 fps: all of them, capped at floor_even(61)
        (5, 1.0, 64, 4),  # 10 wanted, only 5 there: floor_even(5)
        (3, 30.0, 64, 2),  # fewer frames than the minimum: floor_even(3)
    ],
)
def test_smart_nframes(total, fps, max_frames, expected):
    assert smart_nframes(total, fps, max_frames=max_frames) == expected


def test_smart_nframes_refuses_a_one_frame_video():
    with pytest.raises(ValueError, match="nframes"):
        smart_nframes(1, 30.0)


@pytest.mark.parametrize(
    ("height", "width", "expected", "tokens"),
    [
        # 140x168 fits [100352, 105369]? no: 23,520 px, so upscaled by sqrt(100352 / 25344)
        (144, 176, (308, 364), 143),
        (240, 320, (280, 392), 140),  # 252x308 = 77,616 < 100,352: upscaled
        (576, 768, (280, 364), 130),  # vtest.avi: 588x756 > 105,369: downscaled
        (360, 640, (224, 420), 120),  # downscaled with floor: may land under the minimum
        (1080, 1920, (224, 420), 120),
        (308, 336, (308, 336), 132),  # already in bounds: kept
    ],
)
def test_video_frame_size(height, width, expected, tokens):
    h, w = video_frame_size(height, width, nframes=16)
    assert (h, w) == expected and h * w // (28 * 28) == tokens


def test_pixel_bounds():
    assert video_pixel_bounds(64) == (100352, 105369)  # max(min(100352, ...), int(1.05 * min))
    assert video_pixel_bounds(64, max_pixels=256 * 28 * 28) == (100352, 200704)  # inference
    # the total budget (128000*28*28*0.9) binds only for very many frames
    assert video_pixel_bounds(2000, min_pixels=3136)[1] == pytest.approx(90316800 * 2 / 2000)
    assert video_pixel_bounds(2000)[1] == 105369
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(10, 2010)


def test_frame_indices_round_half_to_even():
    assert frame_indices(10, 4) == [0, 3, 6, 9]
    assert frame_indices(4, 3) == [0, 2, 3]  # 1.5 -> 2
    assert frame_indices(6, 3) == [0, 2, 5]  # 2.5 -> 2


def test_docstring_examples():
    assert doctest.testmod(sampling).failed == 0


# ------------------------------------------------------------------ through the answer model
@pytest.fixture(scope="module")
def builder(tmp_path_factory):
    """The tiny answer model's InputBuilder with training's config (qwen-vl-utils sampling)."""
    from marc.compression.vlm.loading import load_model, load_processor, model_dir
    from marc.training.config import TrainConfig
    from marc.training.inputs import InputBuilder

    cache = tmp_path_factory.mktemp("models")
    cfg = TrainConfig(data="t.json", output_dir="o").answer_model
    cfg = dataclasses.replace(cfg, model="tiny", cache_dir=cache)
    folder = model_dir(cfg)
    return InputBuilder.for_model(load_model(folder, cfg), load_processor(folder), cfg)


def _sample(path, root):
    from marc.training.data import load_dataset, write_dataset

    record = {
        "problem_id": 1, "problem": "Who walks?", "problem_type": "multiple choice",
        "options": ["A. a man", "B. nobody"], "solution": "<answer>A</answer>",
        "path": str(path), "data_type": "video",
    }  # fmt: skip
    (sample,) = load_dataset(write_dataset(root / "d.json", [record]))
    return sample


@pytest.mark.slow
def test_training_reads_videos_the_qwen_vl_utils_way(builder, vtest_avi, run_ffmpeg, tmp_path):
    """A 3 s QCIF clip: 6 frames (2 fps), upscaled to the 128*28*28 floor (143 tokens a group);
    the old answer path read 64 frames at 140x168 (30 tokens a group) whatever the length."""
    clip = tmp_path / "qcif.mp4"
    run_ffmpeg("-i", vtest_avi, "-t", "3", "-vf", "scale=176:144", "-r", "10", clip)
    assert builder.config.sample_fps == 2.0 and builder.vision.min_pixels == 100352
    sample = _sample(clip, tmp_path)
    full = builder.prepare(sample, "full", frames=64)
    assert full.frame_size == (308, 364) and full.tokens_per_group == 143
    assert [f.shape[0] for f in full.sampled.frames] == [6]  # 30 frames at 10 fps: 3 s x 2
    assert full.visual_tokens == 3 * 143
    uniform = builder.prepare(sample, "uniform", uniform_frames=4)
    assert [f.shape[0] for f in uniform.sampled.frames] == [4]  # capped by uniform_frames
    compressed = builder.prepare(sample, "compressed", frames=64, budget=1)
    assert compressed.visual_tokens == 143
    # the whole vtest.avi (79.5 s at 10 fps): capped at 64 frames
    long = builder.prepare(_sample(vtest_avi, tmp_path), "full", frames=64)
    assert [f.shape[0] for f in long.sampled.frames] == [64]
    assert long.frame_size == (280, 364) and long.visual_tokens == 32 * 130


@pytest.mark.slow
def test_the_video_r1_prompt_is_the_question_and_the_video_only(builder, vtest_avi, run_ffmpeg,
                                                                 tmp_path):  # fmt: skip
    """No archive intro, no file or camera name (the folder can name the class)."""
    from marc.training.video_r1 import question_prompt

    folder = tmp_path / "label_dog"
    folder.mkdir()
    clip = folder / "clip.mp4"
    run_ffmpeg("-i", vtest_avi, "-t", "2", "-vf", "scale=176:144", "-r", "10", clip)
    sample = _sample(clip, tmp_path)
    for stage in ("train", "eval"):
        prepared = builder.prepare(sample, "compressed", prompt="video_r1", stage=stage)
        (message,) = prepared.prompt.messages
        assert message["content"] == [
            {"type": "image"},
            {"type": "text", "text": question_prompt(
                sample.problem, sample.problem_type, sample.options, stage=stage)},
        ]  # fmt: skip
        assert "label_dog" not in json.dumps(message) and "clip.mp4" not in json.dumps(message)
    marc = builder.prepare(sample, "compressed", prompt="marc")
    assert "label_dog" in json.dumps(marc.prompt.messages)  # what the archive prompt says
