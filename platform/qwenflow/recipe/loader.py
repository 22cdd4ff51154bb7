"""Load recipes from YAML (shipped or user files), apply `extends` and `--set` overrides, validate."""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from .schema import Recipe

DEFAULT_RECIPE = "tiny"


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names the file and the key."""


def shipped_dir() -> Path:
    return Path(str(resources.files("qwenflow") / "recipes"))


def list_recipes() -> list[str]:
    return sorted(p.stem for p in shipped_dir().glob("*.yaml") if not p.stem.startswith("_"))


def _resolve_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise RecipeError(f"recipe file not found: {p}")
        return p
    shipped = shipped_dir() / f"{name_or_path}.yaml"
    if not shipped.is_file():
        raise RecipeError(f"unknown recipe {name_or_path!r}; shipped recipes: {', '.join(list_recipes())}")
    return shipped


def _deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _read_raw(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    if path in seen:
        raise RecipeError(f"{path}: 'extends' forms a cycle through {[str(s) for s in seen]}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise RecipeError(f"{path}: not valid YAML: {e}") from None
    except UnicodeDecodeError as e:
        raise RecipeError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe must be a YAML mapping, got {type(raw).__name__}")
    parent = raw.pop("extends", None)
    if parent:
        parent_path = _resolve_path(parent) if not str(parent).endswith((".yaml", ".yml")) else (path.parent / parent)
        raw = _deep_merge(_read_raw(parent_path, seen + (path,)), raw)
    return _unshared(raw)


def _unshared(node):
    """A copy in which YAML anchors/aliases (`resources: *gpu8`) are separate objects, so `--set sft.resources.gpus=4`
    changes SFT's resources only (copy.deepcopy would keep the sharing)."""
    if isinstance(node, dict):
        return {k: _unshared(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_unshared(v) for v in node]
    return node


def apply_override(raw: dict, assignment: str, source: str = "--set") -> None:
    """Apply one `a.b.c=value` override in place; the value is parsed as YAML (numbers, bools, lists)."""
    if "=" not in assignment:
        raise RecipeError(f"{source} {assignment!r}: expected KEY=VALUE, e.g. sft.learning_rate=1e-5")
    key, value = assignment.split("=", 1)
    parts = key.strip().split(".")
    node = raw
    for i, part in enumerate(parts[:-1]):
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise RecipeError(f"{source} {key}: {'.'.join(parts[: i + 1])} is not a section")
        node = nxt
    try:
        node[parts[-1]] = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise RecipeError(
            f"{source} {key}: value {value!r} is not valid YAML ({problem}); quote strings, write lists as [a, b]"
        ) from None


def _is_union_tag(part) -> bool:
    """pydantic names the member of a union it tried (`constrained-float`, `literal['auto']`); keys never look so."""
    return isinstance(part, str) and ("-" in part or "[" in part)


def _format_errors(path: Path | str, err: ValidationError) -> str:
    lines, seen = [], set()
    errors = err.errors()
    for e in errors:
        if e["loc"] and _is_union_tag(e["loc"][-1]):
            key = tuple(p for p in e["loc"] if not _is_union_tag(p))
            if str(e["loc"][-1]).startswith("literal[") and any(
                tuple(p for p in o["loc"] if not _is_union_tag(p)) == key and o is not e for o in errors
            ):
                continue  # "or 'auto'" is the other member; the numeric member's range is the useful message
            e = {**e, "loc": key}
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        if (loc, e["msg"]) in seen:
            continue
        seen.add((loc, e["msg"]))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; `qwenflow recipe show tiny` lists every key)"
        lines.append(
            f"  {loc}: {msg}"
            + (
                f" (got {e['input']!r})"
                if e["type"] not in ("extra_forbidden", "missing") and not isinstance(e["input"], dict)
                else ""
            )
        )
    return f"invalid recipe {path}:\n" + "\n".join(lines)


def load_recipe(name_or_path: str | Path = DEFAULT_RECIPE, overrides: list[str] | None = None) -> Recipe:
    path = _resolve_path(name_or_path)
    raw = _read_raw(path)
    for ov in overrides or []:
        apply_override(raw, ov)
    try:
        return Recipe.model_validate(raw)
    except ValidationError as e:
        raise RecipeError(_format_errors(path, e)) from None


def read_recipe(path: str | Path) -> Recipe:
    """A resolved recipe a step wrote (`recipe.yaml`, or the directory holding it), validated again."""
    path = Path(path)
    if path.is_dir():
        path = path / "recipe.yaml"
    return Recipe.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def recipe_to_yaml(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
