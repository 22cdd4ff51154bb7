"""`qwenflow recipe list|show|validate`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.syntax import Syntax
from rich.table import Table

from qwenflow.recipe import DEFAULT_RECIPE, list_recipes, load_recipe, recipe_to_yaml

from .common import SetOpt, clean_errors, console

app = typer.Typer(help="Inspect and validate recipes.", no_args_is_help=True)


@app.command("list")
def list_cmd():
    """List the shipped recipes."""
    # lazy: imports torch, transformers, accelerate (seconds to import)
    from qwenflow.models import model_size

    table = Table("recipe", "arch", "params", "active", "description")
    for name in list_recipes():
        r = load_recipe(name)
        s = model_size(r.model)
        table.add_row(
            name, r.model.arch, f"{s.total_params / 1e9:.3f}B", f"{s.active_params / 1e9:.3f}B", r.description
        )
    console.print(table)


@app.command("show")
def show(name: Annotated[str, typer.Argument(help="Recipe name or YAML path")] = DEFAULT_RECIPE, set_: SetOpt = None):
    """Print the resolved recipe (defaults filled in, `extends` and --set applied)."""
    with clean_errors():
        recipe = load_recipe(name, set_ or [])
    console.print(Syntax(recipe_to_yaml(recipe), "yaml", theme="ansi_dark", background_color="default"))


@app.command("validate")
def validate(path: Annotated[str, typer.Argument(help="Recipe name or YAML path")], set_: SetOpt = None):
    """Check a recipe; exits non-zero with the offending file and key when it is invalid."""
    with clean_errors():
        recipe = load_recipe(path, set_ or [])
    console.print(f"[green]ok[/]: {path} ({recipe.name}, {recipe.model.arch})")
