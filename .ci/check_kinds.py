#!/usr/bin/env python3
"""No code of the API server outside its kinds' modules branches on a kind's name.

Every kind's plural and kind name (from crates/api/src/resources.rs) is looked for as a
string literal in apiserver/src, outside apiserver/src/kinds/ and outside test modules
(`#[cfg(test)]` to the end of a file). Prints each hit; exits 1 if there is any.

Exempt: apiserver/src/resource_metrics.rs, whose metrics.k8s.io resources are also named
`nodes` and `pods` (NodeMetrics, PodMetrics: not stored kinds, served by that module alone).
"""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
registry = (root / "crates/api/src/resources.rs").read_text()
names = set(re.findall(r'(?:plural|kind): "([A-Za-z]+)"', registry))
pattern = re.compile(r'"(' + "|".join(sorted(names)) + r')"')
hits = []
for path in sorted((root / "apiserver/src").rglob("*.rs")):
    rel = path.relative_to(root)
    if rel.parts[:3] == ("apiserver", "src", "kinds"):
        continue
    if rel.as_posix() == "apiserver/src/resource_metrics.rs":
        continue
    text = path.read_text().split("#[cfg(test)]")[0]
    for n, line in enumerate(text.splitlines(), 1):
        if pattern.search(line):
            hits.append(f"{rel}:{n}: {line.strip()}")
if hits:
    print("a kind's name outside apiserver/src/kinds/ (move the rule into the kind's module):")
    print("\n".join(hits))
    sys.exit(1)
print(f"no kind names outside apiserver/src/kinds/ ({len(names)} names checked)")
