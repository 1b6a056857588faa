"""Every settings Struct hides its secrets in repr, and the base checks what fields declare."""

from __future__ import annotations

import importlib
import pkgutil
from typing import get_args

import msgspec
import pytest

import services
import shared
from services.gateway.config import GatewaySettings
from shared.config import EngineSettings, Settings, is_secret, load_settings, mask
from shared.db import DatabaseSettings
from shared.errors import ConfigError

# Settings classes in modules other branches own; they move onto the base when they next
# touch them. Their secret-named fields must be hidden all the same (checked below); URL
# passwords are masked only by the base.
NOT_YET_ON_THE_BASE = {"BoardSettings", "ResumeSettings"}


def _settings_classes() -> list[type[msgspec.Struct]]:
    found: dict[str, type[msgspec.Struct]] = {}
    for package in (shared, services):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            loaded = importlib.import_module(module.name)
            for value in vars(loaded).values():
                if (
                    isinstance(value, type)
                    and issubclass(value, msgspec.Struct)
                    and value.__name__.endswith("Settings")
                    and value is not Settings
                ):
                    found[f"{value.__module__}.{value.__qualname__}"] = value
    return [found[name] for name in sorted(found)]


CLASSES = _settings_classes()


def _is_text(annotation: object) -> bool:
    return annotation is str or str in get_args(annotation)


# Secrets whose shape is checked at start: a valid value of each (still distinctive).
SHAPED = {
    "data_master_keys": "k1:U2VrcjF0LWRhdGFfbWFzdGVyX2tleXMtMDEyMzQ1Njc",
    "progress_token_keys": "k1:Sekr1t-progress_token_keys-0123456789",
}


def _filled(cls: type[msgspec.Struct]) -> tuple[msgspec.Struct, list[str]]:
    """An instance with every text field set to a distinctive value; the values to hide."""
    values: dict[str, str] = {}
    hidden: list[str] = []
    for field in msgspec.structs.fields(cls):
        if not _is_text(field.type):
            continue
        if is_secret(field.name):
            values[field.name] = SHAPED.get(field.name, f"Sekr1t-{field.name}-0123456789")
            hidden.append(values[field.name])
        elif field.name.endswith("url") and cls.__name__ not in NOT_YET_ON_THE_BASE:
            password = f"Pw-{field.name}-9876543210"
            values[field.name] = f"postgresql://app:{password}@db.internal:5432/app"
            hidden.append(password)
    return msgspec.convert(values, cls), hidden


def test_every_settings_class_is_found():
    """The walk finds the settings of the engine, the database, the gateway and adapters."""
    names = {cls.__name__ for cls in CLASSES}
    assert {
        "EngineSettings",
        "DatabaseSettings",
        "MigrateSettings",
        "GatewaySettings",
        "ServerSettings",
        "AISettings",
        "EmailSettings",
        "StorageSettings",
        "HttpSettings",
    } <= names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_repr_hides_every_secret(cls):
    """No secret-named value and no password inside a URL appears in repr or str."""
    settings, hidden = _filled(cls)
    for text in (repr(settings), str(settings), f"{settings!r:>10}"):
        leaked = [value for value in hidden if value in text]
        assert leaked == [], (cls.__name__, text)
    if cls.__name__ not in NOT_YET_ON_THE_BASE:
        assert issubclass(cls, Settings), cls.__name__


def test_database_settings_hide_the_password_and_the_key():
    """DatabaseSettings shows the host but neither the password nor the service key."""
    settings = DatabaseSettings(
        database_url="postgresql://postgres:hunter2-pw@db.example.com:5432/postgres",
        supabase_url="https://p.supabase.co",
        supabase_service_role_key="eyJ-service-role-key",
    )
    text = repr(settings)
    assert "hunter2-pw" not in text and "eyJ-service-role-key" not in text
    assert "postgres:***@db.example.com" in text
    assert "supabase_service_role_key='***'" in text
    assert "database_pool_max=10" in text


def test_secret_names_and_masks():
    """Key, token, secret and password fields are secret; URL and DSN passwords masked."""
    assert all(map(is_secret, ["resend_api_key", "workflows_auth_token", "event_keys"]))
    assert not any(map(is_secret, ["database_url", "keyword_limit", "monkey_count"]))
    assert (
        mask("nats://u:p1@a:4222,nats://u:p2@b:4222") == "nats://u:***@a:4222,nats://u:***@b:4222"
    )
    assert mask("host=db password=p@ss user=x") == "host=db password=*** user=x"
    assert mask("postgresql://u:p@ss@host/db") == "postgresql://u:***@host/db"
    assert mask("https://example.com/a@b") == "https://example.com/a@b"


def test_required_fields_come_from_the_struct():
    """A field without a default is required: a missing or empty variable is named."""
    for environ in ({}, {"WORKFLOWS_AUTH_TOKEN": ""}, {"WORKFLOWS_AUTH_TOKEN": "  "}):
        with pytest.raises(ConfigError, match="WORKFLOWS_AUTH_TOKEN is not set"):
            load_settings(GatewaySettings, environ)
    assert load_settings(GatewaySettings, {"WORKFLOWS_AUTH_TOKEN": "t0k"}).gateway_port == 8787


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"WORKER_CONCURRENCY": "0"}, "WORKER_CONCURRENCY"),
        ({"ACK_WAIT": "0"}, "ACK_WAIT"),
        ({"NATS_REPLICAS": "7"}, "NATS_REPLICAS"),
        ({"DURABILITY": "sometimes"}, "DURABILITY"),
        ({"SHUTDOWN_GRACE": "-1"}, "SHUTDOWN_GRACE"),
    ],
)
def test_ranges_are_checked_when_loading(environ, variable):
    """Out-of-range or unknown values stop the start, naming the variable."""
    with pytest.raises(ConfigError, match=f"^{variable} "):
        load_settings(EngineSettings, environ)


def test_ranges_are_checked_when_built_by_hand():
    """The same Meta constraints hold for a Struct a test or a script builds directly."""
    with pytest.raises(ConfigError, match="WORKER_CONCURRENCY must be >= 1, not 0"):
        EngineSettings(worker_concurrency=0)
    with pytest.raises(ConfigError, match="DURABILITY must be"):
        EngineSettings(durability="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="GATEWAY_PORT must be <= 65535"):
        GatewaySettings(workflows_auth_token="t", gateway_port=70000)
    with pytest.raises(ConfigError, match="DATABASE_POOL_MIN must not be above"):
        DatabaseSettings(database_pool_min=5, database_pool_max=2)
    assert EngineSettings(nats_replicas=3).nats_replicas == 3
