import hashlib
import json

from support import import_jsonl

TEXTS = [
    ("🧪 Combine the notes", "Café 👩‍🔬 résumé — done"),
    ("Say hello in Arabic", "مرحبا 👋 hello"),
    ("用中文回答", "中文"),
    ("Quotes \"and\" back\\slashes", "Line one\nline two\r\nend\ttab"),
    ("e\u0301 combining", "a\u0308 too"),
]


def _seed(api, project):
    rows = [{"prompt": p, "completion": c} for p, c in TEXTS]
    assert import_jsonl(api, project, rows).json()["created"] == len(TEXTS)


def _snapshot(api, project, **options):
    body = {"include_unreviewed": True, "validation_fraction": 0, **options}
    response = api.post(f"/api/v1/projects/{project}/snapshots", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _download(api, project, number, name):
    response = api.get(f"/api/v1/projects/{project}/snapshots/{number}/files/{name}")
    assert response.status_code == 200, response.text
    return response.content


def test_export_keeps_text_byte_for_byte(admin_api, project):
    _seed(admin_api, project)
    snapshot = _snapshot(admin_api, project)
    raw = _download(admin_api, project, snapshot["number"], "train.messages.jsonl")
    rows = [json.loads(line) for line in raw.decode("utf-8").splitlines()]
    exported = [(r["messages"][0]["content"], r["messages"][1]["content"]) for r in rows]
    assert exported == TEXTS
    for prompt, response in TEXTS:
        assert json.dumps(prompt, ensure_ascii=False)[1:-1].encode() in raw
        assert json.dumps(response, ensure_ascii=False)[1:-1].encode() in raw
    assert b"\\u" not in raw


def test_export_writes_chinese_unescaped(admin_api, project):
    _seed(admin_api, project)
    snapshot = _snapshot(admin_api, project)
    for name in snapshot["files"]:
        raw = _download(admin_api, project, snapshot["number"], name)
        if snapshot["files"][name]["rows"]:
            assert "中文".encode() in raw, name
            assert b"\\u4e2d\\u6587" not in raw, name


def test_manifest_sha256_matches_download(admin_api, project):
    _seed(admin_api, project)
    snapshot = _snapshot(admin_api, project)
    for name, info in snapshot["files"].items():
        raw = _download(admin_api, project, snapshot["number"], name)
        assert hashlib.sha256(raw).hexdigest() == info["sha256"]
        assert len(raw) == info["bytes"]


def test_two_snapshots_byte_identical(admin_api, project):
    _seed(admin_api, project)
    first = _snapshot(admin_api, project, validation_fraction=0.4, seed=7)
    second = _snapshot(admin_api, project, validation_fraction=0.4, seed=7)
    assert second["number"] == first["number"] + 1
    assert {n: f["sha256"] for n, f in first["files"].items()} == {n: f["sha256"] for n, f in second["files"].items()}


def test_split_groups_same_prompt(admin_api, project):
    rows = []
    for n in range(40):
        rows.append({"prompt": f"Prompt {n}", "completion": "first answer"})
        rows.append({"prompt": f"prompt  {n}", "completion": "second answer"})
    import_jsonl(admin_api, project, rows)
    snapshot = _snapshot(admin_api, project, validation_fraction=0.3, seed=3)
    assert snapshot["row_counts"]["validation"] > 0
    assert snapshot["row_counts"]["train"] > 0

    def prompts(name):
        raw = _download(admin_api, project, snapshot["number"], name).decode()
        return {" ".join(json.loads(line)["messages"][0]["content"].lower().split()) for line in raw.splitlines()}

    assert prompts("train.messages.jsonl").isdisjoint(prompts("validation.messages.jsonl"))


def test_default_snapshot_takes_only_accepted(admin_api, project):
    _seed(admin_api, project)
    snapshot = admin_api.post(f"/api/v1/projects/{project}/snapshots", json={}).json()
    assert snapshot["row_counts"]["items"] == 0
    assert snapshot["filters"]["statuses"] == ["accepted"]


def test_formats_written(admin_api, project):
    _seed(admin_api, project)
    import_jsonl(admin_api, project, [{"prompt": "Pick", "chosen": "good", "rejected": "bad"}])
    snapshot = _snapshot(admin_api, project)
    names = set(snapshot["files"])
    assert {"train.messages.jsonl", "train.prompt_completion.jsonl", "train.alpaca.json",
            "train.sharegpt.json", "train.preference.jsonl"} <= names
    alpaca = json.loads(_download(admin_api, project, snapshot["number"], "train.alpaca.json"))
    assert alpaca[0] == {"instruction": TEXTS[0][0], "input": "", "output": TEXTS[0][1]}
    preference = [json.loads(line) for line in _download(
        admin_api, project, snapshot["number"], "train.preference.jsonl").splitlines()]
    assert preference == [{
        "prompt": [{"role": "user", "content": "Pick"}],
        "chosen": [{"role": "assistant", "content": "good"}],
        "rejected": [{"role": "assistant", "content": "bad"}],
    }]


def test_no_preference_file_without_pairs(admin_api, project):
    _seed(admin_api, project)
    snapshot = _snapshot(admin_api, project)
    assert not any("preference" in name for name in snapshot["files"])


def test_invalid_format_named(admin_api, project):
    response = admin_api.post(f"/api/v1/projects/{project}/snapshots", json={"formats": ["csv"]})
    assert response.status_code == 422
    assert "csv" in response.json()["error"]["message"]


def test_unknown_file_404(admin_api, project):
    _seed(admin_api, project)
    snapshot = _snapshot(admin_api, project)
    response = admin_api.get(f"/api/v1/projects/{project}/snapshots/{snapshot['number']}/files/..%2Fsecret")
    assert response.status_code == 404


def test_non_member_cannot_download(admin_api, user_factory, project):
    _seed(admin_api, project)
    snapshot = _snapshot(admin_api, project)
    outsider = user_factory("outsider")
    response = outsider.get(f"/api/v1/projects/{project}/snapshots/{snapshot['number']}/files/train.messages.jsonl")
    assert response.status_code == 404


def test_snapshot_list_paginates(admin_api, project):
    _seed(admin_api, project)
    for _ in range(3):
        _snapshot(admin_api, project)
    page = admin_api.get(f"/api/v1/projects/{project}/snapshots", params={"page_size": 2}).json()
    assert page["total"] == 3
    assert [s["number"] for s in page["items"]] == [3, 2]


def test_small_snapshot_keeps_one_validation_prompt(admin_api, project):
    rows = [{"prompt": f"Small set prompt {n}", "completion": "answer"} for n in range(4)]
    import_jsonl(admin_api, project, rows)
    for seed in range(6):
        snapshot = _snapshot(admin_api, project, validation_fraction=0.01, seed=seed)
        assert snapshot["row_counts"]["validation"] >= 1, seed
        assert snapshot["row_counts"]["train"] >= 1, seed
    again = _snapshot(admin_api, project, validation_fraction=0.01, seed=5)
    assert again["files"]["validation.messages.jsonl"]["sha256"] == snapshot["files"]["validation.messages.jsonl"]["sha256"]


def test_single_prompt_stays_in_train(admin_api, project):
    import_jsonl(admin_api, project, [{"prompt": "Only prompt", "completion": "answer"}])
    snapshot = _snapshot(admin_api, project, validation_fraction=0.01)
    assert snapshot["row_counts"]["train"] == 1
    assert snapshot["row_counts"]["validation"] == 0


def test_preference_rows_not_counted_as_skipped(admin_api, project):
    import_jsonl(admin_api, project, [{"prompt": "Pick", "chosen": "good", "rejected": "bad"}])
    import_jsonl(admin_api, project, [{"prompt": "Plain", "completion": "ok"}])
    snapshot = _snapshot(admin_api, project)
    assert snapshot["row_counts"]["skipped_by_format"] == {}
    assert snapshot["row_counts"]["items"] == 2
