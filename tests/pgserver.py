"""A real PostgreSQL for the tests: ``initdb`` into a temp dir, ``pg_ctl`` on 127.0.0.1 with a free port.

The server binaries come from PATH or Debian's ``/usr/lib/postgresql/<major>/bin`` (the ``postgresql``
package; ``.ci/run`` installs it). PostgreSQL refuses to run as root, so under root (containers, CI) the
server runs as the ``postgres`` system user (or ``nobody``) through ``subprocess``'s ``user=``: no sudo or
su needed. Settings trade durability for speed (no fsync): the cluster is thrown away at the end.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NOT_FOUND = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin:"
    " install Debian's postgresql package (apt-get install postgresql; .ci/run does) to run these tests"
)

# Fast and throwaway: nothing is fsynced, and there is room for the connection pools of many stores.
SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "32MB",
    "listen_addresses": "'127.0.0.1'",
    # A connection attempt that lands while the server shuts down holds the shutdown until it times out
    # (60 s by default): clients that reconnect at once (workers) made `pg_ctl restart` take a minute.
    "authentication_timeout": "'5s'",
}


@dataclass(frozen=True)
class Binaries:
    initdb: Path
    pg_ctl: Path


def find_binaries() -> Binaries | None:
    """initdb and pg_ctl from one installation: PATH first, then Debian's versioned dirs, newest first."""
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path:
        # /usr/local/bin/initdb may be a link into the real bin dir, where pg_ctl and postgres live too.
        candidates += [Path(on_path).resolve().parent, Path(on_path).parent]

    def major(path: Path) -> int:
        match = re.fullmatch(r"\d+", path.parent.name)
        return int(match.group()) if match else -1

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=major, reverse=True)
    for directory in candidates:
        initdb, pg_ctl = directory / "initdb", directory / "pg_ctl"
        if os.access(initdb, os.X_OK) and os.access(pg_ctl, os.X_OK):
            return Binaries(initdb, pg_ctl)
    return None


def _server_user() -> pwd.struct_passwd | None:
    """Who runs the server: None for the current user, a system user when we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root, and neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL as")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """One throwaway cluster. ``url(db)`` for a database in it; ``fresh_database()`` makes one per test."""

    def __init__(self, binaries: Binaries, settings: dict[str, str] | None = None) -> None:
        self.binaries = binaries
        self.settings = {**SETTINGS, **(settings or {})}
        self.user = _server_user()
        # Not pytest's tmp dir: that one is private to root, and the server may run as another user. Short,
        # too: the unix socket's path must fit in 107 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="tf-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self._names = itertools.count()
        self._running = False
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)

    def _run(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        extra: dict[str, Any] = {}
        if self.user is not None:
            extra = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        env = {**os.environ, "LC_ALL": "C", "PGTZ": "UTC"}
        result = subprocess.run(
            [str(arg) for arg in args], cwd=self.root, env=env, capture_output=True, text=True, timeout=120, **extra
        )
        if check and result.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(str(a) for a in args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}\n{log}"
            )
        return result

    def start(self) -> PostgresServer:
        self._run(
            self.binaries.initdb, "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C",
            "--no-sync", "--no-instructions",
        )  # fmt: skip
        for attempt in range(3):  # the free port can be taken between probing and binding it
            self.port = _free_port()
            # In the config file, not pg_ctl -o: a plain `pg_ctl start` after a stop (tests do that) keeps them.
            settings = {**self.settings, "port": str(self.port), "unix_socket_directories": f"'{self.root}'"}
            with (self.data / "postgresql.conf").open("a") as conf:  # later lines win
                conf.writelines(f"{name} = {value}\n" for name, value in settings.items())
            started = self._run(
                self.binaries.pg_ctl, "-D", self.data, "-l", self.log, "-w", "-t", "60", "start", check=attempt == 2
            )
            if started.returncode == 0:
                break
        self._running = True
        atexit.register(self.stop)  # even if the session is interrupted before its finaliser runs
        return self

    def stop(self) -> None:
        if self._running:
            self._running = False
            self._run(self.binaries.pg_ctl, "-D", self.data, "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def pg_ctl(self, *args: str) -> None:
        """Run a pg_ctl command on this cluster (``restart``, ``stop``, ``start``), waiting for it."""
        self._run(self.binaries.pg_ctl, "-D", self.data, "-l", self.log, "-w", "-t", "60", *args)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def admin(
        self, statement: Any, params: tuple[Any, ...] | None = None, *, database: str = "postgres"
    ) -> list[tuple[Any, ...]]:
        """Run one statement in ``database`` on a fresh connection (so it survives server restarts)."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def fresh_database(self, template: str = "template0") -> str:
        """A new, empty database (or a copy of ``template``), its name."""
        from psycopg import sql

        name = f"t{os.getpid()}_{next(self._names)}"
        # FILE_COPY: copying the template's files is faster than WAL-logging every block, with fsync off.
        self.admin(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
        return name

    def empty_database(self, name: str) -> None:
        """Delete every row of every table but ``migrations``: the tables stay, migrated. A few ms, where
        copying a database from a template takes 50-250."""
        empty_tables(self.url(name))

    def drop_database(self, name: str) -> None:
        from psycopg import sql

        # FORCE: a pool that a failed test left open must not keep the database alive.
        self.admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def empty_tables(url: str) -> None:
    """Delete every row of every table but ``migrations`` in the URL's current schema (its search_path, as
    ``options=-c search_path=...`` sets it), in one transaction: the tables stay, migrated."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'migrations'"
            " ORDER BY tablename = 'threads'"  # last: the events reference it
        ).fetchall()
        for (table,) in tables:
            conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
