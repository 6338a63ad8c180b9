"""The one error hierarchy. Each interface maps it once: the API to its JSON error shape
(`code`, `message`, `details`), the admin to a message, the bot to an ephemeral reply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


class ZspbError(Exception):
    code: ClassVar[str] = "error"
    http_status: ClassVar[int] = 400
    default_message: ClassVar[StrOrPromise] = _("The request could not be completed.")

    def __init__(self, message: StrOrPromise | None = None, **details: Any) -> None:
        self.message: StrOrPromise = message or self.default_message
        self.details = details
        super().__init__(self.message)


class InvalidInput(ZspbError):
    code = "invalid_input"
    http_status = 422
    default_message = _("Some fields are invalid.")


class NotAuthenticated(ZspbError):
    code = "not_authenticated"
    http_status = 401
    default_message = _("Log in first.")


class PermissionDenied(ZspbError):
    code = "forbidden"
    http_status = 403
    default_message = _("You do not have permission to do that.")


class RankViolation(PermissionDenied):
    code = "rank_violation"
    default_message = _("You can only act on users and roles ranked below your own.")


class UserBanned(PermissionDenied):
    code = "user_banned"
    default_message = _("This account is banned.")


class NotFound(ZspbError):
    code = "not_found"
    http_status = 404
    default_message = _("Not found.")


class Conflict(ZspbError):
    code = "conflict"
    http_status = 409
    default_message = _("The request conflicts with the current state.")


class RateLimited(ZspbError):
    code = "rate_limited"
    http_status = 429
    default_message = _("Too many attempts; try again later.")


class ServiceUnavailable(ZspbError):
    """A dependency (the database) failed under the request, e.g. its connection was cut by a
    restart or failover: nothing the client did wrong, worth retrying in a moment."""

    code = "service_unavailable"
    http_status = 503
    default_message = _("The service is briefly unavailable; try again in a few seconds.")
    retry_after: ClassVar[int] = 5

    def __init__(self, message: StrOrPromise | None = None, **details: Any) -> None:
        super().__init__(message, **{"retry_after": self.retry_after, **details})


# Invites
class InviteQuotaExceeded(Conflict):
    code = "invite_quota_exceeded"
    default_message = _("You have used all your invites for this month.")


class InvitingDisabled(PermissionDenied):
    code = "inviting_disabled"
    default_message = _("Inviting has been disabled for your account.")


class InviteInvalid(ZspbError):
    code = "invite_invalid"
    default_message = _("This invite code is not valid, already used, revoked or expired.")


class InviteNotRevocable(Conflict):
    code = "invite_not_revocable"
    default_message = _("Only an unused invite can be revoked.")


class RegistrationLimited(Conflict):
    code = "registration_limited"
    default_message = _("An account was already registered from this network recently.")


# Keys
class KeyInvalid(NotFound):
    code = "key_invalid"
    default_message = _("This key does not exist.")


class KeyUnavailable(Conflict):
    code = "key_unavailable"
    default_message = _("This key has already been redeemed, revoked or has expired.")


# Discord linking
class LinkCodeInvalid(ZspbError):
    code = "link_code_invalid"
    default_message = _("This code is not valid, already used or expired. Run /code again.")


class DiscordAlreadyLinked(Conflict):
    code = "discord_already_linked"
    default_message = _("This Discord account is already linked to another site account.")


class NotLinked(Conflict):
    code = "not_linked"
    default_message = _(
        "No Discord account is linked; run /code in Discord and enter the code here."
    )


class AccountAlreadyLinked(Conflict):
    code = "account_already_linked"
    default_message = _("Your account is already linked to a Discord account; unlink it first.")


# Bans
class AlreadyBanned(Conflict):
    code = "already_banned"
    default_message = _("This user is already banned.")


class NotBanned(Conflict):
    code = "not_banned"
    default_message = _("This user is not banned.")


# Sessions
class InvalidCredentials(ZspbError):
    code = "invalid_credentials"
    http_status = 401
    default_message = _("Invalid username or password.")


class LoginLocked(RateLimited):
    code = "login_locked"
    default_message = _("Too many failed logins from here; try again later.")


# Discord bot
class InvokerNotLinked(PermissionDenied):
    # Same code as NotLinked (the web unlink's 409) on purpose: both mean "no Discord link";
    # here it is the bot's invoker who lacks one, which refuses the command.
    code = "not_linked"
    default_message = _(
        "Your Discord account is not linked to a site account: run /code here and enter the "
        "code on the site's Discord page."
    )


# Machine binding
class MachineNotBound(Conflict):
    code = "machine_not_bound"
    default_message = _("No machine is bound to this subscription yet.")


class MachineResetCooldown(Conflict):
    code = "machine_reset_cooldown"
    default_message = _("You have reset this machine binding recently; try again later.")


class MachineResetDisabled(PermissionDenied):
    code = "machine_reset_disabled"
    default_message = _("Only staff can reset a machine binding on this site.")


class DiscordOff(Conflict):
    code = "discord_off"
    default_message = _("Discord is not connected to this site.")


# Staff second factor
class TwoFactorRequired(PermissionDenied):
    code = "two_factor_required"
    default_message = _(
        "Staff operations need your second factor: enter your authenticator code in the staff "
        "admin (/admin/) first."
    )
