# -*- coding: utf-8 -*-
# Private to restorable.backup: the PostgreSQL settings that make a cluster archive into its
# dataset's WAL store, read and applied with ALTER SYSTEM (never by editing files), and the
# archive and restore commands themselves.
"""Archiving settings of a cluster.

:func:`configure_archiving` compares ``wal_level``, ``archive_mode``, ``archive_command``,
``archive_library`` (empty, or PostgreSQL 15 would use it instead of the command) and
``archive_timeout`` with what the job needs, applies the differences with ``ALTER SYSTEM SET``
and ``pg_reload_conf()``, and never restarts: ``archive_mode`` and ``wal_level`` only change
with a restart, which the result reports (``restart_needed``, also when a change made before is
still pending). In check mode nothing is changed and the result says what would be.

``archive_timeout`` follows from the RPO: a WAL file is switched out at least that often when
there are writes, min(RPO / 2, the job's interval), at least 60 seconds (shorter ones fill the
archive with mostly empty 16 MiB files).
"""
from __future__ import annotations

import shlex
from typing import Any

from ....core.layout import PACKAGE_NAME
from .server import PgServer, literal

WAL_MODULE = PACKAGE_NAME + ".runtime.wal_cli"
MIN_ARCHIVE_TIMEOUT = 60
WAL_LEVELS_THAT_ARCHIVE = ("replica", "logical")
RESTART_SETTINGS = ("wal_level", "archive_mode")
# pg_file_settings marks a value waiting for a restart with an error ("setting could not be applied"):
# it is still the value written, so it is not filtered out.
SETTINGS_SQL = ("SELECT json_build_object('name', s.name, 'setting', s.setting, 'pending_restart', s.pending_restart, "
                "'configured', (SELECT f.setting FROM pg_file_settings f WHERE f.name = s.name "
                "ORDER BY f.seqno DESC LIMIT 1)) FROM pg_settings s WHERE s.name IN (%s) ORDER BY s.name")


def archive_timeout_for(rpo_seconds: float | None, interval_minutes: float) -> int:
    """Seconds between forced WAL switches: min(RPO/2, interval), at least 60."""
    candidates = [interval_minutes * 60.0] + ([rpo_seconds / 2.0] if rpo_seconds else [])
    return max(MIN_ARCHIVE_TIMEOUT, int(min(candidates)))


def agent_command(subcommand: str, config_path: str, install_dir: str, arguments: str, python: str = "python3") -> str:
    """A shell command PostgreSQL runs: the standalone agent's subcommand with its configuration.

    PostgreSQL runs it once per WAL file, with the data directory as the working directory (%p
    is relative to it), so the agent is found through PYTHONPATH rather than by changing
    directory. It runs the agent's WAL command line module itself (``python3 -m
    restorable_agent`` reaches it too, after importing the whole agent: about 100 ms more per
    file); -S skips the site module (the archive path needs the standard library only).
    Percent signs of paths are doubled: PostgreSQL reads %p, %f and %% in the command.
    """
    def quoted(text: str) -> str:
        return shlex.quote(text).replace("%", "%%")
    return "PYTHONPATH=%s %s -S -m %s %s --config %s %s" % (quoted(install_dir), quoted(python), WAL_MODULE,
                                                            subcommand, quoted(config_path), arguments)


def archive_command(config_path: str, install_dir: str, python: str = "python3") -> str:
    return agent_command("archive-wal", config_path, install_dir, "%p %f", python)


def restore_command(config_path: str, install_dir: str, python: str = "python3") -> str:
    return agent_command("restore-wal", config_path, install_dir, "%f %p", python)


def wanted_settings(command: str, archive_timeout: int, wal_level: str) -> dict[str, str]:
    return {"wal_level": wal_level, "archive_mode": "on", "archive_command": command, "archive_library": "",
            "archive_timeout": str(int(archive_timeout))}


def read_settings(server: PgServer, names: list[str]) -> dict[str, dict[str, Any]]:
    """{name: {setting, pending_restart, configured}}: the value in force, and the last one written
    to a configuration file (postgresql.auto.conf comes last) when there is one."""
    rows = server.rows(SETTINGS_SQL % ", ".join(literal(name) for name in names))
    return {row["name"]: row for row in rows}


def configure_archiving(server: PgServer, command: str, archive_timeout: int, check_mode: bool = False) -> dict[str, Any]:
    """Make the cluster archive with command (see the module docstring); what changed or would."""
    names = sorted(wanted_settings(command, archive_timeout, "replica"))
    current = read_settings(server, names)
    level = current.get("wal_level", {}).get("setting")
    wanted = wanted_settings(command, archive_timeout, level if level in WAL_LEVELS_THAT_ARCHIVE else "replica")
    before = {name: current[name]["setting"] for name in names if name in current}
    changes = {name: value for name, value in wanted.items()
               if name in current and _configured(current[name]) != value}
    if changes and not check_mode:
        server.execute(["ALTER SYSTEM SET %s = %s" % (name, literal(value)) for name, value in sorted(changes.items())]
                       + ["SELECT pg_reload_conf()"])
        current = read_settings(server, names)
    pending = sorted(name for name in names if name in current and current[name]["pending_restart"])
    if check_mode:
        pending = sorted(set(pending) | {name for name in changes if name in RESTART_SETTINGS})
    after = dict(before, **{name: value for name, value in wanted.items() if name in current})
    result = {"changed": bool(changes), "changes": sorted(changes), "restart_needed": bool(pending),
              "pending_restart": pending, "before": before, "after": after}
    if pending:
        result["message"] = ("%s take effect only when PostgreSQL restarts; this module does not restart it"
                             % ", ".join(pending))
    return result


def _configured(row: dict[str, Any]) -> str:
    """The value written last (in force after a reload or restart), else the one in force."""
    value = row.get("configured")
    return row["setting"] if value is None else value
