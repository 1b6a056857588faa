"""The routing table (SPEC §2) agrees with the workflows the services register."""

from services.demo.workflows import greet
from services.discovery.workflows import daily_discovery, job_discovery
from services.notify.workflows import email_unsubscribe, weekly_summary
from services.parsing.workflows import profile_sync, resume_parsing
from services.resume.workflows import resume_generation
from shared.catalog import CATALOG, routes
from shared.events import PARAMS


def test_registered_workflows_match_the_catalog():
    """Each service's workflow has the catalog's id, triggers and default concurrency."""
    specs = {spec.id: spec for spec in CATALOG}
    registered = (
        (resume_generation, "resume"),
        (resume_parsing(), "parsing"),
        (profile_sync(), "parsing"),
        (greet, "demo"),
        (job_discovery(), "discovery"),
        (daily_discovery, "discovery"),
        (weekly_summary, "notify"),
        (email_unsubscribe, "notify"),
    )
    for wf, service in registered:
        spec = specs[wf.id]
        assert spec.service == service
        assert spec.events == wf.on
        assert spec.concurrency == wf.concurrency
        assert spec.params is (wf.params_type if service != "demo" else None)


def test_aliases_route_to_one_workflow():
    """Both discovery event names start job-discovery; both summary names weekly-summary."""
    table = routes()
    assert table["job-discovery"] == ("job/discovery.requested", "jobs/discovery.requested")
    assert table["weekly-summary"] == ("cron/weekly-summary", "email/weekly-summary")
    assert table["resume-generation"] == ("resume/generation.requested",)


def test_every_product_workflow_has_a_params_struct():
    """Each catalogued workflow but the demo decodes its params with a shared.events Struct."""
    assert {spec.id for spec in CATALOG if spec.service != "demo"} == set(PARAMS)
    assert all(spec.params is PARAMS[spec.id] for spec in CATALOG if spec.id in PARAMS)
