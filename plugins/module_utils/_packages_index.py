# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Portage's ``Packages`` index: reading it, and checking it against the files of its PKGDIR.

The index is blocks of ``KEY: value`` lines separated by blank lines; the first block is the
header, every other one a package instance (``CPV``, ``BUILD_ID``, ``PATH``, ``SIZE``,
checksums, ...). It is not signed and anyone may rewrite it, so before a directory is served
every entry is checked against its file: the path stays inside the directory, the size and
every checksum the index lists match, ``PACKAGES`` counts the entries and ``Packages.gz``
is the same index.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gzip
import hashlib
import os

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError

INDEX = "Packages"
# Checksums Portage may list per package (BINPKG digests), with their hashlib names.
DIGESTS = (("MD5", "md5"), ("SHA1", "sha1"), ("SHA256", "sha256"), ("SHA512", "sha512"),
           ("BLAKE2B", "blake2b"))
# How many problems one message lists before it only counts the rest.
_SHOWN = 20


class PublishError(InfraError):
    """A package directory, package or publication that was refused; nothing clients see has
    changed."""


def summarise(problems):
    """The first problems, then how many more: one message stays readable."""
    more = len(problems) - _SHOWN
    return "; ".join(problems[:_SHOWN] + (["... and %d more" % more] if more > 0 else []))


def parse_packages(text):
    """``(header, entries)`` of a Portage ``Packages`` index: blocks of ``KEY: value`` lines
    separated by blank lines, the first block being the header."""
    blocks, block = [], {}
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            if block:
                blocks.append(block)
                block = {}
            continue
        key, sep, value = line.partition(":")
        if not sep or not key or key != key.strip():
            raise PublishError("Packages line %d is not 'KEY: value': %r" % (line_no, line[:80]))
        block[key] = value[1:] if value.startswith(" ") else value
    if block:
        blocks.append(block)
    if not blocks:
        raise PublishError("the Packages index is empty")
    header, entries = blocks[0], blocks[1:]
    if "CPV" in header:
        raise PublishError("the Packages index has no header block")
    for number, entry in enumerate(entries, 1):
        if "CPV" not in entry:
            raise PublishError("entry %d of the Packages index has no CPV" % number)
    return header, entries


def read_index(directory):
    """The bytes of ``directory``'s ``Packages`` index."""
    try:
        with open(os.path.join(directory, INDEX), "rb") as handle:
            return handle.read()
    except (IOError, OSError) as exc:
        raise PublishError("no Packages index in %s: %s" % (directory, exc.strerror or exc))


def decode_index(raw):
    """``(header, entries, text)`` of the index bytes ``raw`` (Portage writes UTF-8)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PublishError("the Packages index is not UTF-8: %s" % exc)
    header, entries = parse_packages(text)
    return header, entries, text


def entry_path(entry):
    """Where a package's file lives, relative to the PKGDIR (Portage's rule: ``PATH`` if
    given, else ``<CPV>.tbz2``)."""
    return entry.get("PATH") or entry["CPV"] + ".tbz2"


def instance_key(entry):
    """What tells two instances of one CPV apart (binpkg-multi-instance): the ``BUILD_ID``."""
    return "%s-%s" % (entry["CPV"], entry.get("BUILD_ID", "0"))


def leaves_directory(rel):
    """Whether the relative path ``rel`` an index lists could name a file outside its PKGDIR."""
    parts = rel.split("/")
    return rel.startswith("/") or ".." in parts or "" in parts


def entry_digests(entry):
    """The checksums an entry lists: Portage's name (``SHA1``) to the lower-case value."""
    return dict((key, entry[key].lower()) for key, _name in DIGESTS if key in entry)


def set_header_uri(text, uri):
    """``text`` with the header's ``URI`` set to ``uri`` (or removed when ``uri`` is None);
    entries are left byte for byte."""
    head, sep, rest = text.partition("\n\n")
    lines = [line for line in head.split("\n") if not line.startswith("URI:")]
    if uri:
        lines.append("URI: " + uri)
        lines.sort(key=lambda line: line.split(":", 1)[0])
    return "\n".join(lines) + sep + rest


def _file_digests(path, names):
    hashes = dict((key, hashlib.new(name)) for key, name in names)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            for digest in hashes.values():
                digest.update(chunk)
    return dict((key, digest.hexdigest()) for key, digest in hashes.items())


def _entry_problem(root, real_root, entry, known):
    """What is wrong with one entry's file, or None."""
    rel = entry_path(entry)
    label = "%s (%s)" % (instance_key(entry), rel)
    if leaves_directory(rel):
        return ["%s: path leaves the package directory" % label]
    path = os.path.join(root, rel)
    if os.path.islink(path) or not os.path.isfile(path) or \
            not os.path.realpath(path).startswith(real_root + os.sep):
        return ["%s: file missing" % label]
    size = os.path.getsize(path)
    if "SIZE" in entry and entry["SIZE"] != str(size):
        return ["%s: size %d, index says %s" % (label, size, entry["SIZE"])]
    listed = [(key, name) for key, name in DIGESTS if key in entry]
    if not listed:
        return ["%s: the index lists no checksum" % label]
    previous = (known or {}).get(rel)
    if previous is not None and previous[0] == os.stat(path).st_ino and \
            all(previous[1].get(key.lower()) == entry[key].lower() for key, _name in listed):
        return []
    actual = _file_digests(path, listed)
    return ["%s: %s %s, index says %s" % (label, key, actual[key], entry[key])
            for key, _name in listed if actual[key] != entry[key].lower()]


def _gz_problem(root, raw):
    gz = os.path.join(root, INDEX + ".gz")
    if not os.path.exists(gz):
        return []
    try:
        with gzip.open(gz, "rb") as handle:
            same = handle.read() == raw
    except (IOError, OSError, EOFError) as exc:
        return ["Packages.gz is unreadable: %s" % exc]
    return [] if same else ["Packages.gz is not the same index as Packages"]


def validate_pkgdir(root, known=None):
    """Check ``root``'s ``Packages`` against its files; returns ``(header, entries, text)``.

    ``known`` (path → (inode, {checksum name: value})) names files already verified for the
    previous generation: the same inode listed with the same checksums is not read again.

    Raises PublishError listing every problem: a missing or escaping file, a wrong size, a
    checksum that differs, a ``PACKAGES`` count that does not match, a ``Packages.gz`` that
    is not the same index.
    """
    raw = read_index(root)
    header, entries, text = decode_index(raw)
    problems = []
    if "PACKAGES" in header and header["PACKAGES"] != str(len(entries)):
        problems.append("header says PACKAGES: %s but the index lists %d" % (header["PACKAGES"], len(entries)))
    seen = set()
    real_root = os.path.realpath(root)
    for entry in entries:
        rel = entry_path(entry)
        if rel in seen:
            problems.append("%s (%s): listed twice" % (instance_key(entry), rel))
            continue
        seen.add(rel)
        problems.extend(_entry_problem(root, real_root, entry, known))
    problems.extend(_gz_problem(root, raw))
    if problems:
        raise PublishError("the Packages index of %s does not match its files: %s" % (root, summarise(problems)))
    return header, entries, text
