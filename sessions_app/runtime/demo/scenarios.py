"""What the demo runtime says: flow and task names, chat exchanges, tool calls, file edits.

Plain data and small generators of text; the engine decides when to say it. Credentials that
redaction must catch are generated at random here (never real, never literal in the source).
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

FLOWS: list[tuple[str, list[str]]] = [
    (
        "Nightly data sync",
        [
            "Fetch sources",
            "Validate schema",
            "Transform records",
            "Load warehouse",
            "Publish report",
        ],
    ),
    (
        "Release checklist",
        [
            "Freeze main",
            "Run full test suite",
            "Build artifacts",
            "Deploy to staging",
            "Smoke test staging",
            "Deploy to production",
            "Announce release",
        ],
    ),
    (
        "Invoice reconciliation",
        ["Pull invoices", "Match payments", "Flag mismatches", "Draft adjustments"],
    ),
    (
        "Dependency upgrade",
        ["Scan lockfile", "Bump minor versions", "Run tests", "Open pull request"],
    ),
    ("Incident triage", ["Collect alerts", "Correlate logs", "Summarise impact"]),
    (
        "Customer onboarding",
        [
            "Create workspace",
            "Import users",
            "Configure SSO",
            "Send welcome email",
            "Schedule kickoff",
        ],
    ),
    (
        "Weekly metrics digest",
        ["Query dashboards", "Compute deltas", "Write summary", "Post to Slack"],
    ),
    (
        "Security patch rollout",
        [
            "Inventory hosts",
            "Stage patch",
            "Canary hosts",
            "Roll out fleet-wide",
            "Verify versions",
            "Close ticket",
        ],
    ),
]

CHECKPOINTS = [
    "Approve deploy to production",
    "Confirm deletion of 1,204 stale records",
    "Review generated database migration",
    "Sign off on refunds over $500",
    "Approve outbound customer email",
]

FAILURES = [
    ("upstream_timeout", "Timed out after 30s waiting for api.partner.example"),
    ("schema_mismatch", "Column 'amount' changed type from numeric to text in source 'billing'"),
    ("rate_limited", "GitHub API answered 429; retries exhausted"),
    ("tests_failed", "3 of 212 tests failed in payments/tests/test_refunds.py"),
    ("oom_killed", "Worker was killed: out of memory (limit 2 GiB)"),
]

TASKS = [
    "Backfill embeddings for 40k support articles",
    "Upgrade Django to 5.2 in billing-service",
    "Generate release notes for v2.14",
    "Triage 120 stale GitHub issues",
    "Migrate CI from Jenkins to GitHub Actions",
    "Profile the slow checkout endpoint",
    "Translate onboarding emails to German",
    "Rewrite flaky integration tests",
]

TASK_LINES = [
    "Read the existing configuration and listed what has to change.",
    "Updated the first batch; tests still pass.",
    "Found two call sites that use the deprecated API; fixing them.",
    "Ran the linter and fixed the warnings it raised.",
    "Halfway through; the remaining items look similar.",
    "Benchmarked before and after: p95 went from 840 ms to 310 ms.",
    "Wrote a summary of the changes for the pull request.",
    "Checked the edge cases around empty input.",
]


@dataclass(frozen=True)
class Chat:
    title: str
    exchanges: list[tuple[str, str]]
    spawns: str = ""  # a background task this chat may start


CHATS = [
    Chat(
        "Why is the staging deploy red?",
        [
            (
                "The staging deploy has been failing since this morning, can you look?",
                "The deploy fails in the migrate step: migration 0042 adds a NOT NULL column without a default.",
            ),
            (
                "Can you propose a fix?",
                "Yes: add the column as nullable, backfill it, then add the constraint in a second migration.",
            ),
            ("Sounds good, prepare it.", "Done. I edited the migration; please review the diff."),
        ],
        spawns="Backfill the new column on staging",
    ),
    Chat(
        "Summarise yesterday's incidents",
        [
            (
                "What happened in production yesterday?",
                "Two incidents: a 12-minute checkout outage (expired TLS cert on the payment proxy) and elevated latency on search.",
            ),
            (
                "Who fixed the certificate?",
                "The on-call SRE rotated it at 14:32; the renewal job had been disabled in March.",
            ),
        ],
    ),
    Chat(
        "Help me write a SQL query",
        [
            (
                "I need monthly active users per plan for the last 6 months.",
                "Here is a query grouping distinct user ids by plan and month over the events table.",
            ),
            (
                "It is slow. Any index that would help?",
                "An index on events (created_at, user_id) lets the planner skip the sequential scan.",
            ),
            ("Thanks!", "You're welcome. Shall I add the index in a migration?"),
        ],
        spawns="Add an index on events(created_at, user_id)",
    ),
    Chat(
        "Refactor the notification service",
        [
            (
                "The notification service is a 2,000-line file. Where would you start?",
                "Split it by channel: email, SMS and push each get a module behind one interface.",
            ),
            (
                "Let's do the email part first.",
                "I moved the email sender into notifications/email.py and kept the old import working.",
            ),
        ],
        spawns="Extract SMS and push senders",
    ),
    Chat(
        "Check the API rate limits",
        [
            (
                "Are we close to the partner API's rate limit?",
                "Peak usage yesterday was 71% of the 1,000 requests/minute quota, at 09:05.",
            ),
        ],
    ),
]

THOUGHTS = [
    "Let me check the current state before changing anything.",
    "The error message points at configuration, not code.",
    "I should verify this against the test suite first.",
    "Two approaches: patch in place or rebuild. Patching is less risky.",
    "This needs the environment variables the job runs with.",
]

REPLIES = [
    "Understood. Adjusting the plan: {text}",
    "Good point. I'll take that into account from the next step on.",
    "Noted. Continuing with that in mind.",
]

FILES = [
    (
        "billing/migrations/0042_invoice_currency.py",
        'migrations.AddField("invoice", "currency", models.CharField(max_length=3))\n',
        'migrations.AddField("invoice", "currency", models.CharField(max_length=3, null=True))\n',
    ),
    (
        "notifications/email.py",
        None,
        "def send_email(to: str, subject: str, body: str) -> None:\n    backend.send(to, subject, body)\n",
    ),
    (
        "search/settings.py",
        "SEARCH_TIMEOUT = 30\n",
        "SEARCH_TIMEOUT = 5  # fail fast; the UI retries\n",
    ),
    (
        ".github/workflows/ci.yml",
        "runs-on: ubuntu-20.04\n",
        "runs-on: ubuntu-24.04\n",
    ),
]

ORIGINS = ["web", "vscode", "scheduled", "trigger", "api"]
REPOS = ["acme/payments", "acme/search", "acme/platform", "acme/website"]
BRANCHES = ["main", "feat/refunds-v2", "fix/flaky-tests", "chore/deps"]


def _random(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def fake_credentials(rng: random.Random) -> str:
    """A line of tool output with a credential in it, in one of the shapes redaction knows."""
    alnum = string.ascii_letters + string.digits
    shapes = [
        f"GITHUB_TOKEN=ghp_{_random(rng, alnum, 36)}",
        f"aws_access_key_id = AKIA{_random(rng, string.ascii_uppercase + string.digits, 16)}",
        f"DB_PASSWORD={_random(rng, alnum, 20)}",
        f'{{"api_key": "{_random(rng, alnum, 32)}"}}',
    ]
    return rng.choice(shapes)


def tool_activity(rng: random.Random, *, with_secret: bool) -> tuple[str, dict[str, object], str]:
    """(tool name, arguments, output) for one tool call."""
    choice = rng.randrange(4)
    if choice == 0 or with_secret:
        output = "PATH=/usr/local/bin:/usr/bin\nLANG=C.UTF-8\n"
        if with_secret:
            output += fake_credentials(rng) + "\n"
        return "run_shell", {"command": "env | sort"}, output
    if choice == 1:
        return (
            "run_shell",
            {"command": "pytest -q"},
            f"{rng.randint(80, 400)} passed, {rng.randint(0, 3)} skipped in {rng.uniform(3, 40):.1f}s",
        )
    if choice == 2:
        path = rng.choice(FILES)[0]
        return "read_file", {"path": path}, f"# {path}\n(…{rng.randint(40, 400)} lines…)"
    return (
        "search_code",
        {"query": rng.choice(["TODO", "deprecated", "retry", "timeout"])},
        f"{rng.randint(1, 30)} matches in {rng.randint(1, 9)} files",
    )


# What the demo's model costs, per million tokens (input, output).
PRICE_IN = 3.0
PRICE_OUT = 15.0
