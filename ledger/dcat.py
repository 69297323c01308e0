"""Describing datasets in the standards others read: DCAT-AP 3.0 (JSON-LD) and Data Package.

Built only from what the catalog serves (a dataset's certificate and its owner-signed metadata
document, the owner's member name), so the broker's ``GET /v1/catalog.jsonld`` and the member's
``drl dataset show ID --dcat`` produce the same description from the same inputs. Nothing here
reads plaintext: the description is of the dataset as registered.

DCAT-AP mapping (docs/standards.md has the table): title, description, publisher (the owner,
a ``foaf:Agent``), themes (EU data-theme concepts), keywords, temporal and spatial coverage,
update frequency (``dct:accrualPeriodicity``), access rights (from the classification, EU
access-right table), version links (``dcat:previousVersion``), lineage
(``prov:wasDerivedFrom``), and one distribution: media type, byte size and SHA-256 checksum
of the plaintext as the owner's frictionless report measured it, conforming to the
Frictionless Table Schema specification. The tests validate the output with pyshacl against
the official DCAT-AP 3.0.0 SHACL shapes.
"""

from __future__ import annotations

from typing import Any, Final

from ledger.protocol.labels import (
    ACCESS_RIGHT_BASE,
    FREQUENCY_BASE,
    THEME_BASE,
    access_right,
    themes,
)

CONTEXT: Final[dict[str, Any]] = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "spdx": "http://spdx.org/rdf/terms#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "locn": "http://www.w3.org/ns/locn#",
    "adms": "http://www.w3.org/ns/adms#",
    "prov": "http://www.w3.org/ns/prov#",
}
TABLE_SCHEMA_SPEC: Final = "https://specs.frictionlessdata.io/table-schema/"
IANA_MEDIA_TYPES: Final = "https://www.iana.org/assignments/media-types/"
THEME_SCHEME: Final = "http://publications.europa.eu/resource/authority/data-theme"


def _typed(value: Any, datatype: str) -> dict[str, Any]:
    return {"@value": str(value), "@type": datatype}


def _lang(text: str) -> dict[str, str]:
    return {"@value": text, "@language": "en"}


def dataset_iri(base: str, dataset_id: int) -> str:
    return f"{base.rstrip('/')}/v1/datasets/{dataset_id}"


def member_iri(base: str, address: str) -> str:
    return f"{base.rstrip('/')}/v1/members/{address}"


def dataset_node(dataset: dict[str, Any], *, base: str, publisher: str) -> dict[str, Any]:
    """One ``dcat:Dataset`` node (JSON-LD, compact IRIs under :data:`CONTEXT`).

    ``dataset`` is a catalog entry as served (``DatasetPublic`` as JSON); ``publisher`` the
    owner's member name.
    """
    meta: dict[str, Any] = dataset.get("metadata") or {}
    quality: dict[str, Any] = meta.get("quality") or {}
    iri = dataset_iri(base, int(dataset["id"]))
    title = str(dataset["title"])
    description = str(meta.get("description") or "").strip() or title
    created = str(dataset.get("created_at", ""))
    node: dict[str, Any] = {
        "@id": iri,
        "@type": "dcat:Dataset",
        "dct:identifier": str(dataset["id"]),
        "dct:title": _lang(title),
        "dct:description": _lang(description),
        "dct:publisher": {
            "@id": member_iri(base, str(dataset["owner"])),
            "@type": "foaf:Agent",
            "foaf:name": publisher,
        },
        "dct:accessRights": {
            "@id": ACCESS_RIGHT_BASE + access_right(str(dataset["classification"])),
            "@type": "dct:RightsStatement",
        },
        "adms:identifier": {
            "@type": "adms:Identifier",
            "skos:notation": str(dataset["content_hash"]),
        },
    }
    if created:
        node["dct:issued"] = _typed(created.replace("Z", "+00:00"), "xsd:dateTime")
    chosen = [t for t in meta.get("themes") or [] if t in themes()]
    if chosen:
        node["dcat:theme"] = [
            {
                "@id": THEME_BASE + t,
                "@type": "skos:Concept",
                "skos:prefLabel": _lang(str(themes()[t]["label"])),
                "skos:inScheme": {"@id": THEME_SCHEME},
            }
            for t in chosen
        ]
    keywords = [k for k in meta.get("keywords") or [] if isinstance(k, str)]
    if keywords:
        node["dcat:keyword"] = [_lang(k) for k in keywords]
    frequency = meta.get("update_frequency")
    if isinstance(frequency, str):
        node["dct:accrualPeriodicity"] = {
            "@id": FREQUENCY_BASE + frequency,
            "@type": "dct:Frequency",
        }
    spatial = meta.get("spatial")
    if isinstance(spatial, str) and spatial:
        if spatial.startswith(("http://", "https://")):
            node["dct:spatial"] = {"@id": spatial, "@type": "dct:Location"}
        else:
            node["dct:spatial"] = {"@type": "dct:Location", "locn:geographicName": _lang(spatial)}
    temporal = meta.get("temporal")
    if isinstance(temporal, dict) and temporal:
        period: dict[str, Any] = {"@type": "dct:PeriodOfTime"}
        if "start" in temporal:
            period["dcat:startDate"] = _typed(temporal["start"], "xsd:date")
        if "end" in temporal:
            period["dcat:endDate"] = _typed(temporal["end"], "xsd:date")
        node["dct:temporal"] = period
    previous = int(dataset.get("previous_version") or 0)
    if previous:
        node["dcat:previousVersion"] = {"@id": dataset_iri(base, previous)}
    parents = [int(p) for p in dataset.get("parents") or []]
    if parents:
        # prov:wasDerivedFrom, not dct:source: DCAT-AP types dct:source's object as a full
        # dcat:Dataset, which a one-dataset document (drl dataset show --dcat) cannot repeat.
        node["prov:wasDerivedFrom"] = [{"@id": dataset_iri(base, p)} for p in parents]
    media_type = str(meta.get("media_type") or "application/octet-stream")
    distribution: dict[str, Any] = {
        "@id": iri + "#distribution",
        "@type": "dcat:Distribution",
        "dct:title": _lang(f"{title} ({media_type}, end-to-end encrypted)"),
        "dct:description": _lang(
            "Encrypted on the owner's machine; fetched under a grant and decrypted by the "
            "grantee, who checks the content hash registered on chain."
        ),
        "dcat:accessURL": {"@id": iri, "@type": "rdfs:Resource"},
        "dcat:mediaType": {"@id": IANA_MEDIA_TYPES + media_type, "@type": "dct:MediaType"},
        "dct:accessRights": node["dct:accessRights"],
    }
    size = quality.get("bytes", meta.get("plaintext_size"))
    if isinstance(size, int) and not isinstance(size, bool):
        distribution["dcat:byteSize"] = _typed(size, "xsd:nonNegativeInteger")
    digest = quality.get("sha256")
    if isinstance(digest, str) and len(digest) == 64:
        distribution["spdx:checksum"] = {
            "@type": "spdx:Checksum",
            "spdx:algorithm": {
                "@id": "spdx:checksumAlgorithm_sha256",
                "@type": "spdx:ChecksumAlgorithm",
            },
            "spdx:checksumValue": _typed(digest, "xsd:hexBinary"),
        }
    if meta.get("schema"):
        distribution["dct:conformsTo"] = {
            "@id": TABLE_SCHEMA_SPEC,
            "@type": "dct:Standard",
            "dct:title": _lang("Frictionless Table Schema"),
        }
    node["dcat:distribution"] = distribution
    return node


def catalog_document(
    datasets: list[dict[str, Any]],
    *,
    base: str,
    publishers: dict[str, str],
    title: str = "Data Rights Ledger catalog",
    operator: str = "The data bureau",
) -> dict[str, Any]:
    """The whole catalog as one JSON-LD document (``dcat:Catalog`` with its datasets)."""
    root = base.rstrip("/")
    return {
        "@context": CONTEXT,
        "@id": f"{root}/v1/catalog",
        "@type": "dcat:Catalog",
        "dct:title": _lang(title),
        "dct:description": _lang(
            "Datasets registered on the Data Rights Ledger: data-rights certificates on chain, "
            "contents end-to-end encrypted, access under signed grants."
        ),
        "dct:publisher": {
            "@id": f"{root}/v1/operator",
            "@type": "foaf:Agent",
            "foaf:name": operator,
        },
        "dcat:dataset": [
            dataset_node(d, base=base, publisher=publishers.get(str(d["owner"]), str(d["owner"])))
            for d in datasets
        ],
    }


def dataset_document(dataset: dict[str, Any], *, base: str, publisher: str) -> dict[str, Any]:
    """One dataset as a standalone JSON-LD document."""
    return {"@context": CONTEXT, **dataset_node(dataset, base=base, publisher=publisher)}


def data_package(dataset: dict[str, Any], *, path: str) -> dict[str, Any]:
    """A Frictionless Data Package descriptor for a fetched dataset at ``path`` (relative).

    Data tools (frictionless, pandas via frictionless, Open Data Editor) then open the file
    with the schema the owner signed; ``frictionless validate datapackage.json`` re-runs the
    owner's check on the consumer's side.
    """
    meta: dict[str, Any] = dataset.get("metadata") or {}
    quality: dict[str, Any] = meta.get("quality") or {}
    media_type = str(meta.get("media_type") or "text/csv")
    fmt = path.rsplit(".", 1)[-1].lower() if "." in path else "csv"
    resource: dict[str, Any] = {
        "name": f"dataset-{dataset['id']}",
        "path": path,
        "format": fmt,
        "mediatype": media_type,
    }
    if meta.get("schema"):
        resource["schema"] = meta["schema"]
    if isinstance(quality.get("sha256"), str):
        resource["hash"] = "sha256:" + quality["sha256"]
    if isinstance(quality.get("bytes"), int):
        resource["bytes"] = quality["bytes"]
    package: dict[str, Any] = {
        "name": f"drl-dataset-{dataset['id']}",
        "title": str(dataset["title"]),
        "resources": [resource],
    }
    if meta.get("description"):
        package["description"] = str(meta["description"])
    if meta.get("keywords"):
        package["keywords"] = list(meta["keywords"])
    return package
