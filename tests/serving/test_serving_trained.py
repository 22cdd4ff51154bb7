"""What a user of the trained tiny model sees through the official openai client: an arithmetic question gets a
number that the model ends itself with <|im_end|>, the same answers the SFT stage's own evaluation measured, and
streaming gives the same text."""

from __future__ import annotations

import re

import openai
import pytest

from qwenflow.artifacts import read_lineage
from qwenflow.posttrain import common
from qwenflow.verifiers.math import answers_match
from tests.serving.conftest import API_KEY


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server[0] + "/v1", api_key=API_KEY, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def evaluation(trained_model):
    """The held-out questions and the trained model's own greedy answers in-process (the SFT stage's evaluation)."""
    model_dir, data = trained_model
    rows = common.read_eval(data)["arithmetic"]
    model, tok, _ = common.starting_model(model_dir)
    _, table = common.exact_match(model, tok, rows, batch_size=1)
    return rows, table


def test_sft_changed_what_the_model_says(trained_model):
    lineage = read_lineage(trained_model[0])
    assert lineage["stage"] == "sft" and len(lineage["parent_model.sha256"]) == 64
    assert lineage["exact_match_before"]["arithmetic"] == 0.0  # the pre-trained model writes no correct sums


def test_chat_answers_are_numbers_the_model_ends_itself(client, server, evaluation):
    rows, table = evaluation
    answers, finishes = [], []
    for prompt in rows["prompt"]:
        r = client.chat.completions.create(model=server[1], messages=list(prompt), max_tokens=16, temperature=0)
        answers.append(r.choices[0].message.content)
        finishes.append(r.choices[0].finish_reason)
        assert r.usage.completion_tokens < 16
    # ChatML-stopped: <|im_end|> ends the turn (finish "stop", not "length") and never shows in the text
    assert finishes == ["stop"] * len(rows)
    assert all(re.fullmatch(r"-?\d{1,4}", a) for a in answers), answers
    # the server answers exactly what the training stage's evaluation of the same model answered
    assert answers == list(table["completion"])
    served = sum(answers_match(a, want) for a, want in zip(answers, rows["answer"])) / len(rows)
    assert served == pytest.approx(float(table["correct"].mean()))


def test_streamed_answer_equals_the_full_answer(client, server, evaluation):
    rows, _ = evaluation
    ask = dict(model=server[1], messages=list(rows["prompt"][0]), max_tokens=16, temperature=0, seed=3)
    full = client.chat.completions.create(**ask)
    chunks = list(client.chat.completions.create(**ask, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == full.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop" == full.choices[0].finish_reason
