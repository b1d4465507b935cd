# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_common: finding and running programs the one way the collection's logic does it."""

from __future__ import annotations

import os

import pytest

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import (
    InfraError,
    c_locale_env,
    find_program,
    run,
)


def test_find_program_returns_an_executable_path():
    path = find_program("sh")
    assert os.path.isabs(path) and os.access(path, os.X_OK)


def test_find_program_falls_back_to_standard_dirs_when_path_is_minimal(monkeypatch):
    # Under cron or systemd PATH may be minimal; the standard directories are searched too.
    monkeypatch.setenv("PATH", "/nonexistent")
    assert find_program("sh") in ("/usr/bin/sh", "/bin/sh")


def test_missing_program_says_what_to_do():
    with pytest.raises(InfraError, match=r"required program 'no-such-program-gbh' was not found in PATH; install it"):
        find_program("no-such-program-gbh")


def test_run_passes_arguments_verbatim_without_a_shell():
    rc, out, err = run(["printf", "%s|", "$HOME", "a b", "; true"])
    assert (rc, out, err) == (0, b"$HOME|a b|; true|", b"")


def test_run_uses_the_c_locale_and_extra_variables():
    out = run(["env"], env={"GBH_PROBE": "1"})[1]
    lines = out.decode().splitlines()
    assert "LANG=C" in lines and "LC_ALL=C" in lines and "GBH_PROBE=1" in lines
    assert c_locale_env()["LC_ALL"] == "C"


def test_run_feeds_stdin_and_honours_cwd(tmp_path):
    out = run(["cat"], data=b"snapshot\n")[1]
    assert out == b"snapshot\n"
    out = run(["pwd"], cwd=str(tmp_path))[1]
    assert out.decode().strip() == str(tmp_path)


def test_failing_command_quotes_command_and_stderr():
    with pytest.raises(InfraError) as error:
        run(["sh", "-c", "echo 'fatal: not a git repository' >&2; exit 128"])
    assert str(error.value) == (
        "command failed (exit 128): sh -c echo 'fatal: not a git repository' >&2; exit 128: "
        "fatal: not a git repository"
    )
    rc, out, err = run(["sh", "-c", "echo nope >&2; exit 3"], check=False)
    assert (rc, out, err) == (3, b"", b"nope\n")
