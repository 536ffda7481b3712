"""Two real Ray nodes, a real S3 server and a real node loss on one machine (issue 17, part 3).

The head runs in this machine's network namespace; the second node runs in a network namespace of
its own, joined to the head by a veth pair (10.254.N.1 <-> 10.254.N.2), so Ray, gloo and S3 traffic
between the two crosses a network interface as it would between hosts. Where no namespace can be made
(not root), the second node joins from 127.0.0.2 on this host instead, and the run says why. Both
nodes share this machine's filesystem, which holds the MLflow SQLite store (between real hosts, an
MLflow server: docs/cluster.md).

1. moto's standalone S3 server and a bucket; every node gets the endpoint and keys (AWS_* variables).
2. `ray start --head` and, in the namespace, `ray start --address`: one CPU each, so the two training
   workers (and the two bulk writers) land one per node. Run as `.venv/bin/ray` with the venv *not* on
   PATH, as a new user would: `genfactory jobs submit` must work all the same.
3. `genfactory jobs submit` of a table job; Ray Train checkpoints go to s3://gen-factory/ray-results.
4. After its first checkpoint, SIGKILL of the second node's raylet, then the node is started again.
   Ray Train runs with *fixed* scaling (2 workers): the lost worker fails the group, the controller
   waits for room for 2 workers, and resumes from the latest checkpoint once the node is back. Not
   elastic scaling, which would go on with 1 worker: the GAN's global batch is split over the workers
   and its noise is seeded per rank, so a fixed world keeps a resumed run the run it would have been.
5. Bulk generation (`services.bulk.generate_dataset`) into s3://gen-factory/bulk with two writers, one per
   node, then `genfactory verify` of the manifest.

Prints each command as it runs it (README "A cluster in five minutes" shows the same ones), where
each rank of each attempt ran, and `RESULT multinode nodes=N node_kill_survived=0|1
bulk_manifest_ok=0|1`. Everything it starts is stopped, and the namespace deleted, on any exit.

Run (as root for the namespace): `.venv/bin/python bench/multinode.py [--epochs 40] [--rows 200000]`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

BIN = Path(sys.executable).parent
STARTED = time.time()


def say(text: str) -> None:
    """A line of the run's story, with the seconds since it began."""
    print(f"[{time.time() - STARTED:5.1f}s] {text}", flush=True)
BUCKET = "gen-factory"
STORAGE = f"s3://{BUCKET}/ray-results"
BULK = f"s3://{BUCKET}/bulk"
MAKE_BUCKET = f"import pyarrow.fs as f; f.FileSystem.from_uri('s3://{BUCKET}?allow_bucket_creation=true')" \
    f"[0].create_dir('{BUCKET}')"
S3_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass
class Net:
    """Where the two nodes live: `prefix` runs a command on the second node's network."""

    head_ip: str
    node_ip: str
    prefix: list[str] = field(default_factory=list)
    head_if: str = ""
    node_if: str = ""
    namespace: str = ""
    why: str = ""

    def gloo_env(self, head: bool) -> dict[str, str]:
        """gloo picks its interface from the hostname, whose address is not in the namespace: name it."""
        name = self.head_if if head else self.node_if
        return {"GLOO_SOCKET_IFNAME": name} if name else {}


class Run:
    """The processes and network this run made, undone by `close` in reverse order."""

    def __init__(self, root: Path):
        self.root = root
        self.procs: dict[str, subprocess.Popen] = {}
        self.undo: list[list[str]] = []

    def sh(self, cmd: list[str], show: bool = True, **kw) -> subprocess.CompletedProcess:
        if show:
            say(f"$ {shlex.join(cmd)}")
        return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)

    def spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
        """A long-running process in its own session (stopped by process group), output in logs/."""
        say(f"$ {shlex.join(cmd)} &")
        log = open(self.root / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.procs[name] = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        return self.procs[name]

    def close(self, timeout: float = 15) -> None:
        """SIGTERM to every process group at once (each `ray start --block` stops its node's processes
        on it), SIGKILL to what is left after `timeout`, then to strays, then the network undone."""
        procs = list(reversed(self.procs.values()))
        self.procs.clear()
        for proc in procs:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.time() + timeout
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        for pid in own_pids(str(self.root)):  # Ray processes that left their group (workers, agents)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for cmd in reversed(self.undo):
            subprocess.run(cmd, capture_output=True)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def own_pids(marker: str) -> list[int]:
    """Processes whose command line or an open file names `marker` (this run's own directory): Ray's
    agents rename themselves (`ray::DashboardAgent`) but keep their log files under it open."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid() and _names(entry, marker):
            pids.append(int(entry.name))
    return pids


def _names(proc: Path, marker: str) -> bool:
    try:
        if marker in (proc / "cmdline").read_bytes().decode(errors="replace"):
            return True
        return any(os.readlink(fd).startswith(marker) for fd in (proc / "fd").iterdir())
    except OSError:
        return False


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def make_net(run: Run) -> Net:
    """The second node's own network namespace and a veth pair to it; where that is refused, loopback."""
    tag = str(os.getpid() % 100_000)
    ns, head_if, node_if = f"gf-node-{tag}", f"gfh{tag}", f"gfn{tag}"
    net = f"10.254.{os.getpid() % 250 + 1}"
    inside = ["ip", "netns", "exec", ns]
    try:
        run.sh(["ip", "netns", "add", ns])
        run.undo.append(["ip", "netns", "del", ns])  # deleting it removes both veth ends
        run.sh(["ip", "link", "add", head_if, "type", "veth", "peer", "name", node_if, "netns", ns])
        run.sh(["ip", "addr", "add", f"{net}.1/30", "dev", head_if])
        run.sh(["ip", "link", "set", head_if, "up"])
        run.sh([*inside, "ip", "addr", "add", f"{net}.2/30", "dev", node_if])
        run.sh([*inside, "ip", "link", "set", node_if, "up"])
        run.sh([*inside, "ip", "link", "set", "lo", "up"])
    except (subprocess.CalledProcessError, FileNotFoundError) as err:
        why = getattr(err, "stderr", "") or str(err)
        say(f"no network namespace ({why.strip()}): the second node joins from 127.0.0.2 on this host")
        return Net("127.0.0.1", "127.0.0.2", why=why.strip())
    return Net(f"{net}.1", f"{net}.2", inside, head_if, node_if, ns)


def node_env(net: Net, s3: str, head: bool) -> dict[str, str]:
    """What `ray start` runs with: the venv *not* on PATH, token auth, the S3 endpoint and keys."""
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != BIN)
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "VIRTUAL_ENV")}
    env.update(PATH=path, RAY_AUTH_MODE="token", AWS_ENDPOINT_URL=s3, RAY_TRAIN_ENABLE_STATE_TRACKING="1",
               **S3_KEYS, **net.gloo_env(head))
    if head:  # a lost node is declared dead after ~3 s, not ~15 s (Ray's default suits flaky networks)
        env.update(RAY_health_check_period_ms="1000", RAY_health_check_failure_threshold="3")
    # The training job's driver runs here: the resumed attempt waits up to 5 minutes (not Ray Train's
    # 60 s) for the returning node, whose `ray start` takes longer than a minute on a loaded machine.
    env["RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"] = "300"
    return env


def start_s3(run: Run, net: Net) -> str:
    """moto's S3 server on the head's address, where both nodes reach it; returns its endpoint."""
    port = free_port(net.head_ip)
    run.spawn("s3", [str(BIN / "moto_server"), "-H", net.head_ip, "-p", str(port)], dict(os.environ))
    return f"http://{net.head_ip}:{port}"


def make_bucket(run: Run, endpoint: str) -> None:
    """The bucket of checkpoints and bulk output, once the server answers (endpoint and keys: AWS_*)."""
    wait_for(lambda: requests.get(endpoint, timeout=2).ok, "the S3 server", 60)
    run.sh([sys.executable, "-c", MAKE_BUCKET])


def start_head(run: Run, net: Net, s3: str) -> tuple[str, str]:
    """`ray start --head`; returns (GCS address, dashboard URL)."""
    gcs, dash = free_port(net.head_ip), free_port(net.head_ip)
    run.spawn("head", [str(BIN / "ray"), "start", "--head", f"--node-ip-address={net.head_ip}",
                       f"--port={gcs}", f"--dashboard-host={net.head_ip}", f"--dashboard-port={dash}",
                       f"--ray-client-server-port={free_port(net.head_ip)}", *node_flags(run.root / "head")],
              node_env(net, s3, head=True))
    return f"{net.head_ip}:{gcs}", f"http://{net.head_ip}:{dash}"


def start_node(run: Run, net: Net, s3: str, gcs: str, life: int = 1) -> str:
    """`ray start --address` on the second node's network; each `life` has a temp dir of its own, so a
    restarted node never meets the sockets of the one it replaces. Returns that dir."""
    temp_dir = run.root / f"node2-{life}"
    run.spawn(f"node2-{life}", [*net.prefix, str(BIN / "ray"), "start", f"--address={gcs}",
                                f"--node-ip-address={net.node_ip}", *node_flags(temp_dir)],
              node_env(net, s3, head=False))
    return str(temp_dir)


def node_flags(temp_dir: Path) -> list[str]:
    """One CPU per node; a temp dir and agent port of its own (another Ray may run on this machine)."""
    return ["--num-cpus=1", f"--temp-dir={temp_dir}",
            f"--dashboard-agent-listen-port={free_port('127.0.0.1')}", "--disable-usage-stats", "--block"]


def get(url: str):
    """GET with the cluster's token (Ray >= 2.59 clusters use token authentication)."""
    token = Path.home() / ".ray" / "auth_token"
    headers = {"Authorization": f"Bearer {token.read_text().strip()}"} if token.exists() else {}
    resp = requests.get(url, headers=headers, timeout=10)
    resp.raise_for_status()
    return resp.json()


def wait_for(check, what: str, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if check():
                return
        except (requests.RequestException, OSError, KeyError, ValueError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")


def alive_nodes(dash: str) -> dict[str, str]:
    """node id -> IP of the cluster's live nodes."""
    nodes = get(f"{dash}/api/v0/nodes?limit=100")["data"]["result"]["result"]
    return {n["node_id"]: n["node_ip"] for n in nodes if n["state"] == "ALIVE"}


def kill_raylet(temp_dir: str) -> int:
    """SIGKILL the raylet of the node with this temp dir; returns its pid."""
    marker = f"{temp_dir}/"
    pids = [p for p in own_pids(marker) if Path(f"/proc/{p}/exe").resolve().name == "raylet"
            and marker in Path(f"/proc/{p}/cmdline").read_text(errors="replace")]
    if not pids:
        raise RuntimeError("the second node's raylet is not running")
    os.kill(pids[0], signal.SIGKILL)
    say(f"$ kill -9 {pids[0]}   # the second node's raylet")
    return pids[0]


def checkpoints(run_name: str) -> list[str]:
    """The run's checkpoint folders on S3."""
    import pyarrow.fs

    fs, root = pyarrow.fs.FileSystem.from_uri(f"{STORAGE}/{run_name}")
    infos = fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))
    return [i.base_name for i in infos if i.base_name.startswith("checkpoint_")]


def job_spec(root: Path, name: str, epochs: int) -> Path:
    path = root / "job.yaml"
    path.write_text(json.dumps({  # JSON is YAML
        "name": name, "dataset": "breast_cancer", "label_column": "label", "seed": 0,
        "model": {"epochs": epochs, "encoder_epochs": 1, "batch_size": 64, "refit": False},
        "resources": {"workers": 2}, "registry": {"alias": "champion"},
    }, indent=2))
    return path


def placements(dash: str, run_name: str) -> list[tuple[str, list[tuple[int, str, str]]]]:
    """(status, [(rank, node IP, node id)]) per attempt of the run, from Ray Train's state API."""
    runs = [r for r in get(f"{dash}/api/train/v2/runs/v1")["train_runs"] if r["name"] == run_name]
    return [(a["status"], sorted((w["world_rank"], w["node_ip"], w["node_id"]) for w in a["workers"]))
            for r in runs for a in r["attempts"]]


def train_with_a_node_loss(run: Run, net: Net, s3: str, gcs: str, dash: str, epochs: int) -> tuple[int, int]:
    """Submit the job, kill the second node after the first checkpoint, bring it back; (nodes, survived)."""
    from gen_factory.services import jobs

    name = "multinode-table"
    out = run.sh([str(BIN / "genfactory"), "jobs", "submit", str(job_spec(run.root, name, epochs)),
                  "--address", dash]).stdout
    job_id = re.search(r"submitted (\S+)", out).group(1)
    wait_for(lambda: checkpoints(name), "the first checkpoint on S3", 120)
    say(f"first checkpoint on S3: {checkpoints(name)}")
    kill_raylet(str(run.root / "node2-1"))
    start_node(run, net, s3, gcs, life=2)  # the lost node's `ray start --block` ends its other processes
    status = jobs.wait(dash, job_id, timeout_s=600, poll_s=0.5)
    logs = jobs.client(dash).get_job_logs(job_id)
    (run.root / "logs" / "job.log").write_text(logs)
    resumed = "resuming from the checkpoint" in logs
    attempts = placements(dash, name)
    for i, (state, ranks) in enumerate(attempts, 1):
        where = ", ".join(f"rank {r} on {ip} (node {nid[:8]})" for r, ip, nid in ranks)
        say(f"attempt {i} {state}: {where}")
    say(f"job {job_id}: {status}; resumed from a checkpoint: {resumed}")
    if status != "SUCCEEDED":
        print(logs[-3000:])
    nodes = len({ip for _, ip, _ in attempts[-1][1]}) if attempts else 0
    return nodes, int(status == "SUCCEEDED" and resumed and len(attempts) >= 2)


def bulk(run: Run, gcs: str, dash: str, rows: int) -> int:
    """Bulk generation to S3 through the cluster, then `genfactory verify`; 1 when the manifest verifies.
    Where the writers ran is printed: with few rows one actor may write every shard before the other
    has started (Ray Data does not wait for the whole pool)."""
    env = {**os.environ, "RAY_ADDRESS": gcs}
    # The library call: `genfactory generate --out` takes a local path (argparse's Path folds s3:// to s3:/).
    code = ("from gen_factory.services.bulk import generate_dataset; "
            f"generate_dataset('multinode-table@champion', '{BULK}', rows={rows}, workers=2, "
            f"block_rows={max(1, rows // 8)})")
    run.sh([sys.executable, "-c", code], env=env)
    ips = alive_nodes(dash)
    actors = get(f"{dash}/api/v0/actors?limit=1000&detail=1")["data"]["result"]["result"]
    writers = sorted({ips.get(a["node_id"], a["node_id"][:8]) for a in actors
                      if "ShardWriter" in a["class_name"] and a.get("node_id")})  # placed ones
    say(f"bulk writers ran on: {', '.join(writers)}")
    check = subprocess.run([str(BIN / "genfactory"), "verify", BULK], env=env, text=True, capture_output=True)
    say(f"$ genfactory verify {BULK}\n{check.stdout.strip()}")
    return int(check.returncode == 0)


def show_logs(logs: Path, lines: int = 15) -> None:
    """The last lines of each process's output, before the directory goes."""
    for path in sorted(logs.glob("*.log")):
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        print(f"--- {path.name}\n" + "\n".join(tail), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40, help="GAN epochs of the job (default: 40)")
    parser.add_argument("--rows", type=int, default=200_000, help="rows to bulk-generate (default: 200000)")
    parser.add_argument("--keep", type=Path, help="copy the processes' logs (and the job's) into this folder")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="gfmn-", dir="/tmp"))  # short: Ray's socket paths are limited
    (root / "logs").mkdir()
    say(f"cluster files under {root}")
    os.environ.update(GENFACTORY_HOME=str(root / "home"), MLFLOW_TRACKING_URI=f"sqlite:///{root}/mlflow.db",
                      GENFACTORY_RAY_STORAGE=STORAGE, GENFACTORY_PROGRESS="off", RAY_AUTH_MODE="token",
                      **S3_KEYS)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` cleans up
    run = Run(root)
    nodes = survived = bulk_ok = 0
    try:
        net = make_net(run)
        s3 = start_s3(run, net)
        os.environ["AWS_ENDPOINT_URL"] = s3
        gcs, dash = start_head(run, net, s3)
        start_node(run, net, s3, gcs)  # at once: it waits for the head's GCS itself
        make_bucket(run, s3)
        wait_for(lambda: len(alive_nodes(dash)) == 2, "the second node", 90)
        say(f"nodes: {sorted(alive_nodes(dash).values())}")
        nodes, survived = train_with_a_node_loss(run, net, s3, gcs, dash, args.epochs)
        bulk_ok = bulk(run, gcs, dash, args.rows)
    except BaseException:
        show_logs(root / "logs")
        raise
    finally:
        run.close()
        if args.keep:
            shutil.copytree(root / "logs", args.keep, dirs_exist_ok=True)
        shutil.rmtree(root, ignore_errors=True)
    print(f"RESULT multinode nodes={nodes} node_kill_survived={survived} bulk_manifest_ok={bulk_ok}")
    return 0 if (nodes, survived, bulk_ok) == (2, 1, 1) else 1


if __name__ == "__main__":
    sys.exit(main())
