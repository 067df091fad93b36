"""Triggers from anywhere (factor 11): anything that starts a thread goes through ``start_thread``.

Cron schedules (``schedules``: the data and the fire-time arithmetic; ``scheduler``: the embedded loop)
and signed inbound webhooks (``hooks``) are two such starters.
"""

from twelvefactor.triggers.hooks import WebhookTrigger, start_from_webhook
from twelvefactor.triggers.scheduler import Scheduler
from twelvefactor.triggers.schedules import Schedule, fire, fire_due, latest_due, next_due, run_id
from twelvefactor.triggers.start import Submit, start_thread

__all__ = [
    "Schedule",
    "Scheduler",
    "Submit",
    "WebhookTrigger",
    "fire",
    "fire_due",
    "latest_due",
    "next_due",
    "run_id",
    "start_from_webhook",
    "start_thread",
]
