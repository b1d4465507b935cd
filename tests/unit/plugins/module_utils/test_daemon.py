"""pidfile_daemon logic against a real self-daemonizing server: Debian's nginx on 127.0.0.1.

Every process a test starts is stopped by its PID in the fixtures' teardown
(tests/fixtures/nginx_daemon.py). The module through the ansible CLI is tested in
tests/integration/test_pidfile_daemon.py.
"""
import socket
import time

import pytest
from mirrorprocs import executable_of, free_port, port_answers

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._daemon import (
    DaemonError,
    ensure,
    is_server,
    probe_host,
    read_pid,
    status,
)

# The fixtures server, nginx_servers and sleeper.
pytest_plugins = ("nginx_daemon",)


def apply(srv, check_mode=False, **extra):
    """``ensure`` for one server; remembers the PIDs it reports for the teardown."""
    result = ensure(srv.params(**extra), check_mode=check_mode)
    srv.remember(result.get("pid"))
    return result


def apply_all(servers, check_mode=False, state="started", extra=None):
    """``ensure`` for several servers as one ``servers`` list."""
    params = {"servers": [srv.server(**(extra or {}).get(srv.name, {})) for srv in servers],
              "state": state, "timeout": 10}
    result = ensure(params, check_mode=check_mode)
    for srv, one in zip(servers, result["servers"]):
        srv.remember(one["pid"])
    return result


def test_start_then_unchanged_then_restart_on_a_new_fingerprint(server):
    check = apply(server, check_mode=True)
    assert check == {"changed": True, "name": "test nginx", "pid": None, "action": "started"}
    assert not server.pid_file.exists()
    started = apply(server)
    assert started["changed"] and started["action"] == "started"
    pid = started["pid"]
    assert pid == read_pid(str(server.pid_file)) and is_server(pid, "nginx")
    assert (server.root / "nginx.pid.stamp").read_text() == "fp-1\n"
    assert "200 OK" in server.get() and "one" in server.get()
    again = apply(server)
    assert again == {"changed": False, "name": "test nginx", "pid": pid, "action": "none"}
    assert not apply(server, check_mode=True)["changed"]
    assert status(server.params()) == {"pid": pid, "alive": True, "answering": True, "fingerprint": "fp-1",
                                       "stale": False}

    server.write("two")
    check = apply(server, check_mode=True, fingerprint="fp-2")
    assert check["changed"] and check["action"] == "restarted"
    assert is_server(pid, "nginx") and "one" in server.get()  # check mode: still the old one
    restarted = apply(server, fingerprint="fp-2")
    assert restarted["changed"] and restarted["action"] == "restarted"
    assert restarted["pid"] != pid and executable_of(pid) is None
    assert "two" in server.get()
    assert (server.root / "nginx.pid.stamp").read_text() == "fp-2\n"
    assert not apply(server, fingerprint="fp-2")["changed"]


def test_stale_pid_file_of_another_program_is_never_signalled(server, sleeper):
    stranger = sleeper()
    server.pid_file.write_text("%d\n" % stranger.pid)
    (server.root / "nginx.pid.stamp").write_text("fp-1\n")
    assert status(server.params())["alive"] is False and status(server.params())["stale"] is True
    # Stopping removes the stale pid file and stamp (check mode only says so), never the stranger.
    check = apply(server, check_mode=True, state="stopped")
    assert check == {"changed": True, "name": "test nginx", "pid": None, "action": "cleaned"}
    assert server.pid_file.exists() and server.stamp.exists()
    stopped = apply(server, state="stopped")
    assert stopped == {"changed": True, "name": "test nginx", "pid": None, "action": "cleaned"}
    assert not server.pid_file.exists() and not server.stamp.exists()
    assert stranger.poll() is None
    assert apply(server, state="stopped")["changed"] is False

    # A stale pid file at start: the stranger is left alone and the new server writes its own.
    server.pid_file.write_text("%d\n" % stranger.pid)
    started = apply(server)
    assert started["changed"] and started["action"] == "started"
    assert started["pid"] != stranger.pid and is_server(started["pid"], "nginx")
    assert read_pid(str(server.pid_file)) == started["pid"]
    assert stranger.poll() is None and executable_of(stranger.pid) == "sleep"
    apply(server, state="stopped")
    assert stranger.poll() is None


def test_a_port_held_by_another_listener_is_a_clear_error(server):
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", server.port))
        holder.listen(1)
        with pytest.raises(DaemonError) as info:
            apply(server)
    assert str(info.value) == ("127.0.0.1:%d already answers, but not the test nginx of %s: another process "
                               "holds the port; stop it or choose another port" % (server.port, server.pid_file))
    assert not server.pid_file.exists() and not (server.root / "nginx.pid.stamp").exists()


def test_a_server_that_cannot_start_reports_its_error(server):
    server.conf.write_text("this is not nginx configuration;\n")
    with pytest.raises(DaemonError) as info:
        apply(server)
    assert str(info.value).startswith("starting test nginx failed (exit 1): ")
    assert "unknown directive" in str(info.value)
    assert not server.pid_file.exists()


def test_stopped_stops_exactly_the_server(server, sleeper):
    bystander = sleeper()
    pid = apply(server)["pid"]
    check = apply(server, check_mode=True, state="stopped")
    assert check == {"changed": True, "name": "test nginx", "pid": None, "action": "stopped"}
    assert is_server(pid, "nginx") and "200 OK" in server.get()
    stopped = apply(server, state="stopped")
    assert stopped == {"changed": True, "name": "test nginx", "pid": None, "action": "stopped"}
    assert executable_of(pid) is None
    assert not server.pid_file.exists() and not (server.root / "nginx.pid.stamp").exists()
    with pytest.raises(OSError):
        server.get()
    assert bystander.poll() is None
    assert apply(server, state="stopped")["changed"] is False
    assert apply(server, check_mode=True, state="stopped")["changed"] is False


def test_a_server_that_does_not_answer_in_time_is_stopped_again(server):
    wrong = free_port()
    server.write("one")
    server.conf.write_text(server.conf.read_text().replace("listen 127.0.0.1:%d;" % server.port,
                                                           "listen 127.0.0.1:%d;" % wrong))
    with pytest.raises(DaemonError) as info:
        apply(server, timeout=2)
    assert str(info.value) == "test nginx did not come up (pid file %s, 127.0.0.1:%d) within 2 s" % (
        server.pid_file, server.port)
    pid = read_pid(str(server.pid_file))
    if pid:
        server.remember(pid)
    deadline = time.time() + 10
    while time.time() < deadline and pid and is_server(pid, "nginx"):
        time.sleep(0.05)
    assert not (pid and is_server(pid, "nginx"))
    assert not (server.root / "nginx.pid.stamp").exists()


def test_servers_start_together_and_only_a_changed_one_restarts(nginx_servers):
    first, second = nginx_servers("first nginx"), nginx_servers("second nginx")
    check = apply_all([first, second], check_mode=True)
    assert check == {"changed": True, "servers": [
        {"name": "first nginx", "pid": None, "action": "started", "changed": True},
        {"name": "second nginx", "pid": None, "action": "started", "changed": True}]}
    assert not first.pid_file.exists() and not second.pid_file.exists()
    started = apply_all([first, second])
    assert [one["action"] for one in started["servers"]] == ["started", "started"] and started["changed"]
    pids = [one["pid"] for one in started["servers"]]
    assert all(is_server(pid, "nginx") for pid in pids) and "200 OK" in first.get() and "200 OK" in second.get()
    for check_mode in (False, True):
        again = apply_all([first, second], check_mode=check_mode)
        assert again == {"changed": False, "servers": [
            {"name": "first nginx", "pid": pids[0], "action": "none", "changed": False},
            {"name": "second nginx", "pid": pids[1], "action": "none", "changed": False}]}

    second.write("two")
    restarted = apply_all([first, second], extra={"second nginx": {"fingerprint": "fp-2"}})
    assert [one["action"] for one in restarted["servers"]] == ["none", "restarted"]
    assert restarted["servers"][0]["pid"] == pids[0] and executable_of(pids[1]) is None
    assert "two" in second.get() and "one" in first.get()

    stopped = apply_all([first, second], state="stopped")
    assert [one["action"] for one in stopped["servers"]] == ["stopped", "stopped"] and stopped["changed"]
    assert not first.running() and not second.running() and not first.pid_file.exists()


def test_a_port_held_for_one_server_starts_none_of_them(nginx_servers):
    first, second = nginx_servers("first nginx"), nginx_servers("second nginx")
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", second.port))
        holder.listen(1)
        for check_mode in (True, False):
            with pytest.raises(DaemonError) as info:
                apply_all([first, second], check_mode=check_mode)
            assert str(info.value) == (
                "127.0.0.1:%d already answers, but not the second nginx of %s: another process holds the "
                "port; stop it or choose another port" % (second.port, second.pid_file))
            assert not first.pid_file.exists() and not first.stamp.exists() and not first.running()


def test_a_failed_start_stops_again_what_this_run_started(nginx_servers):
    first, second = nginx_servers("first nginx"), nginx_servers("second nginx")
    second.conf.write_text("this is not nginx configuration;\n")
    broken = {"second nginx": {"log_file": str(second.log)}}
    with pytest.raises(DaemonError) as info:
        apply_all([first, second], extra=broken)
    message = str(info.value)
    assert message.startswith("starting second nginx failed (exit 1): ")
    assert "; its log %s ends with: " % second.log in message and "unknown directive" in message
    assert message.endswith(". Stopped again what this run had started: first nginx")
    assert not first.running() and not first.pid_file.exists() and not first.stamp.exists()
    assert not port_answers(first.port)

    # A server that already ran before this call is not this call's to stop.
    pid = apply(first)["pid"]
    with pytest.raises(DaemonError) as info:
        apply_all([first, second], extra=broken)
    assert "Stopped again" not in str(info.value)
    assert is_server(pid, "nginx") and "200 OK" in first.get()


def test_env_reaches_the_start_command(server):
    seen = server.root / "greeting"
    # sh records the variable, then becomes nginx, which daemonizes as before.
    argv = ["sh", "-c", 'printf %s "$GREETING" > "$0" && exec "$@"', str(seen)] + server.params()["argv"]
    started = apply(server, argv=argv, env={"GREETING": "hello"})
    assert started["action"] == "started" and is_server(started["pid"], "nginx")
    assert seen.read_text() == "hello"


def test_a_start_command_that_does_not_return_is_an_error(server):
    with pytest.raises(DaemonError) as info:
        apply(server, argv=["sleep", "30"], timeout=1)
    assert str(info.value) == ("starting test nginx: sleep did not return within 1 s; a server started here must "
                               "daemonize itself (for example nginx's 'daemon on', git daemon --detach)")
    assert not server.pid_file.exists() and not server.stamp.exists()


@pytest.mark.parametrize("change, message", [
    ({"timeout": 0}, "timeout is 0; it must be at least 1 (seconds)"),
    ({"port": 70000}, "test nginx: port 70000 is not a TCP port (1-65535, or 0 for no probe)"),
    ({"argv": None}, "test nginx: argv, the command that starts it, is required with state=started"),
])
def test_refused_parameters_change_nothing(server, change, message):
    with pytest.raises(DaemonError) as info:
        apply(server, **change)
    assert str(info.value) == message
    assert sorted(p.name for p in server.root.iterdir()) == ["nginx.conf", "tmp", "www"]


def test_two_servers_with_one_pid_file_are_refused(nginx_servers):
    first, second = nginx_servers("first nginx"), nginx_servers("second nginx")
    second.pid_file = first.pid_file
    with pytest.raises(DaemonError) as info:
        apply_all([first, second])
    assert str(info.value) == ("servers: pid file %s is named more than once; each server needs its own"
                               % first.pid_file)
    assert not first.pid_file.exists() and not first.running()


def test_servers_on_every_address_are_probed_on_loopback():
    assert [probe_host(host) for host in ("0.0.0.0", "::", "", None, "192.0.2.1")] == [
        "127.0.0.1", "::1", "127.0.0.1", "127.0.0.1", "192.0.2.1"]
