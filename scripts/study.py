"""Run a capacity study (same as `autoenc-study`): `python scripts/study.py --help` lists the options."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a clone that is not pip-installed still finds it
try:
    early = None
    if __name__ == "__main__":  # the study's workers start before the heavy imports below
        from autoenc_cli._early import leave, start_workers

        early = start_workers(sys.argv[1:])
    from autoenc_cli.study import build_config, main, parse_args
except ModuleNotFoundError as exc:  # this Python lacks the dependencies: say which Python to use instead
    print(f"error: {exc} in {sys.executable}; run .venv/bin/python scripts/study.py, or activate the "
          "environment first (. .venv/bin/activate); see the README's set-up", file=sys.stderr)
    sys.exit(2)

__all__ = ["build_config", "main", "parse_args"]

if __name__ == "__main__":  # this file is the process's own command, or run by another program (runpy)
    own = Path(getattr(sys, "orig_argv", [None, ""])[1:2][0] or "").resolve() == Path(__file__).resolve()
    sys.exit(leave(main(), early, whole_process=own))
