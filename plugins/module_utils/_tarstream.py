# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A minimal, fast reader of tar streams that never touches the filesystem.

``tarfile`` spends most of its time building TarInfo objects; for a ::gentoo snapshot
(~150,000 small members) a lean header parser is several times faster, which matters because
the snapshot import must keep pace with ``xz -dc``. Formats: POSIX ustar, pax extended
headers and GNU long names, which covers what Gentoo's snapshot tooling writes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError

BLOCK = 512
_ZERO = b"\0" * BLOCK

# Member type flags (the header's byte 156): ustar's digits, then the pax and GNU meta members.
REGULAR, HARDLINK, SYMLINK, CHARDEV, BLOCKDEV, DIRECTORY, FIFO, CONTIGUOUS = (b"%d" % n for n in range(8))
PAX_HEADER, PAX_GLOBAL, GNU_LONGNAME, GNU_LONGLINK = b"x", b"g", b"L", b"K"
_META_TYPES = frozenset((PAX_HEADER, PAX_GLOBAL, GNU_LONGNAME, GNU_LONGLINK))

TYPE_NAMES = {
    REGULAR: "regular file",
    HARDLINK: "hard link",
    SYMLINK: "symbolic link",
    CHARDEV: "character device",
    BLOCKDEV: "block device",
    DIRECTORY: "directory",
    FIFO: "FIFO",
    CONTIGUOUS: "contiguous file",
}


class TarError(InfraError):
    """The stream is not a well-formed tar archive."""


def _number(field):
    if field[:1] and (field[0] & 0x80):  # GNU base-256 for values beyond octal fields
        value = 0
        for byte in bytearray(field[1:]):
            value = (value << 8) | byte
        return value
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise TarError("not a tar archive, or corrupt header (bad number field)")


def _cstring(field):
    end = field.find(b"\0")
    return field if end < 0 else field[:end]


def _pax_records(data):
    records = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        length = int(data[pos:space])
        if length <= 0:
            raise TarError("corrupt pax header record")
        record = data[space + 1:pos + length - 1]  # without the trailing newline
        key, _sep, value = record.partition(b"=")
        records[key] = value
        pos += length
    return records


def iter_members(read):
    """Yield ``(name, typeflag, mode, linkname, data)`` for each member of a tar stream.

    ``read(n)`` returns up to ``n`` bytes (a pipe or file's ``read``). ``data`` is the
    member's content for regular files and ``b''`` for everything else. Names and link
    names are raw bytes as stored, before any validation (that is the caller's policy).
    """
    long_name = long_link = None
    pax = None
    while True:
        header = read(BLOCK)
        if len(header) < BLOCK:
            if not header:
                raise TarError("archive ends without its end-of-archive marker (truncated)")
            raise TarError("archive truncated inside a member header")
        if header == _ZERO:
            return
        typeflag = header[156:157]
        magic = header[257:263]
        if magic[:5] != b"ustar":
            stored = _number(header[148:156])
            computed = sum(bytearray(header[:148])) + 256 + sum(bytearray(header[156:]))
            if stored != computed:
                raise TarError("not a tar archive, or corrupt header (checksum mismatch)")
        try:  # the common case: 11 octal digits and a terminator
            size = int(header[124:135], 8)
        except ValueError:
            size = _number(header[124:136])
        if pax is not None and b"size" in pax:
            size = int(pax[b"size"])
        if size:
            # Content and padding in one read: one call per member saved is measurable.
            padded = size + (-size % BLOCK)
            block = read(padded)
            if len(block) < padded:
                raise TarError("archive truncated inside the content of a member")
            data = block[:size] if padded != size else block
        else:
            data = b""

        if typeflag in _META_TYPES:
            if typeflag == PAX_HEADER:
                pax = _pax_records(data)
            elif typeflag == GNU_LONGNAME:
                long_name = _cstring(data)
            elif typeflag == GNU_LONGLINK:
                long_link = _cstring(data)
            continue

        if typeflag == b"\0":
            typeflag = REGULAR
        if long_name is not None:
            name = long_name
        elif pax is not None and b"path" in pax:
            name = pax[b"path"]
        else:
            name = header[0:100].rstrip(b"\0")
            if magic == b"ustar\x00" and header[345] != 0:  # POSIX prefix field; GNU uses it otherwise
                name = _cstring(header[345:500]) + b"/" + name
        if typeflag == REGULAR:
            linkname = b""
        elif long_link is not None:
            linkname = long_link
        elif pax is not None and b"linkpath" in pax:
            linkname = pax[b"linkpath"]
        else:
            linkname = _cstring(header[157:257])
        try:
            mode = int(header[100:107], 8)
        except ValueError:
            mode = _number(header[100:108])
        if pax is not None or long_name is not None or long_link is not None:
            long_name = long_link = pax = None
        yield name, typeflag, mode, linkname, data
