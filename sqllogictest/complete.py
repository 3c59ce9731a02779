#!/usr/bin/python3
"""sqllogictest/complete.py FILE... - writes the expected results of the
query records of sqllogictest scripts, as build/slt computes them.

Each FILE is run by build/slt --verbose, first through SQLite's default
VFS (unix), then through cow for the records that unix skips ("onlyif
cow", "skipif unix").  Every query whose result differs from the one
written (or has none written) gets the values the runner printed, so the
results are rendered exactly as the runner renders them.  Everything else
(comments, conditions, statements) is kept as written.  Run from the
repository root after `make build/slt`; then check that the files pass
through both VFSes (sh test/slt_full.sh sqllogictest).

Exit status: 0, or 1 with a message if a record failed otherwise (a
statement, or a query that did not run).
"""
import subprocess
import sys


def slt_failures(path, vfs):
    """Runs build/slt on PATH through VFS; returns {query line: values}
    for the queries that did not give their written result."""
    out = subprocess.run(["build/slt", "--verbose", "--vfs", vfs, path],
                         capture_output=True, text=True).stdout.split("\n")
    got, i = {}, 0
    while i < len(out):
        line = out[i]
        i += 1
        if not line.startswith("FAIL "):
            continue
        where, reason = line[5:].split(": ", 1)
        lineno = int(where.rsplit(":", 1)[1])
        if not reason.startswith(("wrong result", "wrong number of values")):
            sys.exit("%s (through %s): %s" % (where, vfs, reason))
        while i < len(out) and not out[i].startswith(("  actual", "FAIL ")):
            i += 1
        if out[i] == "  actual:":
            got[lineno] = [out[i + 1][4:]]
            continue
        n = int(out[i].split("(")[1].rstrip("):"))
        if n > 100:
            sys.exit("%s: %d values: set a hash-threshold" % (where, n))
        got[lineno] = [v[4:] for v in out[i + 1:i + 1 + n]]
        i += 1 + n
    return got


def unix_skips(lines, k):
    """Does the record whose header is line K (0-based) skip unix?"""
    while k > 0 and lines[k - 1].split()[:1] in (["skipif"], ["onlyif"]):
        k -= 1
        kind, name = lines[k].split()[:2]
        if (kind == "onlyif") != (name.lower() in ("unix", "sqlite")):
            return True
    return False


def complete(path):
    with open(path) as f:
        lines = f.read().split("\n")
    got = slt_failures(path, "unix")
    got.update({n: v for n, v in slt_failures(path, "cow").items()
                if unix_skips(lines, n - 1)})
    out, i = [], 0
    while i < len(lines):
        lineno = i + 1
        out.append(lines[i])
        i += 1
        if lineno not in got:
            continue
        while i < len(lines) and lines[i].strip() and lines[i] != "----":
            out.append(lines[i])        # the SQL, as written
            i += 1
        out.append("----")
        out.extend(got[lineno])
        if i < len(lines) and lines[i] == "----":
            i += 1
            while i < len(lines) and lines[i].strip():     # old results
                i += 1
    with open(path, "w") as f:
        f.write("\n".join(out))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: sqllogictest/complete.py FILE...")
    for p in sys.argv[1:]:
        complete(p)
