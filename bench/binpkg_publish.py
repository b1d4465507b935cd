#!/usr/bin/env python3
"""binpkg_publish: incremental publication of 1 changed package among N against a full copy.

Generates a deterministic PKGDIR (tests/fixtures/pkgdir.py: real gpkg files, real zstd,
Portage's index format; payloads log-uniform between ~10 KB and ~4 MB), publishes it once
into an empty stack, then ``--runs`` times rebuilds one package (a new BUILD_ID, as Portage's
binpkg-multi-instance does) and times the publication of that change. Anchors, in the same
process on the same filesystem: ``cp -a`` of the whole PKGDIR to a fresh directory (every run)
and the first publication into the empty stack. Prints seconds, ratios and bytes transferred;
asserts nothing about time (exit 1 only if a publication is functionally wrong: a wrong
transfer count, a wrong change list, a generation that does not validate, hard links missing).
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

from pkgdir import change_package, make_pkgdir, read_index, spread_sizes  # noqa: E402

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._packages_index import validate_pkgdir  # noqa: E402
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._publish import publish  # noqa: E402
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._stack import Stack  # noqa: E402

TARGET = 2.0  # seconds for one changed package among 500


def params(src, dest):
    return {"src": str(src), "dest": str(dest), "name": "bench", "keep": 3, "expect_revisions": {"gentoo": "1" * 40},
            "provenance": {"bench": True}, "base_url": "http://127.0.0.1:8080/bench", "rollback_to": None}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packages", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--largest", type=int, default=4 * 1024 * 1024, help="largest payload in bytes")
    parser.add_argument("--workdir", default="/var/tmp", help="where the PKGDIR and stack are made (same fs)")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-binpkg-", dir=args.workdir))
    failures = []
    try:
        src, dest = work / "pkgdir", work / "stack"
        sizes = spread_sizes(args.packages, largest=args.largest)
        specs = [{"cpv": "cat-%02d/pkg%03d-1.%d" % (i % 40, i, i), "size": size} for i, size in enumerate(sizes)]
        started = time.perf_counter()
        make_pkgdir(src, specs, gz=True)
        generated = time.perf_counter() - started
        _h, entries = read_index(src)
        total = sum(int(e["SIZE"]) for e in entries)

        started = time.perf_counter()
        first = publish(params(src, dest))
        first_time = time.perf_counter() - started
        if first["transfer"]["files"] != args.packages + 2:
            failures.append("first publication transferred %d files, not %d" % (first["transfer"]["files"],
                                                                                 args.packages + 2))

        # Mid-sized packages get rebuilt: sorted by size, one from the middle per run.
        by_size = sorted(entries, key=lambda e: int(e["SIZE"]))
        chosen = [by_size[len(by_size) // 2 + i * 7]["CPV"] for i in range(args.runs)]
        incremental, copies, rows = [], [], []
        for i, cpv in enumerate(chosen):
            copy = work / ("copy-%d" % i)
            started = time.perf_counter()
            subprocess.run(["cp", "-a", str(src), str(copy)], check=True)
            copies.append(time.perf_counter() - started)
            shutil.rmtree(copy)

            new = change_package(src, cpv, salt=i + 1)
            previous = Stack(str(dest)).current()
            started = time.perf_counter()
            result = publish(params(src, dest))
            incremental.append(time.perf_counter() - started)
            index_bytes = (src / "Packages").stat().st_size + (src / "Packages.gz").stat().st_size
            expected = {"files": 3, "bytes": int(new["SIZE"]) + index_bytes}
            got = {"files": result["transfer"]["files"], "bytes": result["transfer"]["bytes"]}
            if got != expected:
                failures.append("run %d: transferred %s, expected %s" % (i + 1, got, expected))
            if result["changes"] != {"added": [], "removed": [], "rebuilt": [cpv]}:
                failures.append("run %d: changes %s, expected %s rebuilt" % (i + 1, result["changes"], cpv))
            gen = dest / "generations" / result["generation"]
            try:
                validate_pkgdir(str(gen))
            except Exception as exc:  # noqa: BLE001 - reported as a functional failure
                failures.append("run %d: generation %s invalid: %s" % (i + 1, result["generation"], exc))
            prev = dest / "generations" / previous
            linked = sum(1 for e in entries[:50] if e["CPV"] != cpv and (prev / e["PATH"]).exists()
                         and os.stat(prev / e["PATH"]).st_ino == os.stat(gen / e["PATH"]).st_ino)
            if linked != sum(1 for e in entries[:50] if e["CPV"] != cpv and (prev / e["PATH"]).exists()):
                failures.append("run %d: unchanged packages are not hard links to the previous generation" % (i + 1))
            _h, entries = read_index(src)
            rows.append((i + 1, cpv, int(new["SIZE"]), incremental[-1], got["files"], got["bytes"], copies[-1]))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med_inc, med_cp = statistics.median(incremental), statistics.median(copies)
    print("== binpkg_publish benchmark ==")
    print("PKGDIR: %d gpkg packages, %.1f MB (%.0f KB .. %.1f MB each), Packages + Packages.gz; generated in %.1f s"
          % (args.packages, total / 1e6, min(int(e["SIZE"]) for e in entries) / 1e3,
             max(int(e["SIZE"]) for e in entries) / 1e6, generated))
    print("%-4s %-24s %10s %12s %6s %12s %10s" % ("run", "rebuilt package", "size", "incremental", "files",
                                                 "bytes", "cp -a"))
    for run, cpv, size, secs, files, nbytes, cp in rows:
        print("%-4d %-24s %10d %10.3f s %6d %12d %8.2f s" % (run, cpv, size, secs, files, nbytes, cp))
    print("%-44s %.2f s (%d files, %d bytes)" % ("first publication into an empty stack", first_time,
                                                 first["transfer"]["files"], first["transfer"]["bytes"]))
    print("%-44s %.2f s" % ("cp -a of the PKGDIR (anchor), median", med_cp))
    print("%-44s %.3f s (target <= %.1f s: %s)" % ("incremental publication, median", med_inc, TARGET,
                                                  "PASS" if med_inc <= TARGET else "MISS"))
    print("incremental / cp -a: %.3fx   incremental / first publication: %.3fx   first publication / cp -a: %.2fx"
          % (med_inc / med_cp, med_inc / first_time, first_time / med_cp))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "packages": args.packages, "bytes": total, "generated": generated, "first": first_time,
            "first_transfer": first["transfer"], "incremental": incremental, "cp_a": copies,
            "runs": [dict(zip(("run", "cpv", "size", "seconds", "files", "bytes", "cp_a"), r)) for r in rows],
            "failures": failures}, indent=2))
    if failures:
        print("FUNCTIONAL FAILURES:\n  " + "\n  ".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
