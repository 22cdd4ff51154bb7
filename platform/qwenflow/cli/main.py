"""`qwenflow` command line: one sub-command group per concern."""
from __future__ import annotations

import typer

from . import model as model_cli
from . import recipe as recipe_cli
from . import tokenizer as tokenizer_cli

app = typer.Typer(help="qwenflow: train Qwen2.5-family models end to end on Kubeflow, tracked in MLflow.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)
app.add_typer(recipe_cli.app, name="recipe")
app.add_typer(model_cli.app, name="model")
app.add_typer(tokenizer_cli.app, name="tokenizer")

if __name__ == "__main__":
    app()
