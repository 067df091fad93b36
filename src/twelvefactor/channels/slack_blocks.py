"""Block Kit for requests: the message that asks, the message once answered, the dialogs that take text.

Pure functions from a ``Notice`` to Slack's JSON. Everything a model or a person wrote is untrusted: it goes
into ``plain_text`` objects (never parsed for mentions or links) or, where code formatting is needed, into
``mrkdwn`` escaped as Slack asks (``&``, ``<``, ``>``), so ``<!channel>`` or ``<https://evil|click>`` in a
question shows as typed and pings or links nobody. Texts are cut to Block Kit's limits so a long question
cannot make Slack refuse the whole message.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from twelvefactor.channels.base import Answered, Notice

__all__ = [
    "ACTION_IDS",
    "TEXT_BLOCK",
    "DialogKind",
    "answered_blocks",
    "answered_line",
    "dialog",
    "escape",
    "fallback_text",
    "request_blocks",
]

Block = dict[str, Any]
DialogKind = Literal["deny", "answer"]

# action_id -> what a click means; every button's value is the notice's signed reply token.
ACTION_IDS = ("tf_approve", "tf_deny", "tf_answer", "tf_done", "tf_retry", "tf_skip")
TEXT_BLOCK = "tf_text"  # block_id and action_id of a dialog's text input

_SECTION_MAX = 3000  # Block Kit: a section's text
_BUTTON_VALUE_MAX = 2000
_FALLBACK_MAX = 3000
_TITLES: dict[str, str] = {
    "approval": "Approval needed",
    "input": "Question",
    "reconcile": "Did this action run?",
    "notify": "Notification",
}


def escape(text: str) -> str:
    """Escape text for Slack's mrkdwn: the three characters that start mentions, links and entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plain(text: str, limit: int = _SECTION_MAX) -> dict[str, Any]:
    return {"type": "plain_text", "text": _cut(text or " ", limit), "emoji": False}


def _mrkdwn(text: str) -> dict[str, Any]:
    # verbatim: Slack does not auto-link URLs or channel names in it.
    return {"type": "mrkdwn", "text": _cut(text, _SECTION_MAX), "verbatim": True}


def fallback_text(notice: Notice) -> str:
    """The message's top-level ``text`` (notifications, and previews): escaped, since Slack parses it."""
    if notice.kind == "notify":
        return escape(_cut(notice.text, _FALLBACK_MAX))
    return escape(_cut(f"{_TITLES[notice.kind]}: {notice.text}", _FALLBACK_MAX))


def _call_block(notice: Notice) -> Block | None:
    if not notice.intent:
        return None
    arguments = json.dumps(notice.arguments or {}, indent=2, ensure_ascii=False, sort_keys=True)
    # A ``` inside the arguments would end the code block early: break the run with a zero-width space.
    fenced = escape(arguments).replace("```", "`\u200b``")
    return {"type": "section", "block_id": "tf_call", "text": _mrkdwn(f"`{escape(notice.intent)}`\n```{fenced}```")}


def _context_block(notice: Notice) -> Block | None:
    parts: list[str] = []
    if notice.escalated:
        parts.append("Sent on: earlier contacts did not answer in time.")
    if notice.thread_url:
        parts.append(f"<{escape(notice.thread_url).replace('|', '%7C')}|Open thread {escape(notice.thread_id)}>")
    else:
        parts.append(f"Thread {escape(notice.thread_id)}")
    return {"type": "context", "block_id": "tf_context", "elements": [_mrkdwn(" · ".join(parts))]}


def _buttons(notice: Notice) -> Block | None:
    if notice.kind == "notify" or not notice.reply_token:
        return None
    if len(notice.reply_token) > _BUTTON_VALUE_MAX:
        raise ValueError(f"reply_token is {len(notice.reply_token)} characters; Slack keeps {_BUTTON_VALUE_MAX}")
    choices: list[tuple[str, str, str | None]]
    if notice.kind == "approval":
        choices = [("tf_approve", "Approve", "primary"), ("tf_deny", "Deny…", "danger")]
    elif notice.kind == "input":
        choices = [("tf_answer", "Answer…", "primary")]
    else:
        choices = [("tf_done", "Mark done", "primary"), ("tf_retry", "Run again", None), ("tf_skip", "Skip", None)]
    elements: list[Block] = []
    for action_id, label, style in choices:
        button: Block = {
            "type": "button",
            "action_id": action_id,
            "text": _plain(label, 75),
            "value": notice.reply_token,
        }
        if style:
            button["style"] = style
        elements.append(button)
    return {"type": "actions", "block_id": "tf_actions", "elements": elements}


def _question_blocks(notice: Notice) -> list[Block]:
    blocks: list[Block] = [
        {"type": "header", "block_id": "tf_title", "text": _plain(_TITLES[notice.kind], 150)},
        {"type": "section", "block_id": "tf_question", "text": _plain(notice.text)},
    ]
    call = _call_block(notice)
    if call is not None:
        blocks.append(call)
    return blocks


def request_blocks(notice: Notice) -> list[Block]:
    """The message that asks: title, question, the tool call (approvals), buttons, a link to the thread."""
    if notice.kind == "notify":
        return [{"type": "section", "block_id": "tf_question", "text": _plain(notice.text)}]
    blocks = _question_blocks(notice)
    for block in (_buttons(notice), _context_block(notice)):
        if block is not None:
            blocks.append(block)
    return blocks


def _when(at: datetime) -> str:
    # Slack shows <!date^...> in each reader's own time zone; the fallback is UTC ISO.
    stamp = int(at.timestamp())
    return f"<!date^{stamp}^{{date_short_pretty}} at {{time}}|{at.isoformat(timespec='seconds')}>"


def answered_line(answered: Answered) -> str:
    """``Approved by <who> at <when>`` and the like, escaped mrkdwn."""
    who = escape(answered.responder or "someone")
    when = _when(answered.at)
    if answered.approved is True:
        return f"✅ Approved by {who} at {when}"
    if answered.approved is False:
        reason = f": {escape(answered.text)}" if answered.text else ""
        return f"⛔ Denied by {who} at {when}{reason}"
    if answered.outcome is not None:
        labels = {"done": "Marked done", "retry": "Run again", "skip": "Skipped"}
        return f"☑️ {labels.get(answered.outcome, escape(answered.outcome))} by {who} at {when}"
    answer = f": {escape(answered.text)}" if answered.text else ""
    return f"💬 Answered by {who} at {when}{answer}"


def answered_blocks(notice: Notice, answered: Answered) -> list[Block]:
    """The message once answered: the question as it was, no buttons, and who answered and when."""
    blocks = _question_blocks(notice)
    blocks.append({"type": "section", "block_id": "tf_answered", "text": _mrkdwn(answered_line(answered))})
    context = _context_block(notice)
    if context is not None:
        blocks.append(context)
    return blocks


def dialog(kind: DialogKind, question: str, private_metadata: str, *, max_chars: int = 3000) -> Block:
    """A modal that takes a denial's reason or an answer; ``private_metadata`` comes back on submit."""
    if len(private_metadata) > 3000:
        raise ValueError(f"private_metadata is {len(private_metadata)} characters; Slack keeps 3000")
    title, submit, label = (
        ("Deny", "Deny", "Reason (the agent sees it)") if kind == "deny" else ("Answer", "Send", "Your answer")
    )
    return {
        "type": "modal",
        "callback_id": f"tf_{kind}",
        "title": _plain(title, 24),
        "submit": _plain(submit, 24),
        "close": _plain("Cancel", 24),
        "private_metadata": private_metadata,
        "blocks": [
            {"type": "section", "block_id": "tf_question", "text": _plain(question)},
            {
                "type": "input",
                "block_id": TEXT_BLOCK,
                "optional": kind == "deny",
                "label": _plain(label, 2000),
                "element": {
                    "type": "plain_text_input",
                    "action_id": TEXT_BLOCK,
                    "multiline": True,
                    "max_length": min(max_chars, 3000),
                },
            },
        ],
    }
