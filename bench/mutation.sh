#!/usr/bin/env bash
# Mutation testing of the scoring, region, selection, reliability and data-map modules (pyproject's
# [tool.mutmut]), by hand: pip install mutmut==3.8.1; bash bench/mutation.sh  (about 5 minutes on 2 cores).
# Appends the counts per function to bench/results/mutation.md; `mutmut show NAME` prints one mutant.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf mutants
start=$(date +%s)
mutmut run >/dev/null 2>&1 || true
results=$(mutmut results 2>/dev/null || true)
{
  echo "## $(date -u '+%Y-%m-%d %H:%M') mutmut $(python3 -c 'import mutmut; print(mutmut.__version__)'), $(( $(date +%s) - start )) s"
  echo
  echo "survived: $(grep -c ': survived' <<<"$results" || true) of $(find mutants -name 'mutmut-stats.json' -exec python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["duration_by_test"]))' {} \; 2>/dev/null | head -1) tests' mutants; per function:"
  echo
  echo '```'
  grep ': survived' <<<"$results" | sed 's/__mutmut_[0-9]*: survived//' | sort | uniq -c || true
  echo '```'
} >>bench/results/mutation.md
tail -40 bench/results/mutation.md
