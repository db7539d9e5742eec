"""Every command the README shows in its ```bash blocks works when copied, in order, into a fresh folder.

Which lines run: each command (a line, or a part of a line between ``&&``) that starts with ``python scripts/``,
``python3 scripts/``, ``.venv/bin/python scripts/`` or ``autoenc-``; set-up lines (make, pip, venv, dask) are left
to the set-up they describe. How they run, so that the whole README takes seconds:
- in this process, in a fresh temporary working folder (so ``runs/...`` paths land there and a later command sees
  what an earlier one wrote): ``python scripts/x.py`` through the script file itself (``runpy``, as Python would
  run it), ``autoenc-x`` through its installed console-script entry point;
- with small settings appended (later flags win): the study gets ``--epochs 2 --seeds 0 --widths 8
  --no-memorization --latent none --no-report --jobs 1 --quiet``, train ``--epochs 2 --quiet``;
- data and config files the commands name (``--data features.npy``, ``--config study.toml``) are made before
  the first runs, once per file: a low-rank matrix of 80 samples and 10 features (more when a ``--bottlenecks``
  asks for more), as a CSV with a header and every ``--label-column`` named for it, and a StudyConfig with the
  defaults;
- a Dask address with a placeholder host (``tcp://HOST:8786``) becomes a local cluster's.
Every command must exit with status 0; a command that fails is reported with its output.
"""
import re
import runpy
import shlex
import sys
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import StudyConfig

ROOT = Path(__file__).resolve().parents[1]
PREFIXES = ("python scripts/", "python3 scripts/", ".venv/bin/python scripts/", "autoenc-")
SMALL = {
    "study": ["--epochs", "2", "--seeds", "0", "--widths", "8", "--no-memorization", "--audit", "none",
              "--no-landscape", "--latent", "none",
              "--no-report", "--jobs", "1", "--quiet"],
    "train": ["--epochs", "2", "--quiet"],
    "plot": [],
}
PLACEHOLDER_ADDRESS = re.compile(r"tcp://[A-Z_]+:\d+")


def readme_commands(text):
    """The runnable command lines of the README's ```bash blocks, in order."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith(PREFIXES):
                    commands.append(part)
    return commands


def command_name(words):
    """'study', 'train' or 'plot' from ``python scripts/study.py ...`` or ``autoenc-study ...``."""
    program = words[0] if words[0].startswith("autoenc-") else words[1]
    return Path(program).stem.removeprefix("autoenc-")


def option(words, name):
    return words[words.index(name) + 1] if name in words[:-1] else None


def make_stand_ins(commands, folder):
    """Write the small data and config files the commands name, each made once to suit every command using it."""
    rng = np.random.default_rng(0)
    needs = {}  # file -> (features needed, label columns)
    for words in commands:
        if option(words, "--data"):
            bottlenecks = [int(k) for k in (option(words, "--bottlenecks") or "0").replace(",", " ").split()]
            n_features, labels = needs.get(option(words, "--data"), (10, set()))
            needs[option(words, "--data")] = (max(n_features, max(bottlenecks) + 2),
                                              labels | {option(words, "--label-column")} - {None})
        config = option(words, "--config")
        if config and not (folder / config).exists():
            # the defaults: the appended flags make it small, and it resumes a default study in the same folder
            (folder / config).write_text(StudyConfig().to_toml() if config.endswith(".toml")
                                         else StudyConfig().to_json())
    for data, (n_features, labels) in needs.items():
        path = folder / data
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        X = rng.standard_normal((80, 3)) @ rng.standard_normal((3, n_features))
        X += 0.1 * rng.standard_normal(X.shape)
        if path.suffix == ".npy":
            np.save(path, X)
        elif path.suffix == ".npz":
            np.savez(path, X=X, y=np.arange(80) % 3)
        elif path.suffix == ".csv":
            frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(n_features)])
            for label in sorted(labels):
                frame[label] = np.arange(80) % 3
            frame.to_csv(path, index=False)
        else:
            raise AssertionError(f"no stand-in for {data}: add one to tests/test_readme.py")


def run_command(words):
    """Run one command in this process; return its exit status (``--help`` and argparse errors exit)."""
    name = command_name(words)
    argv = (words[1:] if words[0].startswith("autoenc-") else words[2:]) + SMALL.get(name, [])
    saved = sys.argv
    try:
        if words[0].startswith("autoenc-"):
            (entry,) = entry_points(group="console_scripts", name=words[0])
            return entry.load()(argv)
        sys.argv = [words[1], *argv]
        runpy.run_path(str(ROOT / words[1]), run_name="__main__")
    except SystemExit as exit_:
        return exit_.code
    finally:
        sys.argv = saved
    return 0


@pytest.fixture
def dask_address():
    """A local Dask scheduler (workers are threads of this process), started when a command needs one."""
    clusters = []

    def start():
        if not clusters:
            from distributed import LocalCluster

            clusters.append(LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                                         host="127.0.0.1", dashboard_address=None))
        return clusters[0].scheduler_address

    yield start
    for cluster in clusters:
        cluster.close()


def test_the_readme_finds_commands():
    commands = readme_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert commands, "the README shows no command to run (python scripts/... or autoenc-...)"
    assert readme_commands("```bash\nmake study\npip install x && python scripts/plot.py runs/a  # c\n```\n"
                           "```python\npython scripts/no.py\n```\n") == ["python scripts/plot.py runs/a  # c"]


def test_every_readme_command_works_when_copied(tmp_path, monkeypatch, capsys, dask_address):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the scripts put the repository first; undone afterwards
    commands = readme_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert commands, "the README shows no command to run"
    make_stand_ins([shlex.split(command, comments=True) for command in commands], tmp_path)
    failures = []
    for command in commands:
        if PLACEHOLDER_ADDRESS.search(command):
            command = PLACEHOLDER_ADDRESS.sub(dask_address(), command)
        status = run_command(shlex.split(command, comments=True))
        output = capsys.readouterr()
        if status not in (0, None):
            failures.append(f"{command}\n  exit status {status}: {(output.err or output.out).strip()[-600:]}")
    assert not failures, "README commands that fail when copied:\n" + "\n".join(failures)
