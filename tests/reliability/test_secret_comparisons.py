"""RELIABILITY S1's lint rule: no secret is compared with `==` / `!=` anywhere in the
code (a timing leak); the gateway's bearer and event keys go through
`hmac.compare_digest` over SHA-256 digests."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.support.procs import REPO_ROOT

# Names that hold a secret or its digest: tokens, keys, secrets, passwords, signatures.
SECRET = re.compile(r"(token|secret|password|passwd|api_?key|signature|digest|hmac)", re.I)
# Names that only look like one: what a token is about, not the token.
NOT_SECRET = re.compile(r"(token_type|tokens?_(used|count|spent)|max_tokens|kind|name|_url$)", re.I)


# Reviewed comparisons that involve no secret, with the reason.
REVIEWED = {
    # The caller's token against its own canonical spelling: both sides are the input.
    ("shared/unsubscribe.py", "_b64(raw) != body"),
    ("shared/unsubscribe.py", "_b64(given) != signature"),
    # The configured token against itself stripped: a whitespace check at start-up.
    ("services/gateway/config.py", "token != token.strip()"),
    # A downloaded file's SHA-256 against the checksum stored with it: integrity, not a key.
    ("services/parsing/steps.py", "hashlib.sha256(data).hexdigest() != sha256"),
}


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):
        return _name(node.value)
    if isinstance(node, ast.Call):
        return _name(node.func)
    return ""


def secret_comparisons(source: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        if not any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
            continue
        sides = [node.left, *node.comparators]
        if any(isinstance(s, ast.Constant) and s.value in (None, "", 0) for s in sides):
            continue  # "is it set at all" is not a comparison of a secret
        names = [_name(s) for s in sides]
        if any(SECRET.search(n) and not NOT_SECRET.search(n) for n in names):
            found.append((node.lineno, ast.unparse(node)))
    return found


def test_the_rule_finds_a_secret_compared_with_equals() -> None:
    assert secret_comparisons("ok = given_token == self._token")
    assert secret_comparisons("if signature != expected: pass")
    assert not secret_comparisons("ok = hmac.compare_digest(given, self._token)")
    assert not secret_comparisons("if not settings.api_key == '': pass")


def test_no_secret_is_compared_with_equals_in_the_code() -> None:
    offenders = []
    for root in ("shared", "services"):
        for path in sorted((REPO_ROOT / root).rglob("*.py")):
            relative = str(path.relative_to(REPO_ROOT))
            for line, text in secret_comparisons(path.read_text()):
                if not any(f == relative and part in text for f, part in REVIEWED):
                    offenders.append(f"{relative}:{line}: {text}")
    assert offenders == [], "\n".join(offenders)


def test_gateway_tokens_are_compared_in_constant_time_over_digests() -> None:
    auth = (REPO_ROOT / "services" / "gateway" / "auth.py").read_text()
    assert "hmac.compare_digest(hashlib.sha256(" in auth
    assert Path(REPO_ROOT / "shared" / "unsubscribe.py").read_text().count("compare_digest") == 1
