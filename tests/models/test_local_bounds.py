"""What keeps a small local model from looping: a grammar that bounds strings and lists, and a reply
stopped as soon as it repeats itself (issue 18, item 2)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import Field

from twelvefactor import Agent, FunctionModel, run, tool
from twelvefactor.events import Error, ModelCall
from twelvefactor.messages import Message
from twelvefactor.models._schemas import grammar_schema
from twelvefactor.models.base import ModelResponse
from twelvefactor.models.local import REPEATING, _assembled, repeating


@tool
def tag(
    name: str,
    labels: list[str],
    color: Annotated[str, Field(max_length=7)] = "#000000",
    kind: Annotated[str, Field(json_schema_extra={"enum": ["a", "b"]})] = "a",
) -> str:
    """Tag something."""
    return name


def _members(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: member for name, member in schema["$defs"].items()}


def test_the_grammar_bounds_every_string_and_list_a_tool_leaves_unbounded() -> None:
    tools = Agent("t", tools=[tag]).toolset.tools
    plain = grammar_schema(tools)
    bounded = grammar_schema(tools, max_string=400, max_items=16)
    assert "maxLength" not in plain["$defs"]["Tag"]["properties"]["name"]  # the default call is unchanged
    props = _members(bounded)["Tag"]["properties"]
    assert props["name"]["maxLength"] == 400
    assert props["labels"]["maxItems"] == 16 and props["labels"]["items"]["maxLength"] == 400
    assert props["color"]["maxLength"] == 7  # a field's own bound wins
    assert "maxLength" not in props["intent"]  # a constant is not a free string
    done = _members(bounded)["DoneForNow"]["properties"]["message"]
    assert done["maxLength"] == 400


def test_a_loop_is_seen_and_ordinary_text_is_not() -> None:
    assert repeating('{"intent": "done_for_now", "message": "' + "ha" * 100)
    assert repeating("x" * 200)
    assert repeating("the same sentence again. " * 10)
    assert not repeating('{"intent": "multiply", "a": 12, "b": 3}')
    assert not repeating("The deploy of v1.4.2 to staging finished; all checks passed and the release notes are up.")
    assert not repeating("".join(chr(ord("a") + i % 26) + str(i) for i in range(200)))


def test_a_repeating_stream_is_stopped_and_marked() -> None:
    pulled: list[int] = []

    def chunks() -> Iterator[dict[str, Any]]:
        yield {"choices": [{"delta": {"content": '{"intent": "done_for_now", "message": "'}}]}
        for i in range(10_000):
            pulled.append(i)
            yield {"choices": [{"delta": {"content": "la "}}]}

    stream = chunks()
    result = _assembled(stream, None, {"messages": []}, len)
    assert result["choices"][0]["finish_reason"] == REPEATING
    assert len(pulled) < 100, "generation stopped soon after the loop began"
    assert stream.gi_frame is None  # closed: llama.cpp samples no more tokens


def test_the_agent_refuses_a_reply_stopped_for_repeating_and_asks_again() -> None:
    replies = iter(
        [
            ModelResponse(
                text='{"intent": "done_for_now", "message": "la la la',
                model="m",
                output_tokens=64,
                finish_reason=REPEATING,
                truncated=True,
            ),  # fmt: skip
            ModelResponse(text='{"intent": "done_for_now", "message": "ok"}', model="m"),
        ]
    )

    def model(messages: list[Message]) -> ModelResponse:
        return next(replies)

    agent = Agent("t", model=FunctionModel(model))
    thread = run(agent, agent.new_thread("hi"))
    assert thread.status == "done"
    error = next(e for e in thread.events if isinstance(e, Error))
    assert error.source == "model" and "kept repeating the same text and was stopped after 64" in error.message
    assert sum(isinstance(e, ModelCall) for e in thread.events) == 2
