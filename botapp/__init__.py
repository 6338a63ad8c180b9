"""The Discord bot (nextcord). A separate process that talks to the site API over HTTP."""
