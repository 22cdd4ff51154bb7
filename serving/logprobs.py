"""Log-probabilities in the OpenAI shapes: chat's `logprobs.content` entries (token, logprob, bytes, top_logprobs)
and the legacy completions object (tokens, token_logprobs, top_logprobs, text_offset).

A token's bytes come from the byte-level BPE alphabet (GPT-2's byte <-> printable-character table, which
Qwen2.5's tokenizer uses), so a token holding part of a UTF-8 character still reports its exact bytes.
"""

from __future__ import annotations

from functools import lru_cache


def _byte_alphabet() -> dict[str, int]:
    """GPT-2's table: printable characters stand for the 256 byte values in byte-level BPE token strings."""
    keep = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars, n = {}, 0
    for b in range(256):
        if b in keep:
            chars[chr(b)] = b
        else:
            chars[chr(256 + n)] = b
            n += 1
    return chars


class LogprobFormat:
    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.alphabet = _byte_alphabet()
        self.added = {i: t for t, i in tokenizer.get_added_vocab().items()}
        self.token = lru_cache(maxsize=65536)(self._token)

    def _token(self, token_id: int) -> tuple[str, list[int]]:
        """(text, bytes) of one token."""
        if token_id in self.added:
            raw = self.added[token_id].encode()
        else:
            piece = self.tok.convert_ids_to_tokens(token_id) or ""
            if all(c in self.alphabet for c in piece):
                raw = bytes(self.alphabet[c] for c in piece)
            else:  # not a byte-level piece: its decoded text
                raw = self.tok.decode([token_id]).encode()
        return raw.decode("utf-8", errors="replace"), list(raw)

    def chat(self, entries: list) -> dict:
        out = []
        for token_id, lp, top in entries:
            text, raw = self.token(token_id)
            out.append(
                {
                    "token": text,
                    "logprob": lp,
                    "bytes": raw,
                    "top_logprobs": [
                        {"token": self.token(t)[0], "logprob": v, "bytes": self.token(t)[1]} for t, v in top
                    ],
                }
            )
        return {"content": out}

    def legacy(self, entries: list) -> dict:
        tokens, offsets, at = [], [], 0
        for token_id, _, _ in entries:
            text = self.token(token_id)[0]
            tokens.append(text)
            offsets.append(at)
            at += len(text)
        return {
            "tokens": tokens,
            "token_logprobs": [lp for _, lp, _ in entries],
            "top_logprobs": [{self.token(t)[0]: v for t, v in top} for _, _, top in entries],
            "text_offset": offsets,
        }
