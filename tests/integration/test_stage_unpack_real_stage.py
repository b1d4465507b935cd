"""stage_unpack on the real test stage (Debian userland + real Portage), then Portage runs in it."""
import hashlib
import subprocess

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


def test_own_stage4_in_zstd_pinned_and_signed_by_own_key_runs_portage(tmp_path, signing_key):
    """A stage4 of one's own: no DIGESTS, zstd instead of xz, vouched for by a SHA-512 pin and a
    detached signature by the admin's key."""
    stage = build_stage()
    stage4 = tmp_path / "stage4-base-own.tar.zst"
    with stage4.open("wb") as out:
        xz = subprocess.Popen(["xz", "-dc", str(stage.tarball)], stdout=subprocess.PIPE)
        subprocess.run(["zstd", "-q", "-3", "-c"], stdin=xz.stdout, stdout=out, check=True)
        assert xz.wait() == 0
    signature = signing_key.sign(stage4, signature=tmp_path / (stage4.name + ".asc"))
    pin = hashlib.sha512(stage4.read_bytes()).hexdigest()
    dest = tmp_path / "chroots" / "own"
    args = {"src": str(stage4), "dest": str(dest), "sha512": pin, "signature": str(signature),
            "key": str(signing_key.pubkey_path), "fingerprint": signing_key.fingerprint,
            "remove_binrepos_conf": True}
    result = unpack_stage(args)
    assert result["changed"] is True and result["sha512"] == pin
    assert result["signed_by"] == signing_key.fingerprint
    out = in_chroot(dest, "emerge --version && ls /var/db/pkg/*/")
    assert "Portage 3.0.83" in out.stdout and "hello-1" in out.stdout
    assert unpack_stage(args)["changed"] is False
    assert sorted(p.name for p in (tmp_path / "chroots").iterdir()) == ["own"]
