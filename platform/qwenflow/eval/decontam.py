"""The report's decontamination column: how many training documents overlap each benchmark under the data stage's
rule (qwenflow.data.decontam: LCS >= 13 tokens and >= 0.6 of the shorter text, the Qwen2.5 report's rule)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from qwenflow.data.decontam import Decontaminator


def training_texts(data_dir: Path, max_docs: int | None) -> tuple[list[str], list[str]]:
    """Training corpus and SFT texts the model learned from (after the data stage's own decontamination)."""

    texts, sources = [], []
    corpus = data_dir / "corpus" / "train.parquet"
    if corpus.is_file():
        texts += pd.read_parquet(corpus, columns=["text"])["text"].tolist()
        sources.append(str(corpus))
    sft = data_dir / "sft" / "train.parquet"
    if sft.is_file():
        texts += [
            "\n".join(m["content"] for m in msgs) for msgs in pd.read_parquet(sft, columns=["messages"])["messages"]
        ]
        sources.append(str(sft))
    return (texts[:max_docs] if max_docs else texts), sources


def overlap_counts(data_dir: str | Path | None, benchmarks: dict[str, list[str]], max_docs: int | None = None) -> dict:
    """{benchmark: {"overlapping_train_docs": n, "scanned_docs": m, "rule": ...}} or a reason it could not run."""
    if data_dir is None:
        return {b: {"status": "not checked: no --data directory (the training data is unknown)"} for b in benchmarks}
    texts, sources = training_texts(Path(data_dir), max_docs)
    if not texts:
        return {
            b: {"status": f"not checked: no corpus/train.parquet or sft/train.parquet in {data_dir}"}
            for b in benchmarks
        }
    decon = Decontaminator(benchmarks)
    counts = dict.fromkeys(benchmarks, 0)
    for t in texts:
        hit = decon.match(t) if isinstance(t, str) else None
        if hit is not None:
            counts[hit] += 1
    rule = f"LCS >= {decon.min_tokens} tokens and >= {decon.min_ratio} of the shorter text"
    return {
        b: {"overlapping_train_docs": counts[b], "scanned_docs": len(texts), "sources": sources, "rule": rule}
        for b in benchmarks
    }
