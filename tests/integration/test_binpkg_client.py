"""The binary package client: portage_binrepos_conf through the ansible CLI, and the
binpkg_client role (``playbooks/binpkg_client.yml``) end to end with real Portage.

End to end, real parts only: a "builder" root unpacked from the test stage builds binary
packages of app-misc/hello and dev-libs/libfoo with real emerge, once unsigned and once signed
(FEATURES=binpkg-signing with an unattended key, ``binpkg_signing.py``); the package
directories are served over HTTP on 127.0.0.1; "client" roots unpacked from the same stage are
configured by the playbook and then install app-misc/hello with ``emerge --getbinpkgonly``.
A copy of the signed directory with one byte of a package changed (and its ``Packages`` digests
made to match, as an attacker serving it would) must be refused. Every chroot command runs in
``unshare --mount --propagation private`` (teststage.in_chroot); the host's mount table is
checked afterwards, and the HTTP servers are shut down.
"""
from __future__ import annotations

import hashlib
import json
import lzma
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest
from ansible_run import run_module, run_playbook, tree_snapshot as tree
from binpkg_signing import SIGNING_AGENT_STOP, install_host_gnupg, prepare_signing_home, signing_make_conf
from httpmirror import HttpMirror
from snapmirror import make_signing_key
from teststage import RELEASE_UID, StageError, build_stage, extract_stage, in_chroot, write_digests
from testkit import mounts_below

MODULE = "gentoo_binhost.infra.portage_binrepos_conf"
PLAYBOOK = "playbooks/binpkg_client.yml"
HELLO = "app-misc/hello/hello-1-1.gpkg.tar"
BUILD = "emerge --color=n --quiet-build=y --oneshot --buildpkgonly dev-libs/libfoo app-misc/hello"
INSTALL = "emerge --color=n --getbinpkgonly --oneshot app-misc/hello"
UNMERGE_HELLO = "emerge --color=n --unmerge app-misc/hello && test ! -e /usr/bin/hello"
GENTOO_BINREPOS = "etc/portage/binrepos.conf/gentoobinhost.conf"
# What catalyst puts into Gentoo's stages; no network here, so a client left with it would fail.
GENTOO_BINREPOS_TEXT = (
    "# These settings were set by the catalyst build script that automatically\n"
    "# built this stage.\n# Please consider using a local mirror.\n\n"
    "[gentoobinhost]\npriority = 1\n"
    "sync-uri = https://distfiles.gentoo.org/releases/amd64/binpackages/23.0/x86-64\n")




# --------------------------------------------------------------------------- the module


def test_module_four_passes_keeps_what_it_does_not_manage(tmp_path):
    conf = tmp_path / "etc/portage/binrepos.conf"
    conf.mkdir(parents=True)
    (conf / "company.conf").write_text("# by hand\n[company]\nsync-uri = http://old.example.org\n"
                                       "getbinpkg-exclude = sys-kernel/gentoo-kernel\n")
    args = {"root": str(tmp_path), "name": "company", "sync_uri": "https://binhost.example.org/desktop",
            "priority": 10, "verify_signature": True, "options": {"frozen": False}}
    before = tree(tmp_path)
    check = run_module(MODULE, args, check=True, diff=True)
    assert check["_rc"] == 0 and check["changed"] is True, check
    assert "+sync-uri = https://binhost.example.org/desktop" in check["_stdout"]
    assert tree(tmp_path) == before, "check mode wrote below %s" % tmp_path
    apply = run_module(MODULE, args)
    assert apply["_rc"] == 0 and apply["changed"] is True, apply
    assert (conf / "company.conf").read_text() == (
        "# by hand\n[company]\nsync-uri = https://binhost.example.org/desktop\n"
        "getbinpkg-exclude = sys-kernel/gentoo-kernel\npriority = 10\nverify-signature = true\nfrozen = false\n")
    assert apply["section"] == {"sync-uri": "https://binhost.example.org/desktop",
                                "getbinpkg-exclude": "sys-kernel/gentoo-kernel", "priority": "10",
                                "verify-signature": "true", "frozen": "false"}
    again = run_module(MODULE, args)
    assert again["_rc"] == 0 and again["changed"] is False, again
    recheck = run_module(MODULE, args, check=True)
    assert recheck["_rc"] == 0 and recheck["changed"] is False, recheck
    gone = run_module(MODULE, {"root": str(tmp_path), "name": "company", "state": "absent"})
    assert gone["changed"] is True and not (conf / "company.conf").exists()


@pytest.mark.parametrize("args, message", [
    ({"name": "a/b", "sync_uri": "http://x"}, "binary repository name 'a/b' is not valid"),
    ({"name": "x", "root": "relative", "sync_uri": "http://x"}, "root 'relative' is not an absolute path"),
    ({"name": "x"}, "state is present but all of the following are missing: sync_uri"),
    ({"name": "x", "sync_uri": "http://x", "options": {"priority": 3}}, "use priority instead of options"),
])
def test_module_refuses_bad_input_and_writes_nothing(tmp_path, args, message):
    args = dict({"root": str(tmp_path)}, **args)
    before = tree(tmp_path)
    result = run_module(MODULE, args)
    assert result["_rc"] != 0 and result.get("failed") is True, result
    assert message in result["msg"], result["msg"]
    assert tree(tmp_path) == before


# --------------------------------------------------------------------------- the role, no chroot


@pytest.fixture
def fake_root():
    """A root with just what the role checks (/usr/bin/gpg), on a short path: gpg-agent's socket
    goes into the keyring directory and socket paths are limited to ~108 characters."""
    base = Path(tempfile.mkdtemp(prefix="bpc-", dir="/tmp"))
    write_inventory(base)
    root = base / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/gpg").touch()
    yield base, root
    subprocess.run(["gpgconf", "--homedir", str(root / "etc/portage/gnupg"), "--kill", "gpg-agent"],
                   capture_output=True, check=False)
    shutil.rmtree(base, ignore_errors=True)


def gpg_colons(home: Path, *args: str) -> str:
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", "--with-colons", *args],
                          capture_output=True, text=True, check=True).stdout


def test_role_reuses_a_keyring_getuto_made(fake_root, signing_key):
    """getuto's keyring (a passphrase-protected local key, the passphrase in ``pass``) is used
    as it is: no second trust key, the binhost key signed with getuto's key."""
    base, root = fake_root
    home = root / "etc/portage/gnupg"
    home.mkdir(parents=True, mode=0o755)
    subprocess.run(["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback", "--passphrase",
                    "s3cret", "--quick-gen-key", "Portage Local Trust Key <portage@localhost>", "ed25519",
                    "cert", "never"], capture_output=True, check=True)
    (home / "pass").write_text("s3cret\n")
    (home / "pass").chmod(0o600)
    anchor = re.findall(r"^fpr:+([0-9A-F]{40}):", gpg_colons(home, "--list-secret-keys"), re.M)
    variables = {"binpkg_client_root": str(root), "binpkg_client_verify_key": str(signing_key.pubkey_path),
                 "binpkg_client_repos": [{"name": "binhost", "sync_uri": "http://127.0.0.1:9/x"}],
                 "binpkg_client_trust_helper": ""}
    four_passes(base, variables)
    assert re.findall(r"^fpr:+([0-9A-F]{40}):", gpg_colons(home, "--list-secret-keys"), re.M) == anchor
    sigs = gpg_colons(home, "--check-sigs", signing_key.fingerprint)
    assert re.search(r"^sig:!::22:%s:" % anchor[0][-16:], sigs, re.M), sigs
    assert gpg_colons(home, "--list-keys", signing_key.fingerprint).split("\npub:", 1)[1].startswith("f:")
    assert 'PORTAGE_TRUST_HELPER=""' in (root / "etc/portage/make.conf").read_text()


@pytest.mark.parametrize("variables, message", [
    ({"binpkg_client_root": "relative/root"}, "binpkg_client_root must be an absolute path"),
    ({"binpkg_client_repos": [{"name": "a", "sync_uri": "http://x"}, {"name": "a", "sync_uri": "http://y"}]},
     "every entry of binpkg_client_repos needs its own name"),
    ({"binpkg_client_verify_key": "{root}/../not-a-key.asc"}, "holds no OpenPGP public key"),
    ({"binpkg_client_verify_key": "{key}", "no_gpg": True}, "has no /usr/bin/gpg"),
    ({"binpkg_client_repos": [{"name": "../x", "sync_uri": "http://x"}]}, "binary repository name '../x' is not valid"),
])
def test_role_refuses_bad_input_and_writes_nothing(fake_root, signing_key, variables, message):
    base, root = fake_root
    (base / "not-a-key.asc").write_text("hello\n")
    if variables.pop("no_gpg", False):
        (root / "usr/bin/gpg").unlink()
    variables = {k: (v.format(root=root, key=signing_key.pubkey_path) if isinstance(v, str) else v)
                 for k, v in variables.items()}
    variables.setdefault("binpkg_client_root", str(root))
    before = tree(root)
    proc, recap = run_client(base, variables)
    assert proc.returncode != 0 and recap["localhost"]["failed"] == 1, proc.stdout[-3000:]
    assert message in proc.stdout, proc.stdout[-3000:]
    assert tree(root) == before


def test_role_refuses_a_stage_over_a_root_it_did_not_unpack(fake_root):
    base, root = fake_root
    stage = build_stage()
    variables = {"binpkg_client_root": str(root),
                 "binpkg_client_stage": {"src": str(stage.tarball), "key": str(stage.pubkey),
                                         "fingerprint": stage.fingerprint}}
    before, beside = tree(root), sorted(p.name for p in base.iterdir())
    proc, recap = run_client(base, variables)
    assert proc.returncode != 0 and recap["localhost"]["failed"] == 1, proc.stdout[-3000:]
    assert "%s is not empty and was not unpacked by this module" % root in proc.stdout, proc.stdout[-3000:]
    assert tree(root) == before and sorted(p.name for p in base.iterdir()) == beside


@pytest.mark.parametrize("root", ["/", "//", "/tmp/.."])
def test_role_refuses_to_unpack_a_stage_onto_the_running_system(tmp_path, root):
    stage = build_stage()
    write_inventory(tmp_path)
    variables = {"binpkg_client_root": root,
                 "binpkg_client_stage": {"src": str(stage.tarball), "key": str(stage.pubkey),
                                         "fingerprint": stage.fingerprint},
                 "binpkg_client_repos": [{"name": "binhost", "sync_uri": "http://127.0.0.1:9/x"}]}
    watched = [Path("/etc/portage"), Path("/var/lib/gentoo-binhost")]

    def host_state():
        return sorted(os.listdir("/")), {str(p): (p.exists() and tree(p)) for p in watched}

    before = host_state()
    for check in (True, False):
        proc, recap = run_client(tmp_path, variables, check=check)
        assert proc.returncode != 0 and recap["localhost"]["failed"] == 1, proc.stdout[-3000:]
        assert ("binpkg_client_stage is set and binpkg_client_root is %s: a stage is never unpacked onto "
                "the running system" % root) in proc.stdout, proc.stdout[-3000:]
        assert "Unpack the stage into the client root" not in proc.stdout, proc.stdout[-3000:]
        assert host_state() == before


# --------------------------------------------------------------------------- end to end


def sh(command: str) -> str:
    return command + SIGNING_AGENT_STOP.replace("{home}", "/etc/portage/gnupg-signing")


def packages_entry(pkgdir: Path, cpv: str) -> dict:
    """The ``Packages`` index stanza of ``cpv``."""
    for stanza in (pkgdir / "Packages").read_text().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line)
        if fields.get("CPV") == cpv:
            return fields
    raise AssertionError("%s not in %s/Packages" % (cpv, pkgdir))


def tamper(signed: Path, target: Path) -> None:
    """A copy of ``signed`` whose hello package has one byte of its image changed; the
    ``Packages`` digests are made to match, so only the signature can tell."""
    shutil.copytree(signed, target)
    (target / "Packages.gz").unlink(missing_ok=True)
    pkg = target / HELLO
    with tarfile.open(pkg) as tar:
        member = tar.getmember("hello-1-1/image.tar.zst")
        offset = member.offset_data + member.size // 2
    data = bytearray(pkg.read_bytes())
    data[offset] ^= 0x01
    pkg.write_bytes(bytes(data))
    good = (signed / HELLO).read_bytes()
    index = (target / "Packages").read_text()
    for algo in ("md5", "sha1"):
        index = index.replace(hashlib.new(algo, good).hexdigest(), hashlib.new(algo, bytes(data)).hexdigest())
    # A new index time stamp too, as a real server would have.
    header, rest = index.split("\n\n", 1)
    stamp = next(line for line in header.splitlines() if line.startswith("TIMESTAMP: "))
    header = header.replace(stamp, "TIMESTAMP: %d" % (int(stamp.split()[1]) + 1))
    (target / "Packages").write_text(header + "\n\n" + rest)


def write_inventory(base: Path) -> None:
    """The group the playbook runs on (``binclient``), as localhost."""
    (base / "inventory.yml").write_text(json.dumps({"all": {
        "hosts": {"localhost": {"ansible_connection": "local",
                                "ansible_python_interpreter": "{{ ansible_playbook_python }}"}},
        "children": {"binclient": {"hosts": {"localhost": {}}}}}}))


def run_client(base: Path, extra_vars: dict, check: bool = False):
    return run_playbook(PLAYBOOK, extra_vars, check=check, env={"ANSIBLE_INVENTORY": str(base / "inventory.yml")})


def four_passes(base: Path, extra_vars: dict, after_check=None) -> dict:
    """check, apply, apply, check; ``after_check()`` runs right after the first check pass."""
    passes = {}
    for name, check in (("check", True), ("apply", False), ("again", False), ("recheck", True)):
        proc, recap = run_client(base, extra_vars, check=check)
        assert proc.returncode == 0 and recap["localhost"]["failed"] == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
        passes[name] = recap["localhost"]
        if name == "check" and after_check is not None:
            after_check()
    assert passes["check"]["changed"] > 0 and passes["apply"]["changed"] > 0, passes
    assert passes["again"]["changed"] == 0 and passes["recheck"]["changed"] == 0, passes
    return passes


@pytest.fixture(scope="module")
def binhost():
    """Unsigned and signed package directories built in a builder root, served on 127.0.0.1."""
    stage = build_stage()
    base = Path(tempfile.mkdtemp(prefix="binpkg-client-", dir="/tmp"))
    write_inventory(base)
    servers = []
    key = None
    try:
        builder = extract_stage(stage.tarball, base / "builder")
        install_host_gnupg(builder)
        pkgdir = builder / "var/cache/binpkgs"
        in_chroot(builder, BUILD)
        srv = base / "srv"
        shutil.copytree(pkgdir, srv / "unsigned")
        shutil.rmtree(pkgdir)
        pkgdir.mkdir()
        key = prepare_signing_home(builder)
        # Portage verifies the package it has just written with the *verification* keyring:
        # the builder must trust its own key there, the way clients do (the role does it).
        proc, recap = run_client(base, {"binpkg_client_root": str(builder), "binpkg_client_manage_features": False,
                                        "binpkg_client_verify_key": str(key.pubkey_path)})
        assert proc.returncode == 0, proc.stdout[-4000:]
        with open(builder / "etc/portage/make.conf", "a") as make_conf:
            make_conf.write(signing_make_conf(key))
        build = in_chroot(builder, sh(BUILD))
        assert "Unlocking GnuPG" in build.stdout
        shutil.copytree(pkgdir, srv / "signed")
        tamper(srv / "signed", srv / "tampered")
        # One server, one path per package directory: Portage keeps its copy of a remote index
        # per host name and URL path (not port), so two servers on 127.0.0.1 would share it.
        server = HttpMirror(srv).start()
        servers.append(server)
        yield {"base": base, "stage": stage, "key": key, "server": server,
               "urls": {name: "%s/%s" % (server.url, name) for name in ("unsigned", "signed", "tampered")},
               "dirs": {name: srv / name for name in ("unsigned", "signed", "tampered")}}
    finally:
        for server in servers:
            server.stop()
        if key is not None:
            key.stop_agent()
        left = mounts_below(base)
        shutil.rmtree(base, ignore_errors=True)
        assert left == [], "mounts left behind: %s" % left


def tar_member(name: str, data: bytes | None = None, mode: int = 0o644) -> bytes:
    """One tar member (header and padded data), without the end-of-archive blocks."""
    info = tarfile.TarInfo(name)
    info.mode, info.mtime = mode, 1795000000
    if data is None:
        info.type, data = tarfile.DIRTYPE, b""
    info.size = len(data)
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape") + data + b"\0" * (-len(data) % 512)


@pytest.fixture(scope="module")
def gentoo_like_stage(binhost):
    """The test stage with Gentoo's ``binrepos.conf/gentoobinhost.conf`` added, signed anew.

    The test stage has no binrepos.conf. Recompressing its 256 MB of tar took 17 s here; an xz
    file may hold several streams that decompress as one, so the two new members go into a
    small stream (no end-of-archive blocks) put before the stage's own, unchanged stream:
    ``xz -dc`` gives one tar archive that starts with them. Its DIGESTS (clearsigned) and
    detached signature are made with a throwaway key whose public half the role is given.
    """
    stage = binhost["stage"]
    out = binhost["base"] / "gentoo-like-stage"
    out.mkdir()
    tarball = out / stage.tarball.name
    members = (tar_member("./etc/portage/binrepos.conf/", mode=0o755)
               + tar_member("./" + GENTOO_BINREPOS, GENTOO_BINREPOS_TEXT.encode()))
    head = subprocess.run(["xz", "-c"], input=members, capture_output=True, check=True).stdout
    with open(tarball, "wb") as dest, open(stage.tarball, "rb") as src:
        dest.write(head)
        shutil.copyfileobj(src, dest, 1 << 20)
    with lzma.open(tarball) as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        dirs = []
        for member in tar:
            if member.isfile():
                text = tar.extractfile(member).read().decode()
                break
            dirs.append(member.name)
    assert (dirs, member.name, text) == (["./etc/portage/binrepos.conf"], "./" + GENTOO_BINREPOS, GENTOO_BINREPOS_TEXT)
    digests = write_digests(tarball)
    with make_signing_key(uid=RELEASE_UID) as key:
        subprocess.run(["gpg", "--homedir", str(key.gnupghome), "--batch", "--yes", "--local-user",
                        key.fingerprint + "!", "--clearsign", "--output", str(digests) + ".signed",
                        str(digests)], capture_output=True, check=True)
        os.replace(str(digests) + ".signed", digests)
        key.sign(tarball, tarball.with_name(tarball.name + ".asc"))
        pubkey = shutil.copyfile(key.pubkey_path, out / "signing-key.asc")
        fingerprint = key.fingerprint
    return {"stage": {"src": str(tarball), "key": str(pubkey), "fingerprint": fingerprint},
            "sha512": hashlib.sha512(tarball.read_bytes()).hexdigest()}


def new_client(binhost, name: str) -> Path:
    client = extract_stage(binhost["stage"].tarball, binhost["base"] / name)
    # Start from a client that does not have hello: what emerge installs then comes from the binhost.
    in_chroot(client, UNMERGE_HELLO)
    return client


def assert_installed_from(client: Path, served: Path, repo: str) -> None:
    entry = packages_entry(served, "app-misc/hello-1")
    vdb = client / "var/db/pkg/app-misc/hello-1"
    assert (vdb / "BINPKGMD5").read_text().strip() == entry["MD5"]
    assert (vdb / "BUILD_ID").read_text().strip() == entry["BUILD_ID"]
    fetched = client / "var/cache/binhost" / repo / HELLO
    assert fetched.read_bytes() == (served / HELLO).read_bytes()
    assert (client / "usr/bin/hello").exists() and (client / "usr/share/hello/README").exists()
    run = in_chroot(client, "hello")
    assert run.stdout.strip() == "hello 1 (libfoo 1.0)"


def test_unsigned_binhost(binhost):
    client = new_client(binhost, "client-unsigned")
    url = binhost["urls"]["unsigned"]
    repos = [{"name": "local", "sync_uri": url, "priority": 10}]
    four_passes(binhost["base"], {"binpkg_client_root": str(client), "binpkg_client_repos": repos})
    assert (client / "etc/portage/binrepos.conf/local.conf").read_text() == (
        "[local]\nsync-uri = %s\npriority = 10\nverify-signature = false\n" % url)
    assert 'FEATURES="getbinpkg"' in (client / "etc/portage/make.conf").read_text()
    assert not (client / "etc/portage/gnupg").exists()
    in_chroot(client, INSTALL)
    requests = binhost["server"].requests
    assert "/unsigned/Packages" in requests or "/unsigned/Packages.gz" in requests
    assert "/unsigned/" + HELLO in requests
    assert_installed_from(client, binhost["dirs"]["unsigned"], "local")
    assert mounts_below(client) == []


def switch_repos(binhost, variables, repos):
    """Rerun the playbook with other repositories; the binrepos task is the one change."""
    variables["binpkg_client_repos"] = repos
    proc, recap = run_client(binhost["base"], variables)
    assert proc.returncode == 0 and recap["localhost"]["changed"] == 1, proc.stdout[-4000:]


def refused(client, command=INSTALL) -> str:
    with pytest.raises(StageError) as failure:
        in_chroot(client, command)
    return str(failure.value)


def test_signed_binhost_tampered_unsigned_and_untrusted(binhost):
    client = new_client(binhost, "client-signed")
    install_host_gnupg(client)
    urls, dirs, key = binhost["urls"], binhost["dirs"], binhost["key"]
    variables = {"binpkg_client_root": str(client), "binpkg_client_verify_key": str(key.pubkey_path),
                 "binpkg_client_repos": [{"name": "binhost", "sync_uri": urls["signed"]}]}
    four_passes(binhost["base"], variables)
    conf = (client / "etc/portage/binrepos.conf/binhost.conf").read_text()
    assert conf == "[binhost]\nsync-uri = %s\nverify-signature = true\n" % urls["signed"]
    home = client / "etc/portage/gnupg"
    assert stat.S_IMODE(home.stat().st_mode) == 0o755
    assert stat.S_IMODE((home / "trustdb.gpg").stat().st_mode) == 0o644
    listing = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--with-colons", "--list-keys",
                              key.fingerprint], capture_output=True, text=True, check=True).stdout
    assert listing.split("\npub:", 1)[1].startswith("f:"), listing  # fully valid, not ultimate
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)

    in_chroot(client, INSTALL)
    assert "/signed/" + HELLO in binhost["server"].requests
    assert_installed_from(client, dirs["signed"], "binhost")
    good_md5 = packages_entry(dirs["signed"], "app-misc/hello-1")["MD5"]
    vdb_md5 = client / "var/db/pkg/app-misc/hello-1/BINPKGMD5"

    # A server whose package was altered after signing (its index made to match).
    switch_repos(binhost, variables, [{"name": "binhost", "state": "absent"},
                                      {"name": "tampered", "sync_uri": urls["tampered"]}])
    assert not (client / "etc/portage/binrepos.conf/binhost.conf").exists()
    err = refused(client)
    assert "Binary package is not usable (verification failed)" in err, err[-3000:]
    assert "[GNUPG:] BADSIG" in err and "GnuPG verification failed" in err, err[-3000:]
    assert "/tampered/" + HELLO in binhost["server"].requests
    assert vdb_md5.read_text().strip() == good_md5  # nothing of it was installed

    # A server with unsigned packages, while the client requires signatures: Portage takes the
    # gpkg from the index (only XPAK packages are dropped there), fetches it and refuses it when
    # gpg finds no signature on its Manifest.
    switch_repos(binhost, variables, [{"name": "tampered", "state": "absent"},
                                      {"name": "unsigned", "sync_uri": urls["unsigned"]}])
    err = refused(client)
    assert "binpkg appears unsigned (missing any signature)" in err, err[-3000:]
    assert "/unsigned/" + HELLO in binhost["server"].requests
    assert vdb_md5.read_text().strip() == good_md5

    # Why the role signs the key locally: imported alone it is "of undefined trust", refused.
    switch_repos(binhost, variables, [{"name": "unsigned", "state": "absent"},
                                      {"name": "binhost", "sync_uri": urls["signed"]}])
    plain = client / "etc/portage/gnupg-imported-only"
    plain.mkdir(mode=0o755)
    subprocess.run(["gpg", "--homedir", str(plain), "--batch", "--import", str(key.pubkey_path)],
                   capture_output=True, check=True)
    (plain / "trustdb.gpg").chmod(0o644)
    err = refused(client, "BINPKG_GPG_VERIFY_GPG_HOME=/etc/portage/gnupg-imported-only " + INSTALL)
    assert "binpkg signed with a known key of undefined trust" in err, err[-3000:]
    assert mounts_below(client) == []


def test_role_unpacks_a_stage_and_keeps_only_the_configured_binhost(binhost, gentoo_like_stage):
    """binpkg_client_stage: a fresh root unpacked from a verified stage that ships Gentoo's
    binrepos.conf entry; afterwards only the configured (signed) binhost is left, and real
    emerge installs from it with Portage's signature verification on."""
    client = binhost["base"] / "client-from-stage"
    url, key = binhost["urls"]["signed"], binhost["key"]
    stage = gentoo_like_stage["stage"]
    variables = {"binpkg_client_root": str(client), "binpkg_client_stage": stage,
                 "binpkg_client_verify_key": str(key.pubkey_path),
                 "binpkg_client_repos": [{"name": "binhost", "sync_uri": url}]}

    def nothing_unpacked_by_check_mode():
        assert not client.exists()
        assert sorted(p.name for p in binhost["base"].iterdir() if p.name.startswith(".client-from-stage")) == []

    four_passes(binhost["base"], variables, after_check=nothing_unpacked_by_check_mode)
    marker = json.loads((client / "var/lib/gentoo-binhost/stage.json").read_text())
    assert marker["stage"] == Path(stage["src"]).name and marker["sha512"] == gentoo_like_stage["sha512"]
    assert marker["signed_by"] == stage["fingerprint"]
    assert (client / "usr/bin/emerge").exists() and (client / "var/db/pkg/app-misc/hello-1").is_dir()
    assert not (client / GENTOO_BINREPOS).exists()
    assert sorted(os.listdir(client / "etc/portage/binrepos.conf")) == ["binhost.conf"]
    assert (client / "etc/portage/binrepos.conf/binhost.conf").read_text() == (
        "[binhost]\nsync-uri = %s\nverify-signature = true\n" % url)
    subprocess.run(["gpgconf", "--homedir", str(client / "etc/portage/gnupg"), "--kill", "gpg-agent"], check=False)

    in_chroot(client, UNMERGE_HELLO)
    seen = len(binhost["server"].requests)
    in_chroot(client, INSTALL)
    assert "/signed/" + HELLO in binhost["server"].requests[seen:]
    assert_installed_from(client, binhost["dirs"]["signed"], "binhost")
    assert mounts_below(client) == []
