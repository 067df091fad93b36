"""Where the answer is in a model's reply: reasoning dropped, answer regions picked.

The text half of :mod:`twelvefactor.parsing` before any JSON is read; it knows nothing about schemas.
:func:`prepare` strips reasoning blocks (``<think>...</think>`` and friends) and picks the regions that
hold the answer (``<answer>``/``<tool_call>``-style tags, gpt-oss harmony channels, Llama's
``<function=name>`` calls, Mistral's ``[TOOL_CALLS]``), falling back to the whole text;
:func:`reply_text` is the reply as text, for a ``str`` schema.
"""

from __future__ import annotations

import bisect
import re
from functools import cached_property

from twelvefactor._lenient_json import DECODER, Parsed, TooMessy, scan


class Region:
    """A part of the model output that may hold the answer; ``tool`` names a call made by markup."""

    __slots__ = ("text", "tool")

    def __init__(self, text: str, tool: str | None = None) -> None:
        self.text = text
        self.tool = tool


class Prepared:
    __slots__ = ("regions", "reasoning_had_json", "unclosed_reasoning")

    def __init__(self) -> None:
        self.regions: list[Region] = []
        self.reasoning_had_json = False
        self.unclosed_reasoning = False


_REASONING = r"think|thinking|thought|thoughts|reasoning|reflection|scratchpad|analysis"
_ANSWERS = r"answer|final_answer|final|json|output|tool_call|function_call|response|result"


class _Patterns:
    """Compiled on first use (see ``_lenient_json._Patterns``): clean JSON needs none of them."""

    reasoning_tag = cached_property(lambda _: re.compile(rf"<(/?)({_REASONING})\b[^>]*>", re.I))
    answer_tag = cached_property(lambda _: re.compile(rf"<(/?)({_ANSWERS})\b[^>]*>", re.I))
    llama_tag = cached_property(lambda _: re.compile(r"<(/?)function(?:=([\w.\-]+))?>"))
    mistral_call = cached_property(lambda _: re.compile(r"\[TOOL_CALLS\]\s*([\w.\-]+)\s*\[ARGS\]"))
    harmony_mark = cached_property(lambda _: re.compile(r"<\|(start|channel|message|end|call|return|constrain)\|>"))
    harmony_to = cached_property(lambda _: re.compile(r"to=(?:functions\.)?([\w.\-]+)"))
    escaped = cached_property(lambda _: re.compile(r"\\([\"\\/nrt'])"))
    whole_fence = cached_property(lambda _: re.compile(r"```[\w+\-.]*[ \t]*\n(.*?)\n?[ \t]*```", re.S))


_RE = _Patterns()


# --- preparing the text -------------------------------------------------------------------------


def prepare(text: str) -> Prepared:
    """Drop reasoning, then choose the regions to search for the answer."""
    prepared = Prepared()
    if "<" in text or "[TOOL_CALLS]" in text:
        text = _strip_reasoning(text, prepared)
        prepared.regions = _tagged_regions(text)
    if not prepared.regions:
        prepared.regions = [Region(text)]
    return prepared


class _Block:
    __slots__ = ("tag", "start", "end", "after")

    def __init__(self, tag: re.Match[str], start: int, end: int, after: int) -> None:
        self.tag = tag  # the opening tag, or a closing tag that had no opening one
        self.start = start  # content start; -1 for an unmatched closing tag
        self.end = end  # content end; len(text) for a block never closed
        self.after = after  # first index after the block


def _blocks(text: str, tags: re.Pattern[str]) -> list[_Block]:
    """Pair opening and closing tags in one pass (regex backtracking here would be quadratic)."""
    blocks: list[_Block] = []
    opened: re.Match[str] | None = None
    for m in _structural(text, tags):
        if not m.group(1):
            opened = opened or m  # nested openings belong to the outer block
        elif opened is not None:
            blocks.append(_Block(opened, opened.end(), m.start(), m.end()))
            opened = None
        else:
            blocks.append(_Block(m, -1, -1, m.end()))
    if opened is not None:
        blocks.append(_Block(opened, opened.end(), len(text), len(text)))
    return blocks


def _structural(text: str, tags: re.Pattern[str]) -> list[re.Match[str]]:
    """The tags that are markup, not text inside a JSON string (``"message": "use <answer>"``)."""
    matches = list(tags.finditer(text))
    if not matches:
        return matches
    try:
        found, _ = scan(text)
    except TooMessy:
        return matches
    # A truncated value runs to the end of the text, often through real markup: only trust closed ones.
    spans = [(p.start, p.end) for p in found if not p.truncated]
    starts = [start for start, _ in spans]
    kept = []
    for m in matches:
        k = bisect.bisect_right(starts, m.start()) - 1
        if k < 0 or m.start() >= spans[k][1]:
            kept.append(m)
    return kept


def _strip_reasoning(text: str, prepared: Prepared) -> str:
    kept: list[str] = []
    pos = 0
    for block in _blocks(text, _RE.reasoning_tag):
        before = text[pos : block.tag.start()]
        if block.start == -1:
            # Chat templates often open <think> in the prompt, so the output holds only the closing tag.
            prepared.reasoning_had_json |= any("{" in part for part in (*kept, before))
            kept = []
        elif block.end == len(text):
            # Never closed: nothing tells where reasoning ends, so keep its text and let the ambiguity
            # check refuse a draft that competes with the answer.
            prepared.unclosed_reasoning = True
            kept.append(before)
            pos = block.tag.end()
            continue
        else:
            prepared.reasoning_had_json |= "{" in text[block.start : block.end]
            kept.append(before)
        pos = block.after
    kept.append(text[pos:])
    return " ".join(kept)


def _tagged_regions(text: str) -> list[Region]:
    regions: list[Region] = []
    if "<|channel|>" in text:
        regions = _harmony_regions(text)
        if regions:
            return regions
    for block in _blocks(text, _RE.answer_tag):
        if block.start != -1:
            regions.append(Region(text[block.start : block.end]))
    for block in _blocks(text, _RE.llama_tag):
        if block.start != -1 and block.tag.group(2):
            regions.append(Region(text[block.start : block.end], block.tag.group(2)))
    calls = list(_RE.mistral_call.finditer(text))
    for k, m in enumerate(calls):
        end = calls[k + 1].start() if k + 1 < len(calls) else len(text)
        regions.append(Region(text[m.end() : end], m.group(1)))
    return regions


def _harmony_regions(text: str) -> list[Region]:
    """gpt-oss output: keep the final channel and tool calls (``to=functions.NAME``), skip analysis."""
    regions: list[Region] = []
    parts = _RE.harmony_mark.split(text)
    header = ""
    # split() alternates text and marker names: text, name, text, name, ...
    for k in range(1, len(parts) - 1, 2):
        mark, body = parts[k], parts[k + 1]
        if mark == "channel":
            header = body
        elif mark == "constrain":
            continue
        elif mark == "message":
            to = _RE.harmony_to.search(header)
            if to is not None:
                regions.append(Region(body, to.group(1)))
            elif header.strip().lower().startswith("final"):
                regions.append(Region(body))
            header = ""
    return regions


_UNESCAPE = {'"': '"', "\\": "\\", "/": "/", "n": "\n", "r": "\r", "t": "\t", "'": "'"}


def unescape(text: str) -> str:
    """Undo one level of string escaping, for answers written as ``{\\"intent\\": ...}``."""
    return _RE.escaped.sub(lambda m: _UNESCAPE[m.group(1)], text)


_PAIRED_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019"}


def reply_text(text: str) -> str:
    """The reply as text (for a ``str`` schema): reasoning dropped, the answer regions kept, one fence
    around all of it unwrapped, and a reply that is one quoted string read as that string."""
    regions = prepare(text).regions
    body = "\n\n".join(region.text.strip() for region in regions).strip()
    fenced = _RE.whole_fence.fullmatch(body)
    if fenced is not None:
        body = fenced.group(1).strip("\n")
    if body[:1] == '"':
        try:
            decoded = DECODER.decode(body)
        except (ValueError, RecursionError):
            pass
        else:
            if isinstance(decoded, str):
                return decoded
    close = _PAIRED_QUOTES.get(body[:1])
    # 'hello' is hello, but '"hello" she said' stays whole: only a quote pair around quote-free text.
    if close is not None and len(body) >= 2 and body[-1] == close and body[0] not in body[1:-1]:
        return body[1:-1]
    return body


def bare_value(text: str) -> Parsed:
    """The text itself as a value, for a scalar schema (``Yes``, ``42``)."""
    value = text.strip().strip("`").strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return Parsed(value, 0, len(value))
