"""Guarding reward functions: one that raises, hangs or returns NaN is counted and handled as the recipe says
(on_error = "zero": score 0, "skip": no score for that batch (GRPO ignores it), "stop": raise RewardFunctionError).
A missing code sandbox (SandboxUnavailable) always stops: scoring every code answer 0 would hide it."""

from __future__ import annotations

import concurrent.futures as cf
import logging
import math
from collections import Counter
from collections.abc import Callable

from .sandbox import SandboxUnavailable

log = logging.getLogger(__name__)


class RewardFunctionError(RuntimeError):
    """A reward function failed and the recipe says to stop."""


class GuardedReward:
    """Wraps `f(completions, **kwargs) -> list[float]`; `.failures` counts raised/timeout/nan/bad_length."""

    def __init__(self, fn: Callable, name: str, on_error: str = "zero", timeout_s: float = 60.0):
        if on_error not in ("zero", "skip", "stop"):
            raise ValueError(f"on_error must be zero, skip or stop, not {on_error!r}")
        self.fn, self.__name__, self.on_error, self.timeout_s = fn, name, on_error, timeout_s
        self.failures: Counter = Counter()
        self.calls = 0
        # One worker thread, so a hung call cannot pile up; a hung function is abandoned, not waited for.
        self._pool = cf.ThreadPoolExecutor(1, thread_name_prefix=f"reward-{name}")

    def _fail(self, kind: str, n: int, detail: str) -> list[float | None]:
        self.failures[kind] += 1
        msg = f"reward function {self.__name__!r} {detail}"
        if self.on_error == "stop":
            raise RewardFunctionError(msg + " (grpo.reward_on_error=stop; set it to zero or skip to go on)")
        log.warning("%s; scoring the batch %s", msg, "0" if self.on_error == "zero" else "as missing")
        return [0.0 if self.on_error == "zero" else None] * n

    def __call__(self, completions, **kwargs) -> list[float | None]:
        self.calls += 1
        n = len(completions)
        future = self._pool.submit(self.fn, completions, **kwargs)
        try:
            out = list(future.result(timeout=self.timeout_s))
        except cf.TimeoutError:
            self._pool.shutdown(wait=False)  # leave the hung thread behind; a fresh one serves the next call
            self._pool = cf.ThreadPoolExecutor(1, thread_name_prefix=f"reward-{self.__name__}")
            return self._fail("timeout", n, f"took longer than {self.timeout_s:g} s")
        except (RewardFunctionError, SandboxUnavailable):  # no sandbox here: stop, never score code unsandboxed
            raise
        except Exception as e:  # noqa: BLE001 - any bug in a user's reward function is counted, not fatal
            return self._fail("raised", n, f"raised {type(e).__name__}: {e}")
        if len(out) != n:
            return self._fail("bad_length", n, f"returned {len(out)} scores for {n} completions")
        bad = [i for i, v in enumerate(out) if v is None or not isinstance(v, (int, float)) or not math.isfinite(v)]
        if bad:
            self.failures["nan"] += len(bad)
            if self.on_error == "stop":
                raise RewardFunctionError(
                    f"reward function {self.__name__!r} returned {len(bad)} NaN/inf/None "
                    "scores (grpo.reward_on_error=stop)"
                )
            fill = 0.0 if self.on_error == "zero" else None
            out = [fill if i in set(bad) else float(v) for i, v in enumerate(out)]
        return [None if v is None else float(v) for v in out]
