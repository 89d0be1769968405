# -*- coding: utf-8 -*-
"""A runner process for the system tests: freeze through the fsfreeze profile, then misbehave.

    python freeze_runner.py '{"mountpoints": [...], "max_freeze": 3, "mode": "sleep", "status_dir": D}'

It handles SIGTERM as the agent runner does (an exception), prints "frozen" from inside the
snapshot, then in mode "sleep" sleeps (SIGKILL kills it at once) or in mode "write" writes to
the frozen filesystem (it then sits in D state: SIGKILL cannot end it before a thaw). At the
end it prints "result <json>" or "error <message>".
"""
from __future__ import annotations

import json
import os
import sys
import time

from ansible_collections.restorable.backup.plugins.module_utils.core.runner import (
    Interrupted, install_signal_handlers)
from ansible_collections.restorable.backup.plugins.module_utils.consistency.base import (
    QuiesceFailed, profile_from_config)


def main() -> int:
    config = json.loads(sys.argv[1])
    install_signal_handlers()
    profile = profile_from_config(
        {"type": "fsfreeze", "max_freeze": "%ds" % config["max_freeze"], "fsfreeze": {"mountpoints": config["mountpoints"]}},
        config["status_dir"], config["status_dir"])

    def snapshot() -> str:
        print("frozen", flush=True)
        if config["mode"] == "write":
            path = os.path.join(config["mountpoints"][0], "runner-write.bin")
            with open(path, "wb") as handle:
                handle.write(b"y" * 4096)
                handle.flush()
                os.fsync(handle.fileno())
        else:
            time.sleep(600)
        return "snapshot"

    try:
        _result, record = profile.frozen(snapshot)
    except Interrupted as exc:
        print("interrupted %s" % exc, flush=True)
        return 143
    except QuiesceFailed as exc:
        print("error %s" % exc, flush=True)
        return 1
    print("result %s" % json.dumps(record.to_dict()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
