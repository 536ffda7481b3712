"""The model-lifecycle commands: train, models, serve, jobs, demo. Heavy imports wait for the command.

With --json, a command prints exactly one JSON document on stdout and every human line on stderr, so
`genfactory models --json | jq` and `json.loads(...)` just work.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from dataclasses import asdict, is_dataclass


def train(args) -> None:
    from gen_factory.data.validate import DataValidationError
    from gen_factory.services.pipeline import TrainJob, train_and_register

    fields = {k: v for k, v in vars(args).items() if k not in ("func", "json")}
    types = {}
    for item in args.column_types or []:
        name, sep, kind = item.rpartition("=")
        if not sep or not name:
            raise DataValidationError("--column-type", repr(item),
                                      "write NAME=categorical, e.g. --column-type zip=categorical")
        types[name] = kind
    fields["column_types"] = types or None
    job = TrainJob(**fields)
    if not args.json:
        train_and_register(job)
        return
    # Our lines and the Ray workers' (Ray prints them to whatever sys.stdout is) go to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        result = train_and_register(job)
    print_json({"model": result.pop("ref"), **result})


def models(args) -> None:
    from gen_factory import registry

    rows = registry.list_models()
    if args.json:
        print_json(rows)
        return
    if not rows:
        print("no registered models yet; train one with `genfactory train digits`")
    for row in rows:
        aliases = ", ".join(f"@{a}=v{v}" for a, v in row["aliases"].items()) or "-"
        print(f"{row['name']:<32} latest v{row['latest_version']}  {aliases}  {row['description']}")


def print_json(value: object) -> None:
    """`value` as strict JSON on stdout: NaN and infinities (a figure with nothing to measure) as null."""
    json.dump(jsonable(value), sys.stdout, indent=1, allow_nan=False)
    print()


def jsonable(value: object) -> object:
    """Plain JSON types for results: dataclasses (a ModelRef also gives its uri), NumPy values, paths."""
    if is_dataclass(value) and not isinstance(value, type):
        fields = asdict(value)
        if hasattr(value, "uri"):
            fields["uri"] = value.uri
        return jsonable(fields)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # NumPy scalars and arrays
        return jsonable(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)  # a Path, an enum: their text is what a script wants


def serve(args) -> None:
    from gen_factory import settings
    from serving.app import direct_url, start, stop

    url = start(args.host, args.port, insecure=args.insecure)
    auth = "bearer token required" if settings.api_token() else "no token (open to whoever reaches the port)"
    print(f"gen_factory API at {url}  (docs: {url}/docs; {auth}); Ctrl-C stops it", flush=True)
    direct = direct_url()
    if direct:
        print(f"an API replica also answers directly at {direct} (Serve direct ingress: one hop fewer)")
    _wait_for_stop_signal()
    print("stopping the API and its Ray processes", flush=True)
    stop()


def _wait_for_stop_signal() -> None:
    """Block until SIGINT or SIGTERM. Ray's own SIGTERM handler exits at once without stopping Serve;
    these handlers replace it, so the caller can shut down in order."""
    import signal
    import threading

    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    while not stopping.wait(1.0):
        pass


def jobs_submit(args) -> int:
    from gen_factory.services import jobs

    job_id = jobs.submit(args.spec, args.address)
    print(f"submitted {job_id} to {args.address}; follow it with `genfactory jobs logs {job_id}`")
    if args.wait:
        status = jobs.wait(args.address, job_id)
        print(jobs.client(args.address).get_job_logs(job_id))
        print(f"{job_id}: {status}")
        return 0 if status == "SUCCEEDED" else 1
    return 0


def jobs_action(args) -> None:
    from gen_factory.services import jobs

    if args.action == "list":
        for info in jobs.client(args.address).list_jobs():
            print(f"{info.submission_id or info.job_id:<40} {info.status.value:<10} {info.entrypoint}")
        return
    answer = jobs.act(args.address, args.action, args.job_id)
    if args.action == "status":
        print(answer.value)
    elif args.action == "logs":
        print(answer, end="")
    else:
        print("stopped" if answer else "not running")


def demo(args) -> None:
    from gen_factory.cli.demo import run_demo

    run_demo(port=args.port, workers=args.workers, keep_serving=args.keep_serving)
