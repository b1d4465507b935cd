"""The binpkg_server role end to end: build, publish, serve, switch, roll back.

Real parts only: the mirror_server role serves a signed snapshot of the test stage's
repository; ``ansible-playbook playbooks/build_chroot.yml playbooks/binpkg_server.yml`` (one
run, so the server publishes what the build host built) rebuilds a chroot from the real test
stage with real Portage and publishes its PKGDIR as a generation served by nginx on a free
loopback port. Clients here are HTTP readers that do what Portage's binhost client does (read
``Packages``, then fetch ``URI``/``PATH``); tests/integration/test_binpkg_client.py runs real
``emerge --getbinpkgonly`` against such a server. Servers are stopped by their PIDs.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import struct
import time
import urllib.error
import urllib.request
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ansible_run import ROOT, run_module, run_playbook
from buildenv import ServedMirror, run_build
from mirrorprocs import free_port, read_pid, terminate
from pkgdir import make_pkgdir
from publishing import PKGS, tree
from snapmirror import GENTOO_UID, make_signing_key
from stage_repo import WORLD, stage_repo_tree
from teststage import build_stage, in_chroot
from testkit import COLLECTIONS_PATH, explain, mounts_below, remove_unless_mounted

TAG = "2025-01-06"
STACK = "stack1"
BUILT = sorted(WORLD + ["dev-libs/libfoo"])
BUILD_AND_PUBLISH = ["playbooks/build_chroot.yml", "playbooks/binpkg_server.yml"]


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def parse_index(text: str) -> tuple[dict, list[dict]]:
    blocks = [dict(line.split(": ", 1) if ": " in line else (line.rstrip(":"), "")
                   for line in block.splitlines()) for block in text.strip().split("\n\n")]
    return blocks[0], blocks[1:]


@dataclass
class Binhost:
    root: Path
    mirror: ServedMirror
    server_vars: dict
    build_vars: dict
    port: int
    runs: dict = field(default_factory=dict)
    first_generation: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stack(self) -> Path:
        return self.root / "binpkgs" / STACK

    @property
    def pkgdir(self) -> Path:
        return self.root / "chroots" / STACK / "var/cache/binpkgs"

    def last_build(self, name: str = STACK) -> Path:
        """The directory of the chroot's last recorded build (what the server publishes)."""
        records = self.root / "builds" / name
        return records / os.readlink(records / "last")

    def current(self) -> str:
        return os.readlink(self.stack / "current").split("/")[-1]

    def manifest(self, generation: str | None = None) -> dict:
        return json.loads((self.stack / "generations" / (generation or self.current()) / "manifest.json").read_text())

    def server_playbook(self, **extra) -> tuple[subprocess.CompletedProcess, dict]:
        proc, recap = run_playbook("playbooks/binpkg_server.yml", {**self.server_vars, **extra})
        return proc, recap.get("localhost", {})


@contextmanager
def server_root(prefix: str, searchable: bool = True):
    """A fresh directory below /tmp and the binpkg_server variables of a server that keeps
    everything below it, on a free loopback port. Afterwards the server is stopped (by the
    role, then by its PID should the role fail) and the directory removed."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    if searchable:
        root.chmod(0o755)  # nginx's workers run as www-data
    server_vars = {
        "binpkg_server_base_dir": str(root / "binpkgs"),
        "binpkg_server_conf_dir": str(root / "binhost/conf"),
        "binpkg_server_run_dir": str(root / "binhost/run"),
        "binpkg_server_log_dir": str(root / "binhost/log"),
        "binpkg_server_port": free_port(),
        "binpkg_server_install_packages": False,
    }
    try:
        yield root, server_vars
    finally:
        try:
            if searchable:
                run_playbook("playbooks/binpkg_server.yml", {**server_vars, "binpkg_server_service_state": "stopped"})
        finally:
            pid = read_pid(root / "binhost/run/binhost-nginx.pid")
            if pid:
                terminate({(pid, "nginx")})
            remove_unless_mounted(root)


@pytest.fixture(scope="module")
def binhost():
    stage = build_stage()
    with server_root("binhost-") as (root, server_vars), make_signing_key(uid=GENTOO_UID) as key, \
            ServedMirror(root, key, [("20250106", stage_repo_tree(0))]) as mirror:
        server_vars["binpkg_server_keep"] = 3
        chroot = {"name": STACK, "snapshot": TAG,
                  "stage": {"src": str(stage.tarball), "key": str(stage.pubkey), "fingerprint": stage.fingerprint}}
        state = Binhost(root=root, mirror=mirror, server_vars=server_vars, port=server_vars["binpkg_server_port"],
                        build_vars=mirror.build_vars([chroot]))
        state.runs["first"] = run_build({**state.build_vars, **server_vars}, playbook=BUILD_AND_PUBLISH)
        if state.runs["first"][0].returncode == 0:
            state.first_generation = state.current()
        yield state


def test_the_build_is_published_as_a_generation_served_by_nginx(binhost):
    proc, recap = binhost.runs["first"]
    assert proc.returncode == 0 and recap["failed"] == 0, explain(proc)
    assert f"{STACK}: generation {binhost.first_generation}, sync-uri {binhost.url}/{STACK}/current" in proc.stdout
    header, entries = parse_index(http_get(f"{binhost.url}/{STACK}/current/Packages").decode())
    assert header["URI"] == f"{binhost.url}/{STACK}/generations/{binhost.first_generation}"
    assert {re.sub(r"-[0-9][^/]*$", "", e["CPV"]) for e in entries} == set(BUILT)
    for entry in entries:
        data = http_get(f"{header['URI']}/{entry['PATH']}")
        assert len(data) == int(entry["SIZE"]), entry["CPV"]
    # Hidden: the lock file and anything being published.
    with pytest.raises(urllib.error.HTTPError) as denied:
        http_get(f"{binhost.url}/{STACK}/.lock")
    assert denied.value.code == 403


def test_manifest_records_the_provenance(binhost):
    manifest = binhost.manifest(binhost.first_generation)
    tag_commit = subprocess.run(["git", "--git-dir", str(binhost.mirror.bare_repo), "rev-parse", f"{TAG}^{{commit}}"],
                                capture_output=True, text=True, check=True).stdout.strip()
    prov = manifest["provenance"]
    assert prov["snapshot"] == {"tag": TAG, "commit": tag_commit, "mirror": binhost.mirror.git_url}
    assert prov["portage_version"] == "3.0.83"
    assert prov["built_on"] == "localhost" and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", prov["built_at"])
    stage = build_stage()
    digests = stage.digests.read_text()
    assert prov["stage"]["file"] == str(stage.tarball) and prov["stage"]["sha512"] in digests
    assert 'FEATURES="' in prov["make_conf"] and "buildpkg" in prov["make_conf"]
    assert f"sync-uri = {binhost.mirror.git_url}" in prov["repos_conf"]
    assert {re.sub(r"-[0-9][^/]*$", "", p["cpv"]) for p in manifest["packages"]} == set(BUILT)
    for package in manifest["packages"]:
        assert package["repo_revisions"] == {"gentoo": tag_commit}, package
        assert package["build_id"] and package["size"] > 0 and len(package["sha1"]) == 40
    hello = next(p for p in manifest["packages"] if p["cpv"].startswith("app-misc/hello-"))
    assert "doc" in hello["use"]
    assert sorted(manifest["changes"]["added"]) == sorted(p["cpv"] for p in manifest["packages"])
    page = (binhost.stack / "index.html").read_text()
    assert binhost.first_generation in page and TAG in page and tag_commit[:12] in page and "3.0.83" in page


def test_a_real_portage_client_installs_from_the_binhost(binhost):
    """A fresh root from the same stage, configured by playbooks/binpkg_client.yml, installs
    app-misc/hello with emerge --getbinpkgonly from the served stack."""
    stage = build_stage()
    client = binhost.root / "clients" / "c1"
    unpacked = run_module("gentoo_binhost.infra.stage_unpack", {
        "src": str(stage.tarball), "dest": str(client), "key": str(stage.pubkey),
        "fingerprint": stage.fingerprint, "remove_binrepos_conf": True})
    assert not unpacked["failed"], unpacked
    proc, recap = run_playbook("playbooks/binpkg_client.yml", {
        "binpkg_client_root": str(client),
        "binpkg_client_repos": [{"name": STACK, "sync_uri": f"{binhost.url}/{STACK}/current"}]})
    assert proc.returncode == 0, explain(proc)
    header, entries = parse_index(http_get(f"{binhost.url}/{STACK}/current/Packages").decode())
    served = next(e for e in entries if e["CPV"].startswith("app-misc/hello-"))
    vdb = client / "var/db/pkg" / served["CPV"]
    before = (vdb / "BUILD_TIME").read_text().strip() if (vdb / "BUILD_TIME").exists() else None

    out = in_chroot(client, "emerge --color=n --nospinner --getbinpkgonly --oneshot app-misc/hello").stdout
    assert f">>> Emerging binary (1 of 1) {served['CPV']}::gentoo" in out, out[-3000:]
    fetched = sorted((client / "var/cache/binhost" / STACK).rglob("hello-*.gpkg.tar"))
    assert [p.name for p in fetched] == [served["PATH"].split("/")[-1]], fetched
    assert fetched[0].stat().st_size == int(served["SIZE"])
    assert (vdb / "BUILD_TIME").read_text().strip() == served["BUILD_TIME"] != before
    assert (vdb / "BUILD_ID").read_text().strip() == served["BUILD_ID"]
    access = (binhost.root / "binhost/log/binhost-access.log").read_text()
    assert f"GET /{STACK}/generations/{binhost.current()}/{served['PATH']} HTTP/1.1\" 200" in access


def test_server_playbook_alone_changes_nothing(binhost):
    for check in (True, False):
        proc, recap = run_playbook("playbooks/binpkg_server.yml", binhost.server_vars, check=check)
        assert proc.returncode == 0, explain(proc)
        assert recap["localhost"]["changed"] == 0, explain(proc)


def test_packages_from_another_tree_are_refused(binhost):
    binhost.mirror.publish("20250107", stage_repo_tree(1))
    proc, _ = binhost.mirror.mirror_playbook()
    assert proc.returncode == 0 and "Tag: 2025-01-07" in proc.stdout, explain(proc)
    newer = subprocess.run(["git", "--git-dir", str(binhost.mirror.bare_repo), "rev-parse", "2025-01-07^{commit}"],
                           capture_output=True, text=True, check=True).stdout.strip()
    before = binhost.current()
    listing = sorted(os.listdir(binhost.stack / "generations"))
    proc, recap = binhost.server_playbook(binpkg_server_stacks=[
        {"name": STACK, "src": str(binhost.pkgdir), "expect_revisions": {"gentoo": newer}}])
    assert proc.returncode != 0 and recap["failed"] == 1, explain(proc)
    assert "packages built from another tree than the pinned one" in proc.stdout
    assert f"not the pinned {newer[:12]}" in proc.stdout
    assert binhost.current() == before and sorted(os.listdir(binhost.stack / "generations")) == listing


def test_one_rebuilt_package_is_all_that_crosses_the_wire(binhost):
    entry = {**binhost.build_vars["build_host_chroots"][0], "emerge_args": ["--oneshot", "app-misc/hello"]}
    before = binhost.current()
    proc, recap = run_build({**binhost.build_vars, **binhost.server_vars, "build_host_chroots": [entry]},
                            playbook=BUILD_AND_PUBLISH)
    assert proc.returncode == 0 and recap["failed"] == 0, explain(proc)
    generation = binhost.current()
    assert generation != before
    manifest = binhost.manifest()
    assert manifest["changes"] == {"added": [], "removed": [], "rebuilt": ["app-misc/hello-1"]}
    newest = max((binhost.pkgdir / "app-misc/hello").glob("hello-1-*.gpkg.tar"), key=lambda p: p.stat().st_mtime)
    build = binhost.last_build()  # what was published: the build's own directory
    assert (build / newest.relative_to(binhost.pkgdir)).stat().st_ino == newest.stat().st_ino
    index_files = [build / "Packages"] + ([build / "Packages.gz"] if (build / "Packages.gz").exists() else [])
    expected = newest.stat().st_size + sum(p.stat().st_size for p in index_files)
    assert manifest["transfer"]["files"] == 1 + len(index_files), manifest["transfer"]
    assert manifest["transfer"]["bytes"] == expected, manifest["transfer"]
    assert manifest["transfer"]["total_files"] > manifest["transfer"]["files"] + 4
    # Unchanged packages are the very same inodes as in the previous generation.
    old, new = binhost.stack / "generations" / before, binhost.stack / "generations" / generation
    libfoo = next((old / "dev-libs/libfoo").glob("*.gpkg.tar")).relative_to(old)
    assert (old / libfoo).stat().st_ino == (new / libfoo).stat().st_ino
    assert (old / "Packages").read_bytes() != (new / "Packages").read_bytes()


def png_pixels(path: Path) -> tuple[int, int, bytes]:
    """Width, height and the decompressed image data of a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return width, height, zlib.decompress(idat)


def test_status_page_in_a_real_browser(binhost):
    """Debian's chromium renders the stack's page from nginx; the screenshot is kept in
    tests/output/ for a person to look at."""
    chromium = shutil.which("chromium")
    assert chromium, "chromium is needed (make apt installs it)"
    url = f"{binhost.url}/{STACK}/"
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--window-size=1100,1400"]
    dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True, timeout=120, check=True).stdout
    generations = sorted(os.listdir(binhost.stack / "generations"))
    for generation in generations:
        assert f'id="g-{generation}"' in dom
    assert dom.count('class="badge"') == 1 and f'class="generation current" id="g-{binhost.current()}"' in dom
    assert '<li class="rebuilt">app-misc/hello-1</li>' in dom
    assert f"{TAG} <code>" in dom and "3.0.83" in dom
    out = ROOT / "tests/output"
    out.mkdir(parents=True, exist_ok=True)
    shot = out / "binpkg-status.png"
    shot.unlink(missing_ok=True)
    subprocess.run(flags + [f"--screenshot={shot}", url], capture_output=True, timeout=120, check=True)
    width, height, pixels = png_pixels(shot)
    assert (width, height) == (1100, 1400)
    assert len(set(pixels)) > 50, "the screenshot is blank"


class IndexPoller(threading.Thread):
    """Reads the stack's index over and over the way Portage's binhost client does (Packages
    from the sync-uri, then each package from the index's URI + PATH) and records any entry
    whose file is not there."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.polls = 0
        self.generations: set[str] = set()
        self.missing: list[str] = []
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                header, entries = parse_index(http_get(self.url + "/Packages").decode())
                self.generations.add(header.get("URI", ""))
                for entry in entries:
                    request = urllib.request.Request(f"{header['URI']}/{entry['PATH']}", method="HEAD")
                    try:
                        with urllib.request.urlopen(request, timeout=10) as response:
                            if int(response.headers["Content-Length"]) != int(entry["SIZE"]):
                                self.missing.append(f"{entry['PATH']} size differs")
                    except urllib.error.HTTPError as exc:
                        self.missing.append(f"{header['URI']}/{entry['PATH']}: HTTP {exc.code}")
                self.polls += 1
            except Exception as exc:  # noqa: BLE001 - any failure of the client is a finding
                self.errors.append(repr(exc))


def variant_without(pkgdir: Path, target: Path, cp: str) -> Path:
    """A copy of ``pkgdir`` whose index and files lack package ``cp`` (a valid PKGDIR)."""
    shutil.copytree(pkgdir, target)
    (target / "Packages.gz").unlink(missing_ok=True)
    header, *entries = (target / "Packages").read_text().strip().split("\n\n")
    kept = [e for e in entries if not re.search(rf"^CPV: {re.escape(cp)}-[0-9]", e, re.M)]
    for gone in set(entries) - set(kept):
        (target / re.search(r"^PATH: (.*)$", gone, re.M).group(1)).unlink()
    header = re.sub(r"^PACKAGES: .*$", f"PACKAGES: {len(kept)}", header, flags=re.M)
    (target / "Packages").write_text("\n\n".join([header] + kept) + "\n\n")
    return target


def test_a_client_polling_during_publications_never_sees_a_missing_file(binhost, tmp_path):
    sys.path.insert(0, str(COLLECTIONS_PATH))
    from ansible_collections.gentoo_binhost.infra.plugins.module_utils._publish import run_publication

    full = tmp_path / "full"
    shutil.copytree(binhost.pkgdir, full)
    without = variant_without(binhost.pkgdir, tmp_path / "without-hello", "app-misc/hello")
    stack = binhost.root / "binpkgs" / "polled"
    params = {"dest": str(stack), "keep": 2, "base_url": f"{binhost.url}/polled"}
    run_publication({**params, "src": str(full)})
    poller = IndexPoller(f"{binhost.url}/polled/current")
    poller.start()
    try:
        switches = 0
        while switches < 16 or poller.polls < 20:
            time.sleep(1.05)  # generation ids have one-second resolution
            result = run_publication({**params, "src": str(without if switches % 2 == 0 else full)})
            assert result["changed"], result
            switches += 1
            assert switches < 200
    finally:
        poller.stop.set()
        poller.join(30)
    assert poller.errors == [] and poller.missing == []
    assert poller.polls >= 20 and len(poller.generations) >= 8, (poller.polls, poller.generations)
    assert len(os.listdir(stack / "generations")) == 2  # keep=2 pruned the others meanwhile


def test_kill_9_during_publication_leaves_current_serving_and_the_next_run_completes(binhost, tmp_path):
    big = tmp_path / "big"
    shutil.copytree(binhost.pkgdir, big)
    # An extra file the index does not list: rsync copies it, which gives time to kill.
    with open(big / "padding.bin", "wb") as handle:
        handle.truncate(1536 << 20)
    before = binhost.current()
    served = http_get(f"{binhost.url}/{STACK}/current/Packages")
    code = ("import sys; sys.path.insert(0, %r); "
            "from ansible_collections.gentoo_binhost.infra.plugins.module_utils._publish import run_publication; "
            "run_publication({'src': %r, 'dest': %r, 'base_url': %r})"
            % (str(COLLECTIONS_PATH), str(big), str(binhost.stack), f"{binhost.url}/{STACK}"))
    child = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        partial = None
        while time.monotonic() < deadline and partial is None:
            found = [p for p in (binhost.stack / "generations").glob(".partial-*") if (p / "padding.bin").exists()]
            partial = found[0] if found else None
            time.sleep(0.01)
        assert partial is not None and child.poll() is None, "the publication ended before it could be killed"
        os.killpg(child.pid, signal.SIGKILL)  # python and its rsync
        child.wait(30)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(30)
    assert binhost.current() == before
    assert http_get(f"{binhost.url}/{STACK}/current/Packages") == served
    assert list((binhost.stack / "generations").glob(".partial-*")), "the killed run left its partial copy"

    proc, recap = binhost.server_playbook(binpkg_server_stacks=[{"name": STACK, "src": str(binhost.pkgdir)}])
    assert proc.returncode == 0 and recap["changed"] >= 1, explain(proc)
    assert binhost.current() != before
    assert not list((binhost.stack / "generations").glob(".partial-*"))
    header, _ = parse_index(http_get(f"{binhost.url}/{STACK}/current/Packages").decode())
    assert header["URI"].endswith(binhost.current())


def test_rollback_serves_the_earlier_generation(binhost):
    first = binhost.first_generation
    if first not in os.listdir(binhost.stack / "generations"):
        pytest.fail(f"generation {first} was pruned; keep is {binhost.server_vars['binpkg_server_keep']}")
    proc, recap = binhost.server_playbook(binpkg_server_rollback={STACK: first})
    assert proc.returncode == 0 and recap["changed"] >= 1, explain(proc)
    assert binhost.current() == first
    header, _ = parse_index(http_get(f"{binhost.url}/{STACK}/current/Packages").decode())
    assert header["URI"].endswith("/generations/" + first)
    assert 'class="generation current" id="g-%s"' % first in (binhost.stack / "index.html").read_text()
    proc, recap = binhost.server_playbook(binpkg_server_rollback={STACK: first})
    assert proc.returncode == 0 and recap["changed"] == 0, explain(proc)
    proc, recap = binhost.server_playbook(binpkg_server_rollback={STACK: "20000101T000000Z"})
    assert proc.returncode != 0 and "no such generation" in proc.stdout, explain(proc)
    assert binhost.current() == first


def make_secret_key(home: Path) -> tuple[str, Path, Path]:
    """A throwaway signing key without passphrase: (fingerprint, secret export, public export)."""
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--no-tty"]
    subprocess.run(gpg + ["--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key",
                          "Test binhost <binhost@example.org>", "ed25519", "sign", "never"],
                   check=True, capture_output=True)
    listing = subprocess.run(gpg + ["--list-secret-keys", "--with-colons"], check=True, capture_output=True,
                             text=True).stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    secret, public = home.parent / "signing-secret.asc", home.parent / "signing-public.asc"
    subprocess.run(gpg + ["--armor", "--output", str(secret), "--export-secret-keys", fingerprint], check=True)
    subprocess.run(gpg + ["--armor", "--output", str(public), "--export", fingerprint], check=True)
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)
    return fingerprint, secret, public


def test_signed_build_is_verified_by_the_client(binhost, tmp_path):
    """build_host_signing_secret_key: the chroot signs its packages (Portage's gpkg signing),
    the server publishes them, a client that trusts only that key installs them."""
    fingerprint, secret, public = make_secret_key(tmp_path / "gnupg")
    entry = {**binhost.build_vars["build_host_chroots"][0], "name": "signed",
             "emerge_args": ["--oneshot", "app-misc/hello"]}
    extra = {"build_host_signing_secret_key": str(secret), "build_host_signing_fingerprint": fingerprint}
    proc, recap = run_build({**binhost.build_vars, **binhost.server_vars, **extra, "build_host_chroots": [entry]},
                            playbook=BUILD_AND_PUBLISH)
    assert proc.returncode == 0 and recap["failed"] == 0, explain(proc)
    assert mounts_below(binhost.root, recap["ns_mounts"]) == [], "the signing agent kept /dev busy"
    pkgdir = binhost.root / "chroots/signed/var/cache/binpkgs"
    gpkg = next((pkgdir / "app-misc/hello").glob("hello-*.gpkg.tar"))
    members = subprocess.run(["tar", "-tf", str(gpkg)], capture_output=True, text=True, check=True).stdout.split()
    assert any(m.endswith("metadata.tar.zst.sig") for m in members), members
    assert any(m.endswith("image.tar.zst.sig") for m in members), members

    # Re-running the set-up changes nothing (key present, keyring trusted, make.conf set).
    proc, recap = run_build({**binhost.build_vars, **extra, "build_host_build": False, "build_host_chroots": [entry]})
    assert proc.returncode == 0 and recap["changed"] == 0, explain(proc)

    client = binhost.root / "clients" / "signed"
    stage = build_stage()
    unpacked = run_module("gentoo_binhost.infra.stage_unpack", {
        "src": str(stage.tarball), "dest": str(client), "key": str(stage.pubkey),
        "fingerprint": stage.fingerprint, "remove_binrepos_conf": True})
    assert not unpacked["failed"], unpacked
    proc, _recap = run_playbook("playbooks/binpkg_client.yml", {
        "binpkg_client_root": str(client), "binpkg_client_verify_key": str(public),
        "binpkg_client_trust_helper": "true",
        "binpkg_client_repos": [{"name": "signed", "sync_uri": f"{binhost.url}/signed/current"}]})
    assert proc.returncode == 0, explain(proc)
    assert "verify-signature = true" in (client / "etc/portage/binrepos.conf/signed.conf").read_text()
    out = in_chroot(client, "emerge --color=n --nospinner --getbinpkgonly --oneshot app-misc/hello").stdout
    assert "Emerging binary" in out, out[-3000:]
    fetched = list((client / "var/cache/binhost/signed").rglob("hello-*.gpkg.tar"))
    assert [p.name for p in fetched] == [gpkg.name]


def tag_commit(binhost, tag: str) -> str:
    return subprocess.run(["git", "--git-dir", str(binhost.mirror.bare_repo), "rev-parse", f"{tag}^{{commit}}"],
                          capture_output=True, text=True, check=True).stdout.strip()


def ensure_newer_tag(binhost) -> str:
    """The mirror also has 2025-01-07 (hello-2 added); its commit."""
    binhost.mirror.publish("20250107", stage_repo_tree(1))
    proc, _ = binhost.mirror.mirror_playbook()
    assert proc.returncode == 0, explain(proc)
    return tag_commit(binhost, "2025-01-07")


def cp_of(cpv: str) -> str:
    return re.sub(r"-[0-9][^/]*$", "", cpv)


def test_the_server_alone_publishes_the_last_recorded_build(binhost):
    """Build in one ansible-playbook run, publish in another: the server reads what the build
    host recorded."""
    entry = {**binhost.build_vars["build_host_chroots"][0], "name": "later",
             "emerge_args": ["--oneshot", "app-misc/hello"]}
    proc, recap = run_build({**binhost.build_vars, "build_host_chroots": [entry]})
    assert proc.returncode == 0 and recap["failed"] == 0, explain(proc)
    assert not (binhost.root / "binpkgs/later").exists(), "nothing is published by the build alone"
    build = binhost.last_build("later")
    proc, recap = binhost.server_playbook(build_host_chroots=[entry], build_host_builds_dir=str(binhost.root / "builds"))
    assert proc.returncode == 0 and recap["changed"] >= 1, explain(proc)
    stack = binhost.root / "binpkgs/later"
    generation = os.readlink(stack / "current").split("/")[-1]
    manifest = json.loads((stack / "generations" / generation / "manifest.json").read_text())
    record = json.loads((build / "build.json").read_text())
    assert sorted(p["path"] for p in manifest["packages"]) == sorted(p["path"] for p in record["packages"])
    assert manifest["source"] == str(build)
    assert manifest["provenance"]["snapshot"]["commit"] == tag_commit(binhost, TAG)
    # Published already: the next server run changes nothing, in check mode neither.
    for check in (True, False):
        proc, recap = run_playbook("playbooks/binpkg_server.yml", {
            **binhost.server_vars, "build_host_chroots": [entry],
            "build_host_builds_dir": str(binhost.root / "builds")}, check=check)
        assert proc.returncode == 0 and recap["localhost"]["changed"] == 0, explain(proc)


def test_moving_the_pin_and_rebuilding_publishes_exactly_the_new_build(binhost):
    """Portage keeps every earlier build in the PKGDIR (binpkg-multi-instance): after a full
    build at a newer tag, what is published is that build's packages, all from the new tree."""
    newer = ensure_newer_tag(binhost)
    entry = {**binhost.build_vars["build_host_chroots"][0], "name": "moving"}
    proc, recap = run_build({**binhost.build_vars, **binhost.server_vars, "build_host_chroots": [entry]},
                            playbook=BUILD_AND_PUBLISH)
    assert proc.returncode == 0 and recap["failed"] == 0, explain(proc)
    moved = {**entry, "snapshot": "2025-01-07"}
    proc, recap = run_build({**binhost.build_vars, **binhost.server_vars, "build_host_chroots": [moved]},
                            playbook=BUILD_AND_PUBLISH)
    assert proc.returncode == 0 and recap["failed"] == 0, explain(proc)
    stack = binhost.root / "binpkgs/moving"
    manifest = json.loads((stack / "current/manifest.json").read_text())
    pkgdir = binhost.root / "chroots/moving/var/cache/binpkgs"
    all_instances = re.findall(r"^PATH: (\S+)$", (pkgdir / "Packages").read_text(), re.MULTILINE)
    assert len(all_instances) >= 2 * len(BUILT), "the PKGDIR still holds the first build"
    assert {cp_of(p["cpv"]) for p in manifest["packages"]} == set(BUILT)
    assert len(manifest["packages"]) == len(BUILT)
    assert all(p["repo_revisions"] == {"gentoo": newer} for p in manifest["packages"]), manifest["packages"]
    assert "app-misc/hello-2" in [p["cpv"] for p in manifest["packages"]]
    header, entries = parse_index(http_get(f"{binhost.url}/moving/current/Packages").decode())
    assert sorted(e["PATH"] for e in entries) == sorted(p["path"] for p in manifest["packages"])


def test_a_stage_without_git_is_published_bound_to_the_checked_out_tree(binhost):
    """Gentoo's stage3s have no git, so Portage records no REPO_REVISIONS; the build record
    binds the packages to the commit the role checked out, and the gate still refuses them for
    another pin."""
    entry = {**binhost.build_vars["build_host_chroots"][0], "name": "nogit"}
    proc, recap = run_build({**binhost.build_vars, "build_host_build": False, "build_host_chroots": [entry]})
    assert proc.returncode == 0, explain(proc)
    chroot = binhost.root / "chroots/nogit"
    for path in ("usr/bin/git", "usr/lib/git-core"):
        target = chroot / path
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    assert subprocess.run(["chroot", str(chroot), "/bin/sh", "-c", "command -v git"],
                          capture_output=True).returncode != 0, "git is gone from the build root"
    proc, recap = run_build({**binhost.build_vars, **binhost.server_vars, "build_host_chroots": [entry]},
                            playbook=BUILD_AND_PUBLISH)
    assert proc.returncode == 0 and recap["failed"] == 0, explain(proc)
    from ansible_collections.gentoo_binhost.infra.plugins.module_utils._binpkg_revisions import package_revisions
    build = binhost.last_build("nogit")
    record = json.loads((build / "build.json").read_text())
    commit = tag_commit(binhost, TAG)
    for package in record["packages"]:
        assert package_revisions(str(build / package["path"])) == {}, "Portage recorded nothing without git"
        assert package["repo_revisions"] == {"gentoo": commit} and package["bound_by"] == "this build"
    manifest = json.loads((binhost.root / "binpkgs/nogit/current/manifest.json").read_text())
    assert {cp_of(p["cpv"]) for p in manifest["packages"]} == set(BUILT)
    assert {p["revisions_from"] for p in manifest["packages"]} == {"build record"}
    assert all(p["repo_revisions"] == {"gentoo": commit} for p in manifest["packages"])

    newer = ensure_newer_tag(binhost)
    before = os.readlink(binhost.root / "binpkgs/nogit/current")
    proc, recap = binhost.server_playbook(binpkg_server_publish_build_results=False, binpkg_server_stacks=[
        {"name": "nogit", "src": str(build), "expect_revisions": {"gentoo": newer}}])
    assert proc.returncode != 0, explain(proc)
    assert f"built from ::gentoo {commit[:12]}, not the pinned {newer[:12]}" in proc.stdout, explain(proc)
    assert os.readlink(binhost.root / "binpkgs/nogit/current") == before


def test_a_pkgdir_link_in_the_chroot_is_followed_inside_it(binhost):
    """var/cache/binpkgs -> /etc: the chroot's /etc, where its Portage wrote the packages;
    nothing of the host's /etc is read or published."""
    entry = {**binhost.build_vars["build_host_chroots"][0], "name": "linked",
             "emerge_args": ["--oneshot", "app-misc/hello"]}
    proc, recap = run_build({**binhost.build_vars, "build_host_build": False, "build_host_chroots": [entry]})
    assert proc.returncode == 0, explain(proc)
    chroot = binhost.root / "chroots/linked"
    pkgdir = chroot / "var/cache/binpkgs"
    shutil.rmtree(pkgdir)
    os.symlink("/etc", pkgdir)
    proc, recap = run_build({**binhost.build_vars, **binhost.server_vars, "build_host_chroots": [entry]},
                            playbook=BUILD_AND_PUBLISH)
    assert proc.returncode == 0 and recap["failed"] == 0, explain(proc)
    assert (chroot / "etc/Packages").exists(), "the chroot's Portage wrote its packages into its own /etc"
    assert not Path("/etc/Packages").exists()
    build = binhost.last_build("linked")
    files = sorted(str(p.relative_to(build)) for p in build.rglob("*") if p.is_file())
    assert files == sorted(["Packages", "build.json"] + re.findall(
        r"^PATH: (\S+)$", (build / "Packages").read_text(), re.MULTILINE))
    assert all(f.endswith(".gpkg.tar") for f in files if f not in ("Packages", "build.json"))
    generation = binhost.root / "binpkgs/linked/current"
    assert not (generation / "passwd").exists() and not (generation / "hostname").exists()
    assert [cp_of(p["cpv"]) for p in json.loads((generation / "manifest.json").read_text())["packages"]] \
        == ["app-misc/hello"]


def test_base_dir_nginx_cannot_enter_fails_before_anything_starts():
    with server_root("private-", searchable=False) as (private, server_vars):  # 0700, as mktemp -d makes it
        proc, _recap = run_playbook("playbooks/binpkg_server.yml",
                                    {**server_vars, "binpkg_server_publish_build_results": False})
        assert proc.returncode != 0, explain(proc)
        assert (f"nginx's workers run as www-data, which cannot enter {private}: every directory above "
                f"{private}/binpkgs") in proc.stdout, explain(proc)
        assert sorted(private.iterdir()) == []


def test_an_unknown_os_family_fails_before_anything_is_set_up():
    """The role knows the packages of Debian and Gentoo only; any other family is refused,
    not given Debian's package names."""
    with server_root("plan9-") as (root, server_vars):
        proc, _recap = run_playbook("playbooks/binpkg_server.yml", {
            **server_vars, "binpkg_server_install_packages": True, "binpkg_server_publish_build_results": False,
            "ansible_os_family": "Plan9"})
        assert proc.returncode != 0, explain(proc)
        assert ("binpkg_server knows the packages and the nginx user of the OS families Debian, Gentoo; "
                "localhost is Plan9.") in " ".join(proc.stdout.split()), explain(proc)
        assert sorted(root.iterdir()) == []


def test_results_are_this_runs_and_a_bad_keep_is_refused(tmp_path):
    """The role twice in one play reports each run's stacks once; a stack's keep: 0 is refused
    by binpkg_publish (not taken for the default) and the stack stays as it was."""
    pkgdir = tmp_path / "pkgdir"
    make_pkgdir(pkgdir, PKGS, gz=True)
    playbook = tmp_path / "twice.yml"
    playbook.write_text("""---
- name: Run binpkg_server twice in one play
  hosts: binhost
  gather_facts: true
  gather_subset: [min]
  tasks:
    - name: First run
      ansible.builtin.include_role:
        name: gentoo_binhost.infra.binpkg_server
    - name: Second run
      ansible.builtin.include_role:
        name: gentoo_binhost.infra.binpkg_server
    - name: Show the results
      ansible.builtin.debug:
        msg: "results=[{{ binpkg_server_results | map(attribute='name') | join(',') }}]"
""")
    with server_root("twice-") as (root, server_vars):
        server_vars.update(binpkg_server_publish_build_results=False,
                           binpkg_server_stacks=[{"name": "twice", "src": str(pkgdir)}])
        proc, recap = run_playbook(str(playbook), server_vars)
        assert proc.returncode == 0 and recap["localhost"]["failed"] == 0, explain(proc)
        assert "results=[twice]" in proc.stdout, explain(proc)
        stack = root / "binpkgs/twice"
        before = tree(stack)
        proc, recap = run_playbook("playbooks/binpkg_server.yml", {
            **server_vars, "binpkg_server_stacks": [{"name": "twice", "src": str(pkgdir), "keep": 0}]})
        assert proc.returncode != 0 and recap["localhost"]["failed"] == 1, explain(proc)
        assert ("keep must be a whole number of generations, at least 1 (the current one is always kept); "
                "got 0") in " ".join(proc.stdout.split()), explain(proc)
        assert tree(stack) == before
