"""Deployment settings: a deploy.json baked into a Bento beside its model, overridden by QWENFLOW_* env vars."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

BENTO_MODEL_DIR = "model"  # inside a built Bento's src/
DEPLOY_FILE = "qwenflow_deploy.json"  # inside a built Bento's src/


@dataclass
class Settings:
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
    def load(cls, src_dir: str | Path | None = None) -> Settings:
        src = Path(src_dir) if src_dir else Path.cwd()
        values: dict = {}
        if (src / DEPLOY_FILE).is_file():
            values.update(json.loads((src / DEPLOY_FILE).read_text()))
            if (src / BENTO_MODEL_DIR).is_dir():
                values["model"] = str(src / BENTO_MODEL_DIR)
        for f in fields(cls):
            env = os.environ.get(f"QWENFLOW_{f.name.upper()}")
            if env is not None and env != "":
                values[f.name] = env
        s = cls(**{k: v for k, v in values.items() if k in {f.name for f in fields(cls)}})
        s.yarn = str(s.yarn).lower() in {"1", "true", "yes", "on"}
        s.max_tokens_limit, s.max_batch_size, s.max_queue = (
            int(s.max_tokens_limit),
            int(s.max_batch_size),
            int(s.max_queue),
        )
        s.max_body_bytes, s.threads, s.join_after = int(s.max_body_bytes), int(s.threads), int(s.join_after)
        if not s.model:
            raise ValueError("no model to serve: set QWENFLOW_MODEL to a model directory or models:/NAME@champion")
        if s.batching not in {"continuous", "static"}:
            raise ValueError(f"QWENFLOW_BATCHING={s.batching!r}: use continuous or static")
        if not s.served_name:
            from qwenflow.tracking.model_source import is_registry_uri, parse_registry_uri

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
        return json.dumps(asdict(self), indent=2)
