# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Edit one binary package repository section of Portage's ``binrepos.conf``.

Portage (``portage/binrepo/config.py``, ``BinRepoConfigLoader``) reads
``${PORTAGE_CONFIGROOT}/etc/portage/binrepos.conf`` after its own
``share/portage/config/binrepos.conf`` (which sets ``[DEFAULT] verify-signature = true``).
``binrepos.conf`` may be a single file or a directory whose files are all read (in name
order, dot files and backups skipped); both are supported here, as in :mod:`._repos_conf`
for repos.conf: the section ``[<name>]`` lives in ``binrepos.conf/<name>.conf``, or inside the
single file when ``binrepos.conf`` is a file. Paths are resolved inside ``root`` by
:mod:`._root_files` (a chroot's symlinks never lead to the host's files).

The parser is ``configparser.ConfigParser`` with basic interpolation and the defaults
``frozen``, ``EPREFIX``, ``EROOT``, ``PORTAGE_CONFIGROOT`` and ``ROOT`` (so ``%(EPREFIX)s`` in a
hand-written file is understood); boolean keys count as true when they read ``true`` or
``yes`` in any case. A section without ``sync-uri`` is dropped by Portage with a warning, so a
present section always gets one. The line editing (comments, key order and unmanaged keys
kept) is :mod:`._ini_edit`'s.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._ini_edit import (
    REPO_NAME_RE,
    after_section_removal,
    del_section,
    desired_section_keys,
    ini_lines,
    parse_ini_text,
    section_file,
    section_plan,
    set_section_keys,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._root_files import config_root, read_text

# The module options that set a binrepos.conf key of their own name.
BINREPO_DEDICATED_OPTIONS = ("sync_uri", "priority", "location", "verify_signature")
BINREPO_BOOL_KEYS = ("verify-signature", "frozen")
# The interpolation defaults BinRepoConfigLoader gives its parser; the values are those of a
# root Portage reads with PORTAGE_CONFIGROOT=/ and no EPREFIX (a chroot seen from inside).
PARSER_DEFAULTS = {"frozen": "false", "EPREFIX": "", "EROOT": "/", "PORTAGE_CONFIGROOT": "/", "ROOT": "/"}


def parse_binrepos_text(text, source="<binrepos.conf>"):
    """Parse ``text`` as Portage's binrepos.conf loader does; InfraError with the complaint."""
    return parse_ini_text(text, source, PARSER_DEFAULTS, "binrepos.conf", read_defaults=False)


def binrepo_option_text(value):
    """How a value is spelled in binrepos.conf: booleans as true/false, like Portage's own file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "%s" % value


def _same_value(key, current, wanted):
    if current is None:
        return False
    if key in BINREPO_BOOL_KEYS:
        # Portage: value.lower() in ("true", "yes"); keep a hand-written "yes" that means true.
        return (current.lower() in ("true", "yes")) == (wanted.lower() in ("true", "yes")) and \
            current.lower() in ("true", "yes", "false", "no")
    return current == wanted


def desired_binrepo_keys(params):
    """Ordered ``{key: value or None}`` from the module options; None means remove the key."""
    wanted = desired_section_keys(params, BINREPO_DEDICATED_OPTIONS, binrepo_option_text, "binrepos.conf")
    if wanted.get("sync-uri") == "":
        raise InfraError("sync_uri is empty; Portage ignores a binary repository without sync-uri")
    return wanted


def binrepos_conf_file(root, name):
    """The file that holds section ``name`` (a RootFile) and whether it is a single-file
    binrepos.conf."""
    return section_file(root, "/etc/portage/binrepos.conf", name, "binrepos.conf")


def _check_binrepo_input(params):
    root, name = params.get("root") or "/", params.get("name")
    if not REPO_NAME_RE.match(name or "") or name == "DEFAULT":
        raise InfraError("binary repository name %r is not valid: use letters, digits, '_', '+' and '-', "
                         "not starting with '+' or '-' (and not DEFAULT); it names the section, the file "
                         "<name>.conf and the default location /var/cache/binhost/<name>" % name)
    if not os.path.isabs(root):
        raise InfraError("root %r is not an absolute path; give the absolute path of the system or "
                         "chroot root" % root)
    return config_root(root), name


def plan_binrepo_conf(params):
    """Compute the new binrepos.conf file for the module options ``params``."""
    root, name = _check_binrepo_input(params)
    state = params.get("state") or "present"
    conf, single_file = binrepos_conf_file(root, name)
    path = conf.path
    before = read_text(conf.host, conf.label())
    if before is not None:
        parse_binrepos_text(before, path)
    lines = ini_lines(before or "")

    if state == "absent":
        del_section(lines, name)
        after = after_section_removal(lines, before, single_file)
    else:
        current = parse_binrepos_text(before or "", path)
        set_section_keys(lines, current, name, desired_binrepo_keys(params),
                         same=_same_value)
        after = "".join(lines)

    plan = section_plan(conf, name, before, after, parse_binrepos_text(after, path) if after is not None else None)
    if state == "present" and not plan.result["section"].get("sync-uri"):
        raise InfraError("binary repository %s would have no sync-uri in %s; Portage ignores such a "
                         "section (set sync_uri)" % (name, path))
    return plan
