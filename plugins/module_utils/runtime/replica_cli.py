# -*- coding: utf-8 -*-
# Private to restorable.backup: the forced command of a source's key on a CDP replica host.
#   command="... python3 -m restorable_agent.runtime.replica_cli --root /srv/replicas/web01/data",restrict ssh-ed25519 ...
# sshd puts what the client asked for in SSH_ORIGINAL_COMMAND; only list, receive NAME and
# delete NAME... are served, inside --root (see tiers/cdp/replica_service.py).
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from ..tiers.cdp.replica_service import serve

PROG = "restorable-agent replica-serve"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Serve one dataset's directory on a CDP replica host "
                                     "(the forced command of the source's key).")
    parser.add_argument("--root", required=True, help="the dataset's directory on this host (on btrfs)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # stdin is the SSH channel: btrfs receive reads it itself, Python never does.
    return serve(args.root, os.environ.get("SSH_ORIGINAL_COMMAND", ""), sys.stdin.fileno())


if __name__ == "__main__":
    # `python3 -m restorable_agent.runtime.replica_cli --root DIR` imports only what serving needs,
    # a third of the full command line's start-up on every SSH call of a run.
    raise SystemExit(main())
