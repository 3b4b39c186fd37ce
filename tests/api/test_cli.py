import json
import subprocess
import sys

import pytest


def _cli(*args, env_extra=None):
    import os

    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture
def cli_env(settings, admin_api, project):
    return {"SFTDESK_DATA_DIR": str(settings.data_dir)}


def test_create_user_command(cli_env):
    result = _cli("create-user", "newbie", "--role", "reviewer", env_extra=cli_env)
    assert result.returncode == 0, result.stderr
    assert "created reviewer 'newbie' with password:" in result.stdout


def test_create_user_duplicate_fails_clearly(cli_env):
    _cli("create-user", "twice", env_extra=cli_env)
    result = _cli("create-user", "twice", env_extra=cli_env)
    assert result.returncode == 2
    assert "already taken" in result.stderr


def test_import_and_export_commands(cli_env, tmp_path, admin_api, project):
    data = tmp_path / "rows.jsonl"
    data.write_text(
        json.dumps({"instruction": "中文指令", "input": "", "output": "中文回答"}, ensure_ascii=False) + "\n"
        + '{"instruction": 5, "output": "x"}\n',
        encoding="utf-8",
    )
    result = _cli("import", str(data), "--project", project, env_extra=cli_env)
    assert result.returncode == 0, result.stderr
    assert "1 created, 0 duplicates skipped, 1 rejected" in result.stdout
    assert "record 2:" in result.stdout

    result = _cli("export", "--project", project, "--include-unreviewed", "--validation-fraction", "0", env_extra=cli_env)
    assert result.returncode == 0, result.stderr
    assert "snapshot 1" in result.stdout
    path = next(line.split()[0] for line in result.stdout.splitlines() if "train.messages.jsonl" in line)
    assert "中文回答".encode() in open(path, "rb").read()


def test_import_unknown_project_fails_clearly(cli_env, tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text('{"prompt": "a", "completion": "b"}\n')
    result = _cli("import", str(data), "--project", "nope", env_extra=cli_env)
    assert result.returncode == 2
    assert "project 'nope' not found" in result.stderr
