"""The official openai client against a real `bentoml serve`: chat, streaming, completions, models, sampling."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.serving.conftest import API_KEY


@pytest.fixture(scope="module")
def client(server):
    url, _, _ = server
    return openai.OpenAI(base_url=url + "/v1", api_key=API_KEY, max_retries=0, timeout=60)


def test_models_lists_the_served_model(client, server):
    models = client.models.list().data
    assert [m.id for m in models] == [server[1]]


def test_chat_completion_and_stream_agree(client, server):
    ask = dict(
        model=server[1],
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "def add(a, b):"}],
        max_tokens=12,
        temperature=0,
    )
    full = client.chat.completions.create(**ask)
    choice = full.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason in {"stop", "length"}
    assert full.usage.completion_tokens <= 12 and full.usage.prompt_tokens > 5

    chunks = list(client.chat.completions.create(**ask, stream=True, stream_options={"include_usage": True}))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == choice.message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == choice.finish_reason
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens


def test_max_tokens_bounds_the_completion(client, server):
    out = client.completions.create(model=server[1], prompt="import os\n", max_tokens=5, temperature=0)
    assert out.usage.completion_tokens <= 5
    if out.choices[0].finish_reason == "length":
        assert out.usage.completion_tokens == 5


def test_seed_makes_sampling_repeatable(client, server):
    # a question the tiny model is unsure about (its held-out accuracy is near zero): samples spread over digits
    ask = dict(
        model=server[1],
        messages=[{"role": "user", "content": "What is 47 + 38?"}],
        max_tokens=8,
        temperature=1.0,
        top_p=0.9,
    )

    def sample(seed: int) -> str:
        return client.chat.completions.create(**ask, seed=seed).choices[0].message.content

    a, b = sample(7), sample(7)
    others = {sample(s) for s in range(8, 12)}
    assert a == b
    assert others - {a}, "different seeds should give some different samples"


def test_stop_string_cuts_the_text(client, server, trained_model):
    from transformers import AutoTokenizer

    # The chat-tuned tiny model may end its turn at once on a raw prompt (it did under bf16 autocast), which would
    # leave no text to cut: its end-of-turn tokens are banned through logit_bias, so it writes all 20 tokens.
    tok = AutoTokenizer.from_pretrained(str(trained_model[0]))
    ends = {tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>") if t in tok.get_vocab()}
    bias = {str(i): -100 for i in ends}
    for prompt in ("for i in range(10):", "import os\n", "def main():", "The quick brown fox"):
        ask = dict(model=server[1], prompt=prompt, max_tokens=20, temperature=0, logit_bias=bias)
        text = client.completions.create(**ask).choices[0].text
        if len(text) >= 4:
            break
    else:
        pytest.fail(f"the model produced too little text to test stop strings: {text!r}")
    stop = text[2:4]
    cut = client.completions.create(**ask, stop=[stop])
    assert cut.choices[0].text == text[: text.find(stop)]
    assert cut.choices[0].finish_reason == "stop"
    streamed = "".join(
        c.choices[0].text for c in client.completions.create(**ask, stop=[stop], stream=True) if c.choices
    )
    assert streamed == cut.choices[0].text


def test_probes_and_metrics(server, client):
    url, name, _ = server
    client.completions.create(model=name, prompt="x", max_tokens=2)
    assert httpx.get(url + "/readyz").status_code == 200
    assert httpx.get(url + "/livez").status_code == 200
    metrics = httpx.get(url + "/metrics").text
    for family in (
        "qwenflow_requests_total",
        "qwenflow_generated_tokens_total",
        "qwenflow_prompt_tokens_total",
        "qwenflow_request_latency_seconds_bucket",
        "qwenflow_queue_depth",
    ):
        assert family in metrics, family
    assert 'qwenflow_requests_total{endpoint="/v1/completions",status="200"}' in metrics
