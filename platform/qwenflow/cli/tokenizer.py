"""`qwenflow tokenizer build|encode`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qwenflow.tokenizer import load_tokenizer
from qwenflow.tokenizer.build import build_tokenizer, iter_parquet_texts

from .common import RecipeOpt, SetOpt, clean_errors, console, get_recipe

app = typer.Typer(help="Build and try tokenizers.", no_args_is_help=True)


@app.command("build")
def build(
    out: Annotated[Path, typer.Option(help="Output tokenizer directory")],
    corpus: Annotated[
        list[Path] | None, typer.Option(help="Corpus parquet file(s) with a `text` column (bpe only)")
    ] = None,
    recipe: RecipeOpt = "tiny",
    set_: SetOpt = None,
):
    """Build the recipe's tokenizer: the real Qwen2.5 vocabulary, or a BPE trained on the corpus."""
    r = get_recipe(recipe, set_)
    with clean_errors():
        texts = iter_parquet_texts(corpus) if corpus else None
        tok = build_tokenizer(r, out, texts)
    console.print(f"saved {len(tok)}-token tokenizer to {out}")


@app.command("encode")
def encode(text: str, path: Annotated[Path, typer.Option(help="Tokenizer directory")]):
    """Print the token ids of TEXT."""

    with clean_errors():
        tok = load_tokenizer(path)
    console.print(tok(text)["input_ids"])
