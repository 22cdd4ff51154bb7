"""Long-context extension through the CLI: RoPE base raised, progressive lengths, YaRN option in the config."""

from __future__ import annotations

import json

import mlflow
import torch
from transformers import AutoConfig, AutoModelForCausalLM
from typer.testing import CliRunner

from qwenflow.cli.main import app
from qwenflow.longctx.yarn import enable_yarn


def test_long_context_cli(tracking, corpus_dir, tiny_model_dir, tmp_path):
    out = tmp_path / "lc"
    sets = [
        "model.vocab_size=1024",
        "tokenizer.vocab_size=1024",
        "pretrain.seq_len=64",
        "long_context.seq_lens=[128,256]",
        "long_context.max_steps=2",
        "long_context.global_batch_size=2",
        "long_context.micro_batch_size=1",
        "long_context.long_fraction=0.4",
    ]
    res = CliRunner().invoke(
        app,
        ["train", "long-context", "--data", str(corpus_dir), "--model", str(tiny_model_dir), "--out", str(out)]
        + [a for kv in sets for a in ("--set", kv)],
    )
    assert res.exit_code == 0, res.output

    cfg = json.loads((out / "config.json").read_text())
    assert cfg["rope_parameters"]["rope_theta"] == 1e6 and cfg["rope_parameters"]["rope_type"] == "default"
    assert cfg["max_position_embeddings"] >= 256 and cfg["qwenflow_trained_context"] == 256
    assert cfg["qwenflow_yarn"] == {
        "rope_type": "yarn",
        "rope_theta": 1e6,
        "factor": 4.0,
        "original_max_position_embeddings": 256,
    }
    model = AutoModelForCausalLM.from_pretrained(str(out))
    d = model.model.rotary_emb.inv_freq.numel() * 2
    assert torch.allclose(model.model.rotary_emb.inv_freq, 1e6 ** -(torch.arange(0, d, 2).float() / d))

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["seq_len"] for r in rows if "loss" in r][-1] in (128, 256)  # the second stage trains at 256 or 128
    assert max(r["tokens_seen"] for r in rows if "loss" in r) == 2 * 2 * 128 + 2 * 2 * 256
    summary = json.loads((out / "long_context_summary.json").read_text())
    for k in ("val_loss_base_model", "val_loss_rope_only", "final_val_loss", "val_ppl_at_256"):
        assert summary[k] > 0, k

    # switching YaRN on gives a config transformers loads with YaRN scaling over 4x the trained length
    enable_yarn(out)
    cfg = AutoConfig.from_pretrained(str(out))
    assert cfg.rope_parameters["rope_type"] == "yarn" and cfg.max_position_embeddings == 1024
    AutoModelForCausalLM.from_pretrained(str(out))

    client = mlflow.MlflowClient(tracking)
    run = client.search_runs(
        [client.get_experiment_by_name("qwenflow-tiny").experiment_id], "tags.`qwenflow.stage` = 'long_context'"
    )[0]
    assert run.data.params["rope_theta"] == "1000000.0" and run.data.params["trained_length"] == "256"
    assert "val_loss_base_model" in run.data.metrics and "loss" in run.data.metrics


def test_unreachable_mlflow_stops_before_compute(monkeypatch, corpus_dir, tiny_tokenizer_dir, tmp_path):
    from tests.conftest import free_port

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    res = CliRunner().invoke(
        app,
        [
            "train",
            "pretrain",
            "--data",
            str(corpus_dir),
            "--out",
            str(tmp_path / "o"),
            "--tokenizer",
            str(tiny_tokenizer_dir),
        ],
    )
    assert res.exit_code == 2
    assert "cannot reach the MLflow server" in res.output
    assert not (tmp_path / "o").exists()  # nothing packed, nothing trained
