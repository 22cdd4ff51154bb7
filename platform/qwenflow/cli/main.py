"""`qwenflow` command line: one sub-command group per concern."""

from __future__ import annotations

from . import data as data_cli
from . import deploy as deploy_cli
from . import eval as eval_cli
from . import (
    long_context,  # noqa: F401  (adds `eval long-context`)
    train_post,  # noqa: F401  (adds sft, grpo, reward, dpo to the train app)
)
from . import model as model_cli
from . import recipe as recipe_cli
from . import run as run_cli
from . import scaling as scaling_cli
from . import tokenizer as tokenizer_cli
from . import train as train_cli
from .common import Typer

app = Typer(
    help="qwenflow: train Qwen2.5-family models end to end on Kubeflow, tracked in MLflow.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(recipe_cli.app, name="recipe")
app.add_typer(run_cli.app)  # run, compile, submit, status at the top level
app.add_typer(model_cli.app, name="model")
app.add_typer(tokenizer_cli.app, name="tokenizer")
app.add_typer(eval_cli.app, name="eval")
app.add_typer(eval_cli.promote_app)  # `qwenflow promote` at the top level
app.add_typer(deploy_cli.app, name="deploy")
app.add_typer(train_cli.app, name="train")
app.add_typer(data_cli.app, name="data")
app.add_typer(scaling_cli.app, name="scaling")

if __name__ == "__main__":
    app()
