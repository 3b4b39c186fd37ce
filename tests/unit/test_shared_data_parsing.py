"""Parse every public sample file in the shared data folder next to the repository.

The folder is not part of the repository, so each test skips when it is absent. Record
counts are pinned per file. Known odd shapes give RowErrors by design:

- MT-Bench questions have two user turns without answers (80 errors), and its reference
  answers have no questions (30 errors);
- the OpenAssistant seed file lists single messages with parent pointers (444 errors);
- 11 reasoning tool-use conversations end with a tool call instead of an assistant message;
- 9 Anthropic HH pairs have an empty chosen turn (4) or transcripts that differ before the
  last Assistant turn (5).
"""

import json
from pathlib import Path

import pytest

from app.items.importing import ImportFormatError, ImportOptions, read_records
from app.items.records import ImportRecord, RowError
from sample_counts import SAMPLE_COUNTS as EXPECTED_COUNTS

SHARED_DATA = Path(__file__).parents[2].parent / "shared" / "data"

# Relative path: (records, row errors).


def data_file(relative: str) -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared sample data not found at {SHARED_DATA}")
    return SHARED_DATA / relative


def parse(path: Path, **options) -> tuple[list[ImportRecord], list[RowError]]:
    with path.open("rb") as stream:
        items = list(read_records(stream, ImportOptions(filename=path.name, **options)))
    records = [item for item in items if isinstance(item, ImportRecord)]
    errors = [item for item in items if isinstance(item, RowError)]
    assert len(records) + len(errors) == len(items)
    return records, errors


@pytest.mark.parametrize("relative", sorted(EXPECTED_COUNTS))
def test_sample_file_counts(relative):
    path = data_file(relative)

    records, errors = parse(path)

    print(f"{relative}: {len(records)} records, {len(errors)} errors")
    assert (len(records), len(errors)) == EXPECTED_COUNTS[relative]
    assert all(error.reason.endswith(".") for error in errors)


def test_every_sample_file_is_counted():
    data_file(".")
    on_disk = {
        str(path.relative_to(SHARED_DATA))
        for folder in ("en", "zh", "chat", "preference")
        for path in (SHARED_DATA / folder).rglob("*")
        if path.is_file() and "moss_003_sft_sample" not in path.parts
    }

    assert on_disk == set(EXPECTED_COUNTS)


def test_moss_conversation_files():
    folder = data_file("chat/moss_003_sft_sample/helpful_brainstorming_conversations")
    paths = sorted(folder.glob("*.json"))

    results = [parse(path) for path in paths]

    assert len(paths) == 100
    assert all(len(records) == 1 and not errors for records, errors in results)
    assert all(records[0].messages[0].role == "system" for records, _ in results)


def test_gbk_csv_needs_the_encoding_option():
    path = data_file("messy/chinese_medical_dialogue_neike_5000-6000.gbk.csv")

    with pytest.raises(ImportFormatError) as caught:
        parse(path)
    records, errors = parse(path, encoding="gbk")

    assert "encoding option" in str(caught.value)
    assert "byte offset 28" in str(caught.value)
    assert (len(records), len(errors)) == (7644, 0)
    assert records[0].messages[0].content.startswith("我有高血压")


def test_awesome_prompts_csv_long_fields():
    path = data_file("messy/awesome_chatgpt_prompts_prompts.csv")

    records, errors = parse(path)
    all_records, no_errors = parse(path, max_text_chars=150_000)

    assert (len(records), [error.record for error in errors]) == (1209, [1018, 1209])
    assert "144,260 characters" in errors[1].reason
    assert "SFTDESK_MAX_TEXT_CHARS" in errors[1].reason
    assert (len(all_records), no_errors) == (1211, [])
    assert max(len(record.messages[0].content) for record in all_records) == 144_260


def test_utf16_doccano_csv():
    records, errors = parse(data_file("messy/doccano_example.utf16.csv"))

    assert [record.messages[0].content for record in records] == ["AAA", "BBB", "CCC"]
    assert errors == []


def test_invalid_json_with_trailing_comma_keeps_valid_elements():
    path = data_file("messy/hikariming_alpaca_data-9407-12345.zh-unfinished.invalid.json")

    records, errors = parse(path)

    assert len(records) == 2801
    (error,) = errors
    assert error.record == 2802
    assert "Trailing comma" in error.reason
    assert "line 14007" in error.reason


def test_csv_spectrum_matches_expected_parse():
    folder = data_file("messy/csv-spectrum")

    for csv_path in sorted((folder / "csvs").glob("*.csv")):
        expected = json.loads((folder / "json" / f"{csv_path.stem}.json").read_text(encoding="utf-8"))
        first_column = next(iter(expected[0]))
        records, errors = parse(csv_path, csv_mapping={"prompt": first_column})

        assert errors == [], csv_path.name
        assert [record.messages[0].content for record in records] == [row[first_column] for row in expected]
        assert [record.metadata for record in records] == [
            {key: value for key, value in row.items() if key != first_column} for row in expected
        ]


def test_csv_spectrum_without_mapping_asks_for_one():
    path = data_file("messy/csv-spectrum/csvs/simple.csv")

    with pytest.raises(ImportFormatError, match="csv_mapping"):
        parse(path)


def test_json_test_suite_never_crashes():
    folder = data_file("messy/JSONTestSuite/test_parsing")
    outcomes = {}

    for path in sorted(folder.glob("*.json")):
        try:
            _, errors = parse(path)
        except ImportFormatError as error:
            assert str(error), path.name
            outcomes[path.name] = "file error"
        else:
            assert all(error.reason for error in errors), path.name
            outcomes[path.name] = "errors" if errors else "records"

    assert len(outcomes) == 318
    rejected = {name for name, outcome in outcomes.items() if outcome != "records"}
    must_fail = {name for name in outcomes if name.startswith("n_")}
    assert must_fail <= rejected
    assert outcomes["y_string_accepted_surrogate_pair.json"] == "records"
    assert outcomes["i_string_1st_surrogate_but_2nd_missing.json"] == "errors"
    assert outcomes["i_string_UTF-16LE_with_BOM.json"] == "records"
