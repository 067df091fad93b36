"""Email over SMTP: a request goes out as text + HTML with its signed link, and can be answered by reply.

Each message's ``Message-ID`` is ``<tf.{reply_token}@{sender's domain}>``: mail clients copy it into the
reply's ``In-Reply-To`` and ``References``, which is how ``server/email_in`` finds the request a reply
answers (the token is signed; see ``mail_reply``). The ``Reply-To`` address carries a short signed tag as
well (``bot+TAG@example.com``). Model and person text (question, arguments, agent name) is untrusted: the
HTML part is rendered by Jinja2 with autoescape, and header values are folded to one line, so a question
can neither inject markup nor add a header.

SMTP failures become ``ChannelError``: a connection error, a timeout or a 4xx reply is retryable, a 5xx
(a recipient refused, authentication failed) is not.
"""

from __future__ import annotations

import json
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any

import aiosmtplib
from jinja2 import BaseLoader, Environment, StrictUndefined, select_autoescape

from twelvefactor.channels.base import Answered, ChannelError, Notice, Receipt
from twelvefactor.channels.config import EmailChannelConfig
from twelvefactor.channels.mail_reply import reply_tag
from twelvefactor.errors import UserError

__all__ = ["EmailChannel", "build_message"]

_MAX_LOCAL_PART = 64
_SUBJECT_CHARS = 200

_TEXT = """\
{{ intro }}

{{ text }}
{% if intent %}
Action: {{ intent }}
{{ arguments }}
{% endif %}{% if link %}
Answer here (the link works once): {{ link }}
{% endif %}{% if instruction %}
Or answer by replying to this email: {{ instruction }}
{% endif %}{% if thread_url %}
Thread: {{ thread_url }}
{% endif %}
--
twelvefactor · thread {{ thread_id }}
"""

_HTML = """\
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ subject }}</title></head>
<body style="font-family:system-ui,sans-serif;max-width:40rem;line-height:1.5">
<p>{{ intro }}</p>
<blockquote style="border-left:4px solid #888;margin:1rem 0;padding:.5rem 1rem;white-space:pre-wrap">\
{{ text }}</blockquote>
{% if intent %}<p>Action: <code>{{ intent }}</code></p>
<pre style="background:#f4f4f4;padding:.5rem;white-space:pre-wrap">{{ arguments }}</pre>{% endif %}
{% if link %}<p><a href="{{ link }}" style="display:inline-block;padding:.5rem 1.5rem;background:#1a5fb4;color:#fff;\
text-decoration:none;border-radius:4px">{{ button }}</a> (the link works once)</p>{% endif %}
{% if instruction %}<p>Or answer by replying to this email: {{ instruction }}</p>{% endif %}
{% if thread_url %}<p><a href="{{ thread_url }}">Open the thread</a></p>{% endif %}
<p style="color:#666;font-size:.85em">twelvefactor · thread <code>{{ thread_id }}</code></p>
</body></html>
"""

# Autoescape for the HTML part only; the text part is text/plain, where nothing is markup.
_html_env = Environment(loader=BaseLoader(), autoescape=select_autoescape(default=True), undefined=StrictUndefined)
_text_env = Environment(loader=BaseLoader(), autoescape=False, undefined=StrictUndefined)
_html_template = _html_env.from_string(_HTML)
_text_template = _text_env.from_string(_TEXT)

_INSTRUCTIONS = {
    "approval": "reply APPROVE, or DENY and a reason, on the first line.",
    "input": "reply with your answer.",
    "reconcile": "reply DONE (and its result), RETRY or SKIP on the first line.",
}
_BUTTONS = {"approval": "Approve or deny", "input": "Answer", "reconcile": "Decide", "notify": "Open"}


class EmailChannel:
    """Sends notices as email over SMTP (``aiosmtplib``); one connection per message."""

    def __init__(self, config: EmailChannelConfig, *, secret: str) -> None:
        self.config = config
        self.name = config.name
        self._secret = secret
        self._domain = _domain_of(config.sender)
        if config.reply_to is not None:
            try:
                reply_to = _single_address(config.reply_to, what="reply_to")
            except ChannelError as exc:
                raise UserError(f"channel {config.name!r}: {exc}") from None
            if len(reply_to.username) + 1 + 16 > _MAX_LOCAL_PART:
                raise UserError(
                    f"reply_to {config.reply_to!r}: its local part leaves no room for the 17-character reply tag"
                    f" (at most {_MAX_LOCAL_PART - 17} characters before the @)"
                )

    # A sent mail cannot change: an answered request's mail is left as it is (the outbox sends no update).
    updates_messages = False

    @classmethod
    def from_config(cls, config: EmailChannelConfig, *, secret: str) -> EmailChannel:
        """The channel for ``config``; ``secret`` is the server's link-signing secret (signs reply tags)."""
        return cls(config, secret=secret)

    async def send(self, notice: Notice) -> Receipt:
        """Deliver ``notice`` to the SMTP server; ChannelError when it was not accepted."""
        message = build_message(self.config, notice, secret=self._secret)
        cfg = self.config
        try:
            await aiosmtplib.send(
                message,
                hostname=cfg.smtp_host,
                port=cfg.smtp_port,
                username=cfg.username,
                password=cfg.password,
                use_tls=cfg.use_tls,
                start_tls=cfg.start_tls,
                timeout=cfg.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refused.code for refused in exc.recipients]
            raise ChannelError(
                f"{cfg.smtp_host}:{cfg.smtp_port} refused {notice.to!r} ({', '.join(map(str, codes))}):"
                " check the address",
                retryable=all(400 <= code < 500 for code in codes),
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise ChannelError(
                f"{cfg.smtp_host}:{cfg.smtp_port} answered {exc.code} {_one_line(exc.message)}",
                retryable=400 <= exc.code < 500,
            ) from None
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPTimeoutError, aiosmtplib.SMTPServerDisconnected) as exc:
            raise ChannelError(
                f"cannot reach the SMTP server {cfg.smtp_host}:{cfg.smtp_port} ({type(exc).__name__}:"
                f" {_one_line(str(exc))}); will retry",
                retryable=True,
            ) from None
        except aiosmtplib.SMTPException as exc:  # e.g. STARTTLS or AUTH required but not offered: configuration
            raise ChannelError(
                f"SMTP with {cfg.smtp_host}:{cfg.smtp_port} failed: {_one_line(str(exc))}: check the channel's"
                " TLS and credentials settings",
                retryable=False,
            ) from None
        except OSError as exc:
            raise ChannelError(
                f"cannot reach the SMTP server {cfg.smtp_host}:{cfg.smtp_port} ({exc}); will retry", retryable=True
            ) from None
        return Receipt(ref=str(message["Message-ID"]))

    async def update(self, notice: Notice, receipt: Receipt, answered: Answered) -> None:
        """Nothing to do: a sent mail cannot change."""

    async def aclose(self) -> None:
        """Nothing to close: each send opens and closes its own connection."""


def build_message(config: EmailChannelConfig, notice: Notice, *, secret: str) -> EmailMessage:
    """The email for ``notice``: headers, a text part and an escaped HTML part."""
    domain = _domain_of(config.sender)
    to = _single_address(notice.to, what="the notice's address")
    answerable = notice.request_id is not None and notice.kind != "notify"
    replies = answerable and notice.reply_token is not None and config.reply_to is not None
    subject = _subject(notice)
    context: dict[str, Any] = {
        "subject": subject,
        "intro": _intro(notice),
        "text": notice.text,
        "intent": notice.intent if notice.kind in ("approval", "reconcile") else None,
        "arguments": json.dumps(notice.arguments or {}, indent=2, ensure_ascii=False, sort_keys=True),
        "link": notice.link if answerable else None,
        "button": _BUTTONS[notice.kind],
        "instruction": _INSTRUCTIONS.get(notice.kind) if replies else None,
        "thread_url": notice.thread_url,
        "thread_id": notice.thread_id,
    }
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = config.sender
    message["To"] = to
    message["Date"] = formatdate(localtime=False, usegmt=True)
    if answerable and notice.reply_token is not None:
        message["Message-ID"] = f"<tf.{notice.reply_token}@{domain}>"
    else:
        message["Message-ID"] = make_msgid(idstring="tfn", domain=domain)
    if replies and config.reply_to is not None and notice.reply_token is not None:
        base = _single_address(config.reply_to, what="reply_to")
        tag = reply_tag(secret, notice.reply_token)
        message["Reply-To"] = Address(addr_spec=f"{base.username}+{tag}@{base.domain}")
    message["X-Twelvefactor-Thread"] = _one_line(notice.thread_id)[:200]
    if notice.request_id is not None:
        message["X-Twelvefactor-Request"] = _one_line(notice.request_id)[:200]
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: auto-responders must not answer it
    message.set_content(_text_template.render(context))
    message.add_alternative(_html_template.render(context), subtype="html")
    return message


def _subject(notice: Notice) -> str:
    agent = _one_line(notice.agent or "an agent")
    intent = _one_line(notice.intent or "")
    match notice.kind:
        case "approval":
            subject = f"Approval needed: {intent or 'an action'} ({agent})"
        case "input":
            subject = f"Question from {agent}: {_one_line(notice.text)}"
        case "reconcile":
            subject = f"Did {intent or 'an action'} run? ({agent})"
        case "notify":
            subject = f"{agent}: {_one_line(notice.text)}"
    if notice.escalated:
        subject = f"[Escalated] {subject}"
    return subject if len(subject) <= _SUBJECT_CHARS else subject[: _SUBJECT_CHARS - 1] + "…"


def _intro(notice: Notice) -> str:
    agent = notice.agent or "An agent"
    match notice.kind:
        case "approval":
            return f"{agent} asks for your approval before it runs an action:"
        case "input":
            return f"{agent} has a question for you:"
        case "reconcile":
            return f"{agent} cannot tell whether an action ran before an interruption:"
        case "notify":
            return f"{agent} says:"


def _one_line(text: str) -> str:
    """Text for a header: one line (CR, LF and other separators become spaces), so it cannot start another."""
    return " ".join(text.split())


def _single_address(value: str, *, what: str) -> Address:
    """Exactly one plain address: a list, a group or a line break is refused rather than sent."""
    if any(ch in value for ch in "\r\n,;") or not value.strip():
        raise ChannelError(f"{what} {value!r} is not one email address", retryable=False)
    _, addr = parseaddr(value)
    try:
        address = Address(addr_spec=addr)
    except (ValueError, IndexError):
        raise ChannelError(f"{what} {value!r} is not an email address", retryable=False) from None
    if not address.username or not address.domain:
        raise ChannelError(f"{what} {value!r} is not an email address (user@domain)", retryable=False)
    return address


def _domain_of(sender: str) -> str:
    _, addr = parseaddr(sender)
    domain = addr.rpartition("@")[2].strip().lower()
    if not domain or any(ch.isspace() or ch in "<>[]" for ch in domain):
        raise UserError(f"sender {sender!r} has no domain: write it as 'Name <bot@example.com>'")
    return domain
