"""Source loaders: real packaged corpora and user folders, including every kind of bad input."""

import json
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from qwenflow.data.sources import SOURCES, SourceError, load_source


@pytest.mark.parametrize(
    "name", ["python_stdlib", "go_src", "python_docs", "linux_docs", "gcide", "shakespeare", "fortunes", "bible"]
)
def test_named_sources_give_records_within_the_byte_cap(name):
    stats = Counter()
    recs = list(load_source(name, 60_000, stats))
    assert recs, f"{name} gave no records"
    assert all(set(r) == {"text", "source", "domain", "license"} for r in recs)
    assert all(r["source"] == name and r["domain"] == SOURCES[name].domain and r["license"] for r in recs)
    assert sum(len(r["text"].encode()) for r in recs) <= 60_000 + 8  # dictionary/bible chunks may re-join lines


def test_user_folder_reads_jsonl_parquet_and_text(tmp_path):
    (tmp_path / "a.jsonl").write_text(
        json.dumps({"text": "hello from jsonl", "domain": "web"}) + "\n\n", encoding="utf-8"
    )
    pq.write_table(pa.table({"text": ["hello from parquet", None]}), tmp_path / "b.parquet")
    (tmp_path / "c.txt").write_text("hello from text", encoding="utf-8")
    stats = Counter()
    recs = list(load_source(str(tmp_path), 10_000, stats))
    assert sorted(r["text"] for r in recs) == ["hello from jsonl", "hello from parquet", "hello from text"]
    assert stats["null_text"] == 1
    assert [r["domain"] for r in recs if r["text"].endswith("jsonl")] == ["web"]


def test_empty_files_are_counted_not_fatal(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "ok.txt").write_text("some text", encoding="utf-8")
    stats = Counter()
    assert [r["text"] for r in load_source(str(tmp_path), 10_000, stats)] == ["some text"]
    assert stats["empty"] == 2


def test_non_utf8_bytes_are_counted_drops(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (tmp_path / "rows.jsonl").write_bytes(b'{"text": "good"}\n{"text": "bad \xff\xfe"}\n')
    stats = Counter()
    assert [r["text"] for r in load_source(str(tmp_path), 10_000, stats)] == ["good"]
    assert stats["invalid_utf8"] == 2


def test_missing_column_is_a_clear_error(tmp_path):
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "t.parquet")
    with pytest.raises(SourceError, match=r"t\.parquet: no 'text' column \(columns: \['body'\]\)"):
        list(load_source(str(tmp_path), 10_000, Counter()))
    (tmp_path / "t.parquet").unlink()
    (tmp_path / "r.jsonl").write_text('{"body": "x"}\n', encoding="utf-8")
    with pytest.raises(SourceError, match=r"r\.jsonl:1: no 'text' field"):
        list(load_source(str(tmp_path), 10_000, Counter()))


def test_wrong_types_are_a_clear_error(tmp_path):
    pq.write_table(pa.table({"text": [1, 2]}), tmp_path / "t.parquet")
    with pytest.raises(SourceError, match="column 'text' has type int64, expected string"):
        list(load_source(str(tmp_path), 10_000, Counter()))
    (tmp_path / "t.parquet").unlink()
    (tmp_path / "r.jsonl").write_text('{"text": "ok"}\n{"text": 5}\n', encoding="utf-8")
    with pytest.raises(SourceError, match=r"r\.jsonl:2: 'text' is int"):
        list(load_source(str(tmp_path), 10_000, Counter()))
    (tmp_path / "r.jsonl").write_text('{"text": "ok"}\nnot json\n', encoding="utf-8")
    with pytest.raises(SourceError, match=r"r\.jsonl:2: not valid JSON"):
        list(load_source(str(tmp_path), 10_000, Counter()))


def test_a_100mb_single_line_is_read_in_bounded_pieces(tmp_path):
    line = (b"lorem ipsum dolor sit amet " * 4_000_000)[:100_000_000]
    (tmp_path / "huge.txt").write_bytes(line)
    (tmp_path / "huge.jsonl").write_bytes(b'{"text": "' + line + b'"}\n{"text": "after"}\n')
    stats = Counter()
    recs = list(load_source(str(tmp_path), 2_000_000, stats))
    assert recs and sum(len(r["text"]) for r in recs) <= 2_000_000
    assert max(len(r["text"]) for r in recs) <= 200_000
    assert stats["over_byte_cap"] >= 1  # the rest was not read, and the report says so


def test_unknown_source_name_says_what_exists():
    with pytest.raises(SourceError, match="neither a named source .*python_stdlib"):
        list(load_source("no_such_source", 100, Counter()))


def test_source_walk_finds_what_rglob_finds_outside_excluded_folders(tmp_path):
    from qwenflow.data.sources import _walk

    for rel in ["a.py", "pkg/b.py", "pkg/c.txt", "pkg/test/d.py", "tests/e.py", "deep/x/y/f.py", "deep/x/.hidden.py"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n")
    (tmp_path / "dir.py").mkdir()  # a folder whose name matches is not a file
    exclude = ("test", "tests")
    rglob = {p for p in tmp_path.rglob("*.py") if p.is_file() and not set(p.relative_to(tmp_path).parts) & set(exclude)}
    assert set(_walk(tmp_path, ["*.py"], exclude)) == rglob
    assert {p.name for p in rglob} == {"a.py", "b.py", "f.py", ".hidden.py"}
