"""SFT: two-stage training, batched tokenization, bad data refused with specific errors (learning: test_learning.py)."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest
from arith_data import make_arith_data

from qwenflow.artifacts import read_lineage
from qwenflow.models import io
from qwenflow.posttrain import common
from qwenflow.posttrain.sft import run_sft
from qwenflow.recipe import load_recipe

TINY = ["model.vocab_size=1024", "tokenizer.vocab_size=1024"]


# The learning test (held-out exact match rises) is in test_learning.py, with the rest of the small chain.
SMALL_MODEL = ["model.hidden_size=64", "model.num_layers=2", "model.intermediate_size=192"]


@pytest.fixture(scope="module")
def arith(tmp_path_factory):
    return make_arith_data(tmp_path_factory.mktemp("arith"), n_sft=500, n_rl=32, n_eval=60, lo=0, hi=19)


@pytest.fixture(scope="module")
def small_model_dir(tmp_path_factory, tiny_tokenizer_dir):
    from qwenflow.models import build_model
    from qwenflow.tokenizer import load_tokenizer

    recipe = load_recipe("tiny", TINY + SMALL_MODEL)
    tok = load_tokenizer(tiny_tokenizer_dir)
    model = build_model(recipe.model, seed=0, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return io.save(
        model, tokenizer=tok, out_dir=tmp_path_factory.mktemp("small"), recipe=recipe, lineage={"stage": "init"}
    )


def _write(tmp_path, rows, kind="sft", name="train.parquet"):
    d = tmp_path / kind
    d.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(d / name)
    return tmp_path


def test_bad_sft_data_gets_specific_errors(tmp_path):
    d = _write(tmp_path / "a", {"text": ["hello"]})
    with pytest.raises(common.DataError, match=r"missing column\(s\) \['messages'\]"):
        common.read_dataset(d, "sft")
    d = _write(tmp_path / "b", {"messages": [[{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}]]})
    with pytest.raises(common.DataError, match="row 0, message 1: unknown role 'bot'"):
        common.read_dataset(d, "sft")
    d = _write(tmp_path / "c", {"messages": [[{"role": "user", "content": "hi"}]]})
    with pytest.raises(common.DataError, match="last message must be the assistant's"):
        common.read_dataset(d, "sft")
    with pytest.raises(common.DataError, match="no sft dataset here"):
        common.read_dataset(tmp_path / "nowhere", "sft")


def test_too_long_conversations_are_dropped_and_counted():
    df = pd.DataFrame({"messages": [[{"role": "user", "content": "x"}]] * 3})
    kw = dict(what="conversations", fix="raise sft.max_seq_len")
    kept, dropped = common.drop_too_long(df, [10, 500, 20], 100, "here", **kw)
    assert len(kept) == 2 and dropped == 1 and list(kept.index) == [0, 1]
    with pytest.raises(common.DataError, match="here: all 3 conversations are longer than 5 tokens; raise sft.max_seq"):
        common.drop_too_long(df, [10, 500, 20], 5, "here", **kw)


def test_conversations_without_assistant_tokens_are_named():
    from qwenflow.posttrain.sft import check_assistant_tokens

    check_assistant_tokens([[0, 1, 0], [1]], "here")
    with pytest.raises(common.DataError, match=r"here: 2 conversations have no assistant tokens.*first row 1"):
        check_assistant_tokens([[0, 1], [0, 0], [0]], "here")


def test_two_stage_sft_trains_short_first_then_the_mix(tracking, arith, small_model_dir, tmp_path):
    from qwenflow.posttrain.sft import tokenize_conversations

    tok = common.load_chat_tokenizer(small_model_dir)
    messages = common.read_dataset(arith, "sft")["messages"]
    tokens = tokenize_conversations(tok, messages, assistant_masks=True)
    lengths = [len(ids) for ids in tokens["input_ids"]]
    assert lengths == [common.chat_token_count(tok, m) for m in messages]  # the batched pass counts as row by row
    assert all(any(m) for m in tokens["assistant_masks"])
    cut = sorted(lengths)[len(lengths) // 2]  # about half the conversations are "short"
    recipe = load_recipe(
        "tiny",
        TINY
        + SMALL_MODEL
        + [
            "sft.max_steps=4",
            "sft.global_batch_size=8",
            "sft.micro_batch_size=8",
            "sft.max_seq_len=64",
            "sft.two_stage=true",
            f"sft.short_max_len={cut}",
            "sft.packing=true",
        ],
    )
    out = run_sft(recipe, arith, small_model_dir, tmp_path / "sft2")
    mlflow.set_tracking_uri(tracking)
    run = mlflow.search_runs(
        experiment_names=[recipe.tracking.experiment],
        filter_string="tags.qwenflow.stage = 'sft'",
        order_by=["start_time DESC"],
        output_format="list",
    )[0]
    m = run.data.metrics
    assert m["data/stage1_rows"] == sum(n <= cut for n in lengths) < m["data/stage2_rows"] == len(lengths)
    assert "sft/stage1/train_loss" in m and "sft/stage2/train_loss" in m
    # held-out exact match before/after (posttrain/heldout_gain.py): lineage keys and metrics agree
    lin = read_lineage(out)
    before, after = lin["exact_match_before"]["arithmetic"], lin["exact_match_after"]["arithmetic"]
    gain = lin["exact_match_gain"]["arithmetic"]
    assert gain["n"] == 60 and gain["gain"] == pytest.approx(after - before)
    assert m["eval/arithmetic/exact_match_before"] == pytest.approx(before)
    assert m["eval/arithmetic/exact_match_after"] == pytest.approx(after)
    assert m["eval/arithmetic/exact_match_gain"] == pytest.approx(gain["gain"])


def test_cli_reports_bad_inputs_in_one_line(tmp_path, small_model_dir):
    from typer.testing import CliRunner

    from qwenflow.cli.main import app

    runner = CliRunner()
    flat = lambda r: " ".join(r.output.split())  # noqa: E731 - rich wraps long lines
    r = runner.invoke(
        app, ["train", "sft", "--from", str(tmp_path / "nope"), "--data", str(tmp_path), "--out", str(tmp_path / "o")]
    )
    assert r.exit_code == 2 and "no sft dataset here" in flat(r) and "Traceback" not in r.output
    _write(tmp_path / "d", {"messages": [[{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}]]})
    r = runner.invoke(
        app,
        ["train", "sft", "--from", str(small_model_dir), "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o")],
    )
    assert r.exit_code == 2 and "unknown role 'robot'" in flat(r)
    r = runner.invoke(
        app,
        ["train", "grpo", "--from", str(small_model_dir), "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o")],
    )
    assert r.exit_code == 2 and "no rl dataset here" in flat(r) and "Traceback" not in r.output
