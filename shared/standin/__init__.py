"""The offline stand-in: GitHub's REST API and the default job boards, served locally.

`howlerhire up` starts it (`python -m shared.standin`) when the user has not pointed
these upstreams elsewhere, so profile-sync and job discovery complete on a machine
without network. It speaks each API's wire format (GitHub's Link pagination, ETag/304
and rate-limit headers; RemoteOK's legal-notice first element; WWR's RSS; Remotive,
Arbeitnow and Himalayas' envelopes) and serves the small hand-written samples in
`data/`. `upstream_env(base_url)` is the environment that points the services at it.
"""

from __future__ import annotations

from shared.standin.server import BOARDS, GITHUB_PREFIX, make_server, upstream_env

__all__ = ["BOARDS", "GITHUB_PREFIX", "make_server", "upstream_env"]
