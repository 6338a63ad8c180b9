"""The site's side of Discord: one REST client (rest.py) through which all outbound HTTP goes.

The bot process (botapp/) talks to Discord through nextcord's gateway and to the site through
the API; this package is what the site itself uses from tasks: role sync, member reads at
login and journal webhooks.
"""
