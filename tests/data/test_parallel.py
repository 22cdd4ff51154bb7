"""The corpus steps over a process pool keep exactly what the serial path keeps: same documents, drops and order."""

import json
import os
import signal
from collections import Counter

from qwenflow.data import parallel
from qwenflow.data.corpus import build_corpus
from qwenflow.data.decontam import Decontaminator
from qwenflow.data.parallel import map_records
from qwenflow.data.sources import load_source
from qwenflow.recipe import load_recipe


def test_map_records_runs_in_worker_processes_and_keeps_order():
    texts = [f"doc {i} " + "x" * (i % 50) for i in range(500)]
    out = map_records(lambda t: (t, os.getpid()), texts, workers=2)
    assert [t for t, _ in out] == texts
    assert os.getpid() not in {p for _, p in out}  # the work ran in forked workers
    assert map_records(len, texts, workers=1) == [len(t) for t in texts]


def test_pool_workers_die_on_sigterm_whatever_the_parent_handles():
    """Pool.__exit__ stops its workers with SIGTERM. A step process handles SIGTERM itself (launch.py deletes its
    job; Ray's driver drains); a worker that inherited such a handler outlived the pool and the map never returned
    (a CI run hung in the corpus steps). The workers must run with SIGTERM's default action."""
    previous = signal.signal(signal.SIGTERM, lambda *a: None)
    try:
        out = map_records(lambda t: signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, ["x"] * 500, workers=2)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert all(out)


def _user_folder(tmp_path, stolen: list[str]) -> str:
    """Real prose (Bible chapters) with every kind of drop planted: exact and near duplicates, evaluation items
    inside documents, too short, symbol-heavy."""
    docs = [r["text"][:1500] for r in load_source("bible", 80_000, Counter())][:20]
    docs += docs[:3]  # exact duplicates
    docs += [d.replace("the", "thee", 1) for d in docs[3:6]]  # near duplicates
    docs[6:9] = [d[:600] + " " + s + " " + d[600:] for d, s in zip(docs[6:9], stolen)]  # contain an evaluation item
    docs += ["too short", "#$%&*!@" * 100]
    folder = tmp_path / "user"
    folder.mkdir()
    (folder / "docs.jsonl").write_text("".join(json.dumps({"text": d, "domain": "literature"}) + "\n" for d in docs))
    return str(folder)


def test_parallel_corpus_equals_serial(tmp_path, monkeypatch):
    monkeypatch.setattr(parallel, "BATCH_BYTES", 20_000)  # many small batches over both workers
    items = [" ".join(f"word{i}{j} alpha beta gamma" for j in range(6)) for i in range(3)]
    folder = _user_folder(tmp_path, items)
    decon = Decontaminator({"planted": items})
    runs = {}
    for workers in (1, 2):
        spec = load_recipe(
            "tiny",
            [
                "data.max_bytes_per_source=60000",
                f"data.workers={workers}",
                f"data.sources=[python_stdlib,gcide,fortunes,{folder}]",
            ],
        ).data
        runs[workers] = build_corpus(spec, decon, say=lambda s: None)
    serial, par = runs[1], runs[2]
    assert {"exact_duplicate", "near_duplicate", "contaminated", "too_short", "symbol_ratio"} <= set(serial["drops"])
    assert serial["contamination"] == {"planted": 3}
    for key in ("train", "val", "drops", "quality", "domains", "contamination", "mixture"):
        assert par[key] == serial[key], key
