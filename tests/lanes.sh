#!/usr/bin/env bash
# The suite as three pytest processes side by side. Each process that starts Ray starts one local
# cluster that its tests share (one Serve app, session fixtures), so Ray tests stay together in a
# process, in file order; two such processes are two clusters on the machine, which Ray allows.
#   1. end-to-end: test_e2e's models and API (marked `e2e`), printed live;
#   2. the other Ray tests: bad data, bulk output, CLI, references, scoring files, and the two-node
#      run of bench/multinode.py (its cluster in subprocesses: where it waits, these compute);
#   3. the unit tests, and the Ray tests that start a cluster of their own in subprocesses
#      (`own_cluster`: serve's signal test).
# The Ray lanes wait on Ray far more than they compute (worker-group starts, actor starts, polling),
# so three lanes on two cores finish sooner than two: bench/RESULTS.md has the times.
# pytest-xdist's `--dist loadgroup` would do this, but its groups do not reach the scheduler under
# pytest 9 (every test went to both workers, each starting a cluster).
#
#   tests/lanes.sh PYTHON MARKEXPR [pytest args...]   e.g. tests/lanes.sh .venv/bin/python "not extended"
#
# Every lane gets the extra arguments; the other lanes' output is printed after the first's; the exit
# status is the first failing lane's.
set -u
python=$1
marks=$2
shift 2
ray_log=$(mktemp)
unit_log=$(mktemp)
trap 'rm -f "$ray_log" "$unit_log"' EXIT
"$python" -m pytest -q -m "ray and not e2e and not own_cluster and ($marks)" "$@" >"$ray_log" 2>&1 &
ray_lane=$!
"$python" -m pytest -q -m "(not ray or own_cluster) and ($marks)" "$@" >"$unit_log" 2>&1 &
unit=$!
echo "== end-to-end tests (two other lanes run beside them: their output follows) =="
"$python" -m pytest -q -m "ray and e2e and not own_cluster and ($marks)" "$@"
e2e_status=$?
wait "$ray_lane"
ray_status=$?
wait "$unit"
unit_status=$?
echo "== the other tests that share a Ray cluster =="
cat "$ray_log"
echo "== unit tests, and Ray tests with a cluster of their own =="
cat "$unit_log"
for status in "$e2e_status" "$ray_status" "$unit_status"; do
  [ "$status" -ne 0 ] && exit "$status"
done
exit 0
