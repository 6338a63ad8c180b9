"""Russian for unfold's own words: django-unfold 0.91 ships no catalogue for Russian.

Nothing imports this module. It only lists the msgids of unfold's templates and Python code
that the staff admin shows, so that makemessages keeps them in locale/ru (whose catalogue,
from LOCALE_PATHS, is searched before the apps' ones). Words Django's own catalogue already
translates (Save, Delete, Log out...) are left out. The msgids must stay byte-identical to
unfold's: after upgrading unfold, compare them with its templates.
"""

from __future__ import annotations

from django.utils.translation import gettext_noop

UNFOLD_MSGIDS = (
    # unfold/templates
    gettext_noop("Add row"),
    gettext_noop("After you've created a user, you’ll be able to edit more user options."),  # noqa: RUF001
    gettext_noop("All applications"),
    gettext_noop("Apply Filters"),
    gettext_noop("Click to cancel"),
    gettext_noop("Click to download"),
    gettext_noop("Dark"),
    gettext_noop("Expand row"),
    gettext_noop("False"),
    gettext_noop("Filters"),
    gettext_noop("General"),
    gettext_noop("Go back"),
    gettext_noop("Light"),
    gettext_noop("Loading more results..."),
    gettext_noop("More actions"),
    gettext_noop("Next"),
    gettext_noop("No data"),
    gettext_noop("No recent searches"),
    gettext_noop("No results found"),
    gettext_noop("No results matching your query"),
    gettext_noop("Previous"),
    gettext_noop("Recent searches"),
    gettext_noop("Record picture"),
    gettext_noop("Reset filters"),
    gettext_noop("Run"),
    gettext_noop("Select all rows"),
    gettext_noop("Submit"),
    gettext_noop("This item will be deleted."),
    gettext_noop("This page yielded into no results. Create a new item or reset your filters."),
    gettext_noop("Toggle password visibility"),
    gettext_noop("True"),
    gettext_noop("Type to search"),
    gettext_noop("You have been successfully logged out from the administration"),
    gettext_noop("Choose file to upload"),
    gettext_noop("Forgotten your password or username?"),
    gettext_noop("Image preview"),
    gettext_noop("Return to site"),
    gettext_noop("Search apps and models..."),
    gettext_noop("Welcome back to"),
    # unfold's Python code (filters, widgets, actions)
    gettext_noop("Dataset not found. No action performed."),
    gettext_noop("Date"),
    gettext_noop("Date from"),
    gettext_noop("Date to"),
    gettext_noop("From"),
    gettext_noop("Select action"),
    gettext_noop("Select action to run"),
    gettext_noop("Select currency"),
    gettext_noop("Select format"),
    gettext_noop("Select record"),
    gettext_noop("Select value"),
    gettext_noop("To"),
    gettext_noop("Value"),
    gettext_noop("You can not create nested object without parent"),
)
