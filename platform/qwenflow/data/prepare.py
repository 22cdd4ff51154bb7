"""The data stage: `prepare_data(recipe, out_dir)` writes corpus/, sft/, rl/, preferences/ and eval/ (Parquet +
manifest each, docs/stages.md), validates every one against its contract and returns the report."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from qwenflow.artifacts import atomic_write_text, write_manifest

from .contracts import DataContractError, validate_dataset
from .corpus import build_corpus
from .posttrain_data import build_posttrain
from .report import mixture_plot
from .schemas import DATASETS, stream_parquet, write_parquet

log = logging.getLogger("qwenflow.data")


def _columns(kind: str) -> dict[str, str]:
    """{column: Arrow type} of a dataset kind prepare writes, for its manifest."""
    schema = DATASETS[kind].schema
    assert schema is not None  # only the packed kind has none, and prepare does not write it
    return {f.name: str(f.type) for f in schema}


def _eval_texts(post: dict) -> dict[str, list[str]]:
    return {f"heldout/{task}": [r["prompt"][-1]["content"] for r in rows] for task, rows in post["eval"].items()}


def prepare_data(recipe, out_dir: str | Path, say: Callable[[str], None] | None = None) -> dict:
    """Build and validate every dataset of the recipe's data section under out_dir; returns the stage report."""
    say = say or log.info
    spec = recipe.data
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    laps: dict[str, float] = {}  # seconds of the work around the corpus steps, for the benchmark's breakdown

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        laps[name] = round(now - since, 3)
        return now

    decon = None
    if spec.decontaminate:
        # lazy: 22 ms to import, needed only here
        from .benchmarks import benchmark_texts
        from .decontam import Decontaminator

        t = time.perf_counter()
        sets = benchmark_texts()
        decon = Decontaminator(sets, spec.decontam_min_tokens, spec.decontam_min_ratio)
        say(
            f"decontamination index: {sum(len(v) for v in sets.values())} items from {', '.join(sorted(sets))} "
            f"({time.perf_counter() - t:.1f} s)"
        )
        lap("decontam_index", t)

    say("post-training data:")
    t = time.perf_counter()
    post = build_posttrain(spec, decon)
    if decon is not None:  # the corpus must not contain the platform's own held-out problems either
        decon = decon.extended(_eval_texts(post))
    t = lap("posttrain", t)
    dirs = {k: out / k for k in ("corpus", "sft", "rl", "preferences", "eval")}
    for d in dirs.values():
        d.mkdir(exist_ok=True)
    if spec.engine == "ray":  # writes corpus/ itself, streamed from the cluster's blocks
        # lazy: 23 ms to import, needed only here
        from .ray_corpus import build_corpus_ray

        corpus = build_corpus_ray(spec, decon, dirs["corpus"], say)
        t = time.perf_counter()
    else:
        corpus = build_corpus(spec, decon, say)
        t = time.perf_counter()
        counts = {
            split: stream_parquet(
                [pa.Table.from_pylist(corpus[split], schema=DATASETS["corpus"].schema)],
                dirs["corpus"] / f"{split}.parquet",
                DATASETS["corpus"].schema,
            )
            for split in ("train", "val")
        }
        corpus.update(rows={k: v[0] for k, v in counts.items()}, bytes={k: v[1] for k, v in counts.items()})

    # ---- write -------------------------------------------------------------------------------------------
    write_parquet(post["sft"], dirs["sft"] / "train.parquet", DATASETS["sft"].schema)
    write_parquet(post["rl"], dirs["rl"] / "prompts.parquet", DATASETS["rl"].schema)
    write_parquet(post["preferences_train"], dirs["preferences"] / "train.parquet", DATASETS["preferences"].schema)
    write_parquet(post["preferences_test"], dirs["preferences"] / "test.parquet", DATASETS["preferences"].schema)
    for task, rows in post["eval"].items():
        write_parquet(rows, dirs["eval"] / f"{task}.parquet", DATASETS["eval"].schema)

    common = {"recipe": recipe.name, "seed": spec.seed, "stage": "data"}
    manifests = {
        "corpus": dict(
            rows=corpus["rows"],
            bytes=corpus["bytes"],
            engine=spec.engine,
            schema=_columns("corpus"),
            mixture=corpus["mixture"],
            max_upsample=spec.max_upsample,
            drops=corpus["drops"],
            sources=corpus["per_source"],
            contamination=corpus["contamination"],
            quality=corpus["quality"],
            domains=corpus["domains"],
        ),
        "sft": dict(
            rows={"train": len(post["sft"])},
            schema=_columns("sft"),
            tasks=spec.tasks,
            chat_fraction=spec.chat_fraction,
            counts=post["counts"],
        ),
        "rl": dict(
            rows={"prompts": len(post["rl"])},
            schema=_columns("rl"),
            tasks=spec.tasks,
        ),
        "preferences": dict(
            rows={"train": len(post["preferences_train"]), "test": len(post["preferences_test"])},
            schema=_columns("preferences"),
        ),
        "eval": dict(
            rows={t: len(v) for t, v in post["eval"].items()},
            schema=_columns("rl"),
            disjoint_from_training=True,
        ),
    }
    # ---- validate: the manifest is written first (the contracts read the mixture from it), then completed ---
    t = lap("write", t)
    validation = {}
    say("contracts:")
    for kind, fields in manifests.items():
        write_manifest(dirs[kind], **common, **fields)
        res = validate_dataset(kind, dirs[kind], out / "reports", raise_on_failure=False, contract=spec.contracts)
        validation[kind] = res.success
        write_manifest(
            dirs[kind],
            **common,
            **fields,
            validation={
                "success": res.success,
                "checks": len(res.checks),
                "failures": res.failures,
                "report": res.report_json,
            },
        )
        say(f"  {kind:<12} {'passed' if res.success else 'FAILED'} ({len(res.checks)} expectations)")
        if not res.success:
            raise DataContractError(res.summary(), res)
    lap("contracts", t)

    report = {
        "out_dir": str(out),
        "seconds": round(time.perf_counter() - t0, 1),
        "raw_mb": corpus["raw_mb"],
        "corpus_rows": manifests["corpus"]["rows"],
        "corpus_bytes": manifests["corpus"]["bytes"],
        "drops": corpus["drops"],
        "posttrain_drops": post["drops"],
        "contamination": corpus["contamination"],
        "posttrain_contamination": post["contamination"],
        "mixture": corpus["mixture"],
        "per_source": corpus["per_source"],
        "steps": corpus["steps"],
        "quality": corpus["quality"],
        "domains": corpus["domains"],
        "posttrain": post["counts"],
        "validation": validation,
        "other_steps": laps,
    }
    atomic_write_text(out / "data_report.json", json.dumps(report, indent=2, default=str))
    _log_to_mlflow(report, out)
    return report


def _log_to_mlflow(report: dict, out: Path) -> None:
    """Metrics, drop counts and a mixture plot on the active run, if any (the CLI and the pipeline open one)."""
    import mlflow  # 3.7 s to import: only when the report is logged

    if mlflow.active_run() is None:
        return
    mlflow.log_metrics({f"drops.{k}": float(v) for k, v in report["drops"].items()})
    mlflow.log_metrics(
        {
            "raw_mb": report["raw_mb"],
            "seconds": report["seconds"],
            "corpus_train_mb": report["corpus_bytes"]["train"] / 1e6,
            **{f"mixture.after.{d}": s for d, s in report["mixture"]["after"].items()},
        }
    )
    mlflow.log_artifact(str(out / "data_report.json"))

    mlflow.log_figure(mixture_plot(report["mixture"]), "mixture.png")
