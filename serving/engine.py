"""Continuous batching for a transformers causal LM: one background thread, one shared KV cache.

Hand-written because BentoML's adaptive batching groups whole requests (a batch lasts as long as its longest
member and cannot stream), and transformers' own continuous-batching manager takes one generation config for
every request; here each row keeps its own temperature/top_p/seed/stop and new requests join between decode
steps. `continuous=False` gives the adaptive-batching behaviour (a batch closes when it starts) for comparison.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from transformers import DynamicCache


@dataclass
class GenRequest:
    prompt_ids: list[int]
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    cancelled: bool = False  # set when the client goes away; the row leaves the batch at the next step
    # on_event(kind, payload): kind "text" (new text), "done" (finish_reason, usage) or "error" (message)
    on_event: Callable[[str, object], None] = lambda kind, payload: None


@dataclass
class _Row:
    req: GenRequest
    generator: torch.Generator | None
    length: int                      # real tokens in the cache for this row (prompt + generated so far)
    out_ids: list[int] = field(default_factory=list)
    sent: str = ""                   # text already emitted
    done: bool = False


class Engine:
    def __init__(self, model, tokenizer, *, max_batch_size: int = 16, continuous: bool = True):
        self.model = model.eval()
        self.tok = tokenizer
        self.max_batch_size = max_batch_size
        self.continuous = continuous
        self.device = next(model.parameters()).device
        eos = model.generation_config.eos_token_id if model.generation_config else None
        eos = eos if isinstance(eos, list) else [eos]
        self.eos_ids = {i for i in [*eos, tokenizer.eos_token_id] if i is not None}
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(self.eos_ids))
        self.waiting: queue.Queue[GenRequest] = queue.Queue()
        self.rows: list[_Row] = []
        self.cache: DynamicCache | None = None
        self.mask: torch.Tensor | None = None  # [rows, cache_len] 1 = real token, 0 = left padding
        self.steps = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="qwenflow-engine", daemon=True)
        self._thread.start()

    # ---- public -----------------------------------------------------------------------------------------------
    def submit(self, req: GenRequest) -> None:
        self.waiting.put(req)

    @property
    def queue_depth(self) -> int:
        return self.waiting.qsize()

    @property
    def running(self) -> int:
        return len(self.rows)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    # ---- loop -------------------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self.rows and not self.continuous:
                    self._decode_step()
                    continue
                new = self._take_waiting(block=not self.rows)
                with torch.inference_mode():
                    if new:
                        try:
                            self._prefill(new)
                        except Exception as e:  # the newcomers fail; rows already running go on
                            self._fail([r for r in new if id(r) not in {id(x.req) for x in self.rows}], e)
                    if self.rows:
                        self._decode_step()
            except Exception as e:  # a bad batch fails its requests, never the engine
                self._fail([row.req for row in self.rows], e)
                self.rows, self.cache, self.mask = [], None, None

    def _fail(self, reqs: list[GenRequest], e: Exception) -> None:
        for r in reqs:
            r.on_event("error", f"generation failed: {type(e).__name__}: {e}")
        if isinstance(e, torch.cuda.OutOfMemoryError):
            torch.cuda.empty_cache()

    def _take_waiting(self, block: bool) -> list[GenRequest]:
        room = self.max_batch_size - len(self.rows)
        out: list[GenRequest] = []
        if room <= 0:
            return out
        try:
            out.append(self.waiting.get(timeout=0.1) if block else self.waiting.get_nowait())
        except queue.Empty:
            return out
        if block:
            time.sleep(0.002)  # let requests that arrive together share the prefill
        while len(out) < room:
            try:
                out.append(self.waiting.get_nowait())
            except queue.Empty:
                break
        return out

    def _prefill(self, reqs: list[GenRequest]) -> None:
        width = max(len(r.prompt_ids) for r in reqs)
        ids = torch.full((len(reqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(reqs), width), dtype=torch.long)
        for i, r in enumerate(reqs):
            ids[i, width - len(r.prompt_ids):] = torch.tensor(r.prompt_ids)
            mask[i, width - len(r.prompt_ids):] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True)
        rows = []
        for r in reqs:
            gen = None
            if r.temperature > 0:
                gen = torch.Generator(device=self.device)
                gen.manual_seed(r.seed if r.seed is not None else torch.seed())
            rows.append(_Row(r, gen, len(r.prompt_ids)))
        self._merge(rows, cache, mask)
        self._emit(rows, out.logits[:, -1, :])

    def _merge(self, rows: list[_Row], cache: DynamicCache, mask: torch.Tensor) -> None:
        """Append new rows to the running batch, left-padding whichever cache is shorter."""
        if self.cache is None:
            self.rows, self.cache, self.mask = rows, cache, mask
            return
        old_len, new_len = self.mask.shape[1], mask.shape[1]
        width = max(old_len, new_len)

        def lpad(t: torch.Tensor, n: int, dim: int) -> torch.Tensor:
            if n == 0:
                return t
            shape = list(t.shape)
            shape[dim] = n
            return torch.cat([t.new_zeros(shape), t], dim=dim)

        for old, new in zip(self.cache.layers, cache.layers):
            old.keys = torch.cat([lpad(old.keys, width - old_len, 2), lpad(new.keys, width - new_len, 2)], 0)
            old.values = torch.cat([lpad(old.values, width - old_len, 2), lpad(new.values, width - new_len, 2)], 0)
        self.mask = torch.cat([lpad(self.mask, width - old_len, 1), lpad(mask, width - new_len, 1)], 0)
        self.rows = self.rows + rows

    def _decode_step(self) -> None:
        last = torch.tensor([[r.out_ids[-1]] for r in self.rows], device=self.device)
        self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.rows), 1))], 1)
        pos = torch.tensor([[r.length] for r in self.rows], device=self.device)
        out = self.model(input_ids=last, attention_mask=self.mask, position_ids=pos, cache=self.cache,
                         use_cache=True)
        for r in self.rows:
            r.length += 1
        self.steps += 1
        self._emit(self.rows, out.logits[:, -1, :])
        self._drop_finished()

    def _sample(self, row: _Row, logits: torch.Tensor) -> int:
        if row.req.temperature <= 0:
            return int(logits.argmax())
        probs = torch.softmax(logits.float() / row.req.temperature, dim=-1)
        if row.req.top_p < 1.0:
            sorted_p, order = probs.sort(descending=True)
            keep = sorted_p.cumsum(-1) - sorted_p < row.req.top_p  # always keeps the most likely token
            probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
        return int(torch.multinomial(probs, 1, generator=row.generator))

    def _emit(self, rows: list[_Row], logits: torch.Tensor) -> None:
        for row, lg in zip(rows, logits):
            if row.done:
                continue
            if row.req.cancelled:
                row.done = True
                continue
            token = self._sample(row, lg)
            row.out_ids.append(token)
            finish = None
            if token in self.eos_ids:
                finish, ids = "stop", row.out_ids[:-1]
            else:
                ids = row.out_ids
            text = self.tok.decode(ids, skip_special_tokens=True)
            for s in row.req.stop:
                at = text.find(s)
                if at >= 0:
                    text, finish = text[:at], "stop"
            if finish is None and len(row.out_ids) >= row.req.max_tokens:
                finish = "length"
            # hold back a trailing partial character, and any tail that could still become a stop string
            hold = 0 if finish else _held_back(text, row.req.stop)
            if len(text) - hold > len(row.sent):
                row.req.on_event("text", text[len(row.sent):len(text) - hold])
                row.sent = text[:len(text) - hold]
            if finish:
                row.done = True
                usage = {"prompt_tokens": len(row.req.prompt_ids), "completion_tokens": len(row.out_ids),
                         "total_tokens": len(row.req.prompt_ids) + len(row.out_ids)}
                row.req.on_event("done", (finish, usage))

    def _drop_finished(self) -> None:
        keep = [i for i, r in enumerate(self.rows) if not r.done]
        if len(keep) == len(self.rows):
            return
        if not keep:
            self.rows, self.cache, self.mask = [], None, None
            return
        idx = torch.tensor(keep, device=self.device)
        self.cache.batch_select_indices(idx)
        self.mask = self.mask[idx]
        self.rows = [self.rows[i] for i in keep]
        first = int(self.mask.any(0).long().argmax())  # columns that are padding in every row can go
        if first > 0:
            self.mask = self.mask[:, first:]
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]


def _held_back(text: str, stops: list[str]) -> int:
    hold = 1 if text.endswith("\ufffd") else 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:k]):
                hold = max(hold, k)
                break
    return hold
