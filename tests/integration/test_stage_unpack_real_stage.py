"""stage_unpack on the real test stage (Debian userland + real Portage), then Portage runs in it."""

from teststage import build_stage, in_chroot

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._stage import MARKER, unpack_stage


def test_unpacked_test_stage_runs_portage(tmp_path):
    stage = build_stage()
    dest = tmp_path / "chroots" / "base"
    result = unpack_stage({
        "src": str(stage.tarball), "dest": str(dest), "key": str(stage.pubkey),
        "fingerprint": stage.fingerprint, "remove_binrepos_conf": True,
    })
    assert result["changed"] is True and result["signed_by"] == stage.fingerprint
    assert (dest / MARKER).is_file()
    repo = (dest / "var/db/repos/gentoo").stat()
    assert (repo.st_uid, repo.st_gid) == (250, 250), "numeric owners kept"
    out = in_chroot(dest, "emerge --version && portageq envvar FEATURES && ls /var/db/pkg/*/")
    assert "Portage 3.0.83" in out.stdout
    assert "hello-1" in out.stdout and "envprobe-1" in out.stdout
    again = unpack_stage({"src": str(stage.tarball), "dest": str(dest), "key": str(stage.pubkey),
                          "fingerprint": stage.fingerprint, "remove_binrepos_conf": True})
    assert again["changed"] is False
    assert sorted(p.name for p in (tmp_path / "chroots").iterdir()) == ["base"]
