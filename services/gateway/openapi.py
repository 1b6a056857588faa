"""The OpenAPI 3.1 document, built from the routes themselves.

Handlers read their bodies with msgspec (for exact, field-naming errors), so Litestar
cannot see them; each handler declares its body, responses and query in `opt`, and this
module turns that into the document, with schemas from `msgspec.json.schema_components`.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Litestar, Request, get
from litestar.routes import HTTPRoute

from services.gateway.schemas import ErrorBody

_PATH_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def operations(app: Litestar) -> list[tuple[str, str, Any]]:
    """(path, method, handler) of every documented operation (CORS preflight excluded)."""
    found: list[tuple[str, str, Any]] = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        if route.path_format == "/ui" or route.path_format.startswith("/ui/"):
            continue  # the dashboard's pages are not part of the API
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods):
                if method in ("OPTIONS", "HEAD"):
                    continue
                found.append((route.path_format, method, handler))
    return found


def build(
    app: Litestar, title: str = "HowlerHire Jobs gateway", version: str = "1"
) -> dict[str, Any]:
    types: list[Any] = [ErrorBody]
    for _, _, handler in operations(app):
        opt = handler.opt
        if opt.get("body") is not None:
            types.append(opt["body"])
        types.extend(opt.get("responses", {}).values())
    schemas, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    schema_of = dict(zip(map(id, types), schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for path, method, handler in operations(app):
        opt = handler.opt
        doc = (handler.fn.__doc__ or "").strip()
        params = [
            {"name": _camel(name), "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PATH_PARAM.findall(path)
        ]
        params += [
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": text,
                "schema": {"type": "string"},
            }
            for name, text in opt.get("query", {}).items()
        ]
        params += [
            {
                "name": name,
                "in": "header",
                "required": False,
                "description": text,
                "schema": {"type": "string"},
            }
            for name, text in opt.get("headers", {}).items()
        ]
        operation: dict[str, Any] = {
            "operationId": handler.handler_name,
            "summary": opt.get("summary", ""),
            "description": " ".join(doc.split()),
            "responses": {
                str(code): {
                    "description": _reason(code),
                    "content": {"application/json": {"schema": schema_of[id(kind)]}},
                }
                for code, kind in sorted(opt.get("responses", {}).items())
            },
        }
        if params:
            operation["parameters"] = params
        if "body" in opt:
            operation["requestBody"] = {
                "required": opt["body"] is not Any,
                "content": {"application/json": {"schema": schema_of[id(opt["body"])]}},
            }
        if path in ("/health", "/unsubscribe"):  # no bearer token
            operation["security"] = []
        elif path.startswith("/e/"):
            operation["security"] = [{"bearer": []}, {}]
        paths.setdefault(_PATH_PARAM.sub(lambda m: "{" + _camel(m.group(1)) + "}", path), {})[
            method.lower()
        ] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Triggers, Inngest-compatible events and workflow instances. "
            "Every route but /health needs `Authorization: Bearer "
            "<WORKFLOWS_AUTH_TOKEN>`; `/e/{eventKey}` also accepts a "
            "configured event key in its path.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def _reason(code: int) -> str:
    return {
        200: "OK",
        201: "Created",
        202: "Accepted",
        400: "Malformed request",
        401: "Missing or invalid token",
        404: "Not found",
        409: "Not allowed now",
        413: "Body too large",
        422: "Invalid field",
        503: "NATS unavailable; retry",
    }.get(code, "")


@get(
    "/openapi.json",
    media_type="application/json",
    opt={"summary": "This document", "responses": {401: ErrorBody}},
)
async def openapi_document(request: Request[Any, Any, Any]) -> bytes:
    """The OpenAPI 3.1 description of every route."""
    app = request.app
    cached = getattr(app.state, "openapi", None)
    if cached is None:
        cached = app.state.openapi = msgspec.json.encode(build(app))
    return cached
