"""Subscriptions (adjust with a reason, HWID reset), products and loader releases in the admin."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from core.errors import InvalidInput, PermissionDenied, RankViolation
from core.models import LoaderRelease, LogEntry, Product, RoleSyncRequest, Subscription
from core.services.subscriptions import subscription_adjust
from tests.factories import UserFactory
from tests.staff.test_csv import as_dicts, parse_csv

SUBS = "/admin/core/subscription/"
PRODUCTS = "/admin/core/product/"
RELEASES = "/admin/core/loaderrelease/"


@pytest.fixture
def subscription(member: Any, product: Product) -> Subscription:
    now = timezone.now()
    return Subscription.objects.create(user=member, product=product, started_at=now,
                                       expires_at=now + timedelta(days=10), hwid_digest="ab" * 32)


def adjust_post(client: Any, ids: list[int], *, follow: bool = False, **form: Any) -> Any:
    return client.post(SUBS, {"action": "adjust_subscriptions",
                              "_selected_action": [str(i) for i in ids], **form}, follow=follow)


# --- Subscriptions ---------------------------------------------------------------------------

@pytest.mark.django_db
def test_adjust_shows_an_intermediate_form_then_extends(staff_client: Any,
                                                        subscription: Subscription) -> None:
    client = staff_client("moderator")
    before = subscription.expires_at
    form_page = adjust_post(client, [subscription.pk])
    assert form_page.status_code == 200
    html = form_page.content.decode()
    assert 'name="reason"' in html and 'value="adjust_subscriptions"' in html
    assert f'name="_selected_action" value="{subscription.pk}"' in html
    subscription.refresh_from_db()
    assert subscription.expires_at == before  # nothing changes before the form is applied

    done = adjust_post(client, [subscription.pk], apply="1", direction="extend", days="3",
                       hours="4", reason="compensation for the outage")
    assert done.status_code == 302
    subscription.refresh_from_db()
    assert subscription.expires_at == before + timedelta(days=3, hours=4)
    entry = LogEntry.objects.get(action="subscription.adjust")
    assert entry.target == subscription.user and entry.actor == client.user
    assert entry.data["reason"] == "compensation for the outage"
    assert entry.data["delta_seconds"] == (3 * 24 + 4) * 3600
    assert RoleSyncRequest.objects.filter(user=subscription.user).exists()


@pytest.mark.django_db
def test_adjust_shortens_and_needs_a_reason_and_an_amount(staff_client: Any,
                                                          subscription: Subscription) -> None:
    client = staff_client("moderator")
    before = subscription.expires_at
    no_reason = adjust_post(client, [subscription.pk], apply="1", direction="shorten",
                            days="2", hours="0", reason="")
    assert no_reason.status_code == 200 and no_reason.context["form"].errors["reason"]
    no_amount = adjust_post(client, [subscription.pk], apply="1", direction="shorten",
                            days="0", hours="0", reason="x")
    assert no_amount.status_code == 200 and no_amount.context["form"].non_field_errors()
    adjust_post(client, [subscription.pk], apply="1", direction="shorten", days="2",
                hours="0", reason="chargeback")
    subscription.refresh_from_db()
    assert subscription.expires_at == before - timedelta(days=2)


@pytest.mark.django_db
def test_adjust_follows_rank_rules(staff_client: Any, roles: Any, product: Product) -> None:
    client = staff_client("moderator")
    boss = UserFactory.create(role=roles["admin"])
    now = timezone.now()
    theirs = Subscription.objects.create(user=boss, product=product,
                                         expires_at=now + timedelta(days=1))
    own = Subscription.objects.create(user=client.user, product=product,
                                      expires_at=now + timedelta(days=1))
    response = adjust_post(client, [theirs.pk, own.pk], apply="1", direction="extend",
                           days="30", hours="0", reason="free time", follow=True)
    html = response.content.decode()
    assert "You can only act on users and roles ranked below your own." in html
    assert "You cannot do this to your own account." in html
    assert not LogEntry.objects.filter(action="subscription.adjust").exists()


@pytest.mark.django_db
def test_support_can_view_subscriptions_but_not_adjust(staff_client: Any,
                                                       subscription: Subscription) -> None:
    client = staff_client("support")
    page = client.get(SUBS)
    assert page.status_code == 200 and "adjust_subscriptions" not in page.content.decode()
    before = subscription.expires_at
    adjust_post(client, [subscription.pk], apply="1", direction="extend", days="5", hours="0",
                reason="nope")
    subscription.refresh_from_db()
    assert subscription.expires_at == before


@pytest.mark.django_db
def test_hwid_reset_action(staff_client: Any, subscription: Subscription) -> None:
    client = staff_client("moderator")
    response = client.post(SUBS, {"action": "reset_hwid",
                                  "_selected_action": [str(subscription.pk)]})
    assert response.status_code == 302
    subscription.refresh_from_db()
    assert subscription.hwid_digest == ""
    assert LogEntry.objects.filter(action="subscription.reset_hwid",
                                   target=subscription.user).exists()


@pytest.mark.django_db
def test_subscription_filters_and_export(staff_client: Any, subscription: Subscription,
                                         roles: Any, product: Product) -> None:
    lapsed_user = UserFactory.create(username="-lapsed")
    Subscription.objects.create(user=lapsed_user, product=product,
                                expires_at=timezone.now() - timedelta(days=1))
    client = staff_client("admin")

    def users(**params: Any) -> list[str]:
        return [s.user.username for s in client.get(SUBS, params).context["cl"].result_list]

    assert users(state="active") == ["member"]
    assert users(state="expired") == ["-lapsed"]
    assert users(user="member") == ["member"]
    assert users(user=str(lapsed_user.pk)) == ["-lapsed"]
    rows = as_dicts(parse_csv(client.get(f"{SUBS}export.csv", {"state": "expired"})))
    assert [row["user_username"] for row in rows] == ["'-lapsed"]  # defused for spreadsheets


def test_subscription_adjust_service_rules(db: None, moderator: Any, member: Any,
                                           product: Product, support: Any) -> None:
    now = timezone.now()
    expired = Subscription.objects.create(user=member, product=product,
                                          started_at=now - timedelta(days=30),
                                          expires_at=now - timedelta(days=1))
    with pytest.raises(InvalidInput):
        subscription_adjust(actor=moderator, subscription_id=expired.pk,
                            delta=-timedelta(days=1), reason="x")
    with pytest.raises(InvalidInput):
        subscription_adjust(actor=moderator, subscription_id=expired.pk,
                            delta=timedelta(days=1), reason="   ")
    with pytest.raises(InvalidInput):
        subscription_adjust(actor=moderator, subscription_id=expired.pk,
                            delta=timedelta(days=3651), reason="x")
    with pytest.raises(PermissionDenied):
        subscription_adjust(actor=support, subscription_id=expired.pk,
                            delta=timedelta(days=1), reason="x")
    # Extending an expired subscription counts from now, like a redeemed key.
    extended = subscription_adjust(actor=moderator, subscription_id=expired.pk,
                                   delta=timedelta(days=2), reason="goodwill")
    assert extended.started_at >= now
    assert timedelta(days=2) <= extended.expires_at - now < timedelta(days=2, seconds=30)
    # Shortening past now ends it now instead of in the past.
    ended = subscription_adjust(actor=moderator, subscription_id=expired.pk,
                                delta=-timedelta(days=30), reason="abuse")
    assert abs(ended.expires_at - timezone.now()) < timedelta(seconds=30)
    own = Subscription.objects.create(user=moderator, product=product,
                                      expires_at=now + timedelta(days=1))
    with pytest.raises(RankViolation):
        subscription_adjust(actor=moderator, subscription_id=own.pk, delta=timedelta(days=1),
                            reason="my own")


# --- Products --------------------------------------------------------------------------------

@pytest.mark.django_db
def test_only_admin_manages_products(staff_client: Any, product: Product) -> None:
    form = {"name": "Spoofer", "slug": "spoofer", "is_active": "on", "discord_role_id": ""}
    moderator = staff_client("moderator")
    assert moderator.get(PRODUCTS).status_code == 200
    assert moderator.post(f"{PRODUCTS}add/", form).status_code == 403
    assert moderator.post(f"{PRODUCTS}{product.pk}/change/", {**form, "slug": "x"}
                          ).status_code == 403
    admin_client = staff_client("admin")
    assert admin_client.post(f"{PRODUCTS}add/", form).status_code == 302
    created = Product.objects.get(slug="spoofer")
    assert LogEntry.objects.filter(action="product.create", data__product_id=created.pk).exists()
    admin_client.post(f"{PRODUCTS}{created.pk}/change/", {**form, "is_active": ""})
    created.refresh_from_db()
    assert created.is_active is False
    assert LogEntry.objects.get(action="product.update").data["changed"] == ["is_active"]


# --- Loader releases -------------------------------------------------------------------------

@pytest.fixture
def media(settings: Any, tmp_path: Any) -> Any:
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def upload(client: Any, version: str, content: bytes, changelog: str = "fixes") -> Any:
    return client.post(f"{RELEASES}add/", {
        "version": version, "changelog": changelog,
        "file": SimpleUploadedFile("loader.exe", content, "application/octet-stream")})


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["support", "moderator"])
def test_only_admin_uploads_releases(staff_client: Any, media: Any, role: str) -> None:
    client = staff_client(role)
    assert client.get(RELEASES).status_code == 200
    assert client.get(f"{RELEASES}add/").status_code == 403
    assert upload(client, "1.0.0", b"MZ...").status_code == 403
    assert not LoaderRelease.objects.exists()


@pytest.mark.django_db
def test_admin_uploads_with_sha256_and_size_computed(staff_client: Any, media: Any) -> None:
    client = staff_client("admin")
    assert client.get(f"{RELEASES}add/").status_code == 200
    content = b"MZ" + bytes(range(256)) * 100
    response = upload(client, "1.2.3", content)
    assert response.status_code == 302 and response["Location"] == RELEASES
    release = LoaderRelease.objects.get()
    assert release.sha256 == hashlib.sha256(content).hexdigest()
    assert release.size == len(content)
    assert release.published is False and release.changelog == "fixes"
    assert release.uploaded_by == client.user
    duplicate = upload(client, "1.2.3", b"other")
    assert duplicate.status_code == 200
    assert "Version 1.2.3 already exists." in duplicate.content.decode()


@pytest.mark.django_db
def test_upload_size_limit_comes_from_settings(staff_client: Any, media: Any,
                                               settings: Any) -> None:
    settings.LOADER_MAX_UPLOAD_MB = 1
    response = upload(staff_client("admin"), "2.0", b"x" * (1024 * 1024 + 1))
    assert response.status_code == 200
    assert response.context["form"].errors["file"]
    assert not LoaderRelease.objects.exists()


@pytest.mark.django_db
def test_publish_and_unpublish_actions(staff_client: Any, media: Any) -> None:
    client = staff_client("admin")
    upload(client, "3.0", b"binary")
    release = LoaderRelease.objects.get()
    client.post(RELEASES, {"action": "publish", "_selected_action": [str(release.pk)]})
    release.refresh_from_db()
    assert release.published is True
    client.post(RELEASES, {"action": "unpublish", "_selected_action": [str(release.pk)]})
    release.refresh_from_db()
    assert release.published is False
    actions = list(LogEntry.objects.filter(action__startswith="loader.release_")
                   .order_by("id").values_list("action", flat=True))
    assert actions == ["loader.release_create", "loader.release_publish",
                       "loader.release_withdraw"]


@pytest.mark.django_db
def test_moderator_cannot_publish(staff_client: Any, media: Any) -> None:
    upload(staff_client("admin"), "4.0", b"binary")
    release = LoaderRelease.objects.get()
    client = staff_client("moderator")
    client.post(RELEASES, {"action": "publish", "_selected_action": [str(release.pk)]})
    release.refresh_from_db()
    assert release.published is False


@pytest.mark.django_db
def test_hwid_reset_refuses_a_selection_over_the_cap(staff_client: Any, roles: Any,
                                                     product: Product,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """It used to reset the first ADJUST_MAX rows and silently drop the rest."""
    monkeypatch.setattr("staff.subscriptions.ADJUST_MAX", 2)
    client = staff_client("moderator")
    now = timezone.now()
    subscriptions = [Subscription.objects.create(
        user=UserFactory.create(role=roles["user"]), product=product,
        expires_at=now + timedelta(days=1), hwid_digest="ab" * 32) for _ in range(3)]
    response = client.post(SUBS, {"action": "reset_hwid",
                                  "_selected_action": [str(s.pk) for s in subscriptions]},
                           follow=True)
    assert "Select at most 2 rows for this action." in response.content.decode()
    assert Subscription.objects.filter(hwid_digest="").count() == 0
    assert not LogEntry.objects.filter(action="subscription.reset_hwid").exists()
    client.post(SUBS, {"action": "reset_hwid",
                       "_selected_action": [str(s.pk) for s in subscriptions[:2]]})
    assert Subscription.objects.filter(hwid_digest="").count() == 2
