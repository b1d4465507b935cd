"""The lean tar reader agrees with Python's tarfile on every format Gentoo's tools may write."""
import io
import lzma
import tarfile

import pytest

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._tarstream import TarError, iter_members

LONG = "dev-python/" + "x" * 120 + "/" + "y" * 90 + ".ebuild"


def _archive(fmt, long_name=LONG):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=fmt) as tar:
        entries = [
            ("top", tarfile.DIRTYPE, None, ""),
            ("top/a.ebuild", tarfile.REGTYPE, b"EAPI=8\n", ""),
            ("top/" + long_name, tarfile.REGTYPE, b"long\n" * 300, ""),
            ("top/empty", tarfile.REGTYPE, b"", ""),
            ("top/exact", tarfile.REGTYPE, b"z" * 1024, ""),
            ("top/link", tarfile.SYMTYPE, None, "a.ebuild"),
            ("top/hard", tarfile.LNKTYPE, None, "top/a.ebuild"),
            ("top/caf\u00e9", tarfile.REGTYPE, "\u00e9t\u00e9\n".encode(), ""),
        ]
        for name, kind, data, link in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = link
            info.mode = 0o755 if name.endswith("ebuild") else 0o644
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return raw.getvalue()


def _reference(blob):
    out = []
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        for m in tar:
            data = tar.extractfile(m).read() if m.isreg() else b""
            out.append((m.name.encode(), m.type, m.mode, m.linkname.encode(), data))
    return out


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_members_match_tarfile(fmt):
    # ustar holds long paths only through its prefix field (last component at most 100 bytes).
    long_name = "dev-python/" + "x" * 120 + "/short.ebuild" if fmt == tarfile.USTAR_FORMAT else LONG
    blob = _archive(fmt, long_name)
    # Names come raw: directories keep the trailing slash tarfile strips.
    ours = [(name.rstrip(b"/"), *rest) for name, *rest in iter_members(io.BytesIO(blob).read)]
    assert ours == [tuple(m) for m in _reference(blob)]


def test_truncated_stream_is_an_error():
    blob = _archive(tarfile.GNU_FORMAT)
    for cut in (100, 512 + 10, len(blob) // 2):
        with pytest.raises(TarError):
            list(iter_members(io.BytesIO(blob[:cut]).read))


def test_not_a_tar_is_an_error():
    with pytest.raises(TarError, match="not a tar archive"):
        list(iter_members(io.BytesIO(lzma.compress(b"hello") * 200).read))
