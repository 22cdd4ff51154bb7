"""Helpers every CLI module shares: recipe options and turning library errors into clean exits."""

from __future__ import annotations

import contextlib
import sys
from typing import Annotated

import typer
from rich.console import Console

from qwenflow.recipe import DEFAULT_RECIPE, RecipeError, load_recipe

console = Console()
err_console = Console(stderr=True)

RecipeOpt = Annotated[str, typer.Option("--recipe", "-r", help="Shipped recipe name or path to a recipe YAML")]


def _check_set(ctx: typer.Context, values: list[str] | None):
    """Reject a bad --set at parse time, naming the flag (not the recipe file) and the closest valid key."""
    # lazy: kept out of `qwenflow --help` start-up (2 ms)
    from qwenflow.recipe.overrides import check_overrides

    try:
        check_overrides(values or [], (ctx.params or {}).get("recipe") or DEFAULT_RECIPE)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="'--set'") from None
    return values


SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", callback=_check_set, help="Override a recipe key, e.g. --set sft.learning_rate=1e-5"),
]


@contextlib.contextmanager
def clean_errors():
    """Expected failures (bad recipe, missing file, bad data) print one clear message and exit 2, no traceback."""
    try:
        yield
    except (RecipeError, FileNotFoundError, ValueError) as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)  # no wrapping: a line is a line
        raise typer.Exit(2) from None


class Typer(typer.Typer):
    """The top-level app: a command-line mistake (bad flag value, unknown option, missing argument) prints one
    line naming the flag and exits 2, instead of click's usage block or typer's boxed panel; help stays rich."""

    def __call__(self, *args, **kwargs):

        try:
            from typer._click.exceptions import ClickException, UsageError  # typer >= 0.2x carries its own click
        except ImportError:  # older typer: click's own
            # lazy: kept out of `qwenflow --help` start-up (31 ms)
            from click import ClickException, UsageError

        if kwargs.get("standalone_mode", True) is False:
            return super().__call__(*args, **kwargs)
        try:
            rv = super().__call__(*args, standalone_mode=False, **kwargs)
        except UsageError as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # `qwenflow` alone: the help, as usual
                e.show()
                sys.exit(e.exit_code)
            hint = f" (see `{e.ctx.command_path} --help`)" if e.ctx is not None else ""
            err_console.print(f"[bold red]error:[/] {e.format_message()}{hint}", highlight=False, soft_wrap=True)
            sys.exit(e.exit_code)
        except ClickException as e:
            err_console.print(f"[bold red]error:[/] {e.format_message()}", highlight=False, soft_wrap=True)
            sys.exit(e.exit_code)
        except typer.Abort:
            err_console.print("aborted", highlight=False)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) and not isinstance(rv, bool) else 0)


def get_recipe(name: str = DEFAULT_RECIPE, overrides: list[str] | None = None):
    with clean_errors():
        return load_recipe(name, overrides or [])
