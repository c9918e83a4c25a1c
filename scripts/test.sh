#!/usr/bin/env bash
# test.sh — the second command of the README, and what CI runs (.ci/run):
# installs missing packages, then builds and runs every test.
#
# Usage: scripts/test.sh [extra mvn args...]     (as root: the real-mount
# tests mount FUSE filesystems; they are skipped where /dev/fuse is missing)
# Runs scripts/deps.sh, then `mvn -B verify` from the repo root: unit tests
# (surefire) in every module, real-mount tests (failsafe, *IT.java) in
# integration-tests against fs/target/dedupfs.jar. Needs no stdin or
# terminal (CI=true works). Ends with one summary line
#     summary: N passed, N failed, N skipped
# and exits with mvn's status.
set -euo pipefail

# The tests name files in UTF-8, and Java maps file names through the locale: an environment
# without a UTF-8 locale (env -i, a bare CI runner) gets C.UTF-8, which Debian always has.
case "${LC_ALL:-${LANG:-}}" in
*[Uu][Tt][Ff]-8* | *[Uu][Tt][Ff]8*) ;;
*)
    unset LC_ALL
    export LANG=C.UTF-8
    ;;
esac

repo=$(dirname -- "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")")
cd "$repo"

bash scripts/deps.sh </dev/null

stamp=$(mktemp)
trap 'rm -f -- "$stamp"' EXIT

echo "test.sh: mvn -B verify $*"
set +e
mvn -B -ntp -Dstyle.color=never verify "$@" </dev/null
rc=$?
set -e

# Count the JUnit reports this run wrote (older ones may lie around locally).
counts=$(python3 - "$stamp" <<'PY'
import glob, os, sys, xml.etree.ElementTree as ET
since = os.path.getmtime(sys.argv[1])
t = f = s = 0
for path in glob.glob("**/target/*-reports/TEST-*.xml", recursive=True):
    if os.path.getmtime(path) < since:
        continue
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        continue
    for suite in [root] if root.tag == "testsuite" else root.iter("testsuite"):
        n = int(suite.get("tests", 0))
        bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skip = int(suite.get("skipped", 0))
        t += n - bad - skip
        f += bad
        s += skip
print(t, f, s)
PY
) || counts="0 0 0"
read -r passed failed skipped <<<"${counts:-0 0 0}"

echo # mvn may leave the cursor after a colour reset
if ((rc == 0)); then
    echo "test.sh: OK (mvn verify exited 0)"
else
    echo "test.sh: FAILED (mvn verify exited $rc; see the errors above)"
fi
echo "summary: $passed passed, $failed failed, $skipped skipped"
exit "$rc"
