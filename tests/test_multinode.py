"""bench/multinode.py at small size: two real Ray nodes (the second in a network namespace of its own
where this machine allows one), moto's real S3 server, a real SIGKILL of the second node's raylet, and
bulk generation to S3 that verifies. The cluster lives in subprocesses with its own temp dir and free
ports, so the local Ray that other tests start in this process is not touched."""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Its cluster lives in bench/multinode.py's processes (a cluster of its own): tests/lanes.sh runs it beside
# the shared-cluster lane, whose own trainings would otherwise wait for it.
pytestmark = [pytest.mark.ray, pytest.mark.own_cluster]
SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "multinode.py"


def test_two_nodes_survive_a_killed_raylet_and_bulk_generate_to_s3():
    started = time.time()
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--epochs", "20", "--rows", "2000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:  # SIGTERM: the script's `finally` removes its cluster and namespace
        proc.terminate()
        stdout, stderr = proc.communicate(timeout=120)
    run = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    out = run.stdout + run.stderr
    print(f"bench/multinode.py: {time.time() - started:.0f} s\n{out[-4000:]}")
    assert "RESULT multinode nodes=2 node_kill_survived=1 bulk_manifest_ok=1" in run.stdout, out[-4000:]
    assert run.returncode == 0
    assert re.search(r"attempt 1 ERRORED: rank 0 on \S+ .*rank 1 on", run.stdout)
    assert "resumed from a checkpoint: True" in run.stdout
    root = re.search(r"cluster files under (\S+)", run.stdout).group(1)
    namespace = re.search(r"ip netns add (\S+)", run.stdout)
    assert not Path(root).exists()  # everything it made is gone: files, processes, the namespace
    assert not subprocess.run(["pgrep", "-f", root], capture_output=True).stdout
    if namespace:
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert namespace.group(1) not in listed
