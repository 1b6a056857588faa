"""The routing table (SPEC §2) agrees with the workflows the services register."""

from services.demo.workflows import greet
from services.notify.workflows import email_unsubscribe, weekly_summary
from services.resume.workflows import resume_generation
from shared.catalog import CATALOG, routes


def test_registered_workflows_match_the_catalog():
    """Each service's workflow has the catalog's id, triggers and default concurrency."""
    specs = {spec.id: spec for spec in CATALOG}
    registered = (
        (resume_generation(), "resume"),
        (greet, "demo"),
        (weekly_summary, "notify"),
        (email_unsubscribe, "notify"),
    )
    for wf, service in registered:
        spec = specs[wf.id]
        assert spec.service == service
        assert spec.events == wf.on
        assert spec.concurrency == wf.concurrency


def test_aliases_route_to_one_workflow():
    """Both discovery event names start job-discovery; both summary names weekly-summary."""
    table = routes()
    assert table["job-discovery"] == ("job/discovery.requested", "jobs/discovery.requested")
    assert table["weekly-summary"] == ("cron/weekly-summary", "email/weekly-summary")
    assert table["resume-generation"] == ("resume/generation.requested",)
