"""``twelvefactor docs add | search``: index text and markdown files into a collection, search it.

``--db`` is a SQLite file (by default the store's ``twelvefactor.db``: documents and threads in one
file) or a ``postgresql://`` URL. A file's id and source are its path as given; a directory adds its
text files (``.md``, ``.markdown``, ``.txt``, ``.rst``) recursively. ``--vectors`` keeps WordLlama
vectors too (the retrieval-vector extra) and searches by hybrid ranking.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from twelvefactor.errors import TwelveFactorError

if TYPE_CHECKING:
    from twelvefactor.retrieval.collection import Collection

TEXT_SUFFIXES = frozenset({".md", ".markdown", ".txt", ".rst"})
_BATCH = 100

docs_app = typer.Typer(no_args_is_help=True, help="Index documents into a collection and search it.")
console = Console(highlight=False, emoji=False)
errors = Console(stderr=True, highlight=False, emoji=False)

DbOption = Annotated[str, typer.Option("--db", metavar="FILE", help="SQLite file or postgresql:// URL")]
VectorsOption = Annotated[bool, typer.Option("--vectors", help="Keep WordLlama vectors too; search hybrid")]


def _fail(message: str) -> typer.Exit:
    errors.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    return typer.Exit(1)


def _collection(name: str, db: str, vectors: bool, *, max_chars: int = 1500, existing: bool = False) -> Collection:
    from twelvefactor.retrieval import Collection, PostgresIndex, SQLiteIndex, wordllama_embedder

    if db.startswith(("postgresql://", "postgres://")):
        if vectors:
            raise _fail("--vectors needs a SQLite --db: PostgreSQL collections are full text only here")
        return Collection(name, PostgresIndex(db), max_chars=max_chars)
    if existing and not Path(db).is_file():
        raise _fail(f"no database file {db!r}: index documents first (twelvefactor docs add ... --db {db})")
    return Collection(name, SQLiteIndex(db, embed=wordllama_embedder() if vectors else None), max_chars=max_chars)


def text_files(paths: list[Path]) -> Iterator[Path]:
    """The files to index: each file named, and the text files under each directory named, in order."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
        elif path.is_file():
            yield path
        else:
            raise _fail(f"{str(path)!r} is no file or directory")


@docs_app.command("add")
def add(
    collection: Annotated[str, typer.Argument(metavar="COLLECTION", help="The collection's name")],
    paths: Annotated[list[Path], typer.Argument(metavar="PATH...", help="Files, or directories of text files")],
    db: DbOption = "twelvefactor.db",
    max_chars: Annotated[int, typer.Option(metavar="N", help="Longest passage, in characters")] = 1500,
    vectors: VectorsOption = False,
) -> None:
    """Index files into COLLECTION; a file added again replaces its passages."""
    from twelvefactor.retrieval import Document

    files = list(text_files(paths))
    try:
        target = _collection(collection, db, vectors, max_chars=max_chars)
        passages = 0
        with Progress(TextColumn("indexing"), BarColumn(), MofNCompleteColumn(), console=errors) as progress:
            task = progress.add_task("files", total=len(files))
            for start in range(0, len(files), _BATCH):
                batch = []
                for path in files[start : start + _BATCH]:
                    text = path.read_text(encoding="utf-8", errors="replace")
                    batch.append(Document(id=path.as_posix(), text=text))
                passages += target.add(batch)
                progress.advance(task, len(batch))
        target.backend.close()
    except TwelveFactorError as exc:
        raise _fail(str(exc)) from None
    console.print(f"{len(files)} files, {passages} passages in {escape(collection)}", soft_wrap=True)


@docs_app.command("search")
def search(
    collection: Annotated[str, typer.Argument(metavar="COLLECTION", help="The collection's name")],
    query: Annotated[str, typer.Argument(metavar="QUERY", help="Words to look for")],
    db: DbOption = "twelvefactor.db",
    k: Annotated[int, typer.Option("-k", metavar="N", min=1, max=50, help="How many passages")] = 5,
    vectors: VectorsOption = False,
) -> None:
    """Show the passages of COLLECTION that best match QUERY, with their sources and scores."""
    try:
        target = _collection(collection, db, vectors, existing=True)
        found = target.search(query, k)
        target.backend.close()
    except TwelveFactorError as exc:
        raise _fail(str(exc)) from None
    if not found:
        console.print("no passage matches")
    for doc in found:
        console.print(f"[bold]{escape(doc.source)}[/bold]  score {doc.score:.3g}", soft_wrap=True)
        console.print(doc.text, markup=False)
        console.print()
