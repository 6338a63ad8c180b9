"""The streaming CSV export: formula defusing, encoding, streaming, and the generic link."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest
from django.utils import timezone

from core.services.logs import Category, log_event
from staff.csv_export import CsvColumn, csv_of, csv_response, safe_cell

JOURNAL = "/admin/core/moderationentry/"


def parse_csv(response: Any) -> list[list[str]]:
    """All rows of a (streaming) CSV response, header first."""
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def as_dicts(rows: list[list[str]]) -> list[dict[str, str]]:
    header, *body = rows
    return [dict(zip(header, row, strict=True)) for row in body]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=HYPERLINK(\"http://evil\")", "'=HYPERLINK(\"http://evil\")"),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (-5, "-5"),  # a number is data, never a formula
        (2.5, "2.5"),
        (True, "yes"),
        ("Привет", "Привет"),
    ],
)
def test_safe_cell_defuses_formulas(value: object, expected: str) -> None:
    assert safe_cell(value) == expected


def test_safe_cell_writes_aware_datetimes_in_local_time() -> None:
    moment = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    assert safe_cell(moment) == timezone.localtime(moment).isoformat()


def test_csv_response_streams_rows_lazily_with_bom_and_headers() -> None:
    produced: list[int] = []

    def rows() -> Any:
        for i in range(3):
            produced.append(i)
            yield [i, f"=cmd{i}"]

    response = csv_response(filename="x.csv", header=["n", "=formula header"], rows=rows())
    assert produced == []  # nothing is read before the response is consumed
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="x.csv"'
    assert response["Cache-Control"] == "no-store"
    body = b"".join(response.streaming_content)  # type: ignore[arg-type]
    assert body.startswith("\ufeff".encode())
    assert parse_csv_bytes(body) == [["n", "'=formula header"], ["0", "'=cmd0"],
                                     ["1", "'=cmd1"], ["2", "'=cmd2"]]


def parse_csv_bytes(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def test_csv_of_quotes_separators_and_newlines() -> None:
    columns = [CsvColumn("text", lambda obj: obj)]
    response = csv_of(filename="t.csv", columns=columns, objects=['a,b', 'line\nbreak', 'q"uote'])
    assert parse_csv(response) == [["text"], ["a,b"], ["line\nbreak"], ['q"uote']]


@pytest.mark.django_db
def test_export_link_and_view_follow_the_changelist_filters(staff_client: Any) -> None:
    client = staff_client("admin")
    log_event(category=Category.MODERATION, action="probe.one", actor=client.user)
    log_event(category=Category.MODERATION, action="probe.two", actor=client.user)
    page = client.get(f"{JOURNAL}?action=probe.one")
    assert page.status_code == 200
    assert f'href="{JOURNAL}export.csv?action=probe.one"' in page.content.decode()
    rows = as_dicts(parse_csv(client.get(f"{JOURNAL}export.csv?action=probe.one")))
    assert [row["action"] for row in rows] == ["probe.one"]


@pytest.mark.django_db
def test_export_view_with_bad_filters_goes_back_with_a_message(staff_client: Any) -> None:
    client = staff_client("admin")
    response = client.get(f"{JOURNAL}export.csv?nonsense__field=1")
    assert response.status_code == 302
    assert response["Location"].endswith(JOURNAL)
