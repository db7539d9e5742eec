"""Put study folders side by side in one report (same as `autoenc-compare`): `python scripts/compare.py --help`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a clone that is not pip-installed still finds it
try:
    from autoenc_cli.compare import main
except ModuleNotFoundError as exc:  # this Python lacks the dependencies: say which Python to use instead
    print(f"error: {exc} in {sys.executable}; run .venv/bin/python scripts/compare.py, or activate the "
          "environment first (. .venv/bin/activate); see the README's set-up", file=sys.stderr)
    sys.exit(2)

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
