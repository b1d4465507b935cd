# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared plumbing for the collection's logic: the domain error and one way to run programs.

The logic in these module_utils runs inside Ansible modules and also outside Ansible (the
mirror server's timer CLI, tests, benchmarks), so it uses only the standard library here and
raises :class:`InfraError`; modules turn that into ``fail_json`` at their boundary.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import subprocess
import tempfile

# Programs live in sbin on some systems and PATH is minimal under cron/systemd.
_EXTRA_PATHS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


class InfraError(Exception):
    """An expected failure whose message says what failed, on which input, and what to do."""


def find_program(name):
    """Absolute path of program ``name`` or an InfraError naming it."""
    path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(_EXTRA_PATHS))
    if not path:
        raise InfraError("required program %r was not found in PATH; install it and retry" % name)
    return path


def c_locale_env(extra=None):
    """The current environment with a C locale, so program output parses the same everywhere."""
    env = dict(os.environ)
    env.update({"LANG": "C", "LC_ALL": "C"})
    if extra:
        env.update(extra)
    return env


def run(args, data=None, cwd=None, env=None, check=True, timeout=None):
    """Run ``args`` (a list, never a shell string) and return ``(rc, stdout, stderr)`` as bytes.

    With ``check`` a non-zero exit raises InfraError quoting the command and its stderr. After
    ``timeout`` seconds the command is killed and ``subprocess.TimeoutExpired`` raised.
    """
    proc = subprocess.run(
        args,
        input=data,
        cwd=cwd,
        env=c_locale_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        check=False,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise InfraError(
            "command failed (exit %d): %s: %s"
            % (proc.returncode, " ".join(args), proc.stderr.decode("utf-8", "replace").strip())
        )
    return proc.returncode, proc.stdout, proc.stderr


def write_file_atomic(path, data, mode=0o644, owner=None, move=None):
    """Replace ``path`` with ``data`` (bytes) through a temporary file beside it, flushed to
    disk, and ``rename(2)``: readers see the old or the new content, never a mix (even after a
    crash), and a hard link to the old file keeps it.

    The temporary file gets ``mode`` (None leaves mkstemp's 0600) and ``owner`` (``(uid, gid)``,
    None leaves the caller's). ``move(tmp, path)`` replaces ``rename``: an Ansible module passes
    ``module.atomic_move``, which gives the new file the old one's mode, owner and SELinux
    context.
    """
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        if owner is not None:
            os.chown(tmp, owner[0], owner[1])
        (move or os.rename)(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
