"""The Supabase backend: the repository over PostgREST with the `supabase` async client.

For an operator who has only SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY: it needs no
migration and no function in the hosted project, only the web app's tables.

Race safety over REST, without a transaction:
- profile merges are compare-and-set: read the row, compute the new values with the
  rules of `shared.db.merge`, and PATCH with a filter per written column requiring it
  to still hold the value read (`is.null` or `eq.<value>`). A PATCH that matches no row
  means a concurrent edit landed: read again and recompute. A user's edit is therefore
  never overwritten.
- job inserts use `on_conflict=user_id,source_url` with `resolution=ignore-duplicates`
  (INSERT ... ON CONFLICT DO NOTHING), which needs the unique index of migration 0001.
  Without it (42P10) they fall back to "skip the URLs already stored", which a
  concurrent run can race; a warning says so.
- a 'sent' email history row is inserted after a check; the unique index of migration
  0001, where present, turns a racing duplicate into a 23505 that reads as "already sent".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

import httpx
from postgrest import (
    APIError,
    APIResponse,
    AsyncRequestBuilder,
    AsyncSelectRequestBuilder,
    CountMethod,
    ReturnMethod,
)
from supabase import AsyncClient, AsyncClientOptions, acreate_client

from shared.db import merge as rules
from shared.db.records import (
    FREE_TIER,
    Application,
    ApplicationStatus,
    ClaimedEmail,
    EmailClaim,
    EmailOutcome,
    EmailPreferences,
    EmailSend,
    GithubMerge,
    Job,
    JobKey,
    JobScores,
    NewJob,
    Profile,
    ProfileFill,
    Recipient,
    Resume,
    Tier,
    TopMatch,
    WeeklyStats,
    email_preferences_from,
    from_row,
    to_json,
)
from shared.db.repository import (
    DEFAULT_PAGE,
    Id,
    as_uuid,
    database_error,
    most_generous,
    new_job_rows,
)
from shared.errors import AppError, ConfigError, UpstreamError

log = logging.getLogger(__name__)

#: Re-reads a merge makes before giving up (each one means a concurrent edit landed).
MAX_CAS_ATTEMPTS: Final = 8
#: Rows per insert request, and values per `in.(...)` filter (URLs get long).
INSERT_CHUNK: Final = 200
IN_CHUNK: Final = 40

_TIER_COLUMNS = "name,generation_limit_weekly,job_discovery_limit_daily"


def _iso(instant: datetime) -> str:
    if instant.tzinfo is None:
        raise ValueError(f"naive datetime {instant.isoformat()}: pass an aware datetime")
    return instant.astimezone(UTC).isoformat()


def _now() -> str:
    return datetime.now(UTC).isoformat()


async def _check_access(http: httpx.AsyncClient, url: str, key: str) -> None:
    """One cheap read at start, so a refused key stops the service with a message naming
    it instead of failing at the first event (Supabase's gateway answers a bad key with
    a 401 whose body carries no error code to tell it from a transient failure)."""
    try:
        response = await http.get(
            url.rstrip("/") + "/rest/v1/subscription_tiers",
            params={"select": "name", "limit": "1"},
            headers={"apikey": key, "Authorization": f"Bearer {key}"},
        )
    except httpx.HTTPError as exc:
        raise UpstreamError(f"SUPABASE_URL is unreachable: {type(exc).__name__}: {exc}") from exc
    if response.status_code in (401, 403):
        raise ConfigError(
            f"SUPABASE_SERVICE_ROLE_KEY was refused by SUPABASE_URL ({response.status_code}): "
            "use the project's service_role key"
        )
    if response.status_code == 404:
        raise ConfigError(
            "SUPABASE_URL serves no subscription_tiers table: is it the HowlerHire project?"
        )
    if response.is_error:
        raise UpstreamError(f"SUPABASE_URL answered {response.status_code} to a health read")


def _translate(exc: APIError | httpx.HTTPError) -> AppError:
    """A PostgREST or transport error as the repository's error (see `database_error`)."""
    if isinstance(exc, APIError):
        return database_error(exc.message or repr(exc), exc.code)
    return UpstreamError(f"supabase: {type(exc).__name__}: {exc}")


def _still(query: AsyncSelectRequestBuilder, column: str, value: Any) -> AsyncSelectRequestBuilder:
    """Add the compare-and-set condition "`column` still holds `value`"."""
    if value is None:
        return query.is_(column, None)
    return query.eq(column, value)


class SupabaseRepository:
    """The repository over Supabase's REST API; build it with `SupabaseRepository.open`."""

    def __init__(self, client: AsyncClient, http: httpx.AsyncClient) -> None:
        self._client = client
        self._http = http

    @classmethod
    async def open(
        cls, url: str, service_role_key: str, *, request_timeout: float = 30.0
    ) -> SupabaseRepository:
        # Our own HTTP client: bounded timeouts, and the PostgREST client's retries off,
        # so that the workflow engine alone decides about retrying.
        http = httpx.AsyncClient(timeout=request_timeout)
        options = AsyncClientOptions(
            httpx_client=http,
            postgrest_client_retry=False,
            auto_refresh_token=False,
            persist_session=False,
        )
        try:
            await _check_access(http, url, service_role_key)
            client = await acreate_client(url, service_role_key, options=options)
        except BaseException:
            await http.aclose()
            raise
        return cls(client, http)

    async def aclose(self) -> None:
        await self._http.aclose()

    def _table(self, name: str) -> AsyncRequestBuilder:
        return self._client.table(name)

    @staticmethod
    async def _run(query: Any) -> APIResponse:
        try:
            response: APIResponse = await query.execute()
        except (APIError, httpx.HTTPError) as exc:
            raise _translate(exc) from exc
        return response

    async def _rows(self, query: Any) -> list[dict[str, Any]]:
        data = (await self._run(query)).data
        return [row for row in data if isinstance(row, dict)]

    async def _first(self, query: Any) -> dict[str, Any] | None:
        rows = await self._rows(query.limit(1))
        return rows[0] if rows else None

    async def _count(self, query: Any) -> int:
        return (await self._run(query)).count or 0

    async def _profile_row(self, user: UUID) -> dict[str, Any] | None:
        return await self._first(self._table("profiles").select("*").eq("user_id", str(user)))

    # resume-generation -------------------------------------------------------------

    async def get_tier(self, user_id: Id) -> Tier:
        user = as_uuid(user_id, "userId")
        subscriptions = await self._rows(
            self._table("user_subscriptions")
            .select("tier_id")
            .eq("user_id", str(user))
            .eq("status", "active")
        )
        tier_ids = sorted({str(row["tier_id"]) for row in subscriptions})
        query = self._table("subscription_tiers").select(_TIER_COLUMNS)
        query = query.in_("id", tier_ids) if tier_ids else query.eq("name", "free")
        tiers = [from_row(Tier, row) for row in await self._rows(query)]
        return most_generous(tiers) if tiers else FREE_TIER

    async def count_ready_applications(self, user_id: Id, since: datetime) -> int:
        return await self._count(
            self._table("job_applications")
            .select("id", count=CountMethod.exact, head=True)
            .eq("user_id", str(as_uuid(user_id, "userId")))
            .eq("status", "ready")
            .gte("created_at", _iso(since))
        )

    async def get_job(self, user_id: Id, job_id: Id) -> Job | None:
        row = await self._first(
            self._table("jobs")
            .select("*")
            .eq("id", str(as_uuid(job_id, "jobId")))
            .eq("user_id", str(as_uuid(user_id, "userId")))
        )
        return from_row(Job, row) if row else None

    async def get_application(self, user_id: Id, application_id: Id) -> Application | None:
        row = await self._first(
            self._table("job_applications")
            .select("*")
            .eq("id", str(as_uuid(application_id, "applicationId")))
            .eq("user_id", str(as_uuid(user_id, "userId")))
        )
        return from_row(Application, row) if row else None

    async def get_profile(self, user_id: Id) -> Profile | None:
        row = await self._profile_row(as_uuid(user_id, "userId"))
        return from_row(Profile, row) if row else None

    async def get_default_resume(self, user_id: Id) -> Resume | None:
        row = await self._first(
            self._table("resumes")
            .select("*")
            .eq("user_id", str(as_uuid(user_id, "userId")))
            .is_("is_default", True)
            .order("updated_at", desc=True)
            .order("id")
        )
        return from_row(Resume, row) if row else None

    async def set_application_status(
        self,
        user_id: Id,
        application_id: Id,
        status: ApplicationStatus,
        error_message: str | None = None,
    ) -> bool:
        rows = await self._rows(
            self._table("job_applications")
            .update({"status": status, "error_message": error_message, "updated_at": _now()})
            .eq("id", str(as_uuid(application_id, "applicationId")))
            .eq("user_id", str(as_uuid(user_id, "userId")))
            .select("id")
        )
        return len(rows) == 1

    async def save_application(
        self,
        user_id: Id,
        application_id: Id,
        job_id: Id,
        *,
        tailored_resume: str,
        generation_model: str,
        scores: JobScores,
    ) -> bool:
        # Two PATCHes cannot share a transaction over REST; both are plain assignments,
        # so a retry after a failure between them converges on the same rows.
        user = str(as_uuid(user_id, "userId"))
        job = str(as_uuid(job_id, "jobId"))
        application = str(as_uuid(application_id, "applicationId"))
        if (
            await self._first(self._table("jobs").select("id").eq("id", job).eq("user_id", user))
            is None
        ):
            return False
        saved = await self._rows(
            self._table("job_applications")
            .update(
                {
                    "tailored_resume": tailored_resume,
                    "status": "ready",
                    "generation_model": generation_model,
                    "error_message": None,
                    "updated_at": _now(),
                }
            )
            .eq("id", application)
            .eq("user_id", user)
            .select("id")
        )
        if not saved:
            return False
        scored = await self._rows(
            self._table("jobs")
            .update({**to_json(scores), "updated_at": _now()})
            .eq("id", job)
            .eq("user_id", user)
            .select("id")
        )
        return len(scored) == 1

    async def get_email_preferences(self, user_id: Id) -> EmailPreferences:
        row = await self._first(
            self._table("profiles")
            .select("email_preferences")
            .eq("user_id", str(as_uuid(user_id, "userId")))
        )
        if row is None:
            return EmailPreferences()
        return email_preferences_from(row.get("email_preferences"))

    # resume-parsing ---------------------------------------------------------------

    async def save_parsed_resume(
        self, user_id: Id, resume_id: Id, *, parsed_content: str, structured_data: object
    ) -> bool:
        rows = await self._rows(
            self._table("resumes")
            .update(
                {
                    "parsed_content": parsed_content,
                    "structured_data": to_json(structured_data),
                    "updated_at": _now(),
                }
            )
            .eq("id", str(as_uuid(resume_id, "resumeId")))
            .eq("user_id", str(as_uuid(user_id, "userId")))
            .select("id")
        )
        return len(rows) == 1

    async def fill_empty_profile_fields(self, user_id: Id, fill: ProfileFill) -> Profile | None:
        given = {
            "full_name": fill.full_name,
            "summary": fill.summary,
            "skills": rules.clean_skills(fill.skills),
            "experience": to_json(fill.experience),
            "education": to_json(fill.education),
        }

        def changes(row: dict[str, Any]) -> dict[str, Any]:
            return {
                column: value
                for column, value in given.items()
                if not rules.is_empty(value) and rules.is_empty(row.get(column))
            }

        return await self._compare_and_set(as_uuid(user_id, "userId"), changes)

    # profile-sync -----------------------------------------------------------------

    async def merge_github_profile(self, user_id: Id, merge: GithubMerge) -> Profile | None:
        skills = rules.clean_skills(merge.skills)
        blog = merge.blog_url.strip() if merge.blog_url else None
        fills = {"full_name": merge.full_name, "summary": merge.summary, "location": merge.location}

        def changes(row: dict[str, Any]) -> dict[str, Any]:
            out: dict[str, Any] = {
                column: value
                for column, value in fills.items()
                if not rules.is_empty(value) and rules.is_empty(row.get(column))
            }
            held = row.get("skills")
            held_list = held if isinstance(held, list) else []
            merged = rules.merge_skills(held_list, skills)
            if len(merged) > len(held_list):
                out["skills"] = merged
            urls = row.get("portfolio_urls")
            url_list = urls if isinstance(urls, list) else []
            added = rules.add_once(url_list, blog)
            if len(added) > len(url_list):
                out["portfolio_urls"] = added
            return out

        return await self._compare_and_set(as_uuid(user_id, "userId"), changes)

    async def _compare_and_set(
        self, user: UUID, changes: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> Profile | None:
        for _ in range(MAX_CAS_ATTEMPTS):
            row = await self._profile_row(user)
            if row is None:
                return None
            update = changes(row)
            if not update:
                return from_row(Profile, row)
            query = (
                self._table("profiles")
                .update({**update, "updated_at": _now()})
                .eq("user_id", str(user))
            )
            for column in update:
                query = _still(query, column, row.get(column))
            written = await self._rows(query)
            if written:
                return from_row(Profile, written[0])
            # The row changed between our read and our write: read it again.
        raise UpstreamError(
            f"profile of {user} kept changing during {MAX_CAS_ATTEMPTS} merge attempts"
        )

    # job-discovery ----------------------------------------------------------------

    async def insert_new_jobs(self, user_id: Id, jobs: Sequence[NewJob]) -> int:
        user = str(as_uuid(user_id, "userId"))
        rows = [{**row, "user_id": user, "status": "new"} for row in new_job_rows(jobs)]
        inserted = 0
        for start in range(0, len(rows), INSERT_CHUNK):
            chunk = rows[start : start + INSERT_CHUNK]
            query = (
                self._table("jobs")
                .upsert(chunk, on_conflict="user_id,source_url", ignore_duplicates=True)
                .select("id")
            )
            try:
                inserted += len((await query.execute()).data)
            except APIError as exc:
                # 42P10: no unique index to infer the conflict target from.
                if exc.code != "42P10":
                    raise _translate(exc) from exc
                inserted += await self._insert_missing_jobs(user, chunk)
            except httpx.HTTPError as exc:
                raise _translate(exc) from exc
        return inserted

    async def _insert_missing_jobs(self, user: str, rows: list[dict[str, Any]]) -> int:
        log.warning(
            "jobs has no unique index on (user_id, source_url): inserting without it, "
            "which concurrent discovery runs can race; add the index (migration 0001)"
        )
        urls = [row["source_url"] for row in rows]
        stored: set[str] = set()
        for start in range(0, len(urls), IN_CHUNK):
            found = await self._rows(
                self._table("jobs")
                .select("source_url")
                .eq("user_id", user)
                .in_("source_url", urls[start : start + IN_CHUNK])
            )
            stored.update(str(row["source_url"]) for row in found)
        fresh = [row for row in rows if row["source_url"] not in stored]
        if not fresh:
            return 0
        return len(await self._rows(self._table("jobs").insert(fresh).select("id")))

    async def recent_job_keys(self, user_id: Id, since: datetime) -> list[JobKey]:
        rows = await self._rows(
            self._table("jobs")
            .select("source_url,title,company")
            .eq("user_id", str(as_uuid(user_id, "userId")))
            .gte("discovered_at", since.isoformat())
        )
        return [from_row(JobKey, row) for row in rows]

    # daily-discovery --------------------------------------------------------------

    async def list_active_users(
        self, *, after: Id | None = None, limit: int = DEFAULT_PAGE
    ) -> list[UUID]:
        query = (
            self._table("profiles")
            .select("user_id")
            .or_('preferred_roles.neq."[]",skills.neq."[]"')
        )
        if after is not None:
            query = query.gt("user_id", str(as_uuid(after, "after")))
        rows = await self._rows(query.order("user_id").limit(limit))
        return [UUID(str(row["user_id"])) for row in rows]

    # weekly-summary ---------------------------------------------------------------

    async def list_weekly_summary_recipients(
        self, *, after: Id | None = None, limit: int = DEFAULT_PAGE
    ) -> list[Recipient]:
        query = (
            self._table("profiles")
            .select("user_id,email,full_name")
            .not_.is_("email", None)
            .neq("email", "")
            .or_(
                "email_preferences->>weeklySummary.is.null,"
                "email_preferences->>weeklySummary.neq.false"
            )
        )
        if after is not None:
            query = query.gt("user_id", str(as_uuid(after, "after")))
        rows = await self._rows(query.order("user_id").limit(limit))
        return [from_row(Recipient, row) for row in rows]

    async def weekly_stats(self, user_id: Id, start: datetime, end: datetime) -> WeeklyStats:
        user = str(as_uuid(user_id, "userId"))
        since, until = _iso(start), _iso(end)

        def count(table: str) -> Any:
            return (
                self._table(table)
                .select("id", count=CountMethod.exact, head=True)
                .eq("user_id", user)
            )

        discovered = await self._count(
            count("jobs").gte("discovered_at", since).lt("discovered_at", until)
        )
        ready = await self._count(
            count("job_applications")
            .eq("status", "ready")
            .gte("created_at", since)
            .lt("created_at", until)
        )
        applied = await self._count(
            count("jobs").eq("status", "applied").gte("applied_at", since).lt("applied_at", until)
        )
        top = await self._first(
            self._table("jobs")
            .select("id,title,company,match_score,source_url")
            .eq("user_id", user)
            .gte("discovered_at", since)
            .lt("discovered_at", until)
            .not_.is_("match_score", None)
            .order("match_score", desc=True)
            .order("discovered_at")
            .order("id")
        )
        return WeeklyStats(
            jobs_discovered=discovered,
            applications_ready=ready,
            jobs_applied=applied,
            top_match=from_row(TopMatch, {"job_id": top["id"], **top}) if top else None,
        )

    async def weekly_stats_for(
        self, user_ids: Sequence[Id], start: datetime, end: datetime
    ) -> dict[UUID, WeeklyStats]:
        # PostgREST has no GROUP BY (aggregates are off on Supabase by default), so a
        # chunk is counted user by user, a few requests in flight at a time.
        users = list(dict.fromkeys(as_uuid(u, "userId") for u in user_ids))
        gate = asyncio.Semaphore(8)

        async def one(user: UUID) -> tuple[UUID, WeeklyStats]:
            async with gate:
                return user, await self.weekly_stats(user, start, end)

        return dict(await asyncio.gather(*(one(u) for u in users)))

    def _week_rows(self, email_type: str, week: str) -> Any:
        return (
            self._table("email_send_history")
            .select("id,user_id,status,metadata")
            .eq("email_type", email_type)
            .eq("metadata->>week", week)
        )

    async def claim_weekly_emails(
        self, email_type: str, week: str, batch: str, claims: Sequence[EmailClaim]
    ) -> list[ClaimedEmail]:
        by_user = {c.user_id: c for c in claims}
        existing: dict[UUID, dict[str, Any]] = {}
        ids = [str(u) for u in by_user]
        for start in range(0, len(ids), IN_CHUNK):
            rows = await self._rows(
                self._week_rows(email_type, week).in_("user_id", ids[start : start + IN_CHUNK])
            )
            existing.update({UUID(str(r["user_id"])): r for r in rows})

        def row(claim: EmailClaim) -> dict[str, Any]:
            return {
                "user_id": str(claim.user_id),
                "email_type": email_type,
                "recipient_email": claim.recipient_email,
                "subject": claim.subject,
                "status": "queued",
                "metadata": {**to_json(claim.metadata), "week": week, "batch": batch},
            }

        for user, found in existing.items():
            meta = found.get("metadata") or {}
            if found.get("status") == "failed" and meta.get("batch") != batch:
                await self._run(
                    self._table("email_send_history")
                    .update({**row(by_user[user]), "error_message": None, "message_id": None})
                    .eq("id", found["id"])
                    .eq("status", "failed")
                )
        for user, claim in by_user.items():
            if user in existing:
                continue
            try:
                await (
                    self._client.table("email_send_history")
                    .insert(row(claim), returning=ReturnMethod.minimal)
                    .execute()
                )
            except APIError as exc:
                if exc.code != "23505":  # a concurrent claim won: theirs stands
                    raise _translate(exc) from exc
            except httpx.HTTPError as exc:
                raise _translate(exc) from exc
        return await self.batch_emails(batch)

    async def batch_emails(self, batch: str) -> list[ClaimedEmail]:
        rows = await self._rows(
            self._table("email_send_history")
            .select("user_id,recipient_email,subject,status,metadata,message_id,error_message")
            .eq("metadata->>batch", batch)
            .order("user_id")
        )
        return [from_row(ClaimedEmail, r) for r in rows]

    async def finish_weekly_emails(
        self, email_type: str, week: str, batch: str, outcomes: Sequence[EmailOutcome]
    ) -> int:
        changed = 0
        for outcome in outcomes:
            done = await self._rows(
                self._table("email_send_history")
                .update(
                    {
                        "status": "sent" if outcome.message_id else "failed",
                        "message_id": outcome.message_id,
                        "error_message": outcome.error,
                    }
                )
                .eq("user_id", str(outcome.user_id))
                .eq("email_type", email_type)
                .eq("metadata->>week", week)
                .eq("metadata->>batch", batch)
                .eq("status", "queued")
                .select("id")
            )
            changed += len(done)
        return changed

    async def set_email_preference(self, user_id: Id, key: str, value: bool) -> bool:
        user = str(as_uuid(user_id, "userId"))
        row = await self._first(
            self._table("profiles").select("email_preferences").eq("user_id", user)
        )
        if row is None:
            return False
        prefs = row.get("email_preferences")
        merged = {**(prefs if isinstance(prefs, dict) else {}), key: value}
        done = await self._rows(
            self._table("profiles")
            .update({"email_preferences": merged, "updated_at": _now()})
            .eq("user_id", user)
            .select("user_id")
        )
        return bool(done)

    async def email_already_sent(self, idempotency_key: str) -> bool:
        row = await self._first(
            self._table("email_send_history")
            .select("id")
            .eq("metadata->>idempotency_key", idempotency_key)
            .eq("status", "sent")
        )
        return row is not None

    async def record_email_send(self, send: EmailSend) -> bool:
        if send.status == "sent" and await self.email_already_sent(send.idempotency_key):
            return False
        row = {
            "user_id": None if send.user_id is None else str(send.user_id),
            "email_type": send.email_type,
            "recipient_email": send.recipient_email,
            "subject": send.subject,
            "message_id": send.message_id,
            "status": send.status,
            "error_message": send.error_message,
            "metadata": {**to_json(send.metadata), "idempotency_key": send.idempotency_key},
        }
        try:
            await (
                self._client.table("email_send_history")
                .insert(row, returning=ReturnMethod.minimal)
                .execute()
            )
        except APIError as exc:
            if exc.code == "23505":
                return False
            raise _translate(exc) from exc
        except httpx.HTTPError as exc:
            raise _translate(exc) from exc
        return True
