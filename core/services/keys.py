from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django_q.tasks import async_task

from core.crypto import digest, normalize_code
from core.errors import (
    InvalidInput,
    KeyInvalid,
    KeyUnavailable,
    NotFound,
    PermissionDenied,
    UserBanned,
    ZspbError,
)
from core.models import KeyGenerationJob, LicenseKey, Product, Subscription, User
from core.services import keygen
from core.services.access import ensure_active, ensure_capability
from core.services.logs import Category, log_event
from core.services.ratelimit import rate_limits
from core.services.realtime import member_notify, subscription_event_data
from core.services.rolesync import role_sync_request

KEY_GROUPS = keygen.GROUPS  # 4 x 5 base32 characters = 100 random bits
KEY_BODY_LEN = keygen.BODY_LEN
# Keys written per COPY; in a job, per transaction (progress is committed with each chunk).
INSERT_BATCH = 20_000
# Rows read or locked per round trip by revocation and exports.
ROW_BATCH = 2000
# keys_generate keeps the codes of a batch up to this size in memory; a larger batch's codes
# are read back from their ciphertext when asked for (GeneratedKeys.iter_codes).
CODES_KEPT_MAX = INSERT_BATCH
MAX_DURATION = timedelta(days=3650)


@dataclass(frozen=True)
class GeneratedKeys:
    batch: uuid.UUID
    product: Product
    duration: timedelta
    count: int
    kept: list[str] | None = field(default=None, repr=False)

    @property
    def codes(self) -> list[str]:
        """All the codes, in the order they were made: for callers that made a handful."""
        return self.kept if self.kept is not None else list(self.iter_codes())

    def iter_codes(self) -> Iterator[str]:
        """The codes without holding the batch's: a large batch is decrypted in chunks."""
        if self.kept is not None:
            return iter(self.kept)
        return (LicenseKey.objects.filter(batch=self.batch).order_by("id")
                .values_list("code", flat=True).iterator(chunk_size=ROW_BATCH))


def key_code_digest(body: str) -> str:
    return digest(body, purpose=keygen.DIGEST_PURPOSE)


def _check_generation(
    *, actor: User, duration: timedelta, count: int, note: str, redeem_by: datetime | None
) -> None:
    ensure_capability(actor, "generate_keys")
    limit = settings.ZSPB.key_batch_max
    if not 1 <= count <= limit:
        raise InvalidInput(_("Count must be between 1 and %(limit)s.") % {"limit": limit},
                           fields={"count": count})
    if not timedelta(minutes=1) <= duration <= MAX_DURATION:
        raise InvalidInput(_("Duration must be between one minute and ten years."),
                           fields={"duration": str(duration)})
    if redeem_by is not None and redeem_by <= timezone.now():
        raise InvalidInput(_("The redeem-by date must be in the future."),
                           fields={"redeem_by": redeem_by.isoformat()})
    if len(note) > 200:
        raise InvalidInput(_("The note is limited to 200 characters."), fields={"note": len(note)})


def _new_keys(n: int, *, spec: keygen.KeyRowSpec, keep_codes: bool) -> list[str]:
    """Write `n` free keys with fresh random codes (one COPY); their codes if `keep_codes`."""
    return keygen.keys_insert(spec=spec, count=n, prefix=settings.ZSPB.key_prefix,
                              keep_codes=keep_codes)


def keys_generate(
    *,
    actor: User,
    product: Product,
    duration: timedelta,
    count: int,
    note: str = "",
    redeem_by: datetime | None = None,
) -> GeneratedKeys:
    """Create `count` free keys in one batch. Their clock starts only when redeemed.

    Written in chunks inside one transaction, so a failure leaves no half batch behind (the
    batch is at most keys.batch_max; larger ones are jobs, committed chunk by chunk). The codes
    of up to CODES_KEPT_MAX keys come back in memory, a larger batch's are read back.
    """
    _check_generation(actor=actor, duration=duration, count=count, note=note,
                      redeem_by=redeem_by)
    spec = keygen.KeyRowSpec(product_id=product.pk, duration=duration, batch=uuid.uuid4(),
                             note=note, redeem_by=redeem_by, created_by_id=actor.pk,
                             created_at=timezone.now())
    keep = count <= CODES_KEPT_MAX
    codes: list[str] = []
    with transaction.atomic():
        for start in range(0, count, INSERT_BATCH):
            codes += _new_keys(min(INSERT_BATCH, count - start), spec=spec, keep_codes=keep)
        log_event(category=Category.MODERATION, action="keys.generate", actor=actor,
                  data={"batch": str(spec.batch), "product": product.slug, "count": count,
                        "duration_seconds": int(duration.total_seconds()), "note": note})
    return GeneratedKeys(batch=spec.batch, product=product, duration=duration, count=count,
                         kept=codes if keep else None)


def key_lookup_digest(code: str) -> str | None:
    """Digest of a typed key, or None when it cannot be a key at all (no query needed)."""
    body = normalize_code(code, body_len=KEY_BODY_LEN, prefix=settings.ZSPB.key_prefix)
    return key_code_digest(body) if body else None


def key_redeem(*, user: User, code: str, ip: str | None = None) -> Subscription:
    """Bind a free key to the user and start or extend that product's subscription.

    Exactly once: the status flip is a conditional UPDATE, so of concurrent attempts only one
    changes a row. The user's row is locked first, as a ban locks it, so a ban either comes
    before (the redeem is refused) or waits for the redeem to commit. Extensions of one
    subscription serialise on its row. Refusals are journaled after the transaction rolled
    back, so the entry survives. A web request passes its client address and is throttled per
    address and account; the bot throttles per Discord id itself.
    """
    if ip is not None:
        rate_limits(checks=[("redeem_ip", ip), ("redeem_account", str(user.pk))])
    try:
        return _redeem(user=user, code=code, ip=ip)
    except (KeyInvalid, KeyUnavailable, UserBanned) as exc:
        log_event(category=Category.USER, action="key.redeem_failed", actor=user,
                  data={"reason": exc.code}, ip=ip)
        raise


@dataclass(frozen=True)
class _Redeemed:
    key_id: int
    # With its product (id, name and slug loaded: what the answer and the event show).
    subscription: Subscription
    # Time was added to a subscription still running at the redeem's `now`.
    extended: bool


def _redeem(*, user: User, code: str, ip: str | None) -> Subscription:
    lookup = key_lookup_digest(code)
    if lookup is None:
        raise KeyInvalid()
    now = timezone.now()
    with transaction.atomic():
        # The same lock as ban_create's (FOR UPDATE on the user's row): read under it,
        # is_active is the committed truth until this transaction ends. Only the columns
        # used are read (the row also holds an encrypted one).
        member = User.objects.select_for_update().only("username", "is_active").get(pk=user.pk)
        if not member.is_active:
            raise UserBanned()
        if connection.vendor == "postgresql":
            redeemed = _claim_and_subscribe(user_id=member.pk, digest=lookup, now=now)
        else:
            redeemed = _claim_and_subscribe_orm(user_id=member.pk, digest=lookup, now=now)
        if redeemed is None:
            # Refusals only: the claim says "not claimed", this tells an unknown key from
            # one that exists but is not free or is past its redeem-by date.
            if LicenseKey.objects.filter(code_digest=lookup).exists():
                raise KeyUnavailable()
            raise KeyInvalid()
        subscription = redeemed.subscription
        role_sync_request(user_id=member.pk, reason="redeem")
        log_event(category=Category.USER, action="key.redeem", actor=member,
                  data={"key_id": redeemed.key_id, "product": subscription.product.slug,
                        "expires_at": subscription.expires_at.isoformat()}, ip=ip)
        member_notify(user_id=member.pk,
                      event="subscription_extended" if redeemed.extended else "key_redeemed",
                      data=subscription_event_data(product=subscription.product,
                                                   expires_at=subscription.expires_at,
                                                   extended=redeemed.extended))
    return subscription


# The success path of a redeem in one statement (PostgreSQL; names as in core/models/keys.py
# and subscriptions.py, exercised by the tests):
# - `claimed`: the conditional UPDATE that makes a redeem exactly once. Of concurrent
#   attempts on one key only the first flips it; the others wait for its row lock, re-check
#   `status = free` on the committed row and match nothing. The key's encrypted code is
#   neither read nor returned.
# - `subscribed`: one upsert on subscription_unique (user, product). Its DO UPDATE locks the
#   existing row and computes from its latest committed version, so extensions of one
#   subscription serialise and each adds to the end the previous one left. A subscription
#   still running at `now` keeps its start and grows from its end; a lapsed one restarts at
#   `now` (the model's active_at: running while expires_at > now).
# - the final SELECT adds the product's name and slug, for the answer and the event.
# Intervals are added in the session's time zone, UTC (Django sets it; DATABASES has no
# TIME_ZONE), where an interval's day is 24 h: the end is the same as Python's
# `end + timedelta`.
_CLAIM_AND_SUBSCRIBE = """WITH claimed AS (
    UPDATE core_licensekey
       SET status = %(redeemed)s, redeemed_by_id = %(user_id)s, redeemed_at = %(now)s
     WHERE code_digest = %(digest)s AND status = %(free)s
       AND (redeem_by IS NULL OR redeem_by > %(now)s)
    RETURNING id, product_id, duration
), subscribed AS (
    INSERT INTO core_subscription AS s
           (user_id, product_id, started_at, expires_at, hwid_digest, updated_at)
    SELECT %(user_id)s, claimed.product_id, %(now)s, %(now)s + claimed.duration, '', %(now)s
      FROM claimed
    ON CONFLICT (user_id, product_id) DO UPDATE SET
        started_at = CASE WHEN s.expires_at > %(now)s THEN s.started_at ELSE %(now)s END,
        expires_at = GREATEST(s.expires_at, %(now)s) + (SELECT duration FROM claimed),
        updated_at = %(now)s
    RETURNING s.id, s.user_id, s.product_id, s.started_at, s.expires_at, s.hwid_digest,
              s.hwid_self_reset_at, s.updated_at
)
SELECT claimed.id, claimed.duration, product.name, product.slug,
       subscribed.id, subscribed.user_id, subscribed.product_id, subscribed.started_at,
       subscribed.expires_at, subscribed.hwid_digest, subscribed.hwid_self_reset_at,
       subscribed.updated_at
  FROM claimed
  JOIN core_product AS product ON product.id = claimed.product_id
 CROSS JOIN subscribed
"""
# The columns of `subscribed`, in the model's field order (Model.from_db wants that order).
_SUBSCRIPTION_FIELDS = ("id", "user_id", "product_id", "started_at", "expires_at",
                        "hwid_digest", "hwid_self_reset_at", "updated_at")


def _claim_and_subscribe(*, user_id: int, digest: str, now: datetime) -> _Redeemed | None:
    """Claim the free key of `digest` for the user and start or extend the subscription to
    its product, in one round trip (_CLAIM_AND_SUBSCRIBE); None when no key was claimed
    (unknown, not free, or past its redeem-by date), in which case nothing was written."""
    params: dict[str, int | str | datetime] = {
        "user_id": user_id, "digest": digest, "now": now,
        "free": LicenseKey.Status.FREE.value, "redeemed": LicenseKey.Status.REDEEMED.value,
    }
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_AND_SUBSCRIBE, params)
        row = cursor.fetchone()
    if row is None:
        return None
    key_id, duration, product_name, product_slug, *subscription_values = row
    subscription = Subscription.from_db(connection.alias, list(_SUBSCRIPTION_FIELDS),
                                        subscription_values)
    subscription.product = Product.from_db(connection.alias, ["id", "name", "slug"],
                                           [subscription.product_id, product_name,
                                            product_slug])
    # The new end is max(old end, now) + duration (a new subscription: now + duration), so
    # this is the old end when it was after `now`, else `now`: exactly "it was running".
    extended = subscription.expires_at - duration > now
    return _Redeemed(key_id=key_id, subscription=subscription, extended=extended)


def _claim_and_subscribe_orm(*, user_id: int, digest: str, now: datetime) -> _Redeemed | None:
    """_claim_and_subscribe in ORM steps, for SQLite (the embedded default), which has no
    data-modifying WITH. The claim is the same conditional UPDATE; from it on the transaction
    holds SQLite's one write lock, so the subscription's read and write cannot interleave
    with another writer's."""
    key = (LicenseKey.objects.select_related("product")
           .only("duration", "product__name", "product__slug")
           .filter(code_digest=digest, status=LicenseKey.Status.FREE)
           .filter(Q(redeem_by__isnull=True) | Q(redeem_by__gt=now))
           .first())
    if key is None:
        return None
    claimed = LicenseKey.objects.filter(pk=key.pk, status=LicenseKey.Status.FREE).update(
        status=LicenseKey.Status.REDEEMED, redeemed_by_id=user_id, redeemed_at=now
    )
    if claimed != 1:
        return None
    subscription = (Subscription.objects.select_for_update()
                    .filter(user_id=user_id, product_id=key.product_id).first())
    extended = subscription is not None and subscription.active_at(now)
    if subscription is None:
        subscription = Subscription.objects.create(
            user_id=user_id, product_id=key.product_id, started_at=now,
            expires_at=now + key.duration,
        )
    else:
        if not subscription.active_at(now):
            subscription.started_at = now
        subscription.expires_at = max(now, subscription.expires_at) + key.duration
        subscription.save(update_fields=["started_at", "expires_at", "updated_at"])
    subscription.product = key.product
    return _Redeemed(key_id=key.pk, subscription=subscription, extended=extended)


# --- Staff tools: generation jobs with progress, revocation, exports --------------------------

# Up to this many keys are generated inside the staff member's request; more go to a task.
INLINE_MAX = 2000
# A task stops after this long and queues its own continuation, so one run stays far below
# the cluster's timeout (Q_CLUSTER["timeout"]) whatever the batch size.
TASK_TIME_BUDGET_SECONDS = 20.0
REVOKE_MAX = 100_000
# Who may see key codes in plain text (lists, exports).
CODE_CAPABILITIES = ("generate_keys", "manage_keys")


def key_generation_start(
    *,
    actor: User,
    product: Product,
    duration: timedelta,
    count: int,
    note: str = "",
    redeem_by: datetime | None = None,
) -> KeyGenerationJob:
    """Record a generation request and run it: now when small, else in the background.

    The returned job carries the batch id; its `done` grows as chunks are committed.
    """
    _check_generation(actor=actor, duration=duration, count=count, note=note,
                      redeem_by=redeem_by)
    job = KeyGenerationJob.objects.create(product=product, duration=duration, count=count,
                                          note=note, redeem_by=redeem_by, created_by=actor)
    if count <= INLINE_MAX:
        return key_generation_run(job_id=job.pk)
    _enqueue_generation(job.pk)
    return job


def _enqueue_generation(job_id: int) -> None:
    # After commit, so the worker finds the job row; the task takes only the id.
    transaction.on_commit(lambda: async_task("core.tasks.run_key_generation_job", job_id,
                                             task_name=f"keygen-{job_id}-{uuid.uuid4().hex[:8]}"))


def key_generation_run(
    *, job_id: int, time_budget: float | None = None
) -> KeyGenerationJob:
    """Generate the job's missing keys chunk by chunk; safe to run twice or concurrently.

    Each chunk is inserted in the same transaction that raises `done`, under a lock on the job
    row, so two runners (a re-delivered task) never overshoot `count` and a killed run resumes
    where it stopped. With a time budget the run queues its continuation when it runs out.
    """
    job = (KeyGenerationJob.objects.select_related("product", "created_by__role")
           .filter(pk=job_id).first())
    if job is None:
        raise NotFound(_("Key generation job not found."))
    if job.finished:
        return job
    actor = job.created_by
    try:
        # Re-checked when the work happens: a creator demoted or banned meanwhile stops it.
        if actor is None:
            raise PermissionDenied(_("The staff member who asked for these keys was deleted."))
        ensure_capability(actor, "generate_keys")
    except ZspbError as exc:
        return key_generation_fail(job_id=job.pk, message=str(exc.message))
    spec = keygen.KeyRowSpec(product_id=job.product_id, duration=job.duration, batch=job.batch,
                             note=job.note, redeem_by=job.redeem_by, created_by_id=actor.pk,
                             created_at=job.created_at)
    started = time.monotonic()
    while True:
        with transaction.atomic():
            locked = KeyGenerationJob.objects.select_for_update().get(pk=job.pk)
            if locked.finished:
                return locked
            made = min(INSERT_BATCH, locked.count - locked.done)
            _new_keys(made, spec=spec, keep_codes=False)
            locked.done += made
            locked.status = KeyGenerationJob.Status.RUNNING
            if locked.done >= locked.count:
                locked.status = KeyGenerationJob.Status.DONE
                locked.finished_at = timezone.now()
                log_event(category=Category.MODERATION, action="keys.generate", actor=actor,
                          data={"batch": str(locked.batch), "product": job.product.slug,
                                "count": locked.count, "job_id": locked.pk,
                                "duration_seconds": int(locked.duration.total_seconds()),
                                "note": locked.note})
            locked.save(update_fields=["done", "status", "finished_at"])
            if locked.finished:
                return locked
            if time_budget is not None and time.monotonic() - started >= time_budget:
                _enqueue_generation(locked.pk)
                return locked


def key_generation_fail(*, job_id: int, message: str) -> KeyGenerationJob:
    """Stop a job for good; the keys already made stay (free, listed under its batch)."""
    with transaction.atomic():
        job = KeyGenerationJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            raise NotFound(_("Key generation job not found."))
        if job.finished:
            return job
        job.status = KeyGenerationJob.Status.FAILED
        job.error = message[:300]
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "error", "finished_at"])
        log_event(category=Category.ERROR, action="keys.generate_failed", actor=job.created_by,
                  data={"job_id": job.pk, "batch": str(job.batch), "done": job.done,
                        "count": job.count, "error": job.error})
    return job


def key_revoke(*, actor: User, key_ids: Sequence[int]) -> int:
    """Revoke the free keys among `key_ids`; redeemed and revoked ones are left alone.

    A conditional UPDATE (status still free) on rows locked first: a redeem racing with the
    revocation either wins before the lock or finds the key revoked, never both.
    Returns how many keys were revoked.
    """
    ensure_capability(actor, "manage_keys")
    ids = sorted({int(pk) for pk in key_ids})
    if not ids:
        raise InvalidInput(_("Select at least one key."), fields={"key_ids": 0})
    if len(ids) > REVOKE_MAX:
        raise InvalidInput(_("At most %(max)s keys can be revoked at once.") % {"max": REVOKE_MAX},
                           fields={"key_ids": len(ids)})
    revoked: list[int] = []
    with transaction.atomic():
        for start in range(0, len(ids), ROW_BATCH):
            chunk = ids[start:start + ROW_BATCH]
            free = list(LicenseKey.objects.select_for_update()
                        .filter(pk__in=chunk, status=LicenseKey.Status.FREE)
                        .values_list("pk", flat=True))
            LicenseKey.objects.filter(pk__in=free, status=LicenseKey.Status.FREE).update(
                status=LicenseKey.Status.REVOKED)
            revoked.extend(free)
        if revoked:
            log_event(category=Category.MODERATION, action="keys.revoke", actor=actor,
                      data={"requested": len(ids), "revoked": len(revoked),
                            "key_ids": revoked[:200]})
    return len(revoked)


def key_codes_visible(user: User) -> bool:
    """Whether `user` may see key codes in plain text."""
    return user.is_active and any(user.has_capability(cap) for cap in CODE_CAPABILITIES)


@dataclass(frozen=True)
class KeyExport:
    with_codes: bool
    keys: Iterator[LicenseKey]


def keys_export(*, actor: User, keys: QuerySet[LicenseKey], scope: str) -> KeyExport:
    """Journal an export of `keys` (`scope` says which: filters, selection) and stream them.

    Codes are included only for staff who may see them; the rows are read in chunks.
    """
    ensure_active(actor)
    if not actor.is_staff:
        raise PermissionDenied()
    with_codes = key_codes_visible(actor)
    log_event(category=Category.MODERATION, action="keys.export", actor=actor,
              data={"scope": scope[:500], "with_codes": with_codes})
    return KeyExport(with_codes=with_codes,
                     keys=keys.select_related("product").iterator(chunk_size=ROW_BATCH))


def key_batch_export(*, actor: User, batch: uuid.UUID) -> Iterator[LicenseKey]:
    """The codes of one batch for the staff member to hand out; journaled as keys.export."""
    ensure_active(actor)
    if not key_codes_visible(actor):
        raise PermissionDenied()
    log_event(category=Category.MODERATION, action="keys.export", actor=actor,
              data={"scope": f"batch={batch}", "batch": str(batch), "with_codes": True})
    return (LicenseKey.objects.filter(batch=batch).select_related("product").order_by("id")
            .iterator(chunk_size=ROW_BATCH))
