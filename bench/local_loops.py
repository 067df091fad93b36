"""Does the local model loop inside a string? One decision on free-text tools, with and without bounds.

The first step of tasks that ask the model to write text into a tool's arguments (a note's title, body
and tags), at temperature 0.7 with seeds 0..N-1 and max_tokens 512, in json_schema mode, under two
settings of the same ``LocalModel`` in one run:

- ``unbounded``: ``max_string_chars=None, max_items=None, stop_repeating=False`` (what main did before);
- ``bounded``: the defaults (every free string at most 400 characters and list 16 items in the grammar,
  and a reply that keeps repeating itself stopped at once).

Prints, per setting: replies cut at max_tokens, replies stopped for repeating, output tokens in all and
on those replies, and replies that parsed to a next step. Figures, not a timed test.

    python bench/local_loops.py [--runs 10]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

TASKS = (
    "Save a note of today's meeting: we agreed to move the launch to March, Dana owns the budget, and the"
    " onboarding flow needs three more user tests before it ships.",
    "Write down the steps to reset a router as a note with a title and tags.",
    "Save a note listing every planet of the solar system with one fact each.",
    "Keep a note of this customer complaint: the parcel arrived late, the box was crushed and the invoice"
    " had the wrong address. Tag it so support can find it.",
    "Make a note of the recipe for pancakes, with the ingredients as tags.",
)


@dataclass
class Tally:
    replies: int = 0
    cut: int = 0
    stopped: int = 0
    tokens: int = 0
    wasted: int = 0
    parsed: int = 0
    seconds: float = 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="seeds per task")
    args = parser.parse_args()

    from twelvefactor import Agent, tool
    from twelvefactor.errors import ParseError
    from twelvefactor.models.base import OutputSpec
    from twelvefactor.models.local import LocalModel

    @tool
    def save_note(title: str, body: str, tags: list[str]) -> str:
        """Save a note with a title, a body and tags."""
        return "saved"

    agent = Agent("notes", tools=[save_note], output_mode="json_schema")
    settings = {
        "unbounded": {"max_string_chars": None, "max_items": None, "stop_repeating": False},
        "bounded": {},
    }
    tallies = {name: Tally() for name in settings}
    for seed in range(args.runs):
        for task in TASKS:
            messages = agent.render(agent.new_thread(task))
            for name, options in settings.items():
                model = LocalModel("smollm2", max_tokens=512, temperature=0.7, seed=seed, **options)  # type: ignore[arg-type]
                started = time.perf_counter()
                response = model.complete(messages, output=OutputSpec("json_schema", agent.toolset.tools))
                tally = tallies[name]
                tally.seconds += time.perf_counter() - started
                tally.replies += 1
                tally.tokens += response.output_tokens or 0
                if response.finish_reason == "length":
                    tally.cut += 1
                    tally.wasted += response.output_tokens or 0
                elif response.finish_reason == "repetition":
                    tally.stopped += 1
                    tally.wasted += response.output_tokens or 0
                if not response.truncated:
                    try:
                        agent.parse(response.text)
                        tally.parsed += 1
                    except ParseError:
                        pass
    print(f"{len(TASKS)} tasks x {args.runs} seeds, json_schema mode, max_tokens 512, temperature 0.7")
    for name, t in tallies.items():
        print(
            f"  {name:<10} replies {t.replies}  cut at max_tokens {t.cut}  stopped repeating {t.stopped}"
            f"  output tokens {t.tokens} ({t.wasted} on cut/stopped replies)  parsed {t.parsed}"
            f"  {t.seconds:.0f} s"
        )


if __name__ == "__main__":
    main()
