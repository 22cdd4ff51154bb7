"""Deployment settings: the one model of what a server runs with. Built from a recipe's deploy section
(`Settings.from_deploy`: Bento builds, `qwenflow deploy serve`, Helm values), baked into a Bento as deploy.json beside
its model, and overridden by QWENFLOW_* env vars when the server starts (`Settings.load`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel

from qwenflow.tracking.model_source import is_registry_uri, parse_registry_uri

BENTO_MODEL_DIR = "model"  # inside a built Bento's src/
DEPLOY_FILE = "qwenflow_deploy.json"  # inside a built Bento's src/
FROM_RECIPE = ("yarn", "attention", "max_tokens_limit", "max_batch_size")  # the recipe's deploy fields a server reads


class Settings(BaseModel):
    model: str = ""  # model directory or models:/NAME@ALIAS
    served_name: str = ""  # the id clients pass as `model` (default: registry name or directory name)
    yarn: bool = False
    attention: str = "sdpa"
    max_tokens_limit: int = 4096
    max_batch_size: int = 16
    max_queue: int = 256  # waiting requests beyond this get 429
    batching: str = "continuous"  # or "static" (a batch closes when it starts: BentoML adaptive batching's shape)
    model_cache: str = ""  # where registry downloads go (a writable volume under a read-only root fs)
    max_body_bytes: int = 2 << 20  # larger request bodies get 413 before parsing (128k tokens of text fit)
    threads: int = 0  # torch intra-op threads; 0 = one less than the usable cores (at least 1)
    join_after: int = 4  # decode steps a request may wait to join a running batch (joins come in groups)

    @classmethod
    def from_deploy(cls, deploy, **values) -> Settings:
        """Settings for a recipe's deploy section (qwenflow.recipe.deploy.DeploySpec) plus `values`."""
        return cls(**{k: getattr(deploy, k) for k in FROM_RECIPE}, **values)

    def env(self, *names: str) -> dict[str, str]:
        """The QWENFLOW_* variables that give a server these settings (what `load` reads): `names`, or all."""
        return {f"QWENFLOW_{k.upper()}": str(v) for k, v in self.model_dump(include=set(names) or None).items()}

    @classmethod
    def load(cls, src_dir: str | Path | None = None) -> Settings:
        src = Path(src_dir) if src_dir else Path.cwd()
        values: dict = {}
        if (src / DEPLOY_FILE).is_file():
            values.update(json.loads((src / DEPLOY_FILE).read_text()))
            if (src / BENTO_MODEL_DIR).is_dir():
                values["model"] = str(src / BENTO_MODEL_DIR)
        for name in cls.model_fields:
            env = os.environ.get(f"QWENFLOW_{name.upper()}")
            if env is not None and env != "":
                values[name] = env
        # pydantic converts the env strings: "true"/"1"/"on" to bools, numbers to ints, a clear error otherwise
        s = cls(**{k: v for k, v in values.items() if k in cls.model_fields})
        if not s.model:
            raise ValueError("no model to serve: set QWENFLOW_MODEL to a model directory or models:/NAME@champion")
        if s.batching not in {"continuous", "static"}:
            raise ValueError(f"QWENFLOW_BATCHING={s.batching!r}: use continuous or static")
        if not s.served_name:
            s.served_name = parse_registry_uri(s.model)[0] if is_registry_uri(s.model) else "qwenflow"
        return s

    def torch_threads(self) -> int:
        """The engine thread computes while the event loop thread answers HTTP: leaving it a core keeps torch's
        parallel regions from stalling on a descheduled worker (measured: on 2 loaded cores, 2 intra-op threads made
        each decode step 5-20x slower than 1)."""
        if self.threads > 0:
            return self.threads
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(1, cores - 1)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)
