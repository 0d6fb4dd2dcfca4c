"""Coverage of sessions_app.redaction over generated corpora.

Positives: every family of credential the open scanners (gitleaks, trufflehog,
detect-secrets) share and an agent transcript plausibly carries, at least ten
values each, in at least three contexts each. Negatives: at least 200 benign
strings that must come back byte-identical.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

from sessions_app.redaction import RULE_NAMES, redact_payload, redact_text
from tests.sessions_app.redaction_corpus import (
    FAMILIES,
    PER_FAMILY,
    Sample,
    negative_samples,
    positive_samples,
)

POSITIVES = positive_samples()
NEGATIVES = negative_samples()
MARKER = re.compile(r"\[REDACTED:([a-z0-9_]+)\]")


def _check(sample: Sample, redacted: str) -> None:
    assert sample.secret not in redacted, f"{sample.family}: {redacted!r}"
    rules = set(MARKER.findall(redacted))
    assert rules, f"{sample.family}: nothing redacted in {redacted!r}"
    assert rules <= sample.rules, f"{sample.family}: {rules} in {redacted!r}"


def test_the_corpus_has_ten_values_in_three_contexts_for_every_family() -> None:
    values = Counter(s.family for s in {(s.family, s.secret): s for s in POSITIVES}.values())
    contexts = {f.name: len({s.context for s in POSITIVES if s.family == f.name}) for f in FAMILIES}

    assert {f: n for f, n in values.items() if n < PER_FAMILY} == {}
    assert {f: n for f, n in contexts.items() if n < 3} == {}
    assert len(NEGATIVES) >= 200


def test_every_rule_the_corpus_expects_exists() -> None:
    expected = {rule for family in FAMILIES for rule in family.rules}

    assert expected <= set(RULE_NAMES)


def test_every_positive_sample_is_redacted_in_text() -> None:
    failures = []
    for sample in POSITIVES:
        try:
            _check(sample, redact_text(sample.text).text)
        except AssertionError as exc:
            failures.append(str(exc))

    assert failures == [], f"{len(failures)} of {len(POSITIVES)} leaked:\n" + "\n".join(
        failures[:20]
    )


def test_every_positive_sample_is_redacted_inside_a_payload() -> None:
    failures = []
    for sample in POSITIVES:
        payload = {"type": "tool_result", "output": {"stdout": sample.text, "exit_code": 0}}
        redacted, counts = redact_payload(payload)
        try:
            _check(sample, redacted["output"]["stdout"])
            assert sum(counts.values()) >= 1
        except AssertionError as exc:
            failures.append(str(exc))

    assert failures == [], f"{len(failures)} of {len(POSITIVES)} leaked:\n" + "\n".join(
        failures[:20]
    )


def test_redacting_a_positive_sample_twice_changes_nothing_more() -> None:
    for sample in POSITIVES[::7]:
        once = redact_text(sample.text).text

        assert redact_text(once).text == once


@pytest.mark.parametrize("name", sorted(NEGATIVES))
def test_benign_text_stays_byte_identical(name: str) -> None:
    text = NEGATIVES[name]

    result = redact_text(text)
    payload, counts = redact_payload({"text": text, "nested": [text]})

    assert result.text == text
    assert result.counts == {}
    assert payload == {"text": text, "nested": [text]}
    assert counts == {}
