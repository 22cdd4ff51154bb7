"""The model interface every evaluation task uses, and its transformers implementation.

Tasks only call three methods, so a scripted "oracle" model can stand in for a network in known-answer tests:
  loglikelihood(requests)  sum of log p(continuation | prefix + context) per request
  generate(prompts, ...)   greedy (or sampled) completions, stopped at stop strings
  token_nll(texts)         summed negative log-likelihood and token count per text (perplexity)

Speed (why this is hand-written rather than a loop over model(...)): requests sharing a prefix (the few-shot block,
or a question whose options are scored) run that prefix ONCE and reuse its KV cache for a whole batch of
continuations; when every option is a single token (MMLU's letters) one forward pass scores all of them; generation
is batched with left padding and the KV cache (model.generate).
"""

from __future__ import annotations

import copy
import functools
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from qwenflow.artifacts import read_lineage
from qwenflow.longctx.settings import configure, register
from qwenflow.models import io


@dataclass(frozen=True)
class Request:
    prefix: str  # shared by many requests (few-shot block); computed once and cached
    context: str  # this item's text after the prefix
    continuation: str  # what is scored


class LM(Protocol):
    def loglikelihood(self, requests: list[Request]) -> list[float]: ...
    def generate(
        self,
        prompts: list[str],
        max_new_tokens: int,
        stop: tuple[str, ...] = (),
        num_samples: int = 1,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[list[str]]: ...
    def token_nll(self, texts: list[str], max_len: int) -> list[tuple[float, int]]: ...
    def chat_prompt(self, messages: list[dict]) -> str: ...


def _cpu_threads(method):
    """Tiny models on CPU are overhead-bound: one intra-op thread, or spare threads spin (measured 33x slower
    generation on a loaded 2-core machine). Restored afterwards so the rest of the process is unaffected."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if self.device != "cpu" or self.n_params > 50_000_000:
            return method(self, *args, **kwargs)
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return method(self, *args, **kwargs)
        finally:
            torch.set_num_threads(before)

    return wrapper


class ModelDirError(ValueError):
    """A model directory that cannot be evaluated (missing files, no tokenizer, ...)."""


def check_model_dir(path: str | Path) -> Path:
    """Clear errors for the usual mistakes before any heavy import or load."""
    path = Path(path)
    if path.is_file() and path.suffix == ".gguf":
        return path
    if not path.is_dir():
        raise ModelDirError(f"{path}: no such model directory (or .gguf file)")
    if not (path / "config.json").is_file():
        raise ModelDirError(f"{path}: no config.json; pass a directory written by save_pretrained")
    if not any(
        (path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")
    ):
        raise ModelDirError(
            f"{path}: no tokenizer files (tokenizer.json / tokenizer_config.json); save the "
            "tokenizer into the model directory (qwenflow.models.io.save does)"
        )
    return path


class HFModel:
    """A transformers causal LM on CPU or GPU, loaded from a save_pretrained directory or a .gguf file."""

    def __init__(
        self,
        path: str | Path,
        *,
        batch_size: int = 16,
        device: str | None = None,
        attn_implementation: str | None = None,
        config_overrides: dict | None = None,
        dtype: str | torch.dtype = "auto",
        longctx_setting: str | None = None,
        **longctx_options,
    ):

        path = check_model_dir(path)
        self.path = path
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        src, kw = (str(path.parent), {"gguf_file": path.name}) if path.is_file() else (str(path), {})
        self.tokenizer = AutoTokenizer.from_pretrained(src, local_files_only=True, **kw)
        config = AutoConfig.from_pretrained(src, local_files_only=True, **kw)
        for key, value in (config_overrides or {}).items():
            setattr(config, key, value)
        if longctx_setting:
            # YaRN / DCA / sparse attention as the long-context stage defines them (none, yarn, yarn+dca, ...)
            config = configure(config, longctx_setting, **longctx_options)
            attn_implementation = attn_implementation or config._attn_implementation
        if attn_implementation in ("dca", "sparse"):
            register()
        load_kw: dict[str, Any] = {"attn_implementation": attn_implementation} if attn_implementation else {}
        if path.is_file():  # a .gguf file: transformers converts it
            model = AutoModelForCausalLM.from_pretrained(
                src, config=config, dtype=dtype, local_files_only=True, **kw, **load_kw
            )
        else:  # the platform's one loader: refuses weights that do not match the config, truncated files
            model = io.load_causal_lm(path, config=config, dtype=dtype, **load_kw)
        # transformers wraps PreTrainedModel.to in a decorator whose annotation drops the bound self
        self.model = model.to(self.device).eval()  # type: ignore[arg-type]
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.batch_size = batch_size
        self.n_params = sum(p.numel() for p in self.model.parameters())
        self._stop_ids = sorted(
            {
                i
                for i in (self.tokenizer.eos_token_id, self.tokenizer.convert_tokens_to_ids("<|im_end|>"))
                if isinstance(i, int) and i >= 0 and i != self.tokenizer.unk_token_id
            }
        )

    # -- helpers ---------------------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def chat_prompt(self, messages: list[dict]) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise ModelDirError(
                f"{self.path}: the tokenizer has no chat_template, and the held-out chat tasks "
                "need one; evaluate a model whose tokenizer was saved with the chat template "
                "(qwenflow tokenizers carry one) or run without --data"
            )
        # tokenize=False returns the text; transformers' annotation covers every mode
        return cast(str, self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))

    @property
    def max_length(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 2048))

    @torch.inference_mode()
    def _prefix_cache(self, ids: list[int]):
        if not ids:
            return None
        out = self.model(torch.tensor([ids], device=self.device), use_cache=True)
        return out.cache, torch.log_softmax(out.logits[0, -1].float(), -1)

    # -- the three task-facing methods ------------------------------------------------------------------------
    @_cpu_threads
    @torch.inference_mode()
    def loglikelihood(self, requests: list[Request]) -> list[float]:
        scores: list[float | None] = [None] * len(requests)
        by_prefix: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(requests):
            by_prefix[r.prefix].append(i)
        for prefix, idx in by_prefix.items():
            cached = self._prefix_cache(self.encode(prefix))
            # rows: one per (context) when all its continuations are single tokens, else one per request
            rows: dict[tuple, list[tuple[int, list[int]]]] = defaultdict(list)
            for i in idx:
                ctx, cont = self.encode(requests[i].context), self.encode(requests[i].continuation)
                if not cont:
                    raise ValueError(f"empty continuation in request {i}: {requests[i]!r}")
                key = (tuple(ctx),) if len(cont) == 1 else (tuple(ctx), i)
                rows[key].append((i, cont))
            keys = sorted(rows, key=lambda k: -len(k[0]))  # similar lengths together: less padding
            for b in range(0, len(keys), self.batch_size):
                batch = keys[b : b + self.batch_size]
                seqs = [list(k[0]) + (rows[k][0][1] if len(k) == 2 else []) for k in batch]
                for k, logp in zip(batch, self._score_rows(seqs, cached)):
                    ctx_len = len(k[0])
                    for i, cont in rows[k]:
                        # logp[t] = log-probs for the token at row position t (t = -1: first token after prefix)
                        scores[i] = float(sum(logp[ctx_len - 1 + j][tok] for j, tok in enumerate(cont)))
        return scores  # type: ignore[return-value]

    def _score_rows(self, seqs: list[list[int]], cached):
        """Log-prob tables per row: entry t (t from -1) predicts row token t+1; pads sit at the right (causal)."""
        n = max(1, max(len(s) for s in seqs))
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([s + [pad] * (n - len(s)) for s in seqs], device=self.device)
        if cached is not None:
            cache, first = cached
            cache = copy.deepcopy(cache)
            cache.batch_repeat_interleave(len(seqs))
            logits = self.model(ids, cache=cache, use_cache=True).logits.float()
            logp = torch.log_softmax(logits, -1)
            return [_Shifted(first, logp[r]) for r in range(len(seqs))]
        logp = torch.log_softmax(self.model(ids).logits.float(), -1)
        return [_Shifted(None, logp[r]) for r in range(len(seqs))]

    @_cpu_threads
    @torch.inference_mode()
    def generate(
        self,
        prompts: list[str],
        max_new_tokens: int,
        stop: tuple[str, ...] = (),
        num_samples: int = 1,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[list[str]]:
        tok = self.tokenizer
        tok.padding_side = "left"
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        out: list[list[str]] = [[] for _ in prompts]
        bs = max(1, self.batch_size // num_samples)
        sample = num_samples > 1 or temperature > 0
        torch.manual_seed(seed)
        for b in range(0, len(order), bs):
            chunk = order[b : b + bs]
            enc = tok([prompts[i] for i in chunk], return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(self.device) for k, v in enc.items()}
            gen = self.model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=sample,
                temperature=temperature if sample else None,
                top_p=None,
                top_k=None,
                num_return_sequences=num_samples,
                eos_token_id=self._stop_ids or None,
                pad_token_id=tok.pad_token_id,
                use_cache=True,
            )
            texts = tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
            for j, i in enumerate(chunk):
                out[i] = [truncate(t, stop) for t in texts[j * num_samples : (j + 1) * num_samples]]
        return out

    @_cpu_threads
    @torch.inference_mode()
    def token_nll(self, texts: list[str], max_len: int = 512) -> list[tuple[float, int]]:
        """Summed NLL over each text's tokens (first max_len tokens; the first token is not predicted)."""
        res: list[tuple[float, int]] = []
        enc = [self.encode(t)[:max_len] for t in texts]
        pad = self.tokenizer.pad_token_id
        for b in range(0, len(enc), self.batch_size):
            chunk = enc[b : b + self.batch_size]
            n = max(len(s) for s in chunk)
            if n < 2:
                res.extend((0.0, 0) for _ in chunk)
                continue
            ids = torch.tensor([s + [pad] * (n - len(s)) for s in chunk], device=self.device)
            logp = torch.log_softmax(self.model(ids).logits[:, :-1].float(), -1)
            tgt = logp.gather(-1, ids[:, 1:, None])[..., 0]
            for r, s in enumerate(chunk):
                res.append((float(-tgt[r, : len(s) - 1].sum()), max(len(s) - 1, 0)))
        return res


class _Shifted:
    """Index -1 gives the prefix's last-position log-probs; index t >= 0 the row's own."""

    def __init__(self, first, rows):
        self.first, self.rows = first, rows

    def __getitem__(self, t: int):
        if t < 0:
            if self.first is None:
                raise ValueError("a request with no prefix and no context cannot be scored")
            return self.first
        return self.rows[t]


def truncate(text: str, stop: tuple[str, ...]) -> str:
    cut = min([text.find(s) for s in stop if s and s in text] or [len(text)])
    return text[:cut]


def model_info(path: str | Path) -> dict:
    """Name, lineage and parameter count for the report (no weights loaded)."""
    path = Path(path)
    info: dict[str, Any] = {"path": str(path.resolve())}
    lineage = read_lineage(path) if path.is_dir() else {}
    if lineage:
        info["lineage"] = lineage
    return info
