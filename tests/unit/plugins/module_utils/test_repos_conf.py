"""repos.conf editing (module_utils/_repos_conf.py, lines by module_utils/_ini_edit.py): the pure
logic, checked against configparser and Portage's own repos.conf loader."""
import configparser
import os

import pytest

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._ini_edit import scan_ini
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._repos_conf import plan_repo_conf

# --------------------------------------------------------------------------- repos.conf

GENTOO_REPOS_CONF = """\
# Portage's default, copied and edited by hand
[DEFAULT]
main-repo = gentoo

[gentoo]
# the ebuild tree
location = /var/db/repos/gentoo
Sync-Type: rsync
sync-uri = rsync://rsync.gentoo.org/gentoo-portage
sync-rsync-extra-opts = --exclude=/distfiles
    --exclude=/packages
auto-sync = yes

; a local overlay in the same file
[local]
location=/var/db/repos/local
"""


def portage_read(text):
    """configparser as Portage uses it: ConfigParser(), read_file, get() on every option."""
    parser = configparser.ConfigParser()
    parser.read_string(text)
    return {s: {k: parser.get(s, k) for k in parser.options(s)} for s in parser.sections()}, parser.defaults()


def repo_root(tmp_path, text=None, single_file=False):
    conf = tmp_path / "etc/portage/repos.conf"
    if single_file:
        conf.parent.mkdir(parents=True)
        conf.write_text(text)
    elif text is not None:
        conf.mkdir(parents=True)
        (conf / "gentoo.conf").write_text(text)
    return str(tmp_path)


def test_scan_ini_matches_configparser():
    sections = scan_ini(GENTOO_REPOS_CONF.splitlines(True))
    assert [s["name"] for s in sections] == ["DEFAULT", "gentoo", "local"]
    gentoo = sections[1]["options"]
    assert list(gentoo) == ["location", "sync-type", "sync-uri", "sync-rsync-extra-opts", "auto-sync"]
    assert gentoo["sync-rsync-extra-opts"] == [9, 11]
    parsed, _defaults = portage_read(GENTOO_REPOS_CONF)
    assert set(gentoo) <= set(parsed["gentoo"])


def test_change_in_place_keeps_comments_order_and_spelling(tmp_path):
    root = repo_root(tmp_path, GENTOO_REPOS_CONF)
    plan = plan_repo_conf(dict(root=root, name="gentoo", sync_type="git",
                               sync_uri="https://mirror.example.org/gentoo.git",
                               options={"sync_rsync_extra_opts": None, "sync-depth": 1,
                                        "sync-git-verify-commit-signature": False}))
    assert plan.changed
    assert plan.after == GENTOO_REPOS_CONF.replace("Sync-Type: rsync", "Sync-Type: git").replace(
        "rsync://rsync.gentoo.org/gentoo-portage", "https://mirror.example.org/gentoo.git").replace(
        "sync-rsync-extra-opts = --exclude=/distfiles\n    --exclude=/packages\n", "").replace(
        "auto-sync = yes\n", "auto-sync = yes\nsync-depth = 1\nsync-git-verify-commit-signature = no\n")
    parsed, defaults = portage_read(plan.after)
    assert parsed["gentoo"]["sync-type"] == "git" and defaults["main-repo"] == "gentoo"
    assert plan.result["section"] == {
        "location": "/var/db/repos/gentoo", "sync-type": "git", "sync-uri": "https://mirror.example.org/gentoo.git",
        "auto-sync": "yes", "sync-depth": "1", "sync-git-verify-commit-signature": "no"}


def test_same_values_are_no_change_even_with_other_spelling(tmp_path):
    root = repo_root(tmp_path, GENTOO_REPOS_CONF)
    plan = plan_repo_conf(dict(root=root, name="gentoo", sync_type="rsync", auto_sync=True,
                               location="/var/db/repos/gentoo", main_repo=True,
                               sync_uri="rsync://rsync.gentoo.org/gentoo-portage"))
    assert not plan.changed


def test_percent_is_escaped_for_interpolation(tmp_path):
    root = repo_root(tmp_path)
    plan = plan_repo_conf(dict(root=root, name="overlay", location="/srv/100%", sync_type="git",
                               sync_uri="https://example.org/a%40b.git"))
    assert "sync-uri = https://example.org/a%%40b.git\n" in plan.after
    parsed, dummy = portage_read(plan.after)
    assert parsed["overlay"]["sync-uri"] == "https://example.org/a%40b.git"
    assert plan.result["section"]["location"] == "/srv/100%"
    assert plan.make_dirs == [os.path.join(root, "etc"), os.path.join(root, "etc/portage"),
                              os.path.join(root, "etc/portage/repos.conf")]


def test_new_file_with_main_repo(tmp_path):
    plan = plan_repo_conf(dict(root=repo_root(tmp_path), name="gentoo", location="/var/db/repos/gentoo",
                               priority=-1000, main_repo=True))
    assert plan.after == "[DEFAULT]\nmain-repo = gentoo\n\n[gentoo]\nlocation = /var/db/repos/gentoo\npriority = -1000\n"
    assert plan.path.endswith("etc/portage/repos.conf/gentoo.conf")


def test_single_file_repos_conf_is_edited_in_place(tmp_path):
    root = repo_root(tmp_path, GENTOO_REPOS_CONF, single_file=True)
    plan = plan_repo_conf(dict(root=root, name="binhost-overlay", location="/var/db/repos/bo",
                               sync_type="git", sync_uri="https://example.org/bo.git", auto_sync=False))
    assert plan.path.endswith("etc/portage/repos.conf")
    assert plan.after == GENTOO_REPOS_CONF + ("\n[binhost-overlay]\nlocation = /var/db/repos/bo\nsync-type = git\n"
                                              "sync-uri = https://example.org/bo.git\nauto-sync = no\n")
    plan = plan_repo_conf(dict(root=root, name="local", state="absent"))
    assert plan.after == GENTOO_REPOS_CONF.split("; a local overlay", maxsplit=1)[0] + "; a local overlay in the same file\n"
    portage_read(plan.after)


def test_absent_removes_section_then_file(tmp_path):
    root = repo_root(tmp_path, GENTOO_REPOS_CONF)
    plan = plan_repo_conf(dict(root=root, name="gentoo", state="absent"))
    assert "[gentoo]" not in plan.after and "main-repo" not in plan.after and "[DEFAULT]" not in plan.after
    assert "[local]\nlocation=/var/db/repos/local\n" in plan.after
    (tmp_path / "etc/portage/repos.conf/gentoo.conf").write_text("[DEFAULT]\nmain-repo = gentoo\n\n[gentoo]\nlocation = /x\n")
    plan = plan_repo_conf(dict(root=root, name="gentoo", state="absent"))
    assert plan.after is None and plan.changed
    plan = plan_repo_conf(dict(root=root, name="missing", state="absent"))
    assert not plan.changed and plan.result["section"] == {}


def test_main_repo_false_only_drops_its_own_name(tmp_path):
    root = repo_root(tmp_path, GENTOO_REPOS_CONF, single_file=True)
    assert not plan_repo_conf(dict(root=root, name="local", main_repo=False)).changed
    plan = plan_repo_conf(dict(root=root, name="gentoo", main_repo=False))
    assert plan.after.startswith("# Portage's default, copied and edited by hand\n[gentoo]\n")


@pytest.mark.parametrize("params,message", [
    (dict(name="bad/name"), "repository name 'bad/name' is not valid"),
    (dict(name="DEFAULT"), "is not valid"),
    (dict(name="x", sync_uri="https://example.org/x.git"), "would have sync-uri but no sync-type"),
    (dict(name="x", sync_type="git"), "would have sync-type but no sync-uri"),
    (dict(name="x", options={"location": "/x"}), "use location instead of options"),
    (dict(name="x", options={"main-repo": "x"}), "use main_repo instead"),
    (dict(name="x", options={"bad key": "1"}), "is not a repos.conf key name"),
    (dict(name="x", location="/a\nb"), "line break"),
    (dict(name="x", options={"aliases": ["a", "b"]}), "has a list value"),
])
def test_refused_inputs(tmp_path, params, message):
    with pytest.raises(InfraError, match=message):
        plan_repo_conf(dict(params, root=repo_root(tmp_path)))


def test_existing_sync_type_without_uri_is_refused_too(tmp_path):
    root = repo_root(tmp_path, "[gentoo]\nlocation = /a\nsync-type = git\n")
    with pytest.raises(InfraError, match="would have sync-type but no sync-uri"):
        plan_repo_conf(dict(root=root, name="gentoo", priority=1))


def test_unreadable_existing_file_is_refused(tmp_path):
    root = repo_root(tmp_path, "[gentoo]\nlocation = /a\nlocation = /b\n")
    with pytest.raises(InfraError, match="cannot be read by Portage's repos.conf parser"):
        plan_repo_conf(dict(root=root, name="gentoo", priority=1))
    root = repo_root(tmp_path / "b", "[gentoo]\nsync-uri = http://x/%40\n")
    with pytest.raises(InfraError, match="cannot be read by Portage"):
        plan_repo_conf(dict(root=root, name="gentoo", priority=1))


def test_root_must_be_a_directory(tmp_path):
    (tmp_path / "file").write_text("")
    for root in (tmp_path / "nope", tmp_path / "file"):
        with pytest.raises(InfraError, match="does not exist or is not a directory"):
            plan_repo_conf(dict(root=str(root), name="gentoo", location="/x"))


# --------------------------------------------------------------------------- read as Portage reads

# The interpolation defaults RepoConfigLoader gives its parser for a root seen from inside.
REPOS_DEFAULTS = {"EPREFIX": "", "EROOT": "/", "PORTAGE_CONFIGROOT": "/", "ROOT": "/", "sync-rsync-extra-opts": ""}


def portage_repos(text, tmp_path):
    """The repositories Portage's own repos.conf loader (RepoConfigLoader._parse) makes of ``text``."""
    loader = pytest.importorskip("portage.repository.config").RepoConfigLoader
    path = tmp_path / "portage-reads.conf"
    path.write_text(text)
    prepos = {}
    loader._parse([str(path)], prepos, True, dict(REPOS_DEFAULTS))
    return prepos


def plan_gentoo(tmp_path, text, **params):
    return plan_repo_conf(dict(params, root=repo_root(tmp_path, text), name="gentoo"))


@pytest.mark.parametrize("empty", [
    "sync-type =\nsync-uri =\n",  # what stages ship
    "sync-type:\nsync-uri:\n",
    "sync-type=\nsync-uri=\n",
    "sync-type =   \nsync-uri = \t\n",  # blanks after the delimiter
    "sync-type =\nsync-uri =",  # and no final newline
])
def test_repos_conf_empty_values_get_the_value_in_place(tmp_path, empty):
    text = "# stage\n[DEFAULT]\nmain-repo = gentoo\n\n[gentoo]\nlocation = /var/db/repos/gentoo\n" + empty
    plan = plan_gentoo(tmp_path, text, sync_type="git", sync_uri="git://x/g.git")
    lines = plan.after.splitlines()
    assert lines[:6] == text.splitlines()[:6]
    assert len(lines) == 8 and lines[6].startswith("sync-type") and lines[7].startswith("sync-uri")
    assert plan.after.endswith("\n") == empty.endswith("\n")
    gentoo = portage_repos(plan.after, tmp_path)["gentoo"]
    assert (gentoo.sync_type, gentoo.sync_uri) == ("git", "git://x/g.git")
    assert plan.result["section"] == {"location": "/var/db/repos/gentoo", "sync-type": "git",
                                      "sync-uri": "git://x/g.git"}
    again = plan_repo_conf(dict(root=str(tmp_path), name="gentoo", sync_type="git", sync_uri="git://x/g.git"))
    assert again.before == text and again.changed  # the plan above was not written


def test_repos_conf_empty_value_keeps_the_spelling_around_the_delimiter(tmp_path):
    plan = plan_gentoo(tmp_path, "[gentoo]\nlocation = /x\nsync-depth =\npriority=\nauto-sync:\n",
                       priority=5, auto_sync=False, options={"sync-depth": 1})
    assert plan.after == "[gentoo]\nlocation = /x\nsync-depth = 1\npriority=5\nauto-sync:no\n"
    repo = portage_repos(plan.after, tmp_path)["gentoo"]
    assert (repo.sync_depth, repo.priority, repo.auto_sync) == ("1", 5, "no")


def test_repos_conf_value_set_to_empty_and_back(tmp_path):
    plan = plan_gentoo(tmp_path, "[gentoo]\nlocation = /x\nsync-depth = 1   \n", options={"sync-depth": ""})
    assert plan.after == "[gentoo]\nlocation = /x\nsync-depth =\n"
    assert portage_repos(plan.after, tmp_path)["gentoo"].sync_depth == ""


def test_repos_conf_trailing_blanks_are_no_change(tmp_path):
    text = "[gentoo]\nlocation = /var/db/repos/gentoo  \t\nsync-type = git \nsync-uri = git://x/g.git   \n"
    plan = plan_gentoo(tmp_path, text, location="/var/db/repos/gentoo", sync_type="git", sync_uri="git://x/g.git")
    assert not plan.changed
    gentoo = portage_repos(text, tmp_path)["gentoo"]
    assert (gentoo.location, gentoo.sync_type, gentoo.sync_uri) == ("/var/db/repos/gentoo", "git", "git://x/g.git")
    plan = plan_gentoo(tmp_path / "b", text, sync_uri="git://y/g.git", sync_type="git")
    assert plan.after == text.replace("git://x/g.git   ", "git://y/g.git")


def test_repos_conf_empty_sync_type_counts_as_missing(tmp_path):
    # Portage reads an empty sync-type as none ("has sync-uri attribute, but is missing sync-type").
    text = "[gentoo]\nlocation = /x\nsync-type =\nsync-uri = git://x/g.git\n"
    assert portage_repos(text, tmp_path)["gentoo"].sync_type is None
    with pytest.raises(InfraError, match="would have sync-uri but no sync-type"):
        plan_gentoo(tmp_path, text, priority=1)
    plan = plan_gentoo(tmp_path / "b", "[gentoo]\nlocation = /x\nsync-type =\nsync-uri =\n", priority=1)
    assert plan.after.endswith("sync-uri =\npriority = 1\n")


def test_repos_conf_underscore_spelling_is_replaced_not_doubled(tmp_path):
    # Portage reads only "sync-type": "sync_type" is a key it ignores.
    text = "[DEFAULT]\nmain_repo = gentoo\n\n[gentoo]\nlocation = /x\nsync_type = rsync\nSYNC_URI = rsync://r/g\n" \
           "sync_depth = 3\n"
    assert portage_repos(text, tmp_path)["gentoo"].sync_type is None
    plan = plan_gentoo(tmp_path, text, sync_type="git", sync_uri="git://x/g.git", main_repo=True,
                       options={"sync-depth": None})
    assert plan.after == "[DEFAULT]\nmain-repo = gentoo\n\n[gentoo]\nlocation = /x\nsync-type = git\n" \
                         "SYNC-URI = git://x/g.git\n"
    repos = portage_repos(plan.after, tmp_path)
    assert (repos["gentoo"].sync_type, repos["gentoo"].sync_uri, repos["gentoo"].sync_depth) == \
        ("git", "git://x/g.git", None)
    assert repos["DEFAULT"].main_repo == "gentoo"
    assert plan.result["section"] == {"location": "/x", "sync-type": "git", "sync-uri": "git://x/g.git"}


def test_repos_conf_both_spellings_leave_the_one_portage_reads(tmp_path):
    text = "[gentoo]\nsync_uri = git://old/a.git\nlocation = /x\nsync-type = git\nsync-uri = git://old/b.git\n"
    plan = plan_gentoo(tmp_path, text, sync_uri="git://old/b.git")
    assert plan.after == "[gentoo]\nlocation = /x\nsync-type = git\nsync-uri = git://old/b.git\n"
    assert portage_repos(plan.after, tmp_path)["gentoo"].sync_uri == "git://old/b.git"
    assert not plan_gentoo(tmp_path / "b", plan.after, sync_uri="git://old/b.git").changed


def test_repos_conf_other_case_is_the_same_key(tmp_path):
    text = "[gentoo]\nLOCATION = /x\nSync-Type = rsync\nSYNC-URI = rsync://r/g\n"
    plan = plan_gentoo(tmp_path, text, location="/y", sync_type="git", sync_uri="git://x/g.git")
    assert plan.after == "[gentoo]\nLOCATION = /y\nSync-Type = git\nSYNC-URI = git://x/g.git\n"
    gentoo = portage_repos(plan.after, tmp_path)["gentoo"]
    assert (gentoo.location, gentoo.sync_type, gentoo.sync_uri) == ("/y", "git", "git://x/g.git")


@pytest.mark.parametrize("text", [
    "[gentoo]\nlocation = /x",
    "[gentoo]\nlocation = /x\nsync-type = rsync\nsync-uri = rsync://r/g",
    "[gentoo]",
    "[gentoo]\nlocation = /x\nsync-rsync-extra-opts = --a\n    --b",
])
def test_repos_conf_section_at_the_end_without_final_newline(tmp_path, text):
    plan = plan_gentoo(tmp_path, text, sync_type="git", sync_uri="git://x/g.git", priority=2)
    gentoo = portage_repos(plan.after, tmp_path)["gentoo"]
    assert (gentoo.sync_type, gentoo.sync_uri, gentoo.priority) == ("git", "git://x/g.git", 2)
    assert plan.after.startswith(text.split("sync-type")[0])
    other = plan_repo_conf(dict(root=repo_root(tmp_path / "single", text, single_file=True), name="other",
                                location="/var/db/repos/other"))
    assert other.after.startswith(text + "\n")
    assert portage_repos(other.after, tmp_path)["other"].location == "/var/db/repos/other"


def test_repos_conf_interpolation_of_portage_defaults(tmp_path):
    text = "[gentoo]\nlocation = %(EPREFIX)s/var/db/repos/gentoo\n"
    assert portage_repos(text, tmp_path)["gentoo"].location == "/var/db/repos/gentoo"
    plan = plan_gentoo(tmp_path, text, priority=1)
    assert plan.after == text + "priority = 1\n"
    assert plan.result["section"] == {"location": "/var/db/repos/gentoo", "priority": "1"}


def test_repos_conf_lines_end_where_portage_ends_them(tmp_path):
    # Portage opens repos.conf in text mode: \r, \r\n and \n end lines, form feeds and U+2028 do not.
    text = "[gentoo]\r\n# a note\u2028with a line separator\x0c\nlocation = /x\rauto-sync = yes\n"
    plan = plan_gentoo(tmp_path, text, auto_sync=False)
    assert plan.after == text.replace("yes", "no")
    assert portage_repos(plan.after, tmp_path)["gentoo"].auto_sync == "no"
