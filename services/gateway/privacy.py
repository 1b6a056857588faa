"""`DELETE /users/{userId}/data`: erase what this system keeps of one user (shared/erasure.py).

Bearer-token only (the web app's server calls it when a user deletes their account).
Without DATA_MASTER_KEYS nothing was sealed, so stream copies could not be made
unreadable: the route answers 503 naming the variable rather than erase half.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, delete
from litestar.params import FromPath

from services.gateway.compat import BAD
from services.gateway.config import GatewaySettings
from services.gateway.engine import EngineDep
from services.gateway.errors import ApiError
from shared.erasure import ErasureReport
from shared.errors import ConfigError

MAX_USER_ID = 256


@delete(
    "/users/{user_id:str}/data",
    status_code=200,
    opt={
        "summary": "Erase one user's data: terminate their runs, shred their key, delete records",
        "responses": {200: ErasureReport, **BAD},
    },
)
async def erase_user_data(
    request: Request[Any, Any, Any], engine: EngineDep, user_id: FromPath[str]
) -> ErasureReport:
    """Terminates the user's running instances, deletes their data key (every sealed copy
    in every stream becomes unreadable), deletes their instance records, index entries,
    step-cache entries, progress events, dead letters and outbox emails, and records an
    audit entry. Idempotent: a repeat finds nothing (`alreadyErased: true`). The web
    app's database rows are the web app's to delete (`notDeleted` says so)."""
    if not user_id or user_id != user_id.strip() or len(user_id) > MAX_USER_ID:
        raise ApiError(
            422, f"userId must be 1-{MAX_USER_ID} characters, no spaces around", "userId"
        )
    settings: GatewaySettings = request.app.state.settings
    actor = request.headers.get("x-requested-by", "").strip()[:64] or "api"
    try:
        return await engine.erase_user(
            user_id, requested_by=f"gateway:{actor}", outbox=settings.email_outbox_dir
        )
    except ConfigError as exc:
        raise ApiError(503, str(exc), None) from None
