# -*- coding: utf-8 -*-
# Bench only (not part of the collection): how long Ansible took for each task of each host,
# from the worker starting it (payload build, transfer, module run) to its result arriving;
# the `ansible` CLI start-up, inventory parsing and play setup are outside it.
# bench/agent_backup.py enables it with ANSIBLE_CALLBACK_PLUGINS and ANSIBLE_CALLBACKS_ENABLED
# and reads one JSON line per task from the file named by BENCH_TASK_TIMING_FILE.
from __future__ import annotations

DOCUMENTATION = r"""
---
name: bench_task_timing
type: aggregate
short_description: Seconds of each task per host, written as JSON lines for the benchmarks
description:
  - Writes one JSON line per finished task and host to the file named by BENCH_TASK_TIMING_FILE.
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_task_timing"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.started = {}

    def v2_runner_on_start(self, host, task):
        self.started[(host.get_name(), task._uuid)] = time.monotonic()

    def _finished(self, result, status):
        ended = time.monotonic()
        began = self.started.pop((result._host.get_name(), result._task._uuid), ended)
        with open(os.environ["BENCH_TASK_TIMING_FILE"], "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"host": result._host.get_name(), "action": result._task.action,
                                     "status": status, "seconds": round(ended - began, 4)}) + "\n")

    def v2_runner_on_ok(self, result):
        self._finished(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._finished(result, "failed")

    def v2_runner_on_unreachable(self, result):
        self._finished(result, "unreachable")
