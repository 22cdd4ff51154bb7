"""Reward model evaluation: pairwise accuracy (chosen scored above rejected) on held-out preference pairs and on
BIG-bench hhh_alignment when an installed package ships it (evaluation only: BIG-bench data carries a canary)."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from qwenflow.artifacts import sha256_file

from .benchmarks import BenchmarkUnavailable, load_hhh_alignment
from .lm import check_model_dir
from .result import TaskResult, mean_stderr, subsample


class RewardModel:
    def __init__(self, path: str | Path, batch_size: int = 16):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = check_model_dir(path)
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForSequenceClassification.from_pretrained(str(path), local_files_only=True).eval()
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.batch_size = batch_size

    def render(self, messages: list[dict]) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False)
        return "\n".join(f"{m['role']}: {m['content']}" for m in messages)

    @torch.inference_mode()
    def score(self, conversations: list[list[dict]], max_len: int = 1024) -> list[float]:
        self.tokenizer.padding_side = "right"
        out = []
        for b in range(0, len(conversations), self.batch_size):
            enc = self.tokenizer([self.render(c) for c in conversations[b:b + self.batch_size]], return_tensors="pt",
                                 padding=True, truncation=True, max_length=max_len, add_special_tokens=False)
            out += self.model(**enc).logits[:, 0].float().tolist()
        return out


def pairwise(rm, task: str, prompts, chosen, rejected, dataset: dict, t0: float) -> TaskResult:
    sc = rm.score([p + c for p, c in zip(prompts, chosen)])
    sr = rm.score([p + r for p, r in zip(prompts, rejected)])
    wins = [float(a > b) for a, b in zip(sc, sr)]
    acc, se = mean_stderr(wins)
    margin = sum(a - b for a, b in zip(sc, sr)) / max(1, len(sc))
    return TaskResult(task, {"pairwise_accuracy": acc, "mean_margin": margin}, {"pairwise_accuracy": se},
                      len(wins), 0, dataset, {}, time.time() - t0)


def run_reward_eval(model_dir, data_dir=None, limit: int | None = None, seed: int = 0) -> tuple[list[TaskResult], dict]:
    import pandas as pd

    rm = RewardModel(model_dir)
    results, skipped = [], {}
    if data_dir is not None:
        t0 = time.time()
        path = Path(data_dir) / "preferences" / "test.parquet"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; the reward evaluation needs held-out preference pairs "
                                    "(qwenflow data prepare writes preferences/test.parquet)")
        rows = subsample(pd.read_parquet(path).to_dict("records"), limit, seed)
        as_list = lambda m: [dict(x) for x in m]  # noqa: E731
        results.append(pairwise(rm, "preferences", [as_list(r["prompt"]) for r in rows],
                                [as_list(r["chosen"]) for r in rows], [as_list(r["rejected"]) for r in rows],
                                {"sha256": sha256_file(path), "source": str(path)}, t0))
    else:
        skipped["preferences"] = "no --data directory: held-out preference pairs come from the data stage"
    try:
        t0 = time.time()
        bench = load_hhh_alignment()
        items = subsample(bench.items, limit, seed)
        user = lambda t: [{"role": "user", "content": t}]  # noqa: E731
        bot = lambda t: [{"role": "assistant", "content": t}]  # noqa: E731
        results.append(pairwise(rm, "hhh_alignment", [user(i.prompt) for i in items], [bot(i.chosen) for i in items],
                                [bot(i.rejected) for i in items],
                                {"sha256": bench.sha256, "source": bench.source, "skipped": bench.skipped}, t0))
    except BenchmarkUnavailable as e:
        skipped["hhh_alignment"] = str(e)
    return results, skipped
