"""Retrieval in a thread: a pre-fetch hook puts passages with their sources in the first model call's
window; a search intent the model calls gets them as its result. Both are events, kept and replayed."""

from __future__ import annotations

import json
from collections.abc import Sequence

from twelvefactor import Agent, FunctionModel, ScriptedModel, SQLiteStore, Thread, run
from twelvefactor.events import Done, Retrieved, ToolResult
from twelvefactor.messages import Message
from twelvefactor.retrieval import Collection, Document, SQLiteIndex, prefetch

FILLER = [
    Document(id=f"note-{n}", source=f"notes/{n}.md", text=f"Note {n}: the {topic} rota changes on Mondays.")
    for n, topic in enumerate(["kitchen", "parking", "printer", "plant watering", "fire drill"] * 4)
]
ANSWER = Document(
    id="refunds", source="policies/refunds.md", text="Refunds are paid within 14 days of the return arriving."
)


def handbook() -> Collection:
    docs = Collection("handbook", SQLiteIndex())
    docs.add([*FILLER, ANSWER])
    return docs


def done(message: str) -> str:
    return json.dumps({"intent": "done_for_now", "message": message})


def knows_only_its_window(messages: Sequence[Message]) -> str:
    """A model that can answer only from a passage in its window, and searches when it has none."""
    window = "\n".join(message.content for message in messages)
    if "within 14 days" in window:
        return done("Refunds are paid within 14 days (policies/refunds.md).")
    return json.dumps({"intent": "search_docs", "query": "refund payment time"})


def test_prefetch_puts_passages_with_their_sources_in_the_first_call() -> None:
    docs = handbook()
    seen: list[str] = []

    def model(messages: Sequence[Message]) -> str:
        seen.append("\n".join(m.content for m in messages))
        return done("ok")

    agent = Agent("support", model=FunctionModel(model), prefetch=[prefetch(docs, k=2)])
    thread = run(agent, agent.new_thread("How long do refunds take?"))
    retrieved = thread.events[1]
    assert isinstance(retrieved, Retrieved) and retrieved.collection == "handbook"
    assert retrieved.query == "How long do refunds take?"
    assert retrieved.documents[0].source == "policies/refunds.md"
    assert "source: policies/refunds.md" in seen[0] and "within 14 days of the return" in seen[0]
    assert len(seen) == 1


def test_the_prefetch_query_is_yours_and_an_empty_one_records_nothing() -> None:
    docs = handbook()
    hook = prefetch(docs, query=lambda thread: "printer rota", k=1)
    [event] = hook(Thread.new())
    assert isinstance(event, Retrieved) and event.documents[0].text.endswith("printer rota changes on Mondays.")
    assert list(prefetch(docs)(Thread.new())) == []  # no user message: nothing to look for


def test_the_model_searches_and_gets_passages_with_sources_and_scores() -> None:
    docs = handbook()
    search = docs.tool(k=3)
    assert search.effect == "read_only" and search.context_section == "retrieval"
    model = ScriptedModel([{"intent": "search_docs", "query": "refunds"}, done("14 days")])
    agent = Agent("support", tools=[search], model=model)
    thread = run(agent, agent.new_thread("How long do refunds take?"))
    result = next(e for e in thread.events if isinstance(e, ToolResult))
    assert isinstance(result.result, list) and result.result[0]["source"] == "policies/refunds.md"
    assert isinstance(result.result[0]["score"], float) and "14 days" in result.result[0]["text"]
    assert "policies/refunds.md" in model.calls[1][-1].content


def test_a_model_that_needs_the_passage_finishes_by_searching_for_it() -> None:
    agent = Agent("support", tools=[handbook().tool()], model=FunctionModel(knows_only_its_window))
    thread = run(agent, agent.new_thread("How long do refunds take?"))
    assert [e.type for e in thread.events][1:] == ["model_call", "tool_call", "tool_result", "model_call", "done"]
    assert isinstance(thread.events[-1], Done) and "14 days" in thread.events[-1].message


def test_with_prefetch_the_same_model_answers_in_one_call() -> None:
    docs = handbook()
    agent = Agent("support", tools=[docs.tool()], model=FunctionModel(knows_only_its_window), prefetch=[prefetch(docs)])
    thread = run(agent, agent.new_thread("How long do refunds take?"))
    assert [e.type for e in thread.events][1:] == ["retrieved", "model_call", "done"]


def test_a_hostile_query_from_the_model_is_an_empty_result_not_an_error() -> None:
    model = ScriptedModel([{"intent": "search_docs", "query": '"NEAR( * -OR: ())'}, done("nothing found")])
    agent = Agent("support", tools=[handbook().tool()], model=model)
    thread = run(agent, agent.new_thread("?"))
    result = next(e for e in thread.events if isinstance(e, ToolResult))
    assert result.result == [] and thread.events[-1].type == "done"


def test_retrieved_events_are_stored_and_read_back_exactly(tmp_path: object) -> None:
    docs = handbook()
    agent = Agent("support", model=FunctionModel(knows_only_its_window), prefetch=[prefetch(docs)])
    with SQLiteStore(f"{tmp_path}/threads.db") as store:
        thread = run(agent, agent.new_thread("How long do refunds take?"), store=store)
        assert store.load(thread.id) == thread
    assert Thread.model_validate_json(thread.model_dump_json()) == thread


def test_the_async_face_searches_in_its_tool_threads() -> None:
    import asyncio

    from twelvefactor import EventLoopCalls, arun

    docs = handbook()
    agent = Agent("support", tools=[docs.tool()], model=FunctionModel(knows_only_its_window))

    async def main() -> list[Thread]:
        calls = EventLoopCalls(tool_threads=4)
        threads = [agent.new_thread(f"How long do refunds take? ({n})") for n in range(8)]
        return await asyncio.gather(*(arun(agent, thread, calls=calls) for thread in threads))

    for thread in asyncio.run(main()):
        assert thread.events[-1].type == "done" and "14 days" in thread.events[-1].message  # type: ignore[attr-defined]


def test_the_window_counts_prefetched_and_searched_passages_as_retrieval() -> None:
    docs = handbook()
    searched = Agent("support", tools=[docs.tool()], model=FunctionModel(knows_only_its_window))
    thread = run(searched, searched.new_thread("How long do refunds take?"))
    window = searched.window(thread)
    assert window.sections["retrieval"] > 0
    no_search = Agent("plain", model=FunctionModel(knows_only_its_window), prefetch=[prefetch(docs)])
    thread = run(no_search, no_search.new_thread("How long do refunds take?"))
    assert no_search.window(thread).sections["retrieval"] > 0
    assert no_search.window(no_search.new_thread("hi")).sections["retrieval"] == 0
