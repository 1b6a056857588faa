"""The resume scores as SPEC §5 defines them."""

from services.resume.scoring import quality, score, skill_matches


def test_two_way_substring_matching():
    """A skill matches when either lower-cased string contains the other."""
    assert skill_matches("React", ["react.js"])
    assert skill_matches("PostgreSQL", ["postgres"])
    assert skill_matches("postgres", ["PostgreSQL"])
    assert not skill_matches("Go", ["Rust"])
    assert not skill_matches("", ["Rust"])


def test_match_score_weights_required_70_and_preferred_30():
    """2 of 4 required and 1 of 2 preferred: round(70*0.5 + 30*0.5) = 50."""
    s = score(
        ["python", "AWS", "docker"], ["Python", "Go", "AWS", "Kafka"], ["Docker", "Terraform"], ""
    )
    assert s.match_score == 50
    assert s.matched_skills == ["Python", "AWS", "Docker"]
    assert s.missing_required_skills == ["Go", "Kafka"]
    assert s.missing_preferred_skills == ["Terraform"]


def test_match_score_rounds_and_handles_empty_lists():
    """1 of 3 required, no preferred: round(70/3) = 23; empty lists add nothing."""
    assert score(["go"], ["Go", "Rust", "C"], [], "").match_score == 23
    assert score(["go"], [], [], "").match_score == 0


def test_ats_score_counts_keywords_in_the_resume():
    """3 of 4 keywords present in the text (case-insensitive) → 75."""
    text = "Built services in python on aws with Docker."
    assert score([], ["Python", "AWS", "Go"], ["docker"], text).ats_score == 75
    assert score([], [], [], text).ats_score == 0


def test_quality_score_from_length_and_sections():
    """Full length plus contact, experience and skills sections → 100; a bare line → low."""
    resume = (
        "# Ada Lovelace\nada@example.com\n\n## Experience\n"
        + "Did things. " * 150
        + "\n## Skills\nPython"
    )
    assert quality(resume) == 100
    assert quality("hello") == 0
    assert quality("## Skills\nPython") == round(40 * 16 / 1500) + 20
