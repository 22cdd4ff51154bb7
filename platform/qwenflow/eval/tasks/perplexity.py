"""Perplexity and bits per byte on held-out text, per domain (the data stage's corpus/val.parquet)."""

from __future__ import annotations

import math
import time
from pathlib import Path

from qwenflow.artifacts import sha256_file

from ..lm import LM
from ..result import TaskResult, subsample


def run_perplexity(
    lm: LM, data_dir: str | Path, limit: int | None = None, seed: int = 0, max_len: int = 512
) -> TaskResult:
    # lazy: imports pandas, pyarrow (429 ms)
    from qwenflow.data.frames import read_frame

    t0 = time.time()
    path = Path(data_dir) / "corpus" / "val.parquet"  # the held-out corpus
    df = read_frame(path, "corpus", ["text", "domain"], only=True)
    metrics, details, total_nll, total_tok, total_bytes, n = {}, {}, 0.0, 0, 0, 0
    for domain, group in sorted(df.groupby("domain")):
        texts = [t for t in subsample(group["text"].tolist(), limit, seed) if isinstance(t, str) and t.strip()]
        res = lm.token_nll(texts, max_len)
        nll = sum(r[0] for r in res)
        ntok = sum(r[1] for r in res)
        # bytes of the scored tokens only: decode the truncated text back
        nbytes = (
            sum(len(_scored_text(lm, t, max_len).encode()) for t in texts)
            if hasattr(lm, "encode")
            else sum(len(t.encode()) for t in texts)
        )
        if ntok:
            metrics[f"{domain}_ppl"] = math.exp(nll / ntok)
            metrics[f"{domain}_bpb"] = nll / math.log(2) / max(1, nbytes)
            details[domain] = {"docs": len(texts), "tokens": ntok}
        total_nll, total_tok, total_bytes, n = total_nll + nll, total_tok + ntok, total_bytes + nbytes, n + len(texts)
    if total_tok:
        metrics["all_ppl"] = math.exp(total_nll / total_tok)
        metrics["all_bpb"] = total_nll / math.log(2) / max(1, total_bytes)
    return TaskResult(
        "perplexity",
        metrics,
        {},
        n,
        0,
        {"sha256": sha256_file(path), "source": str(path), "rows": len(df)},
        details,
        time.time() - t0,
    )


def _scored_text(lm, text: str, max_len: int) -> str:
    ids = lm.encode(text)[:max_len]
    return lm.tokenizer.decode(ids[1:]) if len(ids) > 1 else ""
