"""make.conf editing (module_utils/_make_conf.py): the pure logic, checked against bash and Portage."""
import subprocess

import pytest

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._make_conf import (
    dq_escape,
    edit_make_conf,
    plan_make_conf,
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
    new, dummy = edit_make_conf(GENTOO_MAKE_CONF, "FEATURES", add=["x"])
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
    new, dummy = edit_make_conf(MULTI, "FEATURES", remove=["buildpkg", "-news"])
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
