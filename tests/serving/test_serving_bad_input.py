"""Bad requests get a 4xx with a message naming the problem, never a 500, and the server stays healthy."""

from __future__ import annotations

import httpx
import pytest

from tests.serving.conftest import AUTH

GOOD = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}

CASES = {
    "malformed json": (b'{"model": "tiny", "messages": [', 400, "not valid JSON"),
    "non-utf8 body": (b'{"model": "tiny", "messages": [{"role": "user", "content": "\xff\xfe"}]}', 400, "UTF-8"),
    "not an object": (b"[1, 2]", 400, "dictionary"),
    "unknown field": ({**GOOD, "best_of": 3}, 400, "best_of: unknown field"),
    "negative max_tokens": ({**GOOD, "max_tokens": -5}, 400, "max_tokens"),
    "zero max_tokens": ({**GOOD, "max_tokens": 0}, 400, "max_tokens"),
    "huge max_tokens": ({**GOOD, "max_tokens": 10**9}, 400, "above this deployment's limit"),
    "empty messages": ({**GOOD, "messages": []}, 400, "messages"),
    "wrong role": ({**GOOD, "messages": [{"role": "wizard", "content": "hi"}]}, 400, "role"),
    "missing content": ({**GOOD, "messages": [{"role": "user"}]}, 400, "content"),
    "assistant last": ({**GOOD, "messages": [{"role": "assistant", "content": "hi"}]}, 400, "last message"),
    "temperature out of range": ({**GOOD, "temperature": 5}, 400, "temperature"),
    "n above 16": ({**GOOD, "n": 100}, 400, "n"),
    "penalty out of range": ({**GOOD, "frequency_penalty": 3}, 400, "frequency_penalty"),
    "logit_bias out of range": ({**GOOD, "logit_bias": {"5": 250}}, 400, "logit_bias"),
    "logit_bias outside the vocabulary": ({**GOOD, "logit_bias": {"99999999": 1}}, 400, "outside the vocabulary"),
    "top_logprobs without logprobs": ({**GOOD, "top_logprobs": 3}, 400, "needs logprobs"),
    "tool without tool_call_id": ({**GOOD, "messages": [{"role": "tool", "content": "42"}]}, 400, "tool_call_id"),
    "tool_choice names an unknown tool": (
        {
            **GOOD,
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": {"type": "function", "function": {"name": "g"}},
        },
        400,
        "not in tools",
    ),
    "required tool without tools": ({**GOOD, "tool_choice": "required"}, 400, "no tools"),
    "schema the grammar refuses": (
        {
            **GOOD,
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}},
        },
        400,
        "response_format",
    ),
    "tool call arguments not JSON": (
        {
            **GOOD,
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "1"},
            ],
        },
        400,
        "JSON object",
    ),
    "too many stops": ({**GOOD, "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    "unknown model": ({**GOOD, "model": "gpt-9"}, 404, "not served here"),
    "prompt past the context": (
        {**GOOD, "messages": [{"role": "user", "content": "a " * 5000}]},
        400,
        "maximum context length",
    ),
    "prompt + max_tokens past the context": (
        {**GOOD, "messages": [{"role": "user", "content": "a " * 1900}], "max_tokens": 250},
        400,
        "maximum context length",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_chat_request_is_a_clear_4xx(server, case):
    url, name, _ = server
    body, status, needle = CASES[case]
    if isinstance(body, dict):
        r = httpx.post(url + "/v1/chat/completions", json={"model": name, **body}, headers=AUTH, timeout=60)
    else:
        r = httpx.post(
            url + "/v1/chat/completions",
            content=body.replace(b'"tiny"', f'"{name}"'.encode()),
            headers={"content-type": "application/json", **AUTH},
            timeout=60,
        )
    assert r.status_code == status, r.text
    message = r.json()["error"]["message"]
    assert needle in message, message


@pytest.mark.parametrize(
    "body,needle",
    [
        ({"prompt": ""}, "prompt is empty"),
        ({"prompt": ["a", "b"]}, "exactly one prompt"),
        ({"prompt": "x", "logprobs": 9}, "logprobs"),
        ({"prompt": "x", "echo": True}, "echo: unknown field"),
        ({}, "prompt"),
    ],
)
def test_bad_completion_request_is_a_clear_4xx(server, body, needle):
    url, name, _ = server
    r = httpx.post(url + "/v1/completions", json={"model": name, **body}, headers=AUTH, timeout=60)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]["message"]


def test_server_still_answers_after_bad_input(server):
    url, name, log = server
    r = httpx.post(url + "/v1/chat/completions", json={"model": name, **GOOD}, headers=AUTH, timeout=60)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["role"] == "assistant"
    assert httpx.get(url + "/livez").status_code == 200
    assert "Traceback" not in log.read_text()
