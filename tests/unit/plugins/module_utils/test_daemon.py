"""pidfile_daemon logic against a real self-daemonizing server: Debian's nginx on 127.0.0.1.

Every process a test starts is stopped by its PID in the fixture's teardown.
"""
import os
import signal
import socket
import subprocess
import time

import pytest
from ansible_run import run_module

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._daemon import (
    DaemonError,
    ensure,
    is_server,
    read_pid,
    status,
)

NGINX = "/usr/sbin/nginx"
CONF = """daemon on;
master_process on;
worker_processes 1;
user root;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 32; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {d}/www;
        location / {{ return 200 "{body}\\n"; }}
    }}
}}
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open("/proc/%d/stat" % pid) as handle:
        return handle.read().rsplit(")", 1)[1].split()[0] != "Z"


def _terminate(pid):
    """Stop ``pid`` if it still runs nginx (by its id, never by name)."""
    if not is_server(pid, "nginx"):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + 10
    while time.time() < deadline and is_server(pid, "nginx"):
        time.sleep(0.05)
    if is_server(pid, "nginx"):
        os.kill(pid, signal.SIGKILL)


class Server:
    """One nginx configuration in a tmp dir, and the ``ensure`` parameters for it."""

    def __init__(self, root):
        self.root = root
        self.port = free_port()
        (root / "tmp").mkdir()
        (root / "www").mkdir()
        self.conf = root / "nginx.conf"
        self.pid_file = root / "nginx.pid"
        self.seen = set()
        self.write("one")

    def write(self, body):
        self.conf.write_text(CONF.format(d=self.root, port=self.port, body=body))

    def params(self, **extra):
        out = {"name": "test nginx", "argv": [NGINX, "-e", str(self.root / "error.log"), "-c", str(self.conf)],
               "pid_file": str(self.pid_file), "executable": "nginx", "host": "127.0.0.1", "port": self.port,
               "fingerprint": "fp-1", "state": "started", "timeout": 10}
        out.update(extra)
        return out

    def ensure(self, check_mode=False, **extra):
        result = ensure(self.params(**extra), check_mode=check_mode)
        if result.get("pid"):
            self.seen.add(result["pid"])
        return result

    def get(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            data = b""
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    return data.decode()
                data += chunk

    def stop_all(self):
        pids = set(self.seen)
        pid = read_pid(str(self.pid_file))
        if pid:
            pids.add(pid)
        for pid in pids:
            _terminate(pid)


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path)
    try:
        yield srv
    finally:
        srv.stop_all()


@pytest.fixture
def sleeper():
    procs = []

    def start():
        proc = subprocess.Popen(["sleep", "300"])
        procs.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
            proc.wait()


def test_start_then_unchanged_then_restart_on_a_new_fingerprint(server):
    check = server.ensure(check_mode=True)
    assert check == {"changed": True, "name": "test nginx", "pid": None, "action": "started"}
    assert not server.pid_file.exists()
    started = server.ensure()
    assert started["changed"] and started["action"] == "started"
    pid = started["pid"]
    assert pid == read_pid(str(server.pid_file)) and is_server(pid, "nginx")
    assert (server.root / "nginx.pid.stamp").read_text() == "fp-1\n"
    assert "200 OK" in server.get() and "one" in server.get()
    again = server.ensure()
    assert again == {"changed": False, "name": "test nginx", "pid": pid, "action": "none"}
    assert not server.ensure(check_mode=True)["changed"]
    assert status(server.params()) == {"pid": pid, "alive": True, "answering": True, "fingerprint": "fp-1"}

    server.write("two")
    check = server.ensure(check_mode=True, fingerprint="fp-2")
    assert check["changed"] and check["action"] == "restarted"
    assert is_server(pid, "nginx") and "one" in server.get()  # check mode: still the old one
    restarted = server.ensure(fingerprint="fp-2")
    assert restarted["changed"] and restarted["action"] == "restarted"
    assert restarted["pid"] != pid and not _alive(pid)
    assert "two" in server.get()
    assert (server.root / "nginx.pid.stamp").read_text() == "fp-2\n"
    assert not server.ensure(fingerprint="fp-2")["changed"]


def test_stale_pid_file_of_another_program_is_never_signalled(server, sleeper):
    stranger = sleeper()
    server.pid_file.write_text("%d\n" % stranger.pid)
    (server.root / "nginx.pid.stamp").write_text("fp-1\n")
    assert status(server.params())["alive"] is False
    stopped = server.ensure(state="stopped")
    assert stopped == {"changed": False, "name": "test nginx", "pid": None, "action": "none"}
    started = server.ensure()
    assert started["changed"] and started["action"] == "started"
    assert started["pid"] != stranger.pid and is_server(started["pid"], "nginx")
    assert read_pid(str(server.pid_file)) == started["pid"]
    assert stranger.poll() is None and _alive(stranger.pid)
    server.ensure(state="stopped")
    assert stranger.poll() is None


def test_a_port_held_by_another_listener_is_a_clear_error(server):
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", server.port))
        holder.listen(1)
        with pytest.raises(DaemonError) as info:
            server.ensure()
    assert str(info.value) == ("127.0.0.1:%d already answers, but not the test nginx of %s: another process "
                               "holds the port" % (server.port, server.pid_file))
    assert not server.pid_file.exists() and not (server.root / "nginx.pid.stamp").exists()


def test_a_server_that_cannot_start_reports_its_error(server):
    server.conf.write_text("this is not nginx configuration;\n")
    with pytest.raises(DaemonError) as info:
        server.ensure()
    assert str(info.value).startswith("starting test nginx failed (exit 1): ")
    assert "unknown directive" in str(info.value)
    assert not server.pid_file.exists()


def test_stopped_stops_exactly_the_server(server, sleeper):
    bystander = sleeper()
    pid = server.ensure()["pid"]
    check = server.ensure(check_mode=True, state="stopped")
    assert check == {"changed": True, "name": "test nginx", "pid": None, "action": "stopped"}
    assert is_server(pid, "nginx") and "200 OK" in server.get()
    stopped = server.ensure(state="stopped")
    assert stopped == {"changed": True, "name": "test nginx", "pid": None, "action": "stopped"}
    assert not _alive(pid)
    assert not server.pid_file.exists() and not (server.root / "nginx.pid.stamp").exists()
    with pytest.raises(OSError):
        server.get()
    assert bystander.poll() is None
    assert server.ensure(state="stopped")["changed"] is False
    assert server.ensure(check_mode=True, state="stopped")["changed"] is False


def test_the_module_check_apply_apply_check(server):
    """STYLE 13 through the real ansible CLI."""
    args = server.params()
    try:
        check = run_module("gentoo_binhost.infra.pidfile_daemon", args, check=True)
        assert check["changed"] and check["action"] == "started" and not server.pid_file.exists()
        apply = run_module("gentoo_binhost.infra.pidfile_daemon", args)
        assert apply["changed"] and apply["action"] == "started", apply
        server.seen.add(apply["pid"])
        again = run_module("gentoo_binhost.infra.pidfile_daemon", args)
        assert not again["changed"] and again["pid"] == apply["pid"]
        recheck = run_module("gentoo_binhost.infra.pidfile_daemon", args, check=True)
        assert not recheck["changed"] and recheck["pid"] == apply["pid"]
        # the module started a daemon that outlived ansible's process tree
        assert is_server(apply["pid"], "nginx") and "200 OK" in server.get()
    finally:
        stop = run_module("gentoo_binhost.infra.pidfile_daemon", dict(args, state="stopped"))
    assert stop["action"] in ("stopped", "none") and not server.pid_file.exists()


def test_a_server_that_does_not_answer_in_time_is_stopped_again(server):
    wrong = free_port()
    server.write("one")
    server.conf.write_text(server.conf.read_text().replace("listen 127.0.0.1:%d;" % server.port,
                                                           "listen 127.0.0.1:%d;" % wrong))
    with pytest.raises(DaemonError) as info:
        server.ensure(timeout=2)
    assert str(info.value) == "test nginx did not come up (pid file %s, 127.0.0.1:%d) within 2 s" % (
        server.pid_file, server.port)
    pid = read_pid(str(server.pid_file))
    if pid:
        server.seen.add(pid)
    deadline = time.time() + 10
    while time.time() < deadline and pid and is_server(pid, "nginx"):
        time.sleep(0.05)
    assert not (pid and is_server(pid, "nginx"))
    assert not (server.root / "nginx.pid.stamp").exists()
