"""Triggers from anywhere (factor 11): anything that starts a thread goes through ``start_thread``."""

from twelvefactor.triggers.start import Submit, start_thread

__all__ = ["Submit", "start_thread"]
