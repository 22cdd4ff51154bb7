"""Chat messages -> prompt token ids, with control-token text in anything a client wrote encoded as plain text.

The chat template's own `<|im_start|>`/`<|im_end|>` are control tokens; the same characters typed inside a message
(or a tool definition, a tool result, a tool call's arguments) must not be, or a user could close their turn and
open a system one. Each such occurrence is swapped for a sentinel before the template renders, and the rendered
text is tokenised piece by piece: the template's text as usual, each sentinel as its original characters with
special-token matching off. A request without control-token text tokenises exactly as the whole rendered string.
"""

from __future__ import annotations

import re
import secrets
from typing import Any


class PromptError(ValueError):
    """The request's text cannot be tokenised (e.g. a lone UTF-16 surrogate): the client's fault, a 400."""


class ChatEncoder:
    def __init__(self, tokenizer):
        self.tok = tokenizer
        controls = sorted(tokenizer.get_added_vocab(), key=len, reverse=True)
        self._controls = re.compile("|".join(re.escape(t) for t in controls)) if controls else None

    def render(self, messages: list[dict], tools: list[dict] | None = None) -> tuple[str, list[int]]:
        """(prompt text, prompt ids) for the conversation with the assistant's turn opened."""
        nonce = secrets.token_hex(8)
        found: list[str] = []

        def protect(value: Any) -> Any:
            if isinstance(value, str):
                if self._controls is None or not self._controls.search(value):
                    return value

                def swap(m: re.Match) -> str:
                    found.append(m.group(0))
                    return f"\ue000{nonce}{len(found) - 1}\ue001"

                return self._controls.sub(swap, value)
            if isinstance(value, dict):
                return {k: protect(v) for k, v in value.items()}
            if isinstance(value, list):
                return [protect(v) for v in value]
            return value

        safe_messages, safe_tools = protect(messages), protect(tools) if tools else None
        try:
            text = self.tok.apply_chat_template(
                safe_messages, tools=safe_tools, tokenize=False, add_generation_prompt=True
            )
            if not found:
                return text, self.encode(text)
            ids: list[int] = []
            pieces = re.split(f"\ue000{nonce}(\\d+)\ue001", text)
            for i, piece in enumerate(pieces):
                if i % 2:  # a sentinel: the client's characters, never a control token
                    ids += self.tok(found[int(piece)], add_special_tokens=False, split_special_tokens=True).input_ids
                elif piece:
                    ids += self.encode(piece)
        except PromptError:
            raise
        except Exception as e:  # the template or the tokenizer refused the text
            raise PromptError(
                f"the messages could not be tokenized ({type(e).__name__}: {str(e)[:120]}); send valid UTF-8 text"
            ) from None
        shown = re.sub(f"\ue000{nonce}(\\d+)\ue001", lambda m: found[int(m.group(1))], text)
        return shown, ids

    def encode(self, text: str) -> list[int]:
        try:
            return self.tok(text, add_special_tokens=False).input_ids
        except Exception as e:
            raise PromptError(
                f"the prompt could not be tokenized ({type(e).__name__}: {str(e)[:120]}); send valid UTF-8 text"
            ) from None
