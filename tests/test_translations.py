"""The Russian catalogue is complete, up to date with the code, and compiled.

No database: makemessages runs on a copy of the source tree (so neither the committed catalogue
nor the working tree is touched), the committed django.mo is read with Python's gettext, and a
few strings are looked up through Django's translation machinery.
"""

from __future__ import annotations

import gettext as gnu_gettext
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import translation

BASE_DIR = Path(__file__).resolve().parent.parent
LOCALE_DIR = BASE_DIR / "locale"
PO_PATH = LOCALE_DIR / "ru" / "LC_MESSAGES" / "django.po"
MO_PATH = LOCALE_DIR / "ru" / "LC_MESSAGES" / "django.mo"

# The same patterns as the documented command (see the header of django.po):
#   python manage.py makemessages -l ru --no-obsolete --ignore='.venv/*' --ignore='var/*'
#   --ignore='tests/*' --ignore='botapp/*' --ignore='ansible/*' --ignore='requirements/*'
#   --ignore='*.egg-info/*'
# botapp/ is left out on purpose: the bot sends no Accept-Language and always speaks English.
IGNORE_PATTERNS = [".venv/*", "var/*", "tests/*", "botapp/*", "ansible/*", "requirements/*",
                   "*.egg-info/*"]
GETTEXT_PROGRAMS = ("xgettext", "msgmerge", "msguniq", "msgattrib")
CYRILLIC = re.compile("[\u0400-\u04ff]")


# A small .po reader: enough for what makemessages and msgmerge write.

@dataclass
class PoEntry:
    msgid: str = ""
    msgctxt: str | None = None
    msgid_plural: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    line: int = 0

    @property
    def is_header(self) -> bool:
        return self.msgid == "" and self.msgctxt is None

    @property
    def fuzzy(self) -> bool:
        return "fuzzy" in self.flags

    def label(self) -> str:
        ctx = f"[{self.msgctxt}] " if self.msgctxt is not None else ""
        return f"line {self.line}: {ctx}{self.msgid!r}"


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "a": "\a", "b": "\b",
            "f": "\f", "v": "\v"}
_ESCAPE_RE = re.compile(r'\\([ntr"\\abfv]|[0-7]{1,3}|x[0-9a-fA-F]{1,2})')


def _unquote(text: str, where: str) -> str:
    text = text.strip()
    if len(text) < 2 or not (text.startswith('"') and text.endswith('"')):
        raise ValueError(f"{where}: expected a quoted string, got {text!r}")

    def unescape(match: re.Match[str]) -> str:
        code = match[1]
        if code in _ESCAPES:
            return _ESCAPES[code]
        if code.startswith("x"):
            return chr(int(code[1:], 16))
        return chr(int(code, 8))

    return _ESCAPE_RE.sub(unescape, text[1:-1])


_KEYWORD_RE = re.compile(r"^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+(\".*)$")


def parse_po(path: Path) -> list[PoEntry]:
    """Every entry of a .po file (header included, obsolete #~ entries left out)."""
    entries: list[PoEntry] = []
    current = PoEntry()
    # Where continuation lines ("...") go: (attribute, plural index).
    target: tuple[str, int] | None = None
    seen_msgstr = False

    def finish() -> None:
        nonlocal current, target, seen_msgstr
        if seen_msgstr:
            entries.append(current)
        elif current.msgid or current.msgctxt is not None:
            raise ValueError(f"{path}:{current.line}: entry without msgstr")
        current, target, seen_msgstr = PoEntry(), None, False

    def append(attribute: str, index: int, text: str) -> None:
        if attribute == "msgstr":
            current.msgstr[index] = current.msgstr.get(index, "") + text
        else:
            setattr(current, attribute, (getattr(current, attribute) or "") + text)

    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        where = f"{path}:{number}"
        if not line:
            finish()
            continue
        if line.startswith("#"):
            if seen_msgstr:
                finish()
            if line.startswith("#,"):
                current.flags.update(flag.strip() for flag in line[2:].split(",") if flag.strip())
            # #: references, #. extracted and "# " translator comments, #| previous msgids
            # and #~ obsolete entries carry nothing this test needs.
            continue
        if line.startswith('"'):
            if target is None:
                raise ValueError(f"{where}: continuation line outside an entry")
            append(target[0], target[1], _unquote(line, where))
            continue
        match = _KEYWORD_RE.match(line)
        if match is None:
            raise ValueError(f"{where}: cannot read {raw!r}")
        keyword, index, value = match[1], match[2], _unquote(match[3], where)
        if keyword in ("msgctxt", "msgid") and seen_msgstr:
            finish()
        if not current.line:
            current.line = number
        if keyword == "msgctxt":
            current.msgctxt = ""
            target = ("msgctxt", 0)
        elif keyword == "msgid":
            target = ("msgid", 0)
        elif keyword == "msgid_plural":
            current.msgid_plural = ""
            target = ("msgid_plural", 0)
        else:
            seen_msgstr = True
            target = ("msgstr", int(index) if index is not None else 0)
            current.msgstr.setdefault(target[1], "")
        append(target[0], target[1], value)
    finish()
    return entries


def header_of(entries: list[PoEntry]) -> dict[str, str]:
    header = next((entry for entry in entries if entry.is_header), None)
    assert header is not None, "the catalogue has no header entry"
    fields = {}
    for line in header.msgstr.get(0, "").splitlines():
        name, _sep, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return fields


def nplurals_of(entries: list[PoEntry]) -> int:
    match = re.search(r"nplurals\s*=\s*(\d+)", header_of(entries).get("plural-forms", ""))
    assert match, "the catalogue's header has no Plural-Forms"
    return int(match[1])


def problems_of(entries: list[PoEntry]) -> list[str]:
    """Every entry that is fuzzy or lacks a translation (for any plural form)."""
    nplurals = nplurals_of(entries)
    problems = []
    for entry in entries:
        if entry.is_header:
            continue
        if entry.fuzzy:
            problems.append(f"fuzzy: {entry.label()}")
            continue
        forms = range(nplurals) if entry.msgid_plural is not None else range(1)
        if any(not entry.msgstr.get(i) for i in forms):
            problems.append(f"untranslated: {entry.label()}")
    return problems


def _require_gettext_tools() -> None:
    missing = [program for program in GETTEXT_PROGRAMS if shutil.which(program) is None]
    if missing:
        pytest.fail(f"GNU gettext is not installed ({', '.join(missing)} not found): install it "
                    "with `apt-get install gettext` (makemessages needs it).", pytrace=False)


def _copy_ignore(directory: str, names: list[str]) -> set[str]:
    top_level = Path(directory).resolve() == BASE_DIR
    skipped = {name for name in names
               if name.startswith(".") or name in ("__pycache__", "node_modules")}
    if top_level:
        skipped |= {name for name in names
                    if any(Path(name).match(pattern.removesuffix("/*"))
                           for pattern in IGNORE_PATTERNS)}
    return skipped


def test_parser_reads_multiline_context_and_plurals(tmp_path: Path) -> None:
    po = tmp_path / "sample.po"
    po.write_text(
        'msgid ""\n'
        'msgstr ""\n'
        '"Language: ru\\n"\n'
        '"Plural-Forms: nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : 1);\\n"\n'
        "\n"
        "#: a.py:1\n"
        "#, fuzzy, python-format\n"
        '#| msgid "Old %(n)s"\n'
        'msgid "New %(n)s"\n'
        'msgstr "Новый %(n)s"\n'
        "\n"
        'msgctxt "menu"\n'
        'msgid ""\n'
        '"Two "\n'
        '"lines \\"quoted\\"\\n"\n'
        'msgstr ""\n'
        "\n"
        'msgid "%(count)s key"\n'
        'msgid_plural "%(count)s keys"\n'
        'msgstr[0] "%(count)s ключ"\n'
        'msgstr[1] "%(count)s ключа"\n'
        'msgstr[2] ""\n'
        '#~ msgid "Gone"\n'
        '#~ msgstr "Нет"\n',
        encoding="utf-8",
    )
    entries = parse_po(po)
    assert [entry.msgid for entry in entries] == ["", "New %(n)s", 'Two lines "quoted"\n',
                                                  "%(count)s key"]
    assert nplurals_of(entries) == 3
    assert entries[1].fuzzy and "python-format" in entries[1].flags
    assert entries[2].msgctxt == "menu"
    assert entries[3].msgid_plural == "%(count)s keys"
    assert entries[3].msgstr == {0: "%(count)s ключ", 1: "%(count)s ключа", 2: ""}
    assert problems_of(entries) == [
        "fuzzy: line 9: 'New %(n)s'",
        "untranslated: line 12: [menu] 'Two lines \"quoted\"\\n'",
        "untranslated: line 18: '%(count)s key'",
    ]


def test_russian_catalogue_is_complete_and_up_to_date(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """makemessages over the current code leaves no untranslated or fuzzy Russian entry.

    It runs on a copy of the tree: run in the real project root, makemessages would write into
    the real locale/ whatever LOCALE_PATHS says (it adds ./locale and picks, for each source
    file, the first locale directory whose parent contains it), and it drops temporary
    *.html.py files next to the templates.
    """
    _require_gettext_tools()
    project = tmp_path / "project"
    shutil.copytree(BASE_DIR, project, ignore=_copy_ignore, symlinks=True)
    locale = project / "locale"
    assert (locale / "ru" / "LC_MESSAGES" / "django.po").is_file()
    settings.LOCALE_PATHS = [locale]
    monkeypatch.chdir(project)

    call_command("makemessages", locale=["ru"], no_obsolete=True,
                 ignore_patterns=list(IGNORE_PATTERNS), verbosity=0)

    regenerated = locale / "ru" / "LC_MESSAGES" / "django.po"
    entries = parse_po(regenerated)
    assert len(entries) > 1, "makemessages found no strings at all"
    problems = problems_of(entries)
    assert not problems, (
        f"{len(problems)} Russian entries need work after makemessages; run the command in "
        "the header of locale/ru/LC_MESSAGES/django.po, translate, then compilemessages:\n"
        + "\n".join(problems)
    )
    assert PO_PATH.read_text(encoding="utf-8") != "", "the committed catalogue is empty"


def test_committed_mo_matches_po() -> None:
    """django.mo was compiled from the committed django.po (run compilemessages after edits)."""
    entries = parse_po(PO_PATH)
    nplurals = nplurals_of(entries)
    with MO_PATH.open("rb") as handle:
        catalog = gnu_gettext.GNUTranslations(handle)
    # The raw table, for what no lookup reaches: forms no whole number selects, and entries
    # that are in the .mo only.
    raw: dict[Any, str] = vars(catalog)["_catalog"]
    plural: Callable[[int], int] = vars(catalog)["plural"]

    mismatches = []
    expected_keys = 0
    for entry in entries:
        if entry.is_header:
            continue
        translated = not entry.fuzzy and all(
            entry.msgstr.get(i) for i in (range(nplurals) if entry.msgid_plural is not None
                                          else range(1)))
        key = entry.msgid if entry.msgctxt is None else f"{entry.msgctxt}\x04{entry.msgid}"
        if entry.msgid_plural is None:
            expected = entry.msgstr[0] if translated else entry.msgid
            got = (catalog.gettext(entry.msgid) if entry.msgctxt is None
                   else catalog.pgettext(entry.msgctxt, entry.msgid))
            if got != expected:
                mismatches.append(f"{entry.label()}: .mo has {got!r}, .po has {expected!r}")
            expected_keys += translated
            continue
        expected_keys += nplurals if translated else 0
        for form in range(nplurals):
            expected = entry.msgstr[form] if translated else (
                entry.msgid if form == 0 else entry.msgid_plural)
            n = next((n for n in range(1000) if plural(n) == form), None)
            if n is not None:
                got = (catalog.ngettext(entry.msgid, entry.msgid_plural, n)
                       if entry.msgctxt is None else
                       catalog.npgettext(entry.msgctxt, entry.msgid, entry.msgid_plural, n))
            else:
                # A form no whole number selects (Russian's fraction form): read it directly.
                got = raw.get((key, form), entry.msgid if form == 0 else entry.msgid_plural)
            if got != expected:
                mismatches.append(f"{entry.label()} form {form}: .mo has {got!r}, "
                                  f".po has {expected!r}")
    # Entries the .po no longer has must not linger in the .mo either.
    mo_keys = sum(1 for key in raw if key != "")
    if mo_keys != expected_keys:
        mismatches.append(f".mo holds {mo_keys} translations, .po {expected_keys}")
    assert not mismatches, (
        "locale/ru/LC_MESSAGES/django.mo is stale: run `python manage.py compilemessages -l ru "
        "--ignore='.venv/*'` and commit it.\n" + "\n".join(mismatches)
    )


@pytest.mark.parametrize(
    ("english", "russian"),
    [
        ("Log in", "Войти"),
        ("Log out", "Выйти"),
        ("Dashboard", "Главная"),
        ("Redeem", "Активировать"),
        ("Download", "Скачать"),
        ("Account", "Аккаунт"),
        ("Subscriptions", "Подписки"),
        ("Invites", "Приглашения"),
    ],
    ids=lambda value: value if value.isascii() else "ru",
)
def test_glossary_terms(english: str, russian: str) -> None:
    with translation.override("ru"):
        assert translation.gettext(english) == russian


def test_domain_errors_and_page_strings_are_russian() -> None:
    from core.errors import InvalidInput, KeyInvalid, NotLinked, ZspbError

    errors: list[ZspbError] = [KeyInvalid(), InvalidInput(), NotLinked()]
    with translation.override("en"):
        english = [str(error.message) for error in errors]
    with translation.override("ru"):
        russian = [str(error.message) for error in errors]
        units = translation.gettext("d,h,m,s").split(",")
        countdown = translation.gettext("%(d)sd %(h)02dh %(m)02dm %(s)02ds") % {
            "d": 1, "h": 2, "m": 3, "s": 4}
        api_message = translation.gettext("Log in or send a valid token.")
    assert english[0] == "This key does not exist."
    for en, ru in zip(english, russian, strict=True):
        assert ru != en and CYRILLIC.search(ru), f"{en!r} is not translated: {ru!r}"
    # The page script splits the units on commas and expects exactly four.
    assert units == ["д", "ч", "м", "с"]  # noqa: RUF001 (Cyrillic on purpose)
    assert countdown == "1д 02ч 03м 04с"  # noqa: RUF001
    assert CYRILLIC.search(api_message)
