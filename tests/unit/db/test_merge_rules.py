"""The profile-merge rules the Supabase backend applies (and the SQL of PostgreSQL mirrors)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.db.merge import add_once, clean_skills, is_empty, merge_skills, skill_key

skills = st.lists(st.text(alphabet="abcABC +#. \t", max_size=6), max_size=8)


async def test_empty_means_null_blank_or_no_items() -> None:
    """NULL, whitespace-only text and empty JSON containers are empty; anything else is not."""
    assert all(is_empty(v) for v in (None, "", "  \t\n", [], {}))
    assert not any(is_empty(v) for v in ("a", " a ", ["x"], {"k": 1}, 0, False))


async def test_skills_merge_case_insensitively_keeping_what_is_there() -> None:
    """Held skills keep their spelling and order; new ones are trimmed and added once."""
    merged = merge_skills(["Python", "go"], ["Go", " Rust ", "rust", "PYTHON", "", "Zig"])
    assert merged == ["Python", "go", "Rust", "Zig"]
    assert clean_skills(["A", "a", " b", "B "]) == ["A", "b"]


async def test_urls_are_added_once() -> None:
    """add_once appends a new URL and ignores one already present or blank."""
    assert add_once(["https://a"], "https://b") == ["https://a", "https://b"]
    assert add_once(["https://a"], "https://a") == ["https://a"]
    assert add_once([], None) == []
    assert add_once([], "  ") == []


@given(skills, skills)
def test_merging_is_idempotent_and_loses_nothing(held: list[str], new: list[str]) -> None:
    """Merging twice equals merging once; held skills stay first; every new key is present."""
    once = merge_skills(held, new)
    assert merge_skills(once, new) == once
    assert once[: len(held)] == held
    keys = {skill_key(s) for s in once}
    assert all(skill_key(s) in keys for s in new if skill_key(s))
    added = once[len(held) :]
    assert len({skill_key(s) for s in added}) == len(added)
