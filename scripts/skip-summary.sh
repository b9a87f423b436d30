#!/usr/bin/env bash
# Lists the tests that skipped, from the log the tests append to (EKUWATCH_SKIP_LOG, one line
# "binary::test: reason" per skip; observer/tests/common/mod.rs). scripts/test.sh prints it at its
# end, because cargo hides what a passing test printed: without this a run without root or
# ../shared looked like "all tests passed". Repeated lines are shown once.
#   scripts/skip-summary.sh LOG      # prints nothing when LOG is missing or empty
set -euo pipefail
log=${1:?usage: scripts/skip-summary.sh LOG}
[ -s "$log" ] || exit 0
lines=$(awk 'NF && !seen[$0]++' "$log")
n=$(printf '%s\n' "$lines" | wc -l)
echo "skipped: $n (EKUWATCH_REQUIRE_ALL=1, as in CI, makes each of these fail)"
printf '%s\n' "$lines" | sed 's/^/  /'
