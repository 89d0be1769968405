# -*- coding: utf-8 -*-
# Private to restorable.backup: the archive_command and restore_command of PostgreSQL.
#   python3 -m restorable_agent archive-wal --config FILE %p %f
#   python3 -m restorable_agent restore-wal --config FILE %f %p
# or, what settings.py writes into archive_command (the same without importing the rest of the
# agent first): python3 -S -m restorable_agent.runtime.wal_cli archive-wal --config FILE %p %f
# PostgreSQL starts one per WAL file: argv is read by hand (no argparse) and only the archive
# path is imported. Exit codes are what PostgreSQL reads:
#   archive-wal: 0 stored (or stored before with the same content); 1 anything else, so that
#     PostgreSQL keeps the file and tries again (WAL is never dropped).
#   restore-wal: 0 restored; 1 not in the store, quietly (PostgreSQL asks for files that do not
#     exist, e.g. the next timeline's history); 126 for a failure (store unreachable, checksum
#     mismatch, bad configuration): above 125 PostgreSQL stops recovery instead of taking the
#     failure for the end of the archive and promoting a server that is missing data.
# A failure prints one line on stderr (PostgreSQL logs it), never a traceback.
from __future__ import annotations

import sys

from ..tiers.cdp.wal.archiver import ArchiverConfigError, archive_wal, restore_wal
from ..tiers.cdp.wal.store import Missing, StoreError

PROG = "restorable-agent"
COMMANDS = ("archive-wal", "restore-wal")
EXIT_USAGE = 2
EXIT_ARCHIVE_FAILED = 1
EXIT_NOT_FOUND = 1
EXIT_RESTORE_FAILED = 126
USAGE = "usage: %s archive-wal --config FILE PATH NAME | restore-wal --config FILE NAME PATH" % PROG


def parse(argv: list[str]) -> tuple[str, str, str, str]:
    """(command, config path, first argument, second argument); ValueError on anything else."""
    if len(argv) != 5 or argv[0] not in COMMANDS or argv[1] != "--config":
        raise ValueError(USAGE)
    return argv[0], argv[2], argv[3], argv[4]


def main(argv: list[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        command, config, first, second = parse(arguments)
    except ValueError as exc:
        return _fail(arguments[0] if arguments else "", str(exc), EXIT_USAGE)
    if command == "archive-wal":
        return archive(config, first, second)
    return restore(config, first, second)


def archive(config: str, path: str, name: str) -> int:
    try:
        archive_wal(config, path, name)
    except (ArchiverConfigError, StoreError) as exc:
        return _fail("archive-wal", "WAL file %s was not archived: %s" % (name, exc), EXIT_ARCHIVE_FAILED)
    except OSError as exc:
        return _fail("archive-wal", "WAL file %s was not archived: %s: %s" % (name, path, exc.strerror or exc),
                     EXIT_ARCHIVE_FAILED)
    except Exception as exc:  # a bug: PostgreSQL keeps the file; its log gets one line, no traceback
        return _fail("archive-wal", "WAL file %s was not archived: unexpected %s: %s" % (name, type(exc).__name__, exc),
                     EXIT_ARCHIVE_FAILED)
    return 0


def restore(config: str, name: str, path: str) -> int:
    try:
        restore_wal(config, name, path)
    except Missing:
        return EXIT_NOT_FOUND
    except (ArchiverConfigError, StoreError, OSError) as exc:
        return _fail("restore-wal", "WAL file %s was not restored: %s" % (name, exc), EXIT_RESTORE_FAILED)
    except Exception as exc:  # a bug: recovery must stop rather than end early
        return _fail("restore-wal", "WAL file %s was not restored: unexpected %s: %s" % (name, type(exc).__name__, exc),
                     EXIT_RESTORE_FAILED)
    return 0


def _fail(command: str, message: str, code: int) -> int:
    sys.stderr.write("%s %s: error: %s\n" % (PROG, command, message))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
