"""binrepos.conf editing (module_utils/_binrepos.py), read back by Portage's own BinRepoConfigLoader."""
import os

import pytest
from portage.binrepo.config import BinRepoConfigLoader

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._binrepos import plan_binrepo_conf
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._common import InfraError
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._root_files import write_plan

# What Portage's settings give the loader for a root it runs in (PORTAGE_CONFIGROOT=/).
SETTINGS = {"EPREFIX": "", "EROOT": "/", "PORTAGE_CONFIGROOT": "/", "ROOT": "/"}

HAND_WRITTEN = """\
# Our binhost, set up by hand
[DEFAULT]
frozen = no

[company]
# the fast mirror
sync-uri = https://old.example.org/desktop
priority = 5
verify-signature = yes
getbinpkg-exclude = sys-kernel/gentoo-kernel
fetchcommand = wget -t 3 -T 60 -O "${DISTDIR}/${FILE}" "${URI}"
"""


def portage_reads(root, name=None):
    """The binary repositories Portage's loader finds in ``<root>/etc/portage/binrepos.conf``."""
    repos = BinRepoConfigLoader([os.path.join(str(root), "etc/portage/binrepos.conf")], SETTINGS)
    found = {key: {"sync_uri": r.sync_uri, "priority": r.priority, "verify_signature": r.verify_signature,
                   "location": r.location, "frozen": r.frozen} for key, r in repos.items()}
    return found if name is None else found[name]


def write(plan):
    """Carry the plan out as the modules do, without Ansible's file attributes."""
    write_plan(plan)
    return plan


def params(root_dir, **kw):
    base = {"root": str(root_dir), "name": "company", "sync_uri": "https://binhost.example.org/desktop",
            "priority": None, "location": None, "verify_signature": None, "options": None, "state": "present"}
    base.update(kw)
    return base


def test_new_repository_is_what_portage_reads(tmp_path):
    plan = write(plan_binrepo_conf(params(tmp_path, priority=10, verify_signature=True,
                                          options={"getbinpkg_exclude": "sys-kernel/gentoo-kernel"})))
    assert plan.path == str(tmp_path / "etc/portage/binrepos.conf/company.conf")
    assert plan.make_dirs == [str(tmp_path / "etc"), str(tmp_path / "etc/portage"),
                              str(tmp_path / "etc/portage/binrepos.conf")]
    assert plan.after == ("[company]\nsync-uri = https://binhost.example.org/desktop\npriority = 10\n"
                          "verify-signature = true\ngetbinpkg-exclude = sys-kernel/gentoo-kernel\n")
    assert plan.result["section"] == {"sync-uri": "https://binhost.example.org/desktop", "priority": "10",
                                      "verify-signature": "true",
                                      "getbinpkg-exclude": "sys-kernel/gentoo-kernel"}
    assert portage_reads(tmp_path, "company") == {
        "sync_uri": "https://binhost.example.org/desktop", "priority": 10, "verify_signature": True,
        "location": "/var/cache/binhost/company", "frozen": False}
    again = plan_binrepo_conf(params(tmp_path, priority=10, verify_signature=True,
                                     options={"getbinpkg_exclude": "sys-kernel/gentoo-kernel"}))
    assert not again.changed


def test_hand_written_file_keeps_comments_and_unmanaged_keys(tmp_path):
    conf = tmp_path / "etc/portage/binrepos.conf"
    conf.mkdir(parents=True)
    (conf / "company.conf").write_text(HAND_WRITTEN)
    # verify-signature = yes already means true: left as written; sync-uri changes in place.
    plan = write(plan_binrepo_conf(params(tmp_path, verify_signature=True, location="/var/cache/binhost/co")))
    assert plan.after == HAND_WRITTEN.replace("https://old.example.org/desktop", "https://binhost.example.org/desktop") \
        + "location = /var/cache/binhost/co\n"
    got = portage_reads(tmp_path, "company")
    assert got["sync_uri"] == "https://binhost.example.org/desktop" and got["priority"] == 5
    assert got["verify_signature"] is True and got["location"] == "/var/cache/binhost/co"
    # false is a change; a null option removes the key, the others stay.
    plan = write(plan_binrepo_conf(params(tmp_path, verify_signature=False, options={"fetchcommand": None})))
    assert "verify-signature = false\n" in plan.after and "fetchcommand" not in plan.after
    assert "# the fast mirror\n" in plan.after and "getbinpkg-exclude = sys-kernel/gentoo-kernel\n" in plan.after
    assert portage_reads(tmp_path, "company")["verify_signature"] is False


def test_percent_is_escaped_and_interpolation_of_portage_defaults_is_understood(tmp_path):
    conf = tmp_path / "etc/portage/binrepos.conf"
    conf.mkdir(parents=True)
    (conf / "company.conf").write_text("[company]\nsync-uri = https://b.example.org/x\n"
                                       "location = %(EPREFIX)s/var/cache/binhost/company\n")
    plan = write(plan_binrepo_conf(params(tmp_path, sync_uri="https://b.example.org/a%20b")))
    assert "sync-uri = https://b.example.org/a%%20b\n" in plan.after
    assert "location = %(EPREFIX)s/var/cache/binhost/company\n" in plan.after
    assert plan.result["section"]["location"] == "/var/cache/binhost/company"
    assert portage_reads(tmp_path, "company")["sync_uri"] == "https://b.example.org/a%20b"


def test_single_file_binrepos_conf_is_edited_in_place(tmp_path):
    (tmp_path / "etc/portage").mkdir(parents=True)
    single = tmp_path / "etc/portage/binrepos.conf"
    single.write_text("# one file for all\n[gentoobinhost]\npriority = 1\nsync-uri = https://distfiles.gentoo.org/x\n")
    plan = write(plan_binrepo_conf(params(tmp_path, verify_signature=False)))
    assert plan.path == str(single) and single.is_file()
    assert set(portage_reads(tmp_path)) == {"gentoobinhost", "company"}
    plan = write(plan_binrepo_conf(params(tmp_path, state="absent")))
    assert single.read_text() == "# one file for all\n[gentoobinhost]\npriority = 1\nsync-uri = https://distfiles.gentoo.org/x\n"
    # The last section gone: the single file stays (Portage's layout is the user's choice).
    write(plan_binrepo_conf(params(tmp_path, name="gentoobinhost", state="absent")))
    assert single.read_text() == "# one file for all\n"


def test_absent_removes_the_file_it_emptied_and_is_a_no_op_after(tmp_path):
    write(plan_binrepo_conf(params(tmp_path)))
    path = tmp_path / "etc/portage/binrepos.conf/company.conf"
    plan = write(plan_binrepo_conf(params(tmp_path, state="absent", sync_uri=None)))
    assert plan.changed and plan.after is None and not path.exists()
    assert not plan_binrepo_conf(params(tmp_path, state="absent", sync_uri=None)).changed
    assert portage_reads(tmp_path) == {}


@pytest.mark.parametrize("kw, message", [
    ({"name": "../evil"}, "binary repository name '../evil' is not valid"),
    ({"name": "DEFAULT"}, "binary repository name 'DEFAULT' is not valid"),
    ({"name": "-x"}, "binary repository name '-x' is not valid"),
    ({"root": "relative/root"}, "root 'relative/root' is not an absolute path"),
    ({"options": {"sync_uri": "x"}}, "options key 'sync_uri' has its own module option; use sync_uri"),
    ({"options": {"Verify-Signature": True}}, "use verify_signature instead of options"),
    ({"options": {"bad key": "x"}}, "is not a binrepos.conf key name"),
    ({"options": {"getbinpkg-include": ["a", "b"]}}, "has a list value"),
    ({"sync_uri": "http://x\n[evil]"}, "has a line break or surrounding blanks"),
    ({"sync_uri": ""}, "sync_uri is empty"),
    ({"sync_uri": None}, "would have no sync-uri"),
])
def test_bad_input_is_refused_with_nothing_written(tmp_path, kw, message):
    with pytest.raises(InfraError, match=message.replace("(", r"\(").replace(".", r"\.").replace("[", r"\[")):
        plan_binrepo_conf(params(tmp_path, **kw))
    assert list(tmp_path.iterdir()) == []


def test_root_that_is_not_a_directory_and_broken_layouts_are_refused(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(InfraError, match="does not exist or is not a directory"):
        plan_binrepo_conf(params(afile))
    with pytest.raises(InfraError, match="does not exist or is not a directory"):
        plan_binrepo_conf(params(tmp_path / "missing"))
    (tmp_path / "etc/portage").mkdir(parents=True)
    (tmp_path / "etc/portage/binrepos.conf").symlink_to("nowhere")
    with pytest.raises(InfraError, match="neither a file nor a directory"):
        plan_binrepo_conf(params(tmp_path))
    (tmp_path / "etc/portage/binrepos.conf").unlink()
    (tmp_path / "etc/portage/binrepos.conf").mkdir()
    broken = tmp_path / "etc/portage/binrepos.conf/company.conf"
    broken.write_text("[company]\nsync-uri = http://a/%zz\n")
    with pytest.raises(InfraError, match="cannot be read by Portage's binrepos.conf parser"):
        plan_binrepo_conf(params(tmp_path))
    assert broken.read_text() == "[company]\nsync-uri = http://a/%zz\n"


def hand_file(root_dir, text):
    conf = root_dir / "etc/portage/binrepos.conf"
    conf.mkdir(parents=True)
    (conf / "company.conf").write_text(text)
    return conf / "company.conf"


@pytest.mark.parametrize("empty", ["sync-uri =\npriority =\n", "sync-uri:\npriority:  \n", "sync-uri=\npriority=",
                                   "priority = \t\nsync-uri ="])
def test_empty_values_get_the_value_in_place(tmp_path, empty):
    hand_file(tmp_path, "# stage\n[company]\n" + empty)
    plan = write(plan_binrepo_conf(params(tmp_path, priority=3)))
    assert len(plan.after.splitlines()) == 4 and plan.after.startswith("# stage\n[company]\n")
    got = portage_reads(tmp_path, "company")
    assert (got["sync_uri"], got["priority"]) == ("https://binhost.example.org/desktop", 3)
    assert not plan_binrepo_conf(params(tmp_path, priority=3)).changed


def test_empty_verify_signature_is_false_to_portage_and_gets_the_value(tmp_path):
    path = hand_file(tmp_path, "[company]\nsync-uri = https://binhost.example.org/desktop\nverify-signature =\n")
    assert portage_reads(tmp_path, "company")["verify_signature"] is False
    write(plan_binrepo_conf(params(tmp_path, verify_signature=True)))
    assert path.read_text() == "[company]\nsync-uri = https://binhost.example.org/desktop\nverify-signature = true\n"
    assert portage_reads(tmp_path, "company")["verify_signature"] is True


def test_trailing_blanks_are_no_change(tmp_path):
    hand_file(tmp_path, "[company]\nsync-uri = https://binhost.example.org/desktop  \t\npriority = 4 \n")
    assert portage_reads(tmp_path, "company")["sync_uri"] == "https://binhost.example.org/desktop"
    assert not plan_binrepo_conf(params(tmp_path, priority=4)).changed


def test_underscore_spelling_is_replaced_not_doubled(tmp_path):
    # BinRepoConfig reads opts.get("sync-uri"): "sync_uri" is ignored, and the section with it.
    path = hand_file(tmp_path, "[company]\nsync_uri = https://old.example.org\nVerify_Signature = false\n"
                               "priority = 1\n")
    assert portage_reads(tmp_path) == {}
    write(plan_binrepo_conf(params(tmp_path, verify_signature=True)))
    assert path.read_text() == ("[company]\nsync-uri = https://binhost.example.org/desktop\n"
                                "Verify-Signature = true\npriority = 1\n")
    got = portage_reads(tmp_path, "company")
    assert (got["sync_uri"], got["verify_signature"], got["priority"]) == \
        ("https://binhost.example.org/desktop", True, 1)
    assert not plan_binrepo_conf(params(tmp_path, verify_signature=True)).changed


def test_other_case_is_the_same_key(tmp_path):
    path = hand_file(tmp_path, "[company]\nSYNC-URI = https://old.example.org\nVerify-Signature = No\n")
    write(plan_binrepo_conf(params(tmp_path, verify_signature=True)))
    assert path.read_text() == "[company]\nSYNC-URI = https://binhost.example.org/desktop\nVerify-Signature = true\n"
    assert portage_reads(tmp_path, "company")["verify_signature"] is True


@pytest.mark.parametrize("text", ["[company]\nsync-uri = https://old.example.org", "[company]\npriority = 1\nsync-uri =",
                                  "[company]"])
def test_section_at_the_end_without_final_newline(tmp_path, text):
    hand_file(tmp_path, text)
    plan = write(plan_binrepo_conf(params(tmp_path, location="/var/cache/binhost/co")))
    assert plan.after.startswith(text.split("sync-uri")[0])
    got = portage_reads(tmp_path, "company")
    assert (got["sync_uri"], got["location"]) == ("https://binhost.example.org/desktop", "/var/cache/binhost/co")
