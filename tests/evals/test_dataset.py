"""Datasets: the file forms a user writes (JSON, JSONL, TOML, one exported case) and the errors bad ones get."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from twelvefactor import DatasetError, UserMessage
from twelvefactor.evals import load_dataset

CASE = {
    "id": "price",
    "input": "what is the price of SKU-1",
    "answers": [{"kind": "approval", "intent": "refund", "approved": True}],
    "expect": {
        "status": "done",
        "tool_calls": [{"intent": "lookup", "arguments": {"sku": "SKU-1"}}],
        "final_message": {"contains": "12.5", "regex": r"\d+\.\d"},
        "max_steps": 4,
        "scorers": ["my_scorers:polite", {"scorer": "my_scorers:short", "min": 0.5}],
    },
}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_json_jsonl_toml_and_a_single_case_read_the_same(tmp_path: Path) -> None:
    other = {"id": "hello", "events": [{"type": "pager_alert", "service": "db"}]}
    forms = [
        write(tmp_path, "list.json", json.dumps([CASE, other])),
        write(tmp_path, "cases.json", json.dumps({"cases": [CASE, other]})),
        write(tmp_path, "cases.jsonl", f"{json.dumps(CASE)}\n\n{json.dumps(other)}\n"),
        write(
            tmp_path,
            "cases.toml",
            """
[[cases]]
id = "price"
input = "what is the price of SKU-1"
answers = [{kind = "approval", intent = "refund", approved = true}]
[cases.expect]
status = "done"
tool_calls = [{intent = "lookup", arguments = {sku = "SKU-1"}}]
final_message = {contains = "12.5", regex = '\\d+\\.\\d'}
max_steps = 4
scorers = ["my_scorers:polite", {scorer = "my_scorers:short", min = 0.5}]

[[cases]]
id = "hello"
events = [{type = "pager_alert", service = "db"}]
""",
        ),
    ]
    loaded = [load_dataset(path) for path in forms]
    assert all(dataset.cases == loaded[0].cases for dataset in loaded)
    price, hello = loaded[0].cases
    assert price.expect.final_message is not None and price.expect.final_message.contains == ["12.5"]
    assert [(ref.scorer, ref.min) for ref in price.expect.scorers] == [
        ("my_scorers:polite", 1.0),
        ("my_scorers:short", 0.5),
    ]
    assert isinstance(price.initial_events()[0], UserMessage)
    assert hello.initial_events()[0].type == "pager_alert"
    single = load_dataset(write(tmp_path, "one.json", json.dumps(CASE)))
    assert [case.id for case in single.cases] == ["price"] and single.name == "one"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "a.json",
            json.dumps([{**CASE, "expect": {"final_message": {"regex": "("}}}]),
            "case 'price' (#1): expect.final_message.regex: not a regular expression",
        ),
        (
            "a.json",
            json.dumps([CASE, {"id": "two"}]),
            "case 'two' (#2): give the case an `input` message or its initial `events`",
        ),
        ("a.json", json.dumps([CASE, {**CASE, "input": "again"}]), "two cases have the id 'price'"),
        (
            "a.json",
            json.dumps([{**CASE, "expect": {"status": "finished"}}]),
            "case 'price' (#1): expect.status: Input should be",
        ),
        (
            "a.json",
            json.dumps([{**CASE, "expect": {"tool_call": []}}]),
            "case 'price' (#1): expect.tool_call: Extra inputs are not permitted",
        ),
        (
            "a.json",
            json.dumps([{**CASE, "answers": [{"kind": "approval"}]}]),
            "case 'price' (#1): answers.0: an answer needs",
        ),
        (
            "a.json",
            json.dumps([{"id": "e", "events": [{"type": "done", "message": "x"}]}]),
            "case 'e' (#1): events: events of type 'done' are recorded by the agent itself",
        ),
        (
            "a.json",
            json.dumps([{**CASE, "expect": {"scorers": ["no_colon"]}}]),
            "expect.scorers.0.scorer: 'no_colon' is not module:function",
        ),
        ("a.json", json.dumps([{**CASE, "id": "has space"}]), "case 'has space' (#1): id: String should match pattern"),
        ("a.json", json.dumps(["just text"]), "case #1 is a str, not an object"),
        ("a.json", "[]", "holds no cases"),
        ("a.json", "{not json", "is not JSON"),
        ("a.jsonl", f"{json.dumps(CASE)}\n{{oops\n", "line 2 is not JSON"),
        ("a.toml", "cases = [", "is not TOML"),
        ("a.yaml", "cases: []", "a dataset is a .json, .jsonl or .toml file, not .yaml"),
    ],
)
def test_a_bad_dataset_is_one_error_naming_the_file_case_and_field(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(DatasetError) as caught:
        load_dataset(path)
    assert str(path) in str(caught.value) and message in str(caught.value), str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_dataset_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="cannot read dataset .*nope.json"):
        load_dataset(tmp_path / "nope.json")
