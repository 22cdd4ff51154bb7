"""The one reader of prepared dataset files (qwenflow.data.frames): specific errors, plain lists, column subsets."""

from __future__ import annotations

import pandas as pd
import pytest

from qwenflow.data.frames import DataError, read_frame


def test_missing_file_and_columns_are_named(tmp_path):
    with pytest.raises(
        DataError, match=r"val.parquet: missing; a corpus dataset is produced by `qwenflow data prepare`"
    ):
        read_frame(tmp_path / "val.parquet", "corpus")
    pd.DataFrame({"text": ["a"], "source": ["s"]}).to_parquet(tmp_path / "val.parquet")
    with pytest.raises(DataError, match=r"missing column\(s\) \['domain'\]; found \['text', 'source'\]"):
        read_frame(tmp_path / "val.parquet", "corpus", ["text", "domain"], only=True)


def test_conversations_come_back_as_plain_lists_and_only_reads_the_columns_asked(tmp_path):
    msgs = [{"role": "user", "content": "1 + 1?"}, {"role": "assistant", "content": "2"}]
    pd.DataFrame({"messages": [msgs], "task": ["arithmetic"], "answer": ["2"]}).to_parquet(tmp_path / "train.parquet")
    df = read_frame(tmp_path / "train.parquet", "sft")
    assert list(df.columns) == ["messages", "task", "answer"]
    assert df["messages"][0] == msgs and type(df["messages"][0]) is list
    assert list(read_frame(tmp_path / "train.parquet", "sft", only=True).columns) == ["messages"]
