"""State shared across runs: invalidating the step cache, reading the rate limits.

```
DELETE /cache/{workflow}?prefix=          remove a workflow's cached step results
DELETE /cache/{workflow}/{step}?prefix=   … of one step (keys starting with `prefix`)
GET    /rate-limits                       every shared rate limit's tokens and drain
```
"""

from __future__ import annotations

from litestar import delete, get
from litestar.params import FromPath, FromQuery

from services.gateway.compat import BAD
from services.gateway.engine import EngineDep
from services.gateway.errors import ApiError
from services.gateway.schemas import ErrorBody
from shared.wire import CacheInvalidated, RateLimitInfo, RateLimitList

MAX_STEP = 200
MAX_PREFIX = 400
RESPONSES = {200: CacheInvalidated, 404: ErrorBody, **BAD}


def _check(engine: EngineDep, workflow: str, step: str | None, prefix: str | None) -> None:
    if workflow not in engine.routes:
        raise ApiError(404, "unknown workflow", "workflow")
    if step is not None and not 0 < len(step) <= MAX_STEP:
        raise ApiError(400, f"step must be 1-{MAX_STEP} characters", "step")
    if prefix is not None and len(prefix) > MAX_PREFIX:
        raise ApiError(400, f"prefix must be at most {MAX_PREFIX} characters", "prefix")


@delete(
    "/cache/{workflow:str}",
    status_code=200,
    opt={
        "summary": "Invalidate a workflow's cached step results",
        "query": {"prefix": "only keys starting with this"},
        "responses": RESPONSES,
    },
)
async def invalidate_workflow_cache(
    engine: EngineDep, workflow: FromPath[str], prefix: FromQuery[str | None] = None
) -> CacheInvalidated:
    """Every step's entries of `workflow` (whose key starts with `prefix`); later runs
    compute them again. A run computing one right now keeps its value but does not store it."""
    _check(engine, workflow, None, prefix)
    removed = await engine.invalidate_cache(workflow, None, prefix or None)
    return CacheInvalidated(workflow=workflow, removed=removed, prefix=prefix or None)


@delete(
    "/cache/{workflow:str}/{step:str}",
    status_code=200,
    opt={
        "summary": "Invalidate one step's cached results",
        "query": {"prefix": "only keys starting with this"},
        "responses": RESPONSES,
    },
)
async def invalidate_step_cache(
    engine: EngineDep,
    workflow: FromPath[str],
    step: FromPath[str],
    prefix: FromQuery[str | None] = None,
) -> CacheInvalidated:
    """As `DELETE /cache/{workflow}`, for the step named `step` only."""
    _check(engine, workflow, step, prefix)
    removed = await engine.invalidate_cache(workflow, step, prefix or None)
    return CacheInvalidated(workflow=workflow, removed=removed, step=step, prefix=prefix or None)


@get(
    "/rate-limits",
    opt={
        "summary": "The shared rate limits now",
        "responses": {200: RateLimitList, 401: ErrorBody, 503: ErrorBody},
    },
)
async def rate_limits(engine: EngineDep) -> RateLimitList:
    """Each limit steps have spent from: tokens available now of its capacity (negative:
    reserved by steps waiting their turn), its rate, and until when a 429 drained it."""
    return RateLimitList(
        limits=[
            RateLimitInfo(
                name=state.name,
                rate=state.rate,
                capacity=state.capacity,
                tokens=state.tokens,
                blocked_until=state.blocked_until,
            )
            for state in await engine.rate_limits()
        ]
    )
