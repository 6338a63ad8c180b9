from core.models.bans import Ban
from core.models.discord import DiscordLinkCode
from core.models.invites import Invite
from core.models.jobs import KeyGenerationJob
from core.models.keys import LicenseKey, Product
from core.models.licence_checks import LicenseCheckDay
from core.models.logs import LogEntry, ModerationEntry, SystemErrorEntry, UserActionEntry
from core.models.releases import LoaderRelease
from core.models.roles import Role
from core.models.subscriptions import Subscription
from core.models.sync import RoleSyncRequest
from core.models.system import EncryptionCanary
from core.models.users import User
from core.models.webhooks import WebhookOutbox, WebhookState

__all__ = [
    "Ban",
    "DiscordLinkCode",
    "EncryptionCanary",
    "Invite",
    "KeyGenerationJob",
    "LicenseCheckDay",
    "LicenseKey",
    "LoaderRelease",
    "LogEntry",
    "ModerationEntry",
    "Product",
    "Role",
    "RoleSyncRequest",
    "Subscription",
    "SystemErrorEntry",
    "User",
    "UserActionEntry",
    "WebhookOutbox",
    "WebhookState",
]
