"""Throughput benchmark for sessions_app.redaction.

Usage: python bench/redaction_bench.py [--mb 10] [--repeat 3] [--seed 7] [--baseline FILE]

Builds a deterministic ~10 MB corpus shaped like agent transcripts (prose,
source code, shell output, JSON tool calls, logs full of SHAs and UUIDs,
diffs, YAML, the odd base64 screenshot) with a few fake secrets sprinkled in,
then reports the redaction throughput next to a floor: one trivial compiled
regex scan over the same events, which is as fast as any ``re``-based scanner
could hope to go. Events are redacted one by one, as on the ingestion path, and
the whole corpus is also redacted as a single string.

``--baseline FILE`` also loads another version of the module (for example
``git show HEAD~3:sessions_app/redaction.py > /tmp/redaction_old.py``) and times
both per event in alternating rounds within this one process, which compares
them fairly on a machine whose load changes from one run to the next.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.util
import random
import re
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sessions_app.redaction import redact_text

WORDS = [
    "the",
    "a",
    "to",
    "of",
    "and",
    "in",
    "is",
    "that",
    "for",
    "it",
    "with",
    "as",
    "on",
    "this",
    "be",
    "run",
    "test",
    "file",
    "change",
    "function",
    "value",
    "error",
    "output",
    "module",
    "import",
    "update",
    "fix",
    "check",
    "build",
    "request",
    "response",
    "session",
    "agent",
    "event",
    "tool",
    "call",
    "result",
    "model",
    "config",
    "database",
    "query",
    "user",
    "should",
    "would",
    "could",
    "now",
    "then",
    "next",
    "first",
    "let",
    "me",
    "look",
    "at",
    "see",
    "which",
    "where",
    "because",
    "failing",
    "passing",
    "migration",
    "schema",
    "field",
    "index",
    "cache",
    "worker",
    "queue",
    "timeout",
    "retry",
    "handler",
    "view",
    "template",
    "render",
    "token",
    "tokens",
    "key",
    "keys",
    "secret",
    "password",
    "review",
    "commit",
    "branch",
    "merge",
    "diff",
    "patch",
    "line",
    "lines",
    "code",
    "path",
]

PY_SNIPPETS = (
    "def {name}(self, request, *args, **kwargs):\n"
    "    token = tokenizer.next()\n"
    "    max_tokens = {n}\n"
    "    key = cache_key(request.user.pk)\n"
    "    value = self.cache.get(key)\n"
    "    if value is None:\n"
    "        value = compute_{name}(request, temperature=0.7)\n"
    "    return JsonResponse({{'ok': True, 'count': {n}}})\n",
    "class {Name}Serializer(serializers.ModelSerializer):\n"
    "    api_key = serializers.CharField(write_only=True)\n"
    "    password = forms.CharField(widget=forms.PasswordInput)\n"
    "    class Meta:\n"
    "        model = {Name}\n"
    "        fields = ['id', 'name', 'created_at']\n",
    "for i, line in enumerate(lines):\n"
    "    if line.startswith('#'):\n"
    "        continue\n"
    "    key, _, value = line.partition('=')\n"
    "    env[key.strip()] = value.strip()\n",
)
JS_SNIPPETS = (
    "export async function {name}(req, res) {{\n"
    "  const apiKey = process.env.API_KEY;\n"
    "  const token = await getToken(req.headers);\n"
    "  const {{ data }} = await axios.get(`/api/{name}/${{id}}`, {{ timeout: {n} }});\n"
    "  return res.status(200).json({{ ok: true, items: data.items }});\n"
    "}}\n",
    "const config = {{ maxTokens: {n}, temperature: 0.7, model: 'gpt-4o', stream: true }};\n",
)
YAML_SNIPPETS = (
    "services:\n  web:\n    image: app:{n}\n    environment:\n"
    "      DATABASE_URL: postgres://app:${{DB_PASSWORD}}@db:5432/app\n"
    "      SECRET_KEY: ${{SECRET_KEY}}\n      DEBUG: 'false'\n    ports:\n      - '8000:8000'\n",
    "llm:\n  max_tokens: {n}\n  temperature: 0.2\n  api_key: ${{OPENAI_API_KEY}}\n",
)


def _sha(rng: random.Random) -> str:
    return hashlib.sha1(rng.randbytes(8)).hexdigest()


def _prose(rng: random.Random, n: int) -> str:
    out = []
    for _ in range(n):
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 18)))
        out.append(sentence.capitalize() + rng.choice([".", ".", ".", ":", "?"]))
    return " ".join(out)


def _event(rng: random.Random) -> tuple[str, str]:
    kind = rng.random()
    name = rng.choice(["load_session", "render_view", "parse_events", "sync_repo", "retry"])
    fmt = {"name": name, "Name": name.title().replace("_", ""), "n": rng.randint(1, 9000)}
    if kind < 0.25:
        return "prose", _prose(rng, rng.randint(2, 12))
    if kind < 0.40:
        return "python", rng.choice(PY_SNIPPETS).format(**fmt) * rng.randint(1, 4)
    if kind < 0.48:
        return "javascript", rng.choice(JS_SNIPPETS).format(**fmt) * rng.randint(1, 3)
    if kind < 0.53:
        return "yaml", rng.choice(YAML_SNIPPETS).format(**fmt)
    if kind < 0.63:
        return "git log", "\n".join(
            f"commit {_sha(rng)}\nAuthor: Dev <dev@example.com>\n\n    {_prose(rng, 1)}\n"
            f" {rng.randint(1, 9)} files changed, {rng.randint(1, 300)} insertions(+)"
            for _ in range(rng.randint(1, 6))
        )
    if kind < 0.73:
        return "logs", "\n".join(
            f"2025-06-0{rng.randint(1, 9)}T12:{rng.randint(10, 59)}:01Z INFO "
            f"request_id={uuid.UUID(bytes=rng.randbytes(16))} session={_sha(rng)[:7]} "
            f"digest=sha256:{hashlib.sha256(rng.randbytes(8)).hexdigest()} "
            f"path=/srv/app/sessions_app/views.py:{rng.randint(1, 900)} "
            f"status={rng.choice([200, 201, 404, 500])} duration_ms={rng.randint(1, 2000)}"
            for _ in range(rng.randint(2, 10))
        )
    if kind < 0.83:
        return "json tool call", (
            '{"type": "tool_use", "name": "bash", "input": {"command": "pytest -q tests/'
            f'{name}.py", "timeout": {fmt["n"]}}}, "id": "toolu_{_sha(rng)[:24]}", '
            f'"usage": {{"input_tokens": {rng.randint(1, 9999)}, "output_tokens": '
            f'{rng.randint(1, 999)}, "max_tokens": 4000}}, "output": "'
            + _prose(rng, rng.randint(2, 6)).replace('"', "'")
            + '"}'
        )
    if kind < 0.90:
        return "diff", "\n".join(
            f"diff --git a/src/{name}.py b/src/{name}.py\nindex {_sha(rng)[:7]}..{_sha(rng)[:7]} 100644\n"
            f"@@ -{rng.randint(1, 99)},7 +{rng.randint(1, 99)},8 @@\n-    return {name}(x)\n"
            f"+    return {name}(x, retries={rng.randint(1, 5)})"
            for _ in range(rng.randint(1, 5))
        )
    if kind < 0.99:
        return "ls output", "\n".join(
            f"-rw-r--r--  1 dev staff {rng.randint(100, 99999):>6} Jun  3 12:01 "
            f"/home/dev/project/{name}_{i}.py"
            for i in range(rng.randint(5, 20))
        )
    png = base64.b64encode(rng.randbytes(rng.randint(2000, 12000))).decode()
    return "base64 image", f'{{"type": "image", "source": "data:image/png;base64,{png}"}}'


def _fake_secrets() -> list[str]:
    # Shapes are real, values are obviously fake; built by concatenation so
    # this file does not trip secret scanners.
    return [
        "export GITHUB_TOKEN=" + "ghp_" + "a1B2" * 9,
        "AWS_ACCESS_KEY_ID=" + "AKIA" + "FAKE0000EXAMPLE1",
        "curl -H 'Authorization: Bearer " + "fake0tok3n0" * 3 + "' https://api.example.com",
        '{"api_key": "' + "fake" + "123abc" * 4 + '"}',
        "DATABASE_URL=postgres://app:" + "n0tR34l" + "Pw@db:5432/app",
        "OPENAI_API_KEY=" + "sk-proj-" + "Fa1ke" * 8,
    ]


def build_corpus(target_mb: float, seed: int, mix: dict[str, int] | None = None) -> list[str]:
    """Events totalling ~target_mb; ``mix`` (if given) collects bytes per kind."""
    rng = random.Random(seed)
    secrets = _fake_secrets()
    events: list[str] = []
    size = 0
    while size < target_mb * 1_000_000:
        kind, text = _event(rng)
        if rng.random() < 0.01:
            text = f"{text}\n{rng.choice(secrets)}\n"
        events.append(text)
        size += len(text)
        if mix is not None:
            mix[kind] = mix.get(kind, 0) + len(text)
    return events


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--baseline", type=Path, help="another redaction.py to compare with")
    args = parser.parse_args()

    mix: dict[str, int] = {}
    events = build_corpus(args.mb, args.seed, mix)
    whole = "\n".join(events)
    mb = len(whole.encode()) / 1_000_000
    floor_search = re.compile(r"\x00").search

    def redact_events() -> None:
        for e in events:
            redact_text(e)

    def floor_events() -> None:
        for e in events:
            floor_search(e)

    hits: dict[str, int] = {}
    for e in events:
        for rule, n in redact_text(e).counts.items():
            hits[rule] = hits.get(rule, 0) + n

    t_red = best_of(args.repeat, redact_events)
    t_floor = best_of(args.repeat, floor_events)
    t_red_whole = best_of(args.repeat, lambda: redact_text(whole))
    t_floor_whole = best_of(args.repeat, lambda: floor_search(whole))

    total = sum(mix.values())
    shares = ", ".join(
        f"{k} {100 * v / total:.0f}%" for k, v in sorted(mix.items(), key=lambda kv: -kv[1])
    )
    print(f"corpus: {mb:.1f} MB, {len(events)} events, best of {args.repeat}")
    print(f"mix: {shares}")
    print(f"rules fired: {dict(sorted(hits.items()))}")
    for label, t_r, t_f in (
        ("per event  ", t_red, t_floor),
        ("whole text ", t_red_whole, t_floor_whole),
    ):
        print(
            f"{label}: redact_text {mb / t_r:8.1f} MB/s | floor re.search(r'\\x00') "
            f"{mb / t_f:8.1f} MB/s | floor/redact ratio {t_r / t_f:6.1f}x"
        )

    if args.baseline:
        compare(args.baseline, events, mb, max(args.repeat, 5))


def compare(baseline: Path, events: list[str], mb: float, rounds: int) -> None:
    spec = importlib.util.spec_from_file_location("redaction_baseline", baseline)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)

    def per_event(redact: Callable[[str], object]) -> float:
        t0 = time.perf_counter()
        for e in events:
            redact(e)
        return time.perf_counter() - t0

    old_times, new_times = [], []
    for _ in range(rounds):
        old_times.append(per_event(module.redact_text))
        new_times.append(per_event(redact_text))
    ratios = [o / n for o, n in zip(old_times, new_times, strict=True)]
    print(
        f"alternating per event, {rounds} rounds: baseline {mb / min(old_times):.1f} MB/s | "
        f"this {mb / min(new_times):.1f} MB/s | this/baseline best {min(old_times) / min(new_times):.2f}, "
        f"median of rounds {statistics.median(ratios):.2f}"
    )


if __name__ == "__main__":
    main()
