"""The whole data stage for a small tiny recipe, its formats, and the contracts failing on broken datasets."""

import json
import shutil

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from qwenflow.artifacts import write_manifest
from qwenflow.cli.main import app
from qwenflow.data.contracts import DataContractError, validate_dataset
from qwenflow.data.prepare import prepare_data
from qwenflow.data.schemas import DATASETS
from qwenflow.recipe import load_recipe

SMALL = [
    "data.max_bytes_per_source=150000",
    "data.sft_examples=2000",
    "data.rl_prompts=300",
    "data.preference_pairs=200",
    "data.eval_examples=100",
]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    report = prepare_data(load_recipe("tiny", SMALL), out)
    return out, report


def test_prepare_writes_every_dataset_with_manifest_and_passing_contracts(prepared):
    out, report = prepared
    for kind, files in {
        "corpus": ["train", "val"],
        "sft": ["train"],
        "rl": ["prompts"],
        "preferences": ["train", "test"],
        "eval": ["arithmetic"],
    }.items():
        manifest = json.loads((out / kind / "manifest.json").read_text())
        assert manifest["validation"]["success"] is True, kind
        assert sorted(manifest["files"]) == sorted(f"{f}.parquet" for f in files)
        assert (out / "reports" / f"validation_{kind}.html").is_file()
    assert report["validation"] == {k: True for k in ("corpus", "sft", "rl", "preferences", "eval")}
    corpus = pd.read_parquet(out / "corpus" / "train.parquet")
    assert list(corpus.columns) == ["text", "source", "domain", "license"]
    assert set(corpus["domain"]) == {"code", "reference", "literature", "web", "math"}
    for d, share in report["mixture"]["after"].items():  # re-balanced to the recipe's mixture
        assert abs(share - report["mixture"]["effective_target"][d]) < 0.05
    assert sum(report["drops"].values()) > 0 and all(isinstance(v, int) for v in report["drops"].values())


def test_tiny_post_training_data_is_two_digit_sums_below_100_disjoint_from_eval(prepared):
    out, _ = prepared
    sft = pd.read_parquet(out / "sft" / "train.parquet")
    evals = pd.read_parquet(out / "eval" / "arithmetic.parquet")
    rl = pd.read_parquet(out / "rl" / "prompts.parquet")
    assert len(sft) == 2000 and set(sft["task"]) == {"arithmetic"}
    assert sft["messages"].map(lambda m: m[0]["content"]).is_unique  # 2,000 of the 3,140 training sums
    for msgs, ans in zip(sft["messages"], sft["answer"]):
        q, a = msgs[0]["content"], msgs[1]["content"]
        x, op, y = q.removeprefix("What is ").removesuffix("?").split()
        assert 10 <= int(x) <= 99 and 10 <= int(y) <= 99 and a == ans == str(eval(f"{x}{op}{y}"))
        assert op == "+" and len(a) == 2  # arithmetic_max_answer: 99, so every answer has two digits
    assert set(evals["answer"].str.len()) == {2}
    held = {p[0]["content"] for p in evals["prompt"]}
    assert len(held) == 100
    assert not held & {m[0]["content"] for m in sft["messages"]}
    assert not held & {p[0]["content"] for p in rl["prompt"]}
    prefs = pd.read_parquet(out / "preferences" / "train.parquet")
    assert all(c[0]["content"] != r[0]["content"] for c, r in zip(prefs["chosen"], prefs["rejected"]))


def _broken_copy(prepared, tmp_path, kind):
    src, _ = prepared
    dst = tmp_path / kind
    shutil.copytree(src / kind, dst)
    return dst


def test_conversations_with_broken_roles_fail_the_sft_contract_with_a_readable_report(prepared, tmp_path):
    d = _broken_copy(prepared, tmp_path, "sft")
    df = pd.read_parquet(d / "train.parquet")
    rows = df.to_dict("records")
    rows[3]["messages"] = [{"role": "assistant", "content": "85"}, {"role": "user", "content": "What is 47 + 38?"}]
    rows[7]["messages"] = [{"role": "user", "content": "hi"}, {"role": "robot", "content": "beep"}]
    pq.write_table(pa.Table.from_pylist(rows, schema=DATASETS["sft"].schema), d / "train.parquet")
    with pytest.raises(DataContractError) as e:
        validate_dataset("sft", d, tmp_path / "reports")
    msg = str(e.value)
    assert "expect_column_values_to_be_in_set(role_problem" in msg and "2 of 2000 rows" in msg
    assert "[3, 7]" in msg and "unknown role 'robot'" in msg
    report = json.loads((tmp_path / "reports" / "validation_sft.json").read_text())
    assert report["success"] is False and (tmp_path / "reports" / "validation_sft.html").is_file()


def test_missing_column_and_wrong_types_fail_the_corpus_contract(prepared, tmp_path):
    d = _broken_copy(prepared, tmp_path, "corpus")
    df = pd.read_parquet(d / "train.parquet")
    df.drop(columns=["license"]).to_parquet(d / "train.parquet")
    df.assign(text=range(len(df))).head(5).to_parquet(d / "val.parquet")
    with pytest.raises(DataContractError) as e:
        validate_dataset("corpus", d)
    assert "missing ['license']" in str(e.value.result.failures[0]["observed"])
    assert any(
        f["file"] == "val.parquet" and f["expectation"] == "expect_column_types" for f in e.value.result.failures
    )


def test_a_corpus_of_duplicates_fails_the_duplicate_rate_expectation(prepared, tmp_path):
    d = _broken_copy(prepared, tmp_path, "corpus")
    df = pd.read_parquet(d / "train.parquet")
    pd.concat([df.head(1)] * len(df), ignore_index=True).to_parquet(d / "train.parquet")
    with pytest.raises(DataContractError, match="proportion_of_unique_values"):
        validate_dataset("corpus", d)


def test_packed_tokens_contract_checks_length_and_vocab(tmp_path):
    ids = pa.array([[1, 2, 3, 4], [5, 6, 7, 4095], [1, 2, 3]], type=pa.list_(pa.int32()))
    pq.write_table(pa.table({"input_ids": ids}), tmp_path / "train.parquet")
    pq.write_table(
        pa.table({"input_ids": pa.array([[1, 2, 3, 4096]], type=pa.list_(pa.int32()))}), tmp_path / "val.parquet"
    )
    write_manifest(tmp_path, seq_len=4, vocab_size=4096, rows={"train": 3, "val": 1})
    with pytest.raises(DataContractError) as e:
        validate_dataset("packed", tmp_path)
    failed = {(f["file"], f["column"]) for f in e.value.result.failures}
    assert failed == {("train.parquet", "length"), ("val.parquet", "max_token_id")}
    write_manifest(tmp_path, seq_len=4, rows={"train": 3, "val": 1})  # no vocab_size: the caller supplies it
    with pytest.raises(DataContractError, match="max_token_id"):
        validate_dataset("packed", tmp_path, vocab_size=4000)


def test_preferences_with_chosen_equal_rejected_fail(prepared, tmp_path):
    d = _broken_copy(prepared, tmp_path, "preferences")
    rows = pd.read_parquet(d / "test.parquet").to_dict("records")
    rows[0]["rejected"] = rows[0]["chosen"]
    pq.write_table(pa.Table.from_pylist(rows, schema=DATASETS["preferences"].schema), d / "test.parquet")
    with pytest.raises(DataContractError, match="chosen_equals_rejected"):
        validate_dataset("preferences", d)


def test_cli_validate_prints_a_clean_error_and_sources_lists_everything(prepared, tmp_path):
    runner = CliRunner()
    good = runner.invoke(app, ["data", "validate", "rl", str(prepared[0] / "rl"), "--report-dir", str(tmp_path)])
    assert good.exit_code == 0, good.output
    d = _broken_copy(prepared, tmp_path, "rl")
    rows = pd.read_parquet(d / "prompts.parquet").to_dict("records")
    rows[0]["answer"] = ""
    pq.write_table(pa.Table.from_pylist(rows, schema=DATASETS["rl"].schema), d / "prompts.parquet")
    bad = runner.invoke(app, ["data", "validate", "rl", str(d)])
    assert bad.exit_code == 3 and "Traceback" not in bad.output
    assert "answer" in bad.output
    assert runner.invoke(app, ["data", "validate", "nonsense", str(d)]).exit_code == 2
    listing = runner.invoke(app, ["data", "sources"])
    assert listing.exit_code == 0 and "go_src" in listing.output and "math_synthetic" in listing.output
