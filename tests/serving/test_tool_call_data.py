"""The SFT tool-use set: rendered exactly as Qwen2.5's template renders a `tools` request, its calls parse with
the server's own parser, and held-out prompts use cities no training conversation has."""

from __future__ import annotations

import json

from qwenflow.data.tool_calls import HELDOUT_CITIES, TOOLS, heldout_tool_prompts, tool_call_examples
from qwenflow.serving.tools import parse_completion
from qwenflow.tokenizer import load_tokenizer


def test_rows_render_as_the_template_renders_tools(tiny_tokenizer_dir):
    tok = load_tokenizer(tiny_tokenizer_dir)
    rows = tool_call_examples(40, seed=3)
    assert len(rows) == 40 and {r["task"] for r in rows} == {"tool_calls"}
    for r in rows:
        system, user = r["messages"][0], r["messages"][1]
        offered = [
            json.loads(line) for line in system["content"].split("<tools>\n")[1].split("\n</tools>")[0].splitlines()
        ]
        assert tok.apply_chat_template(r["messages"][:2], tokenize=False) == tok.apply_chat_template(
            [user], tools=offered, tokenize=False
        )
        content, calls = parse_completion(r["messages"][2]["content"])
        expected = json.loads(r["answer"])
        assert content is None and [(c.name, json.loads(c.arguments)) for c in calls] == [
            (expected["name"], expected["arguments"])
        ]
        assert expected["name"] in [t["function"]["name"] for t in offered]
    assert sum(len(r["messages"]) == 5 for r in rows) == 10  # every fourth goes on to the tool's result


def test_heldout_prompts_use_unseen_cities():
    train_text = json.dumps(tool_call_examples(400, seed=0))
    held = heldout_tool_prompts(40)
    assert all(h["name"] in TOOLS and h["tools"] for h in held)
    cities = {h["arguments"]["city"] for h in held if "city" in h["arguments"]}
    assert cities and cities <= set(HELDOUT_CITIES)
    assert not any(c in train_text for c in HELDOUT_CITIES)
