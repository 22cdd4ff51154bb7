"""Pieces every post-training stage shares: starting model and tokenizer, dataset dirs, Trainer defaults,
greedy exact-match evaluation and sample tables for MLflow.

Stages: sft.py, grpo.py (and reward.py, dpo.py, rejection_sampling.py) build on these.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from qwenflow import dist
from qwenflow.artifacts import sha256_path
from qwenflow.data.chat import conversation_problem
from qwenflow.data.frames import DataError, read_frame
from qwenflow.data.schemas import DATASETS
from qwenflow.dist import grad_accum
from qwenflow.tokenizer import load_tokenizer
from qwenflow.tokenizer.special import EOS_TOKEN, PAD_TOKEN, chat_template
from qwenflow.tracking.model_source import resolve
from qwenflow.train.hardware import cpu_has_bf16
from qwenflow.train.strategy import trainer_kwargs

from .checkpoints import save_args

if TYPE_CHECKING:
    from transformers import TrainerCallback

log = logging.getLogger(__name__)

# Columns each dataset kind must have (docs/stages.md) and the file(s) that hold it.
TRAINING_SETS = ("sft", "rl", "preferences")  # the prepared datasets read_dataset serves (qwenflow.data.schemas)


# ---------------------------------------------------------------- model and tokenizer


def load_chat_tokenizer(
    model_dir: str | Path, tokenizer_dir: str | Path | None = None, *, require_chat_template: bool = True
):
    """The model's tokenizer (or tokenizer_dir's) with a chat template, a pad token and `<|im_end|>` as EOS.
    require_chat_template=False accepts a tokenizer without a template (scoring an outside reward model)."""
    # lazy: imports transformers (seconds to import)
    from transformers import AutoTokenizer

    src = Path(tokenizer_dir or model_dir)
    try:
        tok = load_tokenizer(src)
    except FileNotFoundError:
        if tokenizer_dir is not None:
            raise
        tok = AutoTokenizer.from_pretrained(str(src), local_files_only=True)  # e.g. a GGUF-converted dir
        if require_chat_template and not tok.chat_template:
            raise ValueError(f"{src}: the tokenizer has no chat template; post-training needs one") from None
    if tok.pad_token is None:
        tok.pad_token = PAD_TOKEN if PAD_TOKEN in tok.get_vocab() else tok.eos_token
    return tok


def ensure_chatml_template(tok):
    """Assistant-only loss needs `{% generation %}` markers; give ChatML tokenizers qwenflow's template if missing."""

    if "{% generation %}" in (tok.chat_template or "") or "{%- generation %}" in (tok.chat_template or ""):
        return tok
    vocab = tok.get_vocab()
    if "<|im_start|>" in vocab and EOS_TOKEN in vocab:
        tok.chat_template = chat_template()
        return tok
    raise ValueError(
        "the tokenizer's chat template has no {% generation %} markers and it is not ChatML; "
        "assistant-only loss cannot find the assistant tokens (set sft.assistant_only_loss=false)"
    )


def stop_token_ids(tok) -> list[int]:
    """Token ids that end a chat turn: `<|im_end|>` if the vocabulary has it, and the tokenizer's EOS."""
    ids = []
    vocab = tok.get_vocab()
    if EOS_TOKEN in vocab:
        ids.append(vocab[EOS_TOKEN])
    if tok.eos_token_id is not None and tok.eos_token_id not in ids:
        ids.append(tok.eos_token_id)
    return ids


def load_causal_lm(model_dir: str | Path, dtype: torch.dtype = torch.float32, *, distributed=None):
    """Any HF causal-LM directory; fp32 weights (Trainer's bf16 autocast handles mixed precision); partitioned at
    load under ZeRO-3 (`distributed` is the stage's recipe block)."""
    # lazy: imports torch, transformers, accelerate (seconds to import)
    from qwenflow.models import io

    return io.load_causal_lm(model_dir, dtype=dtype, distributed=distributed)


def starting_model(model_dir: str | Path, tokenizer_dir: str | Path | None = None, *, distributed=None):
    """(model, tokenizer, resolved dir) with generation stopping on `<|im_end|>`."""
    path = resolve(model_dir)
    tok = load_chat_tokenizer(path, tokenizer_dir)
    model = load_causal_lm(path, distributed=distributed)
    model.generation_config.eos_token_id = stop_token_ids(tok)
    model.generation_config.pad_token_id = tok.pad_token_id
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    return model, tok, path


def max_context(model) -> int:
    return int(getattr(model.config, "max_position_embeddings", 0) or 1 << 30)


# ---------------------------------------------------------------- datasets


def _check_messages(msgs: Any, where: str, *, prompt: bool) -> None:
    problem = conversation_problem(msgs, prompt=prompt)
    if problem:
        raise DataError(f"{where}, {problem}")


def read_dataset(data_dir: str | Path, kind: str, split: str | None = None) -> pd.DataFrame:
    """Read `data_dir/<kind>/` (or the kind directory itself) and check columns and conversation roles.

    kind: "sft" (messages), "rl" (prompt, task, answer), "preferences" (prompt, chosen, rejected; split=test
    for the held-out file).
    """
    if kind not in TRAINING_SETS:
        raise ValueError(f"unknown dataset kind {kind!r}; one of {', '.join(TRAINING_SETS)}")
    files = DATASETS[kind].files
    assert files is not None  # every training set has named files
    fname = files[0]
    if split:
        fname = f"{split}.parquet"
    d = Path(data_dir)
    if not (d / kind).is_dir() and not (d / fname).is_file():
        raise DataError(
            f"{d}: no {kind} dataset here (expected {d / kind / fname}); `qwenflow data prepare` "
            "writes it (docs/stages.md)"
        )
    d = d / kind if (d / kind).is_dir() else d
    df = read_frame(d / fname, kind)
    if len(df) == 0:
        raise DataError(f"{d / fname}: no rows")
    for i, row in enumerate(df.itertuples(index=False)):
        where = f"{d / fname}, row {i}"
        if kind == "sft":
            _check_messages(row.messages, where, prompt=False)
        elif kind == "rl":
            _check_messages(row.prompt, where, prompt=True)
        else:
            _check_messages(row.prompt, where + " (prompt)", prompt=True)
            for col in ("chosen", "rejected"):  # each answer continues the prompt
                _check_messages(list(row.prompt) + list(getattr(row, col)), f"{where} (prompt + {col})", prompt=False)
    return df


def drop_too_long(
    df: pd.DataFrame, lengths: Sequence[int], limit: int, where: str, *, what: str, fix: str
) -> tuple[pd.DataFrame, int]:
    """Rows longer than `limit` tokens are dropped and counted, never truncated (a cut answer teaches the wrong end, a
    cut prompt asks another question); all of them too long is a DataError saying `fix`. what: the rows' name."""
    keep = [n <= limit for n in lengths]
    dropped = len(keep) - sum(keep)
    if dropped == len(keep):
        raise DataError(f"{where}: all {dropped} {what} are longer than {limit} tokens; {fix}")
    if dropped:
        log.warning("%s: dropped %d of %d %s longer than %d tokens", where, dropped, len(keep), what, limit)
    return df[keep].reset_index(drop=True), dropped


def read_eval(data_dir: str | Path, tasks: Iterable[str] | None = None) -> dict[str, pd.DataFrame]:
    """Held-out verifiable sets: `data_dir/eval/<task>.parquet` -> {task: DataFrame(prompt, task, answer)}."""
    d = Path(data_dir)
    d = d / "eval" if (d / "eval").is_dir() else d
    files = sorted(d.glob("*.parquet"))
    if tasks is not None:
        wanted = set(tasks)
        files = [f for f in files if f.stem in wanted]
    if not files:
        raise DataError(f"{d}: no <task>.parquet eval files; run `qwenflow data prepare`")
    out = {}
    for f in files:
        df = read_frame(f, "eval")
        for i, p in enumerate(df["prompt"]):
            _check_messages(p, f"{f}, row {i}", prompt=True)
        out[f.stem] = df
    return out


def dataset_hashes(data_dir: str | Path, kinds: Iterable[str]) -> dict[str, str]:
    """sha256 of each dataset directory used (for the MLflow run's params); rank 0 only (others get {}), so no rank
    hashes while the others wait."""

    d = Path(data_dir)
    out: dict[str, str] = {}
    if not dist.is_main():
        return out
    for k in kinds:
        p = d / k if (d / k).is_dir() else d
        if p.exists():
            out[f"data.{k}.sha256"] = sha256_path(p)
    return out


def model_lineage(stage: str, start_dir: Path, data_dir: str | Path, kinds: Iterable[str], **extra) -> dict:
    """What goes into qwenflow_lineage.json and the run's params: where this model came from (hashed on rank 0)."""

    digest = sha256_path(start_dir) if dist.is_main() else ""
    return {
        "stage": stage,
        "parent_model": str(start_dir),
        "parent_model.sha256": digest,
        **dataset_hashes(data_dir, kinds),
        **extra,
    }


# ---------------------------------------------------------------- Trainer defaults


def bf16_available() -> bool:
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    # CPU autocast to bf16 pays off only with native bf16 instructions (AVX512-BF16/AMX); the same test (and
    # QWENFLOW_CPU_BF16 override) as pre-training's, so every stage of a run trains in the same precision.

    return cpu_has_bf16()


def trainer_defaults(section, out_dir: str | Path) -> dict[str, Any]:
    """TrainingArguments kwargs shared by SFT/reward/DPO/GRPO configs, from a recipe section (_Batched): the global
    batch split over this run's processes, and the section's distributed strategy (DDP, ZeRO-2/3 or FSDP2)."""

    micro = section.micro_batch_size
    accum = grad_accum(section.global_batch_size, micro)
    on_cpu = not torch.cuda.is_available()
    bf16 = bool(section.bf16 and bf16_available())
    kw: dict[str, Any] = dict(
        output_dir=str(out_dir),
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=accum,
        learning_rate=section.learning_rate,
        weight_decay=section.weight_decay,
        max_grad_norm=section.grad_clip,
        warmup_steps=section.warmup_ratio,  # transformers 5: a float < 1 is a ratio of total steps
        num_train_epochs=section.epochs,
        max_steps=section.max_steps or -1,
        seed=section.seed,
        data_seed=section.seed,
        bf16=bf16,
        use_cpu=on_cpu,
        logging_steps=section.logging_steps,
        **save_args(section),  # checkpoints every checkpoint_every steps; posttrain/checkpoints.py marks them complete
        report_to=[],  # qwenflow logs to MLflow itself (nested run, its own metric names)
        dataloader_num_workers=0,
        disable_tqdm=False,
        **trainer_kwargs(section.distributed, bf16=bf16),
    )

    if dist.world_size() > 1:
        kw["ddp_backend"] = "gloo" if on_cpu else "nccl"
    return kw


def mlflow_metrics(prefix: str) -> TrainerCallback:
    """TrainerCallback logging Trainer's logs as MLflow metrics under `<prefix>/<name>` (numbers only)."""
    # lazy: imports torch, transformers, accelerate (seconds to import)
    from transformers import TrainerCallback

    class _CB(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            # lazy: 798 ms to import, needed only here
            from qwenflow.tracking import main_mlflow as mlflow

            if not logs or mlflow.active_run() is None:
                return
            vals = {
                f"{prefix}/{k}".replace("(", "_").replace(")", "_"): float(v)
                for k, v in logs.items()
                if isinstance(v, (int, float)) and math.isfinite(v)
            }
            if vals:
                mlflow.log_metrics(vals, step=state.global_step)

    return _CB()


# ---------------------------------------------------------------- generation and exact match


def chat_token_count(tok, messages, add_generation_prompt: bool = False) -> int:
    """Tokens of a conversation under the chat template (transformers 5 returns a BatchEncoding here)."""
    enc = tok.apply_chat_template(list(messages), tokenize=True, add_generation_prompt=add_generation_prompt)
    ids = enc["input_ids"] if hasattr(enc, "keys") else enc
    return len(ids)


def chat_prompt_text(tok, messages) -> str:
    return tok.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)


@torch.no_grad()
def _generation_mode(model):
    """(context, synced) for generating with a possibly sharded model: ZeRO-3 partitions are gathered for the
    duration (as TRL's GRPO does for generation); FSDP2 modules gather per layer in their forward, so every rank
    must run the same number of forward passes (synced)."""

    # lazy: imports torch (seconds to import)
    from torch.distributed.tensor import DTensor

    params = list(model.parameters())
    if any(hasattr(p, "ds_id") for p in params):
        # lazy: imports mlflow, deepspeed, scipy (seconds to import)
        import deepspeed

        return deepspeed.zero.GatheredParameters(params, modifier_rank=None), False
    return nullcontext(), dist.world_size() > 1 and any(isinstance(p, DTensor) for p in params)


@torch.no_grad()
def generate(
    model,
    tok,
    prompts: Sequence[Sequence[dict]],
    *,
    max_new_tokens: int = 16,
    batch_size: int = 64,
    do_sample: bool = False,
    temperature: float = 1.0,
    num_return_sequences: int = 1,
) -> list[str]:
    """Batched chat generation with the KV cache, left padding, stopping at `<|im_end|>`.

    Returns the decoded completions (special tokens dropped), num_return_sequences per prompt, in order. Under
    torchrun every rank generates for its share of the prompts and all ranks get every completion back.
    """

    context, synced = _generation_mode(model)
    sharded = dist.world_size() > 1 and dist.initialized()
    mine, real = dist.shard(list(prompts), pad=synced) if sharded else (list(prompts), len(prompts))
    was_training = model.training
    model.eval()
    side = tok.padding_side
    tok.padding_side = "left"
    stops = stop_token_ids(tok)
    out: list[str] = []
    try:
        with context:
            for i in range(0, len(mine), batch_size):
                texts = [chat_prompt_text(tok, p) for p in mine[i : i + batch_size]]
                enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
                gen = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=do_sample,
                    temperature=temperature if do_sample else None,
                    top_p=None,
                    top_k=None,
                    num_return_sequences=num_return_sequences,
                    eos_token_id=stops,
                    pad_token_id=tok.pad_token_id,
                    use_cache=True,
                    synced_gpus=synced,
                )
                out.extend(tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True))
    finally:
        tok.padding_side = side
        model.train(was_training)
    if not sharded:
        return out
    n = num_return_sequences
    groups = [out[j * n : (j + 1) * n] for j in range(real)]  # this rank's prompts, padding dropped
    ordered = dist.unshard(dist.gather_objects(groups), len(prompts))
    return [c for group in ordered for c in group]


def grade(completions: Sequence[str], tasks: Sequence[str], answers: Sequence[str]) -> list[bool]:
    """Each completion checked by its own task's verifier: the dispatch GRPO rewards with (math tasks by exact
    answer, code tasks by their hidden unit tests in the sandbox); an unknown task raises."""
    # lazy: 37 ms to import, needed only here
    from qwenflow.verifiers.tasks import TaskVerifier

    return [s >= 1.0 for s in TaskVerifier()(list(completions), task=list(tasks), answer=list(answers))]


def new_tokens_for(rows: pd.DataFrame, max_new_tokens: int) -> int:
    # lazy: 30 ms to import, needed only here
    from qwenflow.verifiers.tasks import new_tokens_for as budget

    return budget(rows["task"], max_new_tokens)


def exact_match(
    model, tok, rows: pd.DataFrame, *, max_new_tokens: int = 16, batch_size: int = 64, limit: int | None = None
) -> tuple[float, pd.DataFrame]:
    """Greedy exact match on a verifiable split (prompt, task, answer): (accuracy, table of
    prompt/completion/answer/correct). Rows are graded by their task's verifier (`grade`)."""
    if limit is not None:
        rows = rows.iloc[:limit]
    comps = generate(
        model, tok, list(rows["prompt"]), max_new_tokens=new_tokens_for(rows, max_new_tokens), batch_size=batch_size
    )
    correct = grade(comps, rows["task"], rows["answer"])
    table = pd.DataFrame(
        {
            "prompt": [p[-1]["content"] for p in rows["prompt"]],
            "completion": comps,
            "answer": list(rows["answer"]),
            "correct": correct,
        }
    )
    return (float(sum(correct)) / max(1, len(correct))), table


def sampled_reward(
    model,
    tok,
    data_dir: str | Path,
    *,
    samples: int,
    temperature: float,
    max_new_tokens: int,
    limit: int | None = 200,
    seed: int = 0,
) -> dict[str, float]:
    """Mean verifier reward of `samples` sampled answers per held-out prompt, per task (sampled pass@1).

    The policy's reward on a fixed prompt set: GRPO's logged batch reward also moves with which prompts a batch holds
    (variance ordering puts high-variance prompts first each epoch), so it cannot show progress on its own."""
    torch.manual_seed(seed)
    out = {}
    for task, rows in read_eval(data_dir).items():
        rows = rows.iloc[:limit] if limit is not None else rows
        comps = generate(
            model,
            tok,
            list(rows["prompt"]),
            max_new_tokens=new_tokens_for(rows, max_new_tokens),
            do_sample=True,
            temperature=temperature,
            num_return_sequences=samples,
        )
        tasks, answers = ([v for v in rows[col] for _ in range(samples)] for col in ("task", "answer"))
        out[task] = float(np.mean(grade(comps, tasks, answers)))
    return out


def evaluate_exact_match(
    model, tok, data_dir: str | Path, *, limit: int | None = None, max_new_tokens: int = 16
) -> tuple[dict[str, float], pd.DataFrame]:
    """Exact match on every held-out task in data_dir/eval (all of it by default: the stages' before/after figures
    need n in the hundreds for their standard errors): ({task: accuracy}, one table of all samples)."""
    scores, tables = {}, []
    for task, rows in read_eval(data_dir).items():
        acc, table = exact_match(model, tok, rows, limit=limit, max_new_tokens=max_new_tokens)
        scores[task] = acc
        tables.append(table.assign(task=task))
    return scores, pd.concat(tables, ignore_index=True)


def log_samples(table: pd.DataFrame, name: str, n: int = 50) -> None:
    """Sample generations as an MLflow table (`samples/<name>.json`), e.g. name='before' / 'after'."""
    # lazy: 798 ms to import, needed only here
    from qwenflow.tracking import main_mlflow as mlflow

    if mlflow.active_run() is not None:
        mlflow.log_table(data=table.head(n).astype(str), artifact_file=f"samples/{name}.json")


def log_json(obj: Any, name: str) -> None:
    # lazy: 798 ms to import, needed only here
    from qwenflow.tracking import main_mlflow as mlflow

    if mlflow.active_run() is not None:
        mlflow.log_text(json.dumps(obj, indent=2, default=str), name)
