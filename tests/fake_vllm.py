"""A loopback stand-in for a vLLM server that TRL trains against (vLLM needs a GPU).

It speaks what the training side uses: the OpenAI chat-completions endpoint as vLLM
answers it (``return_tokens_as_token_ids``: logprobs whose tokens are ``"token_id:N"``;
``return_token_ids``: the prompt's token ids), ``/health``, ``/v1/models``,
``/server_info``, ``/get_world_size`` and the weight-update calls of TRL's
``VLLMClient`` (``/init_weight_transfer_engine``, ``/start_weight_update``,
``/update_weights``, ``/finish_weight_update``, ``/reset_prefix_cache``). It samples from
its own copy of a model, whose weights the updates overwrite, and returns the sampled
tokens' logprobs (at temperature 1 they are the processed ones TRL asks for).

vLLM moves the weights over NCCL, which needs CUDA; :class:`LoopbackVLLMClient` is TRL's
client with only that transport replaced: the tensors travel in the ``/update_weights``
request itself. Everything else (when to sync, which tensors, the HTTP calls) is TRL's.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from fake_http import JsonHandler, serve
from trl.generation.vllm_client import VLLMClient

from promed_agents.backends.batch_generator import GenerationParams, generate_batch


class FakeVLLMServer:
    """The server's state: its model copy, and what it was asked."""

    def __init__(self, model: Any, tokenizer: Any, name: str = "served-doctor",
                 script: list[str] | None = None):
        self.model, self.tokenizer, self.name = model.eval(), tokenizer, name
        self.script = script
        """Reply ``script[k]`` at a conversation's k-th assistant turn (the last repeats)
        instead of sampling, with the model's logprobs of those tokens: a random tiny
        model never writes a well-formed turn, and training needs rewards that differ."""
        self.lock = threading.Lock()
        self.calls: list[str] = []
        self.requests: list[dict] = []

    def weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.named_parameters()}

    def get(self, path: str) -> dict:
        if path == "/health":
            return {}
        if path == "/v1/models":
            return {"object": "list", "data": [{"id": self.name, "object": "model"}]}
        if path.startswith("/server_info"):
            return {"vllm_config": {"model_config": {"logprobs_mode": "processed_logprobs"},
                                    "weight_transfer_config": {"backend": "nccl"}}}
        if path == "/get_world_size":
            return {"world_size": 1}
        raise KeyError(path)

    def post(self, path: str, body: dict) -> dict:
        self.calls.append(path)
        if path in ("/init_weight_transfer_engine", "/start_weight_update",
                    "/finish_weight_update"):
            return {}
        if path == "/reset_prefix_cache":
            return {"success": True}
        if path == "/update_weights":
            return self._update(body)
        if path == "/v1/chat/completions":
            return self._chat(body)
        raise KeyError(path)

    def _update(self, body: dict) -> dict:
        info = body["update_info"]
        params = dict(self.model.named_parameters())
        with self.lock, torch.no_grad():
            for name, shape in zip(info["names"], info["shapes"], strict=True):
                data = np.frombuffer(base64.b64decode(body["tensors"][name]), dtype=np.float32)
                params[name].copy_(torch.from_numpy(data.copy()).reshape(shape))
        return {}

    def _chat(self, body: dict) -> dict:
        self.requests.append(body)
        chat = [{"role": m["role"], "content": m["content"]} for m in body["messages"]]
        prompt = list(self.tokenizer.apply_chat_template(
            chat, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])
        params = GenerationParams(
            max_new_tokens=int(body.get("max_completion_tokens") or body.get("max_tokens")
                               or 16),
            temperature=float(body.get("temperature", 1.0)),
            top_p=float(body.get("top_p", 1.0)), stop=tuple(body.get("stop") or ()),
            seed=None)
        with self.lock:
            if self.script:
                turn = sum(m["role"] == "assistant" for m in chat)
                ids = self.tokenizer(self.script[min(turn, len(self.script) - 1)],
                                     add_special_tokens=False)["input_ids"]
                out = {"ids": ids + [self.tokenizer.eos_token_id], "ended": True}
                with torch.no_grad():
                    logits = self.model(torch.tensor([prompt + out["ids"]])).logits[0]
                logps = torch.log_softmax(logits[len(prompt) - 1:-1].float()
                                          / max(params.temperature, 1e-6), dim=-1)
                out["logprobs"] = logps.gather(-1, torch.tensor(out["ids"])[:, None])[:, 0]\
                    .tolist()
            else:
                (out,) = generate_batch(self.model, self.tokenizer, [prompt], params)
        text = self.tokenizer.decode(out["ids"], skip_special_tokens=True)
        for stop in params.stop:
            text = text.split(stop)[0]
        content = [{"token": f"token_id:{t}", "logprob": lp, "bytes": None,
                    "top_logprobs": []} for t, lp in zip(out["ids"], out["logprobs"],
                                                         strict=True)]
        return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0,
                "model": self.name, "prompt_token_ids": prompt,
                "choices": [{"index": 0, "finish_reason": "stop" if out["ended"] else "length",
                             "message": {"role": "assistant", "content": text.strip()},
                             "logprobs": {"content": content}, "token_ids": out["ids"]}],
                "usage": {"prompt_tokens": len(prompt), "completion_tokens": len(out["ids"]),
                          "total_tokens": len(prompt) + len(out["ids"])}}


@contextmanager
def serve_vllm(server: FakeVLLMServer) -> Iterator[str]:
    """Serve ``server`` on 127.0.0.1; yields its base URL (the OpenAI API is at …/v1)."""

    class Handler(JsonHandler):
        def respond(self, body: dict) -> dict:
            return server.post(self.path.split("?")[0], body)

        def do_GET(self):
            try:
                self.send_json(server.get(self.path))
            except KeyError:
                self.send_json({"error": self.path}, 404)

    with serve(Handler) as url:
        yield url.removesuffix("/v1")


class LoopbackVLLMClient(VLLMClient):
    """TRL's ``VLLMClient`` whose weight transport is the HTTP request, not NCCL."""

    def init_communicator(self, device: Any = 0) -> None:
        if self.get_server_info()["weight_transfer_config"] is None:
            raise RuntimeError("the server has no weight-transfer engine")
        self._post(f"{self.base_url}/init_weight_transfer_engine", json={"init_info": {
            "world_size": self.get_world_size() + 1, "rank_offset": 1, "transport": "http"}})
        self.communicator = "loopback"

    def update_named_params(self, metadata, named_params) -> None:
        names, dtypes, shapes = (list(field) for field in zip(*metadata, strict=True))
        tensors = {name: base64.b64encode(
            tensor.detach().float().contiguous().cpu().numpy().tobytes()).decode()
            for name, tensor in named_params}
        if not self._updating_weights:
            self._start_weight_update()
        self._post(f"{self.base_url}/update_weights", json={
            "update_info": {"names": names, "dtype_names": dtypes, "shapes": shapes},
            "tensors": tensors})
        if not self._updating_weights:
            self._finish_weight_update()

    def close_communicator(self) -> None:
        self.communicator = None
