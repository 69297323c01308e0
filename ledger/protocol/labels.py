"""Labelling rules: the controlled vocabularies a dataset is described with, and what follows.

The vocabularies are data (``ledger/protocol/data/vocabularies.json``): the EU data themes
(DCAT-AP's ``dcat:theme``), the EU update frequencies (``dct:accrualPeriodicity``) and the
access right each classification maps to. The metadata document (docs/protocol.md §7.1) may
carry these labels, all optional for the broker so that older documents stay valid:

- ``themes``: up to 14 distinct theme codes (``ENVI``, ``HEAL``, …);
- ``personal_data``: whether the data describes identifiable persons;
- ``keywords``: up to 20 strings of 1 to 60 characters;
- ``update_frequency``: a frequency code (the owner's freshness promise);
- ``spatial``: a place name or URI (1 to 300 characters);
- ``temporal``: ``{"start": "YYYY-MM-DD", "end": "YYYY-MM-DD"}`` (either may be absent).

The rules (:func:`check_labels`): personal data is never PUBLIC, and a dataset on a theme the
vocabulary marks ``sensitive`` is SENSITIVE. The owner's client applies them before signing, the
broker before writing anything, and member-side verify on every Register record.
"""

from __future__ import annotations

import datetime as dt
import json
from functools import cache
from importlib import resources
from typing import Any, Final

from ledger.errors import InvalidInput
from ledger.protocol.codes import ErrorCode

#: The metadata members this module checks.
LABEL_MEMBERS: Final = (
    "themes",
    "personal_data",
    "keywords",
    "update_frequency",
    "spatial",
    "temporal",
)
#: The standard request form's members in a signed RequestAccess (besides purpose, days, uses).
REQUEST_FORM_MEMBERS: Final = (
    "purposeCategory",
    "legalBasis",
    "retentionDays",
    "processingLocation",
)
UNSPECIFIED: Final = "unspecified"
#: ``retentionDays``: how long the grantee keeps the data after the grant ends (0: deleted at
#: expiry, as the standard conditions say).
RETENTION_DAYS: Final = (0, 3650)
MAX_THEMES: Final = 14
MAX_KEYWORDS: Final = 20
MAX_KEYWORD_CHARS: Final = 60
MAX_SPATIAL_CHARS: Final = 300
THEME_BASE: Final = "http://publications.europa.eu/resource/authority/data-theme/"
FREQUENCY_BASE: Final = "http://publications.europa.eu/resource/authority/frequency/"
ACCESS_RIGHT_BASE: Final = "http://publications.europa.eu/resource/authority/access-right/"


@cache
def vocabularies() -> dict[str, Any]:
    """The controlled vocabularies, as kept in the repository."""
    text = resources.files("ledger.protocol").joinpath("data/vocabularies.json").read_text()
    doc: dict[str, Any] = json.loads(text)
    return doc


def themes() -> dict[str, dict[str, Any]]:
    terms: dict[str, dict[str, Any]] = vocabularies()["themes"]["terms"]
    return terms


def frequencies() -> dict[str, dict[str, Any]]:
    terms: dict[str, dict[str, Any]] = vocabularies()["frequencies"]["terms"]
    return terms


def purposes() -> dict[str, dict[str, Any]]:
    terms: dict[str, dict[str, Any]] = vocabularies()["purposes"]["terms"]
    return terms


def legal_bases() -> dict[str, dict[str, Any]]:
    terms: dict[str, dict[str, Any]] = vocabularies()["legal_bases"]["terms"]
    return terms


def access_right(classification: str) -> str:
    """The EU access-right code a classification maps to (PUBLIC, RESTRICTED, NON_PUBLIC)."""
    code: str = vocabularies()["classifications"]["terms"][classification]["access_right"]
    return code


def frequency_days(code: str | None) -> int | None:
    """The promised longest gap between versions, in days (``None``: no promise)."""
    if not code:
        return None
    days = frequencies().get(code, {}).get("days")
    return int(days) if days is not None else None


def _unknown(message: str) -> InvalidInput:
    return InvalidInput(message, code=ErrorCode.LABEL_UNKNOWN)


def _date(value: Any, name: str) -> None:
    try:
        dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise _unknown(f"metadata.temporal.{name} must be a YYYY-MM-DD date") from None


def check_labels(metadata: dict[str, Any], classification: str) -> None:
    """Check the labels of a metadata document and the rules that tie them to a classification.

    Raises ``InvalidInput`` with ``label_unknown`` (a label outside its vocabulary or shape) or
    ``label_rule_broken`` (labels that break a rule).
    """
    chosen = metadata.get("themes", [])
    if not isinstance(chosen, list) or len(chosen) > MAX_THEMES:
        raise _unknown(f"metadata.themes must be a list of at most {MAX_THEMES} theme codes")
    known = themes()
    for theme in chosen:
        if not isinstance(theme, str) or theme not in known:
            raise _unknown(f"unknown theme {theme!r}; use one of {', '.join(sorted(known))}")
    if len(set(chosen)) != len(chosen):
        raise _unknown("metadata.themes lists a theme twice")
    personal = metadata.get("personal_data", False)
    if not isinstance(personal, bool):
        raise _unknown("metadata.personal_data must be true or false")
    keywords = metadata.get("keywords", [])
    if (
        not isinstance(keywords, list)
        or len(keywords) > MAX_KEYWORDS
        or not all(
            isinstance(k, str) and 1 <= len(k.strip()) <= MAX_KEYWORD_CHARS for k in keywords
        )
    ):
        raise _unknown(
            f"metadata.keywords must be at most {MAX_KEYWORDS} strings of 1 to "
            f"{MAX_KEYWORD_CHARS} characters"
        )
    frequency = metadata.get("update_frequency")
    if frequency is not None and frequency not in frequencies():
        raise _unknown(
            f"unknown update frequency {frequency!r}; use one of {', '.join(frequencies())}"
        )
    spatial = metadata.get("spatial")
    if spatial is not None and (
        not isinstance(spatial, str) or not 1 <= len(spatial.strip()) <= MAX_SPATIAL_CHARS
    ):
        raise _unknown(f"metadata.spatial must be 1 to {MAX_SPATIAL_CHARS} characters")
    temporal = metadata.get("temporal")
    if temporal is not None:
        if not isinstance(temporal, dict) or not set(temporal) <= {"start", "end"}:
            raise _unknown('metadata.temporal must be {"start": date, "end": date}')
        for name, value in temporal.items():
            _date(value, name)
        if "start" in temporal and "end" in temporal and temporal["start"] > temporal["end"]:
            raise _unknown("metadata.temporal ends before it starts")
    if personal and classification == "public":
        raise InvalidInput(
            "personal data cannot be PUBLIC: classify it internal or sensitive",
            code=ErrorCode.LABEL_RULE_BROKEN,
        )
    touchy = sorted(t for t in chosen if known[t].get("sensitive"))
    if touchy and classification != "sensitive":
        raise InvalidInput(
            f"theme {', '.join(touchy)} needs classification SENSITIVE, not "
            f"{classification.upper()}",
            code=ErrorCode.LABEL_RULE_BROKEN,
        )


def check_request_form(message: dict[str, Any]) -> None:
    """The standard request form of a signed RequestAccess (422 ``request_form_invalid``).

    ``purposeCategory`` and ``legalBasis`` from their vocabularies (``unspecified`` allowed),
    ``retentionDays`` from 0 to 3650, ``processingLocation`` an ISO 3166-1 alpha-2 country code
    in capitals (``EU`` for anywhere in the Union) or ``unspecified``.
    """

    def bad(message_text: str) -> InvalidInput:
        return InvalidInput(message_text, code=ErrorCode.REQUEST_FORM_INVALID)

    category = message.get("purposeCategory")
    if category not in purposes():
        raise bad(f"purposeCategory {category!r} is not one of {', '.join(purposes())}")
    basis = message.get("legalBasis")
    if basis not in legal_bases():
        raise bad(f"legalBasis {basis!r} is not one of {', '.join(legal_bases())}")
    retention = message.get("retentionDays")
    if (
        not isinstance(retention, int)
        or isinstance(retention, bool)
        or not RETENTION_DAYS[0] <= retention <= RETENTION_DAYS[1]
    ):
        raise bad(f"retentionDays must be {RETENTION_DAYS[0]} to {RETENTION_DAYS[1]}")
    location = message.get("processingLocation")
    if not isinstance(location, str) or not (
        location == UNSPECIFIED
        or (len(location) == 2 and location.isascii() and location.isupper())
    ):
        raise bad(
            "processingLocation must be an ISO 3166-1 alpha-2 code (e.g. DE, EU) or unspecified"
        )
