"""Line coverage of the product code alone, from an lcov report on stdin.

llvm-cov counts a crate's inline unit tests (`#[cfg(test)] mod tests { ... }`, at the end of
each file here) as lines of that file, and a passing test covers itself, which lifts the total.
This leaves out every line from a file's `#[cfg(test)]` test module to its end, prints covered
and total lines per crate and overall, and exits 1 when the total is under the floor.

    cargo llvm-cov report --lcov ... | python3 scripts/product_coverage.py FLOOR
"""

import os
import re
import sys
from collections import defaultdict

TEST_MODULE = re.compile(r"^#\[cfg\(test\)\]\s*\n(pub(\(crate\))? )?mod tests \{", re.M)


def first_test_line(path):
    """The 1-based line where the file's test module starts, or None."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    found = TEST_MODULE.search(text)
    return text.count("\n", 0, found.start()) + 1 if found else None


def crate_of(path):
    rel = os.path.relpath(path)
    parts = rel.split(os.sep)
    if parts[0] == "functions":
        return "functions/" + parts[1]
    if parts[:2] == ["shared", "relief"]:
        return "shared/relief"
    if parts[0] == "infra":
        return "infra/" + parts[1]
    return parts[0]


def main():
    floor = float(sys.argv[1])
    covered, total = defaultdict(int), defaultdict(int)
    path, cut = None, None
    for line in sys.stdin:
        line = line.strip()
        if line.startswith("SF:"):
            path = line[3:]
            cut = first_test_line(path)
        elif line.startswith("DA:") and path:
            number, hits = line[3:].split(",")[:2]
            if cut is not None and int(number) >= cut:
                continue
            crate = crate_of(path)
            total[crate] += 1
            covered[crate] += int(hits) > 0
    if not total:
        sys.exit("no coverage data")
    for crate in sorted(total):
        print(f"  {crate:<22} {100 * covered[crate] / total[crate]:6.2f} % of {total[crate]} lines")
    percent = 100 * sum(covered.values()) / sum(total.values())
    print(f"product code (inline test modules left out): {percent:.2f} % of lines")
    if percent < floor:
        sys.exit(f"under the floor of {floor} %")


if __name__ == "__main__":
    main()
