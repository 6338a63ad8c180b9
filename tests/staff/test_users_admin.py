"""The members admin: search, filters, every action through the changelist (intermediate forms
and confirmations included), the protected change form, the invite tree and branch actions,
and a changelist whose query count does not grow with the rows."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.hashers import make_password
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.models import Ban, Invite, LogEntry, RoleSyncRequest, Subscription, User
from core.selectors.users import invite_branch_ids, invite_tree
from core.services.bans import ban_create
from tests.factories import InviteFactory, UserFactory

USERS = "/admin/core/user/"


def act(client: Client, action: str, users: list[User], **form: object):
    return client.post(USERS, {"action": action, "_selected_action": [u.pk for u in users],
                               **form})


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


@pytest.fixture
def victim(roles) -> User:
    return UserFactory.create(username="victim", role=roles["user"], discord_id=42,
                              discord_username="victim#42")


# --- Ban / unban ------------------------------------------------------------------------------

@pytest.mark.django_db
def test_ban_asks_for_reason_and_duration_then_bans(staff_client, victim):
    support = staff_client("support")
    page = act(support, "ban_users", [victim])
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="reason"' in html and 'name="duration"' in html
    assert 'value="ban_users"' in html and f'name="_selected_action" value="{victim.pk}"' in html
    assert re.search(r'<button type="submit"[^>]*>\s*Ban\s*</button>', html)
    assert not Ban.objects.exists()

    missing = act(support, "ban_users", [victim], apply="1", reason="", duration="7d")
    assert missing.status_code == 200 and not Ban.objects.exists()

    done = act(support, "ban_users", [victim], apply="1", reason="cheating", duration="7d")
    assert done.status_code == 302
    ban = Ban.objects.get(user=victim)
    assert ban.reason == "cheating" and ban.author == support.user
    assert ban.ends_at is not None
    assert timedelta(days=6, hours=23) < ban.ends_at - timezone.now() <= timedelta(days=7)
    victim.refresh_from_db()
    assert not victim.is_active
    assert LogEntry.objects.get(action="user.ban").target == victim


@pytest.mark.django_db
def test_ban_permanent_and_rank_refusals_are_reported(staff_client, staff_user, victim):
    peer = staff_user("support", "peer")
    support = staff_client("support")
    response = support.post(USERS, {"action": "ban_users", "apply": "1", "reason": "raid",
                                    "duration": "", "_selected_action": [victim.pk, peer.pk]},
                            follow=True)
    assert Ban.objects.get(user=victim).ends_at is None
    assert not Ban.objects.filter(user=peer).exists()
    shown = messages_of(response)
    assert any("Banned 1 members" in m for m in shown), shown
    assert any("ranked below your own" in m and "peer" in m for m in shown), shown
    assert LogEntry.objects.filter(action="user.ban").count() == 1


@pytest.mark.django_db
def test_unban(staff_client, admin, victim):
    ban_create(actor=admin, user=victim, reason="x")
    client = staff_client("support")
    # First a confirmation page naming the members; nothing changes yet.
    confirm = act(client, "unban_users", [victim])
    assert confirm.status_code == 200 and b'name="apply"' in confirm.content
    assert b"victim" in confirm.content
    victim.refresh_from_db()
    assert not victim.is_active
    assert act(client, "unban_users", [victim], apply="1").status_code == 302
    victim.refresh_from_db()
    assert victim.is_active
    assert Ban.objects.get(user=victim).lifted_by == client.user


@pytest.mark.django_db
def test_member_actions_from_the_change_page(staff_client, victim):
    support = staff_client("support")
    page = support.get(f"{USERS}{victim.pk}/change/").content.decode()
    assert f"{USERS}{victim.pk}/member-ban-users/" in page
    assert "member-delete-users" not in page  # Admin only: not offered
    ban_url = f"{USERS}{victim.pk}/member-ban-users/"
    form_page = support.get(ban_url)
    assert form_page.status_code == 200 and b'name="reason"' in form_page.content
    assert f'action="{ban_url}"'.encode() in form_page.content
    done = support.post(ban_url, {"apply": "1", "reason": "from the page", "duration": "1d"})
    assert done.status_code == 302 and done["Location"] == f"{USERS}{victim.pk}/change/"
    assert Ban.objects.get(user=victim).reason == "from the page"

    # A no-input action asks first: a GET never changes anything.
    unban_url = f"{USERS}{victim.pk}/member-unban-users/"
    assert support.get(unban_url).status_code == 200
    victim.refresh_from_db()
    assert not victim.is_active
    assert support.post(unban_url, {"apply": "1"}).status_code == 302
    victim.refresh_from_db()
    assert victim.is_active

    assert support.get(f"{USERS}{victim.pk}/member-delete-users/").status_code == 403
    admin = staff_client("admin")
    delete_url = f"{USERS}{victim.pk}/member-delete-users/"
    assert b"cannot be" in admin.get(delete_url).content
    gone = admin.post(delete_url, {"apply": "1"})
    assert gone["Location"] == USERS
    assert not User.objects.filter(pk=victim.pk).exists()


# --- Role ---------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_change_role_offers_only_lower_roles_and_applies(staff_client, roles, victim):
    moderator = staff_client("moderator")
    page = act(moderator, "change_role", [victim]).content.decode()
    assert f'value="{roles["support"].pk}"' in page
    assert f'value="{roles["moderator"].pk}"' not in page
    assert f'value="{roles["admin"].pk}"' not in page

    refused = act(moderator, "change_role", [victim], apply="1", role=roles["admin"].pk)
    assert refused.status_code == 200  # not a valid choice
    victim.refresh_from_db()
    assert victim.role == roles["user"]

    assert act(moderator, "change_role", [victim], apply="1",
               role=roles["support"].pk).status_code == 302
    victim.refresh_from_db()
    assert victim.role == roles["support"] and victim.is_staff
    assert LogEntry.objects.get(action="user.set_role").data == {"from": "user", "to": "support"}


@pytest.mark.django_db
def test_change_role_of_a_higher_member_is_refused(staff_client, staff_user, roles):
    boss = staff_user("admin", "boss")
    moderator = staff_client("moderator")
    response = act(moderator, "change_role", [boss], apply="1", role=roles["user"].pk)
    assert response.status_code == 302
    boss.refresh_from_db()
    assert boss.role == roles["admin"]
    follow = moderator.get(USERS)
    assert any("ranked below your own" in m for m in messages_of(follow))


# --- Sessions, Discord, HWID ------------------------------------------------------------------

@pytest.mark.django_db
def test_end_sessions_logs_the_member_out(staff_client, victim):
    member_client = Client()
    member_client.force_login(victim, backend="django.contrib.auth.backends.ModelBackend")
    assert member_client.get("/api/me").status_code in (200, 404)
    assert "_auth_user_id" in member_client.session
    moderator = staff_client("moderator")
    assert act(moderator, "end_sessions", [victim]).status_code == 200  # asks first
    victim.refresh_from_db()
    assert victim.session_epoch == 0
    assert act(moderator, "end_sessions", [victim], apply="1").status_code == 302
    victim.refresh_from_db()
    assert victim.session_epoch == 1
    member_client.get("/")
    assert "_auth_user_id" not in member_client.session
    assert LogEntry.objects.filter(action="user.end_sessions", target=victim).exists()


@pytest.mark.django_db
def test_resync_discord_queues_a_role_sync(staff_client, victim):
    moderator = staff_client("moderator")
    assert act(moderator, "resync_discord", [victim]).status_code == 200  # asks first
    assert not RoleSyncRequest.objects.filter(user=victim).exists()
    assert act(moderator, "resync_discord", [victim], apply="1").status_code == 302
    assert RoleSyncRequest.objects.get(user=victim).reason == "staff_resync"
    assert LogEntry.objects.filter(action="user.resync_discord").exists()


@pytest.mark.django_db
def test_reset_hwid_clears_every_subscription(staff_client, victim, product):
    now = timezone.now()
    sub = Subscription.objects.create(user=victim, product=product, started_at=now,
                                      expires_at=now + timedelta(days=3), hwid_digest="f" * 64)
    moderator = staff_client("moderator")
    assert act(moderator, "reset_hwid", [victim]).status_code == 200  # asks first
    sub.refresh_from_db()
    assert sub.hwid_digest == "f" * 64
    assert act(moderator, "reset_hwid", [victim], apply="1").status_code == 302
    sub.refresh_from_db()
    assert sub.hwid_digest == ""
    assert LogEntry.objects.get(action="subscription.reset_hwid").target == victim


@pytest.mark.django_db
def test_support_cannot_run_manager_actions(staff_client, victim):
    support = staff_client("support")
    for name in ("change_role", "end_sessions", "resync_discord", "reset_hwid",
                 "set_password", "delete_users", "reset_two_factor"):
        response = act(support, name, [victim], apply="1")
        assert response.status_code in (200, 302)
        assert b'name="apply"' not in response.content
    assert not LogEntry.objects.filter(category="moderation").exclude(action="roles.sync").exists()
    assert User.objects.filter(pk=victim.pk).exists()


# --- Password -----------------------------------------------------------------------------------

@pytest.mark.django_db
def test_set_password_admin_only_one_member_validated(staff_client, victim, member):
    admin = staff_client("admin")
    two = act(admin, "set_password", [victim, member])
    assert two.status_code == 302
    page = act(admin, "set_password", [victim])
    assert b'name="password1"' in page.content

    differ = act(admin, "set_password", [victim], apply="1", password1="x" * 12,
                 password2="y" * 12)
    assert b"The two passwords differ" in differ.content
    weak = act(admin, "set_password", [victim], apply="1", password1="12345678901",
               password2="12345678901")
    assert weak.status_code == 200 and b"numeric" in weak.content

    new = "a much better passphrase"
    done = act(admin, "set_password", [victim], apply="1", password1=new, password2=new)
    assert done.status_code == 302
    victim.refresh_from_db()
    assert victim.check_password(new) and victim.session_epoch == 1
    entry = LogEntry.objects.get(action="user.set_password")
    assert entry.data == {} and new not in str(entry.data)

    moderator = staff_client("moderator")
    act(moderator, "set_password", [member], apply="1", password1=new, password2=new)
    member.refresh_from_db()
    assert not member.check_password(new)


# --- Delete -----------------------------------------------------------------------------------

@pytest.mark.django_db
def test_delete_asks_for_confirmation_then_deletes_and_journals(staff_client, victim):
    admin = staff_client("admin")
    page = act(admin, "delete_users", [victim])
    assert page.status_code == 200
    assert b"cannot be" in page.content and b"victim" in page.content
    assert User.objects.filter(pk=victim.pk).exists()

    done = act(admin, "delete_users", [victim], apply="1")
    assert done.status_code == 302
    assert not User.objects.filter(pk=victim.pk).exists()
    entry = LogEntry.objects.get(action="user.delete")
    assert entry.target is None and entry.target_name == "victim"
    assert entry.data["username"] == "victim" and entry.data["discord_id"] == "42"


@pytest.mark.django_db
def test_delete_is_admin_only_and_follows_rank(staff_client, staff_user, victim):
    moderator = staff_client("moderator")
    act(moderator, "delete_users", [victim], apply="1")
    assert User.objects.filter(pk=victim.pk).exists()
    peer = staff_user("admin", "peer_admin")
    admin = staff_client("admin")
    act(admin, "delete_users", [peer], apply="1")
    assert User.objects.filter(pk=peer.pk).exists()
    # The default bulk delete is gone: deletion only through the journaling service.
    page = admin.get(USERS).content.decode()
    assert 'value="delete_selected"' not in page
    assert admin.get(f"{USERS}{victim.pk}/delete/").status_code == 403


# --- The change form --------------------------------------------------------------------------

@pytest.mark.django_db
def test_change_form_edits_profile_only_through_the_service(staff_client, roles, victim):
    moderator = staff_client("moderator")
    url = f"{USERS}{victim.pk}/change/"
    page = moderator.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="email"' in html and 'name="can_invite"' in html
    for forbidden in ("role", "is_staff", "is_superuser", "password"):
        assert f'name="{forbidden}"' not in html

    response = moderator.post(url, {"email": "new@example.test", "first_name": "V",
                                    "last_name": "", "can_invite": "on",
                                    "role": roles["admin"].pk, "is_staff": "on",
                                    "is_superuser": "on", "password": "x"})
    assert response.status_code == 302, response.content[:2000]
    victim.refresh_from_db()
    assert victim.email == "new@example.test"
    assert victim.role == roles["user"] and not victim.is_staff and not victim.is_superuser
    assert victim.check_password("correct horse battery")
    entry = LogEntry.objects.get(action="user.update")
    assert entry.data["changes"]["email"] == ["victim@example.test", "new@example.test"]


@pytest.mark.django_db
def test_change_form_is_read_only_for_equal_or_higher_rank(staff_client, staff_user):
    boss = staff_user("admin", "boss")
    moderator = staff_client("moderator")
    url = f"{USERS}{boss.pk}/change/"
    page = moderator.get(url)
    assert page.status_code == 200 and b'name="email"' not in page.content
    assert moderator.post(url, {"email": "hijack@example.test"}).status_code == 403
    own = moderator.get(f"{USERS}{moderator.user.pk}/change/")
    assert b'name="email"' not in own.content
    support = staff_client("support")
    assert support.post(f"{USERS}{staff_user('user', 'plain').pk}/change/",
                        {"email": "a@b.test"}).status_code == 403


# --- Search and filters -------------------------------------------------------------------------

@pytest.fixture
def crowd(roles, admin):
    alice = UserFactory.create(username="alice", invited_by=admin, discord_id=7,
                               discord_username="ally")
    bob = UserFactory.create(username="bob", email="bob@corp.test", invited_by=alice)
    carol = UserFactory.create(username="carol", role=roles["support"], invited_by=alice)
    ban_create(actor=admin, user=bob, reason="spam")
    return {"alice": alice, "bob": bob, "carol": carol}


def listed(client: Client, query: str) -> set[str]:
    response = client.get(USERS + query)
    assert response.status_code == 200, response.content[:500]
    return {u.username for u in response.context["cl"].result_list}


@pytest.mark.django_db
def test_search_and_filters(staff_client, crowd, roles):
    client = staff_client("support")
    assert listed(client, "?q=ally") == {"alice"}
    assert listed(client, "?q=corp.test") == {"bob"}
    assert listed(client, "?banned=yes") == {"bob"}
    assert "bob" not in listed(client, "?banned=no")
    assert listed(client, "?discord=yes") == {"alice"}
    assert "alice" not in listed(client, "?discord=no")
    assert listed(client, f"?role__id__exact={roles['support'].pk}") >= {"carol"}
    assert listed(client, f"?invited_by__id__exact={crowd['alice'].pk}") == {"bob", "carol"}
    # The "invited by" filter is an autocomplete, not a dropdown of every member.
    page = client.get(USERS).content.decode()
    assert "admin-autocomplete" in page or "autocomplete" in page
    assert page.count('<option value="') < 30


# --- Invite tree and branch actions -------------------------------------------------------------

@pytest.fixture
def branch(roles, admin):
    root = UserFactory.create(username="root_member", invited_by=admin)
    kid1 = UserFactory.create(username="kid1", invited_by=root)
    kid2 = UserFactory.create(username="kid2", invited_by=root, role=roles["moderator"])
    grandkid = UserFactory.create(username="grandkid", invited_by=kid1)
    return {"root": root, "kid1": kid1, "kid2": kid2, "grandkid": grandkid}


@pytest.mark.django_db
def test_invite_tree_on_the_change_page(staff_client, branch, admin):
    page = staff_client("support").get(f"{USERS}{branch['kid1'].pk}/change/").content.decode()
    tree = page[page.index('id="invite-tree"'):]
    assert tree.index("admin") < tree.index("root_member") < tree.index("kid1")
    assert "grandkid" in tree and "kid2" not in tree
    full = invite_tree(user_id=branch["root"].pk)
    assert [n.username for n in full.descendants] == ["kid1", "grandkid", "kid2"]
    assert [n.depth for n in full.descendants] == [1, 2, 1]
    assert [n.username for n in full.ancestors] == ["admin"]


@pytest.mark.django_db
def test_invite_tree_is_bounded(roles):
    parent = UserFactory.create(username="chain0")
    root = parent
    for i in range(1, 12):
        parent = UserFactory.create(username=f"chain{i}", invited_by=parent)
    tree = invite_tree(user_id=root.pk, max_depth=4)
    assert len(tree.descendants) == 4 and tree.truncated
    wide = UserFactory.create(username="wide")
    User.objects.bulk_create([User(username=f"w{i}", invited_by=wide, password="!")
                              for i in range(30)])
    assert invite_tree(user_id=wide.pk, max_nodes=10).size == 10
    branch = invite_branch_ids(root_id=wide.pk, max_size=10)
    assert len(branch.ids) == 11 and branch.truncated


@pytest.mark.django_db
def test_disable_inviting_for_a_branch(staff_client, branch):
    moderator = staff_client("moderator")
    url = f"{USERS}{branch['root'].pk}/branch-disable-invites/"
    page = moderator.get(url)
    assert page.status_code == 200 and b"3 members below" in page.content
    done = moderator.post(url, {"apply": "1"}, follow=True)
    assert done.status_code == 200
    flags = dict(User.objects.filter(pk__in=[u.pk for u in branch.values()])
                 .values_list("username", "can_invite"))
    # kid2 is a moderator like the actor: skipped.
    assert flags == {"root_member": False, "kid1": False, "grandkid": False, "kid2": True}
    shown = " ".join(messages_of(done))
    assert "3 members" in shown and "1 member skipped" in shown
    entry = LogEntry.objects.get(action="invites.branch_disable")
    assert entry.data["changed"] == 3 and entry.data["skipped"] == 1


@pytest.mark.django_db
def test_ban_a_branch(staff_client, branch):
    support = staff_client("support")
    url = f"{USERS}{branch['root'].pk}/branch-ban/"
    assert b'name="reason"' in support.get(url).content
    assert not Ban.objects.exists()
    done = support.post(url, {"apply": "1", "reason": "bot farm", "duration": ""}, follow=True)
    banned = set(Ban.objects.values_list("user__username", flat=True))
    assert banned == {"root_member", "kid1", "grandkid"}
    assert "Banned 3 members" in " ".join(messages_of(done))
    assert LogEntry.objects.get(action="users.branch_ban").data["skipped"] == 1
    again = support.post(url, {"apply": "1", "reason": "bot farm"}, follow=True)
    assert "3 members were already banned" in " ".join(messages_of(again))


@pytest.mark.django_db
def test_branch_actions_need_their_capability(staff_client, branch):
    support = staff_client("support")
    assert support.get(f"{USERS}{branch['root'].pk}/branch-disable-invites/").status_code == 403
    assert support.post(f"{USERS}{branch['root'].pk}/branch-disable-invites/",
                        {"apply": "1"}).status_code == 403
    assert User.objects.filter(can_invite=False).count() == 0


# --- Bans and invites admins --------------------------------------------------------------------

@pytest.mark.django_db
def test_bans_filter_and_lift(staff_client, admin, roles):
    active = UserFactory.create(username="still_banned")
    ended = UserFactory.create(username="was_banned")
    ban_create(actor=admin, user=active, reason="a")
    ban = ban_create(actor=admin, user=ended, reason="b")
    Ban.objects.filter(pk=ban.pk).update(lifted_at=timezone.now())
    client = staff_client("support")
    names = {b.user.username for b in client.get("/admin/core/ban/?state=active")
             .context["cl"].result_list}
    assert names == {"still_banned"}
    names = {b.user.username for b in client.get("/admin/core/ban/?state=expired")
             .context["cl"].result_list}
    assert names == {"was_banned"}
    open_ban = Ban.objects.get(user=active)
    assert client.post("/admin/core/ban/", {"action": "lift",
                                            "_selected_action": [open_ban.pk]}).status_code == 302
    open_ban.refresh_from_db()
    assert open_ban.lifted_by == client.user
    assert client.get(f"/admin/core/ban/{open_ban.pk}/change/").status_code == 200
    assert client.post(f"/admin/core/ban/{open_ban.pk}/change/", {"reason": "x"}).status_code \
        == 403


@pytest.mark.django_db
def test_invites_are_read_only_with_a_revoke_action(staff_client, member):
    invite = InviteFactory.create(created_by=member)
    support = staff_client("support")
    page = support.get("/admin/core/invite/")
    assert page.status_code == 200 and invite.code.encode() not in page.content
    support.post("/admin/core/invite/", {"action": "revoke", "_selected_action": [invite.pk]})
    invite.refresh_from_db()
    assert invite.status == Invite.Status.ACTIVE
    moderator = staff_client("moderator")
    assert moderator.post("/admin/core/invite/", {"action": "revoke",
                                                  "_selected_action": [invite.pk]}
                          ).status_code == 302
    invite.refresh_from_db()
    assert invite.status == Invite.Status.REVOKED
    assert moderator.get("/admin/core/invite/add/").status_code == 403


# --- Scale ----------------------------------------------------------------------------------------

def seed_users(count: int, roles, start: int = 0) -> None:
    password = make_password(None)
    User.objects.bulk_create([
        User(username=f"bulk{i:05d}", email=f"bulk{i}@example.test", password=password,
             role=roles["user"], invited_by=None, discord_id=(10_000 + i) if i % 3 else None)
        for i in range(start, start + count)
    ], batch_size=1000)


def changelist_queries(client: Client, query: str = "") -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(USERS + query)
    assert response.status_code == 200
    return len(captured)


@pytest.mark.django_db
def test_user_changelist_query_count_does_not_grow_with_rows(staff_client, roles):
    client = staff_client("support")
    seed_users(20, roles)
    inviter = User.objects.get(username="bulk00001")
    User.objects.filter(username__startswith="bulk").update(invited_by=inviter)
    small = {q: changelist_queries(client, q) for q in
             ("", "?banned=no", "?discord=yes", f"?invited_by__id__exact={inviter.pk}",
              "?q=bulk")}
    seed_users(2000, roles, start=20)
    User.objects.filter(username__startswith="bulk").update(invited_by=inviter)
    large = {q: changelist_queries(client, q) for q in small}
    assert large == small
    assert max(large.values()) <= 12, large


@pytest.mark.django_db
def test_user_changelist_never_counts_the_whole_table_twice(staff_client, roles):
    seed_users(50, roles)
    client = staff_client("support")
    with CaptureQueriesContext(connection) as captured:
        client.get(USERS)
    counts = [q["sql"] for q in captured if "COUNT(" in q["sql"].upper()]
    assert len(counts) <= 1, counts


@pytest.mark.django_db
@pytest.mark.postgres
def test_user_changelist_estimates_on_a_large_postgres_table(staff_client, roles):
    seed_users(12_000, roles)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE core_user")
    client = staff_client("support")
    with CaptureQueriesContext(connection) as captured:
        response = client.get(USERS)
    assert response.status_code == 200
    assert not [q for q in captured if "COUNT(" in q["sql"].upper() and "core_user" in q["sql"]
                and "LIMIT" not in q["sql"].upper() and "WHERE" not in q["sql"].upper()]
