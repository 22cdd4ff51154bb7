"""`evaluate(model_dir, out_dir, suite, recipe, data_dir) -> report`: every task the suite names, one JSON report,
plots, and (by default) an MLflow run with the metrics and artifacts.

Suites: `quick` scores seeded subsets (about a minute for the tiny model on 2 CPU cores); `full` scores every item.
A task that cannot run for a reason in the data (a missing file, a tokenizer without a chat template) is recorded
under `errors` and the others still run; a model directory that cannot be loaded stops at once.
A reward model (a *ForSequenceClassification directory) gets the pairwise-accuracy tasks of `reward.py` instead.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from qwenflow.artifacts import sha256_path
from qwenflow.data import benchmarks as B
from qwenflow.recipe.evaluation import TASKS, EvalSpec
from qwenflow.tracking import stage_run

from .lm import HFModel, ModelDirError, check_model_dir, model_info
from .report import SCHEMA_VERSION, flat_metrics, log_to_mlflow, summary_plot, write_report
from .result import TaskResult

console = Console(stderr=True)

# quick: heldout 400 because the tiny recipe's gate metric (held-out exact match) needs n >= 400 for a standard
# error near 2.5 points.
SUITES: dict[str, dict[str, Any]] = {
    "quick": {
        "mmlu": 50,
        "hellaswag": 10,
        "truthfulqa_mc1": 10,
        "gsm8k": 5,
        "humaneval": 5,
        "perplexity": 16,
        "heldout": 400,
        "gsm8k_tokens": 64,
        "humaneval_tokens": 64,
        "ppl_len": 256,
        "lc_lengths": [0.25, 1.0, 1.5],
        "lc_depths": [0.5],
        "lc_samples": 1,
        "decontam_docs": 2000,
        "pairs": 200,
    },
    "full": {
        "mmlu": None,
        "hellaswag": None,
        "truthfulqa_mc1": None,
        "gsm8k": None,
        "humaneval": None,
        "perplexity": 200,
        "heldout": None,
        "gsm8k_tokens": 256,
        "humaneval_tokens": 384,
        "ppl_len": 1024,
        "lc_lengths": [0.25, 0.5, 1.0, 2.0, 4.0],
        "lc_depths": [0.0, 0.25, 0.5, 0.75, 1.0],
        "lc_samples": 4,
        "decontam_docs": None,
        "pairs": None,
    },
}


def is_reward_model(model_dir: Path) -> bool:
    if model_dir.is_file():
        return False
    arch = json.loads((model_dir / "config.json").read_text()).get("architectures") or []
    return any(a.endswith("ForSequenceClassification") for a in arch)


def evaluate(
    model_dir,
    out_dir,
    suite: str = "quick",
    recipe=None,
    data_dir=None,
    *,
    tasks: list[str] | None = None,
    limit: int | None = None,
    track: bool = True,
    label: str | None = None,
    hhh_dir=None,
) -> dict:
    t0 = time.time()
    model_dir, out_dir = check_model_dir(model_dir), Path(out_dir)
    data_dir = Path(data_dir) if data_dir else None
    if data_dir is not None and not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: no such data directory (the data stage's output, with eval/ and corpus/)")
    spec: EvalSpec = recipe.eval if recipe is not None else EvalSpec(suite=suite)
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; choose quick or full")
    S = SUITES[suite]
    limit = limit or spec.limit
    wanted = list(tasks or spec.tasks or TASKS)
    bad = set(wanted) - set(TASKS)
    if bad:
        raise ValueError(f"unknown task(s) {sorted(bad)}; choose from {', '.join(TASKS)}")
    out_dir.mkdir(parents=True, exist_ok=True)

    results: list[TaskResult] = []
    errors: dict[str, str] = {}
    skipped: dict[str, str] = {}

    def attempt(name, fn):
        console.print(f"[bold]eval[/] {name} ...", highlight=False)
        try:
            got = fn()
        except (ValueError, FileNotFoundError, KeyError) as e:  # data problems: record, go on
            if isinstance(e, ModelDirError) and "no chat_template" not in str(e):
                raise
            errors[name] = str(e)
            console.print(f"  [red]error[/] {e}", highlight=False)
            return
        for r in got if isinstance(got, list) else [got]:
            results.append(r)
            shown = ", ".join(f"{m} {v:.4g}" for m, v in r.metrics.items())
            console.print(f"  {r.task}: {shown} (n={r.n}, {r.seconds:.1f} s)", highlight=False)

    if is_reward_model(model_dir):
        # lazy: imports pandas, pyarrow (456 ms)
        from .reward import run_reward_eval

        console.print("[bold]eval[/] reward model: pairwise accuracy", highlight=False)
        got, skipped, errors, benches = run_reward_eval(
            model_dir, data_dir, limit or S["pairs"], spec.seed, hhh_dir, spec.batch_size
        )
        for r in got:
            results.append(r)
            console.print(
                f"  {r.task}: pairwise_accuracy {r.metrics['pairwise_accuracy']:.4g} (n={r.n})", highlight=False
            )
        for k, v in {**skipped, **errors}.items():
            console.print(f"  [yellow]{k}[/]: {v}", highlight=False)
        _decontam(results, benches, data_dir, spec.decontam_max_docs or S["decontam_docs"])
    else:
        lm = HFModel(model_dir, batch_size=spec.batch_size, attn_implementation=spec.attn_implementation)
        lim = lambda key: limit or S[key]  # noqa: E731
        # lazy: 26 ms to import, needed only here
        from .tasks import gsm8k, humaneval
        from .tasks import multiple_choice as mc

        benches = {}

        def bench(name):
            benches[name] = benches.get(name) or B.LOADERS[name]()
            return benches[name]

        if "mmlu" in wanted:
            attempt("mmlu", lambda: mc.run_mmlu(lm, lim("mmlu"), 5, spec.seed, bench("mmlu")))
        if "hellaswag" in wanted:
            attempt("hellaswag", lambda: mc.run_hellaswag(lm, lim("hellaswag"), spec.seed, bench("hellaswag")))
        if "truthfulqa_mc1" in wanted:
            attempt(
                "truthfulqa_mc1",
                lambda: mc.run_truthfulqa_mc1(lm, lim("truthfulqa_mc1"), spec.seed, bench("truthfulqa_mc1")),
            )
        if "gsm8k" in wanted:
            attempt("gsm8k", lambda: gsm8k.run_gsm8k(lm, lim("gsm8k"), 4, spec.seed, S["gsm8k_tokens"], bench("gsm8k")))
        if "humaneval" in wanted:
            n = spec.humaneval_samples if suite == "full" else 1
            attempt(
                "humaneval",
                lambda: humaneval.run_humaneval(
                    lm,
                    lim("humaneval"),
                    spec.seed,
                    n,
                    tuple(spec.humaneval_k),
                    spec.humaneval_temperature,
                    S["humaneval_tokens"],
                    bench("humaneval"),
                ),
            )
        if "perplexity" in wanted or "heldout" in wanted:
            if data_dir is None:
                for t in ("perplexity", "heldout"):
                    if t in wanted:
                        skipped[t] = "no --data directory: held-out text and tasks come from the data stage"
            else:
                # lazy: 23 ms to import, needed only here
                from .tasks.heldout import heldout_tasks, run_heldout
                from .tasks.perplexity import run_perplexity

                if "perplexity" in wanted:
                    attempt(
                        "perplexity", lambda: run_perplexity(lm, data_dir, lim("perplexity"), spec.seed, S["ppl_len"])
                    )
                if "heldout" in wanted:
                    files = heldout_tasks(data_dir)
                    if not files:
                        errors["heldout"] = f"{data_dir / 'eval'}: no <task>.parquet files"
                    for f in files:
                        attempt(f.stem, lambda f=f: run_heldout(lm, f, lim("heldout"), spec.seed))
        del lm
        if "long_context" in wanted:
            # lazy: 10 ms to import, needed only here
            from .longcontext import LongContextConfig, run_long_context

            lc = spec.long_context
            cfg = LongContextConfig(
                lengths=lc.lengths or S["lc_lengths"],
                depths=lc.depths or S["lc_depths"],
                samples=lc.samples or S["lc_samples"],
                settings=list(lc.settings),
                seed=spec.seed,
            )
            attempt(
                "long_context",
                lambda: run_long_context(
                    model_dir,
                    cfg,
                    out_dir,
                    lambda p, **kw: HFModel(
                        p, batch_size=spec.batch_size, attn_implementation=spec.attn_implementation, **kw
                    ),
                ),
            )
        _decontam(results, benches, data_dir, spec.decontam_max_docs or S["decontam_docs"])

    tasks_out = {r.task: r.to_dict() for r in results}
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "label": label or model_dir.name,
        "model": {**model_info(model_dir), "sha256": sha256_path(model_dir)},
        "suite": suite,
        "seed": spec.seed,
        "limit": limit,
        "recipe": getattr(recipe, "name", None),
        "data_dir": str(data_dir) if data_dir else None,
        "metrics": flat_metrics(tasks_out),
        "tasks": tasks_out,
        "skipped": skipped,
        "errors": errors,
        "seconds": round(time.time() - t0, 2),
    }
    summary_plot(report, out_dir / "summary.png")
    write_report(report, out_dir)
    if track:
        with stage_run(
            "eval", recipe, params={"eval_suite": suite, "eval_model": str(model_dir), "eval_limit": limit}
        ) as run:
            report["mlflow_run_id"] = run.info.run_id
            write_report(report, out_dir)
            log_to_mlflow(report, out_dir)
    console.print(f"[bold]report[/] {out_dir / 'report.json'} ({report['seconds']:.0f} s)", highlight=False)
    return report


def _decontam(results: list[TaskResult], benches: dict, data_dir, max_docs) -> None:
    # lazy: imports pandas, pyarrow (401 ms)
    from .decontam import overlap_counts

    names = [r.task for r in results if r.task in benches]
    if not names:
        return
    texts = {n: t for n, t in B.benchmark_texts_of(benches).items() if n in names}
    counts = overlap_counts(data_dir, texts, max_docs)
    for r in results:
        if r.task in counts:
            r.dataset["decontam"] = counts[r.task]
