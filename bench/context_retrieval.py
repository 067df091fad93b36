"""Retrieval speed: indexing and searching a collection of n documents (figures, not a timed test).

Workload: ``n_docs`` synthetic documents (40 to 160 words each, drawn Zipf-like from a 20,000-word
vocabulary of made-up words, so common words match thousands of passages and rare ones a few), indexed
in one ``add`` into an in-memory SQLiteIndex; then 200 varied queries (1 to 8 words, common and rare,
some with punctuation a person or model would type), each timed alone. The same again with vectors
(WordLlama's embeddings, exact search) and hybrid search when the retrieval-vector extra is installed.
The goal: FTS5 p99 under 20 ms at 10,000 documents.

    python bench/context_retrieval.py [N_DOCS]
"""

from __future__ import annotations

import importlib.util
import random
import statistics
import sys
import time
from collections.abc import Callable

QUERIES = 200
VOCABULARY = 20_000
_SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["an", "el", "or", "is", "um"]


def _vocabulary(rng: random.Random) -> list[str]:
    words: dict[str, None] = {}
    while len(words) < VOCABULARY:
        words.setdefault("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))), None)
    return list(words)


def _documents(n_docs: int, seed: int = 7) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    vocabulary = _vocabulary(rng)
    weights = [1.0 / (rank + 1) for rank in range(len(vocabulary))]  # Zipf: a few words are everywhere
    texts = []
    for _ in range(n_docs):
        words = rng.choices(vocabulary, weights=weights, k=rng.randint(40, 160))
        sentences = [" ".join(words[i : i + 12]).capitalize() + "." for i in range(0, len(words), 12)]
        texts.append(" ".join(sentences))
    return texts, vocabulary


def _queries(vocabulary: list[str], seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    queries = []
    for n in range(QUERIES):
        common = rng.sample(vocabulary[:200], rng.randint(0, 3))
        rare = rng.sample(vocabulary[200:], rng.randint(1, 5))
        words = common + rare
        rng.shuffle(words)
        query = " ".join(words)
        if n % 5 == 0:
            query = f'what does "{query}" mean?'
        elif n % 7 == 0:
            query = query.upper() + " (OR *)"
        queries.append(query)
    return queries


def _percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49], cuts[98]


def _time_searches(figures: dict[str, float], name: str, search: Callable[[str], object], queries: list[str]) -> None:
    """``NAME_p50_ms``/``NAME_p99_ms`` (wall clock) and ``NAME_cpu_p50_ms``/``NAME_cpu_p99_ms`` (the process's
    CPU time: on a shared machine the wall clock also counts waiting for a core)."""
    search(queries[0])  # warm: the first vector search reads the matrix
    wall, cpu = [], []
    for query in queries:
        started, started_cpu = time.perf_counter(), time.process_time()
        search(query)
        cpu.append((time.process_time() - started_cpu) * 1000)
        wall.append((time.perf_counter() - started) * 1000)
    figures[f"{name}_p50_ms"], figures[f"{name}_p99_ms"] = _percentiles(wall)
    figures[f"{name}_cpu_p50_ms"], figures[f"{name}_cpu_p99_ms"] = _percentiles(cpu)


def measure(n_docs: int = 10_000) -> dict[str, float]:
    """Index time (s) and search p50/p99 (ms, wall clock and CPU) for FTS5, and for vectors and hybrid where
    the retrieval-vector extra is installed."""
    from twelvefactor.retrieval import Collection, Document, SQLiteIndex, wordllama_embedder

    texts, vocabulary = _documents(n_docs)
    documents = [Document(id=f"doc-{n}", source=f"docs/{n}.md", text=text) for n, text in enumerate(texts)]
    queries = _queries(vocabulary)
    figures: dict[str, float] = {"n_docs": float(n_docs), "queries": float(len(queries))}

    keyword = Collection("bench", SQLiteIndex())
    started = time.perf_counter()
    keyword.add(documents)
    figures["fts5_index_s"] = time.perf_counter() - started
    _time_searches(figures, "fts5", lambda q: keyword.search(q, k=5), queries)

    if importlib.util.find_spec("wordllama") is not None:
        vectors = Collection("bench", SQLiteIndex(embed=wordllama_embedder()))
        started = time.perf_counter()
        vectors.add(documents)
        figures["vector_index_s"] = time.perf_counter() - started
        _time_searches(figures, "vector", lambda q: vectors.search(q, k=5, mode="vector"), queries)
        _time_searches(figures, "hybrid", lambda q: vectors.search(q, k=5, mode="hybrid"), queries)
    return figures


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    for name, value in measure(n).items():
        print(f"{name:>16}: {value:,.2f}")
