"""A small tool-use SFT set in Qwen2.5's format, so the served model answers `tools` requests with calls.

Each conversation offers one or two tools in the system turn exactly as Qwen2.5's chat template renders a
`tools` argument (the "# Tools" block with one JSON signature per line), asks for something one tool does, and
the assistant answers with `<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`. A quarter of them go on:
the tool's result comes back as a `<tool_response>` user turn (the template's rendering of a `tool` message) and
the assistant states it. The messages are plain system/user/assistant text, so every SFT path renders them without
a tools argument and gets the same tokens the server's prompt has.

Cities are split in two: training conversations use the first set, `heldout_tool_prompts` the second, so a
correct call on a held-out prompt copied the city from the question rather than from memory.
"""

from __future__ import annotations

import json
import random

TASK = "tool_calls"
CITIES = [
    "Paris",
    "Oslo",
    "Lima",
    "Cairo",
    "Tokyo",
    "Delhi",
    "Rome",
    "Quito",
    "Seoul",
    "Dakar",
    "Perth",
    "Hanoi",
    "Porto",
    "Minsk",
    "Sofia",
    "Accra",
    "Dubai",
    "Bern",
    "Riga",
    "Kyiv",
    "Nairobi",
    "Boston",
    "Madrid",
    "Lagos",
    "Berlin",
    "Havana",
    "Manila",
    "Prague",
    "Vienna",
    "Athens",
]
HELDOUT_CITIES = CITIES[::5]  # 6 of the 30, never in training conversations
ZONES = ["UTC", "CET", "JST", "EST", "IST", "AEST"]
CURRENCIES = ["USD", "EUR", "JPY", "GBP", "INR", "CHF"]

# Short signatures: with a small BPE vocabulary the template's tools block alone is ~120 tokens and each tool
# ~60-90 more, and the tiny recipe's SFT rows are cut at max_seq_len.
TOOLS = {
    "get_weather": {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    },
    "get_time": {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Time in a time zone",
            "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
        },
    },
    "convert": {
        "type": "function",
        "function": {
            "name": "convert",
            "description": "Convert money",
            "parameters": {
                "type": "object",
                "properties": {
                    "amount": {"type": "number"},
                    "source": {"type": "string"},
                    "target": {"type": "string"},
                },
                "required": ["amount", "source", "target"],
            },
        },
    },
    "get_population": {
        "type": "function",
        "function": {
            "name": "get_population",
            "description": "Population of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    },
}


def tools_system_prompt(tools: list[dict], system: str = "You are a helpful assistant.") -> str:
    """The system turn's text that Qwen2.5's template writes for `tools` (json.dumps is its tojson filter)."""
    lines = "".join("\n" + json.dumps(t, ensure_ascii=False) for t in tools)
    return (
        f"{system}\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
        + lines
        + "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
        '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": '
        "<args-json-object>}\n</tool_call>"
    )


def tool_call_text(name: str, arguments: dict) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments}, ensure_ascii=False)}\n</tool_call>"


def _request(rng: random.Random, cities: list[str]) -> tuple[str, str, dict, str, str]:
    """(tool, question, arguments, tool result, final answer) for one random request."""
    kind = rng.choice(list(TOOLS))
    if kind == "get_weather":
        city, temp = rng.choice(cities), rng.randint(-10, 35)
        q = rng.choice(
            [
                "What's the weather in {c}?",
                "How warm is it in {c} now?",
                "Weather for {c}, please.",
                "Is it cold in {c} today?",
            ]
        ).format(c=city)
        return kind, q, {"city": city}, json.dumps({"temperature_c": temp}), f"It is {temp} C in {city}."
    if kind == "get_population":
        city, pop = rng.choice(cities), rng.randint(1, 30) * 100_000
        q = rng.choice(["How many people live in {c}?", "What is the population of {c}?", "Population of {c}?"]).format(
            c=city
        )
        return kind, q, {"city": city}, json.dumps({"population": pop}), f"{city} has about {pop} people."
    if kind == "get_time":
        zone, hour = rng.choice(ZONES), rng.randint(0, 23)
        q = rng.choice(["What time is it in {z}?", "Current time in {z}?", "Tell me the time in {z}."]).format(z=zone)
        return kind, q, {"zone": zone}, json.dumps({"time": f"{hour:02d}:00"}), f"It is {hour:02d}:00 {zone}."
    amount = rng.randint(1, 500)
    src, dst = rng.sample(CURRENCIES, 2)
    q = rng.choice(["Convert {a} {s} to {t}.", "How much is {a} {s} in {t}?", "{a} {s} in {t}?"]).format(
        a=amount, s=src, t=dst
    )
    value = round(amount * rng.uniform(0.5, 2.0), 2)
    return (
        kind,
        q,
        {"amount": amount, "source": src, "target": dst},
        json.dumps({"result": value}),
        f"{amount} {src} is {value} {dst}.",
    )


def _offered(rng: random.Random, needed: str, most: int) -> list[dict]:
    others = [k for k in TOOLS if k != needed]
    chosen = [needed] + rng.sample(others, rng.randint(0, most - 1))
    rng.shuffle(chosen)
    return [TOOLS[k] for k in chosen]


def tool_call_examples(n: int, seed: int = 0, most_tools: int = 2) -> list[dict]:
    """n SFT rows {"messages", "task", "answer"}; the answer is the expected call as JSON. Each offers the needed
    tool and up to most_tools - 1 others."""
    rng = random.Random(seed * 7919 + 3)
    cities = [c for c in CITIES if c not in HELDOUT_CITIES]
    rows = []
    for i in range(n):
        name, question, args, result, final = _request(rng, cities)
        messages = [
            {"role": "system", "content": tools_system_prompt(_offered(rng, name, most_tools))},
            {"role": "user", "content": question},
            {"role": "assistant", "content": tool_call_text(name, args)},
        ]
        if i % 4 == 3:  # the round trip: the result comes back and the assistant answers with it
            messages += [
                {"role": "user", "content": f"<tool_response>\n{result}\n</tool_response>"},
                {"role": "assistant", "content": final},
            ]
        rows.append({"messages": messages, "task": TASK, "answer": json.dumps({"name": name, "arguments": args})})
    return rows


def heldout_tool_prompts(n: int, seed: int = 1, most_tools: int = 2) -> list[dict]:
    """Held-out requests for measuring the served model's tool calls: {"messages", "tools", "name", "arguments"}
    with OpenAI-style `tools` (the server renders them); weather and population questions use held-out cities."""
    rng = random.Random(seed * 104729 + 11)
    out = []
    for _ in range(n):
        name, question, args, _, _ = _request(rng, HELDOUT_CITIES)
        out.append(
            {
                "messages": [{"role": "user", "content": question}],
                "tools": _offered(rng, name, most_tools),
                "name": name,
                "arguments": args,
            }
        )
    return out
