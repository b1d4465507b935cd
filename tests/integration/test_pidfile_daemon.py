"""The pidfile_daemon module through the real ansible CLI, against Debian's nginx on 127.0.0.1.

The logic itself is tested directly in tests/unit/plugins/module_utils/test_daemon.py; here it
is the module boundary: the argument spec, check mode, and daemons that outlive ansible's
process tree. Every nginx a test starts is stopped by its PID (tests/fixtures/nginx_daemon.py).
"""
import pytest
from ansible_run import run_module

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._daemon import is_server

# The fixtures server, nginx_servers and sleeper.
pytest_plugins = ("nginx_daemon",)

MODULE = "gentoo_binhost.infra.pidfile_daemon"


@pytest.mark.ansible_cli
def test_the_module_check_apply_apply_check(server):
    """Check, apply, apply again, check again: the last two change nothing."""
    args = server.params()
    try:
        check = run_module(MODULE, args, check=True)
        assert check["changed"] and check["action"] == "started" and not server.pid_file.exists()
        apply = run_module(MODULE, args)
        assert apply["changed"] and apply["action"] == "started", apply
        server.remember(apply["pid"])
        again = run_module(MODULE, args)
        assert not again["changed"] and again["pid"] == apply["pid"]
        recheck = run_module(MODULE, args, check=True)
        assert not recheck["changed"] and recheck["pid"] == apply["pid"]
        # the module started a daemon that outlived ansible's process tree
        assert is_server(apply["pid"], "nginx") and "200 OK" in server.get()
    finally:
        stop = run_module(MODULE, dict(args, state="stopped"))
    assert stop["action"] in ("stopped", "none") and not server.pid_file.exists()


@pytest.mark.ansible_cli
def test_servers_check_apply_apply_check_and_stop(nginx_servers):
    first, second = nginx_servers("first nginx"), nginx_servers("second nginx")
    args = {"servers": [first.server(log_file=str(first.log)), second.server()]}
    try:
        check = run_module(MODULE, args, check=True)
        assert check["changed"] and [one["action"] for one in check["servers"]] == ["started", "started"], check
        assert not first.pid_file.exists() and not second.pid_file.exists()
        apply = run_module(MODULE, args)
        assert apply["changed"] and [one["action"] for one in apply["servers"]] == ["started", "started"], apply
        for srv, one in zip((first, second), apply["servers"]):
            srv.remember(one["pid"])
            assert is_server(one["pid"], "nginx") and "200 OK" in srv.get()
        for check_mode in (False, True):
            again = run_module(MODULE, args, check=check_mode)
            assert not again["changed"] and again["servers"] == [dict(one, action="none", changed=False)
                                                                 for one in apply["servers"]], again
    finally:
        stop = run_module(MODULE, dict(args, state="stopped"))
    assert stop["changed"] and [one["action"] for one in stop["servers"]] == ["stopped", "stopped"], stop
    assert not first.running() and not second.running()
    assert not first.pid_file.exists() and not second.pid_file.exists()


@pytest.mark.ansible_cli
@pytest.mark.parametrize("drop, add, message", [
    ((), {"servers": [{"name": "x", "pid_file": "/nonexistent/x.pid", "executable": "x"}]},
     "parameters are mutually exclusive: servers|name"),
    (("name", "pid_file", "executable", "argv"), {}, "one of the following is required: name, servers"),
    (("pid_file",), {}, "parameters are required together: name, pid_file, executable"),
    (("argv",), {}, "state is started but any of the following are missing: argv, servers"),
])
def test_the_argument_spec_refuses_what_does_not_fit(server, drop, add, message):
    args = {key: value for key, value in server.params(**add).items() if key not in drop}
    result = run_module(MODULE, args)
    assert result["failed"] and message in result["msg"], result
    assert sorted(p.name for p in server.root.iterdir()) == ["nginx.conf", "tmp", "www"]
    assert not server.running()
