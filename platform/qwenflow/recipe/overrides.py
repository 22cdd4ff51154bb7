"""Checks for `--set KEY=VALUE` overrides against the recipe schema, so a typo is reported as the flag's mistake
with the closest valid key ("did you mean sft.learning_rate?"), not as an error in the shipped recipe file."""

from __future__ import annotations

import difflib
import types
import typing

from pydantic import BaseModel

from qwenflow.recipe.loader import RecipeError, load_recipe
from qwenflow.recipe.schema import Recipe


def _section(annotation):
    """The recipe section (pydantic model) a field holds, also through Optional[...]; None for leaf values."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return None


def recipe_keys(model=None, prefix: str = "") -> list[str]:
    """Every dotted key of the recipe schema (sections and leaves)."""

    model = model or Recipe
    keys = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        keys.append(key)
        sub = _section(field.annotation)
        if sub is not None:
            keys += recipe_keys(sub, key + ".")
    return keys


def _suggest(key: str) -> str:
    close = difflib.get_close_matches(key, recipe_keys(), n=1, cutoff=0.5)
    return f"; did you mean {close[0]}?" if close else "; `qwenflow recipe show` lists every key"


def check_key(assignment: str) -> str:
    """The key of one KEY=VALUE override; ValueError naming the override when the key is not in the schema."""

    if "=" not in assignment:
        raise ValueError(f"{assignment!r}: expected KEY=VALUE, e.g. sft.learning_rate=1e-5")
    key = assignment.split("=", 1)[0].strip()
    model: type[BaseModel] | None = Recipe  # None: inside a mapping field, where any key is allowed
    parts = key.split(".")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part) if model is not None else None
        if field is None:
            if model is None:  # inside a mapping field (node_selector, mixture weights): any key is allowed
                break
            raise ValueError(f"{assignment}: unknown key {'.'.join(parts[: i + 1])}{_suggest(key)}")
        sub = _section(field.annotation)
        if sub is None and i < len(parts) - 1:
            if typing.get_origin(field.annotation) is dict or field.annotation is dict:
                model = None
                continue
            raise ValueError(f"{assignment}: {'.'.join(parts[: i + 1])} is a value, not a section{_suggest(key)}")
        model = sub
    return key


def check_overrides(overrides: list[str], recipe: str) -> None:
    """Check every override's key, then its value against `recipe`; errors name the override, never the file."""

    keys = {check_key(a): a for a in overrides}
    if not overrides:
        return
    try:
        load_recipe(recipe, overrides)
    except RecipeError as e:
        for line in str(e).splitlines()[1:]:
            loc, _, msg = line.strip().partition(": ")
            for key, assignment in keys.items():
                if loc == key or loc.startswith(key + "."):
                    raise ValueError(f"{assignment}: {msg}") from None
        # Anything else is the recipe's own problem (or a cross-field rule): the command reports it as before.
