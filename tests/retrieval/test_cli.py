"""``twelvefactor docs add | search`` on real files and a real SQLite file."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from twelvefactor.cli import app

runner = CliRunner()


def docs(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["docs", *args])
    return result.exit_code, result.output


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_add_a_directory_then_search_it_with_sources(tmp_path: Path) -> None:
    write(tmp_path / "kb" / "refunds.md", "Refunds are paid within 14 days.")
    write(tmp_path / "kb" / "deep" / "shipping.txt", "Parcels ship from [bold]Rotterdam[/bold] every day.")
    write(tmp_path / "kb" / "logo.png", "not text")
    db = str(tmp_path / "docs.db")
    code, out = docs("add", "handbook", str(tmp_path / "kb"), "--db", db)
    assert code == 0 and "2 files, 2 passages in handbook" in out
    code, out = docs("search", "handbook", "where do parcels ship from", "--db", db)
    assert code == 0
    assert f"{tmp_path}/kb/deep/shipping.txt" in out
    assert "[bold]Rotterdam[/bold]" in out  # document text is printed as is, never as markup
    assert "refunds.md" not in out


def test_adding_a_file_again_replaces_it(tmp_path: Path) -> None:
    note = tmp_path / "note.md"
    db = str(tmp_path / "docs.db")
    write(note, "The password rotates monthly.")
    docs("add", "c", str(note), "--db", db)
    write(note, "The password rotates weekly.")
    assert docs("add", "c", str(note), "--db", db)[0] == 0
    code, out = docs("search", "c", "password rotates", "--db", db)
    assert "weekly" in out and "monthly" not in out


def test_missing_paths_and_databases_are_one_line_errors(tmp_path: Path) -> None:
    code, out = docs("add", "c", str(tmp_path / "nope.md"), "--db", str(tmp_path / "d.db"))
    assert code == 1 and "is no file or directory" in out
    code, out = docs("search", "c", "x", "--db", str(tmp_path / "missing.db"))
    assert code == 1 and "no database file" in out and "docs add" in out
