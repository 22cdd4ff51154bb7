"""The shipped benchmark files load completely, with hashes, and bad rows are counted, not fatal."""

import json

from qwenflow.data.benchmarks import LOADERS, benchmark_texts, load_gsm8k, load_haystack, load_humaneval, load_mmlu


def test_real_benchmarks_load_with_expected_sizes():
    mmlu = load_mmlu()
    assert len(mmlu) == 14042 and mmlu.skipped == {"header row (correct_answer == 'answer')": 2}
    assert len({it.subject for it in mmlu.items}) == 57 and len(mmlu.sha256) == 64
    assert len(load_humaneval()) == 164
    for name in ("gsm8k", "hellaswag", "truthfulqa_mc1"):
        assert len(LOADERS[name]()) == 100
    assert len(load_haystack()) == 49


def test_malformed_rows_are_counted(tmp_path):
    f = tmp_path / "mmlu.jsonl"
    good = {
        "question": "2+2?",
        "answer_a": "3",
        "answer_b": "4",
        "answer_c": "5",
        "answer_d": "6",
        "correct_answer": "B",
        "topic": "math",
    }
    f.write_text(
        "\n".join(
            [
                json.dumps(good),
                "{not json",
                json.dumps({**good, "correct_answer": "E"}),
                json.dumps({**good, "answer_c": None}),
                "[1, 2]",
            ]
        )
        + "\n"
    )
    b = load_mmlu(f)
    assert len(b) == 1 and b.items[0].answer == 1
    assert sum(b.skipped.values()) == 4 and all(k.startswith("malformed") for k in b.skipped)
    g = tmp_path / "gsm.jsonl"
    g.write_text(
        json.dumps({"prompt": "q", "expected": "twelve"}) + "\n" + json.dumps({"prompt": "q", "expected": "1,200"})
    )
    b = load_gsm8k(g)
    assert [it.answer for it in b.items] == ["1200"] and sum(b.skipped.values()) == 1


def test_benchmark_texts_cover_every_item():
    texts = benchmark_texts()
    assert len(texts["mmlu"]) == 14042 and len(texts["humaneval"]) == 164
    assert any("Melanie is a door-to-door saleswoman" in t for t in texts["gsm8k"])
