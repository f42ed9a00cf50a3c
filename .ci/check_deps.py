"""Check the crate dependency rules in ARCHITECTURE.md from `cargo metadata` on stdin.

- Only cox-apiserver depends on coxswain-store.
- coxswain-api depends on none of our crates; coxswain-store depends on none of ours.
- No binary crate depends on another binary crate.
"""
import json
import sys

meta = json.load(sys.stdin)
ours = {p["name"]: p for p in meta["packages"]}
binaries = {"cox-apiserver", "cox-controllers", "cox-scheduler", "cox-kubelet", "coxctl", "cox"}
errors = []
for name, p in ours.items():
    deps = {d["name"] for d in p["dependencies"] if d["name"] in ours and d.get("kind") is None}
    if "coxswain-store" in deps and name != "cox-apiserver":
        errors.append(f"{name} depends on coxswain-store (only cox-apiserver may)")
    if name in ("coxswain-api", "coxswain-store") and deps:
        errors.append(f"{name} must not depend on other Coxswain crates: {sorted(deps)}")
    if name in binaries and deps & binaries:
        errors.append(f"binary {name} depends on binaries {sorted(deps & binaries)}")
for e in errors:
    print("dependency rule broken:", e)
if errors:
    sys.exit(1)
print(f"ok: {len(ours)} crates follow the dependency rules")
