"""infra/, jobs/ and serving/config.yaml are validated here: there is no Kubernetes or Docker on
this machine, so the manifests are checked against schemas and against each other."""

import json
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml

from gen_factory.cli.parser import build_parser as _parser
from gen_factory.services.jobs import entrypoint, load_spec, train_args

ROOT = Path(__file__).resolve().parents[1]
KUBERAY = sorted((ROOT / "infra" / "kuberay").glob("*.yaml"))
IMAGE = re.search(r"-t (\S+) \.", (ROOT / "infra/docker/Dockerfile").read_text()).group(1)


def _containers(doc: dict) -> list[dict]:
    spec = doc["spec"]
    cluster = spec.get("rayClusterSpec") or spec.get("rayClusterConfig") or spec
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def test_cluster_launcher_config_matches_rays_schema():
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    config = yaml.safe_load((ROOT / "infra/cluster-launcher/gpu-cluster.yaml").read_text())
    jsonschema.validate(config, schema)
    assert config["docker"]["image"] == IMAGE
    assert config["head_node_type"] in config["available_node_types"]


@pytest.mark.parametrize("path", KUBERAY, ids=lambda p: p.name)
def test_kuberay_manifests_use_one_image_and_the_standard_ports(path):
    doc = yaml.safe_load(path.read_text())
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] in {"RayCluster", "RayJob", "RayService"}
    containers = _containers(doc)
    assert {c["image"] for c in containers} == {IMAGE}
    head_ports = {p["name"]: p["containerPort"] for p in containers[0].get("ports", [])}
    assert head_ports["gcs"] == 6379 and head_ports["dashboard"] == 8265
    serve_port = yaml.safe_load((ROOT / "serving/config.yaml").read_text())["http_options"]["port"]
    if doc["kind"] == "RayService":
        assert head_ports["serve"] == serve_port
    for c in containers:
        for var in c.get("env", []):
            if var["name"] == "MLFLOW_TRACKING_URI":
                assert var["value"].endswith(":5000")  # the port the MLflow stack publishes


def test_rayservice_serves_the_same_application_as_serving_config():
    from ray.serve.schema import ServeDeploySchema

    local = yaml.safe_load((ROOT / "serving/config.yaml").read_text())
    ServeDeploySchema.model_validate(local)
    service = yaml.safe_load((ROOT / "infra/kuberay/rayservice.yaml").read_text())
    remote = yaml.safe_load(service["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(remote)
    for a, b in zip(local["applications"], remote["applications"], strict=True):
        assert (a["import_path"], a["route_prefix"]) == (b["import_path"], b["route_prefix"])
        assert [d["name"] for d in a["deployments"]] == [d["name"] for d in b["deployments"]]
    module, attr = local["applications"][0]["import_path"].split(":")
    app = getattr(__import__(module, fromlist=[attr]), attr)({})
    assert app is not None  # the builder runs and returns a Serve application


def test_rayjob_and_job_specs_are_valid_genfactory_commands():
    rayjob = yaml.safe_load((ROOT / "infra/kuberay/rayjob.yaml").read_text())
    entry = shlex.split(rayjob["spec"]["entrypoint"])
    assert entry[0] == "genfactory"  # the image installs it on PATH
    commands = [entry[1:]] + [train_args(load_spec(p)) for p in sorted((ROOT / "jobs").glob("*.yaml"))]
    for argv in commands:
        assert argv[0] == "train"
        args = _parser().parse_args(argv)  # exits (fails the test) on any unknown flag
        assert args.dataset and args.model_name
    one_class = _parser().parse_args(train_args(load_spec(ROOT / "jobs/breast_cancer_anomaly.yaml")))
    assert one_class.normal_labels == ["benign"] and one_class.fpr == 0.05
    patient = {**load_spec(ROOT / "jobs/breast_cancer_anomaly.yaml"),
               "model": {"patience": 5, "refit": False}}
    parsed = _parser().parse_args(train_args(patient))
    assert parsed.patience == 5 and parsed.refit is False and parsed.warm_refit is True
    cold = {**patient, "model": {"warm_refit": False}}
    assert _parser().parse_args(train_args(cold)).warm_refit is False
    assert parsed.knn_reference is True
    bare = {**patient, "anomaly": {"knn": False}}  # an image scorer without training images in it
    assert _parser().parse_args(train_args(bare)).knn_reference is False


def test_job_entrypoint_runs_the_module_with_the_clusters_python_not_path():
    """A head started as `.venv/bin/ray start` has no `genfactory` on PATH (issue 17)."""
    command = entrypoint(load_spec(ROOT / "jobs/digits.yaml"))
    assert 'exec "$py" -m gen_factory.cli train digits' in command
    assert not command.startswith("genfactory")


def test_mlflow_stack_publishes_the_port_the_cluster_uses():
    compose = yaml.safe_load((ROOT / "infra/mlflow/docker-compose.yaml").read_text())
    mlflow = compose["services"]["mlflow"]
    assert "5000:5000" in mlflow["ports"] and "--port 5000" in mlflow["command"]
    assert (
        "--backend-store-uri postgresql://" in mlflow["command"]
        and "--artifacts-destination s3://" in mlflow["command"]
    )
    assert (ROOT / "infra/mlflow/Dockerfile").exists()
    exposed = re.search(r"EXPOSE (.+)", (ROOT / "infra/docker/Dockerfile").read_text()).group(1).split()
    assert {"6379", "8265", "8000"} <= set(exposed)
