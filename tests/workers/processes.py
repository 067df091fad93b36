"""What the tests with real `twelvefactor worker`-style processes share: launching threads, stopping workers."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Sequence

from twelvefactor import Thread, UserMessage
from twelvefactor.store.base import ThreadStore
from twelvefactor.workers.procrastinate import ProcrastinateDispatcher


async def launch(url: str, store: ThreadStore, ids: Sequence[str], agent: str) -> None:
    """Create a thread per id (its message is its id) and enqueue its advance, as a web process does."""
    dispatcher = ProcrastinateDispatcher(url)
    await dispatcher.start()
    try:
        for thread_id in ids:
            store.create(Thread.new(UserMessage(content=thread_id), agent=agent, id=thread_id))
            dispatcher.submit(thread_id)
        await dispatcher.idle()
    finally:
        await dispatcher.stop()


def stop(workers: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each live worker (a graceful stop), then kill any still running after 15 s."""
    for proc in workers:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in workers:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
