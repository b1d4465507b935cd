# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one reader of compressed tarballs: real xz, bzip2, gzip and zstd, and lzma without xz."""

from __future__ import annotations

import fcntl
import io
import lzma
import subprocess
import tarfile

import pytest

from ansible_collections.gentoo_binhost.infra.plugins.module_utils import _decompress
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._decompress import (
    DecompressError,
    TarStream,
    decompress_command,
    format_of_file,
)

_F_GETPIPE_SZ = 1032  # from <linux/fcntl.h>


def _tar_bytes(size=3 << 20):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        payload = bytes(range(251)) * (size // 251)
        info = tarfile.TarInfo("top/payload")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return raw.getvalue()


def _read_all(stream):
    chunks = []
    while True:
        chunk = stream.read(1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


@pytest.fixture
def multi_block(tmp_path):
    """An xz file of several blocks, as a multi-threaded xz writes it."""
    data = _tar_bytes()
    path = tmp_path / "multi.tar.xz"
    with path.open("wb") as out:
        subprocess.run(["xz", "-T2", "--block-size=256KiB", "-1", "-c"], input=data, stdout=out, check=True)
    listing = subprocess.run(["xz", "--robot", "--list", str(path)], capture_output=True, text=True, check=True)
    assert int(next(line for line in listing.stdout.splitlines() if line.startswith("file")).split("\t")[2]) > 1
    return path, data


def test_xz_runs_threaded_in_a_wide_pipe_and_reads_the_tar(multi_block):
    path, data = multi_block
    assert decompress_command("xz", str(path))[1:] == ["-T0", "-dc"]  # xz 5.4 here
    stream = TarStream(str(path), format_of_file(str(path), path.name), path.name, what="snapshot")
    try:
        assert fcntl.fcntl(stream.read.__self__.fileno(), _F_GETPIPE_SZ) == _decompress.PIPE_SIZE
        assert _read_all(stream) == data
    finally:
        stream.close()


@pytest.mark.parametrize("compressor, fmt", [(["bzip2", "-c"], "bzip2"), (["gzip", "-n", "-c"], "gzip"),
                                             (["zstd", "-q", "-c"], "zstd"), (None, "tar")])
def test_every_format_reads_the_same_tar(tmp_path, compressor, fmt):
    data = _tar_bytes(1 << 20)
    path = tmp_path / "stage"
    if compressor:
        path.write_bytes(subprocess.run(compressor, input=data, capture_output=True, check=True).stdout)
    else:
        path.write_bytes(data)
    assert format_of_file(str(path), "stage") == fmt
    stream = TarStream(str(path), fmt, "stage")
    try:
        assert _read_all(stream) == data
    finally:
        stream.close()


def test_a_corrupt_xz_file_fails_naming_the_archive(multi_block):
    path, _data = multi_block
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2:len(blob) // 2 + 64] = b"\xff" * 64
    path.write_bytes(bytes(blob))
    stream = TarStream(str(path), "xz", path.name, what="snapshot")
    _read_all(stream)
    with pytest.raises(DecompressError, match=r"^cannot decompress snapshot multi\.tar\.xz \(xz\): .*xz: \(stdin\): Compressed data is corrupt$"):
        stream.close()


@pytest.fixture
def without_xz(monkeypatch):
    """A host without the xz program (it is installed here, so find_program is told it is not)."""
    real = _decompress.find_program

    def find_program(name):
        if name == "xz":
            raise InfraError("required program 'xz' was not found in PATH; install it and retry")
        return real(name)

    monkeypatch.setattr(_decompress, "find_program", find_program)


def test_without_xz_lzma_reads_the_same_tar(without_xz, multi_block):
    path, data = multi_block
    assert decompress_command("xz") is None
    stream = TarStream(str(path), "xz", path.name)
    try:
        assert _read_all(stream) == data
    finally:
        stream.close()


def test_without_xz_a_corrupt_file_fails_at_the_read(without_xz, tmp_path):
    path = tmp_path / "gentoo-latest.tar.xz"
    whole = lzma.compress(_tar_bytes(1 << 20))
    path.write_bytes(whole[:len(whole) // 2])  # truncated
    stream = TarStream(str(path), "xz", path.name, what="snapshot")
    with pytest.raises(DecompressError, match=r"^cannot decompress snapshot gentoo-latest\.tar\.xz \(xz\): "):
        _read_all(stream)
    assert stream.errors()
    stream.close()


def test_single_block_xz_runs_on_one_thread_and_blocks_are_counted(tmp_path, multi_block):
    path, _data = multi_block
    listing = subprocess.run(["xz", "--robot", "--list", str(path)], capture_output=True, text=True, check=True)
    assert _decompress.xz_blocks(str(path)) == int(listing.stdout.splitlines()[1].split("\t")[2])
    single = tmp_path / "single.tar.xz"
    single.write_bytes(lzma.compress(_tar_bytes(1 << 20)) + b"\0" * 8)  # with stream padding
    assert _decompress.xz_blocks(str(single)) == 1
    assert decompress_command("xz", str(single))[1:] == ["-dc"]
    stream = TarStream(str(single), "xz", single.name)
    try:
        assert _read_all(stream) == _tar_bytes(1 << 20)
    finally:
        stream.close()
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"not xz at all")
    assert _decompress.xz_blocks(str(garbage)) is None
