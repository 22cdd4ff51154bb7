"""Great Expectations contracts, one suite per dataset kind, run before every stage that reads a dataset.

GX checks flat columns, so nested checks (role order in conversations, token ids in a list, chosen != rejected)
become derived per-row columns first; GX then validates those like any other column and reports the failing rows.
A failure raises DataContractError whose message names each failed expectation, how many rows, and examples;
the full report is saved as JSON + HTML and logged to MLflow when a run is active.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from qwenflow.artifacts import MANIFEST, atomic_write_text, sha256_file
from qwenflow.recipe.contracts import ContractSpec
from qwenflow.verifiers.format import clean_format

from .chat import conversation_problem
from .schemas import DATASETS

MIXTURE_TOLERANCE = 0.05  # absolute share of bytes per domain


class DataContractError(ValueError):
    """A dataset broke its contract; str() is the readable report, .result the full one."""

    def __init__(self, message: str, result: ValidationResult):
        super().__init__(message)
        self.result = result


@dataclass
class ValidationResult:
    kind: str
    directory: str
    success: bool
    rows: dict[str, int] = field(default_factory=dict)
    checks: list[dict] = field(default_factory=list)  # one per expectation and file
    report_json: str | None = None
    report_html: str | None = None

    @property
    def failures(self) -> list[dict]:
        return [c for c in self.checks if not c["success"]]

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        if self.success:
            return (
                f"{self.kind} dataset {self.directory}: all {len(self.checks)} expectations passed "
                f"({sum(self.rows.values())} rows)"
            )
        lines = [f"{self.kind} dataset {self.directory} broke {len(self.failures)} of {len(self.checks)} expectations:"]
        for c in self.failures:
            count = (
                f"{c['unexpected_count']} of {c['rows']} rows"
                if c.get("unexpected_count") is not None
                else f"observed {c.get('observed')}"
            )
            bounds = ", " + c["bounds"] if c["bounds"] else ""
            lines.append(f"  - {c['file']}: {c['expectation']}({c['column']}{bounds}): {count}")
            if c.get("examples"):
                lines.append(f"      examples (rows {c.get('rows_failing', [])[:5]}): {c['examples'][:3]}")
        if self.report_html:
            lines.append(f"  full report: {self.report_html}")
        return "\n".join(lines)


# ---- derived columns: nested structure made flat for GX ------------------------------------------------------


def _messages(x) -> list[dict]:
    if x is None:
        return []
    return [dict(m) if isinstance(m, dict) else m for m in list(x)]


def _text_of(msgs) -> str:
    return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in _messages(msgs) if isinstance(m, dict))


def _norm(text) -> str:
    """What "the same text" means for duplicates and chosen == rejected: NFKC, whitespace collapsed, case folded."""
    if not isinstance(text, str):
        return ""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().casefold()


def _misordered(criterion, chosen, rejected) -> bool:
    """A pair whose own criterion says rejected is the better answer (chosen/rejected swapped). Checkable by
    program for `concise` (chosen is the shorter) and `format` (chosen is the clean one); not `correct`/`on_topic`."""

    c, r = _text_of(chosen), _text_of(rejected)
    if criterion == "concise":
        return len(_norm(c)) >= len(_norm(r))
    if criterion == "format":

        def last(ms) -> str:
            return (_messages(ms)[-1].get("content") if _messages(ms) else "") or ""

        return not clean_format(last(chosen)) or clean_format(last(rejected))
    return False


def _prompt_problem(msgs) -> str:
    """A prompt is a conversation that ends where the model answers next."""
    return conversation_problem(_messages(msgs), prompt=True) or ""


def _derive(kind: str, df: pd.DataFrame) -> pd.DataFrame:
    d = pd.DataFrame(index=df.index)
    if kind == "corpus":
        d["text"] = df["text"]
        for c in ("source", "domain", "license"):
            d[c] = df[c]
        d["blank"] = df["text"].map(lambda t: not isinstance(t, str) or not t.strip())
        d["duplicate"] = df["text"].map(_norm).duplicated()
    elif kind == "packed":
        d["length"] = df["input_ids"].map(lambda x: -1 if x is None else len(x))
        d["min_token_id"] = df["input_ids"].map(lambda x: min(x) if x is not None and len(x) else -1)
        d["max_token_id"] = df["input_ids"].map(lambda x: max(x) if x is not None and len(x) else -1)
    elif kind == "sft":
        d["role_problem"] = df["messages"].map(lambda m: conversation_problem(_messages(m)) or "")
        d["conversation"] = df["messages"].map(lambda m: _norm(_text_of(m)))
        d["task"] = df["task"]
        d["answer"] = df["answer"]
    elif kind == "preferences":
        d["prompt_problem"] = df["prompt"].map(_prompt_problem)
        d["chosen_problem"] = [
            conversation_problem(_messages(p) + _messages(c)) or "" for p, c in zip(df["prompt"], df["chosen"])
        ]
        d["rejected_problem"] = [
            conversation_problem(_messages(p) + _messages(r)) or "" for p, r in zip(df["prompt"], df["rejected"])
        ]
        d["chosen_equals_rejected"] = [
            _norm(_text_of(c)) == _norm(_text_of(r)) for c, r in zip(df["chosen"], df["rejected"])
        ]
        d["pair"] = [
            _norm(_text_of(p) + "\x00" + _text_of(c) + "\x00" + _text_of(r))
            for p, c, r in zip(df["prompt"], df["chosen"], df["rejected"])
        ]
        if "criterion" in df:
            d["misordered"] = [_misordered(k, c, r) for k, c, r in zip(df["criterion"], df["chosen"], df["rejected"])]
    elif kind in ("rl", "eval"):
        d["prompt_problem"] = df["prompt"].map(_prompt_problem)
        d["prompt_text"] = df["prompt"].map(lambda m: _norm(_text_of(m)))
        d["task"] = df["task"]
        d["answer"] = df["answer"].map(lambda a: a.strip() if isinstance(a, str) else a)
    return d


def _expectations(kind: str, manifest: dict, file: str, contract: ContractSpec, columns=()):
    # lazy: imports great_expectations, scipy, numpy (seconds to import)
    import great_expectations as gx

    E = gx.expectations
    if kind == "corpus":
        domains = sorted((manifest.get("mixture") or {}).get("target", {}) or []) or None
        out: list[Any] = [E.ExpectColumnValuesToNotBeNull(column=c) for c in ("text", "source", "domain", "license")]
        out.append(E.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1))
        out.append(E.ExpectColumnValuesToBeInSet(column="blank", value_set=[False], mostly=1 - contract.max_blank_rate))
        if domains:
            out.append(E.ExpectColumnValuesToBeInSet(column="domain", value_set=domains))
        # Resampling repeats scarce domains, so some duplicates are by design; a corpus of copies is not.
        max_up = float(manifest.get("max_upsample", 4.0))
        out.append(E.ExpectColumnProportionOfUniqueValuesToBeBetween(column="text", min_value=round(0.5 / max_up, 3)))
        return out
    if kind == "packed":
        seq_len, vocab = manifest.get("seq_len"), manifest.get("vocab_size")
        out = [E.ExpectColumnValuesToBeBetween(column="min_token_id", min_value=0)]
        if seq_len:
            out.append(E.ExpectColumnValuesToBeBetween(column="length", min_value=int(seq_len), max_value=int(seq_len)))
        else:
            out.append(E.ExpectColumnValuesToBeBetween(column="length", min_value=1))
        if vocab:
            out.append(E.ExpectColumnValuesToBeBetween(column="max_token_id", max_value=int(vocab) - 1))
        return out
    if kind == "sft":
        return [
            E.ExpectColumnValuesToBeInSet(column="role_problem", value_set=[""]),
            E.ExpectColumnValuesToNotBeNull(column="task"),
            E.ExpectColumnValuesToNotBeNull(column="answer"),
            E.ExpectColumnProportionOfUniqueValuesToBeBetween(
                column="conversation", min_value=round(1 - contract.sft_max_duplicate_rate, 6)
            ),
        ]
    if kind == "preferences":
        return [
            E.ExpectColumnValuesToBeInSet(column="prompt_problem", value_set=[""]),
            E.ExpectColumnValuesToBeInSet(column="chosen_problem", value_set=[""]),
            E.ExpectColumnValuesToBeInSet(column="rejected_problem", value_set=[""]),
            E.ExpectColumnValuesToBeInSet(column="chosen_equals_rejected", value_set=[False]),
            E.ExpectColumnProportionOfUniqueValuesToBeBetween(
                column="pair", min_value=round(1 - contract.preferences_max_duplicate_rate, 6)
            ),
        ] + ([E.ExpectColumnValuesToBeInSet(column="misordered", value_set=[False])] if "misordered" in columns else [])
    if kind in ("rl", "eval"):
        out = [
            E.ExpectColumnValuesToBeInSet(column="prompt_problem", value_set=[""]),
            E.ExpectColumnValuesToNotBeNull(column="task"),
            E.ExpectColumnValuesToNotBeNull(column="answer"),
            E.ExpectColumnValueLengthsToBeBetween(column="answer", min_value=1),
        ]
        if kind == "eval":  # a held-out set with repeated problems over-weights them
            out.append(E.ExpectColumnValuesToBeUnique(column="prompt_text"))
        else:
            out.append(
                E.ExpectColumnProportionOfUniqueValuesToBeBetween(
                    column="prompt_text", min_value=round(1 - contract.rl_max_duplicate_rate, 6)
                )
            )
        return out
    raise ValueError(kind)


def _run_gx(frame: pd.DataFrame, expectations, name: str) -> list[dict]:

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    # lazy: imports great_expectations, scipy, numpy (seconds to import)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    try:
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # older/newer GX without the switch: bars are cosmetic
        pass
    batch = (
        ctx.data_sources.add_pandas("qwenflow").add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
    )
    suite = ctx.suites.add(gx.ExpectationSuite(name=f"{name}_suite", expectations=list(expectations)))
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=f"{name}_validation", data=batch, suite=suite))
    res = vd.run(
        batch_parameters={"dataframe": frame},
        result_format={"result_format": "COMPLETE", "partial_unexpected_count": 5},
    )
    out = []
    for r in res.results:
        cfg = r.expectation_config
        assert cfg is not None  # every result of a suite run carries its expectation's configuration
        kw = {k: v for k, v in cfg.kwargs.items() if k not in ("batch_id", "column")}
        result = r.result or {}
        idx = list(result.get("unexpected_index_list") or [])[:20]
        out.append(
            {
                "expectation": cfg.type,
                "column": cfg.kwargs.get("column", ""),
                "bounds": ", ".join(f"{k}={v}" for k, v in kw.items() if k != "result_format"),
                "kwargs": {k: v for k, v in cfg.kwargs.items() if k not in ("batch_id", "result_format")},
                "success": bool(r.success),
                "rows": len(frame),
                "unexpected_count": result.get("unexpected_count"),
                "observed": result.get("observed_value"),
                "rows_failing": [int(i) for i in idx if isinstance(i, (int,))],
                "examples": [str(x)[:200] for x in (result.get("partial_unexpected_list") or [])[:5]],
                "error": (r.exception_info or {}).get("exception_message")
                if r.exception_info and r.exception_info.get("raised_exception")
                else None,
            }
        )
    return out


def _check(file: str, expectation: str, column: str, ok: bool, rows: int, observed=None, bounds: str = "") -> dict:
    return {
        "file": file,
        "expectation": expectation,
        "column": column,
        "bounds": bounds,
        "success": ok,
        "rows": rows,
        "unexpected_count": None,
        "observed": observed,
        "rows_failing": [],
        "examples": [],
    }


def _schema_checks(kind: str, path: Path, manifest: dict) -> tuple[list[dict], pd.DataFrame | None]:

    table = pq.read_table(path)
    names = table.schema.names
    missing = [c for c in DATASETS[kind].columns if c not in names]
    checks = [
        _check(
            path.name,
            "expect_table_columns_to_include",
            ",".join(DATASETS[kind].columns),
            not missing,
            table.num_rows,
            observed=f"columns {names}" + (f", missing {missing}" if missing else ""),
        )
    ]
    checks.append(
        _check(
            path.name,
            "expect_table_row_count_to_be_at_least",
            "",
            table.num_rows > 0,
            table.num_rows,
            observed=table.num_rows,
            bounds="min_value=1",
        )
    )
    if missing or table.num_rows == 0:
        return checks, None
    types_ok, observed = True, {}
    for c in DATASETS[kind].columns:
        t = table.schema.field(c).type
        observed[c] = str(t)
        if kind == "corpus" and not pa.types.is_string(t) and not pa.types.is_large_string(t):
            types_ok = False
        if kind == "packed" and not (pa.types.is_list(t) and t.value_type == pa.int32()):
            types_ok = False
        if c in ("messages", "prompt", "chosen", "rejected") and not pa.types.is_list(t):
            types_ok = False
        if c in ("task", "answer") and not pa.types.is_string(t):
            types_ok = False
    checks.append(_check(path.name, "expect_column_types", "", types_ok, table.num_rows, observed=observed))
    if not types_ok:
        return checks, None
    keep = [*DATASETS[kind].columns, *(c for c in DATASETS[kind].optional if c in names)]
    return checks, table.select(keep).to_pandas()


def _manifest_rows(manifest: dict, stem: str):
    """Rows the manifest records for one file: `rows: {stem: n}` (data stage) or `splits: {stem: {rows: n}}` (pack)."""
    rows = manifest.get("rows")
    if isinstance(rows, dict) and stem in rows:
        return rows[stem]
    split = (manifest.get("splits") or {}).get(stem)
    return split.get("rows") if isinstance(split, dict) else None


def _manifest_checks(directory: Path, files: list[Path], manifest: dict, rows: dict[str, int]) -> list[dict]:
    """Every Parquet file is the one the manifest describes: its sha256 and row count, and no file missing."""
    entry = manifest.get("files")
    listed: dict = entry if isinstance(entry, dict) else {}
    out = []
    for path in files:
        if not path.is_file():
            continue
        want, got = listed.get(path.name), sha256_file(path)
        out.append(
            _check(
                path.name,
                "expect_sha256_to_match_manifest",
                "",
                want == got,
                rows.get(path.name, 0),
                observed=f"sha256 {got[:12]}..., manifest says {want[:12] + '...' if want else 'nothing'}"
                + ("" if want == got else "; the file changed after the manifest was written"),
            )
        )
        if path.name in rows:
            n = _manifest_rows(manifest, path.stem)
            out.append(
                _check(
                    path.name,
                    "expect_row_count_to_match_manifest",
                    "",
                    n == rows[path.name],
                    rows[path.name],
                    observed=f"{rows[path.name]} rows, manifest says {n}",
                )
            )
    gone = sorted(set(listed) - {p.name for p in files if p.is_file()})
    if gone:
        out.append(_check("", "expect_manifest_files_to_exist", "", False, 0, observed=f"listed but missing: {gone}"))
    return out


def _duplicate_check(d: pd.DataFrame, manifest: dict, file: str, contract: ContractSpec) -> list[dict]:
    """Corpus duplicates per domain. Re-balancing repeats a scarce domain's documents, at most max_upsample times
    (so up to 1 - 1/max_upsample of its rows), but never grows the corpus, so at least one domain is cut rather
    than repeated (qwenflow.data.domains.resample_plan): repeats in every domain, beyond the upsampling bound, or in
    val are copies. The data stage removes natural duplicates, so `corpus_max_duplicate_rate` is slack only."""
    max_up = max(float(manifest.get("max_upsample", 1.0)), 1.0)
    slack = contract.corpus_max_duplicate_rate
    train = _split(file) == "train"
    rates = {str(k): (float(v.mean()), len(v)) for k, v in d.groupby("domain")["duplicate"]}
    verdicts = []
    for domain, (rate, n) in rates.items():
        allowed = (1 - 1 / max_up if train else 0.0) + slack
        verdicts.append(
            ""
            if rate <= allowed
            else f"{domain}: {rate:.0%} of {n} rows repeat one, {allowed:.0%} "
            "allowed" + (f" (upsampling at most {max_up:g}x)" if train else " (val is never upsampled)")
        )
    if train and rates and min(r for r, _ in rates.values()) > slack:
        verdicts.append(
            f"every domain repeats rows (least: {min(r for r, _ in rates.values()):.0%}), but "
            "re-balancing cuts at least one domain: rows were copied"
        )
    # lazy: imports great_expectations, scipy, numpy (seconds to import)
    import great_expectations as gx

    return _run_gx(
        pd.DataFrame({"verdict": verdicts or [""]}),
        [gx.expectations.ExpectColumnValuesToBeInSet(column="verdict", value_set=[""])],
        "duplicates",
    )


def _mixture_check(df: pd.DataFrame, manifest: dict, file: str) -> list[dict]:
    target = ((manifest.get("mixture") or {}).get("effective_target")) or {}
    if not target or _split(file) != "train":
        return []
    sizes = df.groupby("domain")["text"].apply(lambda s: int(s.str.len().sum()))
    total = sizes.sum() or 1
    frame = pd.DataFrame({"domain": list(target), "target": list(target.values())})
    frame["share"] = frame["domain"].map(lambda d: float(sizes.get(d, 0)) / total)
    frame["abs_error"] = (frame["share"] - frame["target"]).abs()
    # lazy: imports great_expectations, scipy, numpy (seconds to import)
    import great_expectations as gx

    return _run_gx(
        frame,
        [gx.expectations.ExpectColumnValuesToBeBetween(column="abs_error", max_value=MIXTURE_TOLERANCE)],
        "mixture",
    )


def _dataset_files(kind: str, directory: Path) -> list[Path]:
    """The Parquet files of each split: `train.parquet`, or its shards `train-00000.parquet`, ... (pack writes
    shards); a split with neither is reported missing under its plain name."""
    names = DATASETS[kind].files
    if names is None:
        return sorted(directory.glob("*.parquet"))
    out: list[Path] = []
    for name in names:
        out += sorted(directory.glob(f"{name.removesuffix('.parquet')}-*.parquet")) or [directory / name]
    return out


def _split(file: str) -> str:
    return file.removesuffix(".parquet").split("-")[0]


def _read_manifest(directory: Path) -> tuple[dict, dict | None]:
    """(manifest, None) or ({}, a failed check saying why there is no usable manifest)."""
    path = directory / MANIFEST
    if not path.is_file():
        return {}, _check(
            "",
            "expect_manifest",
            MANIFEST,
            False,
            0,
            observed=f"no {MANIFEST} in {directory}: row counts, digests, the mixture and the vocabulary "
            "cannot be checked; write datasets with `qwenflow data prepare` (or pack)",
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError(f"a JSON object is expected, not {type(manifest).__name__}")
    except (ValueError, UnicodeDecodeError) as e:
        return {}, _check(
            "", "expect_manifest", MANIFEST, False, 0, observed=f"{path} is not valid JSON: {str(e)[:200]}"
        )
    return manifest, None


def validate_dataset(
    kind: str,
    directory: str | Path,
    report_dir: str | Path | None = None,
    raise_on_failure: bool = True,
    *,
    seq_len: int | None = None,
    vocab_size: int | None = None,
    contract: ContractSpec | None = None,
) -> ValidationResult:
    """Run the contract of `kind` over a dataset directory; save the report; raise DataContractError on failure.

    The manifest must be there and describe every file (sha256, rows). Packed tokens are checked against
    `seq_len` / `vocab_size` given here or found in the manifest (pack records the tokenizer's size); without a
    vocabulary size the packed contract fails. Thresholds come from `contract` (the recipe's data.contracts)."""
    if kind not in DATASETS:
        raise ValueError(f"unknown dataset kind {kind!r}; choose one of {', '.join(DATASETS)}")
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such dataset directory")
    contract = contract or ContractSpec()
    manifest, no_manifest = _read_manifest(directory)
    manifest.update({k: v for k, v in (("seq_len", seq_len), ("vocab_size", vocab_size)) if v is not None})
    files = _dataset_files(kind, directory)
    result = ValidationResult(kind=kind, directory=str(directory), success=True)
    if kind == "packed" and not manifest.get("vocab_size"):
        result.checks.append(
            _check(
                "",
                "expect_vocab_size",
                "max_token_id",
                False,
                0,
                observed="the manifest records no vocab_size, so token ids cannot be checked "
                "against the tokenizer; re-pack (pack records it) or pass vocab_size",
            )
        )
    if kind == "corpus" and not no_manifest and not (manifest.get("mixture") or {}).get("target"):
        result.checks.append(
            _check(
                "",
                "expect_manifest_mixture",
                "domain",
                False,
                0,
                observed="the manifest records no mixture target: domains cannot be checked",
            )
        )
    if not files:
        result.checks.append(_check("", "expect_parquet_files", "", False, 0, observed=f"no *.parquet in {directory}"))
    for path in files:
        if not path.is_file():
            result.checks.append(_check(path.name, "expect_file_to_exist", "", False, 0, observed=f"{path} is missing"))
            continue
        try:
            checks, df = _schema_checks(kind, path, manifest)
        except Exception as e:  # unreadable Parquet is a contract failure, not a crash
            result.checks.append(_check(path.name, "expect_readable_parquet", "", False, 0, observed=str(e)[:300]))
            continue
        result.checks += checks
        if df is None:
            continue
        result.rows[path.name] = len(df)
        derived = _derive(kind, df)
        extra = _duplicate_check(derived, manifest, path.name, contract) if kind == "corpus" else []
        if kind == "corpus":
            extra += _mixture_check(df, manifest, path.name)
        for c in (
            _run_gx(derived, _expectations(kind, manifest, path.name, contract, derived.columns), f"{kind}_{path.stem}")
            + extra
        ):
            c["file"] = path.name
            result.checks.append(c)
    result.checks += [no_manifest] if no_manifest else _manifest_checks(directory, files, manifest, result.rows)
    return _finish(result, report_dir, raise_on_failure)


def _finish(result: ValidationResult, report_dir, raise_on_failure: bool) -> ValidationResult:
    """The verdict over every check, the saved report, and the error when asked to raise."""
    result.success = all(c["success"] for c in result.checks)
    if report_dir is not None:
        _save_report(result, Path(report_dir))
    if not result.success and raise_on_failure:
        raise DataContractError(result.summary(), result)
    return result


def _save_report(result: ValidationResult, report_dir: Path) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    stem = f"validation_{result.kind}"
    result.report_json = str(report_dir / f"{stem}.json")
    result.report_html = str(report_dir / f"{stem}.html")
    atomic_write_text(result.report_json, json.dumps(result.to_dict(), indent=2, default=str))
    rows = "".join(
        f"<tr class={'ok' if c['success'] else 'bad'}><td>{html.escape(c['file'])}</td>"
        f"<td>{html.escape(c['expectation'])}</td><td>{html.escape(str(c['column']))}</td>"
        f"<td>{html.escape(c['bounds'])}</td><td>{'pass' if c['success'] else 'FAIL'}</td>"
        f"<td>{'' if c['unexpected_count'] is None else c['unexpected_count']} / {c['rows']}</td>"
        f"<td>{html.escape(str(c['observed'])[:200]) if c['observed'] is not None else ''}</td>"
        f"<td>{html.escape('; '.join(c['examples'][:3]))} {c['rows_failing'][:10] or ''}</td></tr>"
        for c in result.checks
    )
    page = (
        f"<html><head><meta charset='utf-8'><title>{stem}</title><style>body{{font-family:sans-serif}}"
        "td,th{border:1px solid #ccc;padding:4px;font-size:13px}.bad{background:#fdd}.ok{background:#efe}"
        "</style></head>"
        f"<body><h2>{html.escape(result.kind)} dataset: {'PASSED' if result.success else 'FAILED'}</h2>"
        f"<p>{html.escape(result.directory)}; rows {result.rows}</p><table><tr><th>file</th><th>expectation</th>"
        "<th>column</th><th>bounds</th><th>result</th><th>unexpected</th><th>observed</th><th>examples (rows)</th>"
        "</tr>"
        f"{rows}</table></body></html>"
    )
    atomic_write_text(result.report_html, page)
    import mlflow  # 3.7 s to import: only once a report is written

    if mlflow.active_run() is not None:
        mlflow.log_artifact(result.report_json, f"data_validation/{result.kind}")
        mlflow.log_artifact(result.report_html, f"data_validation/{result.kind}")
        mlflow.log_metric(f"data_contract_{result.kind}_passed", float(result.success))
