"""Read an inbound email: who sent it, which request it answers, and what the person wrote (pure, no I/O).

A reply is matched to its request by the signed token our outbound message carried in its Message-ID
(``<tf.TOKEN@domain>``), which mail clients copy into ``In-Reply-To`` and ``References``; the reply
address may also carry a short signed tag (``bot+TAG@example.com``, see ``reply_tag``). The text is the
first meaningful part of the mail: quoted history (``>`` lines, "On ... wrote:", Outlook's header blocks)
and signatures are cut, HTML is turned into text by a parser that renders nothing.

Everything here is untrusted input: ``parse_mail`` and ``read_answer`` raise ``MailRejected`` with a
reason a sender can act on, and never guess: a first line that is not clearly approve or deny is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from email import policy
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr
from html.parser import HTMLParser
from typing import Literal

from pydantic import BaseModel, ConfigDict

from twelvefactor.errors import MailRejected

__all__ = [
    "MAX_MAIL_BYTES",
    "InboundMail",
    "MailAnswer",
    "MailRejected",
    "parse_mail",
    "read_answer",
    "reply_tag",
    "split_tag",
    "strip_quoted",
]

MAX_MAIL_BYTES = 1024 * 1024
_TAG_DOMAIN = b"twelvefactor/reply-tag/v1\x00"
_TAG_CHARS = 16
_TOKEN_IN_ID = re.compile(r"<tf\.([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)@[^<>\s]+>")
_MAX_TOKEN = 2048


class InboundMail(BaseModel):
    """The parts of an inbound message that decide what it does."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sender: str  # the From address, lower-cased
    to: list[str]  # To, Cc and Delivered-To addresses, lower-cased
    subject: str
    message_id: str | None  # without the angle brackets
    token: str | None  # the reply token from In-Reply-To / References: None when not a reply to us
    text: str  # the first meaningful text: quoted history and signature removed


class MailAnswer(BaseModel):
    """What a reply says, in the shape of a HumanResponse."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    approved: bool | None = None
    text: str | None = None
    outcome: Literal["done", "retry", "skip"] | None = None


def reply_tag(secret: str, token: str) -> str:
    """The short tag of ``token`` for a reply address's local part: 16 lower-case base32 characters.

    Signed with the server's secret, so an address with a tag we did not make is told apart.
    """
    mac = hmac.new(secret.encode(), _TAG_DOMAIN + token.encode(), hashlib.sha256).digest()
    return base64.b32encode(mac).decode().lower()[:_TAG_CHARS]


def split_tag(address: str) -> tuple[str, str | None]:
    """``bot+tag@example.com`` -> ``("bot@example.com", "tag")``; an address without a tag -> ``(address, None)``."""
    local, at, domain = address.rpartition("@")
    if not at:
        return address, None
    base, plus, tag = local.partition("+")
    return (f"{base}@{domain}", tag) if plus else (address, None)


def parse_mail(raw: bytes, *, max_bytes: int = MAX_MAIL_BYTES) -> InboundMail:
    """The parts of an RFC 5322 message that matter here; MailRejected when it cannot be used."""
    if len(raw) > max_bytes:
        raise MailRejected(f"the message is {len(raw)} bytes; the limit is {max_bytes}: reply without attachments")
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(message, EmailMessage)  # policy.default builds EmailMessage
        return _read(message)
    except MailRejected:
        raise
    except (MessageError, ValueError, TypeError, LookupError, AttributeError) as exc:
        # The email package is lenient but a hostile message can still trip its header parsers.
        raise MailRejected(
            f"the message cannot be parsed as MIME ({type(exc).__name__}): send it as plain text"
        ) from None


def _read(message: EmailMessage) -> InboundMail:
    automatic = str(message.get("Auto-Submitted", "no")).strip().lower()
    precedence = str(message.get("Precedence", "")).strip().lower()
    if automatic != "no" or precedence in ("bulk", "junk", "auto_reply", "list") or "X-Autoreply" in message:
        # An out-of-office reply is not an answer, and answering automatic mail is how mail loops start.
        raise MailRejected("the message is an automatic reply (Auto-Submitted/Precedence): only a person can answer")
    sender = _address(str(message.get("From", "")))
    if sender is None:
        raise MailRejected("the message has no valid From address: it is not a mail a person sent")
    recipients: list[str] = []
    for name in ("To", "Cc", "Delivered-To"):
        for value in message.get_all(name, []):
            for _, addr in getaddresses([str(value)]):
                found = _address(addr)
                if found and found not in recipients:
                    recipients.append(found)
    message_id = _bare_id(str(message.get("Message-ID", "")))
    subject = " ".join(str(message.get("Subject", "")).split())[:500]
    return InboundMail(
        sender=sender,
        to=recipients,
        subject=subject,
        message_id=message_id,
        token=_token(message),
        text=strip_quoted(_body_text(message)),
    )


def _address(value: str) -> str | None:
    _, addr = parseaddr(value)
    addr = addr.strip().lower()
    if not addr or len(addr) > 320 or any(ch.isspace() or ch in "<>\"'," for ch in addr):
        return None
    try:
        Address(addr_spec=addr)  # exactly one local part and domain
    except (ValueError, IndexError):
        return None
    return addr


def _bare_id(value: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    return value.strip("<>")[:998] or None


def _token(message: EmailMessage) -> str | None:
    """The reply token: In-Reply-To first (the message answered), then References from newest to oldest."""
    candidates = _TOKEN_IN_ID.findall(str(message.get("In-Reply-To", "")))
    candidates += list(reversed(_TOKEN_IN_ID.findall(str(message.get("References", "")))))
    for token in candidates:
        if len(token) <= _MAX_TOKEN:
            return str(token)
    return None


def _body_text(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain", "html"))
    if body is None:
        return ""
    try:
        content = body.get_content()
    except (LookupError, ValueError):  # an unknown charset or a broken transfer encoding
        payload = body.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if not isinstance(content, str):
        return ""
    return html_to_text(content) if body.get_content_type() == "text/html" else content


# --- HTML to text, without rendering ---


class _TextOfHTML(HTMLParser):
    _SKIP = frozenset({"script", "style", "head", "title", "blockquote"})  # blockquote: the quoted history
    _BREAK = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "pre"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = " ".join(value or "" for name, value in attrs if name == "class")
        # Gmail and Outlook wrap the quoted history in these; everything inside is history.
        quoted = "gmail_quote" in classes or "moz-cite-prefix" in classes or "divRplyFwdMsg" in str(attrs)
        if self._skipping or tag in self._SKIP or quoted:
            if tag not in ("br", "hr", "img", "meta", "link", "input"):
                self._skipping.append(tag)
            return
        if tag in self._BREAK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if self._skipping:
            # Unclosed tags inside (a bare <p>) must not keep the rest of the mail skipped.
            if tag in self._skipping:
                del self._skipping[len(self._skipping) - 1 - self._skipping[::-1].index(tag) :]
            return
        if tag in self._BREAK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """The text of an HTML mail body, quoted history left out; nothing is fetched, run or rendered."""
    parser = _TextOfHTML()
    parser.feed(markup)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(lines)


# --- quoted history and signatures ---

_ATTRIBUTION = re.compile(
    r"^(on|le|am|el|il|op|em|w dniu|den|på)\b.*\b(wrote|a écrit|schrieb|escribió|ha scritto|schreef|escreveu"
    r"|napisał|skrev|kirjoitti)\b\s*:?\s*$",
    re.IGNORECASE,
)
_ORIGINAL = re.compile(r"^\s*-{2,}\s*(original message|ursprüngliche nachricht|message d'origine|forwarded message)",
                       re.IGNORECASE)  # fmt: skip
_HEADER_FROM = re.compile(r"^\s*\**(from|von|de|van)\s*:\**\s", re.IGNORECASE)
_HEADER_NEXT = re.compile(r"^\s*\**(sent|date|to|subject|gesendet|datum|envoyé|enviado)\s*:", re.IGNORECASE)
_SIGNATURE = re.compile(r"^(-- ?|--|sent from my .*|get outlook for .*|envoyé de mon .*)$", re.IGNORECASE)


def strip_quoted(text: str) -> str:
    """The new part of a reply: up to the first attribution line, original-message block or signature,
    without ``>`` lines; leading and trailing blank lines removed."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        if _cuts_here(stripped, lines[index + 1 : index + 4]):
            break
        if stripped.startswith(">"):
            continue
        kept.append(line.rstrip())
    while kept and not kept[0].strip():
        kept.pop(0)
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept)


def _cuts_here(line: str, following: list[str]) -> bool:
    if _SIGNATURE.match(line) or _ORIGINAL.match(line) or _ATTRIBUTION.match(line):
        return True
    if re.match(r"^_{8,}$", line):  # Outlook on the web: a rule, then the From:/Sent: block
        return True
    if _HEADER_FROM.match(line) and any(_HEADER_NEXT.match(next_line) for next_line in following):
        return True
    # Gmail wraps a long attribution: "On Mon, ... Deploybot <" / "bot@example.com> wrote:".
    if re.match(r"^(on|le|am|el)\s", line, re.IGNORECASE) and following:
        return bool(_ATTRIBUTION.match(f"{line} {following[0].strip()}"))
    return False


# --- what the first line says ---

_APPROVE = frozenset({"approve", "approved", "yes", "y", "ok", "okay", "lgtm", "accept", "accepted"})
_DENY = frozenset({"deny", "denied", "no", "n", "reject", "rejected", "decline", "declined"})
_RECONCILE: dict[str, Literal["done", "retry", "skip"]] = {"done": "done", "retry": "retry", "skip": "skip"}
# "No problem" and friends mean yes: refuse to guess rather than deny someone who approved.
_IDIOM = re.compile(r"^\W*no\s+(problem|prob|worries|objections?|issues?|concerns?)\b", re.IGNORECASE)
_FIRST_WORD = re.compile(r"^\W*([A-Za-z]+)\b[\s:;,.!\-–—]*(.*)$")


def read_answer(kind: Literal["approval", "input", "reconcile"], text: str) -> MailAnswer:
    """The answer ``text`` (already stripped of quoted history) gives to a request of ``kind``."""
    text = text.strip()
    if not text:
        raise MailRejected("the reply is empty: write your answer on the first line, above the quoted message")
    if kind == "input":
        return MailAnswer(text=text)
    first, _, rest = text.partition("\n")
    match = _FIRST_WORD.match(first.strip())
    word = match.group(1).lower() if match else ""
    remainder = "\n".join(part for part in ((match.group(2) if match else "").strip(), rest.strip()) if part)
    if kind == "approval":
        if word in _APPROVE and not _IDIOM.match(first):
            return MailAnswer(approved=True)
        if word in _DENY and not _IDIOM.match(first):
            return MailAnswer(approved=False, text=remainder or None)
        raise MailRejected(
            f"the first line {first.strip()[:60]!r} is not an answer: reply APPROVE, or DENY and a reason,"
            " on the first line"
        )
    outcome = _RECONCILE.get(word)
    if outcome is not None:
        return MailAnswer(outcome=outcome, text=(remainder or None) if outcome == "done" else None)
    raise MailRejected(
        f"the first line {first.strip()[:60]!r} is not an answer: reply DONE (and its result), RETRY or SKIP"
    )
