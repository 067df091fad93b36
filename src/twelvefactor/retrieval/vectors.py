"""Vector search: an embedder turns texts into vectors; results are fused with BM25's by rank.

``Embed`` is any ``Callable[[list[str]], list[list[float]]]``: bring your own (a provider's embeddings
endpoint, a local model). ``wordllama_embedder()`` is the offline one: WordLlama's ``l2_supercat``
token embeddings, which the ``wordllama`` wheel ships (256 dimensions, 16 MB); a text's vector is the
mean of its tokens' vectors. The weights and tokenizer are read straight from the installed package's
files, never through ``WordLlama.load``, which looks for the tokenizer in a directory the wheel does not
have and then downloads it (and whose import configures the root logger). Needs the
``retrieval-vector`` extra (numpy, wordllama).

Vectors are kept L2-normalised, so a score is the cosine similarity. Search is exact (one matrix
product over the collection's vectors): a few milliseconds at ten thousand passages of 256 dimensions
(``bench/context_retrieval.py``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twelvefactor.errors import RetrievalError, UserError
from twelvefactor.events import RetrievedDocument

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Matrix = npt.NDArray[np.float32]

Embed = Callable[[list[str]], "Sequence[Sequence[float]] | Matrix"]
"""Texts in, one vector per text out (a list of lists, or a 2-D numpy array)."""

RRF_K = 60
"""Reciprocal-rank fusion's constant (Cormack et al. 2009): a result's score is the sum of 1/(60 + rank)."""

WORDLLAMA_DIMS = (64, 128, 256)
_EXTRA = "install the retrieval-vector extra: pip install 'twelvefactor[retrieval-vector]'"


def numpy_module() -> Any:
    """numpy, or UserError naming the extra that installs it."""
    try:
        import numpy
    except ImportError as exc:
        raise UserError(f"vector search needs numpy: {_EXTRA}") from exc
    return numpy


def wordllama_embedder(dim: int = 256) -> Embed:
    """WordLlama's token embeddings (shipped in its wheel, nothing downloaded), truncated to ``dim``
    (64, 128 or 256: the model is trained so that a prefix of each vector still works)."""
    if dim not in WORDLLAMA_DIMS:
        raise UserError(f"wordllama_embedder: dim must be one of {WORDLLAMA_DIMS}, got {dim!r}")
    np = numpy_module()
    spec = importlib.util.find_spec("wordllama")  # finds the package's files without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"wordllama_embedder needs the wordllama package: {_EXTRA}")
    root = Path(next(iter(spec.submodule_search_locations)))
    weights = root / "weights" / "l2_supercat_256.safetensors"
    tokenizer_file = root / "tokenizers" / "l2_supercat_tokenizer_config.json"
    if not weights.is_file() or not tokenizer_file.is_file():
        raise RetrievalError(f"the installed wordllama has no {weights.name} or {tokenizer_file.name}: reinstall it")
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    table = np.ascontiguousarray(load_file(str(weights))["embedding.weight"][:, :dim], dtype=np.float32)
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_padding()
    tokenizer.no_truncation()

    def embed(texts: list[str]) -> Matrix:
        out: Matrix = np.zeros((len(texts), dim), dtype=np.float32)
        for row, encoding in enumerate(tokenizer.encode_batch(texts, add_special_tokens=False)):
            if encoding.ids:  # a text with no tokens keeps a zero vector: it matches nothing
                out[row] = table[np.asarray(encoding.ids, dtype=np.int64)].mean(axis=0)
        return out

    return embed


def embed_matrix(embed: Embed, texts: list[str], dim: int | None = None) -> Matrix:
    """``embed(texts)`` as a float32 matrix of unit rows, checked: one finite vector per text, of ``dim``."""
    np = numpy_module()
    try:
        vectors = embed(texts)
        matrix = np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1) if texts else None
    except (TypeError, ValueError) as exc:
        raise RetrievalError(f"the embedder's output is not one vector per text: {exc}") from exc
    if matrix is None:
        return np.zeros((0, dim or 0), dtype=np.float32)  # type: ignore[no-any-return]
    if len(vectors) != len(texts) or not np.isfinite(matrix).all():
        raise RetrievalError(f"the embedder gave {len(vectors)} vectors (or non-finite ones) for {len(texts)} texts")
    if dim is not None and matrix.shape[1] != dim:
        raise RetrievalError(
            f"the embedder gives vectors of {matrix.shape[1]} dimensions, the collection holds {dim}:"
            " use the embedder it was indexed with, or add its documents again"
        )
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)  # type: ignore[no-any-return]


def nearest(matrix: Matrix, query: Matrix, k: int) -> list[tuple[int, float]]:
    """The ``k`` rows of ``matrix`` nearest ``query`` (cosine), best first, as (row, score)."""
    np = numpy_module()
    if matrix.shape[0] == 0 or not query.any():
        return []
    # einsum, not `@`: one thread. OpenBLAS splits a matrix-vector product over threads that, on a busy
    # machine, wait for cores: 0.1 ms or 16 ms for the same product; einsum takes 0.5 ms every time.
    scores = np.einsum("ij,j->i", matrix, query[0])
    k = min(k, scores.shape[0])
    top = np.argpartition(scores, -k)[-k:]
    top = top[np.argsort(-scores[top], kind="stable")]
    return [(int(row), float(scores[row])) for row in top]


def fuse(rankings: Sequence[Sequence[RetrievedDocument]], k: int) -> list[RetrievedDocument]:
    """Reciprocal-rank fusion of several best-first result lists: the top ``k`` by the sum of 1/(60 + rank)."""
    scores: dict[str, float] = {}
    found: dict[str, RetrievedDocument] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=1):
            scores[doc.id] = scores.get(doc.id, 0.0) + 1.0 / (RRF_K + rank)
            found.setdefault(doc.id, doc)
    best = sorted(scores, key=lambda id_: -scores[id_])[:k]
    return [found[id_].model_copy(update={"score": round(scores[id_], 6)}) for id_ in best]
