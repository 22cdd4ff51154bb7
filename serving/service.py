"""BentoML service with an OpenAI-compatible API: /v1/chat/completions, /v1/completions, /v1/models.

Run: QWENFLOW_MODEL=path/or/models:/NAME@champion bentoml serve qwenflow.serving.service:QwenflowLLM
Settings come from QWENFLOW_* env vars (see settings.py); /readyz, /livez and /metrics are BentoML's.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time

import bentoml
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from qwenflow.serving import metrics
from qwenflow.serving.engine import Engine, GenRequest
from qwenflow.serving.protocol import ChatRequest, CompletionRequest, error_body, new_id, now
from qwenflow.serving.settings import Settings

log = logging.getLogger("qwenflow.serving")
app = FastAPI(title="qwenflow OpenAI-compatible API")


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


@app.exception_handler(RequestValidationError)
async def _bad_request(request: Request, exc: RequestValidationError):
    problems = []
    for e in exc.errors()[:5]:
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        msg = e.get("msg", "invalid")
        if e.get("type") == "extra_forbidden":
            msg = "unknown field (not supported by this server)"
        elif e.get("type") == "json_invalid":
            where, msg = "body", f"not valid JSON at character {e['loc'][-1]} ({e.get('ctx', {}).get('error', '')})"
        problems.append(f"{where}: {msg}")
    metrics.REQUESTS.labels(endpoint=request.url.path, status="400").inc()
    first = exc.errors()[0] if exc.errors() else {}
    param = None if first.get("type") == "json_invalid" else (
        ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None)
    return JSONResponse(error_body("invalid request: " + "; ".join(problems), param=param), status_code=400)


@app.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException):
    """FastAPI's own errors (e.g. a body that is not UTF-8) in the OpenAI error shape."""
    metrics.REQUESTS.labels(endpoint=request.url.path, status=str(exc.status_code)).inc()
    message = str(exc.detail)
    if message == "There was an error parsing the body":
        message = "the request body could not be parsed: send UTF-8 encoded JSON with content-type application/json"
    return JSONResponse(error_body(message), status_code=exc.status_code)


@app.exception_handler(ApiError)
async def _api_error(request: Request, exc: ApiError):
    metrics.REQUESTS.labels(endpoint=request.url.path, status=str(exc.status)).inc()
    kind = "invalid_request_error" if exc.status < 500 else "server_error"
    return JSONResponse(error_body(exc.message, kind, exc.param, exc.code), status_code=exc.status)


@bentoml.service(name="qwenflow-llm", traffic={"timeout": 600, "max_concurrency": 512})
@bentoml.asgi_app(app, path="/v1")
class QwenflowLLM:
    def __init__(self) -> None:
        from qwenflow.deploy.model_source import resolve_model
        from qwenflow.serving.loader import batch_limit, load, model_info

        self.settings = Settings.load(_bento_src())
        model_dir = resolve_model(self.settings.model, self.settings.model_cache or None)
        loaded = load(model_dir, yarn=self.settings.yarn, attention=self.settings.attention)
        self.tokenizer = loaded.tokenizer
        self.context_limit = loaded.context_limit
        self.lineage = model_info(model_dir)
        batch = batch_limit(self.settings.attention, self.settings.max_batch_size)
        if batch < self.settings.max_batch_size:
            log.warning("attention=%s decodes one sequence at a time (it ignores padding masks)", self.settings.attention)
        self.engine = Engine(loaded.model, loaded.tokenizer, max_batch_size=batch,
                             continuous=self.settings.batching == "continuous")
        self.created = now()
        log.info("serving %s from %s (context %d, yarn=%s, attention=%s, batching=%s)", self.settings.served_name,
                 model_dir, self.context_limit, bool(loaded.yarn), self.settings.attention, self.settings.batching)

    def __is_ready__(self) -> bool:
        return self.engine._thread.is_alive()

    def __is_alive__(self) -> bool:
        return self.engine._thread.is_alive()

    @bentoml.on_shutdown
    def _shutdown(self) -> None:
        self.engine.close()

    # ---- routes -------------------------------------------------------------------------------------------
    @app.get("/models")
    async def models(self):
        return {"object": "list", "data": [{
            "id": self.settings.served_name, "object": "model", "created": self.created, "owned_by": "qwenflow",
            "max_model_len": self.context_limit, "lineage": self.lineage}]}

    @app.post("/chat/completions")
    async def chat_completions(self, body: ChatRequest, request: Request):
        messages = [{"role": m.role, "content": m.text()} for m in body.messages]
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        max_tokens = body.max_completion_tokens or body.max_tokens
        return await self._generate(body, text, max_tokens, request, chat=True)

    @app.post("/completions")
    async def completions(self, body: CompletionRequest, request: Request):
        return await self._generate(body, body.prompt, body.max_tokens, request, chat=False)

    # ---- helpers (plain methods: calling another api from an api deadlocks, STACK.md) ------------------------
    def _check(self, body, prompt_ids: list[int], max_tokens: int | None) -> int:
        if body.model != self.settings.served_name:
            raise ApiError(404, f"model {body.model!r} is not served here; this server serves "
                                f"{self.settings.served_name!r} (see GET /v1/models)", "model", "model_not_found")
        limit = self.settings.max_tokens_limit
        if max_tokens is not None and max_tokens > limit:
            raise ApiError(400, f"max_tokens={max_tokens} is above this deployment's limit of {limit}", "max_tokens")
        room = self.context_limit - len(prompt_ids)
        if room <= 0 or (max_tokens is not None and max_tokens > room):
            asked = len(prompt_ids) + (max_tokens or 1)
            raise ApiError(400, f"this model's maximum context length is {self.context_limit} tokens; the request "
                                f"needs {asked} ({len(prompt_ids)} in the prompt, {max_tokens or 1} for the "
                                "completion); shorten the prompt or lower max_tokens", "messages",
                           "context_length_exceeded")
        if self.engine.queue_depth >= self.settings.max_queue:
            raise ApiError(429, f"server busy: {self.engine.queue_depth} requests waiting; retry shortly",
                           code="queue_full")
        return max_tokens or min(limit, room)

    async def _generate(self, body, prompt_text: str, max_tokens: int | None, request: Request, chat: bool):
        endpoint = request.url.path
        prompt_ids = self.tokenizer(prompt_text, add_special_tokens=False).input_ids
        max_tokens = self._check(body, prompt_ids, max_tokens)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        req = GenRequest(prompt_ids, max_tokens, body.temperature, body.top_p, body.seed, body.stop or [],
                         on_event=lambda kind, payload: loop.call_soon_threadsafe(events.put_nowait, (kind, payload)))
        started = time.perf_counter()
        self.engine.submit(req)
        metrics.QUEUE_DEPTH.set(self.engine.queue_depth)
        rid, created = new_id("chatcmpl" if chat else "cmpl"), now()
        obj = "chat.completion" if chat else "text_completion"

        def finished(status: str, usage: dict | None):
            metrics.REQUESTS.labels(endpoint=endpoint, status=status).inc()
            metrics.LATENCY.labels(endpoint=endpoint).observe(time.perf_counter() - started)
            if usage:
                metrics.PROMPT_TOKENS.inc(usage["prompt_tokens"])
                metrics.GENERATED_TOKENS.inc(usage["completion_tokens"])
            metrics.QUEUE_DEPTH.set(self.engine.queue_depth)

        if not body.stream:
            parts = []
            while True:
                kind, payload = await events.get()
                if kind == "text":
                    parts.append(payload)
                elif kind == "error":
                    finished("500", None)
                    raise ApiError(500, payload)
                else:
                    finish, usage = payload
                    break
            finished("200", usage)
            text = "".join(parts)
            choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
                      if chat else {"index": 0, "text": text, "logprobs": None, "finish_reason": finish})
            return {"id": rid, "object": obj, "created": created, "model": self.settings.served_name,
                    "choices": [choice], "usage": usage}

        include_usage = bool(body.stream_options and body.stream_options.include_usage)

        def chunk(delta: dict | str | None, finish: str | None = None, usage: dict | None = None) -> str:
            if chat:
                choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
                out = {"id": rid, "object": "chat.completion.chunk", "created": created,
                       "model": self.settings.served_name, "choices": choices}
            else:
                choices = [] if delta is None else [{"index": 0, "text": delta, "logprobs": None,
                                                     "finish_reason": finish}]
                out = {"id": rid, "object": "text_completion", "created": created,
                       "model": self.settings.served_name, "choices": choices}
            if usage is not None:
                out["usage"] = usage
            return f"data: {json.dumps(out)}\n\n"

        async def sse():
            status = "499"
            try:
                if chat:
                    yield chunk({"role": "assistant", "content": ""})
                while True:
                    kind, payload = await events.get()
                    if kind == "text":
                        yield chunk({"content": payload} if chat else payload)
                    elif kind == "error":
                        status = "500"
                        yield f"data: {json.dumps(error_body(payload, 'server_error'))}\n\n"
                        break
                    else:
                        finish, usage = payload
                        status = "200"
                        yield chunk({} if chat else "", finish)
                        if include_usage:
                            yield chunk(None, usage=usage)
                        break
                yield "data: [DONE]\n\n"
            finally:
                req.cancelled = status == "499"  # client went away: free its batch slot
                finished(status, usage if status == "200" else None)

        return StreamingResponse(sse(), media_type="text/event-stream")


def _bento_src():
    """Inside a built Bento the working directory is its src/ (deploy.json and model/ sit there)."""
    from pathlib import Path

    return Path.cwd()
