"""Serving throughput and latency: a real `bentoml serve` on loopback at concurrency 1, 4 and 16 against the
same model answering the same requests one at a time in-process (model.generate), measured in the same run.

Target (issue #8): at concurrency 16, >= 3x the baseline's generated tokens/s, with p99 latency under 3x the
concurrency-1 p50. Also compares the server's two batching modes (continuous vs static, the shape of BentoML's
adaptive batching: a batch closes when it starts) so the winner can be kept.

    python benchmarks/serving.py                           # a random tiny model built here (~2-4 min on 2 cores)
    python benchmarks/serving.py --model DIR --max-tokens 64 --requests 64
    python benchmarks/serving.py --model models:/qwenflow-tiny@champion   # a trained, registered model
                                                           # (MLFLOW_TRACKING_URI set; sha256-verified download)
    python benchmarks/serving.py --modes continuous --ref 722d6c0   # also serve serving/ as it was at a commit
                                                           # (same model, same requests, same run): before vs after

The baseline runs with torch's default thread count and with one thread and keeps the faster, so a server that
leaves a core to its event loop is not compared with a baseline slowed by the same choice.

A trained model (e.g. the tiny pipeline's SFT/GRPO output) stops at its own <|im_end|>/EOS, so it may generate
fewer tokens per request than max_tokens; both sides stop on the same tokens, so the comparison stays fair.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: tests/serving/launch.py

import httpx

from tests.serving.launch import start_serve  # noqa: E402 (the server starter the serving tests use)

PROMPTS = [
    "def fibonacci(n):",
    "import os\nimport sys\n",
    "class Stack:\n    def push(self, x):",
    "for i in range(10):",
    "The quick brown fox",
    "# Parse the configuration file\n",
    "while True:",
    "try:\n    value = int(text)\nexcept",
]


def tiny_model(out: Path, seed: int = 0) -> Path:
    """A random tiny Qwen2 model with a trained BPE (the tests' fixture), perturbed so it does not repeat one token."""
    import sysconfig

    import torch

    from qwenflow.artifacts import save_model_dir
    from qwenflow.models import build_model
    from qwenflow.recipe import load_recipe
    from qwenflow.tokenizer import load_tokenizer
    from qwenflow.tokenizer.bpe import train_bpe

    texts = [p.read_text(errors="ignore") for p in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:60]]
    train_bpe(texts, vocab_size=1024).save_pretrained(out / "tok")
    recipe = load_recipe("tiny", ["model.vocab_size=1024", "tokenizer.vocab_size=1024"])
    tok = load_tokenizer(out / "tok")
    model = build_model(recipe.model, seed=seed, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return save_model_dir(model, tok, out / "model", recipe=recipe)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def baseline(model_dir: Path, n: int, max_tokens: int) -> dict:
    """One request at a time in-process, the faster of torch's default thread count and one thread."""
    import torch

    default = torch.get_num_threads()
    runs = []
    for threads in sorted({default, 1}, reverse=True):
        torch.set_num_threads(threads)
        runs.append({**_baseline(model_dir, n, max_tokens), "threads": threads})
    torch.set_num_threads(default)
    return max(runs, key=lambda r: r["tok_s"])


def _baseline(model_dir: Path, n: int, max_tokens: int) -> dict:
    """The same prompts, greedy, the same token budget."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    model = model.to(device).eval()
    lat, tokens = [], 0
    t0 = time.perf_counter()
    for i in range(n):
        ids = tok(PROMPTS[i % len(PROMPTS)], return_tensors="pt").input_ids.to(device)
        s = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(ids, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
        lat.append(time.perf_counter() - s)
        tokens += out.shape[1] - ids.shape[1]
    wall = time.perf_counter() - t0
    return {"tok_s": tokens / wall, "p50": pct(lat, 50), "p99": pct(lat, 99), "n": n}


async def load(url: str, name: str, n: int, concurrency: int, max_tokens: int) -> dict:
    sem = asyncio.Semaphore(concurrency)
    lat: list[float] = []
    tokens = errors = 0
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=httpx.Limits(max_connections=concurrency)) as c:

        async def one(i: int):
            nonlocal tokens, errors
            async with sem:
                s = time.perf_counter()
                r = await c.post(
                    "/v1/completions",
                    json={
                        "model": name,
                        "prompt": PROMPTS[i % len(PROMPTS)],
                        "max_tokens": max_tokens,
                        "temperature": 0,
                    },
                )
                lat.append(time.perf_counter() - s)
                if r.status_code == 200:
                    tokens += r.json()["usage"]["completion_tokens"]
                else:
                    errors += 1

        await one(0)  # warm-up, not counted
        lat.clear()
        tokens = 0
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        wall = time.perf_counter() - t0
    return {"tok_s": tokens / wall, "p50": pct(lat, 50), "p99": pct(lat, 99), "n": n, "errors": errors}


def serve(model_dir: Path, batching: str, tmp: Path, port: int, max_batch: int, ref: str | None = None):
    env = {
        **os.environ,
        "QWENFLOW_MODEL": str(model_dir),
        "QWENFLOW_BATCHING": batching,
        "QWENFLOW_SERVED_NAME": "bench",
        "QWENFLOW_MAX_BATCH_SIZE": str(max_batch),
        "BENTOML_HOME": str(tmp / "bentoml_home"),
        "BENTOML_DO_NOT_TRACK": "true",
    }
    service = "qwenflow.serving.service:QwenflowLLM"
    if ref:
        service = f"{_ref_package(ref, tmp)}.service:QwenflowLLM"
    return start_serve(tmp, env, port, tmp / f"serve-{batching}-{ref or 'now'}.log", timeout=300, service=service)


def _ref_package(ref: str, tmp: Path) -> str:
    """serving/ as it was at commit `ref`, as a package of its own in `tmp` (bentoml serve's working directory),
    its `qwenflow.serving` imports pointed at itself; the rest of qwenflow is today's."""
    import subprocess

    name = "qwenflow_serving_" + "".join(c for c in ref if c.isalnum())
    out = tmp / name
    out.mkdir(exist_ok=True)
    root = Path(__file__).resolve().parents[1]
    files = subprocess.run(
        ["git", "-C", str(root), "ls-tree", "--name-only", ref, "serving/"], check=True, capture_output=True, text=True
    ).stdout.split()
    for f in files:
        if f.endswith(".py"):
            text = subprocess.run(
                ["git", "-C", str(root), "show", f"{ref}:{f}"], check=True, capture_output=True, text=True
            ).stdout
            (out / Path(f).name).write_text(text.replace("qwenflow.serving", name))
    (out / "__init__.py").touch()
    return name


def row(label: str, r: dict, base: dict) -> str:
    return (
        f"{label:<28} {r['tok_s']:>9.1f} {r['tok_s'] / base['tok_s']:>7.2f}x {r['p50'] * 1000:>9.0f} "
        f"{r['p99'] * 1000:>9.0f} {r.get('errors', 0):>6}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model directory or models:/NAME@ALIAS (default: a random tiny model built here)")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--requests", type=int, default=48, help="requests per concurrency level (c=1 uses a third)")
    ap.add_argument("--modes", default="continuous,static")
    ap.add_argument("--port", type=int, default=3917)
    ap.add_argument("--ref", help="also serve serving/ as it was at this git commit (before/after in one run)")
    a = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with tempfile.TemporaryDirectory(prefix="qwenflow-bench-") as t:
        tmp = Path(t)
        if a.model:
            from qwenflow.tracking.model_source import resolve

            model_dir = resolve(a.model, tmp / "download")  # a registry URI is fetched and its sha256 checked
        else:
            model_dir = tiny_model(tmp)
        n1 = max(8, a.requests // 3)
        base = baseline(model_dir, n1, a.max_tokens)
        print(row("baseline in-process c=1", base, base), flush=True)
        results, before = {}, {}
        for ref in ([a.ref] if a.ref else []) + [None]:
            for mode in a.modes.split(","):
                proc, url = serve(model_dir, mode, tmp, a.port, 16, ref)
                try:
                    for c in (1, 4, 16):
                        r = asyncio.run(load(url, "bench", n1 if c == 1 else a.requests, c, a.max_tokens))
                        (before if ref else results)[mode, c] = r
                        print(row(f"{'@' + ref if ref else 'bentoml serve'} {mode} c={c}", r, base), flush=True)
                finally:
                    proc.terminate()
                    proc.wait(30)
    print(
        f"\nmodel {a.model or 'tiny (random)'}; max_tokens={a.max_tokens}; "
        f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} (contended if above the CPU count)"
    )
    print(f"{'':<28} {'tok/s':>9} {'vs base':>8} {'p50 ms':>9} {'p99 ms':>9} {'errors':>6}")
    print(row(f"baseline in-process c=1 ({base['threads']} thr)", base, base))
    for (mode, c), r in before.items():
        print(row(f"@{a.ref} {mode} c={c}", r, base))
    for (mode, c), r in results.items():
        print(row(f"bentoml serve {mode} c={c}", r, base))
    ok = True
    for mode in a.modes.split(","):
        r16, r1 = results[mode, 16], results[mode, 1]
        speed, tail = r16["tok_s"] / base["tok_s"], r16["p99"] / r1["p50"]
        passed = speed >= 3 and tail < 3
        ok &= passed if mode == "continuous" else True
        print(
            f"{mode}: c=16 throughput {speed:.2f}x baseline (target >= 3x); p99(c=16) / p50(c=1) = {tail:.2f} "
            f"(target < 3): {'PASS' if passed else 'MISS'}"
        )
    for mode in a.modes.split(",") if before else []:
        print(
            f"{mode}: c=16 throughput now / at {a.ref} = {results[mode, 16]['tok_s'] / before[mode, 16]['tok_s']:.2f}; "
            f"c=1 = {results[mode, 1]['tok_s'] / before[mode, 1]['tok_s']:.2f}"
        )
    if len(a.modes.split(",")) > 1:
        winner = max(a.modes.split(","), key=lambda m: results[m, 16]["tok_s"])
        print(f"batching winner at c=16: {winner}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
