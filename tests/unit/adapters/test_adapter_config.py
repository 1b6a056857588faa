"""Adapter settings, retry-after parsing, Link headers and the storage URL gate (property-based)."""

from __future__ import annotations

import string
import urllib.parse

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.ai import DEFAULT_CHEAP_MODEL, DEFAULT_STRONG_MODEL, AISettings, deprecated_models
from shared.config import load_settings
from shared.http import redact, retry_after_seconds
from shared.sources import parse_link_header
from shared.storage import ForbiddenUrlError, ResumeStorage, StorageSettings


async def test_default_models_are_current() -> None:
    """The default models are not in the installed SDK's deprecation table; the old ones are."""
    table = deprecated_models()
    assert "claude-sonnet-4-5-20250929" in table and "claude-3-5-haiku-20241022" in table
    assert DEFAULT_CHEAP_MODEL not in table and DEFAULT_STRONG_MODEL not in table
    assert "haiku" in DEFAULT_CHEAP_MODEL and "sonnet" in DEFAULT_STRONG_MODEL


async def test_ai_base_url_precedence() -> None:
    """ANTHROPIC_BASE_URL wins; else the gateway's /anthropic; else the public API."""
    gateway = "https://gateway.ai.cloudflare.com/v1/acct/gw"
    assert (
        load_settings(AISettings, {"CLOUDFLARE_AI_GATEWAY_URL": gateway + "/"}).base_url
        == gateway + "/anthropic"
    )
    both = {"CLOUDFLARE_AI_GATEWAY_URL": gateway, "ANTHROPIC_BASE_URL": "http://127.0.0.1:1"}
    assert load_settings(AISettings, both).base_url == "http://127.0.0.1:1"
    assert AISettings().base_url == "https://api.anthropic.com"
    assert "sk-secret" not in repr(AISettings(anthropic_api_key="sk-secret"))


async def test_retry_after_forms() -> None:
    """Seconds, fractions, milliseconds and HTTP-dates are understood and bounded."""
    assert retry_after_seconds({"Retry-After": "2"}) == 2.0
    assert retry_after_seconds({"retry-after": "0"}) == 1.0
    assert retry_after_seconds({"retry-after-ms": "2500"}) == 2.5
    assert (
        retry_after_seconds(
            {"retry-after": "Wed, 21 Oct 2015 07:28:30 GMT"}, now=lambda: 1445412480.0
        )
        == 30.0
    )
    assert retry_after_seconds({"retry-after": "99999999"}) == 86400.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None
    assert redact("key=sk-123456 and sk-123456", ["sk-123456", None]) == "key=*** and ***"


async def test_link_header_parsing() -> None:
    """GitHub's Link header gives next/last/first/prev."""
    links = parse_link_header(
        '<https://api.github.com/user/1/repos?page=3>; rel="next", '
        '<https://api.github.com/user/1/repos?page=3>; rel="last", '
        '<https://api.github.com/user/1/repos?page=1>; rel="first"'
    )
    assert links["next"].endswith("page=3") and links["first"].endswith("page=1")


ORIGIN = "https://proj.supabase.co"
URL_CHARS = string.ascii_letters + string.digits + "%./:@[]?#-_~!$&'()*+,;=\\ \t"


async def test_storage_gate_only_ever_targets_the_bucket() -> None:
    """For any input the gate either refuses it or yields a request URL inside our bucket."""
    async with httpx.AsyncClient() as client:
        store = ResumeStorage(
            StorageSettings(supabase_url=ORIGIN, supabase_service_role_key="k"), client
        )
        prefix = f"{ORIGIN}/storage/v1/object/resumes/"

        @settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
        @given(
            st.one_of(
                st.text(URL_CHARS, max_size=60),
                st.text(URL_CHARS, max_size=40).map(
                    lambda s: f"{ORIGIN}/storage/v1/object/public/resumes/{s}"
                ),
                st.text(URL_CHARS, max_size=40).map(
                    lambda s: f"https://{s}/storage/v1/object/resumes/a.pdf"
                ),
                st.text(URL_CHARS, max_size=40).map(lambda s: f"{ORIGIN}{s}"),
            )
        )
        def check(url: str) -> None:
            try:
                path = store.object_path(url)
            except ForbiddenUrlError:
                return
            target = store.object_url(path)
            assert target.startswith(prefix)
            parts = urllib.parse.urlsplit(target)
            assert (parts.scheme, parts.netloc) == ("https", "proj.supabase.co")
            segments = urllib.parse.unquote(parts.path).split("/")
            assert ".." not in segments and "." not in segments and "" not in segments[1:]

        check()
