"""The Ray instance the data stage runs on: the cluster's when RAY_ADDRESS is set (inside a KubeRay RayJob),
else a local one started here with the recipe's CPU and object-store caps, and stopped again when the stage ends.
A Ray instance already running in this process (a test module's shared one) is used as is."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

log = logging.getLogger("qwenflow.data")

_CACHE: dict[Any, Any] = {}  # per worker process: objects shared with every task of a step, fetched once


@contextlib.contextmanager
def ray_session(workers: int = 0, object_store_mb: int = 0):
    try:
        # lazy: imports ray (702 ms)
        import ray
    except ImportError:
        raise RuntimeError(
            "data.engine: ray needs Ray Data: pip install 'ray[data]==2.60.0' (requirements.txt), "
            "or set data.engine: local"
        ) from None

    started = False
    if not ray.is_initialized():
        os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")  # never let Ray reach for uv/a package index
        kw: dict = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if not os.environ.get("RAY_ADDRESS"):
            # lazy: 24 ms to import, needed only here
            from .parallel import resolve_workers

            kw["num_cpus"] = resolve_workers(workers)
            if object_store_mb:
                kw["object_store_memory"] = object_store_mb << 20
        ray.init(**kw)
        started = True
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # one INFO block per execution otherwise
    # lazy: imports ray, pandas, pyarrow (seconds to import)
    from ray.data import DataContext

    ctx = DataContext.get_current()
    old = ctx.execution_options.preserve_order, ctx.enable_progress_bars
    # Input order is the corpus order: every "first of a group is kept" rule and every seeded draw depends on it.
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False  # the stage prints one line per step instead
    try:
        yield ray
    finally:
        ctx.execution_options.preserve_order, ctx.enable_progress_bars = old
        if started:
            ray.shutdown()


class Shared:
    """An object every task of a step needs (the spec, the fitted scorer, the decontamination index): put in the
    object store once and unpickled once per worker process, not once per task."""

    def __init__(self, obj):
        # lazy: imports ray (702 ms)
        import ray

        self.ref = ray.put(obj)

    def get(self):
        key = self.ref.hex()
        if key not in _CACHE:
            # lazy: imports ray (702 ms)
            import ray

            if len(_CACHE) > 8:
                _CACHE.clear()
            _CACHE[key] = ray.get(self.ref)
        return _CACHE[key]
