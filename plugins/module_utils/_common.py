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


def run(args, data=None, cwd=None, env=None, check=True):
    """Run ``args`` (a list, never a shell string) and return ``(rc, stdout, stderr)`` as bytes.

    With ``check`` a non-zero exit raises InfraError quoting the command and its stderr.
    """
    proc = subprocess.run(
        args,
        input=data,
        cwd=cwd,
        env=c_locale_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        check=False,
    )
    if check and proc.returncode != 0:
        raise InfraError(
            "command failed (exit %d): %s: %s"
            % (proc.returncode, " ".join(args), proc.stderr.decode("utf-8", "replace").strip())
        )
    return proc.returncode, proc.stdout, proc.stderr


def write_file_atomic(path, data, mode=0o644):
    """Replace ``path`` with ``data`` (bytes) through a temporary file and ``rename(2)``: readers
    see the old or the new content, never a mix, and a hard link to the old file keeps it."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
