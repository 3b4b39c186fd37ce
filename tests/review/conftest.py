import sys
from pathlib import Path

# Review tests set up their annotations with the helpers in tests/annotation/annotating.py.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "annotation"))
