"""The three journals: each shows its own category, filters, read-only for everyone, CSV;
entries read as translated sentences with the people linked and the raw data one click away."""

from __future__ import annotations

import ast
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.models import LogEntry
from core.selectors.journal import JOURNAL_DESCRIPTIONS, journal_entry_text
from core.services.logs import Category, log_event
from tests.factories import UserFactory
from tests.staff.conftest import login_staff
from tests.staff.test_csv import as_dicts, parse_csv

JOURNALS = {
    Category.USER: "/admin/core/useractionentry/",
    Category.MODERATION: "/admin/core/moderationentry/",
    Category.ERROR: "/admin/core/systemerrorentry/",
}


def actions_on(client: Any, url: str, **params: Any) -> list[str]:
    response = client.get(url, params)
    assert response.status_code == 200
    return [entry.action for entry in response.context["cl"].result_list]


@pytest.fixture
def entries(moderator: Any, member: Any) -> dict[str, LogEntry]:
    other = UserFactory.create(username="other")
    LogEntry.objects.all().delete()  # setup's own entries (roles.sync) would blur the lists
    return {
        "redeem": log_event(category=Category.USER, action="key.redeem", actor=member,
                            ip="203.0.113.9"),
        "ban": log_event(category=Category.MODERATION, action="user.ban", actor=moderator,
                         target=member, data={"reason": "spam"}),
        "unban": log_event(category=Category.MODERATION, action="user.unban", actor=moderator,
                           target=other),
        "error": log_event(category=Category.ERROR, action="discord.sync_failed",
                           data={"status": 500}),
    }


@pytest.mark.django_db
def test_each_journal_shows_only_its_category(staff_client: Any, entries: Any) -> None:
    client = staff_client("support")
    assert actions_on(client, JOURNALS[Category.USER]) == ["key.redeem"]
    assert actions_on(client, JOURNALS[Category.MODERATION]) == ["user.unban", "user.ban"]
    assert actions_on(client, JOURNALS[Category.ERROR]) == ["discord.sync_failed"]
    # An entry of another journal is not reachable through this one's detail URL either.
    wrong = client.get(f"{JOURNALS[Category.USER]}{entries['ban'].pk}/change/")
    assert wrong.status_code == 302


@pytest.mark.django_db
def test_filters_by_actor_target_action_and_dates(staff_client: Any, entries: Any,
                                                  moderator: Any, member: Any) -> None:
    client = staff_client("admin")
    url = JOURNALS[Category.MODERATION]
    assert actions_on(client, url, actor="moderator") == ["user.unban", "user.ban"]
    assert actions_on(client, url, actor=str(moderator.pk)) == ["user.unban", "user.ban"]
    assert actions_on(client, url, target="member") == ["user.ban"]
    assert actions_on(client, url, target="nobody") == []
    assert actions_on(client, url, action="user.ban") == ["user.ban"]
    assert actions_on(client, url, action="user.*") == ["user.unban", "user.ban"]
    assert actions_on(client, url, action="user.") == []
    LogEntry.objects.filter(pk=entries["ban"].pk).update(
        created_at=timezone.now() - timedelta(days=40))
    today = timezone.localdate()
    assert actions_on(client, url, created_at_from=today.isoformat(),
                      created_at_to=today.isoformat()) == ["user.unban"]
    old_day = (timezone.localtime() - timedelta(days=40)).date().isoformat()
    assert actions_on(client, url, created_at_to=old_day) == ["user.ban"]


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["support", "moderator", "admin"])
def test_nobody_adds_changes_or_deletes_entries(staff_client: Any, entries: Any,
                                                role: str) -> None:
    client = staff_client(role)
    entry = entries["ban"]
    url = JOURNALS[Category.MODERATION]
    assert client.get(f"{url}{entry.pk}/change/").status_code == 200
    assert client.get(f"{url}add/").status_code == 403
    assert client.post(f"{url}{entry.pk}/change/", {"action": "x"}).status_code == 403
    assert client.post(f"{url}{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    client.post(url, {"action": "delete_selected", "_selected_action": [str(entry.pk)],
                      "post": "yes"})
    assert LogEntry.objects.filter(pk=entry.pk, action="user.ban").exists()


@pytest.mark.django_db
def test_superuser_cannot_delete_entries_either(client: Any, entries: Any) -> None:
    boss = UserFactory.create(username="root", is_superuser=True)
    boss.is_staff = True
    boss.save()
    login_staff(client, boss)
    url = JOURNALS[Category.MODERATION]
    assert client.post(f"{url}{entries['ban'].pk}/delete/", {"post": "yes"}).status_code == 403


@pytest.mark.django_db
def test_ip_is_shown_to_user_managers_only(staff_client: Any, entries: Any) -> None:
    url = f"{JOURNALS[Category.USER]}{entries['redeem'].pk}/change/"
    assert "203.0.113.9" in staff_client("moderator").get(url).content.decode()
    assert "203.0.113.9" not in staff_client("support").get(url).content.decode()
    support_rows = parse_csv(staff_client("support", username="s2").get(
        f"{JOURNALS[Category.USER]}export.csv"))
    assert "ip" not in support_rows[0]
    admin_rows = as_dicts(parse_csv(staff_client("admin").get(
        f"{JOURNALS[Category.USER]}export.csv")))
    assert admin_rows[0]["ip"] == "203.0.113.9"


@pytest.mark.django_db
def test_journal_csv_export_is_filtered_defused_and_journaled(staff_client: Any,
                                                              moderator: Any) -> None:
    evil = UserFactory.create(username="@evil+1")
    log_event(category=Category.MODERATION, action="=HYPERLINK(\"http://x\")", actor=moderator,
              target=evil, data={"note": "=1+1"})
    log_event(category=Category.MODERATION, action="user.ban", actor=moderator)
    client = staff_client("admin")
    url = JOURNALS[Category.MODERATION]
    response = client.get(f"{url}export.csv", {"target": evil.username})
    assert response["Content-Disposition"].startswith('attachment; filename="journal-moderation-')
    rows = as_dicts(parse_csv(response))
    assert len(rows) == 1
    row = rows[0]
    assert row["action"] == "'=HYPERLINK(\"http://x\")"
    assert row["target_name"] == "'@evil+1"
    assert row["actor_name"] == "moderator"
    assert row["data"] == '{"note": "=1+1"}'  # starts with "{": not a formula
    assert row["category"] == "moderation"
    export = LogEntry.objects.get(action="admin.export")
    assert export.data == {"model": "core.ModerationEntry",
                           "scope": f"filters: target={evil.username.replace('@', '%40')}"
                                    .replace("+", "%2B")}


@pytest.mark.django_db
def test_export_selected_entries_action(staff_client: Any, entries: Any) -> None:
    client = staff_client("support")
    url = JOURNALS[Category.MODERATION]
    response = client.post(url, {"action": "export_selected_csv",
                                 "_selected_action": [str(entries["ban"].pk)]})
    assert [row["action"] for row in as_dicts(parse_csv(response))] == ["user.ban"]


@pytest.mark.django_db
def test_members_cannot_read_journals(client: Any, member: Any, entries: Any) -> None:
    client.force_login(member, backend="django.contrib.auth.backends.ModelBackend")
    for url in JOURNALS.values():
        assert client.get(url).status_code == 302
        assert client.get(f"{url}export.csv").status_code == 302


def user_link(user: Any) -> str:
    return rf'<a href="/admin/core/user/{user.pk}/change/"[^>]*>{user.username}</a>'


@pytest.mark.django_db
def test_entries_read_as_sentences_with_people_linked(staff_client: Any, entries: Any,
                                                      moderator: Any, member: Any) -> None:
    html = staff_client("support").get(JOURNALS[Category.MODERATION]).content.decode()
    assert re.search(rf"{user_link(moderator)} banned {user_link(member)} permanently: spam",
                     html), html
    # The raw data stays one click away, in a closed <details> of the same row.
    assert re.search(r"<details[^>]*>\s*<summary[^>]*>[^<]*</summary>\s*<pre[^>]*>"
                     r"\{\s*&quot;reason&quot;: &quot;spam&quot;\s*\}</pre>", html), html
    user_html = staff_client("support", username="s2").get(
        JOURNALS[Category.USER]).content.decode()
    assert re.search(rf"{user_link(member)} redeemed a key", user_html), user_html


@pytest.mark.django_db
def test_descriptions_use_the_entry_data(moderator: Any, member: Any, product: Any) -> None:
    entry = log_event(category=Category.USER, action="key.redeem", actor=member,
                      data={"key_id": 1, "product": "loader",
                            "expires_at": "2026-12-30T04:17:27+00:00"})
    text = journal_entry_text(entry=entry)
    assert text.startswith("member redeemed a key for loader")
    assert "2026" in text and "T04:17" not in text  # a date as people write it
    timed = log_event(category=Category.MODERATION, action="user.ban", actor=moderator,
                      target=member, data={"reason": "spam",
                                           "ends_at": "2026-12-30T04:17:27+00:00"})
    assert journal_entry_text(entry=timed).startswith("moderator banned member until ")
    adjust = log_event(category=Category.MODERATION, action="subscription.adjust",
                       actor=moderator, target=member,
                       data={"product": "loader", "delta_seconds": -3 * 86400,
                             "reason": "refund", "new_expires_at": "2026-12-01T00:00:00+00:00"})
    assert "by -3 days" in journal_entry_text(entry=adjust)
    generated = log_event(category=Category.MODERATION, action="keys.generate", actor=moderator,
                          data={"count": 5, "product": "loader", "duration_seconds": 86400})
    assert journal_entry_text(entry=generated) == (
        "moderator generated 5 keys for loader (1 day each)")


@pytest.mark.django_db
def test_unknown_actions_and_missing_data_fall_back(staff_client: Any, moderator: Any) -> None:
    LogEntry.objects.all().delete()
    unknown = log_event(category=Category.MODERATION, action="mystery.thing", actor=moderator,
                        data={"x": 1})
    assert journal_entry_text(entry=unknown) == "mystery.thing by moderator"
    nobody = log_event(category=Category.ERROR, action="mystery.crash")
    assert journal_entry_text(entry=nobody) == "mystery.crash"
    old = log_event(category=Category.MODERATION, action="user.ban", actor=moderator)
    assert journal_entry_text(entry=old) == "moderator banned someone permanently: —"
    html = staff_client("admin").get(JOURNALS[Category.MODERATION]).content.decode()
    assert re.search(rf'<span class="font-medium">mystery.thing</span> by {user_link(moderator)}',
                     html), html


@pytest.mark.django_db
def test_names_and_data_are_escaped(staff_client: Any, moderator: Any) -> None:
    evil = UserFactory.create(username="<b>evil</b>")
    log_event(category=Category.MODERATION, action="user.ban", actor=moderator, target=evil,
              data={"reason": "<script>alert(1)</script>"})
    html = staff_client("admin").get(JOURNALS[Category.MODERATION]).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;evil&lt;/b&gt;</a>" in html


@pytest.mark.django_db
def test_change_page_shows_the_sentence_and_the_raw_data(staff_client: Any, entries: Any,
                                                         moderator: Any, member: Any) -> None:
    url = f"{JOURNALS[Category.MODERATION]}{entries['ban'].pk}/change/"
    html = staff_client("support").get(url).content.decode()
    assert re.search(rf"{user_link(moderator)} banned {user_link(member)} permanently: spam",
                     html), html
    assert "&quot;reason&quot;: &quot;spam&quot;" in html


def logged_actions() -> set[str]:
    """Every action literal passed to the journal's entry points in the code: log_event,
    error_journal (unhandled errors) and the role sync's _alert_once."""
    found: set[str] = set()
    root = Path(settings.BASE_DIR)
    for package in ("core", "api", "staff", "botapp"):
        for path in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call):
                    continue
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                if name not in {"log_event", "error_journal", "_alert_once"}:
                    continue
                for keyword in node.keywords:
                    if keyword.arg == "action":
                        found |= {c.value for c in ast.walk(keyword.value)
                                  if isinstance(c, ast.Constant) and isinstance(c.value, str)}
    return found


def test_every_journaled_action_has_a_description() -> None:
    actions = logged_actions()
    assert {"key.redeem", "user.ban", "loader.release_withdraw", "task.failed"} <= actions
    assert sorted(actions - set(JOURNAL_DESCRIPTIONS)) == []


@pytest.mark.django_db
def test_descriptions_add_no_queries_per_row(staff_client: Any, moderator: Any,
                                             member: Any) -> None:
    client = staff_client("admin")
    url = JOURNALS[Category.MODERATION]

    def seed(count: int) -> None:
        for i in range(count):
            log_event(category=Category.MODERATION, action="user.ban", actor=moderator,
                      target=member, data={"reason": f"r{i}"})
            log_event(category=Category.MODERATION, action="keys.generate", actor=moderator,
                      data={"count": i, "product": "loader", "duration_seconds": 3600})

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    seed(2)
    client.get(url)
    few = queries()
    seed(40)
    assert queries() == few


@pytest.mark.django_db
def test_edits_name_the_fields_they_changed(moderator: Any, member: Any) -> None:
    product = log_event(category=Category.MODERATION, action="product.update", actor=moderator,
                        data={"slug": "loader", "changed": ["active", "name"]})
    assert journal_entry_text(entry=product) == (
        "moderator edited the product loader (active, name)")
    profile = log_event(category=Category.MODERATION, action="user.update", actor=moderator,
                        target=member, data={"changes": {"email": ["", "a@b.c"]}})
    assert journal_entry_text(entry=profile) == "moderator edited the profile of member (email)"


@pytest.mark.django_db
def test_acting_on_oneself_reads_naturally(moderator: Any, member: Any) -> None:
    own = log_event(category=Category.USER, action="user.end_sessions", actor=member,
                    target=member)
    assert journal_entry_text(entry=own) == "member logged out everywhere else"
    other = log_event(category=Category.MODERATION, action="user.end_sessions",
                      actor=moderator, target=member)
    assert journal_entry_text(entry=other) == "moderator ended every session of member"


@pytest.mark.django_db
def test_unhandled_errors_read_with_their_request_id() -> None:
    entry = log_event(category=Category.ERROR, action="request.unhandled",
                      data={"method": "GET", "path": "/admin/", "place": "admin:index",
                            "error": "KeyError", "request_id": "abc123"})
    assert journal_entry_text(entry=entry) == (
        "Unhandled KeyError on GET /admin/ (request abc123)")
