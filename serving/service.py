"""BentoML service with an OpenAI-compatible API: /v1/chat/completions, /v1/completions, /v1/models.

Run: QWENFLOW_MODEL=path/or/models:/NAME@champion bentoml serve qwenflow.serving.service:QwenflowLLM
Settings come from QWENFLOW_* env vars (see settings.py; the API key from QWENFLOW_API_KEY or
QWENFLOW_API_KEY_FILE, see guard.py); /readyz, /livez and /metrics are BentoML's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import bentoml
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from qwenflow.serving import metrics
from qwenflow.serving import tools as tool_grammars
from qwenflow.serving.engine import Engine, GenRequest
from qwenflow.serving.guard import ApiKeyMiddleware, BodyLimitMiddleware, api_key
from qwenflow.serving.logprobs import LogprobFormat
from qwenflow.serving.prompt import ChatEncoder, PromptError
from qwenflow.serving.protocol import ChatRequest, CompletionRequest, error_body, new_id, now
from qwenflow.serving.settings import Settings

log = logging.getLogger("qwenflow.serving")
metrics.bound_bentoml_route_labels()
app = FastAPI(title="qwenflow OpenAI-compatible API")


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def _error(request: Request, status: int, message: str, param: str | None = None, code: str | None = None):
    """An OpenAI-shaped error; text a client sent (e.g. a lone surrogate) cannot break its encoding."""
    metrics.REQUESTS.labels(endpoint=metrics.route(request.url.path), status=str(status)).inc()
    clean = lambda s: s if s is None else s.encode("utf-8", "replace").decode("utf-8")  # noqa: E731
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse(error_body(clean(message), kind, clean(param), code), status_code=status)


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
    first = exc.errors()[0] if exc.errors() else {}
    param = (
        None
        if first.get("type") == "json_invalid"
        else (".".join(str(p) for p in first.get("loc", ()) if p != "body") or None)
    )
    return _error(request, 400, "invalid request: " + "; ".join(problems), param)


@app.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException):
    """FastAPI's own errors (e.g. a body that is not UTF-8, an unknown route) in the OpenAI error shape."""
    message = str(exc.detail)
    if message == "There was an error parsing the body":
        message = "the request body could not be parsed: send UTF-8 encoded JSON with content-type application/json"
    return _error(request, exc.status_code, message)


@app.exception_handler(ApiError)
async def _api_error(request: Request, exc: ApiError):
    return _error(request, exc.status, exc.message, exc.param, exc.code)


@app.exception_handler(Exception)
async def _unexpected(request: Request, exc: Exception):
    """A bug, not the client's fault: logged with its traceback, answered without internals (no paths)."""
    log.exception("unhandled error on %s", metrics.route(request.url.path))
    return _error(request, 500, f"internal error ({type(exc).__name__}); the server log has the details")


@bentoml.service(name="qwenflow-llm", traffic={"timeout": 600, "max_concurrency": 512})
@bentoml.asgi_app(app, path="/v1")
class QwenflowLLM:
    def __init__(self) -> None:
        from qwenflow.artifacts import read_lineage
        from qwenflow.serving.loader import batch_limit, load
        from qwenflow.tracking.model_source import resolve

        self.settings = Settings.load(_bento_src())
        key = api_key()
        if key is None:
            log.warning("no API key (QWENFLOW_API_KEY / QWENFLOW_API_KEY_FILE): /v1 is open to anyone who can reach it")
        app.add_middleware(BodyLimitMiddleware, limit=self.settings.max_body_bytes)
        app.add_middleware(ApiKeyMiddleware, key=key)  # outermost: a request without the key is never read
        import torch

        torch.set_num_threads(self.settings.torch_threads())
        model_dir = resolve(self.settings.model, self.settings.model_cache or None)
        loaded = load(model_dir, yarn=self.settings.yarn, attention=self.settings.attention)
        self.tokenizer = loaded.tokenizer
        self.encoder = ChatEncoder(loaded.tokenizer)
        self.context_limit = loaded.context_limit
        self.lineage = public_lineage(read_lineage(model_dir))
        batch = batch_limit(self.settings.attention, self.settings.max_batch_size)
        if batch < self.settings.max_batch_size:
            log.warning(
                "attention=%s decodes one sequence at a time (it ignores padding masks)", self.settings.attention
            )
        self.engine = Engine(
            loaded.model,
            loaded.tokenizer,
            max_batch_size=batch,
            continuous=self.settings.batching == "continuous",
            join_after=self.settings.join_after,
        )
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="qwenflow-tokenize")
        self.grammars = None  # llguidance's view of the vocabulary, built on the first constrained request
        self.logprob_format = LogprobFormat(loaded.tokenizer)
        self.created = now()
        log.info(
            "serving %s from %s (context %d, yarn=%s, attention=%s, batching=%s, %d torch threads)",
            self.settings.served_name,
            model_dir,
            self.context_limit,
            bool(loaded.yarn),
            self.settings.attention,
            self.settings.batching,
            torch.get_num_threads(),
        )

    def __is_ready__(self) -> bool:
        return self.engine._thread.is_alive()

    def __is_alive__(self) -> bool:
        return self.engine._thread.is_alive()

    @bentoml.on_shutdown
    def _shutdown(self) -> None:
        self.engine.close()
        self.pool.shutdown(wait=False, cancel_futures=True)

    # ---- routes -------------------------------------------------------------------------------------------
    @app.get("/models")
    async def models(self):
        return {
            "object": "list",
            "data": [
                {
                    "id": self.settings.served_name,
                    "object": "model",
                    "created": self.created,
                    "owned_by": "qwenflow",
                    "max_model_len": self.context_limit,
                    "lineage": self.lineage,
                }
            ],
        }

    @app.post("/chat/completions")
    async def chat_completions(self, body: ChatRequest, request: Request):
        self._check_model(body)
        mode = body.tool_mode
        tools = [t.model_dump(exclude_none=True) for t in body.tools] if mode != "none" else None
        messages = [m.for_template() for m in body.messages]

        def prepare():  # in a worker thread: template, tokenizer and grammar compilation
            ids = self.encoder.render(messages, tools)[1]
            return ids, self._matcher(body, mode, tools)

        prompt_ids, matcher = await self._off_loop(prepare)
        max_tokens = body.max_completion_tokens or body.max_tokens
        return await self._generate(body, prompt_ids, max_tokens, request, chat=True, matcher=matcher, tool_mode=mode)

    @app.post("/completions")
    async def completions(self, body: CompletionRequest, request: Request):
        self._check_model(body)
        prompt_ids = await self._off_loop(lambda: self.encoder.encode(body.prompt))
        return await self._generate(body, prompt_ids, body.max_tokens, request, chat=False)

    # ---- helpers (plain methods: calling another api from an api deadlocks in bentoml 1.4) ------------------------
    async def _off_loop(self, fn):
        """Tokenisation (and grammar compilation) runs in a worker thread: a long prompt never stalls the event
        loop (other requests, /readyz). A text the tokenizer refuses, or a schema the grammar library refuses, is a
        400."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, fn)
        except PromptError as e:
            raise ApiError(400, str(e), "messages", "invalid_text") from None
        except GrammarError as e:
            raise ApiError(400, str(e), e.param, "invalid_grammar") from None

    def _matcher(self, body: ChatRequest, mode: str, tools: list[dict] | None):
        """The grammar this request's output must follow: a tool call when one is required, else its
        response_format; None when the output is free."""
        if mode == "none" or mode == "auto":
            rf = body.response_format
            if rf is None or rf.type == "text":
                return None
            schema = rf.json_schema.schema_ if rf.type == "json_schema" else {"type": "object"}
            param, grammar = "response_format", lambda: tool_grammars.json_schema_grammar(schema)
        else:
            param = "tool_choice"
            grammar = lambda: tool_grammars.tool_call_grammar(  # noqa: E731
                tools,
                self.tokenizer,
                only=None if mode == "required" else mode,
                parallel=body.parallel_tool_calls and mode == "required",
            )
        try:
            if self.grammars is None:
                self.grammars = tool_grammars.Grammars(self.tokenizer, self.engine.vocab_size)
            return self.grammars.matcher(grammar())
        except ValueError as e:
            raise GrammarError(f"{param}: the grammar library refused it ({str(e)[:200]})", param) from None

    def _check_model(self, body) -> None:
        if body.model != self.settings.served_name:
            raise ApiError(
                404,
                f"model {body.model!r} is not served here; this server serves "
                f"{self.settings.served_name!r} (see GET /v1/models)",
                "model",
                "model_not_found",
            )

    def _check(self, body, prompt_ids: list[int], max_tokens: int | None) -> int:
        limit = self.settings.max_tokens_limit
        if max_tokens is not None and max_tokens > limit:
            raise ApiError(400, f"max_tokens={max_tokens} is above this deployment's limit of {limit}", "max_tokens")
        if body.n > self.engine.max_batch_size:
            raise ApiError(
                400, f"n={body.n} is above this deployment's batch size of {self.engine.max_batch_size}", "n"
            )
        if body.logit_bias and max(body.logit_bias) >= self.engine.vocab_size:
            raise ApiError(
                400,
                f"logit_bias: token id {max(body.logit_bias)} is outside the vocabulary "
                f"(0..{self.engine.vocab_size - 1})",
                "logit_bias",
            )
        room = self.context_limit - len(prompt_ids)
        if room <= 0 or (max_tokens is not None and max_tokens > room):
            asked = len(prompt_ids) + (max_tokens or 1)
            raise ApiError(
                400,
                f"this model's maximum context length is {self.context_limit} tokens; the request "
                f"needs {asked} ({len(prompt_ids)} in the prompt, {max_tokens or 1} for the "
                "completion); shorten the prompt or lower max_tokens",
                "messages",
                "context_length_exceeded",
            )
        if self.engine.queue_depth >= self.settings.max_queue:
            raise ApiError(
                429, f"server busy: {self.engine.queue_depth} requests waiting; retry shortly", code="queue_full"
            )
        return max_tokens or min(limit, room)

    async def _generate(
        self,
        body,
        prompt_ids: list[int],
        max_tokens: int | None,
        request: Request,
        chat: bool,
        matcher=None,
        tool_mode: str = "none",
    ):
        endpoint = metrics.route(request.url.path)
        max_tokens = self._check(body, prompt_ids, max_tokens)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        if chat:
            top_k = (body.top_logprobs or 0) if body.logprobs else None
        else:
            top_k = body.logprobs
        req = GenRequest(
            prompt_ids,
            max_tokens,
            body.temperature,
            body.top_p,
            body.seed,
            body.stop or [],
            n=body.n,
            presence_penalty=body.presence_penalty,
            frequency_penalty=body.frequency_penalty,
            logit_bias=body.logit_bias,
            logprobs=top_k,
            matcher=matcher,
            stream=body.stream,
            on_event=lambda kind, index, payload: loop.call_soon_threadsafe(events.put_nowait, (kind, index, payload)),
        )
        started = time.perf_counter()
        self.engine.submit(req)
        metrics.QUEUE_DEPTH.set(self.engine.queue_depth)
        rid, created = new_id("chatcmpl" if chat else "cmpl"), now()
        name = self.settings.served_name
        tools_on = chat and tool_mode != "none"
        parallel = getattr(body, "parallel_tool_calls", True) and tool_mode in ("auto", "required")
        fmt = self.logprob_format

        def finished(status: str, usage: dict | None):
            metrics.REQUESTS.labels(endpoint=endpoint, status=status).inc()
            metrics.LATENCY.labels(endpoint=endpoint).observe(time.perf_counter() - started)
            if usage:
                metrics.PROMPT_TOKENS.inc(usage["prompt_tokens"])
                metrics.GENERATED_TOKENS.inc(usage["completion_tokens"])
            metrics.QUEUE_DEPTH.set(self.engine.queue_depth)

        def usage_of(per_choice: list[dict]) -> dict:
            completion = sum(u["completion_tokens"] for u in per_choice)
            return {
                "prompt_tokens": len(prompt_ids),
                "completion_tokens": completion,
                "total_tokens": len(prompt_ids) + completion,
            }

        if not body.stream:
            results: dict[int, tuple] = {}
            try:
                while len(results) < body.n:
                    kind, index, payload = await events.get()
                    if kind == "error":
                        req.cancelled = True  # the other choices stop too: the request failed
                        finished("500", None)
                        raise ApiError(500, payload)
                    results[index] = payload
            except asyncio.CancelledError:  # the client went away while waiting: free its batch slots
                req.cancelled = True
                raise
            usage = usage_of([results[j][1] for j in range(body.n)])
            finished("200", usage)
            choices = []
            for j in range(body.n):
                finish, _, text, lps = results[j]
                if chat:
                    message: dict = {"role": "assistant", "content": text}
                    if tools_on:
                        content, calls = tool_grammars.parse_completion(text, parallel)
                        if calls:
                            message = {
                                "role": "assistant",
                                "content": content,
                                "tool_calls": [_call_json(c) for c in calls],
                            }
                            finish = "tool_calls" if finish == "stop" else finish
                    choice = {
                        "index": j,
                        "message": message,
                        "logprobs": fmt.chat(lps) if lps is not None else None,
                        "finish_reason": finish,
                    }
                else:
                    choice = {
                        "index": j,
                        "text": text,
                        "logprobs": fmt.legacy(lps) if lps is not None else None,
                        "finish_reason": finish,
                    }
                choices.append(choice)
            return {
                "id": rid,
                "object": "chat.completion" if chat else "text_completion",
                "created": created,
                "model": name,
                "choices": choices,
                "usage": usage,
            }

        include_usage = bool(body.stream_options and body.stream_options.include_usage)

        def chunk(choices: list[dict], usage: dict | None = None) -> str:
            out = {
                "id": rid,
                "object": "chat.completion.chunk" if chat else "text_completion",
                "created": created,
                "model": name,
                "choices": choices,
            }
            if usage is not None:
                out["usage"] = usage
            return f"data: {json.dumps(out)}\n\n"

        def deltas(j: int, events_: list[tuple], lps: list | None, finish: str | None = None) -> list[dict]:
            """Chat chunks' choices for parser events (content / tool calls) of choice j; logprobs ride on the
            first of them, or on a content-less delta when the parser held all text back."""
            out = []
            for e in events_:
                if e[0] == "content":
                    out.append({"index": j, "delta": {"content": e[1]}, "finish_reason": None})
                else:
                    k = calls_sent[j]
                    calls_sent[j] += 1
                    call = _call_json(e[1])
                    out.append({"index": j, "delta": {"tool_calls": [{"index": k, **call}]}, "finish_reason": None})
            if lps:
                if not out:
                    out.append({"index": j, "delta": {}, "finish_reason": None})
                out[0]["logprobs"] = fmt.chat(lps)
            if finish:
                out.append({"index": j, "delta": {}, "finish_reason": finish})
            return out

        calls_sent = [0] * body.n
        parsers = [tool_grammars.ToolCallParser(parallel) if tools_on else None for _ in range(body.n)]

        async def sse():
            status, usage, per_choice = "499", None, {}
            try:
                if chat:
                    yield chunk(
                        [
                            {"index": j, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                            for j in range(body.n)
                        ]
                    )
                while len(per_choice) < body.n:
                    kind, j, payload = await events.get()
                    if kind == "error":
                        status = "500"
                        yield f"data: {json.dumps(error_body(payload, 'server_error'))}\n\n"
                        break
                    if kind == "text":
                        text, lps = payload
                        if not chat:
                            yield chunk(
                                [
                                    {
                                        "index": j,
                                        "text": text,
                                        "logprobs": fmt.legacy(lps) if lps else None,
                                        "finish_reason": None,
                                    }
                                ]
                            )
                            continue
                        evs = parsers[j].feed(text) if parsers[j] else [("content", text)]
                        out = deltas(j, evs, lps)
                        if out:
                            yield chunk(out)
                        continue
                    finish, u, _, lps = payload
                    per_choice[j] = u
                    if not chat:
                        yield chunk(
                            [
                                {
                                    "index": j,
                                    "text": "",
                                    "logprobs": fmt.legacy(lps) if lps else None,
                                    "finish_reason": finish,
                                }
                            ]
                        )
                        continue
                    evs = parsers[j].finish() if parsers[j] else []
                    if calls_sent[j] and finish == "stop":
                        finish = "tool_calls"
                    yield chunk(deltas(j, evs, lps, finish))
                else:
                    status, usage = "200", usage_of([per_choice[j] for j in range(body.n)])
                    if include_usage:
                        yield chunk([], usage=usage)
                yield "data: [DONE]\n\n"
            finally:
                req.cancelled = status != "200"  # client gone or a choice failed: its rows leave the batch
                finished(status, usage)

        return StreamingResponse(sse(), media_type="text/event-stream")


def _call_json(call) -> dict:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


class GrammarError(ValueError):
    def __init__(self, message: str, param: str):
        super().__init__(message)
        self.param = param


def public_lineage(lineage: dict) -> dict:
    """The lineage shown to clients, without host paths (a path says where files sat on the training machine)."""

    def is_path(v) -> bool:
        return isinstance(v, str) and (v.startswith(("/", "~", "./", "../")) or (len(v) > 2 and v[1:3] == ":\\"))

    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if not is_path(x)}
        if isinstance(v, list):
            return [clean(x) for x in v if not is_path(x)]
        return v

    return clean(lineage)


def _bento_src():
    """Inside a built Bento the working directory is its src/ (deploy.json and model/ sit there)."""
    from pathlib import Path

    return Path.cwd()
