"""A PostgREST stand-in on 127.0.0.1 for the Supabase backend's tests, backed by PostgreSQL.

It speaks the part of PostgREST's HTTP API the `supabase` client uses (docs.postgrest.org,
"Tables and Views", "Resource representation", "Errors"), checks what a Supabase project
would check, and answers from a real database the way PostgREST does (it builds the
same `json_agg` / `json_populate_recordset` SQL), so results are faithful rather than
re-implemented:

- `/rest/v1/<table>`: GET, HEAD, POST (insert, upsert with `on_conflict` and
  `resolution=merge|ignore-duplicates`, `columns`), PATCH; filters eq, neq, gt, gte,
  lt, lte, is, in, like, ilike, with `not.`, JSON paths (`col->>key`) and `or`/`and`
  logic trees; `select` with aliases, `order`, `limit`, `offset`; `Prefer` return=
  and count=exact (Content-Range); `Accept: application/vnd.pgrst.object+json`.
- `apikey` and `Authorization: Bearer` must carry the service key, and
  `Accept-Profile`/`Content-Profile` must name `public`; anything else is refused the
  way Supabase refuses it, and anything this stand-in does not implement is a 400
  naming it, so a test cannot pass on a request the real server would treat otherwise.

Every request is recorded (`requests`) for tests to assert on, and `before_write` lets a
test run SQL between a client's read and its write, to stage a race deterministically.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import asyncpg
import uvicorn

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
WriteHook = Callable[[str, str, asyncpg.Pool], Awaitable[None]]

_OPERATORS = {
    "eq": "=",
    "neq": "<>",
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
    "like": "LIKE",
    "ilike": "ILIKE",
}
_RESERVED = {"select", "order", "limit", "offset", "on_conflict", "columns"}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_JSON_PATH = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)((?:->>?[A-Za-z0-9_]+)+)$")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    table: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: Any

    def params(self, key: str) -> list[str]:
        return [v for k, v in self.query if k == key]

    @property
    def prefer(self) -> set[str]:
        return {p.strip() for p in self.headers.get("prefer", "").split(",") if p.strip()}


class PostgrestError(Exception):
    """An error answered in PostgREST's JSON error format."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"code": code, "details": details, "hint": hint, "message": message}


class _GatewayError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body["message"])
        self.status = status
        self.body = body


_KEY_HINT = "Double check your Supabase `anon` or `service_role` API key."


def _status_for_sqlstate(code: str) -> int:
    # PostgREST's documented mapping of SQLSTATE to HTTP status.
    exact = {"23503": 409, "23505": 409, "25006": 405, "42883": 404, "42P01": 404}
    if code in exact:
        return exact[code]
    if code == "42501":
        return 403
    prefixes = {
        "08": 503,
        "09": 500,
        "0L": 403,
        "0P": 403,
        "25": 500,
        "28": 403,
        "2D": 500,
        "38": 500,
        "39": 500,
        "3B": 500,
        "40": 500,
        "53": 503,
        "54": 503,
        "55": 500,
        "57": 500,
        "58": 500,
        "F0": 500,
        "HV": 500,
        "XX": 500,
    }
    if code == "P0001":
        return 400
    if code.startswith("P0"):
        return 500
    return prefixes.get(code[:2], 400)


def _split(text: str, sep: str = ",") -> list[str]:
    """Split at `sep` outside parentheses and double quotes."""
    parts: list[str] = []
    depth, quoted, escaped, current = 0, False, False, []
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and char == sep:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class _Table:
    name: str
    columns: dict[str, str]  # name -> SQL type
    primary_key: list[str]


@dataclass
class _Sql:
    """A WHERE clause under construction, with its parameters."""

    params: list[Any] = field(default_factory=list)

    def param(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}"


class FakePostgrest:
    """The stand-in server. Use as `async with FakePostgrest(dsn, key) as server:`."""

    def __init__(self, dsn: str, service_key: str) -> None:
        self.dsn = dsn
        self.service_key = service_key
        self.requests: list[RecordedRequest] = []
        self.before_write: WriteHook | None = None
        self._tables: dict[str, _Table] = {}
        self._pool: asyncpg.Pool | None = None
        self._server: uvicorn.Server | None = None
        self._serving: Any = None
        self._socket: socket.socket | None = None
        self._port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None
        return self._pool

    def requests_to(self, method: str, table: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.table == table]

    async def __aenter__(self) -> FakePostgrest:
        import asyncio

        self._pool = await asyncpg.create_pool(
            self.dsn, min_size=1, max_size=8, server_settings={"timezone": "UTC"}
        )
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self._port = int(self._socket.getsockname()[1])
        config = uvicorn.Config(
            self, log_level="warning", lifespan="off", access_log=False, http="h11"
        )
        self._server = _QuietServer(config)
        self._serving = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if self._serving.done():
                self._serving.result()
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Stop serving and close the database pool; safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.should_exit = True
            await self._serving
        if self._socket is not None:
            self._socket.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    # ASGI -------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        query = parse_qsl(scope["query_string"].decode(), keep_blank_values=True)
        try:
            status, payload, extra = await self._handle(
                scope["method"], scope["path"], query, headers, body
            )
        except (PostgrestError, _GatewayError) as exc:
            status, payload, extra = exc.status, json.dumps(exc.body), {}
        response_headers = [(b"content-type", b"application/json; charset=utf-8")]
        response_headers += [(k.encode(), v.encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        send_body = payload.encode() if payload and scope["method"] != "HEAD" else b""
        await send({"type": "http.response.body", "body": send_body})

    async def _handle(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        headers: dict[str, str],
        raw: bytes,
    ) -> tuple[int, str | None, dict[str, str]]:
        if headers.get("apikey") != self.service_key:
            # Supabase's API gateway answers before PostgREST does, without an error code.
            raise _GatewayError(401, {"message": "Invalid API key", "hint": _KEY_HINT})
        if headers.get("authorization") != f"Bearer {self.service_key}":
            raise PostgrestError(401, "PGRST301", "JWSError JWSInvalidSignature")
        if not path.startswith("/rest/v1/"):
            raise PostgrestError(404, "404", f"no route for {path}")
        name = path.removeprefix("/rest/v1/")
        profile_header = "accept-profile" if method in ("GET", "HEAD") else "content-profile"
        if headers.get(profile_header, "public") != "public":
            raise PostgrestError(406, "PGRST106", "The schema must be one of the following: public")
        body = json.loads(raw) if raw else None
        self.requests.append(RecordedRequest(method, name, query, headers, body))
        table = await self._table(name)
        prefer = {
            k.strip(): v.strip()
            for k, _, v in (p.partition("=") for p in headers.get("prefer", "").split(","))
            if k.strip()
        }
        if "missing" in prefer:
            raise PostgrestError(400, "FAKE", "Prefer: missing=default is not implemented here")
        if method in ("GET", "HEAD"):
            return await self._read(table, query, headers, prefer)
        if method in ("POST", "PATCH"):
            if self.before_write is not None:
                hook, self.before_write = self.before_write, None
                await hook(method, name, self.pool)
            if method == "POST":
                return await self._insert(table, query, headers, prefer, body)
            return await self._update(table, query, headers, prefer, body)
        raise PostgrestError(405, "FAKE", f"{method} is not implemented here")

    # Schema -----------------------------------------------------------------------

    async def _table(self, name: str) -> _Table:
        if name in self._tables:
            return self._tables[name]
        if name.startswith("rpc/"):
            raise PostgrestError(
                404,
                "PGRST202",
                f"Could not find the function public.{name[4:]} in the schema cache",
            )
        rows = await self.pool.fetch(
            """
            SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
                   coalesce(a.attnum = ANY (i.indkey), false) AS pk
            FROM pg_attribute a
            JOIN pg_class c ON c.oid = a.attrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
            WHERE n.nspname = 'public' AND c.relname = $1 AND c.relkind = 'r'
              AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """,
            name,
        )
        if not rows:
            raise PostgrestError(
                404, "PGRST205", f"Could not find the table 'public.{name}' in the schema cache"
            )
        table = _Table(
            name,
            {r["name"]: r["type"] for r in rows},
            [r["name"] for r in rows if r["pk"]],
        )
        self._tables[name] = table
        return table

    def _column(self, table: _Table, name: str) -> str:
        if name not in table.columns:
            raise PostgrestError(400, "42703", f"column {table.name}.{name} does not exist")
        return _quote_ident(name)

    def _field(self, table: _Table, text: str) -> tuple[str, str]:
        """A filter's left side as SQL, and the SQL type its value is compared as."""
        if _IDENT.match(text):
            return self._column(table, text), table.columns[text]
        match = _JSON_PATH.match(text)
        if not match:
            raise PostgrestError(400, "PGRST100", f'"failed to parse filter ({text})"')
        column = self._column(table, match[1])
        sql, kind = column, "jsonb"
        for arrow, key in re.findall(r"(->>?)([A-Za-z0-9_]+)", match[2]):
            sql = f"({sql} {arrow} {_quote_lit(key)})"
            kind = "text" if arrow == "->>" else "jsonb"
        return sql, kind

    # Filters ----------------------------------------------------------------------

    def _condition(self, table: _Table, field_text: str, expression: str, sql: _Sql) -> str:
        left, kind = self._field(table, field_text)
        negate = False
        if expression.startswith("not."):
            negate, expression = True, expression[4:]
        operator, dot, value = expression.partition(".")
        if not dot:
            raise PostgrestError(400, "PGRST100", f'"failed to parse filter ({expression})"')
        if operator == "is":
            keyword = value.lower()
            if keyword not in ("null", "true", "false", "unknown"):
                raise PostgrestError(400, "PGRST100", f'"failed to parse filter (is.{value})"')
            condition = f"{left} IS {keyword.upper()}"
        elif operator == "in":
            if not (value.startswith("(") and value.endswith(")")):
                raise PostgrestError(400, "PGRST100", f'"failed to parse filter (in.{value})"')
            items = [_unquote(v) for v in _split(value[1:-1])] if value[1:-1] else []
            placeholders = ", ".join(f"{sql.param(v)}::text::{kind}" for v in items)
            condition = f"{left} IN ({placeholders})" if items else "false"
        elif operator in _OPERATORS:
            literal = _unquote(value) if value.startswith('"') else value
            if operator in ("like", "ilike"):
                literal = literal.replace("*", "%")
                condition = f"{left}::text {_OPERATORS[operator]} {sql.param(literal)}"
            else:
                condition = f"{left} {_OPERATORS[operator]} {sql.param(literal)}::text::{kind}"
        else:
            raise PostgrestError(
                400, "FAKE", f"operator {operator!r} is not implemented by this stand-in"
            )
        return f"NOT ({condition})" if negate else condition

    def _tree(self, table: _Table, operator: str, text: str, sql: _Sql) -> str:
        if not (text.startswith("(") and text.endswith(")")):
            raise PostgrestError(400, "PGRST100", f'"failed to parse logic tree ({text})"')
        parts: list[str] = []
        for item in _split(text[1:-1]):
            nested = re.match(r"^(not\.)?(or|and)(\(.*\))$", item)
            if nested:
                inner = self._tree(table, nested[2], nested[3], sql)
                parts.append(f"NOT {inner}" if nested[1] else inner)
                continue
            field_text, dot, expression = item.partition(".")
            if not dot:
                raise PostgrestError(400, "PGRST100", f'"failed to parse logic tree ({item})"')
            parts.append(self._condition(table, field_text, expression, sql))
        return "(" + f" {operator.upper()} ".join(parts) + ")"

    def _where(self, table: _Table, query: list[tuple[str, str]], sql: _Sql) -> str:
        conditions: list[str] = []
        for key, value in query:
            if key in _RESERVED:
                continue
            tree = re.match(r"^(not\.)?(or|and)$", key)
            if tree:
                inner = self._tree(table, tree[2], value, sql)
                conditions.append(f"NOT {inner}" if tree[1] else inner)
            else:
                conditions.append(self._condition(table, key, value, sql))
        return " AND ".join(conditions) if conditions else "true"

    def _select_list(self, table: _Table, query: list[tuple[str, str]]) -> str:
        selects = [v for k, v in query if k == "select"]
        if not selects or selects[-1] == "*":
            return "*"
        items: list[str] = []
        for item in selects[-1].split(","):
            if "(" in item:
                raise PostgrestError(400, "FAKE", f"embedding ({item}) is not implemented here")
            alias, colon, name = item.partition(":")
            if not colon:
                alias, name = item, item
            if name == "*":
                items.append("*")
                continue
            items.append(f"{self._column(table, name)} AS {_quote_ident(alias)}")
        return ", ".join(items)

    def _order(self, table: _Table, query: list[tuple[str, str]]) -> str:
        orders = [v for k, v in query if k == "order"]
        if not orders:
            return ""
        terms: list[str] = []
        for term in orders[-1].split(","):
            name, *modifiers = term.split(".")
            sql = self._column(table, name)
            for modifier in modifiers:
                if modifier not in ("asc", "desc", "nullsfirst", "nullslast"):
                    raise PostgrestError(400, "PGRST100", f'"failed to parse order ({term})"')
                sql += {
                    "asc": " ASC",
                    "desc": " DESC",
                    "nullsfirst": " NULLS FIRST",
                    "nullslast": " NULLS LAST",
                }[modifier]
            terms.append(sql)
        return " ORDER BY " + ", ".join(terms)

    @staticmethod
    def _int_param(query: list[tuple[str, str]], key: str) -> int | None:
        values = [v for k, v in query if k == key]
        if not values:
            return None
        if not values[-1].isdigit():
            raise PostgrestError(400, "PGRST100", f'"failed to parse {key} ({values[-1]})"')
        return int(values[-1])

    # Verbs ------------------------------------------------------------------------

    def _shape(
        self, rows_json: str, headers: dict[str, str], content_range: str
    ) -> tuple[int, str, dict[str, str]]:
        accept = headers.get("accept", "application/json")
        if accept.startswith("application/vnd.pgrst.object+json"):
            rows = json.loads(rows_json)
            if len(rows) != 1:
                raise PostgrestError(
                    406,
                    "PGRST116",
                    "Cannot coerce the result to a single JSON object",
                    details=f"The result contains {len(rows)} rows",
                )
            return 200, json.dumps(rows[0]), {"content-range": content_range}
        if accept not in ("application/json", "*/*"):
            raise PostgrestError(
                406, "PGRST107", f"None of these media types are available: {accept}"
            )
        return 200, rows_json, {"content-range": content_range}

    async def _read(
        self,
        table: _Table,
        query: list[tuple[str, str]],
        headers: dict[str, str],
        prefer: dict[str, str],
    ) -> tuple[int, str | None, dict[str, str]]:
        sql = _Sql()
        where = self._where(table, query, sql)
        limit = self._int_param(query, "limit")
        offset = self._int_param(query, "offset") or 0
        inner = (
            f"SELECT {self._select_list(table, query)} FROM {_quote_ident(table.name)} "
            f"WHERE {where}{self._order(table, query)}"
            + (f" LIMIT {limit}" if limit is not None else "")
            + (f" OFFSET {offset}" if offset else "")
        )
        async with self._transaction() as conn:
            rows_json = await conn.fetchval(
                f"SELECT coalesce(json_agg(t), '[]')::text FROM ({inner}) t", *sql.params
            )
            total = None
            if prefer.get("count") == "exact":
                total = await conn.fetchval(
                    f"SELECT count(*) FROM {_quote_ident(table.name)} WHERE {where}", *sql.params
                )
        n = len(json.loads(rows_json))
        span = f"{offset}-{offset + n - 1}" if n else "*"
        content_range = f"{span}/{'*' if total is None else total}"
        status, payload, extra = self._shape(rows_json, headers, content_range)
        if total is not None and n < total and status == 200:
            status = 206
        return status, payload, extra

    async def _write_result(
        self,
        sql_text: str,
        params: list[Any],
        table: _Table,
        query: list[tuple[str, str]],
        headers: dict[str, str],
        prefer: dict[str, str],
        success: int,
    ) -> tuple[int, str | None, dict[str, str]]:
        select = self._select_list(table, query)
        async with self._transaction() as conn:
            rows_json = await conn.fetchval(
                f"WITH pgrst_write AS ({sql_text} RETURNING *) "
                "SELECT coalesce(json_agg(t), '[]')::text "
                f"FROM (SELECT {select} FROM pgrst_write) t",
                *params,
            )
        if prefer.get("return") == "representation":
            status, payload, extra = self._shape(rows_json, headers, "*/*")
            return success if status == 200 else status, payload, extra
        return (201 if success == 201 else 204), None, {"content-range": "*/*"}

    async def _insert(
        self,
        table: _Table,
        query: list[tuple[str, str]],
        headers: dict[str, str],
        prefer: dict[str, str],
        body: Any,
    ) -> tuple[int, str | None, dict[str, str]]:
        rows = body if isinstance(body, list) else [body]
        if not rows or not all(isinstance(r, dict) for r in rows):
            raise PostgrestError(400, "PGRST102", "Empty or invalid json")
        column_params = [v for k, v in query if k == "columns"]
        if column_params:
            names = [_unquote(c) for c in _split(column_params[-1])]
        else:
            names = list(rows[0])
            if any(set(r) != set(names) for r in rows):
                raise PostgrestError(400, "PGRST102", "All object keys must match")
        for name in names:
            if name not in table.columns:
                raise PostgrestError(
                    400,
                    "PGRST204",
                    f"Could not find the '{name}' column of '{table.name}' in the schema cache",
                )
        columns = ", ".join(_quote_ident(n) for n in names)
        sql_text = (
            f"INSERT INTO {_quote_ident(table.name)} ({columns}) SELECT {columns} "
            f"FROM json_populate_recordset(NULL::{_quote_ident(table.name)}, $1::json)"
        )
        resolution = prefer.get("resolution")
        if resolution is not None:
            targets = [v for k, v in query if k == "on_conflict"]
            target = targets[-1].split(",") if targets else table.primary_key
            target_sql = ", ".join(self._column(table, c) for c in target)
            if resolution == "ignore-duplicates":
                sql_text += f" ON CONFLICT ({target_sql}) DO NOTHING"
            elif resolution == "merge-duplicates":
                updates = ", ".join(
                    f"{_quote_ident(n)} = EXCLUDED.{_quote_ident(n)}" for n in names
                )
                sql_text += f" ON CONFLICT ({target_sql}) DO UPDATE SET {updates}"
            else:
                raise PostgrestError(400, "PGRST100", f"unknown resolution {resolution!r}")
        return await self._write_result(
            sql_text, [json.dumps(rows)], table, query, headers, prefer, 201
        )

    async def _update(
        self,
        table: _Table,
        query: list[tuple[str, str]],
        headers: dict[str, str],
        prefer: dict[str, str],
        body: Any,
    ) -> tuple[int, str | None, dict[str, str]]:
        if not isinstance(body, dict) or not body:
            raise PostgrestError(400, "PGRST102", "Empty or invalid json")
        for name in body:
            if name not in table.columns:
                raise PostgrestError(
                    400,
                    "PGRST204",
                    f"Could not find the '{name}' column of '{table.name}' in the schema cache",
                )
        sql = _Sql()
        payload = sql.param(json.dumps(body))
        columns = ", ".join(_quote_ident(n) for n in body)
        where = self._where(table, query, sql)
        sql_text = (
            f"UPDATE {_quote_ident(table.name)} SET ({columns}) = "
            f"(SELECT {columns} FROM json_populate_record(NULL::{_quote_ident(table.name)}, "
            f"{payload}::json)) WHERE {where}"
        )
        return await self._write_result(sql_text, sql.params, table, query, headers, prefer, 200)

    @contextlib.asynccontextmanager
    async def _transaction(self) -> Any:
        # One transaction per request, as PostgREST runs them.
        async with self.pool.acquire() as conn, conn.transaction():
            try:
                yield conn
            except asyncpg.PostgresError as exc:
                code = exc.sqlstate or "XX000"
                raise PostgrestError(
                    _status_for_sqlstate(code),
                    code,
                    exc.args[0] if exc.args else str(exc),
                    details=getattr(exc, "detail", None),
                    hint=getattr(exc, "hint", None),
                ) from exc


def _quote_lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: inside a test run, pytest owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
