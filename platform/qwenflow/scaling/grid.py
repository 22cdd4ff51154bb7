"""Sweep grids: a ladder of Qwen2.5-shaped models crossed with data sizes, learning rates and batch sizes."""

from __future__ import annotations

import hashlib
import itertools
import json
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field

from qwenflow.recipe.base import Strict
from qwenflow.recipe.model import MoESpec


class LadderModel(Strict):
    name: str
    arch: Literal["dense", "moe"] = "dense"
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    moe: MoESpec | None = None
    learning_rates: list[float] | None = Field(None, description="Override the grid's learning rates for this model")
    batch_sizes: list[int] | None = Field(None, description="Override the grid's batch sizes (sequences)")
    data_tokens: list[int] | None = Field(None, description="Override the grid's data sizes")


class Grid(Strict):
    name: str
    base_recipe: str = Field("tiny", description="Recipe the points start from (tokenizer, vocabulary, optimizer)")
    seq_len: int = 128
    models: list[LadderModel]
    data_tokens: list[int] = Field(description="Training tokens per run (D)")
    learning_rates: list[float]
    batch_sizes: list[int] = Field(description="Sequences per optimizer step")
    holdout: str | None = Field(None, description="Model name held out of the fit and predicted from the others")

    def points(self) -> list[Point]:
        out = []
        for m in self.models:
            for d, lr, b in itertools.product(
                m.data_tokens or self.data_tokens,
                m.learning_rates or self.learning_rates,
                m.batch_sizes or self.batch_sizes,
            ):
                out.append(
                    Point(
                        model=m,
                        tokens=d,
                        learning_rate=lr,
                        batch_size=b,
                        seq_len=self.seq_len,
                        base_recipe=self.base_recipe,
                        grid=self.name,
                    )
                )
        return out


class Point(Strict):
    model: LadderModel
    tokens: int
    learning_rate: float
    batch_size: int
    seq_len: int
    base_recipe: str
    grid: str

    @property
    def steps(self) -> int:
        return max(1, round(self.tokens / (self.batch_size * self.seq_len)))

    @property
    def key(self) -> str:
        """Content key: the same point from another sweep or machine is recognised and reused."""
        spec = self.model.model_dump(exclude={"name", "learning_rates", "batch_sizes", "data_tokens"})
        blob = json.dumps(
            [spec, self.tokens, self.learning_rate, self.batch_size, self.seq_len, self.base_recipe], sort_keys=True
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def overrides(self) -> list[str]:
        m = self.model
        ov = [
            f"model.arch={m.arch}",
            f"model.hidden_size={m.hidden_size}",
            f"model.num_layers={m.num_layers}",
            f"model.num_heads={m.num_heads}",
            f"model.num_kv_heads={m.num_kv_heads}",
            f"model.intermediate_size={m.intermediate_size}",
            f"pretrain.seq_len={self.seq_len}",
            f"pretrain.learning_rate={self.learning_rate}",
            f"pretrain.global_batch_size={self.batch_size}",
            f"pretrain.micro_batch_size={self.batch_size}",
            f"pretrain.max_steps={self.steps}",
            f"pretrain.eval_every={self.steps}",
            f"pretrain.checkpoint_every={self.steps}",
            "long_context.enabled=false",
        ]
        if m.moe is not None:
            ov.append("model.moe=" + json.dumps(m.moe.model_dump()))
        return ov


def load_grid(name_or_path: str | Path) -> Grid:
    p = Path(name_or_path)
    if not p.suffix:
        p = Path(str(resources.files("qwenflow.scaling") / "grids" / f"{name_or_path}.yaml"))
    if not p.is_file():
        raise FileNotFoundError(f"sweep grid not found: {name_or_path} (shipped grids: tiny)")
    try:
        return Grid.model_validate(yaml.safe_load(p.read_text()))
    except Exception as e:  # pydantic ValidationError or YAML error: name the file
        raise ValueError(f"invalid sweep grid {p}: {e}") from None
