#!/usr/bin/env python3
"""stage_unpack against plain ``tar -xpf`` of the same stage tarball (the anchor).

Uses the project's test stage (Debian userland + Portage; built or taken from the cache by
tests/fixtures/teststage.py). Each run unpacks into a fresh directory on the same filesystem;
the median of ``--runs`` is compared. Our time includes what tar alone does not do: SHA512 of
the tarball, the clearsigned DIGESTS and the detached signature, the member checks, the
atomic rename. Prints ratios; asserts nothing about time (exit 1 only if an unpack fails or
the two trees differ).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / ".collections"), str(ROOT / "tests" / "fixtures")]

from teststage import build_stage  # noqa: E402

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._stage import MARKER, unpack_stage  # noqa: E402

TARGET = 1.0


def listing(root):
    """Path → (mode, uid, gid, size, link target) for every entry: what both unpacks must agree on."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            link = os.readlink(path) if os.path.islink(path) else None
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_size if not os.path.isdir(path) else 0, link)
    return out


def xz_blocks(tarball):
    """The number of blocks in the xz file (read from its index): more than one lets xz
    decompress on several threads, as stage_unpack asks it to; plain tar runs ``xz -d``."""
    out = subprocess.run(["xz", "--robot", "--list", str(tarball)], capture_output=True, text=True,
                         check=True).stdout
    return next((int(line.split("\t")[2]) for line in out.splitlines() if line.startswith("file\t")), None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--with-compiler", action="store_true", help="the larger stage with gcc")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()

    stage = build_stage(with_compiler=args.with_compiler)
    size = stage.tarball.stat().st_size
    blocks = xz_blocks(stage.tarball)
    work = Path(tempfile.mkdtemp(prefix="bench-stage-", dir="/var/tmp"))
    ours, plain = [], []
    load_before = os.getloadavg()[0]
    try:
        for i in range(args.runs):
            dest = work / ("tar-%d" % i)
            target = work / ("ours-%d" % i)

            def run_plain():
                dest.mkdir()
                started = time.perf_counter()
                subprocess.run(["tar", "-xpf", str(stage.tarball), "-C", str(dest)], check=True)
                plain.append(time.perf_counter() - started)

            def run_ours():
                started = time.perf_counter()
                done = unpack_stage({"src": str(stage.tarball), "dest": str(target), "key": str(stage.pubkey),
                                     "fingerprint": stage.fingerprint})
                ours.append(time.perf_counter() - started)
                return done

            # Alternate who goes first: the second of a pair runs while the first's writes flush.
            if i % 2:
                result = run_ours()
                run_plain()
            else:
                run_plain()
                result = run_ours()
            subprocess.run(["sync"], check=True)
            if not result["changed"]:
                sys.exit("stage_unpack reported no change for a fresh root")
            if i == 0:
                a, b = listing(dest), listing(target)
                b.pop(MARKER, None)
                for extra in ("var/lib/gentoo-binhost",):
                    b.pop(extra, None)
                if a != b:
                    diff = sorted(set(a.items()) ^ set(b.items()))[:10]
                    sys.exit("the trees differ: %s" % diff)
            started = time.perf_counter()
            again = unpack_stage({"src": str(stage.tarball), "dest": str(target), "key": str(stage.pubkey),
                                  "fingerprint": stage.fingerprint})
            rerun = time.perf_counter() - started
            if again["changed"]:
                sys.exit("a re-run on the unpacked root reported a change")
            shutil.rmtree(dest)
            shutil.rmtree(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    load_after = os.getloadavg()[0]
    med_ours, med_plain = statistics.median(ours), statistics.median(plain)
    ratio = med_ours / med_plain
    print("== stage_unpack benchmark ==")
    print("stage: %s (%.1f MB in %s xz blocks, %d entries)" % (stage.tarball.name, size / 1e6, blocks, len(a)))
    print("load average (1 min) before / after: %.2f / %.2f on %d cores (other work skews both sides)"
          % (load_before, load_after, os.cpu_count()))
    print("%-34s %s" % ("tar -xpf (anchor), runs", " ".join("%.2f s" % t for t in plain)))
    print("%-34s %s" % ("stage_unpack (verify + unpack)", " ".join("%.2f s" % t for t in ours)))
    print("%-34s %.3f s" % ("stage_unpack re-run (DIGESTS only)", rerun))
    print("stage_unpack / tar -xpf: %.2fx  (target <= %.1fx: %s)" % (ratio, TARGET, "PASS" if ratio <= TARGET else "MISS"))
    if args.json:
        Path(args.json).write_text(json.dumps({"ours": ours, "plain": plain, "rerun": rerun, "ratio": ratio,
                                               "stage": stage.tarball.name, "bytes": size, "xz_blocks": blocks,
                                               "load": [load_before, load_after]}, indent=2))


if __name__ == "__main__":
    main()
