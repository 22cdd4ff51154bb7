"""Continuous batching for a transformers causal LM: one background thread, one shared KV cache.

Hand-written because BentoML's adaptive batching groups whole requests (a batch lasts as long as its longest
member and cannot stream), and transformers' own continuous-batching manager takes one generation config for
every request; here each row keeps its own sampling settings (temperature, top_p, seed, stop strings, penalties,
logit_bias, a grammar) and new requests join between decode steps. `continuous=False` gives the adaptive-batching
behaviour (a batch closes when it starts) for comparison.

Isolation: whatever one request brings (a cancellation, sampling values at the edge of float range, a grammar that
dead-ends, a callback that raises) ends that request's rows alone; the rest of the batch decodes on. Only a failed
forward pass of the whole batch fails every row in it (a prefill that fails is retried one request at a time).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import DynamicCache

GREEDY_BELOW = 1e-5  # temperatures under this are argmax (a smaller divisor overflows float32 logits)
SEED_MASK = (1 << 64) - 1  # torch generators take seeds in [0, 2**64)


@dataclass
class GenRequest:
    prompt_ids: list[int]
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    n: int = 1  # choices sampled from one prefill (choice j is seeded seed + j)
    presence_penalty: float = 0.0  # OpenAI's: subtracted once from every token already generated
    frequency_penalty: float = 0.0  # ... and this times how often it was generated
    logit_bias: dict[int, float] | None = None
    logprobs: int | None = None  # None: off; k >= 0: the chosen token's log-prob and the top k
    matcher: Any = None  # an llguidance LLMatcher constraining the output (copied per choice)
    stream: bool = True  # False: no "text" events, the whole text comes with "done"
    cancelled: bool = False  # set when the client goes away; its rows leave the batch at the next step
    # on_event(kind, index, payload) per choice `index`: "text" -> (text, logprobs or None), "done" -> (finish,
    # usage, text or None, logprobs or None), "error" -> message. Called on the engine thread.
    on_event: Callable[[str, int, object], None] = lambda kind, index, payload: None


@dataclass
class _Row:
    req: GenRequest
    index: int
    generator: torch.Generator | None
    length: int  # real tokens in the cache for this row (prompt + generated so far)
    matcher: Any = None
    out_ids: list[int] = field(default_factory=list)
    text: str = ""  # decoded text so far (up to a stop string)
    sent: int = 0  # characters of `text` already emitted
    prefix: int = 0  # incremental detokenisation offsets (out_ids[prefix:read] gave the last text)
    read: int = 0
    counts: torch.Tensor | None = None  # generated-token counts, for penalties
    bias: tuple | None = None  # logit_bias as (ids, values) tensors
    logprobs: list = field(default_factory=list)  # (token, logprob, [(token, logprob), ...]) not yet emitted
    done: bool = False

    @property
    def greedy(self) -> bool:
        return self.req.temperature < GREEDY_BELOW

    @property
    def plain(self) -> bool:
        """Argmax of the raw logits is this row's whole step (decided once for the batched fast path)."""
        r = self.req
        return (
            self.greedy
            and self.matcher is None
            and r.logprobs is None
            and not r.logit_bias
            and not r.presence_penalty
            and not r.frequency_penalty
        )


class Engine:
    def __init__(self, model, tokenizer, *, max_batch_size: int = 16, continuous: bool = True, join_after: int = 4):
        self.model = model.eval()
        self.tok = tokenizer
        self.max_batch_size = max_batch_size
        self.continuous = continuous
        self.join_after = join_after
        self._waiting_since: int | None = None  # decode step at which requests were first seen waiting
        self.device = next(model.parameters()).device
        self.vocab_size = int(model.config.vocab_size)
        eos = model.generation_config.eos_token_id if model.generation_config else None
        eos = eos if isinstance(eos, list) else [eos]
        self.eos_ids = {i for i in [*eos, tokenizer.eos_token_id] if i is not None}
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(self.eos_ids))
        # Control tokens left out of the text; Qwen2.5's tool-call tags and FIM markers are text (not special), and
        # a tokenizer that flags them special anyway would hide the model's tool calls if decode skipped them.
        from qwenflow.tokenizer.special import NOT_SPECIAL

        self.hidden = {i for t, i in tokenizer.get_added_vocab().items() if t not in NOT_SPECIAL}
        self.hidden |= set(tokenizer.all_special_ids)
        self.waiting: queue.Queue[GenRequest] = queue.Queue()
        self.rows: list[_Row] = []
        self.cache: DynamicCache | None = None
        self.mask: torch.Tensor | None = None  # [rows, cache_len] 1 = real token, 0 = left padding
        self.steps = 0
        self._bitmask = None
        self._deferred: GenRequest | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="qwenflow-engine", daemon=True)
        self._thread.start()

    # ---- public -----------------------------------------------------------------------------------------------
    def submit(self, req: GenRequest) -> None:
        self.waiting.put(req)

    @property
    def queue_depth(self) -> int:
        return self.waiting.qsize() + (self._deferred is not None)

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
                new = self._take_waiting(block=not self.rows) if self._admit() else []
                with torch.inference_mode():
                    if new:
                        self._prefill_isolated(new)
                    self._drop_finished()
                    if self.rows:
                        self._decode_step()
                        self._drop_finished()
            except Exception as e:  # a failed forward pass fails the rows in it, never the engine
                for row in self.rows:
                    self._error(row, e)
                self.rows, self.cache, self.mask = [], None, None
                if isinstance(e, torch.cuda.OutOfMemoryError):
                    torch.cuda.empty_cache()

    def _error(self, row: _Row, e: Exception | str) -> None:
        row.done = True
        message = e if isinstance(e, str) else f"generation failed: {type(e).__name__}: {str(e)[:200]}"
        try:
            row.req.on_event("error", row.index, message)
        except Exception:  # the listener is gone: nothing to tell
            pass

    def _admit(self) -> bool:
        """Whether waiting requests join now. An idle engine takes them at once. A running batch takes them when
        half its slots are free or the first of them has waited join_after decode steps: each join costs every
        running row a prefill pass, so newcomers join in groups rather than one per step (that kept p99 latency
        at concurrency 16 above 3x the lone-request p50). Static batching joins only an empty engine."""
        if not self.rows:
            self._waiting_since = None
            return True
        if not self.continuous or (self.waiting.empty() and self._deferred is None):
            self._waiting_since = None
            return False
        if self._waiting_since is None:
            self._waiting_since = self.steps
        free = self.max_batch_size - len(self.rows)
        if free >= self.max_batch_size // 2 or self.steps - self._waiting_since >= self.join_after:
            self._waiting_since = None
            return True
        return False

    def _take_waiting(self, block: bool) -> list[GenRequest]:
        room = self.max_batch_size - sum(1 for r in self.rows if not r.done)
        out: list[GenRequest] = []
        while room > 0:
            if self._deferred is not None:  # first in line: it waited for room for all its choices
                req, self._deferred = self._deferred, None
            else:
                try:
                    if block and not out:
                        req = self.waiting.get(timeout=0.1)
                        time.sleep(0.002)  # let requests that arrive together share the prefill
                    else:
                        req = self.waiting.get_nowait()
                except queue.Empty:
                    break
            if req.cancelled:  # gone before it started
                continue
            if req.n > room and (out or self.rows):  # its choices join together, when there is room for all
                self._deferred = req
                break
            out.append(req)
            room -= req.n
        return out

    def _prefill_isolated(self, reqs: list[GenRequest]) -> None:
        """Prefill together; if that fails, one at a time, so a request that breaks the forward pass fails alone."""
        try:
            self._prefill(reqs)
        except Exception:
            if len(reqs) == 1:
                raise
            for r in reqs:
                try:
                    self._prefill([r])
                except Exception as e:
                    for j in range(r.n):
                        self._error(_Row(r, j, None, 0), e)

    def _prefill(self, reqs: list[GenRequest]) -> None:
        for r in reqs:
            if not r.prompt_ids or max(r.prompt_ids) >= self.vocab_size or min(r.prompt_ids) < 0:
                raise ValueError("prompt token ids outside the model's vocabulary")
        width = max(len(r.prompt_ids) for r in reqs)
        ids = torch.full((len(reqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(reqs), width), dtype=torch.long)
        for i, r in enumerate(reqs):
            ids[i, width - len(r.prompt_ids) :] = torch.tensor(r.prompt_ids)
            mask[i, width - len(r.prompt_ids) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True)
        logits = out.logits[:, -1, :]
        rows = [self._new_row(r, j) for r in reqs for j in range(r.n)]
        if len(rows) > len(reqs):  # n > 1: every choice gets its own copy of the prompt's cache rows
            idx = torch.tensor([i for i, r in enumerate(reqs) for _ in range(r.n)], device=self.device)
            cache.batch_select_indices(idx)
            mask, logits = mask[idx], logits[idx]
        self._merge(rows, cache, mask)
        self._emit(rows, logits)

    def _new_row(self, r: GenRequest, j: int) -> _Row:
        gen = None
        if r.temperature >= GREEDY_BELOW:
            gen = torch.Generator(device=self.device)
            gen.manual_seed(((r.seed + j) & SEED_MASK) if r.seed is not None else torch.seed())
        matcher = None
        if r.matcher is not None:
            matcher = r.matcher if j == 0 else r.matcher.deep_copy()
        return _Row(r, j, gen, len(r.prompt_ids), matcher)

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
        out = self.model(input_ids=last, attention_mask=self.mask, position_ids=pos, cache=self.cache, use_cache=True)
        for r in self.rows:
            r.length += 1
        self.steps += 1
        self._emit(self.rows, out.logits[:, -1, :])

    # ---- choosing tokens --------------------------------------------------------------------------------------
    def _emit(self, rows: list[_Row], logits: torch.Tensor) -> None:
        """One token for every live row: plain greedy rows in one batched argmax, the others one by one."""
        plain = [i for i, r in enumerate(rows) if r.plain]
        tokens: dict[int, int] = {}
        if plain:
            picked = logits[plain].argmax(-1).tolist() if len(plain) < len(rows) else logits.argmax(-1).tolist()
            tokens = dict(zip(plain, picked))
        for i, row in enumerate(rows):
            if row.done:
                continue
            if row.req.cancelled:
                row.done = True
                continue
            try:
                token = tokens[i] if i in tokens else self._choose(row, logits[i])
                self._advance(row, token)
            except Exception as e:  # this row's sampling, grammar or detokenisation failed: it alone ends
                self._error(row, e)

    def _choose(self, row: _Row, logits: torch.Tensor) -> int:
        r = row.req
        raw = logits.float()
        lg = raw.clone() if (r.logit_bias or r.presence_penalty or r.frequency_penalty or row.matcher) else raw
        if r.logit_bias:
            if row.bias is None:
                row.bias = (
                    torch.tensor(list(r.logit_bias), dtype=torch.long, device=lg.device),
                    torch.tensor(list(r.logit_bias.values()), dtype=torch.float32, device=lg.device),
                )
            lg[row.bias[0]] += row.bias[1]
        if (r.presence_penalty or r.frequency_penalty) and row.counts is not None:
            lg -= r.frequency_penalty * row.counts + r.presence_penalty * (row.counts > 0).float()
        if row.matcher is not None:
            self._apply_grammar(row.matcher, lg)
        if row.greedy:
            token = int(lg.argmax())
        else:
            probs = torch.softmax(lg / r.temperature, dim=-1)
            if r.top_p < 1.0:
                sorted_p, order = probs.sort(descending=True)
                keep = sorted_p.cumsum(-1) - sorted_p < r.top_p
                keep[0] = True  # the most likely token always stays, however small top_p is
                probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
            if not bool(torch.isfinite(probs).all()) or float(probs.sum()) <= 0:
                raise ValueError("no token has a finite, positive probability after logit_bias and penalties")
            token = int(torch.multinomial(probs, 1, generator=row.generator))
        if not torch.isfinite(lg[token]):
            raise ValueError("every token was excluded (grammar, logit_bias or penalties)")
        if r.logprobs is not None:
            lp = torch.log_softmax(raw, dim=-1)  # the model's own distribution, before any processing
            top = lp.topk(r.logprobs) if r.logprobs else None
            row.logprobs.append(
                (
                    token,
                    float(lp[token]),
                    list(zip(top.indices.tolist(), top.values.tolist())) if top is not None else [],
                )
            )
        if r.presence_penalty or r.frequency_penalty:
            if row.counts is None:
                row.counts = torch.zeros(raw.shape[-1], device=raw.device)
            row.counts[token] += 1
        return token

    def _apply_grammar(self, matcher, logits: torch.Tensor) -> None:
        import llguidance.torch as llgt

        if self._bitmask is None:
            self._bitmask = llgt.allocate_token_bitmask(1, logits.shape[-1])
        llgt.fill_next_token_bitmask(matcher, self._bitmask, 0)
        err = matcher.get_error()
        if err:
            raise ValueError(f"grammar: {err.splitlines()[0]}")
        llgt.apply_token_bitmask_inplace(logits.unsqueeze(0), self._bitmask.to(logits.device))

    def _advance(self, row: _Row, token: int) -> None:
        """Record the token; emit the new text (minus what a stop string may still claim); finish the row."""
        r = row.req
        row.out_ids.append(token)
        finish = None
        if token in self.eos_ids:
            finish = "stop"
        else:
            if row.matcher is not None and not row.matcher.consume_token(token):
                raise ValueError(f"grammar: {row.matcher.get_error().splitlines()[0]}")
            checked = len(row.text)
            if r.stream or r.stop:  # text is needed now; otherwise it is decoded once, when the row finishes
                self._detokenize(row)
            if r.stop:  # only the new text, and the tail of the old that a stop string could straddle
                start = max(0, checked - max(len(s) for s in r.stop) + 1)
                for s in r.stop:
                    at = row.text.find(s, start)
                    if at >= 0:
                        row.text, finish = row.text[:at], "stop"
            if finish is None and row.matcher is not None and row.matcher.is_stopped():
                finish = "stop"  # the grammar is complete and allows nothing more
        if finish is None and len(row.out_ids) >= r.max_tokens:
            finish = "length"
        if finish == "length" or (finish and not (r.stream or r.stop)):
            self._detokenize(row, final=True, end=len(row.out_ids) - (token in self.eos_ids))
        hold = 0 if finish else _held_back(row.text, r.stop)
        if r.stream and len(row.text) - hold > row.sent:
            delta = row.text[row.sent : len(row.text) - hold]
            row.sent = len(row.text) - hold
            lps, row.logprobs = (row.logprobs, []) if r.logprobs is not None else (None, row.logprobs)
            r.on_event("text", row.index, (delta, lps))
        if finish:
            row.done = True
            usage = {"prompt_tokens": len(r.prompt_ids), "completion_tokens": len(row.out_ids)}
            lps = row.logprobs if r.logprobs is not None else None
            r.on_event("done", row.index, (finish, usage, None if r.stream else row.text, lps))

    def _detokenize(self, row: _Row, final: bool = False, end: int | None = None) -> None:
        """Incremental decoding (only the last few tokens are decoded each step; a trailing partial UTF-8
        character waits for its next byte, unless the text ends here)."""
        ids = row.out_ids if end is None else row.out_ids[:end]
        if final and row.read >= len(ids):
            return
        hidden = self.hidden
        before = (
            self.tok.decode([i for i in ids[row.prefix : row.read] if i not in hidden]) if row.read > row.prefix else ""
        )
        now = self.tok.decode([i for i in ids[row.prefix :] if i not in hidden])
        if len(now) > len(before) and (final or not now.endswith("\ufffd")):
            row.text += now[len(before) :]
            row.prefix, row.read = row.read, len(ids)

    def _drop_finished(self) -> None:
        keep = [i for i, r in enumerate(self.rows) if not r.done and not r.req.cancelled]
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
    hold = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:k]):
                hold = max(hold, k)
                break
    return hold
