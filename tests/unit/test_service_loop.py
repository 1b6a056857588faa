"""EVENT_LOOP picks the loop a worker service runs on (uvloop by default)."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from shared.config import EngineSettings, load_settings
from shared.errors import ConfigError
from shared.service import loop_factory


def test_uvloop_is_the_default_and_asyncio_can_be_chosen() -> None:
    assert load_settings(EngineSettings, {}).event_loop == "uvloop"
    assert load_settings(EngineSettings, {"EVENT_LOOP": "asyncio"}).event_loop == "asyncio"
    assert loop_factory("asyncio") is None


def test_the_uvloop_factory_makes_a_uvloop_loop_that_runs_coroutines() -> None:
    factory = loop_factory("uvloop")
    assert factory is not None
    with asyncio.Runner(loop_factory=factory) as runner:

        async def which() -> type[asyncio.AbstractEventLoop]:
            await asyncio.sleep(0)
            return type(asyncio.get_running_loop())

        assert issubclass(runner.run(which()), uvloop.Loop)


def test_an_unknown_event_loop_is_a_config_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="EVENT_LOOP"):
        load_settings(EngineSettings, {"EVENT_LOOP": "trio"})
