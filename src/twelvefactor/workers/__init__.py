"""Workers advance threads in the background: in-process by default, a distributed engine at scale."""

from twelvefactor.workers.inprocess import Worker

__all__ = ["Worker"]
