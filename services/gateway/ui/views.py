"""The dashboard's pages and form actions (server-rendered; htmx only adds live updates
and the bulk dry-run count). Every operation is the engine's own (`shared.workflow`
`Instances`, `services.gateway.operations.launch_bulk`): the pages re-implement none."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import NotAuthorizedException
from litestar.params import FromPath
from litestar.response import Redirect, Template

from services.gateway.engine import EngineDep
from services.gateway.instances import EVENT_TYPE, MAX_PAGE, USER_ID_MAX
from services.gateway.operations import launch_bulk
from services.gateway.schemas import MAX_DEPTH, BodyError, check_depth
from services.gateway.ui import overview
from services.gateway.ui.render import waterfall
from services.gateway.ui.session import COOKIE, CSRF_FIELD, CSRF_HEADER, Session, Sessions
from shared.bus import INSTANCE_ID
from shared.errors import (
    DeadLetterNotFoundError,
    InstanceNotFoundError,
    InvalidEventError,
    InvalidTransitionError,
    StepNotFoundError,
    UnknownWorkflowError,
)
from shared.schedules import read_schedules
from shared.wire import STATUSES
from shared.workflow import BulkFilter, Instances, InstanceState
from shared.workflow.bulk import ACTIONS
from shared.workflow.feed import last_sequence
from shared.workflow.store import user_of

PAGE = 50
ACTIONS_ON_RUN = ("pause", "resume", "terminate", "restart")
ENGINE_REFUSALS = (
    InvalidTransitionError,
    StepNotFoundError,
    InstanceNotFoundError,
    DeadLetterNotFoundError,
    InvalidEventError,
    UnknownWorkflowError,
)
AnyRequest = Request[Any, Any, State]


class LoginRequired(NotAuthorizedException):
    """No valid session: pages redirect to the login page, other requests get 401."""


class Refused(Exception):
    """A form the dashboard cannot act on: shown as a page naming the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class UiConfig:
    """What every page needs: the session keys and the external base of /ui."""

    def __init__(self, token: str, base_path: str) -> None:
        self.sessions = Sessions(token)
        self.base = f"{base_path}/ui"


def ui_of(request: AnyRequest) -> UiConfig:
    ui: UiConfig = request.app.state.ui
    return ui


def instances_of(engine: Any) -> Instances:
    if not isinstance(engine, Instances):
        raise Refused(503, "this engine does not support the dashboard")
    return engine


def secure(request: AnyRequest) -> bool:
    """Whether the browser reached us over https (directly or through a proxy saying so)."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def session_of(request: AnyRequest) -> Session:
    session: Session = request.scope["state"]["ui_session"]
    return session


def page(request: AnyRequest, name: str, status: int = 200, **context: Any) -> Template:
    ui = ui_of(request)
    state = request.scope.get("state", {})
    session = state.get("ui_session")
    return Template(
        template_name=name,
        context={
            "base": ui.base,
            "csrf": session.csrf if session is not None else "",
            "now": datetime.now(UTC),
            "nav": name.split(".")[0],
            **context,
        },
        status_code=status,
    )


async def session_guard(connection: Any, handler: Any) -> None:
    """Every /ui route but the login page and static files needs a session; every
    state-changing one also its CSRF token (form field or header)."""
    if handler.opt.get("public"):
        return
    ui: UiConfig = connection.app.state.ui
    session = ui.sessions.verify(connection.cookies.get(COOKIE))
    if session is None:
        raise LoginRequired("log in first")
    connection.scope.setdefault("state", {})["ui_session"] = session
    if connection.scope.get("method", "GET") not in ("GET", "HEAD"):
        presented = connection.headers.get(CSRF_HEADER)
        if presented is None:
            form = await connection.form()
            value = form.get(CSRF_FIELD)
            presented = value if isinstance(value, str) else None
        if not Sessions.csrf_ok(session, presented):
            raise Refused(403, "missing or invalid CSRF token: reload the page and try again")


def on_login_required(request: AnyRequest, exc: Exception) -> Response[Any]:
    ui = ui_of(request)
    wants_page = request.method == "GET" and "text/event-stream" not in request.headers.get(
        "accept", ""
    )
    if wants_page and not request.headers.get("hx-request"):
        target = ui.base + request.url.path[len("/ui") :]
        if request.url.query:
            target += "?" + request.url.query
        return Redirect(f"{ui.base}/login?{urlencode({'next': target})}", status_code=303)
    return Response("log in first", status_code=401, media_type="text/plain")


def on_refused(request: AnyRequest, exc: Exception) -> Template:
    """A refused form or an engine refusal, as a page naming the problem."""
    if isinstance(exc, Refused):
        status, message = exc.status, exc.message
    else:
        missing = (InstanceNotFoundError, DeadLetterNotFoundError, UnknownWorkflowError)
        status = (
            404 if isinstance(exc, missing) else 400 if isinstance(exc, InvalidEventError) else 409
        )
        message = str(exc)
    return page(request, "error.html", status=status, message=message)


# -- login ---------------------------------------------------------------------------------


def _next(ui: UiConfig, value: Any) -> str:
    """Where to go after login: a page of this dashboard, nothing else (no open redirect)."""
    if (
        isinstance(value, str)
        and value.startswith(ui.base + "/")
        and "//" not in value
        and "\\" not in value
        and not any(ord(c) < 33 for c in value)
    ):
        return value
    return ui.base + "/"


@get("/login", opt={"public": True})
async def login_page(request: AnyRequest) -> Template:
    return page(request, "login.html", next=_next(ui_of(request), request.query_params.get("next")))


@post("/login", opt={"public": True}, status_code=303)
async def login(request: AnyRequest) -> Response[Any]:
    """Exchange the bearer token for a session cookie (HttpOnly, SameSite=Strict, Secure
    over https), scoped to the dashboard's path."""
    ui = ui_of(request)
    form = await request.form()
    token = form.get("token")
    target = _next(ui, form.get("next"))
    if not isinstance(token, str) or not token or not ui.sessions.token_matches(token):
        return page(request, "login.html", status=401, next=target, failed=True)
    cookie, _ = ui.sessions.issue()
    response = Redirect(target, status_code=303)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=ui.sessions.lifetime,
        path=ui.base,
        secure=secure(request),
        httponly=True,
        samesite="strict",
    )
    return response


@post("/logout", status_code=303)
async def logout(request: AnyRequest) -> Response[Any]:
    ui = ui_of(request)
    response = Redirect(f"{ui.base}/login", status_code=303)
    response.delete_cookie(COOKIE, path=ui.base)
    return response


# -- overview ------------------------------------------------------------------------------


@get("/")
async def overview_page(request: AnyRequest, engine: EngineDep) -> Template:
    instances = instances_of(engine)
    rows = await overview.workflow_stats(instances)
    return page(request, "overview.html", rows=rows, totals=overview.totals(rows))


# -- runs ----------------------------------------------------------------------------------


def _moment(value: str, field: str) -> datetime | None:
    """A time from a datetime-local input (read as UTC) or ISO 8601."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Refused(400, f"{field} must be a date and time (YYYY-MM-DDTHH:MM)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class RunFilter:
    """The runs list's filters, from a query string, checked like the API checks them."""

    def __init__(self, query: Mapping[str, Any], routes: Mapping[str, Any]) -> None:
        self.workflow = str(query.get("workflow") or "")
        self.status = str(query.get("status") or "")
        self.user = str(query.get("user") or "")
        self.instance = str(query.get("instance") or "").strip()
        self.since = str(query.get("since") or "")
        self.until = str(query.get("until") or "")
        if self.workflow and self.workflow not in routes:
            raise Refused(400, f"unknown workflow {self.workflow!r}")
        if self.status and self.status not in STATUSES:
            raise Refused(400, f"status must be one of {', '.join(STATUSES)}")
        if len(self.user) > USER_ID_MAX:
            raise Refused(400, f"user id must be at most {USER_ID_MAX} characters")
        if self.instance and not INSTANCE_ID.fullmatch(self.instance):
            raise Refused(400, "instance id must be 1-100 characters of [A-Za-z0-9_-]")
        self.created_after = _moment(self.since, "from")
        self.created_before = _moment(self.until, "until")

    def query(self, **extra: Any) -> str:
        values = {
            "workflow": self.workflow,
            "status": self.status,
            "user": self.user,
            "instance": self.instance,
            "since": self.since,
            "until": self.until,
            **extra,
        }
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})

    def matches(self, state: InstanceState) -> bool:
        if self.workflow and state.workflow != self.workflow:
            return False
        if self.status and state.status != self.status:
            return False
        if self.user and user_of(state.params) != self.user:
            return False
        if self.instance and state.instance_id != self.instance:
            return False
        if self.created_after and state.created_at < self.created_after:
            return False
        return not (self.created_before and state.created_at >= self.created_before)


async def _by_id(instances: Instances, where: RunFilter) -> list[InstanceState]:
    store = await instances.store()
    workflows = [where.workflow] if where.workflow else sorted(instances.routes)
    found = await store.get_many([(wf, where.instance) for wf in workflows])
    return [state for state in found.values() if where.matches(state)]


@get("/runs")
async def runs_page(request: AnyRequest, engine: EngineDep) -> Template:
    instances = instances_of(engine)
    query = request.query_params
    where = RunFilter(query, instances.routes)
    cursor_text = str(query.get("cursor") or "")
    if cursor_text and not (cursor_text.isdigit() and len(cursor_text) <= 18):
        raise Refused(400, "cursor must be a value from a next-page link")
    cursor = int(cursor_text) if cursor_text else None
    seq = await last_sequence(instances.nc, instances.names)
    if where.instance:
        items, next_cursor = await _by_id(instances, where), None
    else:
        found = await instances.list(
            where.workflow or None,
            where.status or None,
            PAGE,
            cursor,
            user=where.user or None,
            created_after=where.created_after,
            created_before=where.created_before,
        )
        items, next_cursor = found.items, found.next_cursor
    first = cursor is None and not where.instance
    live = f"{ui_of(request).base}/live/runs?{where.query(after=seq, prepend=int(first))}"
    return page(
        request,
        "runs.html",
        where=where,
        items=items,
        next_url=None if next_cursor is None else f"?{where.query(cursor=next_cursor)}",
        first_url=None if cursor is None else f"?{where.query()}",
        live_url=live,
        statuses=STATUSES,
        workflows=sorted(instances.routes),
        prepend=first,
        max_page=MAX_PAGE,
    )


def _run_context(request: AnyRequest, state: InstanceState) -> dict[str, Any]:
    rows, span = waterfall(state)
    return {"s": state, "rows": rows, "span": span, "base": ui_of(request).base}


@get("/runs/{workflow:str}/{instance_id:str}")
async def run_page(
    request: AnyRequest, engine: EngineDep, workflow: FromPath[str], instance_id: FromPath[str]
) -> Template:
    instances = instances_of(engine)
    seq = await last_sequence(instances.nc, instances.names)
    state = await instances.get(workflow, instance_id)
    live = f"{ui_of(request).base}/live/runs/{workflow}/{instance_id}?after={seq}"
    return page(request, "run.html", live_url=live, **_run_context(request, state))


@get("/runs/{workflow:str}/{instance_id:str}/steps/{seq:int}")
async def step_value(
    request: AnyRequest,
    engine: EngineDep,
    workflow: FromPath[str],
    instance_id: FromPath[str],
    seq: FromPath[int],
) -> Template:
    """One step's output, pretty-printed: fetched when its folded value is opened."""
    state = await engine.get(workflow, instance_id)
    step = state.step_at(seq) if seq >= 0 else None
    if step is None:
        raise Refused(404, f"no step {seq} in this run")
    return page(request, "_step_value.html", value=step.result)


def _run_url(request: AnyRequest, workflow: str, instance_id: str) -> str:
    return f"{ui_of(request).base}/runs/{workflow}/{instance_id}"


@post("/runs/{workflow:str}/{instance_id:str}/action", status_code=303)
async def run_action(
    request: AnyRequest, engine: EngineDep, workflow: FromPath[str], instance_id: FromPath[str]
) -> Redirect:
    """Pause, resume, terminate, or restart (from the start or from a chosen step)."""
    form = await request.form()
    action = form.get("action")
    if action not in ACTIONS_ON_RUN:
        raise Refused(400, f"action must be one of {', '.join(ACTIONS_ON_RUN)}")
    step = form.get("from") if action == "restart" else None
    if step is not None and not isinstance(step, str):
        raise Refused(400, "from must be a step name")
    if step:
        await engine.restart(workflow, instance_id, step)
    else:
        operation = {
            "pause": engine.pause,
            "resume": engine.resume,
            "terminate": engine.terminate,
            "restart": engine.restart,
        }[action]
        await operation(workflow, instance_id)
    return Redirect(_run_url(request, workflow, instance_id), status_code=303)


@post("/runs/{workflow:str}/{instance_id:str}/event", status_code=303)
async def run_event(
    request: AnyRequest, engine: EngineDep, workflow: FromPath[str], instance_id: FromPath[str]
) -> Redirect:
    """Send an event (type and JSON payload) to the instance, for its wait_for_event."""
    form = await request.form()
    event_type = form.get("type")
    raw = form.get("payload") or ""
    if not isinstance(event_type, str) or not EVENT_TYPE.fullmatch(event_type):
        raise Refused(400, "event type must be 1-100 characters of [A-Za-z0-9_.-]")
    if not isinstance(raw, str):
        raise Refused(400, "payload must be JSON text")
    try:
        payload = json.loads(raw) if raw.strip() else None
    except json.JSONDecodeError as exc:
        raise Refused(400, f"payload is not JSON: {exc.msg} at line {exc.lineno}") from None
    try:
        check_depth(payload, "payload")
    except BodyError as exc:
        raise Refused(400, f"payload nests deeper than {MAX_DEPTH} levels") from exc
    await engine.send_event(workflow, instance_id, event_type, payload)
    return Redirect(_run_url(request, workflow, instance_id), status_code=303)


# -- dead letters --------------------------------------------------------------------------


@get("/dlq")
async def dlq_page(request: AnyRequest, engine: EngineDep) -> Template:
    instances = instances_of(engine)
    workflow = str(request.query_params.get("workflow") or "")
    if workflow and workflow not in instances.routes:
        raise Refused(400, f"unknown workflow {workflow!r}")
    cursor_text = str(request.query_params.get("cursor") or "")
    cursor = int(cursor_text) if cursor_text.isdigit() and len(cursor_text) <= 18 else None
    found = await engine.dead_letters(workflow or None, None, PAGE, cursor)
    next_url = None
    if found.next_cursor is not None:
        next_url = "?" + urlencode({"workflow": workflow, "cursor": found.next_cursor})
    return page(
        request,
        "dlq.html",
        letters=found.items,
        workflow=workflow,
        workflows=sorted(instances.routes),
        next_url=next_url,
    )


@post("/dlq/{seq:int}/redrive", status_code=303)
async def dlq_redrive(request: AnyRequest, engine: EngineDep, seq: FromPath[int]) -> Redirect:
    """Re-drive one dead letter, then show its instance (or the list)."""
    letter = await engine.redrive(seq)
    base = ui_of(request).base
    if letter.instance_id and letter.workflow in engine.routes:
        return Redirect(f"{base}/runs/{letter.workflow}/{letter.instance_id}", status_code=303)
    return Redirect(f"{base}/dlq", status_code=303)


@post("/dlq/redrive", status_code=303)
async def dlq_redrive_all(request: AnyRequest, engine: EngineDep) -> Redirect:
    form = await request.form()
    workflow = form.get("workflow") or None
    if workflow is not None and workflow not in engine.routes:
        raise Refused(400, f"unknown workflow {workflow!r}")
    await engine.redrive_all(workflow if isinstance(workflow, str) else None)
    return Redirect(f"{ui_of(request).base}/dlq", status_code=303)


# -- schedules -----------------------------------------------------------------------------


@get("/schedules")
async def schedules_page(request: AnyRequest, engine: EngineDep) -> Template:
    instances = instances_of(engine)
    states = await read_schedules(instances.js, instances.names.namespace)
    return page(request, "schedules.html", schedules=states)


# -- bulk ----------------------------------------------------------------------------------


def _bulk_form(
    form: Mapping[str, Any], routes: Mapping[str, Any]
) -> tuple[str, BulkFilter, str | None, float]:
    action = form.get("action")
    if action not in ACTIONS:
        raise Refused(400, f"action must be one of {', '.join(ACTIONS)}")
    workflow = str(form.get("workflow") or "") or None
    status = str(form.get("status") or "") or None
    user = str(form.get("user") or "") or None
    if workflow is not None and workflow not in routes:
        raise Refused(400, f"unknown workflow {workflow!r}")
    if status is not None and status not in STATUSES:
        raise Refused(400, f"status must be one of {', '.join(STATUSES)}")
    if user is not None and len(user) > USER_ID_MAX:
        raise Refused(400, f"user id must be at most {USER_ID_MAX} characters")
    from_step = str(form.get("from") or "") or None
    if from_step is not None and action != "restart":
        raise Refused(400, "a step to restart from applies to restart only")
    try:
        rate = float(form.get("rate") or 50)
    except ValueError:
        raise Refused(400, "rate must be a number of actions per second") from None
    if not 0 < rate <= 1000:
        raise Refused(400, "rate must be more than 0 and at most 1000 per second")
    where = BulkFilter(
        workflow=workflow,
        status=status,
        user=user,
        created_after=_moment(str(form.get("since") or ""), "from"),
        created_before=_moment(str(form.get("until") or ""), "until"),
    )
    return str(action), where, from_step, rate


@get("/bulk")
async def bulk_page(request: AnyRequest, engine: EngineDep) -> Template:
    instances = instances_of(engine)
    return page(
        request,
        "bulk.html",
        workflows=sorted(instances.routes),
        statuses=STATUSES,
        actions=ACTIONS,
        job=None,
        preview=None,
    )


@post("/bulk")
async def bulk_submit(request: AnyRequest, engine: EngineDep) -> Response[Any]:
    """`dry_run`: the count it would act on now (a fragment for htmx, else the page);
    otherwise start the job and show its progress page."""
    instances = instances_of(engine)
    form = await request.form()
    action, where, from_step, rate = _bulk_form(form, instances.routes)
    if form.get("dry_run"):
        preview = await engine.bulk(action, where, dry_run=True, from_step=from_step)  # type: ignore[arg-type]
        if request.headers.get("hx-request"):
            return page(request, "_bulk_preview.html", preview=preview)
        return page(
            request,
            "bulk.html",
            workflows=sorted(instances.routes),
            statuses=STATUSES,
            actions=ACTIONS,
            job=None,
            preview=preview,
        )
    job_id, _ = await launch_bulk(engine, action, where, from_step, rate, None)
    return Redirect(f"{ui_of(request).base}/bulk/{job_id}", status_code=303)


@get("/bulk/{job:str}")
async def bulk_job_page(request: AnyRequest, engine: EngineDep, job: FromPath[str]) -> Template:
    if not (job.isascii() and job.isalnum() and len(job) <= 64):
        raise Refused(404, "no such bulk job")
    found = await engine.bulk_job(job)
    if found is None:
        raise Refused(404, "no such bulk job (yet): reload in a moment")
    return page(request, "bulk_job.html", job=found)
