"""repos.conf and make.conf editing: the pure logic, checked against configparser, bash and Portage."""
import configparser
import os
import subprocess

import pytest

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._portage_conf import (
    dq_escape,
    edit_make_conf,
    plan_make_conf,
    plan_repo_conf,
    scan_ini,
    scan_make_conf,
    to_dq_form,
)

# --------------------------------------------------------------------------- make.conf

GENTOO_MAKE_CONF = """\
# These settings were set by the catalyst build script that automatically
# built this stage.
# Please consult /usr/share/portage/config/make.conf.example for a more
# detailed example.
COMMON_FLAGS="-O2 -pipe -march=x86-64-v2"
CFLAGS="${COMMON_FLAGS}"
CXXFLAGS="${COMMON_FLAGS}"
FCFLAGS="${COMMON_FLAGS}"

# NOTE: This stage was built with the bindist Use flag enabled
PORTDIR="${EPREFIX}/var/db/repos/gentoo"
DISTDIR="/var/cache/distfiles"
PKGDIR="/var/cache/binpkgs"

FEATURES="buildpkg
    parallel-fetch
    -news"   # the binhost wants packages

# This sets the language of build output to English.
LC_MESSAGES=C.utf8
MAKEOPTS='-j2 -l2'
source /var/lib/layman/make.conf
EMERGE_DEFAULT_OPTS="--with-bdeps=y \\
 --keep-going"
"""


def bash_value(text, name, tmp_path):
    """What bash gets for ``name`` after sourcing ``text`` with an empty environment."""
    path = tmp_path / "sourced.conf"
    path.write_text(text.replace("source /var/lib/layman/make.conf\n", ""))
    proc = subprocess.run(["bash", "-c", 'set -e; source "$1"; printf %%s "${%s-UNSET}"' % name, "bash", str(path)],
                          env={}, capture_output=True, text=True, check=True)
    return proc.stdout


def portage_value(text, name, tmp_path):
    """What Portage's own make.conf reader (portage.util.getconfig) gets for ``name``."""
    getconfig = pytest.importorskip("portage.util").getconfig
    path = tmp_path / "portage.conf"
    path.write_text(text.replace("source /var/lib/layman/make.conf\n", ""))
    return getconfig(str(path), expand={}).get(name)


def changed_lines(before, after):
    return [line for line in after.splitlines() if line not in before.splitlines()]


def test_scan_finds_every_assignment_form():
    names = [a.name for a in scan_make_conf(GENTOO_MAKE_CONF)]
    assert names == ["COMMON_FLAGS", "CFLAGS", "CXXFLAGS", "FCFLAGS", "PORTDIR", "DISTDIR", "PKGDIR",
                     "FEATURES", "LC_MESSAGES", "MAKEOPTS", "EMERGE_DEFAULT_OPTS"]


def test_assignment_inside_a_quoted_value_is_not_an_assignment():
    text = 'CFLAGS="-O2\nFEATURES=inside"\nFEATURES="real"\n'
    assert [a.name for a in scan_make_conf(text)] == ["CFLAGS", "FEATURES"]
    new, value = edit_make_conf(text, "FEATURES", add=["x"])
    assert new == 'CFLAGS="-O2\nFEATURES=inside"\nFEATURES="real x"\n' and value == "real x"


def test_add_keeps_layout_comment_and_other_lines(tmp_path):
    new, value = edit_make_conf(GENTOO_MAKE_CONF, "FEATURES", add=["getbinpkg", "buildpkg", "-sandbox"])
    assert value.split() == ["buildpkg", "parallel-fetch", "-news", "getbinpkg", "-sandbox"]
    assert 'FEATURES="buildpkg\n    parallel-fetch\n    -news getbinpkg -sandbox"   # the binhost wants packages\n' in new
    assert new.replace(" getbinpkg -sandbox", "") == GENTOO_MAKE_CONF
    assert bash_value(new, "FEATURES", tmp_path).split() == value.split()
    assert portage_value(new, "FEATURES", tmp_path).split() == value.split()


def test_remove_drops_tokens_and_emptied_lines(tmp_path):
    new, value = edit_make_conf(GENTOO_MAKE_CONF, "FEATURES", remove=["parallel-fetch", "nothere"])
    assert 'FEATURES="buildpkg\n    -news"   # the binhost' in new
    assert value == "buildpkg\n    -news"
    new, value = edit_make_conf(GENTOO_MAKE_CONF, "FEATURES", remove=["buildpkg"])
    assert 'FEATURES="parallel-fetch\n    -news"' in new
    assert bash_value(new, "FEATURES", tmp_path).split() == ["parallel-fetch", "-news"]


def test_add_and_remove_together_and_idempotent():
    new, value = edit_make_conf(GENTOO_MAKE_CONF, "FEATURES", add=["-buildpkg"], remove=["buildpkg"])
    again, value2 = edit_make_conf(new, "FEATURES", add=["-buildpkg"], remove=["buildpkg"])
    assert again == new and value2 == value
    assert value.split() == ["parallel-fetch", "-news", "-buildpkg"]


def test_nothing_to_do_returns_the_text_unchanged():
    for kwargs in (dict(add=["buildpkg"]), dict(remove=["absent-token"]), dict(value="/var/cache/binpkgs")):
        name = "PKGDIR" if "value" in kwargs else "FEATURES"
        new, _value = edit_make_conf(GENTOO_MAKE_CONF, name, **kwargs)
        assert new == GENTOO_MAKE_CONF


def test_value_replaces_whole_value_and_escapes(tmp_path):
    literal = 'a "quoted" $HOME `id` back\\slash'
    new, value = edit_make_conf(GENTOO_MAKE_CONF, "MAKEOPTS", value=literal)
    assert value == literal
    assert 'MAKEOPTS="a \\"quoted\\" \\$HOME \\`id\\` back\\\\slash"\n' in new
    assert bash_value(new, "MAKEOPTS", tmp_path) == literal
    assert changed_lines(GENTOO_MAKE_CONF, new) == ['MAKEOPTS="a \\"quoted\\" \\$HOME \\`id\\` back\\\\slash"']


def test_single_quoted_and_unquoted_values_are_compared_by_meaning():
    assert edit_make_conf(GENTOO_MAKE_CONF, "MAKEOPTS", value="-j2 -l2")[0] == GENTOO_MAKE_CONF
    assert edit_make_conf(GENTOO_MAKE_CONF, "LC_MESSAGES", value="C.utf8")[0] == GENTOO_MAKE_CONF
    new, value = edit_make_conf(GENTOO_MAKE_CONF, "MAKEOPTS", add=["-j2", "--load-average=3"])
    assert 'MAKEOPTS="-j2 -l2 --load-average=3"\n' in new and value == "-j2 -l2 --load-average=3"


def test_backslash_newline_continuation(tmp_path):
    assert to_dq_form(scan_make_conf(GENTOO_MAKE_CONF)[-1].raw(GENTOO_MAKE_CONF)) == "--with-bdeps=y  --keep-going"
    new, value = edit_make_conf(GENTOO_MAKE_CONF, "EMERGE_DEFAULT_OPTS", add=["--jobs=2"])
    assert value.split() == ["--with-bdeps=y", "--keep-going", "--jobs=2"]
    assert bash_value(new, "EMERGE_DEFAULT_OPTS", tmp_path).split() == value.split()


def test_references_kept_verbatim_when_untouched(tmp_path):
    new, _ = edit_make_conf(GENTOO_MAKE_CONF, "FEATURES", add=["x"])
    assert 'PORTDIR="${EPREFIX}/var/db/repos/gentoo"' in new and 'CFLAGS="${COMMON_FLAGS}"' in new
    new, value = edit_make_conf(GENTOO_MAKE_CONF, "COMMON_FLAGS", add=["-g"])
    assert value == "-O2 -pipe -march=x86-64-v2 -g"
    assert bash_value(new, "CXXFLAGS", tmp_path) == value


MULTI = """\
FEATURES="buildpkg"
# local additions
FEATURES="${FEATURES} parallel-fetch"
export FEATURES="$FEATURES -news"
"""


def test_several_assignments_last_wins_add_goes_to_the_last(tmp_path):
    new, value = edit_make_conf(MULTI, "FEATURES", add=["buildpkg", "getbinpkg"])
    assert new == MULTI.replace('$FEATURES -news"', '$FEATURES -news getbinpkg"')
    assert value == "$FEATURES -news getbinpkg"
    assert bash_value(new, "FEATURES", tmp_path) == "buildpkg parallel-fetch -news getbinpkg"
    assert portage_value(new, "FEATURES", tmp_path) == "buildpkg parallel-fetch -news getbinpkg"


def test_several_assignments_remove_follows_self_references(tmp_path):
    new, _ = edit_make_conf(MULTI, "FEATURES", remove=["buildpkg", "-news"])
    assert new == 'FEATURES=""\n# local additions\nFEATURES="${FEATURES} parallel-fetch"\nexport FEATURES="$FEATURES"\n'
    assert bash_value(new, "FEATURES", tmp_path).split() == ["parallel-fetch"]


def test_remove_does_not_reach_assignments_a_later_one_overrides(tmp_path):
    text = 'FEATURES="old"\nFEATURES="new"\n'
    new, value = edit_make_conf(text, "FEATURES", remove=["old"])
    assert new == text and value == "new"
    new, value = edit_make_conf(text, "FEATURES", value="other")
    assert new == 'FEATURES="old"\nFEATURES="other"\n'
    assert bash_value(new, "FEATURES", tmp_path) == "other"


def test_absent_removes_every_assignment_only():
    new, value = edit_make_conf(MULTI, "FEATURES", state="absent")
    assert new == "# local additions\n" and value is None
    text = "USE='a b' ACCEPT_LICENSE=* # licences\nX=1\n"
    assert edit_make_conf(text, "ACCEPT_LICENSE", state="absent")[0] == "USE='a b' # licences\nX=1\n"
    assert edit_make_conf(text, "USE", state="absent")[0] == "ACCEPT_LICENSE=* # licences\nX=1\n"


def test_new_variable_is_appended_even_without_final_newline():
    new, value = edit_make_conf("# only a comment", "FEATURES", add=["a", "b", "a"])
    assert new == '# only a comment\nFEATURES="a b"\n' and value == "a b"
    assert edit_make_conf("", "FEATURES", remove=["a"]) == ("", None)
    assert edit_make_conf("", "X", value="") == ('X=""\n', "")


def test_commented_assignment_is_not_touched():
    text = '#FEATURES="old"\nFEATURES="a"\n'
    assert edit_make_conf(text, "FEATURES", add=["b"])[0] == '#FEATURES="old"\nFEATURES="a b"\n'


@pytest.mark.parametrize("kwargs,message", [
    (dict(name="1BAD", value="x"), "not a shell variable name"),
    (dict(name="FEATURES", value="x", add=["y"]), "cannot be combined"),
    (dict(name="FEATURES", add=["two words"]), "has blanks"),
    (dict(name="FEATURES", add=[""]), "is empty"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(InfraError, match=message):
        edit_make_conf(GENTOO_MAKE_CONF, **kwargs)


def test_unterminated_quote_is_refused():
    with pytest.raises(InfraError, match="line 2: double quote is never closed"):
        edit_make_conf('A=1\nFEATURES="a\n', "FEATURES", add=["b"])


def test_dq_escape_round_trip():
    for literal in ("plain", "$x", '"', "\\", "`cmd`", "a\\$b"):
        assert to_dq_form('"%s"' % dq_escape(literal)) == dq_escape(literal)


def test_make_conf_directory_needs_a_file(tmp_path):
    (tmp_path / "etc/portage/make.conf").mkdir(parents=True)
    with pytest.raises(InfraError, match="is a directory"):
        plan_make_conf(dict(root=str(tmp_path), name="FEATURES", add=["x"]))
    plan = plan_make_conf(dict(root=str(tmp_path), path=str(tmp_path / "etc/portage/make.conf/50-x.conf"),
                               name="FEATURES", add=["x"]))
    assert plan.before is None and plan.after == 'FEATURES="x"\n' and plan.make_dirs == []


def test_make_conf_missing_root(tmp_path):
    with pytest.raises(InfraError, match="does not exist or is not a directory"):
        plan_make_conf(dict(root=str(tmp_path / "nope"), name="FEATURES", add=["x"]))


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
    parsed, _ = portage_read(plan.after)
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
    assert plan.after == GENTOO_REPOS_CONF.split("; a local overlay")[0] + "; a local overlay in the same file\n"
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


# --------------------------------------------------------------------------- make.conf read by Portage

@pytest.mark.parametrize("text", ['FEATURES=\nX=1\n', 'FEATURES=', 'FEATURES= # none\nX=1\n', 'A=1 FEATURES= X=2\n'])
def test_make_conf_empty_unquoted_value_is_quoted(tmp_path, text):
    # bash reads FEATURES= as empty, Portage's reader takes the next word as its value.
    new, value = edit_make_conf(text, "FEATURES", value="")
    assert value == "" and new == text.replace("FEATURES=", 'FEATURES=""')
    assert bash_value(new, "FEATURES", tmp_path) == "" == portage_value(new, "FEATURES", tmp_path)
    new, value = edit_make_conf(text, "FEATURES", remove=["absent"])
    assert value == "" and portage_value(new, "FEATURES", tmp_path) == ""
    new, value = edit_make_conf(text, "FEATURES", add=["a", "b"])
    assert value == "a b" and new == text.replace("FEATURES=", 'FEATURES="a b"')
    assert bash_value(new, "FEATURES", tmp_path) == "a b" == portage_value(new, "FEATURES", tmp_path)


@pytest.mark.parametrize("text", ['FEATURES=""\n', "FEATURES=''\n", 'FEATURES=""'])
def test_make_conf_empty_quoted_value(tmp_path, text):
    assert edit_make_conf(text, "FEATURES", value="") == (text, "")
    new, value = edit_make_conf(text, "FEATURES", add=["a"])
    assert value == "a" and new == 'FEATURES="a"' + ("\n" if text.endswith("\n") else "")
    assert bash_value(new, "FEATURES", tmp_path) == "a" == portage_value(new, "FEATURES", tmp_path)


def test_make_conf_trailing_blanks(tmp_path):
    text = 'FEATURES="a b  "   \nMAKEOPTS=-j2 \t\n'
    new, value = edit_make_conf(text, "FEATURES", add=["c"])
    assert new == 'FEATURES="a b c  "   \nMAKEOPTS=-j2 \t\n' and value == "a b c  "
    assert portage_value(new, "FEATURES", tmp_path) == bash_value(new, "FEATURES", tmp_path) == "a b c  "
    assert edit_make_conf(text, "MAKEOPTS", value="-j2")[0] == text
    new, value = edit_make_conf(text, "FEATURES", value="a b")
    assert new == 'FEATURES="a b"   \nMAKEOPTS=-j2 \t\n'
    assert portage_value(new, "FEATURES", tmp_path) == "a b"


def test_make_conf_names_are_case_sensitive(tmp_path):
    # bash and Portage alike: features and FEATURES are two variables.
    text = 'features="a"\nFeatures="b"\n'
    new, value = edit_make_conf(text, "FEATURES", add=["c"])
    assert new == text + 'FEATURES="c"\n' and value == "c"
    assert [portage_value(new, name, tmp_path) for name in ("features", "Features", "FEATURES")] == ["a", "b", "c"]
    assert edit_make_conf(new, "FEATURES", state="absent")[0] == text


@pytest.mark.parametrize("kwargs,expected", [
    (dict(add=["b"]), 'X=1\nFEATURES="a b"'),
    (dict(value="z"), 'X=1\nFEATURES="z"'),
    (dict(remove=["a"]), 'X=1\nFEATURES=""'),
])
def test_make_conf_last_line_without_newline(tmp_path, kwargs, expected):
    new, value = edit_make_conf('X=1\nFEATURES="a"', "FEATURES", **kwargs)
    assert new == expected
    assert portage_value(new, "FEATURES", tmp_path) == bash_value(new, "FEATURES", tmp_path) == value
    new, value = edit_make_conf('FEATURES="a"\nX=1', "X", value="2")
    assert new == 'FEATURES="a"\nX="2"' and portage_value(new, "X", tmp_path) == "2"
    new, value = edit_make_conf('X=1', "FEATURES", add=["a"])
    assert new == 'X=1\nFEATURES="a"\n' and portage_value(new, "FEATURES", tmp_path) == "a"
