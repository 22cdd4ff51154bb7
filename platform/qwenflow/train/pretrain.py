"""Pre-training stage: pack the corpus, train a fresh model from the recipe, save it with its tokenizer."""

from __future__ import annotations

import contextlib
import time
from functools import lru_cache
from pathlib import Path

from qwenflow.artifacts import read_manifest
from qwenflow.recipe import Recipe
from qwenflow.tokenizer import load_tokenizer
from qwenflow.tracking import ensure_reachable, stage_run


def require_numbers(recipe: Recipe) -> None:
    """`auto` hyperparameters are resolved by the caller (qwenflow.scaling.resolve.resolve_auto), before a resume
    cache keys the stage on them: the pipeline's stage runner and `qwenflow train pretrain` do."""
    auto = [f for f in ("learning_rate", "global_batch_size") if getattr(recipe.pretrain, f) == "auto"]
    if auto:
        raise ValueError(
            f"pretrain.{' and pretrain.'.join(auto)} is 'auto': resolve it from the scaling-law fit first "
            "(qwenflow.scaling.resolve.resolve_auto) or set a number"
        )


def flops_counter(model_spec):
    # lazy: imports torch, transformers, accelerate (seconds to import)
    from qwenflow.models import model_size

    @lru_cache(maxsize=16)
    def per_token(seq_len: int) -> float:
        return model_size(model_spec, seq_len).flops_per_token

    return per_token


def stage_context(stage: str, recipe: Recipe, params: dict | None = None):
    """The MLflow run on the main process (nested under QWENFLOW_PARENT_RUN_ID); nothing on the others."""

    # lazy: imports torch, numpy (seconds to import)
    from .engine import is_main_process

    return stage_run(stage, recipe, params=params) if is_main_process() else contextlib.nullcontext()


def pack_on_main(corpus_dir, tokenizer_dir, seq_len: int, out_dir: Path, **kw) -> dict:
    """Pack once (main process); the others wait for the manifest. Packing is deterministic, so a re-run reuses it."""

    # lazy: imports torch, numpy (seconds to import)
    from qwenflow.data.pack import pack_corpus

    from .engine import is_main_process

    if is_main_process():
        return pack_corpus(corpus_dir, tokenizer_dir, seq_len, out_dir, **kw)
    for _ in range(3600):
        with contextlib.suppress(FileNotFoundError):
            m = read_manifest(out_dir)
            if m.get("seq_len") == seq_len:
                return m
        time.sleep(1)
    raise TimeoutError(f"packed data did not appear in {out_dir}")


def run_pretrain(
    recipe: Recipe,
    data_dir: str | Path,
    tokenizer_dir: str | Path,
    out_dir: str | Path,
    resume: bool = False,
    auto_info: dict | None = None,
) -> Path:
    """Train the recipe's model from scratch on data_dir's corpus; return the model directory (= out_dir).
    `auto_info`: how `auto` hyperparameters were resolved (qwenflow.scaling.resolve), logged with the run."""
    # lazy: imports torch, transformers, accelerate (seconds to import)
    from transformers import set_seed

    from qwenflow.models import io

    from .batches import PackedBatches
    from .engine import Stage, is_main_process, train
    from .finish import log_checkpoint, log_model_dir, loss_plot, save_model

    require_numbers(recipe)
    ensure_reachable()  # before any compute
    p = recipe.pretrain
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = load_tokenizer(tokenizer_dir)
    if len(tok) > recipe.model.vocab_size:
        raise ValueError(
            f"tokenizer {tokenizer_dir} has {len(tok)} tokens but model.vocab_size is "
            f"{recipe.model.vocab_size}; raise model.vocab_size or use a smaller tokenizer"
        )
    manifest = pack_on_main(
        data_dir, tokenizer_dir, p.seq_len, out_dir / ".packed", engine=recipe.data.engine, workers=recipe.data.workers
    )  # same shards either way; ray tokenizes in parallel
    assert isinstance(p.global_batch_size, int)  # not "auto": require_numbers above
    batches = PackedBatches(
        out_dir / ".packed", micro_batch=p.micro_batch_size, global_batch=p.global_batch_size, seed=p.seed
    )
    set_seed(p.seed)
    model = io.build_causal_lm(
        recipe.model,
        distributed=p.distributed,
        seed=p.seed,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )

    params = {
        "packed.rows": manifest["splits"]["train"]["rows"],
        "packed.tokens": manifest["splits"]["train"]["tokens"],
    }
    with stage_context("pretrain", recipe, params) as run:
        if run is not None and auto_info:
            # lazy: imports mlflow, pandas, pyarrow (987 ms)
            import mlflow

            mlflow.log_dict(auto_info, "scaling_auto.json")
            mlflow.log_params({f"auto.{k}": v for k, v in auto_info.items() if isinstance(v, (int, float, str))})
        result, accelerator, state_dict = train(
            model,
            p,
            [Stage(batches, p.max_steps)],
            out_dir,
            name="pretrain",
            resume=resume,
            flops_per_token=flops_counter(recipe.model),
            on_checkpoint=log_checkpoint,
        )
        if is_main_process():
            lineage = {
                "stage": "pretrain",
                "data_manifest": manifest["files"],
                "tokenizer": str(tokenizer_dir),
                "mlflow_run_id": run.info.run_id if run is not None else None,
            }
            save_model(accelerator.unwrap_model(model), state_dict, tok, out_dir, recipe=recipe, lineage=lineage)
            loss_plot(out_dir, f"pretrain: {recipe.name}")
            summary = {
                "first_loss": result.first_loss,
                "last_loss": result.last_loss,
                "final_val_loss": result.val_losses[max(result.val_losses)],
                "tokens_seen": result.tokens_seen,
                "mean_tokens_per_s": result.tokens_per_s,
                "mean_mfu": result.mfu,
                "steps": result.steps,
            }
            log_model_dir(out_dir, summary)  # rank 0 hashes and uploads; the others have already returned
    return out_dir
