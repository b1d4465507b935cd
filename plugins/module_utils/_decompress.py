# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a (compressed) tar archive as a stream of plain tar bytes, whatever compressed it.

Gentoo's stages are ``.tar.xz``; a stage4 an admin made by the handbook's procedure is often
``.tbz2`` (bzip2), and other tools write gzip, zstd or leave the tar uncompressed. The format
is told by the file's first bytes, never by its name (a ``.tbz2`` that is really gzip unpacks
all the same, and a file that is none of them is refused before anything is written). Each
compressed format is decompressed by its own program (``xz -dc`` and friends) into a pipe,
which keeps the decompression in a separate process, on another core, while Python reads.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import subprocess
import tempfile

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import (
    InfraError,
    c_locale_env,
    find_program,
    run,
)

ACCEPTED = "xz, bzip2, gzip, zstd or uncompressed tar"
# Enough for the ustar magic at offset 257 of the first header.
HEAD_SIZE = 512

_MAGIC = (
    ("xz", b"\xfd7zXZ\x00"),
    ("bzip2", b"BZh"),
    ("gzip", b"\x1f\x8b"),
    ("zstd", b"\x28\xb5\x2f\xfd"),
)


class DecompressError(InfraError):
    """The archive is in no format accepted here, or its decompressor failed."""


def format_of_head(head):
    """``'xz'``, ``'bzip2'``, ``'gzip'``, ``'zstd'`` or ``'tar'`` for the first bytes of a file, or None."""
    for name, magic in _MAGIC:
        if head.startswith(magic):
            # bzip2 follows its magic with the block size digit; "BZh" alone is too weak.
            if name == "bzip2" and head[3:4] not in [str(d).encode() for d in range(1, 10)]:
                continue
            return name
    # POSIX ustar ("ustar\0") and GNU tar ("ustar  \0") both put their magic there.
    if head[257:262] == b"ustar":
        return "tar"
    return None


def format_of_file(path, label):
    """The format of the archive at ``path`` (see :func:`format_of_head`); DecompressError
    naming the file and the accepted formats for anything else."""
    with open(path, "rb") as handle:
        head = handle.read(HEAD_SIZE)
    found = format_of_head(head)
    if found is None:
        raise DecompressError(
            "%s (%s) is not a tar archive in a format stages use: it starts with bytes %s; "
            "accepted are %s, told by the content, not the file name"
            % (label, path, head[:8].hex() or "(the file is empty)", ACCEPTED))
    return found


_XZ_VERSION_RE = re.compile(br"xz \(XZ Utils\) (\d+)\.(\d+)")


def _xz_command(xz):
    # xz decompresses multi-block files on several threads only since 5.4 (older ones
    # decompress on one): the 21-block, 58 MiB test stage took 3.0 s with -dc and 1.75 s with
    # -T0 -dc on 2 cores (xz 5.4.1); a single-block file gains nothing and loses nothing.
    _rc, out, _err = run([xz, "--version"], check=False)
    found = _XZ_VERSION_RE.search(out)
    threaded = found is not None and (int(found.group(1)), int(found.group(2))) >= (5, 4)
    return [xz, "-T0", "-dc"] if threaded else [xz, "-dc"]


def decompress_command(fmt):
    """The argv that writes the plain tar of format ``fmt`` read on stdin to stdout; None for
    ``'tar'``, which needs no program."""
    if fmt == "tar":
        return None
    if fmt == "xz":
        return _xz_command(find_program("xz"))
    if fmt == "zstd":
        return [find_program("zstd"), "-q", "-dc"]
    if fmt in ("bzip2", "gzip"):
        return [find_program(fmt), "-dc"]
    raise DecompressError("unknown archive format %r; accepted are %s" % (fmt, ACCEPTED))


class TarStream(object):
    """The plain tar bytes of the archive at ``path`` (format ``fmt``), read with :meth:`read`.

    The file is opened once and handed to the decompressor as its stdin, so the program
    reads the very file that was checked. Call :meth:`close` in all cases; it raises
    DecompressError when the decompressor failed (unless ``abandon`` says the reader gave up).
    """

    def __init__(self, path, fmt, label):
        self.fmt = fmt
        self.label = label
        command = decompress_command(fmt)
        self._file = open(path, "rb")
        self._proc = None
        self._log = None
        if command is None:
            self.read = self._file.read
            return
        # The decompressor's complaints go to a file: a pipe read only at the end could fill.
        self._log = tempfile.TemporaryFile(prefix="gbh-decompress-")
        try:
            self._proc = subprocess.Popen(command, stdin=self._file, stdout=subprocess.PIPE, stderr=self._log,
                                          env=c_locale_env(), bufsize=1 << 20)
        except OSError as exc:
            self._file.close()
            self._log.close()
            raise DecompressError("cannot start %s to read %s: %s" % (command[0], label, exc))
        self.read = self._proc.stdout.read

    def errors(self):
        """What the decompressor said on stderr so far."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace").strip()

    def close(self, abandon=False):
        try:
            if self._proc is None:
                return
            if abandon:
                self._proc.kill()
            # Read to the end: padding after the archive's end, or what a killed process left.
            while self._proc.stdout.read(1 << 16):
                pass
            self._proc.stdout.close()
            returncode = self._proc.wait()
            if returncode != 0 and not abandon:
                raise DecompressError("cannot decompress stage %s (%s): %s"
                                      % (self.label, self.fmt, self.errors() or "exit status %d" % returncode))
        finally:
            self._file.close()
            if self._log is not None:
                self._log.close()
