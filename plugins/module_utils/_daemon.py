# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A self-daemonizing server kept running (or stopped) by its pid file, without systemd.

The process in the pid file counts as the server only while ``/proc/<pid>/exe`` is the
expected program, so a stale pid file whose number was reused never makes us signal a
stranger. A ``<pid file>.stamp`` records the configuration fingerprint the server was started
with; another fingerprint restarts it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import signal
import socket
import time

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError, run


class DaemonError(InfraError):
    pass


def read_pid(pid_file):
    try:
        with open(pid_file) as handle:
            text = handle.read().strip()
    except (IOError, OSError):
        return None
    return int(text) if text.isdigit() else None


def is_server(pid, executable):
    """Whether process ``pid`` runs the program named ``executable`` (a base name)."""
    if pid is None:
        return False
    try:
        exe = os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return False
    return os.path.basename(exe.replace(" (deleted)", "")) == executable


def answers(host, port, timeout=1.0):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except (OSError, socket.timeout):
        return False


def _stamp(pid_file):
    try:
        with open(pid_file + ".stamp") as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return None


def status(params):
    pid = read_pid(params["pid_file"])
    alive = is_server(pid, params["executable"])
    return {
        "pid": pid if alive else None,
        "alive": alive,
        "answering": answers(params["host"], params["port"]) if params.get("port") else alive,
        "fingerprint": _stamp(params["pid_file"]) if alive else None,
    }


def _wait(predicate, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _stop(params, pid):
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise
    if not _wait(lambda: not is_server(pid, params["executable"]), params["timeout"]):
        raise DaemonError("%s (pid %d) did not exit within %d s of SIGTERM" % (params["name"], pid, params["timeout"]))
    for path in (params["pid_file"], params["pid_file"] + ".stamp"):
        if os.path.exists(path):
            os.unlink(path)


def _start(params):
    if params.get("port") and answers(params["host"], params["port"]):
        raise DaemonError("%s:%s already answers, but not the %s of %s: another process holds the port"
                          % (params["host"], params["port"], params["name"], params["pid_file"]))
    rc, out, err = run(params["argv"], check=False)
    if rc != 0:
        message = (err or out).decode("utf-8", "replace").strip()
        raise DaemonError("starting %s failed (exit %d): %s" % (params["name"], rc, message))
    up = _wait(lambda: is_server(read_pid(params["pid_file"]), params["executable"])
               and (not params.get("port") or answers(params["host"], params["port"])), params["timeout"])
    pid = read_pid(params["pid_file"])
    if not up:
        if is_server(pid, params["executable"]):
            os.kill(pid, signal.SIGTERM)  # ours, started just now: do not leave it half-working
        raise DaemonError("%s did not come up (pid file %s, %s:%s) within %d s"
                          % (params["name"], params["pid_file"], params["host"], params["port"], params["timeout"]))
    with open(params["pid_file"] + ".stamp", "w") as handle:
        handle.write((params.get("fingerprint") or "") + "\n")
    return pid


def ensure(params, check_mode=False):
    """Bring the server to ``params['state']``; returns the module result."""
    before = status(params)
    result = {"changed": False, "name": params["name"], "pid": before["pid"], "action": "none"}
    if params["state"] == "stopped":
        if before["alive"]:
            result.update(changed=True, action="stopped", pid=None)
            if not check_mode:
                _stop(params, before["pid"])
        return result
    wanted = params.get("fingerprint") or ""
    healthy = before["alive"] and before["answering"]
    if healthy and (before["fingerprint"] or "") == wanted:
        return result
    result.update(changed=True, action="restarted" if before["alive"] else "started")
    if check_mode:
        return result
    if before["alive"]:
        _stop(params, before["pid"])
    result["pid"] = _start(params)
    return result
