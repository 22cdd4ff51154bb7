"""How often a served model makes the right tool call on held-out tool prompts (data/tool_calls.py's held-out
cities), through the official openai client against a real `bentoml serve`, tool_choice auto, greedy.

    python benchmarks/tool_calls.py --model DIR                 # e.g. the tiny chain's SFT or GRPO model
    python benchmarks/tool_calls.py --model models:/qwenflow-tiny@champion --prompts 100

Prints the share of answers that are a parsed tool call, that call the right function, and that call it with
exactly the right arguments (no target: the tiny chain's figure goes in the README).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: tests/serving/launch.py

import openai

from qwenflow.data.tool_calls import heldout_tool_prompts
from tests.serving.launch import start_serve  # noqa: E402 (the server starter the serving tests use)


def measure(base_url: str, name: str, n: int) -> dict:
    client = openai.OpenAI(
        base_url=base_url + "/v1", api_key=os.environ.get("QWENFLOW_API_KEY", "unused"), max_retries=0, timeout=300
    )
    calls = right_name = exact = 0
    for p in heldout_tool_prompts(n):
        r = client.chat.completions.create(
            model=name, messages=p["messages"], tools=p["tools"], tool_choice="auto", max_tokens=64, temperature=0
        )
        got = r.choices[0].message.tool_calls or []
        calls += bool(got)
        if got and got[0].function.name == p["name"]:
            right_name += 1
            try:
                exact += json.loads(got[0].function.arguments) == p["arguments"]
            except ValueError:
                pass
    return {"prompts": n, "tool_call": calls / n, "right_function": right_name / n, "exact": exact / n}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model directory or models:/NAME@ALIAS")
    ap.add_argument("--prompts", type=int, default=60)
    ap.add_argument("--port", type=int, default=3918)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="qwenflow-toolbench-") as t:
        tmp = Path(t)
        env = {
            **os.environ,
            "QWENFLOW_MODEL": a.model,
            "QWENFLOW_SERVED_NAME": "bench",
            "BENTOML_HOME": str(tmp / "bentoml_home"),
            "BENTOML_DO_NOT_TRACK": "true",
        }
        proc, url = start_serve(tmp, env, a.port, tmp / "serve.log", timeout=300)
        try:
            result = measure(url, "bench", a.prompts)
        finally:
            proc.terminate()
            proc.wait(30)
    print(
        f"model {a.model}: {result['prompts']} held-out tool prompts; tool call {result['tool_call']:.0%}, right "
        f"function {result['right_function']:.0%}, right function and arguments {result['exact']:.0%}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
