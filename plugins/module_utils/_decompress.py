# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a (compressed) tar archive as a stream of plain tar bytes, whatever compressed it.

Gentoo's stages are ``.tar.xz``; a stage4 an admin made by the handbook's procedure is often
``.tbz2`` (bzip2), and other tools write gzip, zstd or leave the tar uncompressed. The format
is told by the file's first bytes, never by its name (a ``.tbz2`` that is really gzip unpacks
all the same, and a file that is none of them is refused before anything is written). Each
compressed format is decompressed by its own program (``xz -dc`` and friends) into a pipe of
1 MiB, which keeps the decompression in a separate process, on another core, while Python
reads; xz decompresses a file of several blocks on several threads. Without an ``xz``
program, Python's ``lzma`` reads xz in-process. Stages and snapshots both read through here.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fcntl
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
_F_SETPIPE_SZ = 1031  # from <linux/fcntl.h>; not exported by Python's fcntl before 3.10
PIPE_SIZE = 1 << 20
_THREADED = {}


def widen_pipe(stream):
    """Give a pipe 1 MiB of buffer (Linux; 64 KiB by default).

    With the default, xz and the tar reader take turns instead of running on both cores at
    once: measured on a 150,000-file snapshot, 1.6 s with 64 KiB against 1.07 s with 1 MiB,
    which is xz's own speed.
    """
    try:
        fcntl.fcntl(stream.fileno(), _F_SETPIPE_SZ, PIPE_SIZE)
    except (OSError, ValueError):
        pass  # not Linux, or pipe-max-size is lower: correct, only slower


def _xz_threads(xz):
    """Whether this xz decompresses on several threads (5.4 and later; older ones use one)."""
    if xz not in _THREADED:
        _rc, out, _err = run([xz, "--version"], check=False)
        found = _XZ_VERSION_RE.search(out)
        _THREADED[xz] = found is not None and (int(found.group(1)), int(found.group(2))) >= (5, 4)
    return _THREADED[xz]


def xz_blocks(path):
    """The number of blocks in the last stream of the xz file at ``path``, from its index
    (two small reads at the end of the file); None when that cannot be read."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            end = handle.tell()
            while end >= 12:  # stream padding: zero bytes in fours after the stream
                handle.seek(end - 4)
                if handle.read(4) != b"\0\0\0\0":
                    break
                end -= 4
            handle.seek(end - 12)
            footer = handle.read(12)
            if len(footer) != 12 or footer[10:12] != b"YZ":
                return None
            index_size = (int.from_bytes(footer[4:8], "little") + 1) * 4
            handle.seek(end - 12 - index_size)
            index = handle.read(min(index_size, 16))
    except (OSError, ValueError):
        return None
    if not index or index[0] != 0:
        return None
    count = shift = 0
    for byte in bytearray(index[1:10]):  # a multibyte integer: 7 bits a byte, low first
        count |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return count
    return None


def decompress_command(fmt, path=None):
    """The argv that writes the plain tar of format ``fmt`` read on stdin to stdout; None for
    ``'tar'``, which needs no program, and for xz without an ``xz`` program (read by lzma).
    ``path`` is the file, for xz to be run threaded when it has several blocks."""
    if fmt == "tar":
        return None
    if fmt == "xz":
        try:
            xz = find_program("xz")
        except InfraError:
            return None
        # The 21-block, 58 MiB test stage took 3.0 s with -dc and 1.75 s with -T0 -dc on 2 cores
        # (xz 5.4.1). A file of one block (a single-threaded xz wrote it, as for snapshots) is
        # decompressed on one thread either way; -T0 measured no faster and twice a little slower.
        blocks = xz_blocks(path) if path is not None else None
        return [xz, "-T0", "-dc"] if _xz_threads(xz) and blocks != 1 else [xz, "-dc"]
    if fmt == "zstd":
        return [find_program("zstd"), "-q", "-dc"]
    if fmt in ("bzip2", "gzip"):
        return [find_program(fmt), "-dc"]
    raise DecompressError("unknown archive format %r; accepted are %s" % (fmt, ACCEPTED))


class TarStream(object):
    """The plain tar bytes of the archive at ``path`` (format ``fmt``), read with :meth:`read`.

    The file is opened once and handed to the decompressor as its stdin, so the program
    reads the very file that was checked. ``what`` and ``label`` name the archive in
    messages (``cannot decompress stage stage3-….tar.xz (xz): …``). Call :meth:`close` in all
    cases; it raises DecompressError when the decompressor failed (unless ``abandon`` says the
    reader gave up); a read of a corrupt xz file by lzma raises it at once.
    """

    def __init__(self, path, fmt, label, what="stage"):
        self.fmt = fmt
        self.label = label
        self.what = what
        self._file = open(path, "rb")
        self._proc = None
        self._log = None
        self._lzma = None
        self._lzma_error = None
        try:
            command = decompress_command(fmt, path)
        except Exception:
            self._file.close()
            raise
        if command is None:
            self.read = self._file.read if fmt == "tar" else self._lzma_reader()
            return
        # The decompressor's complaints go to a file: a pipe read only at the end could fill.
        self._log = tempfile.TemporaryFile(prefix="gbh-decompress-")
        try:
            self._proc = subprocess.Popen(command, stdin=self._file, stdout=subprocess.PIPE, stderr=self._log,
                                          env=c_locale_env(), bufsize=PIPE_SIZE)
        except OSError as exc:
            self._file.close()
            self._log.close()
            raise DecompressError("cannot start %s to read %s: %s" % (command[0], label, exc))
        widen_pipe(self._proc.stdout)
        self.read = self._proc.stdout.read

    def _lzma_reader(self):
        import lzma

        handle = self._lzma = lzma.open(self._file, "rb")

        def read(size=-1):
            try:
                return handle.read(size)
            except (lzma.LZMAError, EOFError) as exc:
                self._lzma_error = str(exc) or exc.__class__.__name__
                raise self._failed(self._lzma_error)

        return read

    def _failed(self, reason):
        return DecompressError("cannot decompress %s %s (%s): %s" % (self.what, self.label, self.fmt, reason))

    def errors(self):
        """What the decompressor said on stderr so far."""
        if self._lzma_error is not None:
            return self._lzma_error
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
                raise self._failed(self.errors() or "exit status %d" % returncode)
        finally:
            if self._lzma is not None:
                self._lzma.close()  # leaves the file it reads open: closed next
            self._file.close()
            if self._log is not None:
                self._log.close()
