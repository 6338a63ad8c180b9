"""Keys in the admin: generation page and jobs, the list (masking, filters, search), revoke,
CSV exports. Everything goes through the admin test client."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.utils import timezone
from django_q.conf import Conf

from core.models import KeyGenerationJob, LicenseKey, LogEntry, Product, Subscription
from core.services import keys as key_services
from core.services.keys import key_generation_run, key_redeem, keys_generate
from staff.keys import mask_code
from tests.factories import ProductFactory
from tests.staff.test_csv import as_dicts, parse_csv

KEYS = "/admin/core/licensekey/"
GENERATE = f"{KEYS}generate/"


@pytest.fixture
def q_sync(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """django-q2 runs tasks in-process. Conf is read once at import, so it is patched too."""
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": True}
    monkeypatch.setattr(Conf, "SYNC", True)


def generate_form(product: Product, count: int, **extra: Any) -> dict[str, Any]:
    return {"product": product.pk, "duration_value": 30, "duration_unit": "days",
            "count": count, "note": "", "redeem_by_0": "", "redeem_by_1": "",
            "generate": "1", **extra}


def batch_keys(batch: uuid.UUID) -> Any:
    return LicenseKey.objects.filter(batch=batch)


# --- Generation page -------------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize(("role", "status"), [("support", 403), ("moderator", 200),
                                              ("admin", 200)])
def test_generation_page_needs_generate_keys(staff_client: Any, product: Product, role: str,
                                             status: int) -> None:
    client = staff_client(role)
    assert client.get(GENERATE).status_code == status
    response = client.post(GENERATE, generate_form(product, 3))
    assert response.status_code == (403 if status == 403 else 302)
    assert LicenseKey.objects.count() == (0 if status == 403 else 3)


@pytest.mark.django_db
def test_changelist_offers_generation_only_to_those_who_may(staff_client: Any) -> None:
    assert 'href="/admin/core/licensekey/generate/"' in staff_client("moderator").get(
        KEYS).content.decode()
    assert "/admin/core/licensekey/generate/" not in staff_client("support").get(
        KEYS).content.decode()


@pytest.mark.django_db
def test_small_batch_is_generated_inline_and_shown_with_its_batch(
    staff_client: Any, product: Product
) -> None:
    client = staff_client("moderator")
    redeem_by = timezone.localtime() + timedelta(days=10)
    response = client.post(GENERATE, generate_form(
        product, 5, duration_value=12, duration_unit="hours", note="giveaway",
        redeem_by_0=redeem_by.strftime("%Y-%m-%d"), redeem_by_1="12:00:00"))
    job = KeyGenerationJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"{GENERATE}{job.pk}/"
    assert (job.status, job.done, job.count) == ("done", 5, 5)
    keys = list(batch_keys(job.batch))
    assert len(keys) == 5
    assert {k.duration for k in keys} == {timedelta(hours=12)}
    assert {k.note for k in keys} == {"giveaway"}
    assert all(k.redeem_by is not None and k.created_by == client.user for k in keys)
    page = client.get(response["Location"]).content.decode()
    assert str(job.batch) in page
    assert f"{GENERATE}{job.pk}/codes.csv" in page
    assert f"{KEYS}?batch={job.batch}" in page
    entry = LogEntry.objects.get(action="keys.generate")
    assert entry.data["batch"] == str(job.batch) and entry.data["count"] == 5


@pytest.mark.django_db
@pytest.mark.parametrize(("field", "value"), [("count", 0), ("count", 100_001),
                                              ("duration_value", 0)])
def test_generation_form_rejects_bad_input(staff_client: Any, product: Product, field: str,
                                           value: int) -> None:
    response = staff_client("moderator").post(GENERATE, {**generate_form(product, 3),
                                                         field: value})
    assert response.status_code == 200
    assert response.context["form"].errors[field]
    assert not LicenseKey.objects.exists()


@pytest.mark.django_db
def test_service_refusal_is_shown_as_a_message(staff_client: Any, product: Product) -> None:
    past = timezone.localtime() - timedelta(days=1)
    response = staff_client("moderator").post(GENERATE, generate_form(
        product, 3, redeem_by_0=past.strftime("%Y-%m-%d"), redeem_by_1="00:00:00"), follow=True)
    assert "The redeem-by date must be in the future." in response.content.decode()
    assert not KeyGenerationJob.objects.exists()


@pytest.mark.django_db
def test_large_batch_runs_as_a_task_with_progress(
    staff_client: Any, product: Product, q_sync: None, django_capture_on_commit_callbacks: Any
) -> None:
    client = staff_client("moderator")
    count = key_services.INLINE_MAX + 500
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(GENERATE, generate_form(product, count))
    assert len(callbacks) == 1  # the task was queued after commit, not run in the request
    job = KeyGenerationJob.objects.get()
    assert response["Location"] == f"{GENERATE}{job.pk}/"
    job.refresh_from_db()
    assert (job.status, job.done) == ("done", count)
    assert batch_keys(job.batch).count() == count
    status = client.get(f"{GENERATE}{job.pk}/status/").json()
    assert status == {"status": "done", "done": count, "count": count, "percent": 100,
                      "finished": True, "batch": str(job.batch), "error": ""}


@pytest.mark.django_db
def test_job_resumes_in_chunks_and_never_overshoots(
    moderator: Any, product: Product, monkeypatch: pytest.MonkeyPatch, q_sync: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    monkeypatch.setattr(key_services, "INSERT_BATCH", 40)
    monkeypatch.setattr(key_services, "INLINE_MAX", 10)
    monkeypatch.setattr("core.tasks.TASK_TIME_BUDGET_SECONDS", 0.0)  # one chunk per run
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job = key_services.key_generation_start(actor=moderator, product=product,
                                                duration=timedelta(days=1), count=100)
    assert len(callbacks) == 3  # first run + two continuations: 40 + 40 + 20
    job.refresh_from_db()
    assert (job.status, job.done) == ("done", 100)
    # A re-delivered task finds the job finished and adds nothing.
    assert key_generation_run(job_id=job.pk).done == 100
    assert batch_keys(job.batch).count() == 100
    assert LogEntry.objects.filter(action="keys.generate").count() == 1


@pytest.mark.django_db
def test_job_of_a_demoted_creator_fails_visibly(
    moderator: Any, roles: Any, product: Product, staff_client: Any
) -> None:
    job = KeyGenerationJob.objects.create(product=product, duration=timedelta(days=1),
                                          count=10, created_by=moderator)
    moderator.role = roles["support"]
    moderator.save()
    job = key_generation_run(job_id=job.pk)
    assert job.status == "failed" and job.done == 0
    assert LogEntry.objects.filter(category="error", action="keys.generate_failed").exists()
    page = staff_client("admin").get(f"{GENERATE}{job.pk}/").content.decode()
    assert "You do not have permission to do that." in page


@pytest.mark.django_db
def test_unfinished_job_page_polls_and_offers_no_download_yet(
    staff_client: Any, moderator: Any, product: Product
) -> None:
    job = KeyGenerationJob.objects.create(product=product, duration=timedelta(days=1),
                                          count=5000, done=2000, status="running",
                                          created_by=moderator)
    client = staff_client("moderator", username="other_mod")
    page = client.get(f"{GENERATE}{job.pk}/").content.decode()
    assert f"{GENERATE}{job.pk}/status/" in page and "width: 40%" in page
    assert client.get(f"{GENERATE}{job.pk}/status/").json()["percent"] == 40
    response = client.get(f"{GENERATE}{job.pk}/codes.csv")
    assert response.status_code == 302


# --- The batch's codes as CSV ----------------------------------------------------------------

@pytest.mark.django_db
def test_batch_codes_csv_has_the_decrypted_codes_and_is_journaled(
    staff_client: Any, product: Product
) -> None:
    client = staff_client("moderator")
    client.post(GENERATE, generate_form(product, 4, note="=cmd|' /C calc'!A0"))
    job = KeyGenerationJob.objects.get()
    rows = as_dicts(parse_csv(client.get(f"{GENERATE}{job.pk}/codes.csv")))
    assert sorted(row["code"] for row in rows) == sorted(k.code for k in batch_keys(job.batch))
    assert all(row["code"].startswith("ZSPB-") for row in rows)
    assert {row["note"] for row in rows} == {"'=cmd|' /C calc'!A0"}  # formula defused
    assert {row["duration"] for row in rows} == {"30 days"}
    assert {row["batch"] for row in rows} == {str(job.batch)}
    export = LogEntry.objects.get(action="keys.export")
    assert export.actor == client.user and export.data["batch"] == str(job.batch)


@pytest.mark.django_db
def test_support_cannot_see_jobs_or_download_codes(staff_client: Any, moderator: Any,
                                                   product: Product) -> None:
    job = key_services.key_generation_start(actor=moderator, product=product,
                                            duration=timedelta(days=1), count=2)
    client = staff_client("support")
    for suffix in ("", "status/", "codes.csv"):
        assert client.get(f"{GENERATE}{job.pk}/{suffix}").status_code == 403
    assert not LogEntry.objects.filter(action="keys.export").exists()


# --- The list --------------------------------------------------------------------------------

@pytest.fixture
def some_keys(moderator: Any, product: Product) -> Any:
    return keys_generate(actor=moderator, product=product, duration=timedelta(days=7), count=3)


@pytest.mark.django_db
def test_codes_in_plain_text_only_for_those_who_may_generate(staff_client: Any,
                                                            some_keys: Any) -> None:
    code = some_keys.codes[0]
    assert code in staff_client("moderator", username="m2").get(KEYS).content.decode()
    support_page = staff_client("support").get(KEYS).content.decode()
    assert code not in support_page
    assert mask_code(code) in support_page
    key = LicenseKey.objects.get(batch=some_keys.batch, code_digest=key_services
                                 .key_lookup_digest(code))
    detail = staff_client("support", username="s2").get(f"{KEYS}{key.pk}/change/")
    assert detail.status_code == 200
    assert code not in detail.content.decode() and mask_code(code) in detail.content.decode()


def test_mask_code_keeps_prefix_and_last_group() -> None:
    assert mask_code("ZSPB-AAAAA-BBBBB-CCCCC-DDDDD") == (
        "ZSPB-\u2022\u2022\u2022\u2022\u2022-\u2022\u2022\u2022\u2022\u2022-"
        "\u2022\u2022\u2022\u2022\u2022-DDDDD")
    assert mask_code("garbage") == "\u2022" * 5


@pytest.mark.django_db
def test_free_keys_show_duration_redeemed_show_time_left(
    staff_client: Any, some_keys: Any, member: Any
) -> None:
    key_redeem(user=member, code=some_keys.codes[0])
    page = staff_client("admin").get(KEYS).content.decode()
    assert "7 days, not started" in page
    assert "6 days 23 h left" in page  # the text before the script takes over


@pytest.mark.django_db
def test_redeemed_keys_count_down_live_on_the_servers_clock(
    staff_client: Any, some_keys: Any, member: Any
) -> None:
    """Redeemed keys showed a fixed "59 days 23 h left"; now the script counts down."""
    key_redeem(user=member, code=some_keys.codes[0])
    expires = Subscription.objects.get(user=member).expires_at
    client = staff_client("admin")
    page = client.get(KEYS).content.decode()
    countdowns = re.findall(r'<span class="staff-countdown"[^>]*>', page)
    assert len(countdowns) == 1  # free keys show their duration, without a countdown
    assert f'data-expires="{expires.isoformat()}"' in countdowns[0]
    assert 'data-now="' in countdowns[0] and 'data-units="' in countdowns[0]
    script = "/static/staff/js/countdown.js"
    assert f'src="{script}"' in page
    source = finders.find("staff/js/countdown.js")
    assert source is not None
    with open(source, encoding="utf-8") as handle:
        code = handle.read()
    assert "data-expires" in code or "dataset.expires" in code
    key = LicenseKey.objects.get(status="redeemed")
    detail = client.get(f"{KEYS}{key.pk}/change/").content.decode()
    assert 'class="staff-countdown"' in detail and f'src="{script}"' in detail


@pytest.mark.django_db
def test_search_matches_one_exact_code_through_its_digest(staff_client: Any,
                                                          some_keys: Any) -> None:
    client = staff_client("admin")
    code = some_keys.codes[1]
    sloppy = code.lower().replace("-", " ")
    for term in (code, sloppy):
        result = client.get(KEYS, {"q": term}).context["cl"].result_list
        assert [k.code for k in result] == [code]
    assert list(client.get(KEYS, {"q": "ZSPB"}).context["cl"].result_list) == []
    unknown = "ZSPB-00000-00000-00000-00000"
    assert list(client.get(KEYS, {"q": unknown}).context["cl"].result_list) == []


@pytest.mark.django_db
def test_filters_by_product_status_batch_and_creator(
    staff_client: Any, moderator: Any, admin: Any, product: Product, member: Any
) -> None:
    other = ProductFactory.create()
    first = keys_generate(actor=moderator, product=product, duration=timedelta(days=1), count=2)
    second = keys_generate(actor=admin, product=other, duration=timedelta(days=1), count=3)
    key_redeem(user=member, code=second.codes[0])
    client = staff_client("admin", username="boss")

    def ids(**params: Any) -> set[int]:
        response = client.get(KEYS, params)
        assert response.status_code == 200
        return {k.pk for k in response.context["cl"].result_list}

    in_first = set(batch_keys(first.batch).values_list("pk", flat=True))
    in_second = set(batch_keys(second.batch).values_list("pk", flat=True))
    assert ids(batch=str(first.batch)) == in_first
    assert ids(batch="not-a-uuid") == set()
    assert ids(product__id__exact=other.pk) == in_second
    assert len(ids(status__exact="redeemed")) == 1
    assert ids(created_by=moderator.username) == in_first
    assert ids(created_by=str(admin.pk)) == in_second
    assert ids(created_by="nobody") == set()
    assert ids(status__exact="free", product__id__exact=other.pk) == in_second - set(
        LicenseKey.objects.filter(status="redeemed").values_list("pk", flat=True))


@pytest.mark.django_db
def test_the_batch_filter_is_a_text_input_not_a_list_of_batches(staff_client: Any,
                                                                some_keys: Any) -> None:
    page = staff_client("admin").get(KEYS).content.decode()
    assert 'name="batch"' in page
    assert str(some_keys.batch) not in page.split('id="changelist-filter"')[1].split(
        "</form>")[0]


# --- Revoke ----------------------------------------------------------------------------------

def action_post(client: Any, action: str, ids: list[int], url: str = KEYS, **extra: Any) -> Any:
    return client.post(url, {"action": action, "_selected_action": [str(i) for i in ids],
                             **extra})


@pytest.mark.django_db
def test_admin_revokes_free_keys_only(staff_client: Any, some_keys: Any, member: Any) -> None:
    key_redeem(user=member, code=some_keys.codes[0])
    all_ids = list(batch_keys(some_keys.batch).values_list("pk", flat=True))
    client = staff_client("admin")
    response = action_post(client, "revoke_keys", all_ids)
    assert response.status_code == 302
    statuses = sorted(batch_keys(some_keys.batch).values_list("status", flat=True))
    assert statuses == ["redeemed", "revoked", "revoked"]
    messages = [str(m) for m in client.get(KEYS).context["messages"]]
    assert any("2 keys revoked; 1 were not free" in m for m in messages)
    entry = LogEntry.objects.get(action="keys.revoke")
    assert entry.data["revoked"] == 2 and entry.actor == client.user


@pytest.mark.django_db
def test_revoke_across_the_filtered_list(staff_client: Any, some_keys: Any,
                                         moderator: Any, product: Product) -> None:
    other = keys_generate(actor=moderator, product=product, duration=timedelta(days=1), count=2)
    client = staff_client("admin")
    one = batch_keys(some_keys.batch).first()
    assert one is not None
    client.post(f"{KEYS}?batch={some_keys.batch}", {
        "action": "revoke_keys", "select_across": "1", "index": "0",
        "_selected_action": [str(one.pk)]})
    assert set(batch_keys(some_keys.batch).values_list("status", flat=True)) == {"revoked"}
    assert set(batch_keys(other.batch).values_list("status", flat=True)) == {"free"}


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["support", "moderator"])
def test_revoke_needs_manage_keys(staff_client: Any, some_keys: Any, role: str) -> None:
    client = staff_client(role)
    ids = list(batch_keys(some_keys.batch).values_list("pk", flat=True))
    response = action_post(client, "revoke_keys", ids)
    assert response.status_code in (200, 302)
    assert set(batch_keys(some_keys.batch).values_list("status", flat=True)) == {"free"}
    assert "revoke_keys" not in client.get(KEYS).content.decode()


# --- CSV export of the list ------------------------------------------------------------------

@pytest.mark.django_db
def test_filtered_list_exports_with_codes_for_key_staff(
    staff_client: Any, some_keys: Any, moderator: Any, product: Product, member: Any
) -> None:
    other = keys_generate(actor=moderator, product=product, duration=timedelta(days=2),
                          count=2, note="@SUM(1+1)*cmd")
    key_redeem(user=member, code=other.codes[0])
    client = staff_client("admin")
    response = client.get(f"{KEYS}export.csv", {"batch": str(other.batch)})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Disposition"].startswith('attachment; filename="keys-')
    rows = as_dicts(parse_csv(response))
    assert sorted(row["code"] for row in rows) == sorted(other.codes)
    assert {row["note"] for row in rows} == {"'@SUM(1+1)*cmd"}
    assert sorted(row["status"] for row in rows) == ["free", "redeemed"]
    assert {row["term"] for row in rows} >= {"2 days, not started"}
    entry = LogEntry.objects.get(action="keys.export")
    assert entry.data == {"scope": f"filters: batch={other.batch}", "with_codes": True}


@pytest.mark.django_db
def test_support_exports_without_codes(staff_client: Any, some_keys: Any) -> None:
    response = staff_client("support").get(f"{KEYS}export.csv")
    header, *rows = parse_csv(response)
    assert "code" not in header and len(rows) == 3
    assert LogEntry.objects.get(action="keys.export").data["with_codes"] is False


@pytest.mark.django_db
def test_export_selected_action(staff_client: Any, some_keys: Any) -> None:
    client = staff_client("moderator", username="m3")
    chosen = list(batch_keys(some_keys.batch).values_list("pk", flat=True)[:2])
    response = action_post(client, "export_selected_csv", chosen)
    assert response.status_code == 200
    assert sorted(int(row["id"]) for row in as_dicts(parse_csv(response))) == sorted(chosen)


@pytest.mark.django_db
def test_non_staff_get_no_keys_page_or_export(client: Any, member: Any, some_keys: Any) -> None:
    client.force_login(member, backend="django.contrib.auth.backends.ModelBackend")
    for url in (KEYS, f"{KEYS}export.csv", GENERATE):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]


@pytest.mark.django_db
def test_unverified_staff_cannot_generate(staff_client: Any, product: Product) -> None:
    client = staff_client("moderator", verified=False)
    response = client.post(GENERATE, generate_form(product, 3))
    assert response.status_code == 302
    assert not LicenseKey.objects.exists()


@pytest.mark.django_db
def test_key_detail_is_read_only_for_everyone(staff_client: Any, some_keys: Any) -> None:
    key = batch_keys(some_keys.batch).first()
    assert key is not None
    client = staff_client("admin")
    response = client.post(f"{KEYS}{key.pk}/change/", {"status": "revoked"})
    assert response.status_code == 403
    assert client.get(f"{KEYS}add/").status_code == 403
    assert client.post(f"{KEYS}{key.pk}/delete/", {"post": "yes"}).status_code == 403
    assert LicenseKey.objects.get(pk=key.pk).status == "free"



# --- Races (PostgreSQL: real row locks) ------------------------------------------------------

@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_revoke_racing_a_redeem_leaves_one_consistent_outcome(admin: Any, member: Any,
                                                              moderator: Any,
                                                              product: Product) -> None:
    from core.errors import KeyUnavailable
    from tests.conftest import run_concurrently

    generated = keys_generate(actor=moderator, product=product, duration=timedelta(days=1),
                              count=8)
    keys = {k.code: k.pk for k in batch_keys(generated.batch)}
    for code, pk in keys.items():
        results = run_concurrently(
            lambda i, code=code, pk=pk: key_services.key_revoke(actor=admin, key_ids=[pk])
            if i == 0 else key_redeem(user=member, code=code), threads=2)
        revoked, redeemed = results
        status = LicenseKey.objects.get(pk=pk).status
        if status == "revoked":
            assert revoked == 1 and isinstance(redeemed, KeyUnavailable)
        else:
            assert status == "redeemed" and revoked == 0 and not isinstance(redeemed,
                                                                             Exception)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_of_one_job_never_overshoot(moderator: Any, product: Product,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import run_concurrently

    monkeypatch.setattr(key_services, "INSERT_BATCH", 50)
    job = KeyGenerationJob.objects.create(product=product, duration=timedelta(days=1),
                                          count=1000, created_by=moderator)
    results = run_concurrently(lambda i: key_generation_run(job_id=job.pk).done, threads=4)
    assert results == [1000] * 4
    assert batch_keys(job.batch).count() == 1000
    assert LogEntry.objects.filter(action="keys.generate").count() == 1


@pytest.mark.django_db
def test_generation_page_lists_the_staff_members_recent_batches(staff_client: Any,
                                                                product: Product) -> None:
    client = staff_client("moderator")
    client.post(GENERATE, generate_form(product, 2))
    job = KeyGenerationJob.objects.get()
    assert f'href="{GENERATE}{job.pk}/"' in client.get(GENERATE).content.decode()
    assert f'href="{GENERATE}{job.pk}/"' not in staff_client("admin").get(
        GENERATE).content.decode()
