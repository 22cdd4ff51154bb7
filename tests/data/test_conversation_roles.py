"""One conversation rule for data contracts and post-training readers, tool turns included."""

from __future__ import annotations

import pandas as pd
import pytest

from qwenflow.data.chat import conversation_problem
from qwenflow.posttrain.common import DataError, read_dataset

CALL = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Weather in Oslo?"},
    {"role": "assistant", "content": '<tool_call>\n{"name": "weather", "arguments": {"city": "Oslo"}}\n</tool_call>'},
    {"role": "tool", "content": "-3 C, snow"},
    {"role": "assistant", "content": "It is -3 C and snowing in Oslo."},
]


def test_tool_results_follow_the_assistants_call():
    assert conversation_problem(CALL) is None
    assert conversation_problem(CALL[:4], prompt=True) is None  # a tool result waits for the assistant's answer
    assert "role 'tool' after 'user'" in conversation_problem([CALL[1], CALL[3], CALL[4]])
    assert "last message must be the assistant's" in conversation_problem(CALL[:4])
    assert "unknown role 'robot'" in conversation_problem([{"role": "robot", "content": "x"}])


def test_post_training_reader_applies_the_same_rule(tmp_path):
    (tmp_path / "sft").mkdir()
    pd.DataFrame({"messages": [CALL]}).to_parquet(tmp_path / "sft" / "train.parquet")
    assert len(read_dataset(tmp_path, "sft")) == 1
    pd.DataFrame({"messages": [[CALL[1], CALL[3], CALL[4]]]}).to_parquet(tmp_path / "sft" / "train.parquet")
    with pytest.raises(DataError, match="row 0, message 1: role 'tool' after 'user'"):
        read_dataset(tmp_path, "sft")
