"""Statements straight to the database driver (ledger.store.driver), on SQLite and PostgreSQL.

The hot paths (every access request, every append) bypass SQLAlchemy's statement machinery;
what they write must read back through the models exactly as if SQLAlchemy had written it,
inside the same transaction, and their errors must be SQLAlchemy's, as callers catch them.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import col, select

from ledger.store import driver as driver_module
from ledger.store.db import Database
from ledger.store.driver import Driver, bind_marks
from ledger.store.models import RequestNonce, UsedNonce, utcnow

USED: Table = UsedNonce.__table__  # type: ignore[attr-defined]
REQUEST_NONCES: Table = RequestNonce.__table__  # type: ignore[attr-defined]
COLUMNS = ("signer", "nonce", "created_at")
KEY = ("signer", "nonce")


def nonces(db: Database) -> dict[tuple[str, str], dt.datetime]:
    with db.session() as session:
        return {(u.signer, u.nonce): u.created_at for u in session.exec(select(UsedNonce))}


def test_inserted_rows_read_back_through_the_models_unchanged(db: Database) -> None:
    at = dt.datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=dt.UTC)
    with db.transaction() as session:
        Driver.of(session).insert(USED, COLUMNS, [("0xa", "1", at), ("0xa", "2", at)])
    assert nonces(db) == {("0xa", "1"): at, ("0xa", "2"): at}


def test_rows_written_by_sqlalchemy_and_by_the_driver_are_stored_alike(db: Database) -> None:
    at = utcnow()
    with db.transaction() as session:
        session.add(UsedNonce(signer="0xa", nonce="orm", created_at=at))
        session.flush()
        Driver.of(session).insert(USED, COLUMNS, [("0xa", "driver", at)])
    with db.transaction() as session:
        stored = Driver.of(session).rows("SELECT nonce, created_at FROM used_nonces ORDER BY nonce")
    assert [nonce for nonce, _ in stored] == ["driver", "orm"]
    assert stored[0][1] == stored[1][1]  # the same stored form (SQLite: the same text)


def test_an_insert_ignoring_conflicts_returns_only_the_rows_it_inserted(db: Database) -> None:
    now = utcnow()
    with db.transaction() as session:
        Driver.of(session).insert(USED, COLUMNS, [("0xa", "1", now)])
    with db.transaction() as session:
        inserted = Driver.of(session).insert(
            USED, COLUMNS, [("0xa", "1", now), ("0xa", "2", now)], ignoring=KEY, returning=KEY
        )
    assert [tuple(row) for row in inserted] == [("0xa", "2")]
    assert set(nonces(db)) == {("0xa", "1"), ("0xa", "2")}


def test_a_row_with_too_few_or_too_many_values_is_refused_and_nothing_is_written(
    db: Database,
) -> None:
    at = utcnow()
    for row in [("0xa", "1"), ("0xa", "2", at, "extra")]:
        with pytest.raises(ValueError, match="values for 3 columns"), db.transaction() as session:
            Driver.of(session).insert(USED, COLUMNS, [("0xa", "0", at), row])
    assert nonces(db) == {}


def test_many_rows_are_split_below_the_bound_parameter_limit(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(driver_module, "MAX_PARAMETERS", 7)  # two rows of three per statement
    rows = [("0xb", str(i), i) for i in range(11)]
    with db.transaction() as session:
        inserted = Driver.of(session).insert(
            REQUEST_NONCES, ("signer", "nonce", "expires_at"), rows, returning=KEY
        )
    assert sorted(int(nonce) for _, nonce in inserted) == list(range(11))
    with db.session() as session:
        assert len(session.exec(select(RequestNonce)).all()) == 11


def test_statements_share_the_session_transaction_and_roll_back_with_it(db: Database) -> None:
    seen: list[str] = []

    def abandoned() -> None:
        with db.transaction() as session:
            Driver.of(session).insert(USED, COLUMNS, [("0xa", "1", utcnow())])
            seen.extend(session.exec(select(col(UsedNonce.nonce))).all())  # seen by the ORM
            raise RuntimeError("abandon")

    with pytest.raises(RuntimeError, match="abandon"):
        abandoned()
    assert seen == ["1"]
    assert nonces(db) == {}


def test_a_constraint_violation_is_sqlalchemys_error_listing_no_bound_values(
    db: Database,
) -> None:
    now = utcnow()
    with db.transaction() as session:
        Driver.of(session).insert(USED, COLUMNS, [("0xsecret", "1", now)])
    with pytest.raises(IntegrityError) as raised, db.transaction() as session:
        Driver.of(session).insert(USED, COLUMNS, [("0xsecret", "1", now)])
    assert "[parameters" not in str(raised.value)  # SQLAlchemy would list them there
    assert set(nonces(db)) == {("0xsecret", "1")}


def test_a_bad_statement_is_sqlalchemys_error(db: Database) -> None:
    with pytest.raises(DBAPIError, match="no_such_column"), db.session() as session:
        Driver.of(session).rows("SELECT no_such_column FROM used_nonces")


def test_one_driver_per_transaction(db: Database) -> None:
    with db.session() as session:
        first = Driver.of(session)
        assert Driver.of(session) is first
        session.rollback()
        assert Driver.of(session) is not first


def test_a_pooled_driver_reads_without_a_session(db: Database) -> None:
    with db.transaction() as session:
        Driver.of(session).insert(USED, COLUMNS, [("0xa", "1", utcnow())])
    with db.driver() as reader:
        found = reader.rows_in(
            "SELECT signer, nonce FROM used_nonces WHERE signer IN ({})", ["0xa", "0xb"]
        )
    assert [tuple(row) for row in found] == [("0xa", "1")]


def test_a_statement_without_rows_answers_an_empty_list(db: Database) -> None:
    with db.transaction() as session:
        assert Driver.of(session).rows("DELETE FROM used_nonces WHERE signer = ?", ["0xa"]) == []


def test_bind_marks_for_values_and_for_rows() -> None:
    assert bind_marks(3) == "?, ?, ?"
    assert bind_marks(2, width=3) == "(?, ?, ?), (?, ?, ?)"


def test_an_in_list_is_read_in_chunks_of_scalars_or_of_row_values(db: Database) -> None:
    now = utcnow()
    with db.transaction() as session:
        Driver.of(session).insert(USED, COLUMNS, [("0xa", str(i), now) for i in range(7)])
    with db.driver() as reader:
        by_nonce = reader.rows_in(
            "SELECT nonce FROM used_nonces WHERE nonce IN ({})", [str(i) for i in range(9)], per=2
        )
        by_pair = reader.rows_in(
            "SELECT nonce FROM used_nonces WHERE (signer, nonce) IN ({})",
            [("0xa", "1"), ("0xb", "2"), ("0xa", "6")],
            per=2,
        )
    assert sorted(int(n) for (n,) in by_nonce) == list(range(7))
    assert sorted(n for (n,) in by_pair) == ["1", "6"]
