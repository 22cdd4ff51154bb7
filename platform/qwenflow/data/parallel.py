"""Order-preserving parallel map over a forked process pool, for the per-record work of the corpus steps.

Workers are forked after the job is set, so they inherit the records and the step's state (MinHash parameters,
the fitted reference model, the decontamination index) instead of receiving pickles of them; only each batch's
results travel back. Results come back in input order, so a parallel run keeps exactly what a serial one keeps.
Hand-written rather than multiprocessing.Pool.map because that pickles every input and its function.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import signal
from collections.abc import Callable, Iterator, Sequence

BATCH_BYTES = 2_000_000  # per task: large enough to amortise the round trip, small enough to balance the cores
MIN_ITEMS = 64  # below this a pool costs more than it saves

_JOB: tuple[Callable, Sequence] | None = None  # the running map's (batch function, items), inherited by the fork


def resolve_workers(workers: int | None) -> int:
    """0 or None = every core this process may use."""
    if workers:
        return workers
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _worker_init() -> None:
    # Pool.__exit__ stops the workers with SIGTERM. A forked worker inherits the parent's SIGTERM handler (a step's
    # "delete my job" handler, Ray's driver handler); one that does not exit left the parent joining it forever.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _run(bounds: tuple[int, int]) -> list:
    assert _JOB is not None  # set by the parent before it forks the workers
    fn, items = _JOB
    return fn(items[bounds[0] : bounds[1]])


def batches(sizes: Sequence[int], workers: int) -> list[tuple[int, int]]:
    """Contiguous (start, end) ranges of about equal bytes: at least 4 per worker so a slow batch cannot stall one."""
    n = len(sizes)
    target = max(1, min(BATCH_BYTES, math.ceil(sum(sizes) / (4 * workers))))
    out, start, acc = [], 0, 0
    for i, s in enumerate(sizes):
        acc += s
        if acc >= target:
            out.append((start, i + 1))
            start, acc = i + 1, 0
    if start < n:
        out.append((start, n))
    return out


def imap_batches(
    fn: Callable[[Sequence], list],
    items: Sequence,
    sizes: Sequence[int],
    workers: int | None = None,
    min_items: int = MIN_ITEMS,
) -> Iterator:
    """fn(items[a:b]) over contiguous batches, yielded item by item in input order as batches complete, so the
    caller's sequential part (an index insert) overlaps the workers; fn must return one result per item."""
    global _JOB
    workers = resolve_workers(workers)
    if (
        workers <= 1
        or len(items) < min_items
        or _JOB is not None  # _JOB set: a nested map runs serially
        or mp.current_process().daemon
        or "fork" not in mp.get_all_start_methods()
    ):  # no pool possible there
        yield from fn(items)
        return
    _JOB = (fn, items)
    n = 0
    try:
        with mp.get_context("fork").Pool(workers, initializer=_worker_init) as pool:
            for part in pool.imap(_run, batches(sizes, workers)):
                n += len(part)
                yield from part
    finally:
        _JOB = None
    if n != len(items):
        raise RuntimeError(f"parallel map returned {n} results for {len(items)} items")


def map_batches(
    fn: Callable[[Sequence], list],
    items: Sequence,
    sizes: Sequence[int],
    workers: int | None = None,
    min_items: int = MIN_ITEMS,
) -> list:
    """The results of imap_batches as a list."""
    return list(imap_batches(fn, items, sizes, workers, min_items))


def imap_records(fn: Callable, texts: Sequence[str], workers: int | None = None) -> Iterator:
    """fn(text) for every text, in order, over the pool (batched by text length)."""
    return imap_batches(lambda part: [fn(t) for t in part], texts, [len(t) for t in texts], workers)


def map_records(fn: Callable, texts: Sequence[str], workers: int | None = None) -> list:
    return list(imap_records(fn, texts, workers))
