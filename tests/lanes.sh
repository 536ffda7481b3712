#!/usr/bin/env bash
# The suite as two pytest processes side by side, one per core: the tests that start Ray (they share
# one local cluster, one Serve app on its port and session fixtures, so they stay in one process, in
# file order) and the unit tests, with the Ray tests that start a cluster of their own in subprocesses
# (`own_cluster`: serve's signal test, the two-node test), which would otherwise leave a core idle. The
# two-node test sat in the Ray lane until session 10: beside another lane its restarted node once missed
# Ray Train's 60 s; bench/multinode.py gives it 300 s since session 9, and two full runs passed so.
# Three lanes (test_e2e apart) were measured and dropped: 612 s once, then 677 s with the two-node
# test's `ray start` timing out; the suite is CPU-bound on 2 cores (bench/RESULTS.md, session 9).
# pytest-xdist's `--dist loadgroup` would do this, but its groups do not reach the scheduler under
# pytest 9 (every test went to both workers, each starting a cluster).
#
#   tests/lanes.sh PYTHON MARKEXPR [pytest args...]   e.g. tests/lanes.sh .venv/bin/python "not extended"
#
# Both lanes get the extra arguments; the unit lane's output is printed after the Ray lane's; the exit
# status is the first failing lane's.
set -u
python=$1
marks=$2
shift 2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$python" -m pytest -q -m "(not ray or own_cluster) and ($marks)" "$@" >"$log" 2>&1 &
unit=$!
echo "== tests that share one Ray cluster (the others run beside them: their output follows) =="
"$python" -m pytest -q -m "ray and not own_cluster and ($marks)" "$@"
ray_status=$?
wait "$unit"
unit_status=$?
echo "== unit tests, and Ray tests with a cluster of their own =="
cat "$log"
[ "$ray_status" -ne 0 ] && exit "$ray_status"
exit "$unit_status"
