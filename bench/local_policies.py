"""What two loop policies change on the local model: repeat detection and the built-in question.

The two example tasks of ``bench/local_model.py`` on ``local:smollm2`` in json_schema mode (every reply a
valid step, so what is measured is what the model chooses), N seeds at temperature 0.7, max 8 model steps,
each policy off and on in one run:

- item 1, ``stop_repeats``: off, a call identical to the one whose result the model just got runs again;
  on (the default), it is refused with an error the model sees and a second repeat asks a person. Printed:
  model calls spent, repeated calls that ran, runs that used up the step budget, runs correct.
- item 7, ``builtins``: the default (``request_human_input`` and ``done_for_now``) or ``(DoneForNow,)``
  only. Printed: runs whose first step was a question to the person, runs correct.

    python bench/local_policies.py [--runs 10]
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

MAX_STEPS = 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--temperature", type=float, default=0.7)
    args = parser.parse_args()

    import local_model as bench

    from twelvefactor import Agent
    from twelvefactor.events import Error, HumanRequest, ModelCall, ToolCall
    from twelvefactor.models.local import LocalModel
    from twelvefactor.tools import BUILTIN_TOOLS, DoneForNow

    def repeats(on: bool) -> Any:
        def configure(agent: Agent) -> Agent:
            changed = copy.copy(agent)
            changed.stop_repeats = on
            return changed

        return configure

    def only_done(agent: Agent) -> Agent:
        tools = [cls for cls in agent.toolset.tools if cls not in BUILTIN_TOOLS]
        changed = Agent(
            agent.name,
            tools=tools,
            builtins=(DoneForNow,),
            prompt=agent.prompt,
            model=agent.model,
            variables=agent.variables,
        )
        changed.output_mode, changed.max_steps = agent.output_mode, agent.max_steps
        return changed

    settings = {
        "item 1, stop_repeats off": repeats(False),
        "item 1, stop_repeats on": repeats(True),
        "item 7, both built-ins": None,
        "item 7, done_for_now only": only_done,
    }
    print(f"json_schema mode, {args.runs} seeds at temperature {args.temperature}, max {MAX_STEPS} model steps")
    for task in bench.TASKS:
        for name, configure in settings.items():
            correct = calls = repeated = budget = asked_first = 0
            for seed in range(args.runs):
                model = LocalModel(
                    "smollm2", n_ctx=bench.N_CTX, max_tokens=bench.MAX_TOKENS, temperature=args.temperature, seed=seed
                )
                outcome = bench.run_task(task, model, "json_schema", MAX_STEPS, configure=configure)
                events = outcome.thread.events
                correct += outcome.correct
                calls += sum(isinstance(e, ModelCall) for e in events)
                made = [(e.intent, e.arguments) for e in events if isinstance(e, ToolCall)]
                repeated += sum(1 for a, b in zip(made, made[1:], strict=False) if a == b)
                budget += any(isinstance(e, Error) and e.source == "budget" for e in events)
                first = next((e for e in events if isinstance(e, ToolCall | HumanRequest)), None)
                asked_first += isinstance(first, HumanRequest) and first.kind == "input" and not first.escalation
            print(
                f"  {task.example:<10} {name:<27} correct {correct}/{args.runs}  model calls {calls}"
                f"  repeated calls run {repeated}  step budget used up {budget}  asked first {asked_first}"
            )


if __name__ == "__main__":
    main()
