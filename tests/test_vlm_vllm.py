"""marc.compression.vlm.vllm_backend without a vLLM server: encoding, settings, and the faults
a real vLLM server does not produce.

The answer path itself, and every error a real server gives (server down, unknown model, no
``--enable-mm-embeds``, API key, a server that dies mid-answer), are tested against a real vLLM
server in tests/test_vllm_server.py. Here: silent and non-vLLM servers, answers without usage, the
error body of older vLLM releases (``{"object": "error", ...}``), from a stand-in that checks
requests the way ``vllm serve --enable-mm-embeds`` (0.32) does for Qwen2.5-VL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from _services import http_service as _http_service
from _services import tcp_service

from marc.compression.vlm.prompt import Visual, VisualPrompt, build_messages
from marc.compression.vlm.vllm_backend import VLLMBackend, decode_tensor, encode_tensor
from marc.memory.core.errors import ConfigError, ModelError
from marc.memory.core.events import EventRef
from marc.memory.core.settings import Settings
from marc.memory.core.timeline import Span

SERVED = "marc-student"
HIDDEN = 64
KEY = "s3cret"
CLOSED = "http://127.0.0.1:9/v1"  # the discard port: nothing listens there
MM_EMBEDS_OFF = "You must set `--enable-mm-embeds` to input `image_embeds`"
EVENTS = [EventRef("e1", "/videos/lobby.mp4", "lobby", Span(5.0, 20.0))]


# ------------------------------------------------------------------------------- services
class FakeVLLM:
    """Just enough of ``vllm serve SERVED --enable-mm-embeds`` for a Qwen2.5-VL model.

    Args:
        mm_embeds: whether the server was started with ``--enable-mm-embeds``.
        old_errors: answer errors in the older ``{"object": "error", "message": ...}`` shape.
        api_key: the server's ``--api-key``.
    """

    def __init__(self, *, mm_embeds: bool = True, old_errors: bool = False, api_key=None) -> None:
        self.mm_embeds, self.old_errors, self.api_key = mm_embeds, old_errors, api_key
        self.requests: list[dict[str, Any]] = []  # method, path, headers, json body
        self.received: list[tuple[torch.Tensor, torch.Tensor]] = []  # decoded (embeds, grid)

    def error(self, status: int, message: str, kind: str) -> tuple[int, str, str]:
        if self.old_errors:
            body = {"object": "error", "message": message, "type": kind, "code": status}
        else:
            body = {"error": {"message": message, "type": kind, "param": None, "code": status}}
        return status, "application/json", json.dumps(body)

    def __call__(self, method: str, path: str, headers, body: bytes) -> tuple[int, str, str]:
        req = json.loads(body) if body else None
        self.requests.append(
            {"method": method, "path": path, "headers": dict(headers), "json": req}
        )
        if self.api_key and headers.get("Authorization") != f"Bearer {self.api_key}":
            return 401, "application/json", json.dumps({"error": "Unauthorized"})
        if (method, path) == ("GET", "/v1/models"):
            models = [{"id": SERVED, "object": "model", "owned_by": "vllm"}]
            return 200, "application/json", json.dumps({"object": "list", "data": models})
        if (method, path) != ("POST", "/v1/chat/completions"):
            return 404, "application/json", json.dumps({"detail": "Not Found"})
        if req["model"] != SERVED:
            return self.error(404, f"The model `{req['model']}` does not exist.", "NotFoundError")
        return self.chat(req["messages"])

    def chat(self, messages: list[dict[str, Any]]) -> tuple[int, str, str]:
        parts = [p for m in messages if isinstance(m["content"], list) for p in m["content"]]
        if any(p["type"] not in ("text", "image_embeds") for p in parts):
            return self.error(400, f"Unknown part types {[p['type'] for p in parts]}", "BadRequest")
        embedded = [p for p in parts if p["type"] == "image_embeds"]
        carriers = [m for m in messages if any(p in embedded for p in m["content"])]
        if len(carriers) > 1 or len(embedded) > 1:
            return self.error(400, "Only one message can contain image_embeds", "BadRequestError")
        if embedded and not self.mm_embeds:
            return self.error(400, MM_EMBEDS_OFF, "BadRequestError")
        rows, answer = 0, "no picture"
        for part in embedded:
            item = part["image_embeds"]
            if not isinstance(item, dict) or set(item) != {"image_embeds", "image_grid_thw"}:
                return self.error(400, f"image_embeds needs both keys: {item!r:.80}", "BadRequest")
            embeds = decode_tensor(item["image_embeds"])
            grid = item["image_grid_thw"]  # one image: a JSON list or a base64 1-D tensor
            grid = torch.tensor(grid) if isinstance(grid, list) else decode_tensor(grid)
            if grid.ndim != 1:  # vLLM stacks the parts' grids itself
                shape = grid.prod(-1, keepdim=True).shape
                return self.error(
                    400, f"size_per_item should be a 1-D tensor, but found shape: {shape}", "Bad"
                )
            if embeds.ndim != 2 or embeds.shape[0] != int(grid.prod()) // 4:
                # vLLM checks this in the engine, which dies: every later request fails
                return self.error(500, "EngineCore encountered an issue.", "InternalServerError")
            if embeds.shape[1] != HIDDEN:  # (not checked against a real server)
                return self.error(400, "hidden size must match the language model", "Bad")
            self.received.append((embeds, grid))
            rows = embeds.shape[0]
            answer = f"rows={rows} grid={grid.tolist()} sum={embeds.float().sum():.4f}"
        texts = [m["content"] for m in messages if isinstance(m["content"], str)]
        texts += [p["text"] for p in parts if p["type"] == "text"]
        content = f"{answer} q={texts[-1]}"
        usage = {
            "prompt_tokens": rows + sum(len(t.split()) for t in texts),
            "completion_tokens": len(content.split()),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        choice = {"index": 0, "message": {"role": "assistant", "content": f"  {content}\n"}}
        completion = {"id": "chatcmpl-1", "object": "chat.completion", "model": SERVED}
        completion |= {"choices": [choice | {"finish_reason": "stop"}], "usage": usage}
        return 200, "application/json", json.dumps(completion)


@contextmanager
def http_service(answer) -> Iterator[str]:
    """A real HTTP server answering with ``answer``; yields its ``/v1`` base URL."""
    with _http_service(answer) as url:
        yield url + "/v1"


@contextmanager
def fake_vllm(**kwargs) -> Iterator[tuple[str, FakeVLLM]]:
    fake = FakeVLLM(**kwargs)
    with http_service(fake) as url:
        yield url, fake


def picture_prompt(
    question: str = "Who enters?", *, groups: int = 1, dtype=torch.float32
) -> VisualPrompt:
    """A compressed-picture prompt: ``groups`` stacked 4x6 groups (6 rows each), hidden 64."""
    h, w = 4 * groups, 6
    visual = Visual("image", torch.randn(h * w // 4, HIDDEN).to(dtype), (1, h, w))
    messages = build_messages(question, EVENTS, ["image"], groups=groups)
    return VisualPrompt(messages, [visual], EVENTS)


# ---------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_tensor_codec_matches_torch_save(dtype: torch.dtype) -> None:
    big = torch.randn(100, HIDDEN).to(dtype)
    view = big[10:16]  # torch.save would write all of big's storage
    assert torch.equal(decode_tensor(encode_tensor(view)), view)
    assert decode_tensor(encode_tensor(view)).dtype == dtype  # bit-exact, dtype kept
    assert len(encode_tensor(view)) < len(encode_tensor(big)) // 5
    t = big[:, ::2].T  # not contiguous
    assert torch.equal(decode_tensor(encode_tensor(t)), t)


@pytest.mark.parametrize("groups", [1, 3])
def test_embeddings_part(groups: int) -> None:
    """One image part per picture: its rows, and its pre-merge grid as a 1-D [t, h, w]."""
    prompt = picture_prompt("What is on the desk?", groups=groups)
    (visual,) = prompt.visuals
    with VLLMBackend(CLOSED, SERVED) as vlm:
        (message,) = vlm._messages(prompt)
    (original,) = prompt.messages
    assert message["role"] == original["role"] == "user"
    assert [p["type"] for p in message["content"]] == ["text", "image_embeds", "text"]
    assert message["content"][0] == original["content"][0]
    assert message["content"][2] == original["content"][2]
    assert original["content"][1] == {"type": "image"}  # the prompt itself is left unchanged
    item = message["content"][1]["image_embeds"]
    grid = decode_tensor(item["image_grid_thw"])
    assert grid.dtype == torch.int64 and grid.tolist() == [1, 4 * groups, 6]
    assert torch.equal(decode_tensor(item["image_embeds"]), visual.embeds)


def test_missing_usage() -> None:
    prompt = VisualPrompt([{"role": "user", "content": "Say hi."}], [])

    def bare(method, path, headers, body):
        return 200, "application/json", json.dumps({"choices": [{"message": {"content": "hi"}}]})

    with http_service(bare) as url, VLLMBackend(url, SERVED) as vlm:
        gen = vlm.generate(prompt)
    assert (gen.text, gen.prompt_tokens, gen.completion_tokens) == ("hi", 0, 0)


def test_from_config() -> None:
    settings = Settings(
        _env_file=None, vlm="org/student", vlm_url="http://h:1/v1/", vlm_api_key=KEY
    )
    with VLLMBackend.from_config(settings.answer_model) as vlm:
        assert (vlm.name, vlm.url, vlm.model, vlm.timeout_s) == (
            "vllm",
            "http://h:1/v1",
            "org/student",
            300.0,
        )
    settings = Settings(_env_file=None, vlm="org/student", vlm_served_name=SERVED, vlm_timeout_s=5)
    with VLLMBackend.from_config(settings.answer_model) as vlm:
        assert (vlm.model, vlm.timeout_s) == (SERVED, 5.0)
    with pytest.raises(ConfigError, match="MARC_VLM_URL"):
        VLLMBackend("127.0.0.1:8000/v1", SERVED)


# --------------------------------------------------------------------------------- errors
def error_of(vlm: VLLMBackend, prompt: VisualPrompt, url: str) -> str:
    """The one-line ModelError that ``prompt`` gets from ``vlm``; it must name ``url``."""
    with pytest.raises(ModelError) as excinfo:
        vlm.generate(prompt)
    text = str(excinfo.value)
    assert "\n" not in text and url in text, text
    return text


def test_server_silent() -> None:
    with tcp_service(None) as url, VLLMBackend(url, SERVED, timeout_s=0.5) as vlm:
        assert "MARC_VLM_TIMEOUT_S" in error_of(vlm, picture_prompt(), url)


def test_embeds_not_enabled_older_vllm_error_body() -> None:
    with fake_vllm(mm_embeds=False, old_errors=True) as (url, _), VLLMBackend(url, SERVED) as vlm:
        text = error_of(vlm, picture_prompt(), url)
    assert MM_EMBEDS_OFF in text and "400" in text
    assert f"restart it with `vllm serve {SERVED} --enable-mm-embeds`" in text


def test_unknown_model_older_vllm_error_body() -> None:
    model = "Qwen/Qwen2.5-VL-3B-Instruct"
    with fake_vllm(old_errors=True) as (url, fake), VLLMBackend(url, model) as vlm:
        text = error_of(vlm, picture_prompt(), url)
    assert f"does not serve model '{model}'" in text and f"`{model}` does not exist" in text
    assert f'it serves ["{SERVED}"]' in text and "MARC_VLM_SERVED_NAME" in text
    assert [r["path"] for r in fake.requests] == ["/v1/chat/completions", "/v1/models"]


@pytest.mark.parametrize("status", [200, 500])
def test_html_server(status: int) -> None:
    page = "<!DOCTYPE html>\n<html>\n<body>\n<h1>Welcome</h1>\n<p>a web site</p>\n</body>\n</html>"
    with (
        http_service(lambda *_: (status, "text/html", page)) as url,
        VLLMBackend(url, SERVED) as vlm,
    ):
        text = error_of(vlm, picture_prompt(), url)
    assert "Welcome a web site" in text and "<" not in text
    if status == 200:
        assert "is not an OpenAI-compatible server" in text
    else:
        assert "answered 500" in text


def _video_prompt() -> VisualPrompt:
    videos = [Visual("video", torch.randn(12, HIDDEN), (2, 4, 6)) for _ in EVENTS]
    return VisualPrompt(build_messages("Who?", EVENTS, ["video"]), videos, EVENTS)


def _two_images_prompt() -> VisualPrompt:
    images = [Visual("image", torch.randn(6, HIDDEN), (1, 4, 6)) for _ in range(2)]
    return VisualPrompt(build_messages("Who?", EVENTS, ["image", "image"]), images, EVENTS)


@pytest.mark.parametrize("make", [_video_prompt, _two_images_prompt], ids=["video", "two-images"])
def test_uncompressed_input_refused_before_sending(make) -> None:
    with fake_vllm() as (url, fake), VLLMBackend(url, SERVED) as vlm:
        prompt = make()
        with pytest.raises(ConfigError) as excinfo:
            vlm.generate(prompt)
    text = str(excinfo.value)
    assert "\n" not in text and "compressed picture only" in text and "transformers" in text
    assert fake.requests == []
