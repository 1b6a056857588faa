"""HTTP sources: GitHub (profile sync) and the job boards discovery reads.

Each job board is one module registered with `@register`; importing it here is what
makes it available to `DISCOVERY_SOURCES`. All fetch through a `PoliteFetcher` over the
process's one shared httpx client (`shared.http.create_http_client`).
"""

from shared.sources import (  # noqa: F401 - importing registers each board
    arbeitnow,
    ashby,
    greenhouse,
    himalayas,
    lever,
    remoteok,
    remotive,
    weworkremotely,
)
from shared.sources.fetch import (
    BoardMalformedError,
    BoardNotFoundError,
    BoardUnavailableError,
    PoliteFetcher,
)
from shared.sources.github import (
    GitHub,
    GitHubNotFoundError,
    GitHubRepo,
    GitHubSettings,
    GitHubUser,
    parse_link_header,
)
from shared.sources.postings import (
    Posting,
    Salary,
    SourceFailed,
    SourceFound,
    SourceOutcome,
)
from shared.sources.registry import (
    REGISTRY,
    Board,
    BoardSettings,
    Listing,
    configured_boards,
)

__all__ = [
    "REGISTRY",
    "Board",
    "BoardMalformedError",
    "BoardNotFoundError",
    "BoardSettings",
    "BoardUnavailableError",
    "GitHub",
    "GitHubNotFoundError",
    "GitHubRepo",
    "GitHubSettings",
    "GitHubUser",
    "Listing",
    "PoliteFetcher",
    "Posting",
    "Salary",
    "SourceFailed",
    "SourceFound",
    "SourceOutcome",
    "configured_boards",
    "parse_link_header",
]
