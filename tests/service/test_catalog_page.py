"""The catalog page served as pre-rendered rows is byte for byte the wire model's JSON.

``catalog.datasets_json`` answers the busiest read from rows rendered once per version of the
row; these tests hold it to ``DatasetsPublic.model_dump_json()`` of the same page, before and
after every change a catalog row can see (a newer version, an owner reassigned, a retirement),
with paging and the owner filter.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial

import pytest
from sqlalchemy import update

from ledger.broker import Broker
from ledger.client.member import MemberKeys
from ledger.protocol.wire import DatasetsPublic
from ledger.services import catalog
from ledger.services.catalog import Renderings
from ledger.store.models import Dataset
from tests.support import kit

_DATASETS = Dataset.__table__  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Broker, MemberKeys]]:
    root = tmp_path_factory.mktemp("catalog-page")
    broker = kit.make_broker(root / "broker")
    office = kit.onboard(broker, "department", "District Planning Office")
    work = root / "work"
    work.mkdir()
    for n in range(3):
        kit.register(
            broker,
            office,
            kit.small_csv(work / f"d{n}.csv", tag=str(n)),
            workdir=work,
            title=f"Ward counts {n}",
        )
    yield broker, office
    broker.close()


def same_page(broker: Broker, **page: object) -> bytes:
    fast = catalog.datasets_json(broker.ledger, **page)  # type: ignore[arg-type]
    slow = catalog.datasets(broker.ledger, **page).model_dump_json().encode()  # type: ignore[arg-type]
    assert fast == slow
    DatasetsPublic.model_validate_json(fast)
    return fast


def change(broker: Broker, dataset_id: int, **values: object) -> None:
    with broker.ledger.db.transaction() as session:
        session.connection().execute(
            update(_DATASETS).where(_DATASETS.c.id == dataset_id).values(**values)
        )


def test_the_page_is_the_wire_models_json(world: tuple[Broker, MemberKeys]) -> None:
    broker, office = world
    whole = json.loads(same_page(broker))
    assert [d["title"] for d in whole["data"]] == [f"Ward counts {n}" for n in range(3)]
    assert whole["count"] == 3
    assert whole["next"] is None
    first = json.loads(same_page(broker, limit=2))
    assert first["count"] == 2
    assert first["next"] == 2
    rest = json.loads(same_page(broker, limit=2, offset=2))
    assert [d["id"] for d in rest["data"]] == [whole["data"][2]["id"]]
    assert rest["next"] is None
    assert json.loads(same_page(broker, owner=office.address))["count"] == 3
    assert json.loads(same_page(broker, owner="0x" + "ab" * 20)) == {
        "data": [],
        "count": 0,
        "next": None,
    }


def test_a_changed_row_is_rendered_again(world: tuple[Broker, MemberKeys]) -> None:
    broker, _ = world
    ids = [d["id"] for d in json.loads(same_page(broker))["data"]]
    change(broker, ids[2], previous_version=ids[0])  # ids[2] is now ids[0]'s next version
    rows = json.loads(same_page(broker))["data"]
    assert rows[0]["newer_version"] == ids[2]
    change(broker, ids[1], owner="0x" + "cd" * 20, retired=True)
    rows = json.loads(same_page(broker))["data"]
    assert rows[1]["owner"] == "0x" + "cd" * 20
    assert rows[1]["retired"] is True
    change(broker, ids[2], previous_version=0)
    change(broker, ids[1], owner=rows[0]["owner"], retired=False)
    rows = json.loads(same_page(broker))["data"]
    assert rows[0]["newer_version"] is None
    assert rows[1]["retired"] is False


def test_renderings_are_bounded_in_bytes_keys_included(world: tuple[Broker, MemberKeys]) -> None:
    broker, _ = world
    page = json.loads(catalog.datasets_json(broker.ledger))
    with broker.ledger.db.reading() as connection:
        rows = list(connection.execute(catalog._PAGED, {"limit": 10, "offset": 0}))
    keys = [tuple(v for k, v in row._mapping.items() if k != "metadata_json") for row in rows]
    renders = [
        partial(lambda r: catalog.dataset_public(r, r.newer_version).model_dump_json().encode(), r)
        for r in rows
    ]
    roomy = Renderings(max_bytes=10**6)
    rendered = [roomy.json(key, render) for key, render in zip(keys, renders, strict=True)]
    assert [json.loads(r)["id"] for r in rendered] == [d["id"] for d in page["data"]]
    assert roomy.entries == 3
    assert roomy.size > sum(len(r) for r in rendered) + sum(len(d["title"]) for d in page["data"])
    tight = Renderings(max_bytes=1)  # room for none: only the latest is kept
    assert [tight.json(k, r) for k, r in zip(keys, renders, strict=True)] == rendered
    assert tight.entries == 1
