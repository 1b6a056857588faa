"""The PostgreSQL backend: the repository over an asyncpg connection pool (DATABASE_URL).

Also what a Supabase project's direct or pooled connection string serves. For a
transaction-mode pooler (Supabase's port 6543, pgbouncer) the statement cache is turned
off, since such poolers cannot keep prepared statements across transactions; nothing
here depends on session state. Every merge is a single UPDATE whose SET expressions
read the row as it is when the write happens, so a concurrent edit is re-read, never
overwritten (PostgreSQL re-evaluates them against the newest row version).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime
from typing import Any, cast
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg
import msgspec

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
from shared.errors import ConfigError

log = logging.getLogger(__name__)

# `value` is empty: NULL, blank text, or an empty/null JSON value (as shared.db.merge).
_EMPTY_TEXT = "({0} IS NULL OR {0} ~ '" + rules.BLANK_SQL_PATTERN + "')"
_EMPTY_JSON = "({0} IS NULL OR {0} IN ('[]'::jsonb, '{{}}'::jsonb, 'null'::jsonb, '\"\"'::jsonb))"
_ARRAY = "(CASE WHEN jsonb_typeof({0}) = 'array' THEN {0} ELSE '[]'::jsonb END)"
_TRIM = r"E' \t\n\r\f\v'"


def _fill_text(column: str, param: str) -> str:
    empty = _EMPTY_TEXT.format(f"p.{column}")
    given = f"{param}::text IS NOT NULL"
    return f"{column} = CASE WHEN {given} AND {empty} THEN {param} ELSE p.{column} END"


def _fill_json(column: str, param: str) -> str:
    empty = _EMPTY_JSON.format(f"p.{column}")
    given = f"{param}::jsonb IS NOT NULL"
    return f"{column} = CASE WHEN {given} AND {empty} THEN {param} ELSE p.{column} END"


_FILL_EMPTY_SQL = f"""
UPDATE profiles AS p SET
    {_fill_text("full_name", "$2")},
    {_fill_text("summary", "$3")},
    {_fill_json("skills", "$4")},
    {_fill_json("experience", "$5")},
    {_fill_json("education", "$6")},
    updated_at = now()
WHERE p.user_id = $1
RETURNING p.*
"""

_MERGE_GITHUB_SQL = f"""
UPDATE profiles AS p SET
    skills = CASE WHEN cardinality($2::text[]) = 0 THEN p.skills ELSE
        {_ARRAY.format("p.skills")} || coalesce((
            SELECT jsonb_agg(to_jsonb(new.skill) ORDER BY new.ord)
            FROM unnest($2::text[]) WITH ORDINALITY AS new (skill, ord)
            WHERE NOT EXISTS (
                SELECT 1 FROM jsonb_array_elements({_ARRAY.format("p.skills")}) AS held (v)
                WHERE jsonb_typeof(held.v) = 'string'
                  AND lower(btrim(held.v #>> '{{}}', {_TRIM})) = lower(new.skill))
        ), '[]'::jsonb) END,
    {_fill_text("full_name", "$3")},
    {_fill_text("summary", "$4")},
    {_fill_text("location", "$5")},
    portfolio_urls = CASE
        WHEN $6::text IS NULL
          OR {_ARRAY.format("p.portfolio_urls")} @> jsonb_build_array($6::text)
        THEN p.portfolio_urls
        ELSE {_ARRAY.format("p.portfolio_urls")} || jsonb_build_array($6::text) END,
    updated_at = now()
WHERE p.user_id = $1
RETURNING p.*
"""

_NEW_JOB_COLUMNS = tuple(f.name for f in msgspec.structs.fields(NewJob))
_INSERT_JOBS_SQL = """
INSERT INTO jobs (user_id, status, {columns})
SELECT $1, 'new', {selected}
FROM jsonb_populate_recordset(NULL::jobs, $2::jsonb) AS r
{guard}
""".format(
    columns=", ".join(_NEW_JOB_COLUMNS),
    selected=", ".join(f"r.{c}" for c in _NEW_JOB_COLUMNS),
    guard="{guard}",
)
_ON_CONFLICT = "ON CONFLICT (user_id, source_url) DO NOTHING"
# For a schema without the unique index (a hosted database never migrated): the caller
# holds a per-user advisory lock, so NOT EXISTS cannot race another discovery run.
_NOT_EXISTS = (
    "WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.user_id = $1 AND j.source_url = r.source_url)"
)


_REFUSED = (asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidCatalogNameError)


def _lock_key(*parts: str) -> str:
    return ":".join(("howlerhire", *parts))


def _count(status: str) -> int:
    # asyncpg returns the command tag, e.g. "UPDATE 1" or "INSERT 0 3".
    return int(status.rsplit(" ", 1)[-1])


async def _init_connection(conn: asyncpg.Connection) -> None:
    for codec in ("json", "jsonb"):
        await conn.set_type_codec(
            codec,
            schema="pg_catalog",
            encoder=lambda value: msgspec.json.encode(value).decode(),
            decoder=msgspec.json.decode,
        )
    await conn.set_type_codec("uuid", schema="pg_catalog", encoder=str, decoder=UUID, format="text")


def statement_cache_size(dsn: str) -> int:
    """0 behind a transaction-mode pooler (Supabase pooler port 6543, pgbouncer), else 100."""
    parts = urlsplit(dsn)
    if parts.port == 6543 or "pgbouncer=true" in parts.query:
        return 0
    return 100


def _dsn_without_pgbouncer_flag(dsn: str) -> str:
    # Supabase's pooler strings carry `?pgbouncer=true`, which asyncpg would pass to the
    # server as a setting and fail on.
    parts = urlsplit(dsn)
    if "pgbouncer=" not in parts.query:
        return dsn
    query = "&".join(p for p in parts.query.split("&") if not p.startswith("pgbouncer="))
    return parts._replace(query=query).geturl()


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """asyncpg and socket errors as the repository's errors (see `database_error`)."""
    try:
        yield
    except asyncpg.PostgresError as exc:
        raise database_error(str(exc), getattr(exc, "sqlstate", None)) from exc
    except (asyncpg.InterfaceError, OSError) as exc:
        raise database_error(f"{type(exc).__name__}: {exc}", None) from exc


class PostgresRepository:
    """The repository over an asyncpg pool; build it with `PostgresRepository.open`."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, dsn: str, *, min_size: int = 1, max_size: int = 10) -> PostgresRepository:
        try:
            pool = await asyncpg.create_pool(
                _dsn_without_pgbouncer_flag(dsn),
                min_size=min_size,
                max_size=max_size,
                init=_init_connection,
                statement_cache_size=statement_cache_size(dsn),
            )
        except asyncpg.ClientConfigurationError as exc:
            # Raised while parsing the DSN; its message does not echo the password.
            raise ConfigError(f"DATABASE_URL is invalid: {exc}") from None
        except _REFUSED as exc:
            # Wrong user, password or database name: no retry will fix these.
            raise ConfigError(f"DATABASE_URL was refused: {exc}") from None
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise database_error(f"{type(exc).__name__}: {exc}", None) from exc
        return cls(pool)

    async def aclose(self) -> None:
        await self._pool.close()

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        with _translated():
            async with self._pool.acquire() as conn:
                yield conn

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        with _translated():
            return cast(list[asyncpg.Record], await self._pool.fetch(sql, *args))

    async def _fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        with _translated():
            return await self._pool.fetchrow(sql, *args)

    async def _execute(self, sql: str, *args: Any) -> int:
        with _translated():
            return _count(await self._pool.execute(sql, *args))

    # resume-generation -------------------------------------------------------------

    async def get_tier(self, user_id: Id) -> Tier:
        rows = await self._fetch(
            """
            SELECT t.name, t.generation_limit_weekly, t.job_discovery_limit_daily
            FROM user_subscriptions s JOIN subscription_tiers t ON t.id = s.tier_id
            WHERE s.user_id = $1 AND s.status = 'active'
            """,
            as_uuid(user_id, "userId"),
        )
        if not rows:
            rows = await self._fetch(
                "SELECT name, generation_limit_weekly, job_discovery_limit_daily "
                "FROM subscription_tiers WHERE name = 'free'"
            )
        tiers = [from_row(Tier, row) for row in rows]
        return most_generous(tiers) if tiers else FREE_TIER

    async def count_ready_applications(self, user_id: Id, since: datetime) -> int:
        row = await self._fetchrow(
            "SELECT count(*) AS n FROM job_applications "
            "WHERE user_id = $1 AND status = 'ready' AND created_at >= $2",
            as_uuid(user_id, "userId"),
            since,
        )
        return int(row["n"]) if row else 0

    async def get_job(self, user_id: Id, job_id: Id) -> Job | None:
        row = await self._fetchrow(
            "SELECT * FROM jobs WHERE id = $1 AND user_id = $2",
            as_uuid(job_id, "jobId"),
            as_uuid(user_id, "userId"),
        )
        return from_row(Job, row) if row else None

    async def get_application(self, user_id: Id, application_id: Id) -> Application | None:
        row = await self._fetchrow(
            "SELECT * FROM job_applications WHERE id = $1 AND user_id = $2",
            as_uuid(application_id, "applicationId"),
            as_uuid(user_id, "userId"),
        )
        return from_row(Application, row) if row else None

    async def get_profile(self, user_id: Id) -> Profile | None:
        row = await self._fetchrow(
            "SELECT * FROM profiles WHERE user_id = $1", as_uuid(user_id, "userId")
        )
        return from_row(Profile, row) if row else None

    async def get_default_resume(self, user_id: Id) -> Resume | None:
        row = await self._fetchrow(
            "SELECT * FROM resumes WHERE user_id = $1 AND is_default "
            "ORDER BY updated_at DESC, id LIMIT 1",
            as_uuid(user_id, "userId"),
        )
        return from_row(Resume, row) if row else None

    async def set_application_status(
        self,
        user_id: Id,
        application_id: Id,
        status: ApplicationStatus,
        error_message: str | None = None,
    ) -> bool:
        updated = await self._execute(
            "UPDATE job_applications SET status = $3, error_message = $4, updated_at = now() "
            "WHERE id = $1 AND user_id = $2",
            as_uuid(application_id, "applicationId"),
            as_uuid(user_id, "userId"),
            status,
            error_message,
        )
        return updated == 1

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
        user = as_uuid(user_id, "userId")
        try:
            async with self._connection() as conn, conn.transaction():
                job_tag = await conn.execute(
                    """
                    UPDATE jobs SET match_score = $3, ats_score = $4, matched_skills = $5,
                        missing_required_skills = $6, missing_preferred_skills = $7,
                        updated_at = now()
                    WHERE id = $1 AND user_id = $2
                    """,
                    as_uuid(job_id, "jobId"),
                    user,
                    scores.match_score,
                    scores.ats_score,
                    scores.matched_skills,
                    scores.missing_required_skills,
                    scores.missing_preferred_skills,
                )
                app_tag = await conn.execute(
                    """
                    UPDATE job_applications SET tailored_resume = $3, status = 'ready',
                        generation_model = $4, error_message = NULL, updated_at = now()
                    WHERE id = $1 AND user_id = $2
                    """,
                    as_uuid(application_id, "applicationId"),
                    user,
                    tailored_resume,
                    generation_model,
                )
                if _count(job_tag) != 1 or _count(app_tag) != 1:
                    # The pair is written together or not at all.
                    raise _Rollback
        except _Rollback:
            return False
        return True

    async def get_email_preferences(self, user_id: Id) -> EmailPreferences:
        row = await self._fetchrow(
            "SELECT email_preferences FROM profiles WHERE user_id = $1",
            as_uuid(user_id, "userId"),
        )
        if row is None:
            return EmailPreferences()
        return email_preferences_from(row["email_preferences"])

    # resume-parsing ---------------------------------------------------------------

    async def save_parsed_resume(
        self, user_id: Id, resume_id: Id, *, parsed_content: str, structured_data: object
    ) -> bool:
        updated = await self._execute(
            "UPDATE resumes SET parsed_content = $3, structured_data = $4, updated_at = now() "
            "WHERE id = $1 AND user_id = $2",
            as_uuid(resume_id, "resumeId"),
            as_uuid(user_id, "userId"),
            parsed_content,
            to_json(structured_data),
        )
        return updated == 1

    async def fill_empty_profile_fields(self, user_id: Id, fill: ProfileFill) -> Profile | None:
        row = await self._fetchrow(
            _FILL_EMPTY_SQL,
            as_uuid(user_id, "userId"),
            _given(fill.full_name),
            _given(fill.summary),
            _given(rules.clean_skills(fill.skills)),
            _given(to_json(fill.experience)),
            _given(to_json(fill.education)),
        )
        return from_row(Profile, row) if row else None

    # profile-sync -----------------------------------------------------------------

    async def merge_github_profile(self, user_id: Id, merge: GithubMerge) -> Profile | None:
        blog = merge.blog_url.strip() if merge.blog_url else None
        row = await self._fetchrow(
            _MERGE_GITHUB_SQL,
            as_uuid(user_id, "userId"),
            rules.clean_skills(merge.skills),
            _given(merge.full_name),
            _given(merge.summary),
            _given(merge.location),
            _given(blog),
        )
        return from_row(Profile, row) if row else None

    # job-discovery ----------------------------------------------------------------

    async def insert_new_jobs(self, user_id: Id, jobs: Sequence[NewJob]) -> int:
        rows = new_job_rows(jobs)
        if not rows:
            return 0
        user = as_uuid(user_id, "userId")
        async with self._connection() as conn:
            try:
                return _count(
                    await conn.execute(_INSERT_JOBS_SQL.format(guard=_ON_CONFLICT), user, rows)
                )
            except asyncpg.InvalidColumnReferenceError:
                # 42P10: no unique index to infer the conflict target from.
                log.warning(
                    "jobs has no unique index on (user_id, source_url); "
                    "run `howlerhire migrate` to add it"
                )
            async with conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                    _lock_key("jobs", str(user)),
                )
                guarded = _INSERT_JOBS_SQL.format(guard=_NOT_EXISTS)
                return _count(await conn.execute(guarded, user, rows))

    async def recent_job_keys(self, user_id: Id, since: datetime) -> list[JobKey]:
        rows = await self._fetch(
            "SELECT source_url, title, company FROM jobs "
            "WHERE user_id = $1 AND discovered_at >= $2",
            as_uuid(user_id, "userId"),
            since,
        )
        return [from_row(JobKey, row) for row in rows]

    # daily-discovery --------------------------------------------------------------

    async def list_active_users(
        self, *, after: Id | None = None, limit: int = DEFAULT_PAGE
    ) -> list[UUID]:
        rows = await self._fetch(
            """
            SELECT user_id FROM profiles
            WHERE (preferred_roles <> '[]'::jsonb OR skills <> '[]'::jsonb)
              AND ($1::uuid IS NULL OR user_id > $1)
            ORDER BY user_id LIMIT $2
            """,
            None if after is None else as_uuid(after, "after"),
            limit,
        )
        return [row["user_id"] for row in rows]

    # weekly-summary ---------------------------------------------------------------

    async def list_weekly_summary_recipients(
        self, *, after: Id | None = None, limit: int = DEFAULT_PAGE
    ) -> list[Recipient]:
        rows = await self._fetch(
            """
            SELECT user_id, email, full_name FROM profiles
            WHERE email IS NOT NULL AND email <> ''
              AND (email_preferences ->> 'weeklySummary' IS NULL
                   OR email_preferences ->> 'weeklySummary' <> 'false')
              AND ($1::uuid IS NULL OR user_id > $1)
            ORDER BY user_id LIMIT $2
            """,
            None if after is None else as_uuid(after, "after"),
            limit,
        )
        return [from_row(Recipient, row) for row in rows]

    async def weekly_stats(self, user_id: Id, start: datetime, end: datetime) -> WeeklyStats:
        user = as_uuid(user_id, "userId")
        return (await self.weekly_stats_for([user], start, end))[user]

    async def weekly_stats_for(
        self, user_ids: Sequence[Id], start: datetime, end: datetime
    ) -> dict[UUID, WeeklyStats]:
        users = list(dict.fromkeys(as_uuid(u, "userId") for u in user_ids))
        if not users:
            return {}
        # One statement for the whole chunk: each figure is one grouped scan of its index
        # over these users and the window, instead of four queries per user.
        rows = await self._fetch(
            """
            WITH u AS (SELECT unnest($1::uuid[]) AS user_id),
            discovered AS (
              SELECT user_id, count(*) AS n FROM jobs
              WHERE user_id = ANY($1) AND discovered_at >= $2 AND discovered_at < $3
              GROUP BY user_id),
            ready AS (
              SELECT user_id, count(*) AS n FROM job_applications
              WHERE user_id = ANY($1) AND status = 'ready'
                AND created_at >= $2 AND created_at < $3
              GROUP BY user_id),
            applied AS (
              SELECT user_id, count(*) AS n FROM jobs
              WHERE user_id = ANY($1) AND status = 'applied'
                AND applied_at >= $2 AND applied_at < $3
              GROUP BY user_id),
            top AS (
              SELECT DISTINCT ON (user_id) user_id, id AS job_id, title, company,
                     match_score, source_url
              FROM jobs
              WHERE user_id = ANY($1) AND discovered_at >= $2 AND discovered_at < $3
                AND match_score IS NOT NULL
              ORDER BY user_id, match_score DESC, discovered_at ASC, id ASC)
            SELECT u.user_id,
                   coalesce(discovered.n, 0) AS jobs_discovered,
                   coalesce(ready.n, 0) AS applications_ready,
                   coalesce(applied.n, 0) AS jobs_applied,
                   top.job_id, top.title, top.company, top.match_score, top.source_url
            FROM u
            LEFT JOIN discovered USING (user_id)
            LEFT JOIN ready USING (user_id)
            LEFT JOIN applied USING (user_id)
            LEFT JOIN top USING (user_id)
            """,
            users,
            start,
            end,
        )
        stats: dict[UUID, WeeklyStats] = {}
        for row in rows:
            top_match = None
            if row["job_id"] is not None:
                top_match = from_row(
                    TopMatch,
                    {
                        k: row[k]
                        for k in ("job_id", "title", "company", "match_score", "source_url")
                    },
                )
            stats[row["user_id"]] = WeeklyStats(
                jobs_discovered=row["jobs_discovered"],
                applications_ready=row["applications_ready"],
                jobs_applied=row["jobs_applied"],
                top_match=top_match,
            )
        return stats

    async def claim_weekly_emails(
        self, email_type: str, week: str, batch: str, claims: Sequence[EmailClaim]
    ) -> list[ClaimedEmail]:
        if claims:
            metadata = [{**to_json(c.metadata), "week": week, "batch": batch} for c in claims]
            async with self._connection() as conn, conn.transaction():
                # A failed earlier try is taken over; anything else already there (sent,
                # or queued by another batch) is left alone by ON CONFLICT DO NOTHING.
                await conn.execute(
                    """
                    WITH input AS (
                      SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[])
                        AS t(user_id, recipient_email, subject, metadata))
                    UPDATE email_send_history h
                    SET status = 'queued', recipient_email = i.recipient_email,
                        subject = i.subject, metadata = i.metadata, error_message = NULL,
                        message_id = NULL
                    FROM input i
                    WHERE h.user_id = i.user_id AND h.email_type = $5
                      AND h.metadata ? 'week' AND h.metadata ->> 'week' = $6
                      AND h.status = 'failed' AND h.metadata ->> 'batch' <> $7
                    """,
                    [c.user_id for c in claims],
                    [c.recipient_email for c in claims],
                    [c.subject for c in claims],
                    metadata,
                    email_type,
                    week,
                    batch,
                )
                await conn.execute(
                    """
                    INSERT INTO email_send_history (user_id, email_type, recipient_email,
                        subject, status, metadata)
                    SELECT t.user_id, $5, t.recipient_email, t.subject, 'queued', t.metadata
                    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[])
                      AS t(user_id, recipient_email, subject, metadata)
                    ON CONFLICT (user_id, email_type, (metadata ->> 'week'))
                      WHERE metadata ? 'week' DO NOTHING
                    """,
                    [c.user_id for c in claims],
                    [c.recipient_email for c in claims],
                    [c.subject for c in claims],
                    metadata,
                    email_type,
                )
        return await self.batch_emails(batch)

    async def batch_emails(self, batch: str) -> list[ClaimedEmail]:
        rows = await self._fetch(
            """
            SELECT user_id, recipient_email, subject, status, metadata, message_id,
                   error_message
            FROM email_send_history
            WHERE metadata ? 'batch' AND metadata ->> 'batch' = $1
            ORDER BY user_id
            """,
            batch,
        )
        return [from_row(ClaimedEmail, row) for row in rows]

    async def finish_weekly_emails(
        self, email_type: str, week: str, batch: str, outcomes: Sequence[EmailOutcome]
    ) -> int:
        if not outcomes:
            return 0
        tag = await self._execute(
            """
            UPDATE email_send_history h
            SET status = CASE WHEN o.message_id IS NULL THEN 'failed' ELSE 'sent' END,
                message_id = o.message_id, error_message = o.error
            FROM unnest($1::uuid[], $2::text[], $3::text[]) AS o(user_id, message_id, error)
            WHERE h.user_id = o.user_id AND h.email_type = $4
              AND h.metadata ? 'week' AND h.metadata ->> 'week' = $5
              AND h.metadata ->> 'batch' = $6 AND h.status = 'queued'
            """,
            [o.user_id for o in outcomes],
            [o.message_id for o in outcomes],
            [o.error for o in outcomes],
            email_type,
            week,
            batch,
        )
        return tag

    async def set_email_preference(self, user_id: Id, key: str, value: bool) -> bool:
        tag = await self._execute(
            """
            UPDATE profiles
            SET email_preferences = coalesce(email_preferences, '{}'::jsonb)
                || jsonb_build_object($2::text, $3::boolean)
            WHERE user_id = $1
            """,
            as_uuid(user_id, "userId"),
            key,
            value,
        )
        return tag == 1

    async def email_already_sent(self, idempotency_key: str) -> bool:
        row = await self._fetchrow(
            "SELECT EXISTS (SELECT 1 FROM email_send_history "
            "WHERE metadata ->> 'idempotency_key' = $1 AND status = 'sent') AS sent",
            idempotency_key,
        )
        return bool(row and row["sent"])

    async def record_email_send(self, send: EmailSend) -> bool:
        metadata = {**to_json(send.metadata), "idempotency_key": send.idempotency_key}
        args = (
            send.user_id,
            send.email_type,
            send.recipient_email,
            send.subject,
            send.message_id,
            send.status,
            send.error_message,
            metadata,
        )
        insert = """
            INSERT INTO email_send_history (user_id, email_type, recipient_email, subject,
                message_id, status, error_message, metadata)
            SELECT $1, $2, $3, $4, $5, $6, $7, $8
        """
        if send.status != "sent":
            await self._execute(insert, *args)
            return True
        # The advisory lock makes NOT EXISTS race-free even where the unique index is
        # missing; where it exists, it is the schema's own guard against other writers.
        async with self._connection() as conn:
            try:
                async with conn.transaction():
                    await conn.execute(
                        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                        _lock_key("email", send.idempotency_key),
                    )
                    tag = await conn.execute(
                        insert + " WHERE NOT EXISTS (SELECT 1 FROM email_send_history "
                        "WHERE metadata ->> 'idempotency_key' = $9 AND status = 'sent')",
                        *args,
                        send.idempotency_key,
                    )
            except asyncpg.UniqueViolationError:
                return False
        return _count(tag) == 1


class _Rollback(Exception):
    """Raised inside a transaction to undo it; never escapes the repository."""


def _given(value: Any) -> Any:
    """None for an empty value, so SQL's `$n IS NOT NULL` means "a value was given"."""
    return None if rules.is_empty(value) else value
