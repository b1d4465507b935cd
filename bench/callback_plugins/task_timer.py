"""Writes each task's duration, file and status to the JSON file named by ``GBH_TASK_TIMES``."""
from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: task_timer
type: aggregate
short_description: Record task durations for bench/build_rerun.py
description:
  - Records, for every task, its name, the file it comes from, its duration and its status,
    and writes them as JSON to the file named by the environment variable C(GBH_TASK_TIMES)
    when the playbook ends.
requirements:
  - enable in ANSIBLE_CALLBACKS_ENABLED
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.records: list[dict] = []
        self.current: dict | None = None

    def _close(self) -> None:
        if self.current is not None:
            self.current["seconds"] = round(time.monotonic() - self.current.pop("_start"), 4)
            self.records.append(self.current)
            self.current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close()
        path = task.get_path() or ""
        self.current = {"name": task.get_name(), "file": os.path.basename(path.rsplit(":", 1)[0]),
                        "action": task.action, "status": [], "_start": time.monotonic()}

    def _status(self, result, status: str) -> None:
        if self.current is not None:
            changed = bool(result._result.get("changed"))
            self.current["status"].append(status + (" changed" if changed else ""))

    def v2_runner_on_ok(self, result):
        self._status(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._status(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._status(result, "skipped")

    def v2_playbook_on_stats(self, stats):
        self._close()
        target = os.environ.get("GBH_TASK_TIMES")
        if target:
            with open(target, "w", encoding="utf-8") as out:
                json.dump(self.records, out, indent=1)
