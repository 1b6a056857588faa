"""RELIABILITY S6 for the signed links we issue: unsubscribe tokens that are stale,
tampered by a byte, re-serialised, future-dated by their holder or signed with another
key are refused by the gateway in 100 % of cases, and publish nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.unit.gateway.conftest import FakeEngine
from tests.unit.gateway.test_unsubscribe import LINKS, SECRET, client_for


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signed(payload: str, key: str = SECRET) -> str:
    """A token over `payload` as the gateway would sign it with `key`."""
    raw = payload.encode()
    return f"{b64(raw)}.{b64(hmac.new(key.encode(), raw, hashlib.sha256).digest())}"


def with_payload(token: str, payload: str) -> str:
    """`token`'s signature on another payload: what an attacker can build."""
    return f"{b64(payload.encode())}.{token.split('.')[1]}"


async def test_s6_stale_tampered_reserialised_and_future_dated_tokens_are_refused() -> None:
    engine = FakeEngine()
    user = uuid.uuid4()
    now = datetime.now(UTC)
    good = LINKS.token(user, "weekly_summary", now + timedelta(days=3))
    payload = unb64(good.split(".")[0]).decode()
    version, uid, kind, expiry = payload.split(":")
    bad: dict[str, str] = {
        # Issued by us and genuine, but 6 minutes past its expiry.
        "stale": LINKS.token(user, "weekly_summary", now - timedelta(minutes=6)),
        # Its holder moves its expiry 10 minutes (or a year) later.
        "future-dated +10 min": with_payload(good, f"{version}:{uid}:{kind}:{int(expiry) + 600}"),
        "future-dated +1 year": with_payload(
            good, f"{version}:{uid}:{kind}:{int(expiry) + 365 * 86400}"
        ),
        # The same claim written differently: the signature covers the bytes.
        "re-serialised: upper-case id": with_payload(
            good, f"{version}:{uid.upper()}:{kind}:{expiry}"
        ),
        "re-serialised: leading zero": with_payload(good, f"{version}:{uid}:{kind}:0{expiry}"),
        "re-serialised: JSON": with_payload(
            good, f'{{"v":"{version}","user":"{uid}","type":"{kind}","exp":{expiry}}}'
        ),
        "another user": with_payload(good, f"{version}:{uuid.uuid4()}:{kind}:{expiry}"),
        "another email type": with_payload(good, f"{version}:{uid}:marketing:{expiry}"),
        "signed with another key": signed(payload, "a-previous-secret-0123456789"),
        "no signature": b64(payload.encode()) + ".",
    }
    # Every single byte of the payload and of the signature changed, one at a time.
    body, sig = good.split(".")
    raw_body, raw_sig = unb64(body), unb64(sig)
    for i in range(len(raw_body)):
        flipped = bytes(b ^ 0x01 if j == i else b for j, b in enumerate(raw_body))
        bad[f"payload byte {i}"] = f"{b64(flipped)}.{sig}"
    for i in range(len(raw_sig)):
        flipped = bytes(b ^ 0x01 if j == i else b for j, b in enumerate(raw_sig))
        bad[f"signature byte {i}"] = f"{body}.{b64(flipped)}"
    # The last character of each part changed in base64's unused low bits only: the same
    # bytes, another token (accepted before the gateway required the canonical spelling).
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for part, text in (("payload", body), ("signature", sig)):
        last = alphabet.index(text[-1])
        for low in range(4):
            twin = alphabet[(last & ~3) | low]
            if twin != text[-1]:
                spelled = text[:-1] + twin
                token = f"{spelled}.{sig}" if part == "payload" else f"{body}.{spelled}"
                if unb64(spelled) == unb64(text):
                    bad[f"{part}: non-canonical last character {twin}"] = token
    statuses: dict[str, int] = {}
    async with client_for(engine) as client:
        for name, token in bad.items():
            response = await client.post(
                "/unsubscribe", params={"token": token}, content="List-Unsubscribe=One-Click"
            )
            statuses[name] = response.status_code
            assert response.json().get("field") == "token", (name, response.text)
        ok = await client.post("/unsubscribe", params={"token": good})
    accepted = {n: s for n, s in statuses.items() if s != 400}
    assert not accepted, f"{len(accepted)}/{len(bad)} bad tokens not refused: {accepted}"
    assert len(bad) > 100 and sum("non-canonical" in n for n in bad) >= 3
    assert ok.status_code == 200, ok.text
    assert len(engine.events) == 1  # only the good token's event
    print(f"S6 unsubscribe: {len(bad)} bad tokens, all refused with 400")


def test_s6_progress_tokens_refuse_stale_tampered_reserialised_and_retired_keys() -> None:
    """Progress tokens (`<kid>.<claims>.<mac>`): stale, any byte of the claims or the
    MAC changed, claims re-serialised or future-dated, another instance, a non-canonical
    spelling, a retired key: refused; the previous key is honoured while it is listed
    (the rotation window) and refused once it is removed."""
    import json

    from services.gateway.progress import InvalidProgressToken, ProgressTokens

    old = ("k1", b"old-progress-secret-0123456789")
    new = ("k2", b"new-progress-secret-0123456789")
    now = 1_800_000_000.0
    signer = ProgressTokens([old])
    good, _ = signer.sign("resume-parsing", "run-1", "user-1", now)
    kid, claims, mac = good.split(".")
    raw = unb64(claims)
    bad: dict[str, str] = {
        "stale (6 min past its expiry)": signer.sign("resume-parsing", "run-1", "u", now - 1260)[0],
        "another instance": signer.sign("resume-parsing", "run-2", "user-1", now)[0],
        "unknown key id": f"k9.{claims}.{mac}",
    }
    decoded = json.loads(raw)
    later = {**decoded, "exp": decoded["exp"] + 600}
    bad["future-dated +10 min"] = f"{kid}.{b64(json.dumps(later).encode())}.{mac}"
    reordered = json.dumps(dict(reversed(list(decoded.items())))).encode()
    bad["re-serialised (key order)"] = f"{kid}.{b64(reordered)}.{mac}"
    for i in range(len(raw)):
        flipped = bytes(b ^ 0x01 if j == i else b for j, b in enumerate(raw))
        bad[f"claims byte {i}"] = f"{kid}.{b64(flipped)}.{mac}"
    raw_mac = unb64(mac)
    for i in range(len(raw_mac)):
        flipped = bytes(b ^ 0x01 if j == i else b for j, b in enumerate(raw_mac))
        bad[f"mac byte {i}"] = f"{kid}.{claims}.{b64(flipped)}"
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(mac[-1])
    for low in range(4):
        twin = alphabet[(last & ~3) | low]
        if twin != mac[-1]:
            bad[f"mac: non-canonical last character {twin}"] = f"{kid}.{claims}.{mac[:-1]}{twin}"
    rotating = ProgressTokens([new, old])  # new signs; old still accepted
    accepted = []
    for name, token in bad.items():
        try:
            rotating.verify(token, "resume-parsing", "run-1", now)
        except InvalidProgressToken:
            continue
        accepted.append(name)
    assert accepted == [], f"{len(accepted)}/{len(bad)} bad progress tokens accepted: {accepted}"
    assert len(bad) > 60
    print(f"S6 progress: {len(bad)} bad tokens, all refused")
    # Rotation: the old key's token is honoured while listed, refused once removed.
    assert rotating.verify(good, "resume-parsing", "run-1", now).i == "run-1"
    fresh, _ = rotating.sign("resume-parsing", "run-1", "user-1", now)
    assert fresh.startswith("k2.")
    retired = ProgressTokens([new])
    assert retired.verify(fresh, "resume-parsing", "run-1", now).u == "user-1"
    with pytest.raises(InvalidProgressToken, match="retired"):
        retired.verify(good, "resume-parsing", "run-1", now)
