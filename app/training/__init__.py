"""Fine-tuning, evaluation and generation for the worker.

Importing this package, `config`, `errors`, `data` or `metrics` loads no ML framework: torch,
transformers, trl, peft and datasets are imported only inside the modules that train or generate
(`finetune`, `evaluate`, `generate`, `tiny_model`, `loading`).
"""
