from support import import_jsonl


def test_import_and_snapshot_roundtrip(admin_api, project):
    rows = [
        {"instruction": "🧪 Combine the notes", "input": "", "output": "Café 👩‍🔬 résumé — done"},
        {"instruction": "Greet in Arabic", "input": "", "output": "مرحبا 👋 hello"},
        {"instruction": "中文问题", "input": "", "output": "中文"},
    ]
    response = import_jsonl(admin_api, project, rows)
    assert response.status_code == 201, response.text
    assert response.json()["created"] == 3

    response = admin_api.post(f"/api/v1/projects/{project}/snapshots", json={"include_unreviewed": True})
    assert response.status_code == 201, response.text
    print(response.json())
