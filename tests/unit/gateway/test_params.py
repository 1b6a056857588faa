"""Params are decoded with the workflow's Struct (shared.events): a bad one is a 400 naming
the field, and nothing starts; events stay accepted as they are (Inngest's API)."""

from __future__ import annotations

import json

from tests.unit.gateway.conftest import A1, AUTH, J1, R1, U1

VALID = {
    "resume-generation": {"userId": U1, "jobId": J1, "applicationId": A1},
    "resume-parsing": {"userId": U1, "resumeId": R1, "fileUrl": "a/cv.pdf", "fileType": "pdf"},
    "profile-sync": {"userId": U1, "githubHandle": "octo-cat"},
    "job-discovery": {"userId": U1, "searchCriteria": {"keywords": ["rust"], "location": "EU"}},
    "daily-discovery": {},
    "weekly-summary": {},
}

GEN, PARSE = VALID["resume-generation"], VALID["resume-parsing"]
LOGIN = "GitHub login"

# (workflow, params, field, words the message must contain)
BAD = [
    ("resume-generation", {"jobId": J1, "applicationId": A1}, "params.userId", "missing"),
    ("resume-generation", {**GEN, "userId": "u1"}, "params.userId", "UUID"),
    ("resume-generation", {**GEN, "jobId": 7}, "params.jobId", "str"),
    ("resume-generation", {**GEN, "skipUsageCheck": "yes"}, "params.skipUsageCheck", "bool"),
    ("resume-parsing", {**PARSE, "fileType": "doc"}, "params.fileType", "'pdf', 'docx'"),
    ("resume-parsing", {**PARSE, "fileUrl": ""}, "params.fileUrl", "length"),
    ("resume-parsing", {**PARSE, "resumeId": U1 + "\n"}, "params.resumeId", "UUID"),
    ("profile-sync", {"userId": U1}, "params.githubHandle", "missing"),
    ("profile-sync", {"userId": U1, "githubHandle": "-octo"}, "params.githubHandle", LOGIN),
    ("profile-sync", {"userId": U1, "githubHandle": "octo-"}, "params.githubHandle", LOGIN),
    ("profile-sync", {"userId": U1, "githubHandle": "oc--to"}, "params.githubHandle", LOGIN),
    ("profile-sync", {"userId": U1, "githubHandle": "o" * 40}, "params.githubHandle", LOGIN),
    ("profile-sync", {"userId": U1, "githubHandle": "oct/o"}, "params.githubHandle", LOGIN),
    ("job-discovery", {"userId": U1, "searchCriteria": "rust"}, "params.searchCriteria", "object"),
    (
        "job-discovery",
        {"userId": U1, "searchCriteria": {"keywords": "rust"}},
        "params.searchCriteria.keywords",
        "array",
    ),
    (
        "job-discovery",
        {"userId": U1, "searchCriteria": {"keywords": [""]}},
        "params.searchCriteria.keywords[0]",
        "length",
    ),
    (
        "job-discovery",
        {"userId": U1, "searchCriteria": {"remote": "yes"}},
        "params.searchCriteria.remote",
        "bool",
    ),
]


async def test_valid_params_of_every_workflow_start_it_unchanged(client, engine):
    """Each workflow's valid params start one instance, stored exactly as sent."""
    for workflow, params in VALID.items():
        body = json.dumps({"workflow": workflow, "params": params}).encode()
        response = await client.post("/trigger", content=body, headers=AUTH)
        assert response.status_code == 200, (workflow, response.text)
    assert {s.workflow: s.params for s in engine.instances.values()} == VALID


async def test_bad_params_are_a_400_naming_the_field_on_both_routes(client, engine):
    """/trigger and POST /workflows/{wf}/instances refuse bad params with the field's path."""
    for workflow, params, field, words in BAD:
        trigger = json.dumps({"workflow": workflow, "params": params}).encode()
        create = json.dumps({"params": params}).encode()
        for path, body in (("/trigger", trigger), (f"/workflows/{workflow}/instances", create)):
            response = await client.post(path, content=body, headers=AUTH)
            assert response.status_code == 400, (path, params, response.text)
            answer = response.json()
            assert answer["field"] == field, (path, params, answer)
            assert words in answer["error"], (path, params, answer)
            assert "regex" not in answer["error"]
    assert engine.calls == []
    assert engine.instances == {}


async def test_no_params_is_a_400_for_a_workflow_that_needs_them(client, engine):
    """A missing `params` is `{}`: fine for the crons, a named 400 for the others."""
    refused = await client.post("/trigger", content=b'{"workflow":"profile-sync"}', headers=AUTH)
    created = await client.post("/workflows/job-discovery/instances", content=b"", headers=AUTH)
    cron = await client.post("/trigger", content=b'{"workflow":"weekly-summary"}', headers=AUTH)
    assert (refused.status_code, refused.json()["field"]) == (400, "params.userId")
    assert (created.status_code, created.json()["field"]) == (400, "params.userId")
    assert cron.status_code == 200
    assert [s.workflow for s in engine.instances.values()] == ["weekly-summary"]


async def test_events_with_any_data_are_still_accepted(client, engine):
    """/events and /e/{key} store events whose data would not decode (the worker decides)."""
    body = b'{"name":"profile/sync.requested","data":{"userId":"u1"}}'
    for path in ("/events", "/e/any-key"):
        response = await client.post(path, content=body, headers=AUTH)
        assert response.status_code == 200, response.text
    assert [e.data for e in engine.events] == [{"userId": "u1"}, {"userId": "u1"}]
