"""Redraw a study's figures and report (same as `autoenc-plot`): `python scripts/plot.py --help`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a clone that is not pip-installed still finds it
try:
    from autoenc_cli.plot import main
except ModuleNotFoundError as exc:  # this Python lacks the dependencies: say which Python to use instead
    print(f"error: {exc} in {sys.executable}; run .venv/bin/python scripts/plot.py, or activate the "
          "environment first (. .venv/bin/activate); see the README's set-up", file=sys.stderr)
    sys.exit(2)

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
