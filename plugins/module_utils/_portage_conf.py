# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Edit Portage's ``repos.conf`` and ``make.conf`` line by line, the way Portage reads them.

Both editors are pure functions from the old text to the new one, so comments, blank lines and
everything they do not manage survive byte for byte:

- ``repos.conf`` is read by Portage with :class:`configparser.ConfigParser` (see
  ``portage/repository/config.py``) from a file opened in text mode (``\r``, ``\r\n`` and
  ``\n`` end lines): basic ``%`` interpolation is ON with the defaults ``EPREFIX``, ``EROOT``,
  ``PORTAGE_CONFIGROOT``, ``ROOT`` and ``sync-rsync-extra-opts`` (a lone ``%`` makes Portage
  drop the whole repos.conf), option names are case-insensitive (lower-cased) but ``_`` is not
  ``-`` (Portage asks for ``sync-uri``; a ``sync_uri`` line is ignored), values are stripped
  and an empty one counts as unset, section names are case-sensitive, ``#``/``;`` start
  full-line comments, indented lines continue a value, ``[DEFAULT]`` feeds every section. The
  editor scans lines with the same rules, and every text it produces is re-read with
  ``ConfigParser`` before it is accepted. A key the module sets replaces every spelling of it
  in the section (``Sync-URI``, ``sync_uri``), so the file never holds a second, conflicting
  one; the line Portage reads keeps its case and becomes the ``-`` spelling.
- ``make.conf`` is a bash fragment (Portage reads it with shlex, users source it). Assignments
  ``[export] NAME=word`` are located with bash word rules (quotes, backslash-newline), and only
  the word of the assignment being changed is rewritten. Names are case-sensitive, as in bash
  and Portage. ``NAME=`` with nothing after it is empty to bash, but Portage's reader takes the
  next word as its value; the managed variable is always written quoted (``NAME=""``).

Files are found as a process inside ``root`` finds them (:mod:`._chroot_paths`): a symbolic
link in a chroot is followed inside the chroot, never to the host's files. At the default
root ``/`` that is plain path resolution.

The planners return a :class:`FilePlan`; :func:`apply_file_plan` writes it through an Ansible
module (temp file in the target directory + ``atomic_move``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import configparser
import os
import posixpath
import re
import tempfile
import traceback

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._chroot_paths import (
    ChrootPathError,
    chroot_root,
    describe,
    is_below,
    resolve_in_root,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError


class FilePlan(object):
    """What one file should become: ``after`` is None when the file is to be removed.

    ``path`` names the file in results and diffs; ``target`` is the file written (a symlink
    at the end already followed inside the root) and ``entry`` the directory entry a removal
    deletes (the link itself). Both default to ``path``.
    """

    def __init__(self, path, before, after, result, make_dirs=(), target=None, entry=None):
        self.path = path
        self.before = before  # None when the file does not exist
        self.after = after
        self.result = result
        self.make_dirs = list(make_dirs)
        self.target = target or path
        self.entry = entry or path

    @classmethod
    def for_file(cls, conf, before, after, result):
        """The plan of :class:`RootFile` ``conf``; directories are made only for a write."""
        return cls(conf.path, before, after, result, make_dirs=conf.make_dirs if after is not None else (),
                   target=conf.host, entry=conf.entry)

    @property
    def changed(self):
        return self.before != self.after

    def diff(self):
        return {
            "before": self.before or "",
            "after": self.after or "",
            "before_header": self.path if self.before is not None else "%s (absent)" % self.path,
            "after_header": self.path if self.after is not None else "%s (absent)" % self.path,
        }


def _read_text(path, label=None):
    """The text of file ``path`` (a host path already resolved in its root), None when it
    does not exist; ``label`` names it in errors."""
    label = label or path
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InfraError("cannot read %s: %s" % (label, exc.strerror or exc))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InfraError("%s is not UTF-8 text (%s); refusing to edit it" % (label, exc))


def config_root(root):
    """The canonical root whose configuration is edited: the host itself (``/``, where
    resolving a path inside the root is plain resolution) or a chroot."""
    return chroot_root(root, "system", allow_host=True)


class RootFile(object):
    """A file of ``root`` by the absolute path the root itself uses (``/etc/portage/make.conf``),
    resolved the way a process inside the root finds it.

    ``path`` is that file spelled below the root on the host, for results and messages;
    ``host`` the file to read and write, ``inside`` its path as the root sees it (a symlink at
    the end followed inside the root when ``follow``); ``entry`` the directory entry itself,
    the link not followed (what a removal deletes); ``make_dirs`` the directories a write
    creates, outermost first.

    A symbolic link on the way whose target the root does not have is refused: nothing is
    created behind it, since ``mkdir -p`` inside the root fails there too and the same link
    followed from the host may lead to the host's own files.
    """

    def __init__(self, root, name, what, follow=True, shown=None):
        self.root, self.name, self.what = root, name, what
        self.path = shown or os.path.join(root, name.lstrip("/"))
        parent, parent_inside = self._directory(posixpath.dirname(name))
        base = posixpath.basename(name)
        self.entry = os.path.join(parent, base)
        self.host, self.inside = self.entry, posixpath.join(parent_inside, base)
        if follow and os.path.islink(self.entry):
            self.host, self.inside = resolve_in_root(root, self.inside, what)
            if not os.path.isdir(os.path.dirname(self.host)):
                raise self._dangling(self.entry, posixpath.join(parent_inside, base),
                                     posixpath.dirname(self.inside))
        self.make_dirs = _missing_dirs(self.host)

    def _directory(self, name):
        """Host and root path of directory ``name``, link by link: a missing part ends the
        walk (what follows it is created plainly), a link must lead to a directory."""
        host, inside = self.root, "/"
        parts = [part for part in name.split("/") if part]
        for index, part in enumerate(parts):
            entry, entry_inside = os.path.join(host, part), posixpath.join(inside, part)
            if os.path.islink(entry):
                host, inside = resolve_in_root(self.root, entry_inside, self.what)
                if not os.path.isdir(host):
                    raise self._dangling(entry, entry_inside, inside)
            elif not os.path.lexists(entry):
                rest = parts[index:]
                return os.path.join(host, *rest), posixpath.join(inside, *rest)
            elif not os.path.isdir(entry):
                raise ChrootPathError("%s %s of %s: %s is not a directory"
                                      % (self.what, self.name, self.root, entry_inside))
            else:
                host, inside = entry, entry_inside
        return host, inside

    def _dangling(self, entry, entry_inside, inside):
        """The refusal of link ``entry`` (``entry_inside`` in the root): the directory it
        leads to (for a link to a file, the file's directory), ``inside``, is missing."""
        message = "%s %s of %s: %s is a symlink to %s, and %s does not exist inside that root" % (
            self.what, self.name, self.root, entry_inside, os.readlink(entry), inside)
        seen_from_host = os.path.realpath(entry)
        if not is_below(seen_from_host, self.root):
            message += "; followed from the host it leads out of the chroot, to %s outside the chroot" % seen_from_host
        return ChrootPathError(message + "; nothing is created behind it: create the link's target inside the "
                                         "root, or change the link")

    def label(self):
        """The file for a message, with where the root's links lead when that differs."""
        shown = describe(self.name, self.inside)
        return shown if self.root == "/" else "%s of %s" % (shown, self.root)


def _missing_dirs(path):
    """Directories above ``path`` that do not exist yet, outermost first."""
    missing = []
    parent = os.path.dirname(path)
    while parent and not os.path.exists(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    return list(reversed(missing))


# --------------------------------------------------------------------------- repos.conf

REPO_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9+_-]*$")  # PMS 3.1.5 repository names
REPO_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
DEDICATED_KEYS = ("location", "sync-type", "sync-uri", "priority", "auto-sync")
_SECTCRE = configparser.RawConfigParser.SECTCRE
_OPTCRE = configparser.RawConfigParser.OPTCRE
# One line of an INI file the way Portage's text-mode open() splits it, line end included.
_INI_LINE_RE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_LINE_END_RE = re.compile(r"(?:\r\n|\r|\n)\Z")
# An option line without its line end; the first delimiter ends the key, as in configparser.
_KEY_LINE_RE = re.compile(r"(?P<lead>\s*)(?P<key>.*?)(?P<before>\s*)(?P<delim>[=:])(?P<after>\s*)(?P<value>.*)\Z",
                          re.S)
# The interpolation defaults RepoConfigLoader gives its parser; the values are those of a root
# Portage reads with PORTAGE_CONFIGROOT=/ and no EPREFIX (a chroot seen from inside), and
# PORTAGE_RSYNC_EXTRA_OPTS unset.
REPOS_PARSER_DEFAULTS = {"EPREFIX": "", "EROOT": "/", "PORTAGE_CONFIGROOT": "/", "ROOT": "/",
                         "sync-rsync-extra-opts": ""}


def ini_lines(text):
    """``text`` cut into lines (with their line ends) where Portage's reading cuts it: at
    ``\n``, ``\r\n`` and ``\r`` only, not at the form feeds or U+2028 ``str.splitlines`` cuts at."""
    return _INI_LINE_RE.findall(text)


def ini_read_string(parser, text, source):
    """``parser.read_string`` of ``text`` with the line ends Portage's text-mode read gives it."""
    parser.read_string(text.replace("\r\n", "\n").replace("\r", "\n"), source=source)


def portage_ini_parser():
    """A parser configured the way Portage reads repos.conf (``SafeConfigParser`` = ConfigParser)."""
    return configparser.ConfigParser(defaults=REPOS_PARSER_DEFAULTS)


def parse_repos_conf_text(text, source="<repos.conf>"):
    """Parse ``text`` as Portage does; InfraError with Portage's complaint when it cannot."""
    parser = portage_ini_parser()
    try:
        ini_read_string(parser, text, source)
        # Portage calls get() on every option: interpolation errors surface only here.
        for section in parser.sections():
            for key in parser.options(section):
                parser.get(section, key)
        for key in parser.defaults():
            parser.get(parser.default_section, key)
    except configparser.Error as exc:
        raise InfraError("%s cannot be read by Portage's repos.conf parser: %s" % (source, exc))
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


def _find_section(sections, name):
    for section in sections:
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


def _ini_escape(value):
    return value.replace("%", "%%")


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


def _set_key(lines, section_name, key, value):
    sections = scan_ini(lines)
    section = _find_section(sections, section_name)
    raw = _ini_escape(value)
    if section is None:
        if section_name == "DEFAULT" and sections:
            at = sections[0]["header"]
            lines[at:at] = ["[DEFAULT]\n", "%s = %s\n" % (key, raw), "\n"]
            return
        _ensure_newline(lines)
        if lines and lines[-1].strip():
            lines.append("\n")
        lines.extend(["[%s]\n" % section_name, "%s = %s\n" % (key, raw)])
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


def _del_key(lines, section_name, key):
    """Remove ``key`` from the section, in every spelling of it."""
    section = _find_section(scan_ini(lines), section_name)
    if section is None:
        return
    for name in sorted(key_spellings(section, key), key=lambda name: section["options"][name][0], reverse=True):
        first, end = section["options"][name]
        del lines[first:end]


def _del_section(lines, section_name):
    section = _find_section(scan_ini(lines), section_name)
    if section is None:
        return
    first, end = section["header"], _section_end(section)
    while end < len(lines) and not lines[end].strip():
        end += 1  # the blank lines that separated it from what follows
    del lines[first:end]
    while first > 0 and first == len(lines) and not lines[first - 1].strip():
        del lines[first - 1]
        first -= 1


def _ini_value(parser, section, key):
    try:
        if section == "DEFAULT":
            return parser.defaults().get(key) if key in parser.defaults() else None
        if not parser.has_section(section) or not parser.has_option(section, key):
            return None
        return parser.get(section, key)
    except configparser.Error:
        return None


def repo_option_text(value):
    """How an option value is spelled in repos.conf (booleans as yes/no)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "%s" % value


def desired_repo_keys(params):
    """Ordered ``{key: value or None}`` from the module options; None means remove the key."""
    wanted = {}
    for option in ("location", "sync_type", "sync_uri", "priority", "auto_sync"):
        if params.get(option) is not None:
            wanted[option.replace("_", "-")] = repo_option_text(params[option])
    for raw_key, value in (params.get("options") or {}).items():
        key = str(raw_key).strip().lower().replace("_", "-")
        if not REPO_KEY_RE.match(key):
            raise InfraError("options key %r is not a repos.conf key name (letters, digits and '-')" % raw_key)
        if key in DEDICATED_KEYS or key == "main-repo":
            raise InfraError("options key %r has its own module option; use %s instead of options"
                             % (raw_key, "main_repo" if key == "main-repo" else key.replace("-", "_")))
        if key in wanted:
            raise InfraError("options key %r is given twice (keys are case-insensitive, '_' is '-')" % raw_key)
        if isinstance(value, (dict, list, tuple)):
            raise InfraError("options key %r has a %s value; repos.conf values are single strings "
                             "(join lists with spaces)" % (raw_key, type(value).__name__))
        wanted[key] = None if value is None else repo_option_text(value)
    for key, value in wanted.items():
        if value is not None and ("\n" in value or "\r" in value or value != value.strip()):
            raise InfraError("value %r for repos.conf key %s has a line break or surrounding blanks; "
                             "repos.conf cannot hold that" % (value, key))
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


def repos_conf_file(root, name):
    """The file that holds section ``name``: repos.conf itself when it is a file."""
    return section_file(root, "/etc/portage/repos.conf", name, "repos.conf")


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
    existing = _find_section(scan_ini(lines), name)
    for key, value in wanted.items():
        if value is None:
            _del_key(lines, name, key)
        # Only a key spelled once, the way Portage reads it, can be left as it is.
        elif (key_spellings(existing, key) if existing else []) != [key] \
                or not same(key, _ini_value(parser, name, key), value):
            _set_key(lines, name, key, value)
    if _find_section(scan_ini(lines), name) is None:
        _set_key_header_only(lines, name)


def section_plan(conf, name, before, after, parser):
    """FilePlan of a one-section edit of :class:`RootFile` ``conf``, its result carrying the
    section's keys afterwards."""
    section = {}
    if after is not None:
        own = _find_section(scan_ini(ini_lines(after)), name)
        for key in (own["options"] if own else {}):
            section[key] = _ini_value(parser, name, key)
    return FilePlan.for_file(conf, before, after, {"path": conf.path, "section": section})


def _main_repo_is(lines, parser, name):
    """Whether ``[DEFAULT] main-repo`` names ``name``, spelled once as Portage reads it."""
    default = _find_section(scan_ini(lines), "DEFAULT")
    return _ini_value(parser, "DEFAULT", "main-repo") == name and default is not None \
        and key_spellings(default, "main-repo") == ["main-repo"]


def plan_repo_conf(params):
    """Compute the new repos.conf file for the module options ``params``."""
    root, name, state = params.get("root") or "/", params["name"], params.get("state") or "present"
    if not REPO_NAME_RE.match(name or "") or name == "DEFAULT":
        raise InfraError("repository name %r is not valid: use letters, digits, '_', '+' and '-', not "
                         "starting with '+' or '-' (and not DEFAULT)" % name)
    conf, single_file = repos_conf_file(config_root(root), name)
    path = conf.path
    before = _read_text(conf.host, conf.label())
    if before is not None:
        parse_repos_conf_text(before, path)
    lines = ini_lines(before or "")
    main_repo = params.get("main_repo")

    if state == "absent":
        _del_section(lines, name)
        current_main = _ini_value(parse_repos_conf_text("".join(lines), path), "DEFAULT", "main-repo")
        if current_main == name:
            _drop_main_repo(lines)
        after = after_section_removal(lines, before, single_file)
    else:
        current = parse_repos_conf_text(before or "", path)
        set_section_keys(lines, current, name, desired_repo_keys(params))
        if main_repo is True and not _main_repo_is(lines, current, name):
            _set_key(lines, "DEFAULT", "main-repo", name)
        elif main_repo is False and _ini_value(current, "DEFAULT", "main-repo") == name:
            _drop_main_repo(lines)
        after = "".join(lines)

    plan = section_plan(conf, name, before, after,
                        parse_repos_conf_text(after, path) if after is not None else None)
    section = plan.result["section"]
    # Portage takes an empty value for no value: "sync-type =" is no sync-type.
    if state == "present" and bool(section.get("sync-type")) != bool(section.get("sync-uri")):
        have, lack = ("sync-type", "sync-uri") if section.get("sync-type") else ("sync-uri", "sync-type")
        raise InfraError("repository %s would have %s but no %s in %s; Portage needs both "
                         "(set sync_type and sync_uri together)" % (name, have, lack, path))
    return plan


def _drop_main_repo(lines):
    """Remove [DEFAULT] main-repo, and the [DEFAULT] header when nothing else is in it."""
    _del_key(lines, "DEFAULT", "main-repo")
    default = _find_section(scan_ini(lines), "DEFAULT")
    if default is not None and not default["options"]:
        _del_section(lines, "DEFAULT")


def _set_key_header_only(lines, name):
    """A section with no keys (present, nothing to set yet): just its header."""
    _ensure_newline(lines)
    if lines and lines[-1].strip():
        lines.append("\n")
    lines.append("[%s]\n" % name)


# --------------------------------------------------------------------------- make.conf

VAR_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ASSIGN_RE = re.compile(r"[ \t]*(?:(?P<export>export)[ \t]+)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)=")
_NEXT_ASSIGN_RE = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)=")
_WORD_BREAK = " \t\n;&|<>()"
_DQ_SPECIAL = '\\"$`'


class Assignment(object):
    """One ``NAME=word`` in a make.conf text, by character offsets."""

    def __init__(self, name, start, value_start, value_end, stmt_start, stmt_end, alone):
        self.name = name
        self.start = start  # where NAME begins
        self.value_start = value_start
        self.value_end = value_end
        self.stmt_start = stmt_start  # line(s) holding the statement
        self.stmt_end = stmt_end
        self.alone = alone  # the only assignment of its statement

    def raw(self, text):
        return text[self.value_start:self.value_end]


def _word_end(text, pos, line_no):
    """End offset of the bash word starting at ``pos``."""
    n = len(text)
    while pos < n:
        char = text[pos]
        if char in _WORD_BREAK:
            return pos
        if char == "\\":
            pos += 2
        elif char == "'":
            close = text.find("'", pos + 1)
            if close < 0:
                raise InfraError("line %d: single quote is never closed" % line_no)
            pos = close + 1
        elif char in '"`':
            pos += 1
            while pos < n and text[pos] != char:
                pos += 2 if text[pos] == "\\" else 1
            if pos >= n:
                raise InfraError("line %d: %s quote is never closed" % (line_no, "double" if char == '"' else "back"))
            pos += 1
        else:
            pos += 1
    return min(pos, n)


def scan_make_conf(text):
    """All assignments in ``text``, in order. Lines that are not assignments are skipped whole."""
    found = []
    pos, n = 0, len(text)
    while pos < n:
        line_no = text.count("\n", 0, pos) + 1
        eol = text.find("\n", pos)
        eol = n if eol < 0 else eol + 1
        match = _ASSIGN_RE.match(text, pos)
        if not match:
            pos = eol
            continue
        stmt = []
        while True:
            value_start = match.end()
            value_end = _word_end(text, value_start, line_no)
            stmt.append((match.group("name"), match.start("name"), value_start, value_end))
            cursor = value_end
            while cursor < n and text[cursor] in " \t":
                cursor += 1
            nxt = _NEXT_ASSIGN_RE.match(text, cursor)
            if cursor < n and text[cursor] not in "\n#" and nxt:
                match = nxt
                continue
            break
        stmt_end = text.find("\n", cursor)
        stmt_end = n if stmt_end < 0 else stmt_end + 1
        for name, start, vstart, vend in stmt:
            found.append(Assignment(name, start, vstart, vend, pos, stmt_end, len(stmt) == 1))
        pos = stmt_end
    return found


def dq_escape(literal):
    """``literal`` as it is written between double quotes (no expansion)."""
    return "".join("\\" + c if c in _DQ_SPECIAL else c for c in literal)


def to_dq_form(raw):
    """A bash word as the text between double quotes that means the same.

    Quotes are removed, literal ``$ ` " \\`` are backslash-escaped, active ``$``/backticks stay
    bare, and backslash-newline continuations disappear, so two words compare equal when bash
    would give them the same value.
    """
    out, i, n = [], 0, len(raw)
    while i < n:
        char = raw[i]
        if char == "'":
            close = raw.index("'", i + 1)
            out.append(dq_escape(raw[i + 1:close]))
            i = close + 1
        elif char == '"':
            i += 1
            while raw[i] != '"':
                if raw[i] == "\\" and i + 1 < n and raw[i + 1] in _DQ_SPECIAL + "\n":
                    if raw[i + 1] != "\n":
                        out.append(raw[i:i + 2])
                    i += 2
                elif raw[i] == "\\":
                    out.append("\\\\")
                    i += 1
                else:
                    out.append(raw[i])
                    i += 1
            i += 1
        elif char == "\\":
            if i + 1 < n and raw[i + 1] != "\n":
                out.append(dq_escape(raw[i + 1]))
            i += 2
        elif char == "`":
            close = raw.index("`", i + 1)
            out.append(raw[i:close + 1])
            i = close + 1
        else:
            out.append(char)
            i += 1
    return "".join(out)


def dq_literal(dq):
    """The value bash assigns for double-quoted text ``dq`` when nothing in it expands."""
    return re.sub(r'\\([\\"$`])', r"\1", dq)


def has_expansion(dq):
    """True when double-quoted text ``dq`` has an unescaped ``$`` or backtick."""
    return re.search(r'(?<!\\)(?:\\\\)*[$`]', dq) is not None


def _self_refs(name):
    return ("${%s}" % name, "$%s" % name)


def _effective_tokens(words_by_assignment, index, name):
    tokens = []
    for word in words_by_assignment[index]:
        if word in _self_refs(name):
            tokens.extend(_effective_tokens(words_by_assignment, index - 1, name) if index > 0 else [])
        else:
            tokens.append(word)
    return tokens


def _edit_simple_dq(inner, removed, added):
    """Token edits inside a plain double-quoted value, keeping its line layout."""
    lines = inner.split("\n")
    kept_lines = []
    for number, line in enumerate(lines):
        words = line.split()
        if any(word in removed for word in words):
            lead = line[:len(line) - len(line.lstrip())]
            kept = [word for word in words if word not in removed]
            if not kept and number > 0:
                continue
            line = lead + " ".join(kept)
        kept_lines.append(line)
    if len(kept_lines) > 1 and not kept_lines[0].strip() and lines[0].strip():
        kept_lines[:2] = [kept_lines[1].lstrip()]  # the first line emptied: pull the next one up
    text = "\n".join(kept_lines)
    if added:
        if not text.strip():
            return " ".join(added)
        tail = len(text) - len(text.rstrip())
        body = text[:len(text) - tail] if tail else text
        text = body + " " + " ".join(added) + text[len(body):]
    return text


def _replace_value(text, assignment, new_raw):
    return text[:assignment.value_start] + new_raw + text[assignment.value_end:]


def _remove_assignment(text, assignment):
    if assignment.alone:
        return text[:assignment.stmt_start] + text[assignment.stmt_end:]
    start, end = assignment.start, assignment.value_end
    if start > assignment.stmt_start and text[start - 1] in " \t":
        while start > assignment.stmt_start and text[start - 1] in " \t":
            start -= 1  # "A=1 B=2" without B: the blanks before it go
    else:
        while end < len(text) and text[end] in " \t":
            end += 1
    return text[:start] + text[end:]


def name_in_root(root, given_root, path, what="path"):
    """The name the root uses for ``path``, a host path below the root (canonical ``root`` or
    the ``given_root`` it was named by)."""
    if not isinstance(path, str) or not os.path.isabs(path):
        raise InfraError("%s %r must be an absolute path" % (what, path))
    path = os.path.normpath(path)
    for base in (root, os.path.normpath(given_root)):
        if is_below(path, base):
            return "/" + os.path.relpath(path, base) if path != base else "/"
    raise InfraError("%s %s is not below root %s; give the host path of a file inside the root (or "
                     "leave root at /)" % (what, path, given_root))


def make_conf_file(params):
    """:class:`RootFile` of the make.conf to edit: ``path`` (a host path inside the root) or
    ``<root>/etc/portage/make.conf``; a directory is refused."""
    given = params.get("root") or "/"
    root = config_root(given)
    if params.get("path"):
        conf = RootFile(root, name_in_root(root, given, params["path"]), "make.conf", shown=params["path"])
    else:
        conf = RootFile(root, "/etc/portage/make.conf", "make.conf")
    if os.path.isdir(conf.host):
        raise InfraError("%s is a directory (Portage reads every file in it); set path to one file in "
                         "it, for example %s" % (conf.label(), os.path.join(conf.path, "50-ansible.conf")))
    return conf


def edit_make_conf(text, name, value=None, add=None, remove=None, state="present"):
    """Return ``(new_text, literal value or None)`` for one variable of make.conf text."""
    if not VAR_NAME_RE.match(name or ""):
        raise InfraError("variable name %r is not a shell variable name ([A-Za-z_][A-Za-z0-9_]*)" % name)
    if value is not None and (add or remove):
        raise InfraError("value sets the whole variable; it cannot be combined with add or remove")
    for token in list(add or []) + list(remove or []):
        if not token or re.search(r"\s", token):
            raise InfraError("token %r of %s is empty or has blanks; give one token per list item" % (token, name))
    assignments = [a for a in scan_make_conf(text) if a.name == name]

    if state == "absent":
        for assignment in reversed(assignments):
            text = _remove_assignment(text, assignment)
        return text, None

    # NAME= is empty to bash, but Portage's shlex reader takes the next word for its value
    # (and fails on what follows): written NAME="" both read it as empty.
    if any(assignment.value_start == assignment.value_end for assignment in assignments):
        for assignment in reversed(assignments):
            if assignment.value_start == assignment.value_end:
                text = _replace_value(text, assignment, '""')
        assignments = [a for a in scan_make_conf(text) if a.name == name]

    if value is not None:
        wanted = dq_escape(value)
        if assignments:
            last = assignments[-1]
            if to_dq_form(last.raw(text)) != wanted:
                text = _replace_value(text, last, '"%s"' % wanted)
        else:
            text = _append_line(text, name, wanted)
    elif add or remove:
        text = _edit_tokens(text, name, assignments, [dq_escape(t) for t in add or []],
                            set(dq_escape(t) for t in remove or []))
    final = [a for a in scan_make_conf(text) if a.name == name]
    return text, (dq_literal(to_dq_form(final[-1].raw(text))) if final else None)


def _append_line(text, name, dq):
    if text and not text.endswith("\n"):
        text += "\n"
    return text + '%s="%s"\n' % (name, dq)


def _edit_tokens(text, name, assignments, add, remove):
    if not assignments:
        wanted = []
        for token in add:
            if token not in wanted:
                wanted.append(token)
        return _append_line(text, name, " ".join(wanted)) if wanted else text
    words = [to_dq_form(a.raw(text)).split() for a in assignments]
    # The assignments that reach the final value: the last, and each one a later one
    # pulls in through ${NAME}.
    chain = [len(assignments) - 1]
    while chain[-1] > 0 and any(w in _self_refs(name) for w in words[chain[-1]]):
        chain.append(chain[-1] - 1)
    new_words = [list(w) for w in words]
    for index in chain:
        new_words[index] = [w for w in new_words[index] if w not in remove]
    effective = _effective_tokens(new_words, len(assignments) - 1, name)
    added = []
    for token in add:
        if token not in effective and token not in added:
            added.append(token)
    new_words[-1].extend(added)
    # Rewrite from the end so earlier offsets stay valid.
    for index in reversed(range(len(assignments))):
        if new_words[index] == words[index]:
            continue
        assignment = assignments[index]
        raw = assignment.raw(text)
        inner = raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == '"' else None
        if inner is not None and '"' not in inner and "\\" not in inner:
            removed = set(words[index]) - set(new_words[index]) if index in chain else set()
            new_raw = '"%s"' % _edit_simple_dq(inner, removed, added if index == len(assignments) - 1 else [])
            if to_dq_form(new_raw).split() != new_words[index]:
                new_raw = '"%s"' % " ".join(new_words[index])
        else:
            new_raw = '"%s"' % " ".join(new_words[index])
        text = _replace_value(text, assignment, new_raw)
    return text


def plan_make_conf(params):
    """Compute the new make.conf file for the module options ``params``."""
    conf = make_conf_file(params)
    before = _read_text(conf.host, conf.label())
    state = params.get("state") or "present"
    after, value = edit_make_conf(before or "", params["name"], value=params.get("value"),
                                  add=params.get("add"), remove=params.get("remove"), state=state)
    if before is None and not after:
        after = None  # nothing to write and nothing there
    return FilePlan.for_file(conf, before, after, {"path": conf.path, "value": value})


# --------------------------------------------------------------------------- writing

def run_file_plan(module, planner, what):
    """A config module's whole run: plan with ``planner(module.params)``, apply, exit with the
    plan's result (and its diff in diff mode); ``what`` names the file in unexpected errors."""
    try:
        plan = planner(module.params)
        changed = apply_file_plan(module, plan)
    except InfraError as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # an unexpected failure: keep the traceback for the report
        module.fail_json(msg="unexpected error editing %s for %s: %s" % (what, module.params["name"], exc),
                         exception=traceback.format_exc())
    result = dict(plan.result, changed=changed)
    if module._diff and plan.changed:
        result["diff"] = plan.diff()
    module.exit_json(**result)


def apply_file_plan(module, plan):
    """Write (or remove) ``plan`` through ``module``; returns ``changed`` including attributes."""
    changed = plan.changed
    # A symlinked make.conf (kept in a git checkout, say) stays a symlink: the plan's target is
    # the file it leads to, found inside the root.
    target = plan.target
    if module.check_mode:
        if plan.after is not None and not changed and os.path.exists(target):
            file_args = module.load_file_common_arguments(module.params, path=target)
            changed = module.set_fs_attributes_if_different(file_args, changed)
        return changed
    if plan.after is None:
        if plan.before is not None:
            os.unlink(plan.entry)
        return changed
    for directory in plan.make_dirs:
        os.mkdir(directory)
        os.chmod(directory, 0o755)
    if changed:
        new_file = not os.path.exists(target)
        fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(target), suffix=".tmp",
                                   dir=os.path.dirname(target))  # dot name: Portage skips it
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(plan.after.encode("utf-8"))
            if new_file:
                os.chmod(tmp, 0o644)
            module.atomic_move(tmp, target, unsafe_writes=module.params.get("unsafe_writes", False))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        if new_file:
            os.chmod(target, 0o644)
    file_args = module.load_file_common_arguments(module.params, path=target)
    return module.set_fs_attributes_if_different(file_args, changed)
