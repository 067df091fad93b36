"""The leases one process holds, kept alive by a heartbeat thread.

A lease says "this process is advancing this thread": no other process touches the thread while the
lease lives. The heartbeat renews every lease the process holds in one write every ``ttl_s / 4``,
from a thread of its own, so a slow tool or model call never lets a lease lapse. When the process
dies (kill -9, a lost machine) its leases simply stop being renewed: within ``ttl_s`` they expire,
and any live process that looks (``ThreadStore.expired_leases``) takes the thread over.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

from twelvefactor.errors import ThreadLeased
from twelvefactor.store.base import ThreadStore

log = logging.getLogger("twelvefactor.leases")

DEFAULT_LEASE_S = 3.0


def new_owner(kind: str) -> str:
    """A lease owner name that says where it runs: ``worker-host-pid-1a2b3c``."""
    return f"{kind}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Leases:
    """Claims, renews and releases the leases of one owner.

    ``want(id)`` asks for a lease at the next heartbeat (no write now: cheap from an event loop);
    ``claim(id)`` takes it at once. ``lost`` holds the ids whose lease another owner took (after this
    process stalled past the lease), so the run in flight stops instead of racing the new holder.
    """

    def __init__(self, store: ThreadStore, owner: str, ttl_s: float = DEFAULT_LEASE_S) -> None:
        self.store = store
        self.owner = owner
        self.ttl_s = ttl_s
        self.lost: set[str] = set()
        self._wanted: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def interval_s(self) -> float:
        return self.ttl_s / 4

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name=f"{self.owner}-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval_s + 5)
            self._thread = None

    def want(self, thread_id: str) -> None:
        with self._lock:
            self._wanted.add(thread_id)

    def claim(self, thread_id: str) -> bool:
        """Take the lease now; False while another live owner holds it."""
        with self._lock:
            self._wanted.add(thread_id)
            self.lost.discard(thread_id)
        if self.store.claim(thread_id, self.owner, self.ttl_s):
            return True
        with self._lock:
            self._wanted.discard(thread_id)
        return False

    def claim_or_raise(self, thread_id: str) -> None:
        """Take the lease now, or ThreadLeased naming who holds it."""
        if not self.claim(thread_id):
            holder = self.store.lease_of(thread_id)
            owner, expires = holder if holder is not None else ("another process", time.time())
            raise ThreadLeased(thread_id, owner, max(0.0, expires - time.time()))

    def release(self, thread_id: str) -> None:
        with self._lock:
            self._wanted.discard(thread_id)
            self.lost.discard(thread_id)
        self.store.release(thread_id, self.owner)

    def beat(self) -> None:
        """Renew every wanted lease once (the heartbeat thread calls this; tests may too)."""
        with self._lock:
            wanted = set(self._wanted)
        if not wanted:
            return
        held = self.store.heartbeat(self.owner, wanted, self.ttl_s)
        with self._lock:
            self.lost |= (wanted - held) & self._wanted

    def _beat(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.beat()
            except Exception:  # noqa: BLE001 - a failed beat is retried at the next one; the lease has slack
                log.warning("lease heartbeat of %s failed; next in %.2f s", self.owner, self.interval_s, exc_info=True)
