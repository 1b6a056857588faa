"""`howlerhire` against the real stack: the installed command as a process, over a real
gateway process and a real worker process on the session's nats-server (its PostgreSQL for
`migrate`). Each command in text and JSON, `watch`'s exit codes, bulk dry-run counts,
and the errors a person meets (bad token, gateway down, unknown instance, bad JSON)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.embedded import free_port
from tests.support.procs import Proc, spawn

TOKEN = "cli-e2e-token-0123456789abcdef"
HOWLERHIRE = Path(sys.executable).with_name("howlerhire")
# What the CLI must not pick up from the machine running the tests.
CLEARED = ("HOWLERHIRE_URL", "WORKFLOWS_URL", "GATEWAY_URL", "WORKFLOWS_AUTH_TOKEN", "NO_COLOR")


@dataclass
class Stack:
    url: str
    prefix: str
    nats_url: str
    home: Path
    procs: list[Proc]

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in CLEARED and k != "FORCE_COLOR"}
        env |= {"HOWLERHIRE_URL": self.url, "WORKFLOWS_AUTH_TOKEN": TOKEN, "COLUMNS": "200"}
        return env | extra

    def run(
        self, *argv: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """The installed `howlerhire` in an empty directory (no var/ of the repository)."""
        return subprocess.run(
            [str(HOWLERHIRE), *argv],
            cwd=self.home,
            env=self.env() if env is None else env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def ok(self, *argv: str, **kwargs: Any) -> str:
        done = self.run(*argv, **kwargs)
        assert done.returncode == 0, (argv, done.returncode, done.stdout, done.stderr, self.logs())
        return done.stdout

    def json(self, *argv: str) -> Any:
        return json.loads(self.ok("-o", "json", *argv))

    def jsonl(self, *argv: str) -> list[Any]:
        return [json.loads(line) for line in self.ok("-o", "jsonl", *argv).splitlines()]

    def trigger(self, workflow: str, params: dict[str, Any], instance_id: str | None = None) -> str:
        iid = instance_id or uuid.uuid4().hex
        got = self.json("trigger", workflow, json.dumps(params), "--id", iid)
        assert got["instanceId"] == iid and got["success"] is True
        return iid

    def start(self, workflow: str, params: dict[str, Any]) -> str:
        """Set-up for a test (not the CLI under test): POST the instance directly."""
        iid = uuid.uuid4().hex
        response = httpx.post(
            f"{self.url}/workflows/{workflow}/instances",
            json={"params": params, "instanceId": iid},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
        )
        # (201 new; a loaded gateway has been seen answering 200 for a new one, too.)
        assert response.status_code in (200, 201), response.text
        assert response.json()["instanceId"] == iid
        return iid

    def until(self, workflow: str, iid: str, check: Any, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            response = httpx.get(
                f"{self.url}/workflows/{workflow}/instances/{iid}",
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=10,
            )
            body = response.json()
            if response.status_code == 200 and check(body):
                return body
            time.sleep(0.1)
        raise AssertionError(f"{workflow} {iid}: last {body}\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(p.output()[-2000:] for p in self.procs)


@pytest.fixture(scope="module")
def stack(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("cli")
    home = tmp / "home"
    home.mkdir()
    prefix = f"cli{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {
        "NATS_URL": nats_url,
        "HOWLERHIRE_NAMESPACE": prefix,
        "WORKFLOWS_AUTH_TOKEN": TOKEN,
        "GATEWAY_PORT": str(port),
        "COUNTER_DIR": str(tmp),
        "ACK_WAIT": "5",
    }
    procs = [spawn("tests.support.cli_app", env | {"CLI_APP_ROLE": "gateway"}, tmp / "gw.log")]
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert procs[0].alive() and time.monotonic() < deadline, procs[0].output()
        time.sleep(0.1)
    procs.append(spawn("tests.support.cli_app", env, tmp / "worker.log"))
    try:
        yield Stack(url, prefix, nats_url, home, procs)
    finally:
        for proc in procs:
            proc.terminate()


def test_trigger_watch_show_status(stack: Stack) -> None:
    """A run followed live to `complete` (exit 0), then shown: params, output, and a step
    table with attempts, retries, waits and the cached step of a second run."""
    key = uuid.uuid4().hex
    first = uuid.uuid4().hex
    started = stack.ok("trigger", "steps", json.dumps({"userId": "u-w", "key": key}), "--id", first)
    # Queued or already running, depending on how fast the worker is.
    follow = f"  follow it: howlerhire watch steps {first}"
    assert re.fullmatch(rf"started steps {first} \((queued|running)\)\n{follow}\n", started)

    watched = stack.run("watch", "steps", first, "--interval", "0.1")
    assert watched.returncode == 0, (watched.stdout, watched.stderr)
    lines = watched.stdout.splitlines()
    order = [line.split()[1] for line in lines if line.startswith("#")]
    # Each step reported as it changed (wobble retried once), in order, then the outcome.
    # (A retry 0.2 s long may fall between two polls: `wobble retrying` is not asserted
    # here but on an instance that stays retrying, below.)
    assert [n for i, n in enumerate(order) if n != order[i - 1] or i == 0] == [
        "fetch", "think", "nap", "slow", "wobble"
    ]  # fmt: skip
    assert "attempt 2" in next(line for line in reversed(lines) if line.startswith("#4 wobble"))
    outcome = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    assert lines[outcome].startswith(f"complete  steps {first} in ")
    assert json.loads("\n".join(lines[outcome + 1 :]))["wobble"] == "steady"
    assert '"score": 42' in watched.stdout and '"wobble": "steady"' in watched.stdout

    shown = stack.json("show", "steps", first)
    assert (shown["status"], shown["params"]["userId"], shown["output"]["jobs"]) == (
        "complete",
        "u-w",
        3,
    )
    by_name = {step["name"]: step for step in shown["steps"]}
    assert list(by_name) == ["fetch", "think", "nap", "slow", "wobble"]
    assert by_name["wobble"]["attempts"] == 2 and by_name["nap"]["kind"] == "sleep"
    assert not by_name["think"].get("cached", False)

    # The same key again: `think` comes from the step cache.
    second = stack.trigger("steps", {"userId": "u-w", "key": key})
    assert stack.run("watch", "steps", second, "-o", "json").returncode == 0
    text = stack.ok("show", "steps", second)
    header = next(line for line in text.splitlines() if line.startswith("#"))
    assert header.split() == [
        "#", "step", "kind", "status", "attempts", "retries", "took", "started", "waits", "cached"
    ]  # fmt: skip
    rows = {line.split()[1]: line for line in text.splitlines() if line[:1].isdigit()}
    assert rows["think"].rstrip().endswith("cached")
    assert rows["wobble"].split()[3:6] == ["complete", "2", "1"]  # status, attempts, retries
    assert "sleep until" in rows["nap"]
    assert f"instance    {second}" in text and '"userId": "u-w"' in text

    # A step between attempts: retrying, its attempts so far and when it tries next.
    patient = stack.start("patient", {})
    stack.until(
        "patient", patient, lambda b: [s["status"] for s in b.get("steps", [])] == ["retrying"]
    )
    row = next(
        line for line in stack.ok("show", "patient", patient).splitlines() if line.startswith("0 ")
    )
    assert re.match(r"0 +flop +do +retrying +1 +0 .* next try \d\d:\d\d:\d\dZ", row), row
    assert stack.json("terminate", "patient", patient)["status"] == "terminated"

    assert stack.json("status", "steps", second)["output"]["score"] == 42
    status_text = stack.ok("status", "steps", second)
    assert status_text.splitlines()[0] == "complete"


def test_watch_exit_codes_errored_terminated_timeout(stack: Stack) -> None:
    """watch exits 1 for an errored run, 3 for a terminated one, 4 on --timeout; jsonl
    gives one object per step change and one at the end."""
    doomed = stack.trigger("doomed", {})
    watched = stack.run("watch", "doomed", doomed)
    assert watched.returncode == 1, watched.stdout
    assert watched.stdout.splitlines()[-2].startswith(f"errored  doomed {doomed} in ")
    assert "ValueError: this step never works" in watched.stdout

    events = [
        json.loads(line)
        for line in stack.run("-o", "jsonl", "watch", "doomed", doomed).stdout.splitlines()
    ]
    assert [e["type"] for e in events] == ["step", "end"]
    step, end = events[0]["step"], events[1]["instance"]
    assert (step["name"], step["attempts"], step["status"]) == ("doomed", 2, "errored")
    assert (end["status"], end["error"]["name"]) == ("errored", "ValueError")

    waiting = stack.trigger("approval", {"who": "ada"})
    stack.until("approval", waiting, lambda b: b["status"] == "waiting")
    timed = stack.run("watch", "approval", waiting, "--timeout", "0.5")
    assert timed.returncode == 4
    assert (
        timed.stderr.strip() == f"howlerhire watch: approval {waiting} is still waiting after 0.5s"
    )

    follower = subprocess.Popen(
        [str(HOWLERHIRE), "show", "approval", waiting, "--follow", "--interval", "0.1"],
        cwd=stack.home,
        env=stack.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "terminated" in stack.ok("terminate", "approval", waiting)
        out, err = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 3, (out, err)
    assert out.splitlines()[-1].startswith(f"terminated  approval {waiting}")
    # Terminated is final: pausing it is refused with the gateway's 409, in one line.
    again = stack.run("pause", "approval", waiting)
    assert again.returncode == 1 and again.stderr.startswith("howlerhire pause: 409 conflict")
    assert len(again.stderr.splitlines()) == 1


def test_pause_resume_event_send(stack: Stack) -> None:
    """pause / resume a waiting run, then `event send` delivers what it waits for."""
    iid = stack.trigger("approval", {"who": "bo"})
    stack.until("approval", iid, lambda b: b["status"] == "waiting")
    paused = stack.json("pause", "approval", iid)
    assert paused["status"] == "paused"
    # Paused, it keeps what it is sent; the same idempotency key twice is one event.
    sent = stack.json("event", "send", "approval", iid, "approved", '{"by": "ops"}', "--key", "k1")
    assert (sent["type"], sent["instanceId"]) == ("approved", iid)
    text = stack.ok("event", "send", "approval", iid, "approved", '{"by": "late"}', "--key", "k1")
    assert text.startswith(f"sent approved to approval {iid}: event ")
    assert stack.ok("resume", "approval", iid).startswith(f"resumed approval {iid}: now ")
    done = stack.run("watch", "approval", iid, "-o", "json")
    assert done.returncode == 0
    final = json.loads(done.stdout)
    assert final["output"] == {"approvedBy": "ops"}
    # The same idempotency key twice is one event in the inbox.
    assert [e["type"] for e in final["events"]] == ["approved"]
    assert "approved" in stack.ok("show", "approval", iid).split("events (1)")[1]


def test_send_and_list_filters_and_paging(stack: Stack) -> None:
    """`send` starts the workflow its event routes to; list filters by workflow, status,
    user and creation time, and pages with --cursor in every format."""
    user = f"u-{uuid.uuid4().hex[:6]}"
    sent = stack.json(
        "send", "cli/quick.requested", json.dumps({"userId": user}), "--id", "e1" + user
    )
    assert [s["workflow"] for s in sent["started"]] == ["quick"]
    ids = [sent["started"][0]["instanceId"]]
    text = stack.ok(
        "send", "cli/quick.requested", json.dumps({"userId": user}), "--id", "e2" + user
    )
    assert text.splitlines()[1].startswith("started quick ")
    ids.append(text.splitlines()[1].split()[2])
    ids += [stack.start("quick", {"userId": user}) for _ in range(3)]
    for iid in ids:
        stack.until("quick", iid, lambda b: b["status"] == "complete")

    page = stack.json("list", "--workflow", "quick", "--user", user)
    assert sorted(i["instanceId"] for i in page["instances"]) == sorted(ids)
    assert stack.json("list", "-w", "quick", "-u", user, "-s", "errored")["instances"] == []
    assert stack.json("list", "-u", user, "--since", "1h", "--until", "2099-01-01")["instances"]
    assert stack.json("list", "-u", user, "--until", "1h")["instances"] == []
    assert stack.json("list", "-u", user, "--since", "2099-01-01T00:00Z")["instances"] == []

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        extra = ["--cursor", cursor] if cursor else []
        got = stack.json("list", "-u", user, "-n", "2", *extra)
        seen += [i["instanceId"] for i in got["instances"]]
        pages += 1
        cursor = got["nextCursor"]
        if not cursor or not got["instances"]:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5 and pages >= 3
    # The window is applied to pages too: two per page, all five, none twice.
    windowed = stack.json("list", "-u", user, "-n", "2", "--since", "1h")
    assert len(windowed["instances"]) == 2 and windowed["nextCursor"]
    rest = stack.json(
        "list", "-u", user, "-n", "10", "--since", "1h", "--cursor", windowed["nextCursor"]
    )
    assert sorted(i["instanceId"] for i in windowed["instances"] + rest["instances"]) == sorted(ids)

    lines = stack.jsonl("list", "-u", user)
    assert len(lines) == 5 and {line["status"] for line in lines} == {"complete"}
    table = stack.ok("list", "-u", user, "-n", "2").splitlines()
    assert table[0].split() == ["instance", "workflow", "status", "gen", "created", "took", "error"]
    assert len(table) == 4 and table[-1].startswith("more: --cursor ")
    assert stack.ok("list", "-u", "nobody-at-all").strip() == "no instances match"


def test_restart_from_step_and_bulk(stack: Stack) -> None:
    """restart --from keeps the earlier steps and runs a new generation; bulk counts first
    (--dry-run), refuses without --yes off a terminal, and acts on exactly that many."""
    user = f"b-{uuid.uuid4().hex[:6]}"
    first = stack.start("steps", {"userId": user, "key": user})
    ids = [stack.start("quick", {"userId": user}) for _ in range(3)]
    stack.until("steps", first, lambda b: b["status"] == "complete")
    restarted = stack.json("restart", "steps", first, "--from", "slow")
    assert restarted["generation"] == 1
    assert stack.run("watch", "steps", first).returncode == 0
    again = stack.json("show", "steps", first)
    assert again["generation"] == 1
    assert [s["name"] for s in again["steps"]] == ["fetch", "think", "nap", "slow", "wobble"]
    # The steps before `slow` kept their first run's times; `slow` ran again after them.
    kept, rerun = again["steps"][2], again["steps"][3]
    assert rerun["startedAt"] > kept["endedAt"] > again["createdAt"]

    for iid in ids:
        stack.until("quick", iid, lambda b: b["status"] == "complete")
    text = stack.ok("restart", "quick", ids[0])
    assert re.fullmatch(rf"restarted quick {ids[0]}: generation 1 \((queued|running)\)\n", text)
    stack.until("quick", ids[0], lambda b: b["generation"] == 1 and b["status"] == "complete")

    dry = stack.json("bulk", "restart", "--workflow", "quick", "--user", user, "--dry-run")
    assert (dry["phase"], dry["total"]) == ("preview", 3)
    assert stack.ok("bulk", "restart", "-u", user, "--dry-run").strip() == (
        "restart would act on 4 instances (dry run)"  # the `steps` run is this user's too
    )
    assert stack.json("bulk", "terminate", "-u", user, "-s", "running", "--dry-run")["total"] == 0
    assert (
        stack.json("bulk", "replay", "-u", user, "--since", "2099-01-01", "--dry-run")["total"] == 0
    )

    refused = stack.run("bulk", "restart", "-w", "quick", "-u", user)
    assert refused.returncode == 2
    assert refused.stderr == (
        "howlerhire bulk restart: refusing to restart 3 instances without --yes "
        "(not a terminal; --dry-run only counts)\n"
    )
    generations = {i: stack.until("quick", i, lambda b: True).get("generation", 0) for i in ids}
    assert generations == {ids[0]: 1, ids[1]: 0, ids[2]: 0}  # nothing was restarted

    done = stack.json("bulk", "restart", "-w", "quick", "-u", user, "--yes", "--rate", "100")
    assert (done["phase"], done["total"], done["acted"], done["failed"]) == ("done", 3, 3, 0)
    for iid in ids:
        stack.until(
            "quick",
            iid,
            lambda b, i=iid: b["generation"] == generations[i] + 1 and b["status"] == "complete",
        )


def test_dead_letters(stack: Stack) -> None:
    """Messages the worker cannot decode: dlq list / show in text and JSON, redrive once
    (the second redrive says 404), purge only with --yes."""
    import nats

    async def publish() -> None:
        nc = await nats.connect(stack.nats_url)
        for body in (b"not json at all", b"nor this"):
            await nc.jetstream().publish(f"{stack.prefix}.runs.quick", body)
        await nc.drain()

    asyncio.run(publish())
    deadline = time.monotonic() + 60
    while len(letters := stack.json("dlq", "list", "--workflow", "quick")["deadLetters"]) < 2:
        assert time.monotonic() < deadline, stack.logs()
        time.sleep(0.2)
    by_payload = {letter["payloadPreview"]: letter["seq"] for letter in letters}
    seq, other = by_payload["not json at all"], by_payload["nor this"]
    assert {letter["reason"] for letter in letters} == {"undecodable run message"}
    assert len(stack.jsonl("dlq", "list", "-w", "quick")) == 2
    table = stack.ok("dlq", "list", "-w", "quick").splitlines()
    assert table[0].split()[:3] == ["seq", "workflow", "reason"]
    assert sorted(line.split()[0] for line in table[1:]) == sorted([str(seq), str(other)])
    assert stack.json("dlq", "show", str(seq))["payloadPreview"] == "not json at all"
    shown = stack.ok("dlq", "show", str(seq))
    assert "undecodable run message" in shown and shown.rstrip().endswith("not json at all")
    assert stack.ok("dlq", "redrive", str(seq)).startswith(f"re-drove dead letter {seq} (quick")
    gone = stack.run("dlq", "redrive", str(seq))
    assert gone.returncode == 1 and gone.stderr.startswith("howlerhire dlq redrive: 404 not found")
    refused = stack.run("dlq", "purge", str(other))
    assert refused.returncode == 2
    assert refused.stderr == (
        f"howlerhire dlq purge: refusing to purge dead letter {other} without --yes\n"
    )
    assert stack.json("dlq", "show", str(other))["seq"] == other  # still there
    assert stack.json("dlq", "purge", str(other), "--yes") == {"purged": 1}
    assert stack.run("dlq", "show", str(other)).returncode == 1


def test_errors_are_one_line_and_never_show_the_token(stack: Stack, tmp_path: Path) -> None:
    """Bad token: 401 and where the token came from; gateway down: its URL; unknown
    instance: 404; bad input: exit 2 naming it. One line each on stderr, no token."""
    wrong = "wrong-token-that-must-not-leak-42"
    env = stack.env(WORKFLOWS_AUTH_TOKEN=wrong)
    bad = stack.run("list", env=env)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr == (
        f"howlerhire list: 401 unauthorized: {stack.url} refused the token from "
        "WORKFLOWS_AUTH_TOKEN (the gateway's WORKFLOWS_AUTH_TOKEN is another)\n"
    )
    token_file = tmp_path / "token"
    token_file.write_text(wrong + "\n")
    by_file = stack.run("--token-file", str(token_file), "show", "steps", "x", env=env)
    assert by_file.returncode == 1 and f"the token from --token-file {token_file}" in by_file.stderr
    # The local stack's files: var/auth-token and var/gateway-url, as `howlerhire up` writes.
    local = {
        k: v for k, v in stack.env().items() if k not in ("HOWLERHIRE_URL", "WORKFLOWS_AUTH_TOKEN")
    }
    var = stack.home / "var"
    var.mkdir(exist_ok=True)
    (var / "gateway-url").write_text(stack.url + "\n")
    (var / "auth-token").write_text(wrong)
    from_var = stack.run("list", env=local)
    assert "the token from var/auth-token" in from_var.stderr and from_var.returncode == 1
    (var / "auth-token").write_text(TOKEN + "\n")
    assert stack.run("list", "-n", "1", env=local).returncode == 0
    for name in ("auth-token", "gateway-url"):
        (var / name).unlink()
    for done in (bad, by_file, from_var):
        assert wrong not in done.stdout + done.stderr and len(done.stderr.splitlines()) == 1

    down = f"http://127.0.0.1:{free_port()}"
    unreachable = stack.run("--url", down, "status", "steps", "x")
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith(
        f"howlerhire status: gateway unreachable at {down} (URL from --url;"
    )

    missing = stack.run("show", "steps", "no-such-instance")
    assert missing.returncode == 1 and missing.stderr.startswith("howlerhire show: 404 not found")
    bad_json = stack.run("trigger", "steps", "{not json")
    assert bad_json.returncode == 2 and bad_json.stderr.startswith(
        "howlerhire trigger: params: not valid JSON (JSON is malformed"
    )
    rejected = stack.run("trigger", "no-such-workflow", "{}")
    assert rejected.returncode == 1 and "rejected" in rejected.stderr
    no_token = stack.run("list", env=local)
    assert no_token.returncode == 2 and "no token" in no_token.stderr
    bad_time = stack.run("list", "--since", "last tuesday")
    assert bad_time.returncode == 2 and len(bad_time.stderr.splitlines()) == 1
    assert bad_time.stderr.startswith("howlerhire list: Invalid value for --since: 'last tuesday'")


def test_colour_only_on_a_terminal_and_no_color(stack: Stack) -> None:
    """Piped output has no escape codes; FORCE_COLOR (a terminal) colours statuses and
    shows the progress line while a step runs; NO_COLOR takes the colours away again."""
    iid = stack.start("steps", {"userId": "c", "key": uuid.uuid4().hex, "hold": 0.1})
    plain = stack.ok("watch", "steps", iid, "--interval", "0.1")
    assert "\x1b[" not in plain
    again = stack.start("steps", {"userId": "c", "key": uuid.uuid4().hex, "hold": 3})
    coloured = stack.run(
        "watch", "steps", again, "--interval", "0.1", env=stack.env(FORCE_COLOR="1")
    )
    assert coloured.returncode == 0
    assert "\x1b[32mcomplete" in coloured.stdout  # green
    # The live line, redrawn in place (erase line, spinner) with what the run is doing,
    # while it runs for over 3 s and is polled every 0.1 s.
    doing = re.findall(r"\x1b\[2K\x1b\[32m\S\x1b\[0m ([^\x1b]+) \x1b\[33m", coloured.stdout)
    assert doing and {re.sub(r"\(.*\)|#\d", "", d).strip() for d in doing} <= {
        f"steps {again}",
        "steps queued: step  after nap",
        "steps running: step  after nap",
        "steps running: step  after think",
        "steps running: step  after fetch",
        "steps running: step",
        "steps queued: step",
        "nap sleeping",
        "wobble retrying",
    }, doing
    assert any("after nap" in d or "nap sleeping" in d for d in doing), doing
    show_no_color = stack.run("show", "steps", again, env=stack.env(FORCE_COLOR="1", NO_COLOR="1"))
    assert "\x1b[3" not in show_no_color.stdout and "complete" in show_no_color.stdout


def test_schedules_and_migrate(stack: Stack, database_url: str) -> None:
    """schedules without a scheduler says so (text) or [] (JSON); migrate runs against
    the real PostgreSQL."""
    assert stack.ok("schedules").strip() == "no schedules recorded yet (is the scheduler running?)"
    assert stack.json("schedules") == []
    migrated = stack.run("migrate", env=stack.env(DATABASE_URL=database_url))
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout.startswith("howlerhire migrate: ")
