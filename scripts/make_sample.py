"""Generate the shipped sample dataset: a district office's building-permit register.

Deterministic (fixed seed) so the committed CSV and its content hash never drift. The Table
Schema (frictionless) beside it describes every column.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "samples"
ROWS = 3000
WARDS = [
    "Riverside",
    "Old Town",
    "Northgate",
    "Millbrook",
    "Harbour",
    "Eastfield",
    "Hillcrest",
    "Southmead",
]
STREETS = [
    "Station Road",
    "Church Street",
    "Mill Lane",
    "High Street",
    "Park Avenue",
    "Victoria Road",
    "Queen Street",
    "Bridge Street",
    "Orchard Close",
    "Canal Walk",
    "School Lane",
    "Market Square",
    "Green Lane",
    "Chapel Row",
    "Kings Road",
]
TYPES = {
    "new_residential": (180_000, 650_000),
    "extension": (15_000, 120_000),
    "renovation": (5_000, 90_000),
    "commercial_fitout": (40_000, 400_000),
    "demolition": (10_000, 150_000),
    "solar_installation": (4_000, 25_000),
}
STATUSES = ["approved", "approved", "approved", "conditional", "under_review", "refused"]


def main() -> None:
    rng = random.Random(20261128)
    OUT.mkdir(exist_ok=True)
    start = dt.date(2025, 1, 1)
    rows = []
    for i in range(ROWS):
        kind = rng.choice(list(TYPES))
        low, high = TYPES[kind]
        issued = start + dt.timedelta(days=rng.randrange(0, 365))
        rows.append(
            {
                "permit_id": f"BP-2025-{i + 1:05d}",
                "issued_on": issued.isoformat(),
                "ward": rng.choice(WARDS),
                "address": f"{rng.randrange(1, 240)} {rng.choice(STREETS)}",
                "permit_type": kind,
                "estimated_cost_eur": rng.randrange(low, high, 50),
                "floor_area_m2": round(rng.uniform(6, 900), 1)
                if kind != "solar_installation"
                else "",
                "status": rng.choice(STATUSES),
                "inspector_id": f"INS-{rng.randrange(1, 19):03d}",
            }
        )
    rows.sort(key=lambda r: (r["issued_on"], r["permit_id"]))
    with (OUT / "building_permits.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    schema = {
        "name": "building_permits",
        "title": "District building permits 2025",
        "primaryKey": "permit_id",
        "fields": [
            {
                "name": "permit_id",
                "type": "string",
                "constraints": {"required": True, "pattern": "^BP-\\d{4}-\\d{5}$"},
            },
            {"name": "issued_on", "type": "date", "constraints": {"required": True}},
            {"name": "ward", "type": "string", "constraints": {"required": True, "enum": WARDS}},
            {"name": "address", "type": "string", "constraints": {"required": True}},
            {
                "name": "permit_type",
                "type": "string",
                "constraints": {"required": True, "enum": list(TYPES)},
            },
            {"name": "estimated_cost_eur", "type": "integer", "constraints": {"minimum": 0}},
            {"name": "floor_area_m2", "type": "number", "constraints": {"minimum": 0}},
            {"name": "status", "type": "string", "constraints": {"enum": sorted(set(STATUSES))}},
            {"name": "inspector_id", "type": "string", "constraints": {"pattern": "^INS-\\d{3}$"}},
        ],
    }
    (OUT / "building_permits.schema.json").write_text(json.dumps(schema, indent=2) + "\n")


if __name__ == "__main__":
    main()
