"""Tool calls in Qwen2.5's format and grammars for constrained output.

Qwen2.5's chat template lists the tools in the system turn and asks for each call as
`<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`; `<tool_call>`/`</tool_call>` are single tokens in
its vocabulary (ordinary text when decoded). `ToolCallParser` turns the model's text into OpenAI content and
tool-call events, the same way for a whole completion and for a stream (a block is held back until it closes; a
block whose JSON does not parse stays text). Grammars are llguidance's (JSON schema and Lark, with the control
tokens referenced by id), checked against the tokenizer before a request is queued.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

OPEN, CLOSE = "<tool_call>", "</tool_call>"
# The JSON layout Qwen2.5's template writes (Python json.dumps separators); one layout, no free whitespace, so a
# constrained model cannot pad its output with spaces instead of ending it.
JSON_STYLE = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


@dataclass
class ToolCall:
    name: str
    arguments: str  # a JSON object, as text
    id: str = ""

    def __post_init__(self):
        self.id = self.id or f"call_{uuid.uuid4().hex[:24]}"


def parse_call(block: str) -> ToolCall | None:
    """The JSON inside one <tool_call> block, or None when it is not {"name": str, "arguments": object}."""
    try:
        obj = json.loads(block)
    except ValueError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"]:
        return None
    args = obj.get("arguments", {})
    if isinstance(args, str):  # some models write the arguments as a JSON string
        try:
            args = json.loads(args)
        except ValueError:
            return None
    if not isinstance(args, dict):
        return None
    return ToolCall(obj["name"], json.dumps(args, ensure_ascii=False))


class ToolCallParser:
    """Feed text deltas; get ("content", text) and ("tool_call", ToolCall) events back."""

    def __init__(self, parallel: bool = True):
        self.parallel = parallel
        self.buf = ""
        self.inside = False
        self.calls = 0
        self.after_call = False  # whitespace right after a call is layout, not content

    def feed(self, text: str) -> list[tuple]:
        self.buf += text
        out: list[tuple] = []
        while True:
            if self.inside:
                end = self.buf.find(CLOSE)
                if end < 0:
                    return out
                block, self.buf, self.inside = self.buf[:end], self.buf[end + len(CLOSE) :], False
                call = parse_call(block.strip())
                if call is None:  # malformed: the model's text goes back as text
                    out += self._content(OPEN + block + CLOSE)
                    continue
                if self.parallel or self.calls == 0:
                    out.append(("tool_call", call))
                self.calls += 1
                self.after_call = True
                continue
            start = self.buf.find(OPEN)
            if start >= 0:
                out += self._content(self.buf[:start].rstrip())
                self.buf, self.inside = self.buf[start + len(OPEN) :], True
                continue
            # held back: a tail that may still become the tag, and trailing whitespace (layout if a call follows)
            hold = next((k for k in range(min(len(OPEN) - 1, len(self.buf)), 0, -1) if self.buf.endswith(OPEN[:k])), 0)
            rest = self.buf[: len(self.buf) - hold]
            hold += len(rest) - len(rest.rstrip())
            out += self._content(self.buf[: len(self.buf) - hold])
            self.buf = self.buf[len(self.buf) - hold :]
            return out

    def finish(self) -> list[tuple]:
        """The end of the completion: an unclosed block (the model ran out of tokens) is text."""
        rest = (OPEN if self.inside else "") + self.buf
        self.buf, self.inside = "", False
        return self._content(rest)

    def _content(self, text: str) -> list[tuple]:
        if self.after_call:
            text = text.lstrip()
            if not text:
                return []
            self.after_call = False
        if self.calls and not self.parallel:  # one call only: what follows it is dropped
            return []
        return [("content", text)] if text else []


def parse_completion(text: str, parallel: bool = True) -> tuple[str | None, list[ToolCall]]:
    """(content or None, tool calls) of a whole completion."""
    parser = ToolCallParser(parallel)
    events = parser.feed(text) + parser.finish()
    content = "".join(e[1] for e in events if e[0] == "content")
    calls = [e[1] for e in events if e[0] == "tool_call"]
    return (content or None) if calls else content, calls


# ---------------------------------------------------------------- grammars


def json_schema_grammar(schema: dict) -> str:
    import llguidance

    return llguidance.LLMatcher.grammar_from_json_schema(schema, defaults=JSON_STYLE)


def tool_call_grammar(tools: list[dict], tokenizer, *, only: str | None = None, parallel: bool = True) -> str:
    """Lark grammar for one (or, with parallel, several) tool calls of the given tools, in Qwen2.5's layout."""
    chosen = [t for t in tools if only is None or t["function"]["name"] == only]
    schema = {
        "anyOf": [
            {
                "type": "object",
                "properties": {
                    "name": {"const": t["function"]["name"]},
                    "arguments": t["function"].get("parameters") or {"type": "object"},
                },
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
            for t in chosen
        ],
        "x-guidance": JSON_STYLE,
    }
    start, end = (_token_ref(tokenizer, t) for t in (OPEN, CLOSE))
    body = f'call: {start} "\\n" args "\\n" {end}\nargs: %json {json.dumps(schema)}\n'
    return ('start: call ("\\n" call)*\n' if parallel else "start: call\n") + body


def _token_ref(tokenizer, text: str) -> str:
    """`<[id]>` when the tokenizer has `text` as one token (llguidance matches control tokens by id), else a
    string literal."""
    tid = tokenizer.convert_tokens_to_ids(text)
    return f"<[{tid}]>" if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid >= 0 else json.dumps(text)


class Grammars:
    """Compiles grammars into llguidance matchers for one tokenizer (built once: the vocabulary scan is the cost)."""

    def __init__(self, tokenizer, vocab_size: int):
        import llguidance.hf

        self.tokenizer = tokenizer
        self.ll_tokenizer = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size)

    def matcher(self, grammar: str):
        """A fresh matcher; a grammar llguidance refuses raises ValueError with its first line."""
        import llguidance

        is_error, problems = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, self.ll_tokenizer)
        if is_error:
            raise ValueError(problems[0].splitlines()[0] if problems else "invalid grammar")
        matcher = llguidance.LLMatcher(self.ll_tokenizer, grammar)
        if matcher.is_error():
            raise ValueError(matcher.get_error().splitlines()[0])
        return matcher
