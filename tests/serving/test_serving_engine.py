"""The batching engine in-process: requests that join mid-flight decode exactly as one-at-a-time generate does,
per-request sampling stays per request, and the loader's YaRN / context switches."""

from __future__ import annotations

import json
import shutil
import threading

import pytest
import torch

from qwenflow.longctx.yarn import YARN_KEY, yarn_parameters
from qwenflow.serving.engine import Engine, GenRequest
from qwenflow.serving.loader import load

PROMPTS = ["def foo(x):", "import os\nimport", "class A:\n    def __init__(self", "x = 1"]


@pytest.fixture(scope="module")
def lm(tiny_model_dir):
    loaded = load(tiny_model_dir, device="cpu")
    torch.manual_seed(0)
    with torch.no_grad():  # untrained weights repeat one token; noise makes sequences differ so mix-ups show
        for p in loaded.model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return loaded.model, loaded.tokenizer


def visible_text(tok, ids: list[int]) -> str:
    """The text a client sees: special control tokens hidden, Qwen2.5's tool-call and FIM tokens shown (as its own
    tokenizer decodes them with skip_special_tokens)."""
    from qwenflow.tokenizer.special import NOT_SPECIAL

    hidden = {i for t, i in tok.get_added_vocab().items() if t not in NOT_SPECIAL}
    return tok.decode([i for i in ids if i not in hidden])


def run_all(engine, reqs, stagger=0.0):
    """Submit requests (optionally staggered so later ones join a running batch); wait for all."""
    done = {i: threading.Event() for i in range(len(reqs))}
    out = {i: {"text": "", "finish": None} for i in range(len(reqs))}

    def make_cb(i):
        def cb(kind, index, payload):
            if kind == "text":
                out[i]["text"] += payload[0]
            else:
                out[i]["finish"] = payload if kind == "error" else payload[0]
                done[i].set()

        return cb

    for i, r in enumerate(reqs):
        r.on_event = make_cb(i)
        engine.submit(r)
        if stagger:
            threading.Event().wait(stagger)
    for e in done.values():
        assert e.wait(60)
    return out


@pytest.mark.parametrize("continuous", [True, False])
def test_batched_greedy_matches_one_at_a_time(lm, continuous):
    model, tok = lm
    expected = []
    for p in PROMPTS:
        ids = tok(p, return_tensors="pt").input_ids
        gen = model.generate(ids, max_new_tokens=10, do_sample=False, eos_token_id=None, pad_token_id=tok.pad_token_id)
        expected.append(visible_text(tok, gen[0, ids.shape[1] :].tolist()))
    engine = Engine(model, tok, max_batch_size=8, continuous=continuous)
    engine.eos_ids = set()  # compare the full 10 tokens
    try:
        out = run_all(engine, [GenRequest(tok(p).input_ids, 10, temperature=0) for p in PROMPTS], stagger=0.02)
    finally:
        engine.close()
    assert [out[i]["text"] for i in range(len(PROMPTS))] == expected
    assert all(o["finish"] == "length" for o in out.values())


def test_seeded_rows_do_not_depend_on_their_batch(lm):
    model, tok = lm
    engine = Engine(model, tok, max_batch_size=8)
    try:
        alone = run_all(engine, [GenRequest(tok("x = 1").input_ids, 8, temperature=1.0, seed=3)])[0]["text"]
        mixed = run_all(
            engine, [GenRequest(tok(p).input_ids, 8, temperature=1.0, seed=3 if p == "x = 1" else 9) for p in PROMPTS]
        )
    finally:
        engine.close()
    assert mixed[PROMPTS.index("x = 1")]["text"] == alone


def test_cancelled_request_leaves_the_batch(lm):
    model, tok = lm
    engine = Engine(model, tok, max_batch_size=4)
    engine.eos_ids = set()
    started = threading.Event()
    req = GenRequest(
        tok("def f():").input_ids, 10_000, temperature=0, on_event=lambda kind, index, payload: started.set()
    )
    try:
        engine.submit(req)
        assert started.wait(30)
        req.cancelled = True
        for _ in range(100):
            if engine.running == 0:
                break
            threading.Event().wait(0.05)
        assert engine.running == 0 and engine.steps < 10_000
    finally:
        engine.close()


def test_yarn_switch_extends_the_context(tiny_model_dir, tmp_path):
    model_dir = tmp_path / "m"
    shutil.copytree(tiny_model_dir, model_dir)
    plain = load(model_dir, device="cpu")
    with pytest.raises(ValueError, match="no YaRN option"):  # not from the long-context stage: nothing stored
        load(model_dir, yarn=True, device="cpu")
    # what the long-context stage stores: YaRN x4 over the trained length, under qwenflow_yarn
    cfg = json.loads((model_dir / "config.json").read_text())
    cfg[YARN_KEY] = yarn_parameters(cfg["rope_parameters"], cfg["max_position_embeddings"], 4.0)
    (model_dir / "config.json").write_text(json.dumps(cfg))
    yarn = load(model_dir, yarn=True, device="cpu")
    assert yarn.context_limit == 4 * plain.context_limit
    assert yarn.model.config.rope_parameters["rope_type"] == "yarn"
    assert load(model_dir, device="cpu").context_limit == plain.context_limit  # off unless switched on


def test_dca_attention_is_registered_and_decodes_exactly(tiny_model_dir):
    """attention=dca goes through qwenflow.longctx.register_attention; served one sequence at a time it matches
    generate token for token."""
    from qwenflow.serving.loader import batch_limit

    loaded = load(tiny_model_dir, attention="dca", device="cpu")
    model, tok = loaded.model, loaded.tokenizer
    assert model.config._attn_implementation == "dca" and batch_limit("dca", 16) == 1 and batch_limit("sdpa", 16) == 16
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    expected = []
    for p in PROMPTS[:2]:
        ids = tok(p, return_tensors="pt").input_ids
        gen = model.generate(ids, max_new_tokens=6, do_sample=False, eos_token_id=None, pad_token_id=tok.pad_token_id)
        expected.append(visible_text(tok, gen[0, ids.shape[1] :].tolist()))
    engine = Engine(model, tok, max_batch_size=batch_limit("dca", 16))
    engine.eos_ids = set()
    try:
        out = run_all(engine, [GenRequest(tok(p).input_ids, 6, temperature=0) for p in PROMPTS[:2]])
    finally:
        engine.close()
    assert [out[0]["text"], out[1]["text"]] == expected


def test_one_requests_trouble_stays_with_it(lm):
    """Sampling values at the edge of float range, a row whose sampling fails, a listener that raises and a request
    cancelled before its first token share a batch with greedy rows: those rows decode exactly as they do alone."""
    model, tok = lm
    engine = Engine(model, tok, max_batch_size=16)
    engine.eos_ids = set()
    try:
        alone = run_all(engine, [GenRequest(tok(p).input_ids, 8, temperature=0) for p in PROMPTS])
        gone = GenRequest(tok("x").input_ids, 8, temperature=0)
        gone.cancelled = True

        def explode(kind, index, payload):
            raise RuntimeError("listener gone")

        hostile = [
            GenRequest(tok("a").input_ids, 8, temperature=1e-300),  # treated as greedy
            GenRequest(tok("b").input_ids, 8, temperature=1.0, top_p=1e-300, seed=2**64 - 1),
            GenRequest(tok("c").input_ids, 8, temperature=1.0, seed=-(2**63)),
            GenRequest(tok("d").input_ids, 8, temperature=1.0, logit_bias={5: float("nan")}),  # sampling fails
        ]
        boom = GenRequest(tok("f").input_ids, 8, temperature=0, on_event=explode)
        engine.submit(gone)
        engine.submit(boom)
        mixed = run_all(engine, hostile + [GenRequest(tok(p).input_ids, 8, temperature=0) for p in PROMPTS])
        for _ in range(100):
            if engine.running == 0:
                break
            threading.Event().wait(0.05)
        assert engine.running == 0  # every row left the batch: no slot is held by a failed or cancelled row
    finally:
        engine.close()
    assert [mixed[len(hostile) + i]["text"] for i in range(len(PROMPTS))] == [
        alone[i]["text"] for i in range(len(PROMPTS))
    ]
    assert [mixed[i]["finish"] for i in range(3)] == ["length"] * 3
    assert mixed[3]["finish"].startswith("generation failed: ValueError")


def test_penalties_and_logit_bias_follow_the_openai_formula(lm):
    """Greedy with penalties and logit_bias picks, at every step, argmax(logits + bias - frequency * count -
    presence * [count > 0]) of the model's own logits (OpenAI's definition, counts over generated tokens)."""
    model, tok = lm
    prompt = tok("x = 1").input_ids
    bias, freq, pres = {7: 3.0, 11: -100.0}, 0.8, 0.5
    ids, counts = list(prompt), torch.zeros(model.config.vocab_size)
    expected = []
    with torch.inference_mode():
        for _ in range(10):
            logits = model(torch.tensor([ids])).logits[0, -1].float()
            for t, b in bias.items():
                logits[t] += b
            logits -= freq * counts + pres * (counts > 0).float()
            t = int(logits.argmax())
            expected.append(t)
            counts[t] += 1
            ids.append(t)
    engine = Engine(model, tok, max_batch_size=8)
    engine.eos_ids = set()
    got: list[int] = []
    done = threading.Event()

    def cb(kind, index, payload):
        if kind == "done":
            got.extend(t for t, _, _ in payload[3])
            done.set()

    try:
        engine.submit(
            GenRequest(
                prompt,
                10,
                temperature=0,
                logit_bias=bias,
                frequency_penalty=freq,
                presence_penalty=pres,
                logprobs=0,
                stream=False,
                on_event=cb,
            )
        )
        assert done.wait(60)
    finally:
        engine.close()
    assert got == expected


def test_n_choices_share_one_prefill_and_decode_as_alone(lm):
    """n=3 greedy gives three copies of the n=1 answer; seeded sampling's choice j equals a lone request seeded
    seed + j."""
    model, tok = lm
    engine = Engine(model, tok, max_batch_size=8)
    engine.eos_ids = set()
    prompt = tok("def foo(x):").input_ids

    def run(req):
        texts: dict[int, str] = {}
        done = threading.Semaphore(0)

        def cb(kind, index, payload):
            if kind == "done":
                texts[index] = payload[2]
                done.release()

        req.on_event, req.stream = cb, False
        engine.submit(req)
        for _ in range(req.n):
            assert done.acquire(timeout=60)
        return [texts[j] for j in range(req.n)]

    try:
        greedy = run(GenRequest(prompt, 8, temperature=0, n=3))
        alone = run(GenRequest(prompt, 8, temperature=0))
        sampled = run(GenRequest(prompt, 8, temperature=1.0, seed=40, n=3))
        lone = [run(GenRequest(prompt, 8, temperature=1.0, seed=40 + j))[0] for j in range(3)]
    finally:
        engine.close()
    assert greedy == alone * 3
    assert sampled == lone and len(set(sampled)) > 1
