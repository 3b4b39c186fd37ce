"""Import every public sample file through the REST API, export it, and compare the text.

The files live in ../shared/data beside the repository (see its SOURCES.md); the test is skipped
when they are absent. Expected counts are records the importer yields per file, and rows it rejects.
"""

import gzip
import json
from pathlib import Path

import pytest

from sample_counts import SAMPLE_COUNTS
from support import SHARED_DATA

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"sample data not found at {SHARED_DATA}")

# path relative to the data folder -> (records created or found duplicate, rows rejected)
EXPECTED = SAMPLE_COUNTS
MOSS_DIR = "chat/moss_003_sft_sample/helpful_brainstorming_conversations"
# Files whose messages are rebuilt from parts (reasoning blocks, tool calls as JSON), so their
# exported text is checked against the database only, not against the raw source strings.
REBUILT_TEXT = {"chat/llamafactory_reason_tool_use_demo_50.jsonl", "chat/llamafactory_v1_sft_demo.jsonl",
                "chat/oasst_realistic_seed_data.json", "preference/oasst_en_100_tree.jsonl"}


def _expected_files(category):
    if category == "rebuilt":
        return {path: EXPECTED[path] for path in REBUILT_TEXT}
    expected = {
        path: counts for path, counts in EXPECTED.items() if path.startswith(category + "/") and path not in REBUILT_TEXT
    }
    if category == "chat":
        for path in sorted((SHARED_DATA / MOSS_DIR).glob("*.json")):
            expected[str(path.relative_to(SHARED_DATA))] = (1, 0)
    return expected


def _source_strings(path: Path) -> set[str]:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    text = raw.decode("utf-8-sig")
    try:
        documents = [json.loads(text)]
    except json.JSONDecodeError:
        documents = [json.loads(line) for line in text.splitlines() if line.strip()]
    strings: set[str] = set()

    def walk(value):
        if isinstance(value, str):
            strings.add(value)
        elif isinstance(value, list):
            for element in value:
                walk(element)
        elif isinstance(value, dict):
            for element in value.values():
                walk(element)
            instruction, extra = value.get("instruction"), value.get("input")
            if isinstance(instruction, str) and isinstance(extra, str) and extra:
                strings.add(f"{instruction}\n\n{extra}")
            for instance in value.get("instances") or []:
                if isinstance(instruction, str) and isinstance(instance, dict) and instance.get("input"):
                    strings.add(f"{instruction}\n\n{instance['input']}")

    for document in documents:
        walk(document)
    return strings


def _read_export(api, project, snapshot, fmt):
    rows = []
    for split in ("train", "validation"):
        name = f"{split}.{fmt}.jsonl"
        if name in snapshot["files"]:
            raw = api.get(f"/api/v1/projects/{project}/snapshots/{snapshot['number']}/files/{name}").content
            rows += [json.loads(line) for line in raw.decode("utf-8").splitlines()]
    return rows


@pytest.mark.parametrize("category", ["en", "zh", "chat", "preference", "rebuilt"])
def test_shared_data_imports_and_exports_byte_for_byte(admin_api, category):
    project = f"shared-{category}"
    assert admin_api.post("/api/v1/projects", json={"slug": project, "name": project}).status_code == 201

    sources: dict[str, set[str]] = {}
    records = rejected = created = 0
    for relative, (expected_records, expected_rejected) in sorted(_expected_files(category).items()):
        path = SHARED_DATA / relative
        with path.open("rb") as handle:
            response = admin_api.post(
                f"/api/v1/projects/{project}/items", files={"file": (path.name, handle, "application/octet-stream")},
            )
        assert response.status_code == 201, f"{relative}: {response.text[:500]}"
        body = response.json()
        assert (body["created"] + body["duplicates"], body["rejected"]) == (expected_records, expected_rejected), relative
        assert all(error["reason"] for error in body["errors"]), relative
        records += expected_records
        rejected += expected_rejected
        created += body["created"]
        sources[relative] = _source_strings(path)

    listed = admin_api.get(f"/api/v1/projects/{project}/items", params={"page_size": 1}).json()
    assert listed["total"] == created

    snapshot = admin_api.post(
        f"/api/v1/projects/{project}/snapshots",
        json={"include_unreviewed": True, "formats": ["messages", "preference"], "validation_fraction": 0.1},
    )
    assert snapshot.status_code == 201, snapshot.text
    snapshot = snapshot.json()
    counts = snapshot["row_counts"]
    assert counts["items"] + counts["without_response"] == created
    assert counts["train"] + counts["validation"] == counts["items"]

    exported = _read_export(admin_api, project, snapshot, "messages") + _read_export(admin_api, project, snapshot, "preference")
    assert len(exported) >= counts["items"] - counts.get("skipped_by_format", {}).get("messages", 0)

    if category == "rebuilt":
        _assert_export_matches_database(admin_api, project, exported)
        return

    all_source = set().union(*sources.values())
    haystack = "\x00".join(all_source)
    for row in exported:
        messages = row.get("messages") or row["prompt"] + row["chosen"] + row["rejected"]
        for message in messages:
            content = message.get("content")
            # Anthropic HH transcripts are split into turns on import, so a turn is a substring of
            # its source string rather than a whole string.
            assert not content or content in all_source or content in haystack, content[:200]


def _assert_export_matches_database(api, project, exported):
    stored = set()
    page = 1
    while True:
        listing = api.get(f"/api/v1/projects/{project}/items", params={"page": page, "page_size": 500}).json()
        for item in listing["items"]:
            detail = api.get(f"/api/v1/projects/{project}/items/{item['id']}").json()
            stored.update(message["content"] for message in detail["messages"])
            stored.update(candidate["text"] for candidate in detail["candidates"])
        if page >= listing["pages"]:
            break
        page += 1
    for row in exported:
        messages = row.get("messages") or row["prompt"] + row["chosen"] + row["rejected"]
        for message in messages:
            if message["role"] != "assistant" or not message.get("tool_calls"):
                assert message["content"] in stored, message["content"][:200]


def test_messy_files_import_or_fail_clearly(admin_api):
    project = "shared-messy"
    admin_api.post("/api/v1/projects", json={"slug": project, "name": project})
    outcomes = {"imported": 0, "rejected_whole_file": 0}
    for path in sorted((SHARED_DATA / "messy").rglob("*")):
        if not path.is_file():
            continue
        with path.open("rb") as handle:
            response = admin_api.post(
                f"/api/v1/projects/{project}/items", files={"file": (path.name, handle, "application/octet-stream")},
            )
        assert response.status_code in (201, 422), f"{path.name}: {response.status_code} {response.text[:300]}"
        if response.status_code == 201:
            body = response.json()
            assert all(error["reason"] and error["record"] >= 1 for error in body["errors"]), path.name
            outcomes["imported"] += 1
        else:
            assert len(response.json()["error"]["message"]) > 10, path.name
            outcomes["rejected_whole_file"] += 1
    assert outcomes["imported"] > 100
    assert outcomes["rejected_whole_file"] > 10


def test_gbk_medical_csv_with_encoding(admin_api):
    project = "shared-gbk"
    admin_api.post("/api/v1/projects", json={"slug": project, "name": project})
    path = SHARED_DATA / "messy" / "chinese_medical_dialogue_neike_5000-6000.gbk.csv"
    with path.open("rb") as handle:
        failed = admin_api.post(
            f"/api/v1/projects/{project}/items", files={"file": (path.name, handle, "text/csv")},
            params={"csv_map": "prompt=ask,response=answer"},
        )
    assert failed.status_code == 422
    assert "encoding" in failed.json()["error"]["message"]
    with path.open("rb") as handle:
        response = admin_api.post(
            f"/api/v1/projects/{project}/items", files={"file": (path.name, handle, "text/csv")},
            params={"csv_map": "prompt=ask,response=answer", "encoding": "gbk"},
        )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["created"] + body["duplicates"] == 7644
    assert body["rejected"] == 0


def test_trailing_comma_json_keeps_valid_rows(admin_api):
    project = "shared-trailing"
    admin_api.post("/api/v1/projects", json={"slug": project, "name": project})
    path = SHARED_DATA / "messy" / "hikariming_alpaca_data-9407-12345.zh-unfinished.invalid.json"
    with path.open("rb") as handle:
        body = admin_api.post(
            f"/api/v1/projects/{project}/items", files={"file": (path.name, handle, "application/json")},
        ).json()
    assert body["created"] + body["duplicates"] == 2801
    assert body["rejected"] == 1
    assert "comma" in body["errors"][0]["reason"].lower()
