# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Self-daemonizing servers kept running (or stopped) by their pid files, without systemd.

The process in a pid file counts as the server only while ``/proc/<pid>/exe`` is the expected
program, so a stale pid file whose number was reused never makes us signal a stranger. A
``<pid file>.stamp`` records the configuration fingerprint the server was started with; another
fingerprint restarts it.

Several servers are handled as one: every port is checked before any server is started, and
when one of them fails to come up the servers this call started are stopped again, so the next
run never takes a half-started set for a working one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import signal
import socket
import subprocess
import time

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import (
    InfraError,
    run,
    write_file_atomic,
)

# A server listening on every address is probed on the loopback address of its family.
PROBE_ADDRESSES = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
# Lines of a server's log quoted when it fails to start.
LOG_TAIL_LINES = 5


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


def probe_host(host):
    """The address to probe a server on that listens on ``host``."""
    return PROBE_ADDRESSES.get(host or "", host)


def _stamp_file(server):
    return server["pid_file"] + ".stamp"


def _stamp(server):
    try:
        with open(_stamp_file(server)) as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return None


def _port_answers(server):
    return bool(server.get("port")) and answers(probe_host(server.get("host")), server["port"])


def status(server):
    """What runs under ``server``'s pid file; ``stale`` is a pid file or stamp left by none."""
    pid = read_pid(server["pid_file"])
    alive = is_server(pid, server["executable"])
    return {
        "pid": pid if alive else None,
        "alive": alive,
        "answering": _port_answers(server) if server.get("port") else alive,
        "fingerprint": _stamp(server) if alive else None,
        "stale": not alive and any(os.path.lexists(path) for path in (server["pid_file"], _stamp_file(server))),
    }


def _wait(predicate, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _remove_files(server):
    for path in (server["pid_file"], _stamp_file(server)):
        if os.path.lexists(path):
            os.unlink(path)


def _stop(server, pid, timeout):
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise
    if not _wait(lambda: not is_server(pid, server["executable"]), timeout):
        raise DaemonError("%s (pid %d) did not exit within %d s of SIGTERM; stop it by hand and run again"
                          % (server["name"], pid, timeout))
    _remove_files(server)


def _port_conflict(server):
    return DaemonError("%s:%s already answers, but not the %s of %s: another process holds the port; "
                       "stop it or choose another port"
                       % (probe_host(server.get("host")), server["port"], server["name"], server["pid_file"]))


def _log_tail(server):
    """The end of the server's log, for a failure message ('' without a log)."""
    if not server.get("log_file"):
        return ""
    try:
        with open(server["log_file"], "rb") as handle:
            lines = handle.read().decode("utf-8", "replace").splitlines()[-LOG_TAIL_LINES:]
    except (IOError, OSError):
        return ""
    return "; its log %s ends with: %s" % (server["log_file"], " | ".join(line.strip() for line in lines))


def _start(server, timeout):
    if _port_answers(server):
        raise _port_conflict(server)
    try:
        rc, out, err = run(server["argv"], env=server.get("env") or None, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DaemonError("starting %s: %s did not return within %d s; a server started here must daemonize "
                          "itself (for example nginx's 'daemon on', git daemon --detach)"
                          % (server["name"], server["argv"][0], timeout))
    if rc != 0:
        message = (err or out).decode("utf-8", "replace").strip()
        raise DaemonError("starting %s failed (exit %d): %s%s" % (server["name"], rc, message, _log_tail(server)))
    up = _wait(lambda: is_server(read_pid(server["pid_file"]), server["executable"])
               and (not server.get("port") or _port_answers(server)), timeout)
    if not up:
        pid = read_pid(server["pid_file"])
        if is_server(pid, server["executable"]):
            _stop(server, pid, timeout)  # ours, started just now: do not leave it half-working
        else:
            _remove_files(server)
        raise DaemonError("%s did not come up (pid file %s, %s:%s) within %d s%s"
                          % (server["name"], server["pid_file"], probe_host(server.get("host")), server.get("port"),
                             timeout, _log_tail(server)))
    write_file_atomic(_stamp_file(server), ((server.get("fingerprint") or "") + "\n").encode("utf-8"))
    return read_pid(server["pid_file"])


def _wanted_action(server, before):
    """What ``started`` needs for one server: none, started or restarted."""
    healthy = before["alive"] and before["answering"]
    if healthy and (before["fingerprint"] or "") == (server.get("fingerprint") or ""):
        return "none"
    return "restarted" if before["alive"] else "started"


def _stop_servers(servers, befores, check_mode, timeout):
    results = []
    for server, before in zip(servers, befores):
        if before["alive"]:
            action = "stopped"
            if not check_mode:
                _stop(server, before["pid"], timeout)
        elif before["stale"]:
            action = "cleaned"
            if not check_mode:
                _remove_files(server)
        else:
            action = "none"
        results.append({"name": server["name"], "pid": None, "action": action, "changed": action != "none"})
    return results


def _start_servers(servers, befores, check_mode, timeout):
    actions = [_wanted_action(server, before) for server, before in zip(servers, befores)]
    # Every port first: a port held by a stranger must not leave the other servers half-started.
    for server, before, action in zip(servers, befores, actions):
        if action == "started" and before["answering"]:
            raise _port_conflict(server)
    results = [{"name": server["name"], "pid": before["pid"], "action": action, "changed": action != "none"}
               for server, before, action in zip(servers, befores, actions)]
    if check_mode:
        return results
    for server, before, result in zip(servers, befores, results):
        if result["action"] == "none":
            continue
        try:
            if before["alive"]:
                _stop(server, before["pid"], timeout)
            result["pid"] = _start(server, timeout)
        except DaemonError as exc:
            raise DaemonError(str(exc) + _roll_back(servers, results, timeout))
    return results


def _roll_back(servers, results, timeout):
    """Stop what this call started before a later server failed; says what it stopped."""
    stopped = []
    for server, result in zip(servers, results):
        pid = result["pid"] if result["action"] in ("started", "restarted") else None
        if pid and is_server(pid, server["executable"]):
            _stop(server, pid, timeout)
            stopped.append(server["name"])
    return ". Stopped again what this run had started: %s" % ", ".join(stopped) if stopped else ""


def check_params(params, servers):
    """Refuse what the argument spec cannot check, before anything is touched."""
    if params["timeout"] < 1:
        raise DaemonError("timeout is %d; it must be at least 1 (seconds)" % params["timeout"])
    for server in servers:
        if params["state"] == "started" and not server.get("argv"):
            raise DaemonError("%s: argv, the command that starts it, is required with state=started" % server["name"])
        if not 0 <= (server.get("port") or 0) <= 65535:
            raise DaemonError("%s: port %d is not a TCP port (1-65535, or 0 for no probe)"
                              % (server["name"], server["port"]))
    names = [server["pid_file"] for server in servers]
    for pid_file in set(names):
        if names.count(pid_file) > 1:
            raise DaemonError("servers: pid file %s is named more than once; each server needs its own" % pid_file)


def ensure(params, check_mode=False):
    """Bring the server (or each of ``params['servers']``) to ``params['state']``.

    Returns the module result: with ``servers`` the list of per-server results, else the one
    server's ``name``, ``pid`` and ``action``.
    """
    servers = params.get("servers") or [params]
    check_params(params, servers)
    befores = [status(server) for server in servers]
    if params["state"] == "stopped":
        results = _stop_servers(servers, befores, check_mode, params["timeout"])
    else:
        results = _start_servers(servers, befores, check_mode, params["timeout"])
    changed = any(result["changed"] for result in results)
    if params.get("servers"):
        return {"changed": changed, "servers": results}
    return {"changed": changed, "name": results[0]["name"], "pid": results[0]["pid"], "action": results[0]["action"]}
