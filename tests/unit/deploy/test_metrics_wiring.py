"""Every deployed service serves /metrics where Prometheus looks: METRICS_PORT 9464 in
compose and Kubernetes, a named container port and the scrape annotations on each pod."""

from __future__ import annotations

from typing import Any

from shared.config import EngineSettings, load_settings
from tests.unit.deploy.test_manifests import DEPLOYED, _compose, rendered  # noqa: F401

PORT = "9464"


def test_compose_services_serve_metrics_on_the_scraped_port() -> None:
    services = _compose("compose.yaml")["services"]
    for name in DEPLOYED:
        env = services[name]["environment"]
        assert (env["METRICS_PORT"], env["METRICS_HOST"]) == (PORT, "0.0.0.0"), name
        assert env["LOG_FORMAT"] == "json", name
        settings = load_settings(EngineSettings, env)
        assert settings.metrics_port == int(PORT)
    assert not any(PORT in str(svc.get("ports", "")) for svc in services.values())
    monitoring = _compose_profile()
    assert "prometheus" in monitoring["services"]


def _compose_profile() -> dict[str, Any]:
    import json
    import subprocess
    from pathlib import Path

    import compose

    from tests.unit.deploy.test_manifests import REPO

    binary = Path(compose.__file__).parent / "docker-compose"
    done = subprocess.run(
        [str(binary), "--env-file", "deploy/ci.env", "-f", "compose.yaml",
         "--profile", "monitoring", "config", "--format", "json"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_kubernetes_pods_are_annotated_and_expose_the_metrics_port(
    rendered: list[dict[str, Any]],  # noqa: F811
) -> None:
    deployments = {d["metadata"]["name"]: d for d in rendered if d["kind"] == "Deployment"}
    config = next(d for d in rendered if d["kind"] == "ConfigMap")["data"]
    assert config["METRICS_PORT"] == PORT
    for name in DEPLOYED:
        template = deployments[name]["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        assert annotations == {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": PORT,
            "prometheus.io/path": "/metrics",
        }, name
        (container,) = template["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["metrics"] == int(PORT), name
        env = {e["name"]: e for e in container["env"]}
        assert env["METRICS_PORT"]["valueFrom"]["configMapKeyRef"]["key"] == "METRICS_PORT"
        assert env["METRICS_HOST"]["value"] == "0.0.0.0"
