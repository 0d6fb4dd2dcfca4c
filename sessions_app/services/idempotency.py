"""Idempotency keys (the IETF httpapi "Idempotency-Key" draft): the same key and request get
the first answer again, the same key with another request is refused, a duplicate that arrives
while the first is still running is told to wait."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from sessions_app.errors import IdempotencyInFlight, IdempotencyKeyReused
from sessions_app.models import ApiToken, IdempotencyKey

KEEP_FOR = timedelta(hours=24)
# A first request still marked in flight after this long died with its process (its work, in
# the same transaction as its answer, was rolled back): the next retry takes the key over.
ABANDONED_AFTER = timedelta(seconds=60)
# Sooner where the database can tell: the first request holds a row lock on its claim for as
# long as its work's transaction runs (idempotency_hold), so an unlocked claim without an
# answer belongs to a request that died (its process killed, its connection cut by a database
# outage) and a retry takes it over at once instead of waiting ABANDONED_AFTER. A claim younger
# than this may not be locked yet: it counts as in flight.
CLAIM_SETTLE = timedelta(seconds=2)


@dataclass(frozen=True)
class Replay:
    status: int
    body: Any


def idempotency_begin(
    *, token: ApiToken, key: str, fingerprint: str, now: datetime | None = None
) -> IdempotencyKey | Replay:
    """Claim `key` for this request (returns the claim, to pass to idempotency_finish), or
    return the first answer to replay. Raises IdempotencyKeyReused for another request under
    the same key and IdempotencyInFlight while the first is still running.

    The claim is committed on its own, before the request's work starts, so a concurrent
    duplicate finds it at once instead of running the work a second time."""
    now = now or timezone.now()
    try:
        with transaction.atomic():
            return IdempotencyKey.objects.create(
                tenant_id=token.tenant_id,
                token=token,
                key=key,
                fingerprint=fingerprint,
                created_at=now,
            )
    except IntegrityError:
        pass
    found = IdempotencyKey.objects.filter(token=token, key=key).first()
    if found is None:  # purged in between: it was older than KEEP_FOR, so start afresh
        return idempotency_begin(token=token, key=key, fingerprint=fingerprint, now=now)
    if found.fingerprint != fingerprint:
        raise IdempotencyKeyReused()
    if found.response_status is not None:
        return Replay(found.response_status, found.response_body)
    if _abandoned(found, now):
        # Compare-and-swap on created_at: of several retries, one takes the key over.
        taken = IdempotencyKey.objects.filter(
            pk=found.pk, response_status__isnull=True, created_at=found.created_at
        ).update(created_at=now)
        if taken:
            found.created_at = now
            return found
    raise IdempotencyInFlight()


def idempotency_hold(*, claim: IdempotencyKey) -> None:
    """Call first inside the transaction of the request's work: lock the claim until that
    transaction ends, so retries see the first request as alive. Raises IdempotencyInFlight
    if a retry took the key over in the meantime (this request then does no work)."""
    held = (
        IdempotencyKey.objects.select_for_update()
        .filter(pk=claim.pk, created_at=claim.created_at, response_status__isnull=True)
        .values_list("pk", flat=True)
    )
    if not list(held):
        raise IdempotencyInFlight()


def _abandoned(found: IdempotencyKey, now: datetime) -> bool:
    if found.created_at <= now - ABANDONED_AFTER:
        return True
    if found.created_at > now - CLAIM_SETTLE:
        return False
    if not connection.features.has_select_for_update_skip_locked:
        return False  # SQLite: only the age tells
    with transaction.atomic():
        unlocked = (
            IdempotencyKey.objects.select_for_update(skip_locked=True)
            .filter(pk=found.pk, response_status__isnull=True)
            .values_list("pk", flat=True)
        )
        return bool(list(unlocked))


def idempotency_finish(*, claim: IdempotencyKey, status: int, body: Any) -> None:
    """Record the answer; call it inside the transaction of the request's work, so the work
    and its recorded answer commit together or not at all."""
    IdempotencyKey.objects.filter(pk=claim.pk).update(response_status=status, response_body=body)


def idempotency_release(*, claim: IdempotencyKey) -> None:
    """Give the key back after a failure that changed nothing (a 5xx): a retry runs afresh."""
    IdempotencyKey.objects.filter(pk=claim.pk, response_status__isnull=True).delete()


def idempotency_purge(*, now: datetime | None = None, batch_size: int = 5000) -> int:
    """Delete keys older than KEEP_FOR, in batches; returns how many."""
    cutoff = (now or timezone.now()) - KEEP_FOR
    total = 0
    while True:
        pks = list(
            IdempotencyKey.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[
                :batch_size
            ]
        )
        if not pks:
            return total
        total += IdempotencyKey.objects.filter(pk__in=pks).delete()[0]
