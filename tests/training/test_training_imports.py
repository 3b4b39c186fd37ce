"""The web process imports the job configs and metrics; they must not pull in an ML framework."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.training, pytest.mark.xdist_group("training")]

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
HEAVY_MODULES = ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "tokenizers")


def test_light_modules_import_no_ml_framework() -> None:
    script = (
        "import json, sys\n"
        "import app.training, app.training.config, app.training.errors, app.training.metrics, app.training.data\n"
        "from app.training.metrics import score_generations\n"
        "score_generations(['今天天气很好'], ['今天天气不错'])\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    loaded = {name.split(".")[0] for name in json.loads(completed.stdout)}
    for module in HEAVY_MODULES:
        assert module not in loaded, f"{module} was imported"
