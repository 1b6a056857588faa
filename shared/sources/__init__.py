"""HTTP sources: GitHub (profile sync) and job boards (RemoteOK, WeWorkRemotely).

All take the process's one shared httpx client (`shared.http.create_http_client`).
"""

from shared.sources.boards import (
    BoardSettings,
    RemoteOK,
    WeWorkRemotely,
    parse_remoteok,
    parse_wwr_feed,
)
from shared.sources.github import (
    GitHub,
    GitHubNotFoundError,
    GitHubRepo,
    GitHubSettings,
    GitHubUser,
    parse_link_header,
)
from shared.sources.jobs import Job, SourceResult, html_to_text, matches_keywords

__all__ = [
    "BoardSettings",
    "GitHub",
    "GitHubNotFoundError",
    "GitHubRepo",
    "GitHubSettings",
    "GitHubUser",
    "Job",
    "RemoteOK",
    "SourceResult",
    "WeWorkRemotely",
    "html_to_text",
    "matches_keywords",
    "parse_link_header",
    "parse_remoteok",
    "parse_wwr_feed",
]
