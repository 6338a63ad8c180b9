"""The member pages served by Django (api/pages): access, CSP, forms, query counts, language."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.behaviour import Rate
from core.models import Invite, LicenseKey, Subscription, User
from core.services.bans import ban_create
from core.services.invites import invite_create
from core.services.keys import keys_generate
from core.services.licensing import hwid_digest
from core.services.releases import release_create, release_publish
from tests.factories import InviteFactory, ProductFactory, UserFactory

PASSWORD = "correct horse battery"
MEMBER_PAGES = ["/", "/invites", "/redeem", "/discord", "/download", "/machine", "/account"]
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


# A small DOM, enough to look at what the pages render (the standard library only).
@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    @property
    def text(self) -> str:
        own = "".join(self.parts)
        return " ".join((own + " " + " ".join(c.text for c in self.children)).split())

    def walk(self) -> list[Node]:
        found = [self]
        for child in self.children:
            found.extend(child.walk())
        return found

    def find_all(self, tag: str | None = None, *, cls: str | None = None,
                 **attrs: str) -> list[Node]:
        return [n for n in self.walk()
                if (tag is None or n.tag == tag) and (cls is None or cls in n.classes)
                and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def by_id(self, ident: str) -> Node | None:
        matches = [n for n in self.walk() if n.attrs.get("id") == ident]
        assert len(matches) <= 1, f"id {ident} is not unique"
        return matches[0] if matches else None


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v if v is not None else "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].parts.append(data)


def dom(response: Any) -> Node:
    builder = _Builder()
    builder.feed(response.content.decode())
    builder.close()
    return builder.root


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def _rates(settings: Any, **rates: Rate) -> None:
    settings.ZSPB = replace(settings.ZSPB, rate_limits={**settings.ZSPB.rate_limits, **rates})


def _subscribe(user: User, product: Any, *, days: float = 30, **extra: Any) -> Subscription:
    return Subscription.objects.create(user=user, product=product,
                                       expires_at=timezone.now() + timedelta(days=days), **extra)


# Access, headers and markup ----------------------------------------------------------------
@pytest.mark.django_db
class TestMemberPages:
    @pytest.mark.parametrize("path", MEMBER_PAGES)
    def test_anonymous_visitor_goes_to_the_login(self, client, path):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"] == f"/login?{urlencode({'next': path})}"

    def test_the_next_of_the_redirect_keeps_the_query(self, client):
        response = client.get("/invites?page=2")
        assert response["Location"] == "/login?" + urlencode({"next": "/invites?page=2"})

    @pytest.mark.parametrize("path", MEMBER_PAGES)
    def test_member_gets_the_page_under_a_strict_csp(self, member, product, path):
        _subscribe(member, product)
        invite_create(creator=member)
        response = logged_in(member).get(path)
        assert response.status_code == 200
        assert response["Cache-Control"] == "private, no-store"
        policy = {part.split()[0]: part.split()[1:]
                  for part in response["Content-Security-Policy"].split(";") if part.strip()}
        assert policy["script-src"] == ["'self'"]
        assert "'unsafe-inline'" not in policy.get("style-src", [])
        _assert_no_inline_code(dom(response))

    @pytest.mark.parametrize("path", ["/login", "/register"])
    def test_login_and_register_pages_too(self, client, db, path):
        response = client.get(path)
        assert response.status_code == 200
        assert "'unsafe-inline'" not in response["Content-Security-Policy"]
        _assert_no_inline_code(dom(response))

    @pytest.mark.parametrize("path", MEMBER_PAGES)
    def test_post_is_refused(self, member, path):
        assert logged_in(member).post(path).status_code == 405
        assert logged_in(member).head(path).status_code == 200

    def test_banned_member_is_sent_to_the_login(self, member, moderator):
        client = logged_in(member)
        ban_create(actor=moderator, user=member, reason="spam")
        response = client.get("/account")
        assert response.status_code == 302 and response["Location"].startswith("/login?")


def _assert_no_inline_code(page: Node) -> None:
    scripts = page.find_all("script")
    assert scripts, "every page loads its module"
    for script in scripts:
        assert script.attrs.get("src"), f"inline <script> found: {script.text[:80]!r}"
        assert not script.text.strip()
    assert not page.find_all("style"), "inline <style> found"
    for node in page.walk():
        assert "style" not in node.attrs, f"style= on <{node.tag}>"
        handlers = [name for name in node.attrs if name.startswith("on")]
        assert not handlers, f"inline handler {handlers} on <{node.tag}>"


# Query counts do not grow with the data ------------------------------------------------------
@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def _add_lots_of_data(member: User, staff: User) -> None:
    """30 subscriptions on 30 products (some expired, some bound, some recently reset), 60
    invites (used by other members, revoked, expired, unused), 40 redeemed keys."""
    now = timezone.now()
    products = [ProductFactory.create() for _ in range(30)]
    Subscription.objects.bulk_create([
        Subscription(user=member, product=p, expires_at=now + timedelta(days=i - 5),
                     hwid_digest=hwid_digest(f"pc-{i}") if i % 2 else "",
                     hwid_self_reset_at=now - timedelta(days=1) if i % 3 == 0 else None)
        for i, p in enumerate(products)
    ])
    for i in range(60):
        kind = i % 4
        if kind == 0:
            InviteFactory.create(created_by=member, status=Invite.Status.USED, used_at=now,
                                 used_by=UserFactory.create(invited_by=member))
        elif kind == 1:
            InviteFactory.create(created_by=member, status=Invite.Status.REVOKED,
                                 revoked_at=now)
        elif kind == 2:
            InviteFactory.create(created_by=member, created_at=now - timedelta(days=20))
        else:
            InviteFactory.create(created_by=member)
    batch: list[str] = []
    for product in products[:8]:
        batch.extend(keys_generate(actor=staff, product=product, duration=timedelta(days=3),
                                   count=5).codes)
    assert len(batch) == 40
    LicenseKey.objects.update(status=LicenseKey.Status.REDEEMED, redeemed_by=member,
                              redeemed_at=now)
    release = release_create(actor=staff, uploaded_file=SimpleUploadedFile("l.exe", b"MZ" * 50),
                             version="2.0.0", changelog="Faster.\nSmaller.")
    release_publish(actor=staff, release_id=release.pk, published=True)


def _count(client: Client, path: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200, path
    return len(queries)


@pytest.mark.django_db
def test_page_queries_do_not_grow_with_the_data(member, admin, product, media):
    """Acceptance: every member page costs the same number of queries with 1 subscription and
    1 invite as with 30 subscriptions, 60 invites, 40 redeemed keys and a release."""
    _subscribe(member, product, hwid_digest=hwid_digest("pc"))
    invite_create(creator=member)
    client = logged_in(member)
    pages = [*MEMBER_PAGES, "/invites?page=2"]
    for path in pages:  # warm up once (the session's first touch, translations, templates)
        client.get(path)
    small = {path: _count(client, path) for path in pages}
    _add_lots_of_data(member, admin)
    large = {path: _count(client, path) for path in pages}
    assert large == small, {p: (small[p], large[p]) for p in pages}
    # The session and the member, then each page's own: the dashboard reads the member with
    # every count in one query and the subscriptions in another (it was 8 in all before).
    assert small == {"/": 4, "/invites": 6, "/invites?page=2": 6, "/redeem": 2, "/discord": 2,
                     "/download": 4, "/machine": 3, "/account": 2}
    # The large data really is on the pages.
    assert len(dom(client.get("/")).find_all("li", cls="sub-card")) == 31
    assert len(dom(client.get("/invites")).find_all("tr", data_status="used")) > 0
    assert "2.0.0" in client.get("/download").content.decode()


# Login and logout -------------------------------------------------------------------------
@pytest.mark.django_db
class TestLoginPage:
    def test_member_logs_in_and_lands_on_the_dashboard(self, client, member):
        response = client.post("/login", {"username": "member", "password": PASSWORD})
        assert response.status_code == 302 and response["Location"] == "/"
        assert client.get("/").status_code == 200

    def test_staff_land_in_the_admin(self, client, moderator):
        response = client.post("/login?next=/invites",
                               {"username": "moderator", "password": PASSWORD})
        assert response.status_code == 302 and response["Location"] == "/admin/"

    def test_wrong_password(self, client, member):
        response = client.post("/login", {"username": "member", "password": "wrong one"})
        assert response.status_code == 200
        error = dom(response).by_id("form-error")
        assert error is not None and error.text == "Invalid username or password."
        assert "_auth_user_id" not in client.session

    def test_banned_member_with_the_right_password_is_told_why(self, client, member,
                                                             moderator):
        ends_at = timezone.now() + timedelta(days=3)
        ban_create(actor=moderator, user=member, reason="Selling keys", ends_at=ends_at)
        response = client.post("/login", {"username": "member", "password": PASSWORD})
        assert response.status_code == 403
        notice = dom(response).by_id("banned-notice")
        assert notice is not None and "Selling keys" in notice.text
        times = notice.find_all("time")
        assert [t.attrs["datetime"] for t in times] == [ends_at.isoformat()]
        assert "_auth_user_id" not in client.session
        assert client.get("/").status_code == 302

    def test_banned_member_with_a_wrong_password_learns_nothing(self, client, member,
                                                                moderator):
        ban_create(actor=moderator, user=member, reason="Selling keys")
        response = client.post("/login", {"username": "member", "password": "not it"})
        assert response.status_code == 200
        assert "Selling keys" not in response.content.decode()
        assert dom(response).by_id("banned-notice") is None

    def test_permanent_ban_says_it_has_no_end(self, client, member, moderator):
        ban_create(actor=moderator, user=member, reason="Cheating")
        response = client.post("/login", {"username": "member", "password": PASSWORD})
        assert response.status_code == 403
        assert "The ban has no end date." in response.content.decode()

    @pytest.mark.parametrize(("wanted", "landing"), [
        ("/invites", "/invites"),
        ("/machine?x=1", "/machine?x=1"),
        ("https://evil.example/", "/"),
        ("//evil.example/steal", "/"),
        ("http://testserver.evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("/\\evil.example", "/"),
    ])
    def test_next_is_honoured_only_for_local_urls(self, client, member, wanted, landing):
        response = client.post(f"/login?{urlencode({'next': wanted})}",
                               {"username": "member", "password": PASSWORD})
        assert response.status_code == 302 and response["Location"] == landing

    def test_next_travels_in_the_form(self, client, member):
        page = dom(client.get("/login?next=/redeem"))
        form = next(f for f in page.find_all("form") if f.find_all("input", name="password"))
        assert [h.attrs["value"] for h in form.find_all("input", name="next")] == ["/redeem"]
        response = client.post("/login", {"username": "member", "password": PASSWORD,
                                          "next": "/redeem"})
        assert response["Location"] == "/redeem"

    def test_logged_in_visitor_is_sent_on(self, member):
        response = logged_in(member).get("/login?next=/download")
        assert response.status_code == 302 and response["Location"] == "/download"

    def test_login_ip_throttle(self, client, member, settings):
        _rates(settings, login_ip=Rate(count=3, seconds=600))
        for attempt in range(3):
            response = client.post("/login", {"username": f"nobody{attempt}", "password": "x"},
                                   REMOTE_ADDR="203.0.113.7")
            assert "Invalid username or password." in response.content.decode()
        refused = client.post("/login", {"username": "member", "password": PASSWORD},
                              REMOTE_ADDR="203.0.113.7")
        assert refused.status_code == 200
        assert "Too many attempts; try again later." in refused.content.decode()
        assert "_auth_user_id" not in client.session
        # Another address is not held back.
        other = client.post("/login", {"username": "member", "password": PASSWORD},
                            REMOTE_ADDR="203.0.113.8")
        assert other.status_code == 302

    def test_repeated_failures_lock_the_login(self, client, member, settings):
        settings.AXES_FAILURE_LIMIT = 3
        for _ in range(2):
            client.post("/login", {"username": "member", "password": "nope"})
        locked = client.post("/login", {"username": "member", "password": "nope"})
        assert locked.status_code == 429 and locked["Retry-After"]
        assert "Too many failed logins" in locked.content.decode()
        # The login page itself, with the reason above the form, the username kept.
        assert 'id="login-submit"' in locked.content.decode()
        assert 'value="member"' in locked.content.decode()
        right = client.post("/login", {"username": "member", "password": PASSWORD})
        assert right.status_code == 429 and "_auth_user_id" not in client.session
        # The lock is per username and address: the member elsewhere is not locked out.
        elsewhere = Client().post("/login", {"username": "member", "password": PASSWORD},
                                  REMOTE_ADDR="203.0.113.99")
        assert elsewhere.status_code == 302

    def test_logout_ends_the_session(self, client, member):
        client.post("/login", {"username": "member", "password": PASSWORD})
        assert client.get("/").status_code == 200
        assert client.get("/logout").status_code == 405
        assert client.get("/").status_code == 200
        response = client.post("/logout")
        assert response.status_code == 302 and response["Location"] == "/login"
        assert client.get("/").status_code == 302

    def test_logout_needs_csrf(self, member):
        client = Client(enforce_csrf_checks=True)
        client.force_login(member, backend="django.contrib.auth.backends.ModelBackend")
        assert client.post("/logout").status_code == 403
        assert client.get("/").status_code == 200

    def test_member_in_the_staff_login_goes_home(self, member):
        response = logged_in(member).get("/admin/login/")
        assert response.status_code == 302 and response["Location"] == "/"


# Registration -----------------------------------------------------------------------------
@pytest.mark.django_db
class TestRegisterPage:
    def test_invite_link_prefills_and_registers(self, client, admin):
        invite = invite_create(creator=admin)
        page = client.get(f"/register?invite={invite.code}")
        assert page.status_code == 200 and invite.code in page.content.decode()
        response = client.post("/register", {"invite": invite.code, "username": "newbie",
                                              "password": "a fine passphrase"},
                               REMOTE_ADDR="198.51.100.20")
        assert response.status_code == 302
        user = User.objects.get(username="newbie")
        assert user.invited_by == admin and user.registration_ip == "198.51.100.20"
        assert "newbie" in client.get("/").content.decode()

    def test_errors_are_shown_and_nothing_is_lost(self, client, admin):
        invite = invite_create(creator=admin)
        weak = client.post("/register", {"invite": invite.code, "username": "newbie",
                                          "password": "123"})
        assert weak.status_code == 200 and "too short" in weak.content.decode()
        assert 'value="newbie"' in weak.content.decode()
        bad = client.post("/register", {"invite": "INV-NOPE", "username": "newbie",
                                         "password": "a fine passphrase"})
        assert "not valid" in bad.content.decode()
        assert Invite.objects.get().status == "active"

    @staticmethod
    def _errors(response: Any) -> dict[str, str]:
        """Field name -> the error text shown inside that field's block."""
        assert response.status_code == 200
        page = dom(response)
        found = {}
        for block in page.find_all("div", cls="field"):
            errors = block.find_all("ul", cls="field-errors")
            if errors:
                control = (block.find_all("input") + block.find_all("select"))[0]
                found[control.attrs["name"]] = errors[0].text
                assert errors[0].attrs["id"] == f"id_{control.attrs['name']}_error"
        assert page.by_id("form-error") is None, "field errors belong next to their fields"
        return found

    def test_invalid_invite_is_shown_under_the_invite(self, client, admin):
        response = client.post("/register", {"invite": "INV-AAAAA-BBBBB-CCCCC-DDDDD",
                                              "username": "newbie",
                                              "password": "a fine passphrase"})
        errors = self._errors(response)
        assert list(errors) == ["invite"] and "not valid" in errors["invite"]

    def test_weak_password_is_shown_under_the_password(self, client, admin):
        invite = invite_create(creator=admin)
        response = client.post("/register", {"invite": invite.code, "username": "newbie",
                                              "password": "password"})
        errors = self._errors(response)
        assert list(errors) == ["password"]
        assert "too short" in errors["password"] and "too common" in errors["password"]

    def test_taken_username_is_shown_under_the_username(self, client, admin, member):
        invite = invite_create(creator=admin)
        response = client.post("/register", {"invite": invite.code, "username": "MEMBER",
                                              "password": "a fine passphrase"})
        errors = self._errors(response)
        assert list(errors) == ["username"] and "taken" in errors["username"]
        assert Invite.objects.get(pk=invite.pk).status == "active"

    def test_bad_username_and_email_under_their_fields(self, client, admin):
        invite = invite_create(creator=admin)
        response = client.post("/register", {"invite": invite.code, "username": "a b",
                                              "email": "nope", "password": "a fine passphrase"})
        errors = self._errors(response)
        assert set(errors) == {"email"}  # the form's own check comes first
        response = client.post("/register", {"invite": invite.code, "username": "a b",
                                              "password": "a fine passphrase"})
        assert set(self._errors(response)) == {"username"}

    def test_email_is_marked_optional(self, client, db):
        page = dom(client.get("/register"))
        labels = {label.attrs["for"]: label for label in page.find_all("label")}
        assert "(optional)" in labels["id_email"].text
        for name in ("id_invite", "id_username", "id_password"):
            assert "(optional)" not in labels[name].text

    def test_register_ip_throttle(self, client, admin, settings):
        _rates(settings, register_ip=Rate(count=2, seconds=3600))
        for _ in range(2):
            client.post("/register", {"invite": "INV-NOPE", "username": "newbie",
                                      "password": "a fine passphrase"},
                        REMOTE_ADDR="203.0.113.9")
        invite = invite_create(creator=admin)
        refused = client.post("/register", {"invite": invite.code, "username": "newbie",
                                             "password": "a fine passphrase"},
                              REMOTE_ADDR="203.0.113.9")
        assert refused.status_code == 200
        error = dom(refused).by_id("form-error")
        assert error is not None and "Too many attempts" in error.text
        assert not User.objects.filter(username="newbie").exists()
        accepted = client.post("/register", {"invite": invite.code, "username": "newbie",
                                              "password": "a fine passphrase"},
                               REMOTE_ADDR="203.0.113.10")
        assert accepted.status_code == 302


# What the pages show ----------------------------------------------------------------------
@pytest.mark.django_db
class TestInvitesPage:
    def test_status_of_each_kind_of_invite(self, member):
        now = timezone.now()
        unused = InviteFactory.create(created_by=member, created_at=now - timedelta(minutes=4))
        used = InviteFactory.create(created_by=member, created_at=now - timedelta(minutes=3),
                                    status=Invite.Status.USED, used_at=now,
                                    used_by=UserFactory.create(username="joiner"))
        expired = InviteFactory.create(created_by=member, created_at=now - timedelta(days=9))
        revoked = InviteFactory.create(created_by=member, created_at=now - timedelta(minutes=1),
                                       status=Invite.Status.REVOKED, revoked_at=now)
        page = dom(logged_in(member).get("/invites"))
        rows = {int(r.attrs["data-invite"]): r for r in page.find_all("tr")
                if "data-invite" in r.attrs}
        assert {pk: r.attrs["data-status"] for pk, r in rows.items()} == {
            unused.pk: "active", used.pk: "used", expired.pk: "expired", revoked.pk: "revoked"}
        badge = {pk: r.find_all("span", cls="badge")[0].text for pk, r in rows.items()}
        assert badge == {unused.pk: "unused", used.pk: "used", expired.pk: "expired",
                         revoked.pk: "revoked"}
        assert "by joiner" in rows[used.pk].text
        # Only the unused invite offers its link and a revoke button.
        assert unused.code in rows[unused.pk].text
        for other in (used, expired, revoked):
            assert other.code not in rows[other.pk].text
            assert not rows[other.pk].find_all("button")
        assert rows[unused.pk].find_all("button", data_api=f"POST /api/invites/{unused.pk}/revoke")

    def test_pages_beyond_twenty(self, member):
        now = timezone.now()
        invites = [InviteFactory.create(created_by=member, created_at=now - timedelta(minutes=i))
                   for i in range(25)]
        client = logged_in(member)
        first = dom(client.get("/invites"))
        first_ids = [int(r.attrs["data-invite"]) for r in first.find_all("tr")
                     if "data-invite" in r.attrs]
        assert first_ids == [i.pk for i in invites[:20]]
        assert first.find_all("a", href="?page=2")
        second = dom(client.get("/invites?page=2"))
        second_ids = [int(r.attrs["data-invite"]) for r in second.find_all("tr")
                      if "data-invite" in r.attrs]
        assert second_ids == [i.pk for i in invites[20:]]
        assert second.find_all("a", href="?page=1") and "Page 2 of 2" in second.text
        # Out of range or nonsense falls back to a page that exists.
        assert client.get("/invites?page=99").status_code == 200
        assert client.get("/invites?page=abc").status_code == 200

    def test_quota_and_no_invites(self, member):
        page = dom(logged_in(member).get("/invites"))
        assert "2 of 2 invites left this month." in page.by_id("quota-text").text
        assert page.by_id("invite-create") is not None
        assert page.by_id("invite-table") is None


@pytest.mark.django_db
class TestDashboard:
    def test_countdown_per_subscription_and_expired_marked(self, member):
        live = _subscribe(member, ProductFactory.create(slug="live"), days=3)
        gone = _subscribe(member, ProductFactory.create(slug="gone"), days=-2)
        page = dom(logged_in(member).get("/"))
        cards = {c.attrs["data-product"]: c for c in page.find_all("li", cls="sub-card")}
        assert set(cards) == {"live", "gone"}
        assert "is-expired" not in cards["live"].classes
        assert "is-expired" in cards["gone"].classes
        for slug, sub in (("live", live), ("gone", gone)):
            timers = cards[slug].find_all(cls="countdown")
            assert len(timers) == 1
            assert timers[0].attrs["data-expires"] == sub.expires_at.isoformat()
        assert cards["gone"].find_all(cls="countdown")[0].text == "Expired"
        assert cards["live"].find_all(cls="countdown")[0].text.startswith("2d 23h")
        assert page.find_all("body")[0].attrs["data-server-now"]
        assert page.by_id("stat-days").text == "2"

    def test_no_subscription(self, member):
        page = dom(logged_in(member).get("/"))
        assert not page.find_all(cls="countdown")
        assert "You have no subscription yet." in page.text


@pytest.mark.django_db
class TestMachinePage:
    def test_bound_unbound_and_cooldown(self, member):
        now = timezone.now()
        _subscribe(member, ProductFactory.create(slug="free-pc"))
        _subscribe(member, ProductFactory.create(slug="bound"), hwid_digest=hwid_digest("a"))
        _subscribe(member, ProductFactory.create(slug="waiting"), hwid_digest=hwid_digest("b"),
                   hwid_self_reset_at=now - timedelta(days=1))
        page = dom(logged_in(member).get("/machine"))
        cards = {c.attrs["data-product"]: c for c in page.find_all("li")
                 if "data-product" in c.attrs}
        assert "No machine bound" in cards["free-pc"].text
        assert cards["bound"].find_all(
            "button", data_api="POST /api/subscriptions/bound/reset-machine")
        assert not cards["waiting"].find_all("button")
        assert cards["waiting"].find_all(cls="cooldown")

    def test_staff_only_resets(self, member, settings):
        settings.ZSPB = replace(settings.ZSPB, hwid_self_reset_cooldown_days=0)
        _subscribe(member, ProductFactory.create(slug="bound"), hwid_digest=hwid_digest("a"))
        page = dom(logged_in(member).get("/machine"))
        assert not page.find_all("button", cls="btn-danger")
        assert "only the staff can reset it" in page.text


@pytest.mark.django_db
class TestDiscordAndDownloadPages:
    def test_discord_page_states(self, member, settings):
        client = logged_in(member)
        unlinked = dom(client.get("/discord"))
        assert unlinked.by_id("link-form") is not None and unlinked.by_id("discord-unlink") is None
        assert "Discord is not connected" in unlinked.text
        User.objects.filter(pk=member.pk).update(discord_id=555_000_000_000_000_001,
                                                 discord_username="walker_dc")
        linked = dom(client.get("/discord"))
        assert "walker_dc" in linked.by_id("discord-linked").text
        assert linked.by_id("discord-unlink") is not None and linked.by_id("link-form") is None
        assert linked.by_id("discord-resync") is None  # Discord off: nothing to resync
        settings.DISCORD_ENABLED, settings.DISCORD_BOT_TOKEN = True, "token"
        settings.DISCORD_GUILD_ID = 1
        on = dom(client.get("/discord"))
        assert on.by_id("discord-resync") is not None
        assert "Discord is not connected" not in on.text

    def test_download_page_states(self, member, admin, product, media):
        client = logged_in(member)
        assert dom(client.get("/download")).by_id("no-release") is not None
        release = release_create(actor=admin, uploaded_file=SimpleUploadedFile("l.exe", b"MZ"),
                                 version="1.2.3", changelog="")
        release_publish(actor=admin, release_id=release.pk, published=True)
        page = dom(client.get("/download"))
        assert page.by_id("release-version").text == "1.2.3"
        assert page.by_id("no-subscription") is not None and page.by_id("download-button") is None
        _subscribe(member, product, days=-1)
        assert dom(client.get("/download")).by_id("download-button") is None
        Subscription.objects.update(expires_at=timezone.now() + timedelta(days=1))
        page = dom(client.get("/download"))
        assert page.by_id("download-button") is not None and page.by_id("no-subscription") is None


# Language ---------------------------------------------------------------------------------
@pytest.mark.django_db
class TestLanguage:
    def test_accept_language_picks_russian(self, client):
        response = client.get("/login", HTTP_ACCEPT_LANGUAGE="ru-RU,ru;q=0.9,en;q=0.5")
        assert response["Content-Language"] == "ru"
        assert dom(response).find_all("html")[0].attrs["lang"] == "ru"
        english = Client().get("/login", HTTP_ACCEPT_LANGUAGE="en")
        assert dom(english).find_all("html")[0].attrs["lang"] == "en"

    def test_set_language_is_remembered(self, member):
        client = logged_in(member)
        response = client.post("/i18n/setlang/", {"language": "ru", "next": "/account"})
        assert response.status_code == 302 and response["Location"] == "/account"
        cookie = client.cookies[django_settings.LANGUAGE_COOKIE_NAME]
        assert cookie.value == "ru"
        for path in ("/", "/account", "/invites"):
            later = client.get(path, HTTP_ACCEPT_LANGUAGE="en")
            assert later["Content-Language"] == "ru"
            assert dom(later).find_all("html")[0].attrs["lang"] == "ru"
        client.post("/logout")
        assert dom(client.get("/login")).find_all("html")[0].attrs["lang"] == "ru"

    def test_unknown_language_is_ignored(self, client, db):
        client.post("/i18n/setlang/", {"language": "xx", "next": "/login"})
        assert dom(client.get("/login")).find_all("html")[0].attrs["lang"] == "en"


def test_client_ip_ignores_spoofed_forwarded_for(rf, settings):
    from api.net import client_ip

    settings.NUM_PROXIES = 1
    request = rf.get("/", REMOTE_ADDR="10.0.0.1",
                     HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9")
    assert client_ip(request) == "203.0.113.9"
    settings.NUM_PROXIES = 0
    assert client_ip(request) == "10.0.0.1"
