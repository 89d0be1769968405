# -*- coding: utf-8 -*-
# Private to restorable.backup: the protected PostgreSQL cluster as the CDP jobs reach it.
"""psql and pg_basebackup against the protected cluster, with the PostgreSQL consistency
profile's connection: ``-h/-p/-U`` only, no password on any command line, and when run as root
the clients run as the role's OS user (peer authentication over the socket). Queries answer
one JSON object per row (``json_build_object``), so no value can break the framing.
"""
from __future__ import annotations

import json
from typing import Any

from ....common.process import run_command
from ....consistency.postgresql import PostgreSQLProfile, check_database_name
from ....drill.application import pg_bindir

DEFAULT_USER = "postgres"
DEFAULT_DATABASE = "postgres"
QUERY_TIMEOUT = 120.0


class ServerError(Exception):
    """The cluster could not be reached or a statement failed; the message says which."""


def literal(text: str) -> str:
    """A SQL string literal (standard_conforming_strings, on since PostgreSQL 9.1)."""
    return "'%s'" % text.replace("'", "''")


class PgServer:
    """One cluster: where its socket or host is, the port, the role, the database to use."""

    def __init__(self, host: str | None, port: int | None, user: str | None, database: str | None,
                 staging_dir: str, bindir: str | None = None) -> None:
        self.user = user or DEFAULT_USER
        self.database = check_database_name(database or DEFAULT_DATABASE)
        settings = {"host": host, "port": port, "user": self.user, "bindir": bindir or pg_bindir(), "mode": "basebackup"}
        self.profile = PostgreSQLProfile({"type": "postgresql", "postgresql": settings}, staging_dir)

    def describe(self) -> str:
        profile = self.profile
        return "PostgreSQL %s port %s" % (profile.host or "on the default socket", profile.port or 5432)

    def run_as(self) -> list[str]:
        return self.profile.run_as_prefix()

    def env(self) -> dict[str, str]:
        return self.profile.client_env()

    def binary(self, name: str) -> str:
        return self.profile.binary(name)

    def connection_args(self) -> list[str]:
        return self.profile.connection_args()

    def execute(self, statements: list[str], database: str | None = None, timeout: float = QUERY_TIMEOUT) -> list[str]:
        """Each statement in its own transaction (psql -c each), in order; the output lines."""
        argv = self.profile.psql_argv(database or self.database)
        for statement in statements:
            argv += ["-c", statement]
        result = run_command(argv, env=self.env(), timeout=timeout)
        if not result.ok:
            why = "timed out after %.0fs" % timeout if result.timed_out else (
                result.stderr_tail(3) or "exit code %d" % result.returncode)
            raise ServerError("%s: %s" % (self.describe(), why.replace("\n", " / ")))
        return [line for line in result.stdout.splitlines() if line.strip()]

    def rows(self, statements: str | list[str], database: str | None = None) -> list[dict[str, Any]]:
        """The rows of statements selecting one json_build_object(...) per row."""
        try:
            return [json.loads(line) for line in self.execute([statements] if isinstance(statements, str) else statements,
                                                              database)]
        except ValueError as exc:
            raise ServerError("%s answered no JSON: %s" % (self.describe(), exc)) from None

    def row(self, sql: str, database: str | None = None) -> dict[str, Any]:
        rows = self.rows(sql, database)
        if len(rows) != 1:
            raise ServerError("%s answered %d rows where one was expected" % (self.describe(), len(rows)))
        return rows[0]

    def basebackup_argv(self, label: str) -> list[str]:
        """The whole cluster as one tar on stdout, without WAL (the archive has it: see basebackup.py)."""
        return self.run_as() + [self.binary("pg_basebackup"), "-D", "-", "-Ft", "-X", "none", "-c", "fast",
                                "-l", label] + self.connection_args()
