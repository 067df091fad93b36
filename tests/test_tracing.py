"""OpenTelemetry spans: none unless turned on; then a run, its model calls, tools and human waits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from twelvefactor import Agent, HumanResponse, MemoryStore, ScriptedModel, run, tool
from twelvefactor.tracing import disable_tracing, enable_tracing, tracing_enabled


@tool(requires_approval=True)
def deploy(tag: str) -> str:
    """Deploy a tag."""
    return f"deployed {tag}"


def agent() -> Agent:
    return Agent(
        "ops",
        tools=[deploy],
        model=ScriptedModel([{"intent": "deploy", "tag": "v1"}, {"intent": "done_for_now", "message": "done"}]),
    )


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    enable_tracing(provider)
    yield exporter
    disable_tracing()


def test_nothing_is_traced_unless_turned_on() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    from opentelemetry import trace

    trace.set_tracer_provider(provider)  # even with a provider configured globally
    assert not tracing_enabled()
    bot = agent()
    run(bot, bot.new_thread("ship v1"))
    assert exporter.get_finished_spans() == ()


def test_a_run_its_model_calls_tools_and_the_human_wait_are_spans(spans: InMemorySpanExporter) -> None:
    store = MemoryStore()
    bot = agent()
    thread = run(bot, bot.new_thread("ship v1"), store=store)
    assert thread.pending_request is not None
    store.respond(thread.id, HumanResponse(request_id=thread.pending_request.call_id, approved=True, responder="ana"))
    run(bot, store.load(thread.id), store=store)

    finished = spans.get_finished_spans()
    names = [s.name for s in finished]
    assert names.count("agent.run") == 2
    assert names.count("chat scripted") == 2
    assert "execute_tool deploy" in names and "human_wait" in names
    chat = next(s for s in finished if s.name == "chat scripted")
    assert chat.attributes is not None
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["gen_ai.response.model"] == "scripted"
    assert chat.attributes["gen_ai.usage.input_tokens"] > 0  # type: ignore[operator]
    assert chat.attributes["twelvefactor.thread.id"] == thread.id
    assert chat.parent is not None  # inside its run's span
    tool_span = next(s for s in finished if s.name == "execute_tool deploy")
    assert tool_span.attributes is not None and tool_span.attributes["gen_ai.tool.name"] == "deploy"
    wait = next(s for s in finished if s.name == "human_wait")
    assert wait.attributes is not None and wait.attributes["twelvefactor.responder"] == "ana"
    assert wait.start_time is not None and wait.end_time is not None and wait.end_time >= wait.start_time
    last_run = [s for s in finished if s.name == "agent.run"][-1]
    assert last_run.attributes is not None and last_run.attributes["twelvefactor.thread.status"] == "done"
    # Prompts and outputs stay on the thread: no span carries the message text.
    assert not any("ship v1" in str(s.attributes) for s in finished)


def test_a_failing_tool_is_a_span_with_its_error(spans: InMemorySpanExporter) -> None:
    @tool
    def broken() -> None:
        """Always fails."""
        raise RuntimeError("disk full")

    bot = Agent(
        "b", tools=[broken], model=ScriptedModel([{"intent": "broken"}, {"intent": "done_for_now", "message": "x"}])
    )
    run(bot, bot.new_thread("go"))
    failed = next(s for s in spans.get_finished_spans() if s.name == "execute_tool broken")
    assert not failed.status.is_ok
    assert any(event.name == "exception" for event in failed.events)


def test_a_workflow_run_and_its_steps_are_spans(spans: InMemorySpanExporter) -> None:
    from twelvefactor import Flow, run_workflow, workflow

    def fetch(repo: str) -> str:
        return f"{repo}: 2 PRs"

    @workflow
    def release(wf: Flow) -> str:
        found = str(wf.step(fetch, "backend", effect="read_only"))
        wf.ask("ship it?")
        return found

    store = MemoryStore()
    waiting = run_workflow(release, release.new_thread(), store=store)
    assert waiting.status == "waiting"
    paused = next(s for s in spans.get_finished_spans() if s.name == "workflow.run")
    assert paused.status.is_ok  # waiting for a person is no error
    assert paused.attributes is not None and paused.attributes["twelvefactor.thread.status"] == "waiting"
    assert waiting.pending_request is not None
    store.respond(waiting.id, HumanResponse(request_id=waiting.pending_request.call_id, text="yes"))
    thread = run_workflow(release, store.load(waiting.id), store=store)
    assert thread.status == "done"
    finished = {s.name: s for s in spans.get_finished_spans()}
    assert {"workflow.run", "step fetch"} <= set(finished)
    step = finished["step fetch"]
    assert step.attributes is not None and step.attributes["twelvefactor.effect"] == "read_only"
    runs = [s for s in spans.get_finished_spans() if s.name == "workflow.run"]
    assert len(runs) == 2 and step.parent is not None and step.parent.span_id == runs[0].context.span_id
