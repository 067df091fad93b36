"""Who is asked, and who next: the pure decisions of routing and escalation (no I/O, no clock of its own).

A request goes to the chain it names (``HumanRequest.contact``), else to the first route that matches its
agent, intent and kind. Its first contact is step 0 of that chain; each step waits ``wait_s`` for an answer,
then the next step is contacted (``escalated``). Every contact is a ``HumanContact`` event on the thread, so
all processes agree on who was asked, the UI shows it, and a replay tells the same story.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from twelvefactor.channels.config import ContactStep, Route
from twelvefactor.events import HumanContact, HumanRequest, Notification
from twelvefactor.thread import Thread

__all__ = ["Contacts", "chain_for", "due_contacts", "notification_steps"]

Contacts = Mapping[str, Sequence[ContactStep]]
"""Contact chains by name."""


def chain_for(
    contacts: Contacts,
    routes: Sequence[Route],
    *,
    agent: str | None,
    intent: str | None,
    kind: str,
    named: str | None = None,
) -> str | None:
    """The chain a request (or notification) goes to: the one it names, else the first matching route.

    A name that is not a defined chain (a workflow's ``contact=`` with a typo; tools' names are checked when
    the app starts) falls through to the routes rather than leaving the request unsent.
    """
    if named is not None and named in contacts:
        return named
    for route in routes:
        if (
            (route.agent is None or route.agent == agent)
            and (route.intent is None or route.intent == intent)
            and (route.kind is None or route.kind == kind)
            and route.contact in contacts
        ):
            return route.contact
    return None


def due_contacts(thread: Thread, contacts: Contacts, routes: Sequence[Route], now: datetime) -> list[HumanContact]:
    """The contacts the thread's pending request is due now: its first, or the next once a deadline passed.

    Empty when the thread waits for no person, the request goes to no chain, or no deadline has passed.
    """
    request = thread.waiting_on
    if not isinstance(request, HumanRequest):
        return []
    made: list[HumanContact] = []
    for event in reversed(thread.events):  # only the events after the request: a short scan
        if event is request:
            break
        if isinstance(event, HumanContact) and event.request_id == request.call_id:
            made.append(event)
    if not made:
        chain = chain_for(
            contacts, routes, agent=thread.agent, intent=request.intent, kind=request.kind, named=request.contact
        )
        if chain is None:
            return []
        return [_contact(request, chain, 0, contacts[chain][0], now, escalated=False)]
    last = max(made, key=lambda contact: contact.step)
    steps = contacts.get(last.contact, ())
    if last.wait_s is None or last.step + 1 >= len(steps) or now < last.at + timedelta(seconds=last.wait_s):
        return []
    return [_contact(request, last.contact, last.step + 1, steps[last.step + 1], now, escalated=True)]


def notification_steps(
    notification: Notification, agent: str | None, contacts: Contacts, routes: Sequence[Route]
) -> list[ContactStep]:
    """Where a notification goes: the first step of its chain (nothing to answer, so nothing escalates)."""
    chain = chain_for(contacts, routes, agent=agent, intent="notify", kind="notify", named=notification.contact)
    return [] if chain is None else [contacts[chain][0]]


def _contact(
    request: HumanRequest, chain: str, step: int, target: ContactStep, now: datetime, *, escalated: bool
) -> HumanContact:
    return HumanContact(
        at=now,
        request_id=request.call_id,
        contact=chain,
        step=step,
        channel=target.channel,
        to=target.to,
        wait_s=target.wait_s,
        escalated=escalated,
        idempotency_key=f"contact:{request.call_id}:{step}",
    )
