"""Is the default prompt hard to misread for a small model? The old one and the new one, in one run.

The two example tasks of ``bench/local_model.py`` (calculator: "what is 12 times 3"; deploybot: "deploy the
latest backend to staging"), with the examples' tools but the framework's DEFAULT prompt, on the local
model (``local:smollm2``) in prompted mode (no grammar: the prompt is all that holds it to a next step),
N seeds at temperature 0.7 plus the greedy run, under:

- ``old``: the default prompt before this change (the intents as a TypeScript union under ``type
  NextStep =``, closing with "What is the next step?");
- ``new``: the default prompt now (``{{ steps }}``: one JSON line per step to copy and fill in).

Prints per prompt and task: runs correct (bench/local_model.py's definition), model replies, replies that
parsed to a next step, replies echoing the old header (a ``"type"`` key or ``next_step``), replies copying
the closing line, and escalations. Figures, not a timed test.

    python bench/local_prompt.py [--runs 10]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

OLD_DEFAULT = """\
{{ role("system") }}
You are {{ agent_name }}. Decide the ONE next step for the thread below.
Answer with a single JSON object matching this type, and nothing else:

{{ intents }}
{{ role("user") }}
{{ context }}

What is the next step?"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--temperature", type=float, default=0.7)
    args = parser.parse_args()

    import local_model as bench

    from twelvefactor import Prompt
    from twelvefactor.events import Error, HumanRequest, ModelCall
    from twelvefactor.models.local import LocalModel
    from twelvefactor.prompts import DEFAULT_TEMPLATE

    prompts = {"old": Prompt(OLD_DEFAULT, name="old-default"), "new": Prompt(DEFAULT_TEMPLATE, name="default")}
    print(f"prompted mode, {args.runs} seeds at temperature {args.temperature} + greedy, max_tokens {bench.MAX_TOKENS}")
    for task in bench.TASKS:
        for name, prompt in prompts.items():
            correct = replies = parsed = echoes = closing = escalations = 0
            for seed in [None, *range(args.runs)]:
                options = {} if seed is None else {"temperature": args.temperature, "seed": seed}
                model = LocalModel("smollm2", n_ctx=bench.N_CTX, max_tokens=bench.MAX_TOKENS, **options)  # type: ignore[arg-type]
                outcome = bench.run_task(task, model, "prompted", 5, prompt=prompt)
                thread = outcome.thread
                correct += outcome.correct
                events = thread.events
                for index, event in enumerate(events):
                    if not isinstance(event, ModelCall):
                        continue
                    replies += 1
                    after = events[index + 1] if index + 1 < len(events) else None
                    parsed += not (isinstance(after, Error) and after.source in ("parse", "model"))
                    raw = event.raw
                    echoes += '"type"' in raw or "next_step" in raw.lower() or "nextstep" in raw.lower()
                    closing += "What is the next step" in raw
                escalations += any(isinstance(e, HumanRequest) and e.escalation for e in events)
            total = args.runs + 1
            print(
                f"  {task.example:<10} {name:<4} correct {correct}/{total}  replies {replies}  parsed {parsed}"
                f" ({parsed / max(replies, 1):.0%})  header echoes {echoes}  closing-line copies {closing}"
                f"  escalated {escalations}/{total}"
            )


if __name__ == "__main__":
    main()
