# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Edit one variable of Portage's ``make.conf`` with bash's word rules.

``make.conf`` is a bash fragment (Portage reads it with shlex, users source it). Assignments
``[export] NAME=word`` are located with bash word rules (quotes, backslash-newline), and only
the word of the assignment being changed is rewritten, so comments, blank lines and every
other line survive byte for byte. Names are case-sensitive, as in bash and Portage.
``NAME=`` with nothing after it is empty to bash, but Portage's reader takes the next word as
its value; the managed variable is always written quoted (``NAME=""``).

The file is found inside the root as :mod:`._root_files` finds it; :func:`plan_make_conf`
returns its :class:`._root_files.FilePlan`.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._chroot_paths import is_below
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._root_files import (
    FilePlan,
    RootFile,
    config_root,
    read_text,
)

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
    before = read_text(conf.host, conf.label())
    state = params.get("state") or "present"
    after, value = edit_make_conf(before or "", params["name"], value=params.get("value"),
                                  add=params.get("add"), remove=params.get("remove"), state=state)
    if before is None and not after:
        after = None  # nothing to write and nothing there
    return FilePlan.for_file(conf, before, after, {"path": conf.path, "value": value})
