"""The chat API fields Qwen2.5-Instruct clients send, through the official openai client against a real
`bentoml serve`: tools (round trip, streamed and not), response_format json_schema (grammar-enforced, checked on a
random-weight model), n, logprobs, penalties and logit_bias, the developer role."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest
import torch

from qwenflow.serving.loader import load
from qwenflow.serving.prompt import ChatEncoder
from tests.serving.conftest import API_KEY, start_server, stop_server

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 16}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a time zone",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string", "enum": ["UTC", "CET", "JST"]}},
            "required": ["zone"],
            "additionalProperties": False,
        },
    },
}
PERSON = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "age", "tags", "member"],
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "tags": {"type": "array", "items": {"enum": ["red", "green", "blue"]}, "maxItems": 3},
        "member": {"type": "boolean"},
    },
}


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server[0] + "/v1", api_key=API_KEY, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def random_client(tiny_model_dir, tmp_path_factory):
    """A second server on an untrained model: whatever it samples, the grammar has to make valid JSON of it."""
    proc, url = start_server(
        tmp_path_factory.mktemp("random"), {"QWENFLOW_MODEL": str(tiny_model_dir), "QWENFLOW_SERVED_NAME": "random"}
    )
    yield openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=120)
    stop_server(proc)


def _streamed_calls(stream) -> tuple[str, list[dict], str]:
    """(content, tool calls, finish reason) accumulated from chat chunks, as a streaming client does."""
    content, calls, finish = "", {}, None
    for chunk in stream:
        for choice in chunk.choices:
            delta = choice.delta
            content += delta.content or ""
            for tc in delta.tool_calls or []:
                call = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += tc.id or ""
                call["name"] += (tc.function.name or "") if tc.function else ""
                call["arguments"] += (tc.function.arguments or "") if tc.function else ""
            finish = choice.finish_reason or finish
    return content, [calls[k] for k in sorted(calls)], finish


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_tool_call_round_trip(client, server, stream):
    """request with tools -> tool_calls -> the tool's result -> the model's final answer."""
    name = server[1]
    messages = [{"role": "developer", "content": "Use the tools."}, {"role": "user", "content": "Weather in Oslo?"}]
    ask = dict(
        model=name,
        tools=[WEATHER, CLOCK],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=64,
        temperature=0,
    )
    if stream:
        content, calls, finish = _streamed_calls(client.chat.completions.create(messages=messages, stream=True, **ask))
        assistant = {
            "role": "assistant",
            "content": content or None,
            "tool_calls": [
                {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                for c in calls
            ],
        }
    else:
        r = client.chat.completions.create(messages=messages, **ask)
        finish, assistant = r.choices[0].finish_reason, r.choices[0].message  # sent back as the client returned it
        calls = [
            {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
            for c in r.choices[0].message.tool_calls
        ]
    assert finish == "tool_calls" and len(calls) == 1
    assert calls[0]["name"] == "get_weather" and calls[0]["id"].startswith("call_")
    jsonschema.validate(json.loads(calls[0]["arguments"]), WEATHER["function"]["parameters"])
    messages += [assistant, {"role": "tool", "tool_call_id": calls[0]["id"], "content": "-3 C, snow"}]
    final = dict(
        model=name, messages=messages, tools=[WEATHER, CLOCK], tool_choice="none", max_tokens=12, temperature=0
    )
    if stream:
        content, calls, finish = _streamed_calls(client.chat.completions.create(stream=True, **final))
    else:
        r = client.chat.completions.create(**final)
        content, calls, finish = (
            r.choices[0].message.content,
            r.choices[0].message.tool_calls or [],
            r.choices[0].finish_reason,
        )
    assert isinstance(content, str) and content and calls == [] and finish in {"stop", "length"}


def test_required_tool_choice_makes_parallel_calls_of_listed_tools(client, server):
    r = client.chat.completions.create(
        model=server[1],
        messages=[{"role": "user", "content": "Time and weather?"}],
        tools=[WEATHER, CLOCK],
        tool_choice="required",
        max_tokens=120,
        temperature=1.0,
        seed=4,
    )
    calls = r.choices[0].message.tool_calls
    assert r.choices[0].finish_reason == "tool_calls" and calls
    for c in calls:
        tool = {"get_weather": WEATHER, "get_time": CLOCK}[c.function.name]
        jsonschema.validate(json.loads(c.function.arguments), tool["function"]["parameters"])
    one = client.chat.completions.create(
        model=server[1],
        messages=[{"role": "user", "content": "Time?"}],
        tools=[WEATHER, CLOCK],
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=120,
        temperature=1.0,
        seed=4,
    )
    assert len(one.choices[0].message.tool_calls) == 1


def test_malformed_tool_output_is_text_not_an_error(client, server, trained_model):
    """Forcing `<tool_call>` again and again (logit_bias) gives an unclosed, unparsable block: it comes back as
    text, finish 'length', never a 500."""
    tok = load(trained_model[0], device="cpu").tokenizer
    opener = tok.convert_tokens_to_ids("<tool_call>")
    r = client.chat.completions.create(
        model=server[1],
        messages=[{"role": "user", "content": "Weather?"}],
        tools=[WEATHER],
        max_tokens=6,
        temperature=0,
        logit_bias={str(opener): 100},
    )
    assert r.choices[0].finish_reason == "length" and not r.choices[0].message.tool_calls
    assert r.choices[0].message.content.startswith("<tool_call>")


def test_json_schema_output_always_validates_on_a_random_model(random_client):
    """20 sampled requests (10 whole, 10 streamed) from untrained weights: the grammar makes every one valid."""
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
    for seed in range(20):
        ask = dict(
            model="random",
            messages=[{"role": "user", "content": "A person as JSON."}],
            response_format=fmt,
            max_tokens=256,
            temperature=1.0,
            seed=seed,
        )
        if seed % 2:
            text = "".join(
                c.choices[0].delta.content or ""
                for c in random_client.chat.completions.create(stream=True, **ask)
                if c.choices
            )
        else:
            r = random_client.chat.completions.create(**ask)
            assert r.choices[0].finish_reason == "stop"
            text = r.choices[0].message.content
        jsonschema.validate(json.loads(text), PERSON)
    obj = random_client.chat.completions.create(
        model="random",
        messages=[{"role": "user", "content": "JSON"}],
        response_format={"type": "json_object"},
        max_tokens=256,
        temperature=0,
    )
    text = obj.choices[0].message.content  # any object: an untrained model may still be inside a string at 256
    assert text.startswith("{") and (obj.choices[0].finish_reason == "length" or isinstance(json.loads(text), dict))


def test_n_gives_n_choices_from_one_prompt(client, server):
    ask = dict(
        model=server[1],
        messages=[{"role": "user", "content": "What is 12 + 30?"}],
        max_tokens=6,
        seed=11,
        temperature=1.0,
    )
    r = client.chat.completions.create(n=4, **ask)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert 4 <= r.usage.completion_tokens <= 4 * 6 and r.usage.prompt_tokens > 0  # the prompt counted once
    # choice j is seeded seed + j: the first choice of n=4 is the n=1 answer with the same seed
    assert r.choices[0].message.content == client.chat.completions.create(n=1, **ask).choices[0].message.content
    streamed: dict[int, str] = {}
    for chunk in client.chat.completions.create(n=4, stream=True, **ask):
        for c in chunk.choices:
            streamed[c.index] = streamed.get(c.index, "") + (c.delta.content or "")
    assert [streamed[j] for j in range(4)] == [c.message.content for c in r.choices]


def test_logprobs_are_the_models_log_softmax(client, server, trained_model):
    messages = [{"role": "user", "content": "What is 21 + 34?"}]
    r = client.chat.completions.create(
        model=server[1], messages=messages, max_tokens=5, temperature=0, logprobs=True, top_logprobs=3
    )
    entries = r.choices[0].logprobs.content
    assert 1 <= len(entries) <= 5
    loaded = load(trained_model[0], device="cpu")
    model, tok = loaded.model, loaded.tokenizer
    ids = ChatEncoder(tok).render(messages)[1]
    with torch.inference_mode():
        for e in entries:
            lp = torch.log_softmax(model(torch.tensor([ids])).logits[0, -1].float(), -1)
            top = lp.topk(3)
            chosen = int(top.indices[0])  # greedy: the argmax is the token the server chose
            assert e.logprob == pytest.approx(float(lp[chosen]), abs=1e-4)
            assert [t.logprob for t in e.top_logprobs] == pytest.approx(top.values.tolist(), abs=1e-4)
            assert bytes(e.bytes) == tok.decode([chosen]).encode() or chosen in tok.get_added_vocab().values()
            ids.append(chosen)


def test_logit_bias_and_penalties_change_the_choice(client, server, trained_model):
    """logit_bias +100 makes a token the greedy choice and -100 bans one (here the end of turn); frequency and
    presence penalties make a greedy continuation reuse its tokens less. (Exact agreement with the OpenAI formula
    is tested on the engine.)"""
    tok = load(trained_model[0], device="cpu").tokenizer
    no_end = {str(tok.convert_tokens_to_ids("<|im_end|>")): -100}
    ask = dict(model=server[1], prompt="1 1 1 1 1 1 1 1", max_tokens=8, temperature=0, logprobs=0)
    assert client.completions.create(**ask).choices[0].finish_reason == "stop"  # the model ends at once...
    plain = client.completions.create(**ask, logit_bias=no_end).choices[0]
    assert plain.finish_reason == "length"  # ...unless its end token is banned
    forced = client.completions.create(**ask, logit_bias={**no_end, str(tok.convert_tokens_to_ids("7")): 100})
    assert forced.choices[0].text == "7" * 8
    most = lambda toks: max(toks.count(t) for t in toks)  # noqa: E731
    penalised = client.completions.create(**ask, logit_bias=no_end, frequency_penalty=2.0, presence_penalty=2.0)
    assert most(plain.logprobs.tokens) >= 3
    assert most(penalised.choices[0].logprobs.tokens) < most(plain.logprobs.tokens)


def test_developer_role_is_the_system_turn(client, server):
    ask = dict(model=server[1], max_tokens=4, temperature=0)
    dev = client.chat.completions.create(
        messages=[{"role": "developer", "content": "Answer in digits."}, {"role": "user", "content": "2 + 2?"}], **ask
    )
    sys_ = client.chat.completions.create(
        messages=[{"role": "system", "content": "Answer in digits."}, {"role": "user", "content": "2 + 2?"}], **ask
    )
    assert dev.choices[0].message.content == sys_.choices[0].message.content
    assert dev.usage.prompt_tokens == sys_.usage.prompt_tokens


def test_openai_defaults_are_accepted(client, server):
    """What agent frameworks send on every request: zero penalties, n=1, logprobs false, parallel_tool_calls."""
    r = client.chat.completions.create(
        model=server[1],
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=3,
        n=1,
        presence_penalty=0,
        frequency_penalty=0,
        logprobs=False,
        response_format={"type": "text"},
        tools=[WEATHER],
        tool_choice="auto",
        parallel_tool_calls=True,
    )
    assert r.choices[0].finish_reason in {"stop", "length", "tool_calls"}
