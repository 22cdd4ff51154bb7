"""Every number of the recipe schema has a physical range: -1, NaN and 10**18 are refused for each, naming the key.

The schema is walked, not listed, so a numeric field added later without a range fails here."""

import types
import typing

import pytest
from pydantic import BaseModel

from qwenflow.recipe import RecipeError, load_recipe
from qwenflow.recipe.schema import Recipe

UNBOUNDED = {"seed"}  # any integer is a seed


def _strip(annotation):
    """The non-None members of a (possibly Optional/Annotated/union) annotation."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _strip(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(annotation) if a is not type(None) for m in _strip(a)]
    return [annotation]


def numeric_leaves(model=Recipe, prefix=""):
    """(dotted key, is_list) of every int/float field, also inside lists and optional sections."""
    for name, field in model.model_fields.items():
        key = prefix + name
        for member in _strip(field.annotation):
            if isinstance(member, type) and issubclass(member, BaseModel):
                yield from numeric_leaves(member, key + ".")
            elif member in (int, float) and name not in UNBOUNDED:
                yield key, False
            elif typing.get_origin(member) is list and any(
                m in (int, float) for m in _strip(typing.get_args(member)[0])
            ):
                yield key, True


LEAVES = sorted(set(numeric_leaves()))


def test_the_walk_finds_the_fields_the_issue_named():
    keys = {k for k, _ in LEAVES}
    assert {
        "pretrain.learning_rate",
        "sft.max_seq_len",
        "sft.epochs",
        "model.hidden_size",
        "model.vocab_size",
        "grpo.learning_rate",
        "long_context.seq_lens",
        "data.contracts.max_blank_rate",
    } <= keys
    assert len(keys) > 80


@pytest.mark.parametrize("key, is_list", LEAVES, ids=[k for k, _ in LEAVES])
def test_every_recipe_number_is_bounded_and_finite(key, is_list):
    for bad in ("-1", ".nan", str(10**18)):
        value = f"[{bad}]" if is_list else bad
        with pytest.raises(RecipeError) as e:
            load_recipe("tiny", [f"{key}={value}"])
        assert key in str(e.value), (key, bad, str(e.value))


def test_shapes_too_large_for_any_cluster_are_refused_and_real_sizes_are_counted_exactly():
    from qwenflow.models import model_size

    for name in ("qwen2.5-72b", "qwen2.5-moe-a2.7b", "tiny"):
        spec = load_recipe(name).model
        assert spec.approx_params() == model_size(spec).total_params, name
    with pytest.raises(RecipeError, match=r"model: these shapes give ~\d[\d,]*B parameters, over the 2T"):
        load_recipe("qwen2.5-72b", ["model.hidden_size=65536", "model.num_layers=1024"])
