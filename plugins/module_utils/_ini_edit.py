# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Line editing of one section of an INI file Portage reads (``repos.conf``, ``binrepos.conf``).

Portage reads both with :class:`configparser.ConfigParser` (``portage/repository/config.py``,
``portage/binrepo/config.py``) from a file opened in text mode (``\\r``, ``\\r\\n`` and ``\\n``
end lines): basic ``%`` interpolation is ON, option names are case-insensitive (lower-cased)
but ``_`` is not ``-`` (Portage asks for ``sync-uri``; a ``sync_uri`` line is ignored), values
are stripped and an empty one counts as unset, section names are case-sensitive, ``#``/``;``
start full-line comments, indented lines continue a value, ``[DEFAULT]`` feeds every section.

The editor scans lines with the same rules and changes only the lines of the keys it sets, so
comments, blank lines and everything it does not manage survive byte for byte; the callers
re-read every text it produces with ``ConfigParser`` (:func:`parse_ini_text`) before it is
accepted. A key that is set replaces every spelling of it in the section (``Sync-URI``,
``sync_uri``), so the file never holds a second, conflicting one; the line Portage reads keeps
its case and becomes the ``-`` spelling.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import configparser
import os
import re

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._root_files import FilePlan, RootFile

REPO_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9+_-]*$")  # PMS 3.1.5 repository names
KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_SECTCRE = configparser.RawConfigParser.SECTCRE
_OPTCRE = configparser.RawConfigParser.OPTCRE
# One line of an INI file the way Portage's text-mode open() splits it, line end included.
_INI_LINE_RE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_LINE_END_RE = re.compile(r"(?:\r\n|\r|\n)\Z")
# An option line without its line end; the first delimiter ends the key, as in configparser.
_KEY_LINE_RE = re.compile(r"(?P<lead>\s*)(?P<key>.*?)(?P<before>\s*)(?P<delim>[=:])(?P<after>\s*)(?P<value>.*)\Z",
                          re.S)


def ini_lines(text):
    """``text`` cut into lines (with their line ends) where Portage's reading cuts it: at
    ``\\n``, ``\\r\\n`` and ``\\r`` only, not at the form feeds or U+2028 ``str.splitlines`` cuts at."""
    return _INI_LINE_RE.findall(text)


def ini_read_string(parser, text, source):
    """``parser.read_string`` of ``text`` with the line ends Portage's text-mode read gives it."""
    parser.read_string(text.replace("\r\n", "\n").replace("\r", "\n"), source=source)


def parse_ini_text(text, source, defaults, what, read_defaults=True):
    """Parse ``text`` as Portage's ``what`` loader does, a ConfigParser with the interpolation
    ``defaults`` it gives; InfraError with the parser's complaint when it cannot. Interpolation
    errors surface only when a value is read, so every value is (those of ``[DEFAULT]`` too
    with ``read_defaults``, as Portage's repos.conf loader does)."""
    parser = configparser.ConfigParser(defaults=defaults)
    try:
        ini_read_string(parser, text, source)
        for section in parser.sections():
            for key in parser.options(section):
                parser.get(section, key)
        if read_defaults:
            for key in parser.defaults():
                parser.get(parser.default_section, key)
    except configparser.Error as exc:
        raise InfraError("%s cannot be read by Portage's %s parser: %s" % (source, what, exc))
    return parser


def scan_ini(lines):
    """Sections of ``lines`` (with line ends) in file order, found with configparser's rules.

    Each section is ``{"name", "header", "options": {key: [first, end]}}`` where lines
    ``first:end`` hold the option line and its continuation lines.
    """
    sections = []
    cur = None
    optname = None
    indent_level = 0
    for index, line in enumerate(lines):
        value = line.strip()
        if not value or value.startswith(("#", ";")):
            continue  # comments and blank lines neither start nor end a value
        cur_indent = len(line) - len(line.lstrip())
        if cur is not None and optname is not None and cur_indent > indent_level:
            cur["options"][optname][1] = index + 1
            continue
        indent_level = cur_indent
        match = _SECTCRE.match(value)
        if match:
            cur = {"name": match.group("header"), "header": index, "options": {}}
            sections.append(cur)
            optname = None
            continue
        match = _OPTCRE.match(value) if cur is not None else None
        if not match or not match.group("option"):
            raise InfraError("line %d is neither a section header nor a key = value line: %r"
                             % (index + 1, line.rstrip("\n")))
        optname = match.group("option").rstrip().lower()
        cur["options"][optname] = [index, index + 1]
    return sections


def find_section(lines, name):
    """Section ``name`` of ``lines`` as :func:`scan_ini` gives it, None when it is missing."""
    for section in scan_ini(lines):
        if section["name"] == name:
            return section
    return None


def _section_end(section):
    """Index after the section's last option (or its header)."""
    ends = [span[1] for span in section["options"].values()]
    return max(ends) if ends else section["header"] + 1


def _ensure_newline(lines):
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"


def _append_block(lines, block):
    """Add the lines ``block`` at the end, a blank line between them and what is there."""
    _ensure_newline(lines)
    if lines and lines[-1].strip():
        lines.append("\n")
    lines.extend(block)


def key_spellings(section, key):
    """The option names of ``section`` that mean ``key`` to this module (``_`` for ``-``;
    case is already folded by the scan), the one Portage reads, ``key`` itself, first."""
    names = [name for name in section["options"] if name.replace("_", "-") == key]
    return sorted(names, key=lambda name: (name != key, section["options"][name][0]))


def _option_line(first, last, raw):
    """Option line ``first`` (``last``: the last line of its value) with the value ``raw``.

    The key keeps its case and the blanks around the delimiter stay; ``_`` in the key becomes
    ``-``, the spelling Portage reads. An empty old value gets the blank that precedes the
    delimiter after it too (``key =`` becomes ``key = value``), and the line end is the
    value's own, so a last line without one stays without.
    """
    end = _LINE_END_RE.search(last)
    newline = end.group(0) if end else ""
    body = _LINE_END_RE.sub("", first)
    match = _KEY_LINE_RE.match(body)
    lead, key, before, delim, after, old = match.group("lead", "key", "before", "delim", "after", "value")
    key = key.replace("_", "-")
    if not raw:
        return "%s%s%s%s%s" % (lead, key, before, delim, newline)
    if not old:
        after = before
    return "%s%s%s%s%s%s%s" % (lead, key, before, delim, after, raw, newline)


def set_key(lines, section_name, key, value):
    """Give ``key`` of section ``section_name`` the ``value`` (``%`` escaped for interpolation),
    in place of its first spelling; the section is added when it is missing, ``[DEFAULT]``
    before the first section."""
    sections = scan_ini(lines)
    section = next((s for s in sections if s["name"] == section_name), None)
    raw = value.replace("%", "%%")
    if section is None:
        if section_name == "DEFAULT" and sections:
            at = sections[0]["header"]
            lines[at:at] = ["[DEFAULT]\n", "%s = %s\n" % (key, raw), "\n"]
            return
        _append_block(lines, ["[%s]\n" % section_name, "%s = %s\n" % (key, raw)])
        return
    names = key_spellings(section, key)
    if not names:
        at = _section_end(section)
        if at == len(lines):
            _ensure_newline(lines)
        lines[at:at] = ["%s = %s\n" % (key, raw)]
        return
    # From the bottom up, so the spans above stay valid: the first spelling gets the value,
    # the others go.
    for name in sorted(names, key=lambda name: section["options"][name][0], reverse=True):
        first, end = section["options"][name]
        if name == names[0]:
            lines[first:end] = [_option_line(lines[first], lines[end - 1], raw)]
        else:
            del lines[first:end]


def del_key(lines, section_name, key):
    """Remove ``key`` from the section, in every spelling of it."""
    section = find_section(lines, section_name)
    if section is None:
        return
    for name in sorted(key_spellings(section, key), key=lambda name: section["options"][name][0], reverse=True):
        first, end = section["options"][name]
        del lines[first:end]


def del_section(lines, section_name):
    """Remove the section and the blank lines that separated it from what follows."""
    section = find_section(lines, section_name)
    if section is None:
        return
    first, end = section["header"], _section_end(section)
    while end < len(lines) and not lines[end].strip():
        end += 1
    del lines[first:end]
    while first > 0 and first == len(lines) and not lines[first - 1].strip():
        del lines[first - 1]
        first -= 1


def ini_value(parser, section, key):
    """The value Portage reads for ``key`` of ``section`` (``DEFAULT`` included), None when unset."""
    try:
        if section == "DEFAULT":
            return parser.defaults().get(key) if key in parser.defaults() else None
        if not parser.has_section(section) or not parser.has_option(section, key):
            return None
        return parser.get(section, key)
    except configparser.Error:
        return None


def desired_section_keys(params, dedicated, option_text, what, also_refused=()):
    """Ordered ``{key: value or None}`` from the module options ``params``; None means remove
    the key. ``dedicated`` are the module options that set a key of their own name (``sync_uri``
    sets ``sync-uri``), ``params["options"]`` the free-form keys; a free-form key that one of
    ``dedicated`` or ``also_refused`` sets is refused. ``option_text`` spells a value, ``what``
    names the file in messages."""
    wanted = {}
    for option in dedicated:
        if params.get(option) is not None:
            wanted[option.replace("_", "-")] = option_text(params[option])
    refused = dict((option.replace("_", "-"), option) for option in tuple(dedicated) + tuple(also_refused))
    for raw_key, value in (params.get("options") or {}).items():
        key = str(raw_key).strip().lower().replace("_", "-")
        if not KEY_RE.match(key):
            raise InfraError("options key %r is not a %s key name (letters, digits and '-')" % (raw_key, what))
        if key in refused:
            raise InfraError("options key %r has its own module option; use %s instead of options"
                             % (raw_key, refused[key]))
        if key in wanted:
            raise InfraError("options key %r is given twice (keys are case-insensitive, '_' is '-')" % raw_key)
        if isinstance(value, (dict, list, tuple)):
            raise InfraError("options key %r has a %s value; %s values are single strings "
                             "(join lists with spaces)" % (raw_key, type(value).__name__, what))
        wanted[key] = None if value is None else option_text(value)
    for key, value in wanted.items():
        if value is not None and ("\n" in value or "\r" in value or value != value.strip()):
            raise InfraError("value %r for %s key %s has a line break or surrounding blanks; "
                             "%s cannot hold that" % (value, what, key, what))
    return wanted


def section_file(root, conf_name, name, what):
    """``(RootFile, single_file)`` of the file that holds section ``name`` of the
    configuration ``conf_name`` (``/etc/portage/repos.conf``): that file itself when it is one
    (a single-file configuration), else ``<name>.conf`` in that directory."""
    conf = RootFile(root, conf_name, what)
    if os.path.isfile(conf.host):
        return conf, True
    if os.path.lexists(conf.entry) and not os.path.isdir(conf.host):
        raise InfraError("%s is neither a file nor a directory (a dangling symlink or a special file); "
                         "Portage cannot read it: remove it or make it a directory" % conf.label())
    return RootFile(root, "%s/%s.conf" % (conf_name, name), what), False


def after_section_removal(lines, before, single_file):
    """The file text once a section was deleted from ``lines``: None (remove the file) when
    nothing of Portage's is left in a ``<name>.conf`` of a directory or the file never
    existed; a single-file configuration is kept even when empty."""
    sections = scan_ini(lines)
    empty = all(not s["options"] for s in sections) and all(s["name"] == "DEFAULT" for s in sections)
    if before is None or (empty and not single_file):
        return None
    return "".join(lines)


def set_section_keys(lines, parser, name, wanted, same=None):
    """Set (or, for a None value, delete) ``wanted`` keys of section ``name`` in ``lines``;
    a key whose current value (per ``parser``) is already ``same`` as wanted is left alone.
    Creates the section header when the section is missing."""
    same = same or (lambda key, current, value: current == value)
    existing = find_section(lines, name)
    for key, value in wanted.items():
        if value is None:
            del_key(lines, name, key)
        # Only a key spelled once, the way Portage reads it, can be left as it is.
        elif (key_spellings(existing, key) if existing else []) != [key] \
                or not same(key, ini_value(parser, name, key), value):
            set_key(lines, name, key, value)
    if find_section(lines, name) is None:
        _append_block(lines, ["[%s]\n" % name])  # present, nothing to set yet: just its header


def section_plan(conf, name, before, after, parser):
    """FilePlan of a one-section edit of :class:`RootFile` ``conf``, its result carrying the
    section's keys afterwards."""
    section = {}
    if after is not None:
        own = find_section(ini_lines(after), name)
        for key in (own["options"] if own else {}):
            section[key] = ini_value(parser, name, key)
    return FilePlan.for_file(conf, before, after, {"path": conf.path, "section": section})
