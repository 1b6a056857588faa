"""A skills vocabulary and keyword analysis of job text: what the offline stand-in "knows".

Deterministic and dependency-free. Each canonical skill has aliases matched on word
boundaries, case-insensitively ("golang" → Go, "k8s" → Kubernetes, "postgres" → PostgreSQL).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

__all__ = ["SKILLS", "classify_segments", "find_culture", "find_skills", "find_years"]

# canonical name → aliases (the canonical name itself is always an alias)
SKILLS: dict[str, tuple[str, ...]] = {
    "Python": ("python", "python3"),
    "JavaScript": ("javascript", "js", "es6"),
    "TypeScript": ("typescript", "ts"),
    "Go": ("golang", "go lang"),
    "Rust": (),
    "Java": ("java",),
    "Kotlin": ("kotlin",),
    "Scala": ("scala",),
    "C#": ("c#", "csharp", ".net", "dotnet", "asp.net"),
    "C++": ("c++", "cpp"),
    "C": (),
    "Ruby": (),
    "Ruby on Rails": ("rails", "ruby on rails", "ror"),
    "PHP": ("php", "laravel"),
    "Swift": ("swiftui",),
    "Objective-C": ("objective-c",),
    "Elixir": ("elixir", "phoenix"),
    "Haskell": ("haskell",),
    "Clojure": ("clojure",),
    "R": (),
    "SQL": ("sql",),
    "Bash": ("bash", "shell scripting"),
    "HTML": ("html", "html5"),
    "CSS": ("css", "css3", "sass", "scss", "tailwind"),
    "React": ("react", "react.js", "reactjs"),
    "React Native": ("react native",),
    "Next.js": ("next.js", "nextjs"),
    "Vue.js": ("vue", "vue.js", "vuejs", "nuxt"),
    "Angular": ("angular",),
    "Svelte": ("svelte", "sveltekit"),
    "Node.js": ("node", "node.js", "nodejs", "express", "express.js", "nestjs"),
    "Django": ("django",),
    "Flask": ("flask",),
    "FastAPI": ("fastapi",),
    "Spring Boot": ("spring boot", "spring framework"),
    "GraphQL": ("graphql",),
    "REST APIs": ("restful", "rest api", "rest apis", "restful apis", "rest/json"),
    "gRPC": ("grpc",),
    "PostgreSQL": ("postgresql", "postgres"),
    "MySQL": ("mysql", "mariadb"),
    "MongoDB": ("mongodb", "mongo"),
    "Redis": ("redis",),
    "Elasticsearch": ("elasticsearch", "opensearch"),
    "Cassandra": ("cassandra",),
    "DynamoDB": ("dynamodb",),
    "Snowflake": ("snowflake",),
    "BigQuery": ("bigquery",),
    "Kafka": ("kafka", "apache kafka"),
    "RabbitMQ": ("rabbitmq",),
    "Spark": ("pyspark", "apache spark"),
    "Airflow": ("airflow", "apache airflow"),
    "dbt": ("dbt",),
    "AWS": ("aws", "amazon web services", "ec2", "s3", "lambda"),
    "GCP": ("gcp", "google cloud", "google cloud platform"),
    "Azure": ("azure",),
    "Docker": ("docker", "containers"),
    "Kubernetes": ("kubernetes", "k8s", "eks", "gke"),
    "Terraform": ("terraform",),
    "Ansible": ("ansible",),
    "CI/CD": ("ci/cd", "ci", "continuous integration", "github actions", "gitlab ci", "jenkins"),
    "Linux": ("linux", "unix"),
    "Git": ("git", "github", "gitlab"),
    "Microservices": ("microservices", "microservice"),
    "Distributed Systems": ("distributed systems",),
    "Machine Learning": ("machine learning", "ml"),
    "Deep Learning": ("deep learning", "neural networks"),
    "PyTorch": ("pytorch",),
    "TensorFlow": ("tensorflow",),
    "LLMs": ("llm", "llms", "large language models", "generative ai", "genai"),
    "NLP": ("nlp", "natural language processing"),
    "Data Analysis": ("data analysis", "analytics"),
    "Pandas": ("pandas",),
    "Figma": ("figma",),
    "UI/UX": ("ui/ux", "ux", "ui", "user experience"),
    "iOS": ("ios",),
    "Android": ("android",),
    "Security": ("security", "appsec", "infosec"),
    "Testing": ("testing", "unit testing", "tdd", "test automation", "pytest", "jest"),
    "Agile": ("agile", "scrum", "kanban"),
    "Product Management": ("product management", "product manager"),
    "Project Management": ("project management",),
    "Communication": ("communication", "communicator"),
    "Leadership": ("leadership", "mentoring", "mentorship"),
    "Stakeholder Management": ("stakeholder management", "stakeholders"),
    "SEO": ("seo",),
    "Salesforce": ("salesforce",),
    "Excel": ("microsoft excel", "ms excel"),
}

CULTURE = {
    "remote-first": ("remote-first", "remote first", "fully remote", "100% remote"),
    "asynchronous work": ("async", "asynchronous"),
    "collaborative": ("collaborative", "collaboration", "cross-functional"),
    "fast-paced": ("fast-paced", "fast paced", "startup"),
    "ownership": ("ownership", "autonomy", "self-starter"),
    "learning and growth": ("learning", "growth", "career development"),
    "diversity and inclusion": (
        "diverse",
        "diversity",
        "inclusive",
        "inclusion",
        "equal opportunity",
    ),
    "work-life balance": ("work-life balance", "flexible hours", "flexible schedule"),
    "customer focus": ("customer-obsessed", "customer focus", "customer-centric"),
    "mission-driven": ("mission", "impact"),
}

_PREFERRED = re.compile(
    r"\b(nice[- ]to[- ]have|preferred|bonus|a plus|is a plus|plus if|desirable|ideally)\b", re.I
)
_RESPONSIBILITY_HEAD = re.compile(
    r"^(responsibilities|what you('| wi)ll do|the role|your role|in this role|you will|duties)\b",
    re.I,
)
_REQUIREMENT_HEAD = re.compile(
    r"^(requirements|qualifications|what you('| wi)ll need|what we('re| are) looking for|"
    r"you have|about you|must have|skills)\b",
    re.I,
)


# Names that are also ordinary words: matched only as written ("Go", not "go to market").
_CASE_SENSITIVE = {"Go", "C", "R", "Excel", "Rust", "Swift", "Spark", "Ruby"}


@cache
def _pattern(alias: str, ignore_case: bool = True) -> re.Pattern[str]:
    # Word-ish boundaries that also work for "c++", "c#", ".net", "ci/cd".
    flags = re.I if ignore_case else 0
    return re.compile(r"(?<![\w+#.])" + re.escape(alias) + r"(?![\w+#])", flags)


def find_skills(text: str, vocabulary: Iterable[str] = ()) -> list[str]:
    """Canonical skills named in `text`, in order of first appearance.

    `vocabulary` adds extra skill names (e.g. the candidate's own) matched literally.
    """
    found: dict[str, int] = {}
    for canonical, aliases in SKILLS.items():
        exact = canonical in _CASE_SENSITIVE
        for alias in (canonical if exact else canonical.lower(), *aliases):
            if len(alias) == 1:
                continue  # "C" and "R" alone are too ambiguous in prose
            match = _pattern(alias, not (exact and alias == canonical)).search(text)
            if match and (canonical not in found or match.start() < found[canonical]):
                found[canonical] = match.start()
    known = {name.lower() for name in found}
    for extra in vocabulary:
        name = extra.strip()
        if len(name) < 2 or name.lower() in known:
            continue
        match = _pattern(name).search(text)
        if match:
            found[name] = match.start()
            known.add(name.lower())
    return sorted(found, key=lambda name: found[name])


def find_culture(text: str) -> list[str]:
    return [
        name for name, aliases in CULTURE.items() if any(_pattern(a).search(text) for a in aliases)
    ]


def find_years(text: str) -> int | None:
    """The smallest "N+ years" of experience the text asks for, or None."""
    years = [
        int(m.group(1))
        for m in re.finditer(r"\b(\d{1,2})\s*\+?\s*(?:-\s*\d{1,2}\s*)?(?:years|yrs)\b", text, re.I)
        if 0 < int(m.group(1)) <= 30
    ]
    return min(years) if years else None


def classify_segments(text: str) -> list[tuple[str, str]]:
    """The text cut into sentences/bullets, each tagged by the heading or cue it sits under.

    Tags: "required", "preferred", "responsibility", "other". A sentence with a cue such
    as "nice to have" or "a plus" is "preferred" wherever it stands.
    """
    out: list[tuple[str, str]] = []
    mode = "other"
    for raw in text.splitlines():
        for piece in re.split(r"(?<=[.!?;])\s+", raw):
            line = piece.strip().lstrip("-*•·").strip()
            if not line:
                continue
            head, sep, rest = line.partition(":")
            heading = head.strip() if sep else line.rstrip(":")
            is_heading = len(heading) < 50 and (sep or len(line.split()) <= 5)
            if is_heading and _RESPONSIBILITY_HEAD.match(heading):
                mode, line = "responsibility", rest.strip()
            elif is_heading and _PREFERRED.search(heading) and len(heading.split()) <= 6:
                mode, line = "preferred", rest.strip()
            elif is_heading and _REQUIREMENT_HEAD.match(heading):
                mode, line = "required", rest.strip()
            if not line:
                continue
            kind = "preferred" if _PREFERRED.search(line) else mode
            out.append((kind, line))
    return out
