"""Local stand-ins for the third-party HTTP APIs, speaking their real wire formats.

In-process: `with RunningFake(AnthropicFake(fixtures_dir)) as fake: fake.url, fake.control`.
Another process: `python -m tests.support.fakes anthropic --fixtures ../shared/fixtures`
prints `READY <url>`; drive it with `FakeControl(url)`.
"""

from tests.support.fakes.anthropic import AnthropicFake, example_from_schema
from tests.support.fakes.base import FakeApp, FakeControl, Reply, Request, RunningFake
from tests.support.fakes.boards import (
    ArbeitnowFake,
    AshbyFake,
    GreenhouseFake,
    HimalayasFake,
    LeverFake,
    RemoteOKFake,
    RemotiveFake,
    WeWorkRemotelyFake,
)
from tests.support.fakes.canary import Canary
from tests.support.fakes.github import GitHubFake
from tests.support.fakes.resend import ResendFake
from tests.support.fakes.storage import SERVICE_KEY, StorageFake, put_object

FAKES: dict[str, type[FakeApp]] = {
    "anthropic": AnthropicFake,
    "resend": ResendFake,
    "github": GitHubFake,
    "remoteok": RemoteOKFake,
    "weworkremotely": WeWorkRemotelyFake,
    "remotive": RemotiveFake,
    "arbeitnow": ArbeitnowFake,
    "himalayas": HimalayasFake,
    "greenhouse": GreenhouseFake,
    "lever": LeverFake,
    "ashby": AshbyFake,
    "storage": StorageFake,
}

__all__ = [
    "FAKES",
    "SERVICE_KEY",
    "AnthropicFake",
    "ArbeitnowFake",
    "AshbyFake",
    "Canary",
    "FakeApp",
    "FakeControl",
    "GitHubFake",
    "GreenhouseFake",
    "HimalayasFake",
    "LeverFake",
    "RemoteOKFake",
    "RemotiveFake",
    "Reply",
    "Request",
    "ResendFake",
    "RunningFake",
    "StorageFake",
    "WeWorkRemotelyFake",
    "example_from_schema",
    "put_object",
]
