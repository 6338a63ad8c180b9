"""Journals to Discord webhooks: queued with the entry, posted in batches by a task, mentions
suppressed, a deleted webhook disabled with one error entry, and no request ever waiting."""

from __future__ import annotations

import time

import pytest
from django.db import transaction
from django.utils import timezone

from core.discord import rest
from core.models import LogEntry, WebhookOutbox, WebhookState
from core.services import webhooks
from core.services.logs import log_event
from core.services.webhooks import CONTENT_MAX, journal_line, pack_lines, webhooks_deliver
from tests.api.conftest import ApiClient
from tests.discord_standin import Fault, pings
from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def _quick_backoff(monkeypatch):
    monkeypatch.setattr(rest, "BACKOFF_BASE", 0.02)


def make_due():
    """Time passes: the back-off after a failure is over."""
    WebhookState.objects.update(not_before=timezone.now())


def lines_posted(standin, journal):
    return [line for m in standin.messages(journal) for line in m.content.split("\n")]


@pytest.mark.django_db
class TestQueue:
    def test_log_event_queues_a_line_and_makes_no_request(self, discord_standin):
        entry = log_event(category="user", action="key.redeem", data={"n": 1})
        assert list(WebhookOutbox.objects.values_list("entry_id", "journal")) == [
            (entry.pk, "user")]
        assert discord_standin.served() == []

    def test_nothing_queued_without_a_url(self, discord_standin, settings):
        settings.WEBHOOK_URLS = {**settings.WEBHOOK_URLS, "user": None}
        log_event(category="user", action="user.login")
        log_event(category="moderation", action="user.ban")
        assert list(WebhookOutbox.objects.values_list("journal", flat=True)) == ["moderation"]

    def test_offline_by_default_queues_nothing(self, member):
        log_event(category="user", action="user.login", actor=member)
        assert not WebhookOutbox.objects.exists()

    def test_line_rolls_back_with_its_entry(self, discord_standin):
        def change_that_fails():
            with transaction.atomic():
                log_event(category="moderation", action="user.ban")
                raise RuntimeError

        with pytest.raises(RuntimeError):
            change_that_fails()
        assert not LogEntry.objects.exists() and not WebhookOutbox.objects.exists()


@pytest.mark.django_db
class TestDelivery:
    def test_entries_are_batched_into_few_messages_in_order(self, discord_standin, member):
        for n in range(30):
            log_event(category="user", action="user.login", actor=member, data={"n": n})
        webhooks_deliver()
        messages = discord_standin.messages("user")
        assert len(messages) < 5
        lines = lines_posted(discord_standin, "user")
        assert len(lines) == 30
        assert [line.endswith(f'`{{"n": {n}}}`') for n, line in enumerate(lines)] == [True] * 30
        assert all(m.username == "ZalypaSPB · User actions" for m in messages)
        assert not WebhookOutbox.objects.exists()
        assert WebhookState.objects.get(journal="user").delivered_at is not None

    def test_every_message_stays_under_discords_limit(self, discord_standin):
        for n in range(120):
            log_event(category="moderation", action="user.ban",
                      data={"n": n, "reason": "x" * (n * 13 % 900)})
        webhooks_deliver()
        messages = discord_standin.messages("moderation")
        assert all(len(m.content) <= 2000 for m in messages)
        assert 10 < len(messages) < 120
        numbers = [line.split('"n": ')[1].split(",")[0] for line in
                   lines_posted(discord_standin, "moderation")]
        assert numbers == [str(n) for n in range(120)]  # each once, in order
        assert not discord_standin.violations()

    def test_journals_go_to_their_own_webhooks(self, discord_standin):
        for journal in ("user", "moderation", "error"):
            log_event(category=journal, action=f"{journal}.thing")
        webhooks_deliver()
        for journal in ("user", "moderation", "error"):
            assert [f"{journal}.thing" in line for line in lines_posted(
                discord_standin, journal)] == [True]

    def test_mentions_are_suppressed(self, discord_standin, roles):
        pinger = UserFactory.create(username="@everyone")
        log_event(category="user", action="user.login", actor=pinger,
                  data={"note": "@here <@123456789012345678> <@&987654321098765432> @everyone"})
        webhooks_deliver()
        (message,) = discord_standin.messages("user")
        assert message.allowed_mentions == {"parse": []}
        assert message.pings == []
        # Even posted without allowed_mentions, the text forms no mention at all.
        assert pings(message.content, None) == []
        assert "@everyone" not in message.content and "<@1" not in message.content

    def test_user_text_cannot_break_the_line_or_its_code_spans(self, discord_standin):
        log_event(category="user", action="user.login",
                  data={"note": "a`b\nc\r\n**bold** ```"})
        webhooks_deliver()
        (line,) = lines_posted(discord_standin, "user")
        assert line.count("`") == 4  # the time's span and the data's span, nothing else
        assert "\n" not in line and "\r" not in line

    def test_429_is_waited_and_limits_are_kept(self, discord_standin):
        discord_standin.script(Fault.ratelimit(0.3), path="/webhooks/")
        for n in range(100):
            log_event(category="user", action="user.login", data={"n": n, "pad": "y" * 300})
        webhooks_deliver()
        assert len(lines_posted(discord_standin, "user")) == 100
        assert not discord_standin.violations()
        for retry_after, waited in discord_standin.waits_after_429():
            assert waited >= retry_after - 0.01

    def test_outage_keeps_lines_and_backs_off(self, discord_standin):
        for n in range(5):
            log_event(category="user", action="user.login", data={"n": n})
        discord_standin.fail_all(503)
        report = webhooks_deliver()
        assert report.stopped["user"] == "unavailable"
        assert WebhookOutbox.objects.count() == 5
        state = WebhookState.objects.get(journal="user")
        assert state.failures == 1 and "503" in state.last_error
        sent = len(discord_standin.served())
        assert webhooks_deliver().stopped["user"] == "backing off"
        assert len(discord_standin.served()) == sent
        discord_standin.fail_all(None)
        make_due()
        webhooks_deliver()
        assert len(lines_posted(discord_standin, "user")) == 5
        assert WebhookState.objects.get(journal="user").failures == 0

    def test_server_down_keeps_lines(self, discord_standin):
        log_event(category="moderation", action="user.ban")
        discord_standin.stop()
        webhooks_deliver()
        assert WebhookOutbox.objects.count() == 1
        discord_standin.start()
        make_due()
        webhooks_deliver()
        assert len(discord_standin.messages("moderation")) == 1

    def test_a_post_without_an_answer_is_never_sent_again(self, discord_standin):
        """A read timeout: Discord may have posted it. At most once: the next delivery names
        those entries in a note instead of posting them a second time."""
        entries = [log_event(category="user", action="user.login", data={"n": n})
                   for n in range(3)]
        discord_standin.script(Fault.slow(0.5), path="/webhooks/")
        with rest.discord_client(timeout=0.2) as client:
            report = webhooks_deliver(client=client)
        assert report.stopped == {"user": "unconfirmed"}
        assert len(discord_standin.served(group="webhook")) == 1  # not retried
        assert WebhookOutbox.objects.filter(posting_at__isnull=False).count() == 3
        time.sleep(0.5)  # the stand-in answers the slow request (too late for the client)
        log_event(category="user", action="user.logout")
        make_due()
        webhooks_deliver()
        lines = lines_posted(discord_standin, "user")
        for entry in entries:  # the slow answer did post them, once
            assert lines.count(journal_line(entry)) == 1
        note = (f"… a delivery was interrupted: 3 lines (journal entries #{entries[0].pk} to "
                f"#{entries[-1].pk}) may be missing above (see the journal in the admin)")
        assert lines.count(note) == 1
        assert any("user.logout" in line for line in lines)
        assert not WebhookOutbox.objects.exists()

    def test_a_refused_post_is_retried(self, discord_standin):
        log_event(category="user", action="user.login")
        discord_standin.script(*[Fault.server_error(503)] * 3, path="/webhooks/")
        assert webhooks_deliver().stopped == {"user": "unavailable"}
        assert WebhookOutbox.objects.filter(posting_at__isnull=True).count() == 1
        make_due()
        webhooks_deliver()
        assert len(lines_posted(discord_standin, "user")) == 1
        assert not any("interrupted" in m.content for m in discord_standin.messages("user"))

    def test_long_backlog_is_trimmed_with_a_note(self, discord_standin, monkeypatch):
        monkeypatch.setattr(webhooks, "BACKLOG_MAX", 5)
        for n in range(8):
            log_event(category="user", action="user.login", data={"n": n})
        report = webhooks_deliver()
        assert report.dropped == 3
        lines = lines_posted(discord_standin, "user")
        assert lines[0].startswith("… 3 older lines were not posted")
        assert len(lines) == 6 and lines[-1].endswith('`{"n": 7}`')

    def test_unset_url_drops_leftovers_without_a_request(self, discord_standin, settings):
        log_event(category="user", action="user.login")
        settings.WEBHOOK_URLS = dict.fromkeys(settings.WEBHOOK_URLS)
        webhooks_deliver()
        assert not WebhookOutbox.objects.exists() and not discord_standin.served()

    def test_task_entry_point(self, discord_standin):
        from core import tasks

        log_event(category="error", action="thing.failed")
        assert tasks.deliver_webhooks() == 1


@pytest.mark.django_db
class TestDisabling:
    def test_a_deleted_webhook_is_disabled_with_one_error_entry(self, discord_standin):
        discord_standin.delete_webhook("moderation")
        for n in range(3):
            log_event(category="moderation", action="user.ban", data={"n": n})
        log_event(category="user", action="user.login")
        report = webhooks_deliver()
        assert report.disabled == ["moderation"]
        state = WebhookState.objects.get(journal="moderation")
        assert state.disabled_at is not None and "10015" in state.disabled_reason
        errors = LogEntry.objects.filter(category="error")
        assert [(e.action, e.data["journal"]) for e in errors] == [
            ("webhook.disabled", "moderation")]
        assert len(discord_standin.messages("user")) == 1  # other journals unaffected
        # The error entry reaches the error channel in the same run.
        assert any("webhook.disabled" in line for line in lines_posted(discord_standin,
                                                                       "error"))
        # The dead webhook is not tried again.
        log_event(category="moderation", action="user.unban")
        tried = len(discord_standin.served(group="webhook"))
        webhooks_deliver()
        assert len(discord_standin.served(group="webhook")) == tried
        assert not WebhookOutbox.objects.filter(journal="moderation").exists()
        assert LogEntry.objects.filter(category="error").count() == 1

    def test_a_new_url_enables_delivery_again(self, discord_standin, settings):
        discord_standin.delete_webhook("moderation")
        log_event(category="moderation", action="user.ban")
        webhooks_deliver()
        settings.WEBHOOK_URLS = {**settings.WEBHOOK_URLS,
                                 "moderation": discord_standin.add_webhook("moderation-2")}
        log_event(category="moderation", action="user.unban")
        webhooks_deliver()
        assert [m.content.count("user.unban") for m in
                discord_standin.messages("moderation-2")] == [1]
        assert WebhookState.objects.get(journal="moderation").disabled_at is None

    def test_a_wrong_token_disables_too(self, discord_standin, settings):
        good = settings.WEBHOOK_URLS["user"]
        settings.WEBHOOK_URLS = {**settings.WEBHOOK_URLS, "user": good + "x"}
        log_event(category="user", action="user.login")
        assert webhooks_deliver().disabled == ["user"]
        assert LogEntry.objects.filter(action="webhook.disabled").count() == 1


@pytest.mark.django_db
def test_a_request_that_journals_never_waits_on_discord(discord_standin, roles):
    """Discord answering in 5 s would show in the request; it makes no request at all."""
    UserFactory.create(username="walker", role=roles["user"])
    discord_standin.slow_all(5.0)
    api = ApiClient()
    response = api.post("/api/auth/login", {"username": "walker",
                                            "password": "correct horse battery"})
    assert response.status_code == 200
    assert discord_standin.served() == []  # no HTTP during the request
    assert WebhookOutbox.objects.filter(journal="user").exists()
    discord_standin.slow_all(0)
    webhooks_deliver()
    assert any("user.login" in line for line in lines_posted(discord_standin, "user"))


def test_pack_lines_respects_the_limit():
    lines = [(i, "x" * 700) for i in range(7)]
    messages = pack_lines(lines)
    assert [ids for _, ids in messages] == [[0, 1], [2, 3], [4, 5], [6]]
    assert all(len(content) <= CONTENT_MAX for content, _ in messages)


@pytest.mark.django_db
def test_journal_line_shape(member, moderator):
    entry = log_event(category="moderation", action="user.ban", actor=moderator,
                      target=member, data={"reason": "spam"})
    line = journal_line(entry)
    assert "**user.ban** by `moderator` on `member` `{\"reason\": \"spam\"}`" in line
