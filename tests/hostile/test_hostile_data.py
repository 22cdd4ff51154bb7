"""Corrupted datasets: `qwenflow data validate` exits non-zero with one line naming the broken check, for each
corruption that used to pass (a lying or missing manifest, ids outside the vocabulary, blank text, copies,
chosen == rejected up to whitespace, swapped pairs).

The datasets come from the real data stage (a small tiny recipe). Semantic corruptions also rewrite the
manifest to match, as a careless tool would, so the content check itself is what must catch them. The CLI calls
run side by side (each loads Great Expectations for seconds), then every case is asserted on its own."""

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from qwenflow.artifacts import sha256_file
from qwenflow.data.prepare import prepare_data
from qwenflow.data.schemas import DATASETS
from qwenflow.recipe import load_recipe

SMALL = [
    "data.max_bytes_per_source=60000",
    "data.sft_examples=300",
    "data.rl_prompts=60",
    "data.preference_pairs=80",
    "data.eval_examples=30",
    "data.decontaminate=false",
]


def _rows(df: pd.DataFrame) -> list[dict]:
    return [
        {k: (list(map(dict, v)) if hasattr(v, "__len__") and not isinstance(v, str) else v) for k, v in r.items()}
        for r in df.to_dict("records")
    ]


def _rewrite(d, name: str, rows: list[dict], schema, manifest_too: bool = True) -> None:
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), d / name)
    if manifest_too:  # a tool that rewrites the manifest to match: only the content check can object
        m = json.loads((d / "manifest.json").read_text())
        m["files"][name] = sha256_file(d / name)
        m["rows"][name.removesuffix(".parquet")] = len(rows)
        (d / "manifest.json").write_text(json.dumps(m))


def _pref_schema(df):
    return pa.schema([f for f in DATASETS["preferences"].schema if f.name in df.columns])


def corrupt(src, tmp):
    """kind, directory and the words the error line must carry, per corruption."""
    cases = {}

    def copy(kind, name):
        d = tmp / name
        shutil.copytree(src / kind, d)
        return d

    d = copy("corpus", "lying_rows")
    m = json.loads((d / "manifest.json").read_text())
    m["rows"]["train"] += 7
    (d / "manifest.json").write_text(json.dumps(m))
    cases["lying_rows"] = ("corpus", d, ["expect_row_count_to_match_manifest", "manifest says"])

    d = copy("sft", "lying_sha256")
    df = pd.read_parquet(d / "train.parquet")
    _rewrite(d, "train.parquet", _rows(df.iloc[::-1]), DATASETS["sft"].schema, manifest_too=False)
    cases["lying_sha256"] = ("sft", d, ["expect_sha256_to_match_manifest", "changed after the manifest"])

    d = copy("corpus", "no_manifest")
    (d / "manifest.json").unlink()
    cases["no_manifest"] = ("corpus", d, ["expect_manifest", "no manifest.json"])

    d = copy("rl", "bad_manifest")
    (d / "manifest.json").write_text("{not json")
    cases["bad_manifest"] = ("rl", d, ["expect_manifest", "not valid JSON"])

    d = copy("corpus", "whitespace_text")
    rows = _rows(pd.read_parquet(d / "train.parquet"))
    for r in rows[:5]:
        r["text"] = " \n\t  "
    _rewrite(d, "train.parquet", rows, DATASETS["corpus"].schema)
    cases["whitespace_text"] = ("corpus", d, ["(blank", "5 of"])

    d = copy("corpus", "every_row_twice")
    rows = _rows(pd.read_parquet(d / "train.parquet"))
    _rewrite(d, "train.parquet", rows + rows, DATASETS["corpus"].schema)
    cases["every_row_twice"] = ("corpus", d, ["every domain repeats rows", "copied"])

    d = copy("sft", "sft_duplicates")
    rows = _rows(pd.read_parquet(d / "train.parquet"))
    n = len(rows)
    _rewrite(d, "train.parquet", rows[: n - int(0.65 * n)] + [rows[0]] * int(0.65 * n), DATASETS["sft"].schema)
    cases["sft_duplicates"] = ("sft", d, ["proportion_of_unique_values", "conversation"])

    d = copy("preferences", "chosen_is_rejected")
    df = pd.read_parquet(d / "train.parquet")
    rows = _rows(df)
    for r in rows[:3]:  # the same answer, spaced and cased differently
        r["rejected"] = [{**m, "content": "  " + m["content"].upper().replace(" ", "   ") + "\n"} for m in r["chosen"]]
    _rewrite(d, "train.parquet", rows, _pref_schema(df))
    cases["chosen_is_rejected"] = ("preferences", d, ["chosen_equals_rejected", "3 of"])

    d = copy("preferences", "swapped_pairs")
    df = pd.read_parquet(d / "train.parquet")
    rows = [{**r, "chosen": r["rejected"], "rejected": r["chosen"]} for r in _rows(df)]
    _rewrite(d, "train.parquet", rows, _pref_schema(df))
    cases["swapped_pairs"] = ("preferences", d, ["misordered"])

    d = tmp / "packed_out_of_vocab"
    d.mkdir()
    for split, ids in (("train", [[1, 2, 3, 4], [5, 6, 7, 8]]), ("val", [[9, 10, 11, 1024]])):
        pq.write_table(pa.table({"input_ids": pa.array(ids, type=pa.list_(pa.int32()))}), d / f"{split}-00000.parquet")
    (d / "manifest.json").write_text(
        json.dumps(
            {
                "kind": "packed",
                "seq_len": 4,
                "vocab_size": 1024,
                "rows": {"train-00000": 2, "val-00000": 1},
                "files": {p.name: sha256_file(p) for p in sorted(d.glob("*.parquet"))},
            }
        )
    )
    cases["packed_out_of_vocab"] = ("packed", d, ["max_token_id", "max_value=1023"])

    d = tmp / "packed_no_vocab"
    shutil.copytree(tmp / "packed_out_of_vocab", d)
    m = json.loads((d / "manifest.json").read_text())
    del m["vocab_size"]
    (d / "manifest.json").write_text(json.dumps(m))
    # `data validate packed` runs the contract per shard (shard_contracts.py): one line per shard names the file
    cases["packed_no_vocab"] = ("packed", d, ["train-00000.parquet", "expect_vocab_size", "no vocab_size"])
    return cases


@pytest.fixture(scope="module")
def results(tmp_path_factory, qwenflow):
    src = tmp_path_factory.mktemp("data")
    prepare_data(load_recipe("tiny", SMALL), src)
    cases = corrupt(src, tmp_path_factory.mktemp("broken"))  # prepare_data itself raised if its output failed
    reports = tmp_path_factory.mktemp("reports")

    def run(item):
        name, (kind, d, _) = item
        return name, qwenflow("data", "validate", kind, str(d), "--report-dir", str(reports / name))

    with ThreadPoolExecutor(3) as pool:
        ran = dict(pool.map(run, cases.items()))
    return cases, ran


@pytest.mark.parametrize(
    "name",
    [
        "lying_rows",
        "lying_sha256",
        "no_manifest",
        "bad_manifest",
        "whitespace_text",
        "every_row_twice",
        "sft_duplicates",
        "chosen_is_rejected",
        "swapped_pairs",
        "packed_out_of_vocab",
        "packed_no_vocab",
    ],
)
def test_corruption_exits_nonzero_with_one_line_naming_the_check(results, name):
    cases, ran = results
    ran[name].error_line(*cases[name][2])
    assert ran[name].rc == 3  # the contract's own exit code, not a crash
