"""The cross-service contract: frozen camelCase Structs that refuse what cannot succeed."""

from __future__ import annotations

import inspect

import msgspec
import pytest

from shared.events import (
    PARAMS,
    JobDiscoveryParams,
    Params,
    ProfileSyncParams,
    ResumeGenerationParams,
    SearchCriteria,
)

USER = "6f1c2a9e-3b4d-4c5e-8f70-1a2b3c4d5e6f"


def test_every_params_struct_is_frozen_keyword_only_and_camel_case():
    """Each Struct in PARAMS is frozen, keyword-only and has camelCase wire names."""
    for workflow, struct in PARAMS.items():
        assert issubclass(struct, Params), workflow
        assert struct.__struct_config__.frozen, workflow
        kinds = {p.kind for p in inspect.signature(struct).parameters.values()}
        assert kinds <= {inspect.Parameter.KEYWORD_ONLY}, workflow
        for field in msgspec.structs.fields(struct):
            assert "_" not in field.encode_name, (workflow, field.encode_name)


@pytest.mark.parametrize(
    ("login", "ok"),
    [
        ("octocat", True),
        ("a", True),
        ("A-1-b", True),
        ("x" * 39, True),
        ("x" * 40, False),
        ("", False),
        ("-octo", False),
        ("octo-", False),
        ("oc--to", False),
        ("oc_to", False),
        ("octo cat", False),
        ("octocat\n", False),
        ("ócto", False),
    ],
)
def test_github_handle_follows_githubs_login_rule(login, ok):
    """1-39 alphanumerics or single hyphens, not starting or ending with a hyphen."""
    raw = {"userId": USER, "githubHandle": login}
    if ok:
        assert msgspec.convert(raw, ProfileSyncParams).github_handle == login
    else:
        with pytest.raises(msgspec.ValidationError, match="githubHandle"):
            msgspec.convert(raw, ProfileSyncParams)


@pytest.mark.parametrize(
    "user_id",
    [USER, USER.upper()],
)
def test_ids_are_uuids_in_text_form(user_id):
    """Canonical UUID text, any case, is accepted and kept as the same string."""
    raw = {"userId": user_id, "jobId": USER, "applicationId": USER}
    assert msgspec.convert(raw, ResumeGenerationParams).user_id == user_id


@pytest.mark.parametrize("user_id", ["u1", "", USER[:-1], USER + "0", "{" + USER + "}", 7])
def test_other_ids_are_refused(user_id):
    """Anything the database would refuse as a UUID is refused at decoding."""
    with pytest.raises(msgspec.ValidationError, match="userId"):
        msgspec.convert({"userId": user_id}, JobDiscoveryParams)


def test_wire_shape_of_optional_fields():
    """Defaults of job-discovery are left out on the wire; resume's skipUsageCheck is not."""
    criteria = SearchCriteria(keywords=["python"], remote=True)
    assert (
        msgspec.json.encode(JobDiscoveryParams(user_id=USER)) == f'{{"userId":"{USER}"}}'.encode()
    )
    assert msgspec.to_builtins(JobDiscoveryParams(user_id=USER, search_criteria=criteria)) == {
        "userId": USER,
        "searchCriteria": {"keywords": ["python"], "remote": True},
    }
    generation = ResumeGenerationParams(user_id=USER, job_id=USER, application_id=USER)
    assert msgspec.to_builtins(generation)["skipUsageCheck"] is False


def test_unknown_keys_are_ignored():
    """A newer web app may send more fields; they are ignored, not refused."""
    raw = {"userId": USER, "searchCriteria": {"keywords": ["go"], "salary": 1}, "extra": 1}
    params = msgspec.convert(raw, JobDiscoveryParams)
    assert params.search_criteria == SearchCriteria(keywords=["go"])
