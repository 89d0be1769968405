# -*- coding: utf-8 -*-
# Private to restorable.backup: the command line of the standalone agent on a host.
#   python3 -m restorable_agent run --config /etc/restorable/www.json [--delay N] [--quiet]
#   python3 -m restorable_agent status --config /etc/restorable/www.json
#   python3 -m restorable_agent init --config /etc/restorable/www.json
#   python3 -m restorable_agent drill --config /etc/restorable/drills/web01-weekly.json [--quiet]
#   python3 -m restorable_agent archive-wal|restore-wal --config FILE ... (PostgreSQL's, see wal_cli.py)
#   python3 -m restorable_agent replica-serve --root DIR   (a CDP replica key's forced command)
# Expected failures print one clear line on stderr and exit non-zero; no tracebacks.
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Sequence

from ..common.fileio import read_json
from ..common.process import SecretFileError, read_env_file, read_secret_file
from . import wal_cli
from . import replica_cli
from ..core.jobspec import ConfigError, load_job_config
from ..storage.factory import open_repository
from ..storage.repository import RepositoryError
from ..core.driver import EXIT_CODES
from ..core.runner import RunOptions, install_signal_handlers
from .registry import UnsupportedTier, runner_for
from ..core.status import StatusStore

PROG = "restorable-agent"
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Run and inspect restorable agent backups.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run one backup of a dataset (the scheduled job)")
    run.add_argument("--config", required=True, help="job configuration file (JSON)")
    run.add_argument("--delay", type=float, default=0.0, help="seconds to wait first (this host's start offset)")
    run.add_argument("--ignore-window", action="store_true", help="start even outside the backup window")
    run.add_argument("--ignore-load", action="store_true", help="start even when the host is busy")
    run.add_argument("--quiet", action="store_true", help="print nothing but errors (cron)")
    status = commands.add_parser("status", help="print the status of the last runs")
    status.add_argument("--config", required=True, help="job configuration file (JSON)")
    init = commands.add_parser("init", help="create the repository unless it exists")
    init.add_argument("--config", required=True, help="job configuration file (JSON)")
    drill = commands.add_parser("drill", help="run a scheduled restore drill and keep its evidence on this host")
    drill.add_argument("--config", required=True, help="drill configuration file (JSON)")
    drill.add_argument("--quiet", action="store_true", help="print nothing but errors (cron)")
    replica = commands.add_parser("replica-serve", help="serve one dataset's directory on a CDP replica host")
    replica.add_argument("--root", required=True, help="the dataset's directory on this host (on btrfs)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] and arguments[0] in wal_cli.COMMANDS:
        return wal_cli.main(arguments)
    args = build_parser().parse_args(arguments)
    if args.command == "replica-serve":
        return replica_cli.main(["--root", args.root])
    if args.command == "drill":
        # Only drills need the drill engine and its reports: a backup every minute does not load them.
        from .drill_cli import run_drill_config  # pylint: disable=import-outside-toplevel
        logging.basicConfig(level=logging.ERROR if args.quiet else logging.INFO, stream=sys.stderr,
                            format="restorable-drill: %(message)s")
        return run_drill_config(args.config, args.quiet)
    try:
        config = load_job_config(args.config)
    except ConfigError as exc:
        return _fail(str(exc), EXIT_USAGE)
    quiet = getattr(args, "quiet", False)
    logging.basicConfig(level=logging.ERROR if quiet else logging.INFO, stream=sys.stderr,
                        format="%s[%s]: %%(message)s" % (PROG, config.dataset))
    if args.command == "run":
        install_signal_handlers()
        options = RunOptions(args.ignore_window, args.ignore_load, max(0.0, args.delay))
        try:
            runner = runner_for(config, options)
        except (UnsupportedTier, ConfigError) as exc:
            return _fail(str(exc), EXIT_USAGE)
        result = runner.run()
        if not quiet:
            _out(json.dumps(result.to_dict(), indent=2, sort_keys=True))
        return result.exit_code
    if args.command == "status":
        try:
            status = read_json(StatusStore(config.status_dir, config.dataset).path)
        except ValueError as exc:
            return _fail(str(exc), EXIT_CODES["failed"])
        if status is None:
            return _fail("dataset %s has no status yet (%s)" % (config.dataset, config.status_path),
                         EXIT_CODES["failed"])
        _out(json.dumps(status, indent=2, sort_keys=True))
        return 0
    # init
    try:
        read_secret_file(config.password_file, "repository password file")
        env = read_env_file(config.env_file, "repository environment file") if config.env_file else {}
        repo = open_repository(config.repository, config.password_file, env=env,
                               options=config.repository_options, binary=config.restic_binary,
                               cache_dir=config.cache_dir)
        created = repo.init_if_needed()
    except (RepositoryError, SecretFileError) as exc:
        return _fail(str(exc), EXIT_CODES["failed"])
    _out(json.dumps({"dataset": config.dataset, "repository": config.repository, "created": created}))
    return 0


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _fail(message: str, code: int) -> int:
    sys.stderr.write("%s: error: %s\n" % (PROG, message))
    return code
