"""Re-run each mutant that ``mutmut results`` lists as survived, directly, with its module's unit tests.

    python bench/mutation_recheck.py [--only SUBSTRING]     # after bash bench/mutation.sh, from the repo root

mutmut's runner reports some mutants as survived that the suite kills (bench/results/mutation.md): here each
one is activated alone (``MUTANT_UNDER_TEST``) inside ``mutants/`` and its module's tests run until the first
failure. Prints one line per mutant (killed / survived) and appends the survivors, with their diffs, to
bench/results/mutation_survivors.md for reading.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = {  # a mutated module -> the unit tests that exercise it
    "cartography_core.stats": ["test_stats.py", "test_streaming_property.py", "test_invariances.py",
                               "test_from_mutants.py", "test_parity.py"],
    "cartography_core.regions": ["test_select.py", "test_from_mutants.py", "test_app_helpers.py",
                                 "test_invariances.py"],
    "cartography_core.select": ["test_select.py", "test_from_mutants.py", "test_invariances.py"],
    "cartography_core.reliability": ["test_reliability.py", "test_from_mutants.py"],
    "cartography_core.dashboard.datamap": ["test_app_helpers.py", "test_from_mutants.py"],
}  # fmt: skip


def survivors() -> list[str]:
    out = subprocess.run(["mutmut", "results"], cwd=ROOT, capture_output=True, text=True).stdout
    return [line.split(":")[0].strip() for line in out.splitlines() if line.strip().endswith(": survived")]


def module_of(name: str) -> str:
    return max((m for m in TESTS if name.startswith(m + ".")), key=len)


def killed(name: str) -> bool:
    tests = [f"tests/{t}" for t in TESTS[module_of(name)]]
    env = {**os.environ, "MUTANT_UNDER_TEST": name, "PYTHONPATH": str(ROOT / "mutants")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *tests],
        cwd=ROOT / "mutants",
        env=env,
        capture_output=True,
        timeout=600,
    )
    return done.returncode != 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="", help="re-run only mutants whose name contains this")
    args = ap.parse_args()
    names = [n for n in survivors() if args.only in n and any(n.startswith(m + ".") for m in TESTS)]
    left = []
    t0 = time.time()
    for i, name in enumerate(names, 1):
        k = killed(name)
        print(f"{i}/{len(names)} {'killed  ' if k else 'SURVIVED'} {name}", flush=True)
        if not k:
            left.append(name)
    lines = [
        f"\n## {time.strftime('%Y-%m-%d %H:%M')}: direct re-run of {len(names)} reported survivors "
        f"({time.time() - t0:.0f} s): {len(names) - len(left)} killed, {len(left)} survived\n"
    ]
    for name in left:
        diff = subprocess.run(["mutmut", "show", name], cwd=ROOT, capture_output=True, text=True).stdout
        lines.append(f"### {name}\n\n```diff\n{diff.strip()}\n```\n")
    with open(ROOT / "bench" / "results" / "mutation_survivors.md", "a") as f:
        f.write("\n".join(lines))
    print(lines[0])


if __name__ == "__main__":
    main()
