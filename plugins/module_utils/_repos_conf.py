# -*- coding: utf-8 -*-
# Copyright: gentoo_binhost.infra contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Edit one repository section of Portage's ``repos.conf``, the way Portage reads it.

Portage (``portage/repository/config.py``, ``RepoConfigLoader``) reads
``${PORTAGE_CONFIGROOT}/etc/portage/repos.conf``, a single file or a directory whose files are
all read: the section ``[<name>]`` lives in ``repos.conf/<name>.conf``, or inside the single
file when ``repos.conf`` is a file. The parser is ``ConfigParser`` with basic interpolation
and the defaults ``EPREFIX``, ``EROOT``, ``PORTAGE_CONFIGROOT``, ``ROOT`` and
``sync-rsync-extra-opts``; a lone ``%`` makes Portage drop the whole repos.conf, so values are
written with ``%%``. ``sync-type`` and ``sync-uri`` go together (Portage refuses one without
the other), and an empty value counts as unset. ``main-repo`` lives in ``[DEFAULT]`` of the
same file. The line editing is :mod:`._ini_edit`'s, the files are :mod:`._root_files`'.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._ini_edit import (
    REPO_NAME_RE,
    after_section_removal,
    del_key,
    del_section,
    desired_section_keys,
    find_section,
    ini_lines,
    ini_value,
    key_spellings,
    parse_ini_text,
    section_file,
    section_plan,
    set_key,
    set_section_keys,
)
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._root_files import config_root, read_text

# The module options that set a repos.conf key of their own name.
DEDICATED_OPTIONS = ("location", "sync_type", "sync_uri", "priority", "auto_sync")
# The interpolation defaults RepoConfigLoader gives its parser; the values are those of a root
# Portage reads with PORTAGE_CONFIGROOT=/ and no EPREFIX (a chroot seen from inside), and
# PORTAGE_RSYNC_EXTRA_OPTS unset.
REPOS_PARSER_DEFAULTS = {"EPREFIX": "", "EROOT": "/", "PORTAGE_CONFIGROOT": "/", "ROOT": "/",
                         "sync-rsync-extra-opts": ""}


def parse_repos_conf_text(text, source="<repos.conf>"):
    """Parse ``text`` as Portage does; InfraError with Portage's complaint when it cannot."""
    return parse_ini_text(text, source, REPOS_PARSER_DEFAULTS, "repos.conf")


def repo_option_text(value):
    """How an option value is spelled in repos.conf (booleans as yes/no)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "%s" % value


def desired_repo_keys(params):
    """Ordered ``{key: value or None}`` from the module options; None means remove the key."""
    return desired_section_keys(params, DEDICATED_OPTIONS, repo_option_text, "repos.conf",
                                also_refused=("main_repo",))


def repos_conf_file(root, name):
    """The file that holds section ``name``: repos.conf itself when it is a file."""
    return section_file(root, "/etc/portage/repos.conf", name, "repos.conf")


def _main_repo_is(lines, parser, name):
    """Whether ``[DEFAULT] main-repo`` names ``name``, spelled once as Portage reads it."""
    default = find_section(lines, "DEFAULT")
    return ini_value(parser, "DEFAULT", "main-repo") == name and default is not None \
        and key_spellings(default, "main-repo") == ["main-repo"]


def _drop_main_repo(lines):
    """Remove [DEFAULT] main-repo, and the [DEFAULT] header when nothing else is in it."""
    del_key(lines, "DEFAULT", "main-repo")
    default = find_section(lines, "DEFAULT")
    if default is not None and not default["options"]:
        del_section(lines, "DEFAULT")


def plan_repo_conf(params):
    """Compute the new repos.conf file for the module options ``params``."""
    root, name, state = params.get("root") or "/", params["name"], params.get("state") or "present"
    if not REPO_NAME_RE.match(name or "") or name == "DEFAULT":
        raise InfraError("repository name %r is not valid: use letters, digits, '_', '+' and '-', not "
                         "starting with '+' or '-' (and not DEFAULT)" % name)
    conf, single_file = repos_conf_file(config_root(root), name)
    path = conf.path
    before = read_text(conf.host, conf.label())
    if before is not None:
        parse_repos_conf_text(before, path)
    lines = ini_lines(before or "")
    main_repo = params.get("main_repo")

    if state == "absent":
        del_section(lines, name)
        current_main = ini_value(parse_repos_conf_text("".join(lines), path), "DEFAULT", "main-repo")
        if current_main == name:
            _drop_main_repo(lines)
        after = after_section_removal(lines, before, single_file)
    else:
        current = parse_repos_conf_text(before or "", path)
        set_section_keys(lines, current, name, desired_repo_keys(params))
        if main_repo is True and not _main_repo_is(lines, current, name):
            set_key(lines, "DEFAULT", "main-repo", name)
        elif main_repo is False and ini_value(current, "DEFAULT", "main-repo") == name:
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
