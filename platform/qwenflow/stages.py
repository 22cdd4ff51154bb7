"""The pipeline's stages, declared once. Everything that lists stages derives from `STAGES`: the KFP components
(components/<name>.py, `qwenflow.components.COMPONENTS`), the pipeline's wiring and its on/off parameters
(pipelines/qwen25_recipe.py), start_run's switches (orchestration/start.py), the stage runner and its resume-cache
key (orchestration/stages.py, cache.py), step timeouts and retries (orchestration/policy.py), the CLI's stage
names (`qwenflow run --force`, `qwenflow train ...`), the memory plan's training stages, the datasets each stage
logs as MLflow inputs and the run summary's order.

One name per stage: the recipe section it is configured by (where it has one), the component's module and
function, the KFP task, the MLflow run (`qwenflow.stage` tag), the cache directory, `--force NAME` and the docs.
Two tools spell it with hyphens by their own rules, mechanically: KFP's component ids (`comp-long-context`) and
the CLI's commands (`qwenflow train long-context`, see `Stage.cli_name`); Kubernetes job names likewise.

Pure data with no qwenflow imports, so any layer may read it.
"""

from __future__ import annotations

from dataclasses import dataclass

MINUTE, HOUR, DAY = 60, 3600, 24 * 3600
DATASET_KINDS = ("corpus", "sft", "rl", "preferences", "eval")  # the prepared datasets (`qwenflow data prepare`)
TRAINING_TIMEOUT_S = 7 * DAY  # the largest recipes' pre-training


@dataclass(frozen=True)
class Stage:
    name: str
    doc: str  # one line: what it does (pipeline parameter help for switchable stages)
    sections: tuple[str, ...] = ()  # recipe sections its result depends on (resume-cache key)
    code: tuple[str, ...] = ()  # qwenflow packages whose source is part of the cache key
    switch: bool = False  # recipe section `name` has `enabled` (a pipeline parameter) and `init_from`
    trains: bool = False  # training: resumes from checkpoints, retries, may run as N processes or a TrainJob
    cacheable: bool = True  # False when the result depends on outside state (the registry's champion)
    passthrough: bool = True  # switched off, hands its input model on (the reward model has none to hand on)
    # Pipeline wiring: component input -> the stage whose main output feeds it; stages it only waits for.
    inputs: tuple[tuple[str, str], ...] = ()
    after: tuple[str, ...] = ()
    output: str | None = None  # the component's main output ("Output": its return value)
    gated: bool = False  # runs only when the quality gate passed
    resources: str | None = None  # recipe section whose `resources` the step gets (None: a small bookkeeping pod)
    gpus: bool = True  # False: the step gets those resources without their GPUs
    datasets: tuple[str, ...] = ()  # prepared datasets it reads (logged as MLflow run inputs)
    chat_model: bool = False  # its output is a causal LM that answers chat (logged as an MLflow ChatModel)
    timeout_s: int = 2 * HOUR  # default step timeout; `resources.timeout_s` in the recipe overrides it

    @property
    def resumable(self) -> bool:
        return self.trains

    @property
    def cli_name(self) -> str:
        """The name as a command-line word (`long_context` -> `long-context`), the convention typer applies."""
        return self.name.replace("_", "-")


_TRAIN_CODE = ("qwenflow.train", "qwenflow.models", "qwenflow.data.pack", "qwenflow.artifacts")
_POST_CODE = ("qwenflow.posttrain", "qwenflow.verifiers", "qwenflow.models", "qwenflow.artifacts")
_DATA = ("data", "prepare_data")


def _training(name: str, doc: str, sections: tuple[str, ...], code, model_from: str, output: str, **kw) -> Stage:
    return Stage(
        name,
        doc,
        sections,
        code,
        switch=True,
        trains=True,
        inputs=kw.pop("inputs", (_DATA, ("model", model_from))),
        output=output,
        resources=name,
        timeout_s=TRAINING_TIMEOUT_S,
        **kw,
    )


STAGES: dict[str, Stage] = {
    s.name: s
    for s in [
        Stage(
            "prepare_data",
            "Prepare the datasets: sources, cleaning, dedup, mixing, decontamination, post-training sets.",
            ("data",),
            ("qwenflow.data",),
            output="data",
            resources="data",
            timeout_s=12 * HOUR,
        ),
        Stage(
            "validate_data",
            "Check every prepared dataset against its Great Expectations contract.",
            (),
            ("qwenflow.data.contracts",),
            inputs=(_DATA,),
            resources="data",
            datasets=DATASET_KINDS,
        ),
        Stage(
            "tokenizer",
            "Build the tokenizer (the real Qwen2.5 vocabulary, or BPE trained on the corpus).",
            ("tokenizer",),
            ("qwenflow.tokenizer",),
            inputs=(_DATA,),
            after=("validate_data",),
            output="tokenizer_dir",
            resources="data",
            datasets=("corpus",),
        ),
        _training(
            "pretrain",
            "Run pre-training (off: set pretrain.init_from to start from an existing model).",
            ("model", "pretrain"),
            _TRAIN_CODE,
            "",
            "model",
            inputs=(_DATA, ("tokenizer_dir", "tokenizer")),
            datasets=("corpus",),
            chat_model=True,
        ),
        _training(
            "long_context",
            "Run long-context extension.",
            ("long_context",),
            _TRAIN_CODE,
            "pretrain",
            "long_model",
            datasets=("corpus",),
            chat_model=True,
        ),
        _training(
            "sft",
            "Run supervised fine-tuning.",
            ("sft",),
            _POST_CODE,
            "long_context",
            "sft_model",
            datasets=("sft", "eval"),
            chat_model=True,
        ),
        _training(
            "reward",
            "Train the reward model for DPO's sampling and GRPO.",
            ("reward",),
            _POST_CODE,
            "sft",
            "reward_model",
            passthrough=False,
            datasets=("preferences",),
        ),
        _training(
            "dpo",
            "Run DPO with the Online Merging Optimizer.",
            ("dpo",),
            _POST_CODE,
            "sft",
            "dpo_model",
            inputs=(_DATA, ("model", "sft"), ("reward_model", "reward")),
            datasets=("rl", "preferences", "eval"),
            chat_model=True,
        ),
        _training(
            "grpo",
            "Run GRPO.",
            ("grpo",),
            _POST_CODE,
            "dpo",
            "grpo_model",
            inputs=(_DATA, ("model", "dpo"), ("reward_model", "reward")),
            datasets=("rl", "eval"),
            chat_model=True,
        ),
        Stage(
            "eval",
            "Evaluate the final model on the recipe's suite (held-out tasks and benchmarks).",
            ("eval",),
            ("qwenflow.eval", "qwenflow.verifiers"),
            inputs=(_DATA, ("model", "grpo")),
            output="report",
            resources="eval",
            datasets=("eval",),
            timeout_s=24 * HOUR,
        ),
        Stage(
            "gate",
            "Compare the evaluation with the recipe's gates and the current champion.",
            ("eval", "deploy"),
            ("qwenflow.eval",),
            cacheable=False,
            inputs=(("report", "eval"),),
            output="Output",
            timeout_s=15 * MINUTE,
        ),
        Stage(
            "register",
            "Register the final model in the MLflow registry.",
            ("deploy", "tracking"),
            ("qwenflow.eval",),
            inputs=(("model", "grpo"), ("report", "eval")),
            output="Output",
            gated=True,
        ),
        Stage(
            "build_bento",
            "Build the BentoML Bento with the registered model inside.",
            ("deploy",),
            ("qwenflow.deploy", "qwenflow.serving"),
            inputs=(("model_uri", "register"),),
            output="Output",
            gated=True,
            resources="deploy",
            gpus=False,  # building copies and hashes the weights (~145 GB for 72B): CPU work
        ),
        Stage(
            "deploy",
            "Write the release (Helm values) when the gate passes; registration and the Bento follow the gate.",
            ("deploy",),
            ("qwenflow.deploy",),
            switch=True,
            inputs=(("model_uri", "register"), ("bento", "build_bento")),
            gated=True,
            timeout_s=15 * MINUTE,
        ),
    ]
}

# The pipeline's bookkeeping steps around the stages (components/start_run.py, finish_run.py): no stage function.
START, FINISH = "start_run", "finish_run"
STEP_TIMEOUT_S = {START: 15 * MINUTE, FINISH: 15 * MINUTE, **{s.name: s.timeout_s for s in STAGES.values()}}
STEPS = (START, *STAGES, FINISH)  # pipeline order
SWITCHES = tuple(s.name for s in STAGES.values() if s.switch)  # pipeline parameters and start_run's arguments
TRAINING = tuple(s.name for s in STAGES.values() if s.trains)  # also the recipe sections with micro batches


def stage(name: str) -> Stage:
    """The stage called `name` (the CLI spelling `long-context` is accepted); a clear error names the stages."""
    key = name.replace("-", "_")
    if key not in STAGES:
        raise ValueError(f"no stage {name!r}; stages: {', '.join(STAGES)}")
    return STAGES[key]
