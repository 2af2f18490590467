"""Evidence export (``marc ask --evidence DIR``) on real footage: contact sheet, clips, names."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from marc.agent.evidence import SHEET_NAME, export_evidence
from marc.memory.core.events import EventRef
from marc.memory.core.timeline import Span
from marc.memory.probe import probe

T0 = datetime(2024, 1, 31, 18, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def lobby_mp4(tmp_path_factory, run_ffmpeg, vtest_avi: Path) -> Path:
    """10 s of the surveillance clip as H.264 MP4, a keyframe every second (10 fps, -g 10)."""
    out = tmp_path_factory.mktemp("evidence") / "lobby.mp4"
    run_ffmpeg("-t", "10", "-i", vtest_avi, "-an", "-c:v", "libx264", "-preset", "veryfast",
               "-g", "10", out)  # fmt: skip
    return out


def hit(video: Path | str, start_s: float, end_s: float, n: int = 0, **kw) -> EventRef:
    fields = dict(id=f"{n:08x}-feed-beef", video=str(video), camera="lobby",
                  span=Span(start_s, end_s), start_at=T0 + timedelta(seconds=start_s),
                  end_at=T0 + timedelta(seconds=end_s),
                  score=0.5, video_id="v")  # fmt: skip
    return EventRef(**{**fields, **kw})


def written(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*"))


def test_sheet_and_clips_stream_copy_or_reencode(tmp_path: Path, lobby_mp4: Path, vtest_avi):
    out = tmp_path / "ev" / "nested"
    hits = [hit(lobby_mp4, 2.3, 5.3, 1), hit(vtest_avi, 20.0, 23.0, 2)]
    ev = export_evidence(hits, out)

    assert ev.dir == out.resolve() and ev.sheet == out.resolve() / SHEET_NAME
    copy, encoded = ev.items
    assert copy.clip.name == "01-lobby-00000001.mp4" and copy.stream_copy
    assert encoded.clip.name == "02-vtest-00000002.mp4" and not encoded.stream_copy  # msmpeg4
    for item in ev.items:
        info = probe(item.clip)
        assert (info.codec, info.width, info.height) == ("h264", 768, 576)
        assert item.problem is None and item.frames == 4
    # a stream copy starts at the keyframe before the event (here <= 1 s early); re-encodes on time
    assert 3.0 - 0.2 <= probe(copy.clip).duration_s <= 3.0 + 1.5
    assert probe(encoded.clip).duration_s == pytest.approx(3.0, abs=0.3)

    with Image.open(ev.sheet) as im:
        im.verify()
    with Image.open(ev.sheet) as im:
        sheet = np.asarray(im.convert("RGB"))
    # label strip of the first row: dark text pixels on the light strip
    assert (sheet[6:30, :400].max(axis=2) < 80).sum() > 50
    assert sheet.shape[1] >= 4 * 240  # four 240x180 frames side by side
    assert [p.name for p in written(out)] == sorted(
        ["01-lobby-00000001.mp4", "02-vtest-00000002.mp4", SHEET_NAME]
    )  # no temporary files left
    js = ev.to_json()
    assert js["sheet"] == str(ev.sheet) and js["items"][0]["clip"] == str(copy.clip)
    assert set(js["items"][0]) == {"id", "video", "clip", "problem", "stream_copy"}

    # again into the same folder: files are replaced, nothing else appears
    again = export_evidence(hits[:1], out, frames_per_event=2)
    assert again.items[0].clip == copy.clip and again.items[0].frames == 2
    assert len(written(out)) == 3


def test_sheet_grows_with_events_and_optional_fields(tmp_path: Path, lobby_mp4: Path):
    plain = EventRef("x", str(lobby_mp4), "", Span(1.0, 2.0))
    one = export_evidence([plain], tmp_path / "one", frames_per_event=2, thumb_height=90)
    three = export_evidence(
        [plain, hit(lobby_mp4, 4, 6, 2), hit(lobby_mp4, 7, 9.5, 3)],
        tmp_path / "three",
        frames_per_event=2,
        thumb_height=90,
    )
    with Image.open(one.sheet) as a, Image.open(three.sheet) as b:
        assert b.height > 2 * a.height and b.width == a.width
    assert one.items[0].clip.name == "01-lobby-x.mp4" and one.items[0].stream_copy


def test_missing_file_is_reported_and_the_rest_exported(tmp_path: Path, lobby_mp4: Path):
    gone = tmp_path / "moved" / "cam 3.mp4"
    hits = [hit(gone, 0, 3, 1), hit(lobby_mp4, 1, 3, 2), hit(lobby_mp4, 20, 22, 3)]
    ev = export_evidence(hits, tmp_path / "out")

    missing, fine, past_end = ev.items
    # a file replaced by a shorter one: no clip of its last seconds under the event's name
    assert past_end.clip is None and "after the end of the file" in past_end.problem
    assert missing.clip is None and missing.frames == 0 and not missing.stream_copy
    assert str(gone) in missing.problem and "no such file" in missing.problem
    assert "\n" not in missing.problem
    assert fine.problem is None and fine.clip.is_file()
    assert ev.to_json()["items"][0]["problem"] == missing.problem
    with Image.open(ev.sheet) as im:
        rgb = np.asarray(im.convert("RGB")).astype(int)
    red = (rgb[..., 0] > 150) & (rgb[..., 1] < 80) & (rgb[..., 2] < 80)
    assert red[:80].sum() > 50  # the "missing: ..." text of the first row


def test_no_readable_event_still_writes_the_sheet(tmp_path: Path):
    ev = export_evidence([hit(tmp_path / "a.mp4", 0, 1), hit("..", 0, 1)], tmp_path / "out")
    assert [i.clip for i in ev.items] == [None, None]
    assert all(i.problem for i in ev.items)
    with Image.open(ev.sheet) as im:
        im.verify()


def test_hostile_video_names_stay_inside(tmp_path: Path, lobby_mp4: Path):
    weird_dir = tmp_path / "src" / "a b"
    (weird_dir / "c").mkdir(parents=True)
    weird = weird_dir / "..weird\nname ünï.mp4"
    shutil.copy(lobby_mp4, weird)
    dotted = f"{weird_dir}/c/../../a b/c/../{weird.name}"  # ../ segments, same real file
    hits = [
        hit(weird, 1, 2, 1),
        hit(dotted, 2, 3, 2),
        hit("../../etc/passwd.mp4", 0, 1, 3),
        hit("..", 0, 1, 4),
        hit("/", 0, 1, 5, id="../../x"),
    ]
    before = written(tmp_path)
    out = tmp_path / "out"
    ev = export_evidence(hits, out, frames_per_event=1, thumb_height=60)

    root = out.resolve()
    new = [p for p in written(tmp_path) if p not in before]
    assert new and all(p == out or p.resolve().parent == root for p in new)
    names = [p.name for p in written(out)]
    assert all(n.isascii() and not n.startswith(".") and "\n" not in n for n in names)
    assert ev.items[0].clip.name == "01-weird_name_uni-00000001.mp4"
    assert ev.items[1].clip.is_file() and ev.items[1].problem is None
    assert [i.clip for i in ev.items[2:]] == [None, None, None]
    assert "passwd" in ev.items[2].problem


def test_empty_hits_raise(tmp_path: Path):
    with pytest.raises(ValueError, match="no evidence"):
        export_evidence([], tmp_path)
    with pytest.raises(ValueError, match="frames_per_event"):
        export_evidence([hit("a.mp4", 0, 1)], tmp_path, frames_per_event=0)


# ------------------------------------------------------- the frames the answer model read
@pytest.mark.slow
def test_model_frames_are_the_vision_towers_input_and_the_source_frames(
    tmp_path: Path, run_ffmpeg, monkeypatch
):
    """``frames/`` holds exactly what the answer path fed to the vision tower, and each PNG (and
    each contact-sheet thumbnail) is the source frame on screen at the time its name states."""
    from marc.compression.vlm import Answerer
    from marc.compression.vlm.loading import load_model, load_processor, model_dir
    from marc.compression.vlm.transformers_backend import TransformersBackend
    from marc.compression.vlm.vision import VisionTower
    from marc.memory.core.settings import Settings

    bar = _barcode()
    video = tmp_path / "bar.mp4"
    src = f"color=c=gray:s=160x90:r=30000/1001:d=20,format=yuv420p,{bar.BARCODE}"
    run_ffmpeg("-f", "lavfi", "-i", src, "-c:v", "libx264", "-preset", "veryfast", "-g", "300",
               video)  # fmt: skip
    pts = bar.timeline(video)
    s = Settings(home=tmp_path / "home", models="tiny", database_url="", qdrant_url="", vlm="",
                 vlm_max_new_tokens=2)  # fmt: skip
    folder = model_dir(s)
    processor = load_processor(folder)
    backend = TransformersBackend(load_model(folder, s), processor)
    vision = VisionTower(backend.visual, processor, frame_pixels=s.vlm_frame_pixels)
    fed: list[np.ndarray] = []
    encode = vision.encode
    monkeypatch.setattr(vision, "encode", lambda f: (fed.append(f.copy()), encode(f))[1])
    answerer = Answerer(s, backend=backend, vision=vision)
    hits = [hit(video, 12.1, 19.5, 1), hit(video, 3.0, 7.2, 2)]
    prepared = answerer.prepare("what is shown?", hits)

    ev = export_evidence(hits, tmp_path / "ev", model_frames=prepared.sampled)
    pngs = sorted((tmp_path / "ev" / "frames").iterdir())
    assert [f.file for f in ev.frames] == pngs and len(pngs) == sum(len(f) for f in fed)
    assert ev.to_json()["frames"][0] == {
        "file": str(pngs[0]), "id": hits[1].id, "video": str(video),
        "time_s": ev.frames[0].time_s,
    }  # fmt: skip
    fed_frames = np.concatenate(fed)
    src_wh = (160, 90)
    for i, (png, frame) in enumerate(zip(pngs, fed_frames, strict=True)):
        order, event_id, seconds = re.fullmatch(r"(\d+)-(.+)-(\d+\.\d+)s\.png", png.name).groups()
        assert int(order) == i
        with Image.open(png) as im:
            assert np.array_equal(np.asarray(im.convert("RGB")), frame)  # lossless, same pixels
        event = next(h for h in hits if h.id == event_id)
        t = float(seconds)
        assert event.start_s <= t < event.end_s
        assert bar.read_index(frame, src_wh) == bar.on_screen(pts, t), png.name
    assert [f.id for f in ev.frames][0] == hits[1].id  # time order: the earlier event first

    # the contact sheet's thumbnails: the frames on screen at the sheet's times, drawn as such
    info = probe(video)
    thumbs = _frames_strip_frames(info, hits[0])
    with Image.open(ev.sheet) as im:
        sheet = np.asarray(im.convert("RGB"))
    for frame, t in thumbs:
        assert bar.read_index(frame) == bar.on_screen(pts, t)
        top = frame[: frame.shape[0] * 2 // 3]  # above the time stamp drawn on it
        assert _found_in(sheet, top)

    # a second export replaces the first one's frames
    again = export_evidence(hits[:1], tmp_path / "ev", model_frames=prepared.sampled)
    assert sorted((tmp_path / "ev" / "frames").iterdir()) == [f.file for f in again.frames]


def _barcode():
    """The bar-code helpers of test_frames.py (tests are not a package: load it by path)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_bar", Path(__file__).with_name("test_frames.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _frames_strip_frames(info, h) -> list[tuple[np.ndarray, float]]:
    """The thumbnails the contact sheet draws for ``h`` (the same call _frames_strip makes)."""
    from marc.memory.frames import event_frames, frame_times

    width = max(2, round(180 * info.width / info.height / 2) * 2)
    frames = event_frames(info.path, h.start_s, h.end_s, 4, height=180, width=width, fps=info.fps)
    return list(zip(frames, frame_times(h.start_s, h.end_s, 4, info.fps), strict=True))


def _found_in(sheet: np.ndarray, part: np.ndarray) -> bool:
    """Whether ``part`` appears pixel for pixel somewhere in ``sheet``."""
    ph, pw = part.shape[:2]
    for y, x in zip(
        *np.nonzero((sheet[: -ph + 1, : -pw + 1] == part[0, 0]).all(axis=2)), strict=True
    ):
        if np.array_equal(sheet[y : y + ph, x : x + pw], part):
            return True
    return False
