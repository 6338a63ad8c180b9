"""The bot's cogs, one per area: they receive Discord events, call the site, render replies."""
