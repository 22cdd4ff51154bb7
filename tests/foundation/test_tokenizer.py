"""Tokenizers: the real Qwen2.5 ids, the trained BPE's round trip and control tokens, the assistant mask."""

from __future__ import annotations

import subprocess
import sys

from transformers import AutoTokenizer

from qwenflow.tokenizer import CONTROL_TOKENS, load_tokenizer
from qwenflow.tokenizer.qwen import build_qwen_tokenizer

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 12+30?"},
    {"role": "assistant", "content": "42"},
    {"role": "user", "content": "And 1+1?"},
    {"role": "assistant", "content": "2"},
]


def test_real_qwen_tokenizer_ids(tmp_path):
    tok = build_qwen_tokenizer()
    assert tok("<|im_start|>user\nHello world!<|im_end|>")["input_ids"] == [151644, 872, 198, 9707, 1879, 0, 151645]
    assert tok.convert_tokens_to_ids(CONTROL_TOKENS) == list(range(151643, 151665))
    assert len(tok) == 151665
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    assert again("<|im_start|>user\nHello world!<|im_end|>")["input_ids"] == [151644, 872, 198, 9707, 1879, 0, 151645]


def test_trained_bpe_round_trip_and_control_tokens(tiny_tokenizer_dir):
    tok = load_tokenizer(tiny_tokenizer_dir)
    assert len(tok) == 1024
    assert tok.convert_tokens_to_ids(CONTROL_TOKENS) == list(range(1024 - 22, 1024))
    text = "def add(a, b):\n    return a + b  # 12345 ünïcödé ✓\n"
    ids = tok(text)["input_ids"]
    assert tok.decode(ids) == text
    assert all(tok.convert_ids_to_tokens(i) in "12345" for i in tok("12345")["input_ids"])  # digits split one by one
    ids = tok("<|im_start|>assistant\n<tool_call><|im_end|>")["input_ids"]
    assert ids[0] == tok.convert_tokens_to_ids("<|im_start|>") and ids[-1] == tok.convert_tokens_to_ids("<|im_end|>")


def test_chat_template_masks_only_assistant_tokens(tiny_tokenizer_dir):
    for tok in (load_tokenizer(tiny_tokenizer_dir), build_qwen_tokenizer()):
        enc = tok.apply_chat_template(CHAT, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        ids, mask = enc["input_ids"], enc["assistant_masks"]
        masked = tok.decode([i for i, m in zip(ids, mask) if m])
        assert masked == "42<|im_end|>2<|im_end|>"
        text = tok.apply_chat_template(CHAT[:2], tokenize=False, add_generation_prompt=True)
        assert text == (
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 12+30?<|im_end|>\n"
            "<|im_start|>assistant\n"
        )


def test_chat_template_renders_tool_calls():
    tok = build_qwen_tokenizer()
    tools = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]
    msgs = [
        {"role": "user", "content": "add 1 2"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "add", "arguments": {"a": 1, "b": 2}}}],
        },
        {"role": "tool", "content": "3"},
    ]
    text = tok.apply_chat_template(msgs, tools=tools, tokenize=False)
    assert '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call><|im_end|>' in text
    assert "<tool_response>\n3\n</tool_response>" in text and "# Tools" in text


def test_stdlib_platform_is_not_shadowed():
    """platform/ is a source root: `import platform` from the repo root must still be the standard library's."""
    import os
    import sysconfig

    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    out = subprocess.run(
        [sys.executable, "-c", "import platform, qwenflow; print(platform.system()); print(platform.__file__)"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0] == "Linux"
    assert os.path.dirname(out[1]) == sysconfig.get_paths()["stdlib"]
