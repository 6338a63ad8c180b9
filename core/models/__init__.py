from core.models.bans import Ban
from core.models.discord import DiscordLinkCode
from core.models.invites import Invite
from core.models.keys import LicenseKey, Product
from core.models.logs import LogEntry
from core.models.releases import LoaderRelease
from core.models.roles import Role
from core.models.subscriptions import Subscription
from core.models.sync import RoleSyncRequest
from core.models.system import EncryptionCanary
from core.models.users import User

__all__ = [
    "Ban",
    "DiscordLinkCode",
    "EncryptionCanary",
    "Invite",
    "LicenseKey",
    "LoaderRelease",
    "LogEntry",
    "Product",
    "Role",
    "RoleSyncRequest",
    "Subscription",
    "User",
]
