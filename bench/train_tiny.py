"""Measure CPU training speed and memory of app.training.finetune on 1,000 real rows.

The script converts 500 Chinese and 500 English Alpaca rows from the shared data directory into a
snapshot in the messages format, in a temporary directory. It builds the tiny model on their text
and fine-tunes it with LoRA for one epoch, once without and once with packing. Each run happens in
its own child process, so that the peak RSS it prints belongs to that run alone. It prints
training tokens per second (input tokens, padding excluded), the peak RSS of each run, and the CPU
pressure around it, because other processes on a shared machine slow the runs down.

    .venv/bin/python bench/train_tiny.py                # both runs, one epoch each
    .venv/bin/python bench/train_tiny.py --max-steps 20 # a quicker look
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY_ROOT))
DEFAULT_DATA_DIR = REPOSITORY_ROOT.parent / "shared" / "data"
SOURCES = ("zh/llamafactory_alpaca_zh_demo.json", "en/llamafactory_alpaca_en_demo.json")
VALIDATION_ROWS_PER_SOURCE = 25


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="Directory with the zh/ and en/ Alpaca files."
    )
    parser.add_argument("--rows", type=int, default=1000, help="Training rows, half from each language.")
    parser.add_argument("--max-steps", type=int, default=None, help="Stop after this many optimizer steps.")
    parser.add_argument("--max-length", type=int, default=512, help="Maximum tokens per example or packed row.")
    parser.add_argument("--batch-size", type=int, default=8, help="Rows per optimizer step.")
    parser.add_argument("--packing", choices=("both", "on", "off"), default="both")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child is not None:
        return _run_child(args)

    with tempfile.TemporaryDirectory(prefix="sftdesk-bench-") as work_dir:
        work = Path(work_dir)
        snapshot = write_alpaca_snapshot(args.data_dir, args.rows, work / "snapshot")
        model_dir = _build_model(snapshot, work / "tiny-model")
        modes = {"both": ("off", "on"), "on": ("on",), "off": ("off",)}[args.packing]
        results = []
        for mode in modes:
            spec = {
                "model_dir": str(model_dir),
                "snapshot": str(snapshot),
                "output": str(work / f"output-packing-{mode}"),
                "packing": mode == "on",
                "max_steps": args.max_steps,
                "max_length": args.max_length,
                "batch_size": args.batch_size,
            }
            spec_path = work / f"spec-{mode}.json"
            spec_path.write_text(json.dumps(spec), encoding="utf-8")
            pressure_before = _cpu_pressure()
            completed = subprocess.run(
                [sys.executable, __file__, "--child", str(spec_path)],
                cwd=REPOSITORY_ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            if completed.returncode != 0:
                print(completed.stderr, file=sys.stderr)
                return completed.returncode
            result = json.loads(completed.stdout.strip().splitlines()[-1])
            result["cpu_pressure"] = (pressure_before, _cpu_pressure())
            results.append(result)

    _print_table(args, results)
    return 0


def write_alpaca_snapshot(data_dir: Path, rows: int, directory: Path) -> Path:
    """Write `rows` training rows (half Chinese, half English) and 50 validation rows in the messages format."""
    per_source = rows // len(SOURCES)
    train, validation = [], []
    for source in SOURCES:
        records = json.loads((data_dir / source).read_text(encoding="utf-8"))
        needed = per_source + VALIDATION_ROWS_PER_SOURCE
        if len(records) < needed:
            raise SystemExit(f"{data_dir / source} has {len(records)} rows; {needed} are needed")
        messages = [alpaca_to_messages(record) for record in records[:needed]]
        train.extend(messages[:per_source])
        validation.extend(messages[per_source:])
    random.Random(0).shuffle(train)

    directory.mkdir(parents=True)
    for name, split in (("train", train), ("validation", validation)):
        lines = [json.dumps({"messages": messages}, ensure_ascii=False) for messages in split]
        (directory / f"{name}.messages.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def alpaca_to_messages(record: dict) -> list[dict[str, str]]:
    prompt = record["instruction"]
    if record.get("input"):
        prompt = f"{prompt}\n\n{record['input']}"
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": record["output"]}]


def _build_model(snapshot: Path, directory: Path) -> Path:
    # Built in a child process too, so that the parent never imports torch.
    script = (
        "import json, sys\n"
        "from app.training.tiny_model import build_tiny_model\n"
        "lines = open(sys.argv[1], encoding='utf-8').read().splitlines()\n"
        "corpus = [m['content'] for line in lines for m in json.loads(line)['messages']]\n"
        "build_tiny_model(sys.argv[2], corpus)\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(snapshot / "train.messages.jsonl"), str(directory)],
        cwd=REPOSITORY_ROOT,
        check=True,
        capture_output=True,
    )
    return directory


def _run_child(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import structlog

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    from app.training.finetune import run_finetune

    spec = json.loads(args.child.read_text(encoding="utf-8"))
    config = {
        "base_model": spec["model_dir"],
        "packing": spec["packing"],
        "max_steps": spec["max_steps"],
        "max_length": spec["max_length"],
        "per_device_train_batch_size": spec["batch_size"],
        "learning_rate": 1e-3,
        "logging_steps": 10,
        "save_steps": 1_000_000,
    }
    result = run_finetune(config, spec["snapshot"], spec["output"])
    summary = {
        "packing": spec["packing"],
        "rows": result["data_report"]["kept"],
        "truncated": result["data_report"]["truncated"]["count"],
        "train_rows": result["train_rows"],
        "steps": result["train_metrics"]["global_step"],
        "runtime_seconds": result["train_metrics"]["train_runtime_seconds"],
        "tokens_seen": result["tokens_seen"],
        "tokens_per_second": result["tokens_per_second"],
        "train_loss": result["train_metrics"]["train_loss"],
        "peak_rss_bytes": result["peak_memory"]["peak_rss_bytes"],
    }
    print(json.dumps(summary))
    return 0


def _print_table(args: argparse.Namespace, results: list[dict]) -> None:
    steps = f"{args.max_steps} steps" if args.max_steps is not None else "one epoch"
    print(
        f"tiny model, LoRA, CPU ({os.cpu_count()} cores): {results[0]['rows']} rows kept, "
        f"{results[0]['truncated']} truncated at max_length {args.max_length}, batch {args.batch_size}, {steps}"
    )
    header = (
        f"{'packing':<8} {'rows':>6} {'steps':>6} {'seconds':>8} {'tokens':>9} {'tokens/s':>9} "
        f"{'peak RSS MiB':>13} {'CPU pressure before/after':>26}"
    )
    print(header)
    for result in results:
        before, after = result["cpu_pressure"]
        pressure = f"{_format_pressure(before)} / {_format_pressure(after)}"
        print(
            f"{'on' if result['packing'] else 'off':<8} {result['train_rows']:>6} {result['steps']:>6} "
            f"{result['runtime_seconds']:>8.1f} {result['tokens_seen']:>9} {result['tokens_per_second']:>9.0f} "
            f"{result['peak_rss_bytes'] / 2**20:>13.0f} {pressure:>26}"
        )
    print(
        "CPU pressure is the share of the last 60 s in which runnable tasks waited for a CPU (Linux PSI). "
        "Other processes on the machine lower tokens/s when it is high."
    )


def _cpu_pressure() -> float | None:
    """Return the "some avg60" value of /proc/pressure/cpu in percent, or None where Linux does not provide it."""
    try:
        first_line = Path("/proc/pressure/cpu").read_text(encoding="utf-8").splitlines()[0]
    except OSError:
        return None
    fields = dict(item.split("=") for item in first_line.split()[1:])
    return float(fields["avg60"])


def _format_pressure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}%"


if __name__ == "__main__":
    sys.exit(main())
