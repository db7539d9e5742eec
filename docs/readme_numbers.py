"""Regenerate the numbers README.md shows from fresh runs, or check that the README still agrees with them.

    python docs/readme_numbers.py                           # run the example and the default study, rewrite README
    python docs/readme_numbers.py --study runs/digits       # reuse a finished default study
    python docs/readme_numbers.py --check --study DIR       # exit 1 listing what disagrees; writes nothing

Four runs feed the README: the code block of its "In Python" section, executed as shown, the default study
(``autoenc-study`` with its defaults), its remedies and the default grid on ``patches`` (``readme_studies.py``). The README marks what they produce with HTML comments,
``<!-- readme_numbers: NAME -->`` ... ``<!-- /readme_numbers -->``; this script rewrites exactly those regions. The
verdict and the key-number table come from :func:`analysis.report.study_summary`, the same text the study's
``summary.md`` holds (the README shows a subset of the table's rows, chosen by :func:`table_rows`); the few sentences
around them are formatted here from the same files.

``--check`` compares numbers parsed from the text, not raw strings: the wording, identifiers and integers must
match exactly, and every decimal number within :data:`RTOL` plus one unit of its last printed digit (float32
arithmetic on another CPU moves the last digit when a value sits near a rounding boundary).
"""
from __future__ import annotations

import argparse
import contextlib
import difflib
import io
import json
import re
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
sys.path.insert(0, str(ROOT / "docs"))
import readme_studies  # noqa: E402  (the regions of the studies beside the default one)

# Float32 training on another CPU (other SIMD kernels, another BLAS) moved these numbers by up to about 1e-5
# relative when measured; 1e-4 leaves a tenfold margin and is still far below any change a reader would notice.
# Vectorized kernels only: ATEN_CPU_CAPABILITY=avx2 and avx512 gave identical studies here, while torch's scalar
# kernels (=default) round differently in every step and train to other models (up to 6% apart per run), and MKL's
# AVX2 kernels in place of its AVX-512 ones (autoenc._mkl) moved the Python example by 0.5%, the width-1024 runs
# by up to about 1%: the README's numbers come from MKL's AVX-512 kernels.
RTOL = 1e-4

REGION = re.compile(r"(<!-- readme_numbers: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /readme_numbers -->)", re.S)
PYTHON_REGIONS = ("python-example",)
STUDY_REGIONS = ("study-setup", "study-verdict", "study-table", "study-widths", "study-training",
                 *readme_studies.REGIONS)
WRAP = 115  # the README's line length

# A number standing on its own (not inside an identifier such as ae-k32-h1024): optional sign, thousands
# separators, decimals, an optional percent sign.
NUMBER = re.compile(r"(?<![\w.])(?P<sign>-?)(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<dec>\d+))?(?P<pct>%?)(?![\w])")


# ---------------------------------------------------------------------------------------------------------------
# Regions of the README

def regions(text):
    """The generated regions of ``text``: name -> body (the text between the markers, stripped)."""
    found = {}
    for match in REGION.finditer(text):
        if match["name"] in found:
            raise ValueError(f"README region {match['name']!r} appears twice")
        found[match["name"]] = match["body"].strip("\n")
    return found


def replace_regions(text, bodies):
    """``text`` with the named regions' bodies replaced; every name must be marked in ``text``."""
    missing = sorted(set(bodies) - set(regions(text)))
    if missing:
        raise ValueError(f"README has no region marked {missing}: add <!-- readme_numbers: NAME --> ... "
                         "<!-- /readme_numbers --> where each belongs")
    return REGION.sub(lambda m: m.group(1) + "\n" + bodies[m["name"]].strip("\n") + "\n\n" + m.group(4)
                      if m["name"] in bodies else m.group(0), text)


LIST_MARKER = re.compile(r"^\s*(\d+[.)]\s|[-+*>#]\s)")


def _wrap(text, indent="", width=WRAP):
    """``text`` filled to the README's width; never a continuation line that Markdown would read as a list item."""
    kept = re.sub(r"\[[^\]]*\]", lambda m: m.group(0).replace(" ", "\0"), text)  # an interval stays on one line
    lines = textwrap.wrap(kept, width, initial_indent=indent, subsequent_indent=" " * len(indent),
                          break_long_words=False, break_on_hyphens=False)
    if any(LIST_MARKER.match(line) for line in lines[1:]) and width > WRAP - 20:
        return _wrap(text, indent, width - 1)
    return "\n".join(lines).replace("\0", " ")


# ---------------------------------------------------------------------------------------------------------------
# Comparing text with numbers in it

def _numbers(text):
    """``text`` with every number replaced by a placeholder (whitespace normalized), and the numbers."""
    values = []

    def take(match):
        digits = match["int"].replace(",", "")
        decimals = len(match["dec"] or "")
        value = float(f"{match['sign']}{digits}.{match['dec'] or '0'}")
        values.append((match.group(0), value, decimals, bool(match["pct"])))
        return "#"

    skeleton = NUMBER.sub(take, text)
    return " ".join(skeleton.split()), values


def differences(expected, actual, rtol=RTOL):
    """Where ``actual`` disagrees with ``expected``: wording, identifiers and integers exactly; numbers with a
    decimal point or a percent sign within ``rtol`` (relative) plus one unit of the last printed digit.

    Two printouts of values ``rtol`` apart, each rounded to its last digit, can differ by that much and no more.
    Returns a list of one-line descriptions, empty when they agree.
    """
    skeleton_e, numbers_e = _numbers(expected)
    skeleton_a, numbers_a = _numbers(actual)
    if skeleton_e != skeleton_a or len(numbers_e) != len(numbers_a):
        diff = difflib.unified_diff(expected.splitlines(), actual.splitlines(), "README", "computed", lineterm="", n=0)
        return ["the wording differs:"] + ["  " + line for line in list(diff)[2:]]
    out = []
    for (text_e, e, dec_e, pct_e), (text_a, a, dec_a, pct_a) in zip(numbers_e, numbers_a):
        if dec_e == 0 and not pct_e:  # counts, sizes, epochs, seeds: exact
            ok = text_e == text_a
        else:
            unit = 10.0 ** -max(dec_e, dec_a)
            ok = pct_e == pct_a and abs(e - a) <= unit + rtol * max(abs(e), abs(a)) + 1e-12
        if not ok:
            out.append(f"README shows {text_e}, the code computes {text_a}")
    return out


# ---------------------------------------------------------------------------------------------------------------
# The Python example

def python_example_code(readme_text):
    """The first ```python block of the README's "In Python" section, as it is shown."""
    section = re.search(r"^## In Python\n(.*?)(?=^## |\Z)", readme_text, flags=re.S | re.M)
    block = section and re.search(r"```python\n(.*?)```", section.group(1), flags=re.S)
    if not block:
        raise ValueError("README has no ```python block in its '## In Python' section")
    return block.group(1)


def run_python_example(code):
    """Execute ``code`` in a fresh namespace; return what it printed and the namespace."""
    namespace = {"__name__": "__readme__"}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md (In Python)", "exec"), namespace)
    return printed.getvalue(), namespace


def python_regions(printed, namespace):
    """The python-example region: the printed table, then what it says in words."""
    table = namespace["table"].set_index(["model", "split"])
    config = namespace["model"].config
    k, d = config.bottleneck, config.input_dim
    ae, pca = table.loc["autoencoder"], table.loc["pca"]
    auc = ae.loc["test", "membership_auc"]
    beats = pca.loc["test", "mse_clean"] < ae.loc["test", "mse_clean"]
    words = (f"The wide network reproduces {ae.loc['train', 'noise_memorization']:.0%} of the noise of the samples "
             f"it saw and {ae.loc['test', 'noise_memorization']:.0%} of unseen samples' noise (a rank-{k} projection "
             f"keeps about k/d = {k}/{d} = {k / d:.0%}); its error tells the samples it saw from unseen ones "
             f"(membership AUC {auc:.3f}; 0.5 = no leakage). PCA with the same {k} components "
             f"{'beats' if beats else 'does not beat'} it on unseen samples' clean signal "
             f"({pca.loc['test', 'mse_clean']:.4f} against {ae.loc['test', 'mse_clean']:.4f}).")
    return {"python-example": f"```\n{printed.rstrip()}\n```\n{_wrap(words)}"}


# ---------------------------------------------------------------------------------------------------------------
# The default study

def run_default_study(out):
    """Run ``autoenc-study`` with its defaults into ``out`` (a finished study there is reused, not retrained)."""
    from autoenc_cli.study import main as study_main

    with contextlib.redirect_stdout(io.StringIO()):  # its own verdict: the README shows it below
        status = study_main(["--out", str(out), "--quiet"])
    if status not in (0, None):
        raise RuntimeError(f"autoenc-study --out {out} exited with status {status}")
    return Path(out)


def check_default_study(folder):
    """Raise unless ``folder`` holds a finished study made with the defaults of ``autoenc-study``."""
    from analysis import StudyConfig

    meta_path = Path(folder) / "study.json"
    if not meta_path.exists() or not (Path(folder) / "selection.json").exists():
        raise ValueError(f"{folder} is not a finished study folder (no study.json or selection.json)")
    saved = StudyConfig.from_dict(json.loads(meta_path.read_text(encoding="utf-8"))["config"]).to_dict()
    default = StudyConfig().to_dict()
    changed = sorted(k for k in default if saved.get(k) != default[k])
    if changed:
        raise ValueError(f"{folder} is not the default study: {', '.join(changed)} differ from the defaults")


def table_rows(table, selection):
    """Which rows of the key-number table the README shows: PCA, the selected autoencoder's width and the widest,
    at the selected bottleneck and at the largest."""
    chosen = selection.get("autoencoder") if isinstance(selection.get("autoencoder"), dict) else selection
    ae = table[table["model"] == "autoencoder"]
    widest = ae.loc[ae["n_params"].idxmax(), "hidden"]
    ks = sorted({int(chosen["bottleneck"]), int(table["bottleneck"].max())})
    hidden = sorted({str(chosen["hidden"]), str(widest)}, key=lambda h: ae.loc[ae["hidden"] == h, "n_params"].min())
    keep = table["bottleneck"].isin(ks) & ((table["model"] == "pca") | table["hidden"].astype(str).isin(hidden))
    return [i for i, flag in enumerate(keep.to_numpy()) if flag], ks, hidden


def _listing(values):
    return "{" + ", ".join(str(v) for v in values) + "}"


def _setup(config):
    shares = "/".join(f"{round(100 * f)}" for f in config["fractions"])
    audited = " and for the ".join(config["audit"])
    return _wrap(
        f"`autoenc-study` (what `make study` runs) takes scikit-learn's 8x8 digits scaled to [0, 1], adds static "
        f"Gaussian noise of std {config['noise_std']}, splits {shares} (stratified, seed {config['seed']}), trains "
        f"autoencoders over bottleneck k in {_listing(config['bottlenecks'])} x hidden width "
        f"{_listing(config['widths'])} x seed {_listing(config['seeds'])} for the full budget of "
        f"{config['train']['epochs']} epochs (no early stopping, which would hide memorization), fits PCA at every "
        f"bottleneck, trains {config['n_references']} reference models for the {audited} autoencoder, and opens "
        "its output with a verdict (`runs/digits/summary.md`, the top of `report.html`, the command line):")


def _widths_paragraph(table):
    ae, pca = table[table["model"] == "autoencoder"], table[table["model"] == "pca"].set_index("bottleneck")
    k_max = int(table["bottleneck"].max())
    widest = ae[ae["bottleneck"] == k_max].sort_values("n_params").iloc[-1]
    parts = []
    for k, rows in ae.groupby("bottleneck", sort=True):
        best = rows.loc[rows["test_mse_clean"].idxmin()]
        parts.append(f"k = {k}: {best['test_mse_clean']:.4f} (width {best['hidden']}) against "
                     f"{pca.loc[k, 'test_mse_clean']:.4f}")
    return _wrap(
        f"At k = {k_max} the widest networks (width {widest['hidden']}) reproduce {widest['nm_seen']:.0%} of their "
        f"training samples' noise against {widest['nm_unseen']:.0%} of unseen samples' (the rank-{k_max} PCA "
        f"projection keeps {widest['nm_reference']:.0%}), and their membership AUC is "
        f"{widest['membership_auc']:.3f}. The lowest unseen error against the clean signal among the autoencoders, "
        f"against PCA's, at each bottleneck: {'; '.join(parts)}.")


def _training_paragraph(folder):
    import pandas as pd

    from analysis import clean_minimum

    history = pd.read_csv(Path(folder) / "history.csv", dtype={"run": str, "hidden": str})
    history = history.dropna(subset=["noise_memorization_train", "noise_memorization_val", "mse_clean_val"])
    k = int(history["bottleneck"].max())
    minima = clean_minimum(history[history["bottleneck"] == k])
    rows = []
    for width, group in minima.groupby("width", sort=True):
        low, high = int(group["epoch"].min()), int(group["epoch"].max())
        rows.append(f"| {int(width)} | {low if low == high else f'{low} to {high}'} | "
                    f"{group['memorization_gap'].mean():.2f} | {group['memorization_gap_final'].mean():.2f} |")
    final = int(minima["final_epoch"].max())
    return "\n".join([
        _wrap(f"Over training (`history.csv`, measured at log-spaced epochs inside the batched trainer), at k = {k} "
              f"(the figure below), over {minima['seed'].nunique()} seeds: the epoch of lowest clean validation "
              "error, and the memorization gap (seen minus unseen noise memorization, mean over seeds) there and "
              f"at the last epoch. Where the first gap is far below the last, the noise gets in late and early "
              "stopping on the clean signal would keep most of it out."),
        "",
        f"| width | epoch of lowest clean validation error | memorization gap there | at epoch {final} |",
        "|---|---|---|---|",
        *rows])


def study_regions(folder):
    """The regions that the default study in ``folder`` fills: name -> text."""
    from analysis.report import markdown_table, study_summary
    from analysis.study.tables import INTERVAL_METHOD

    summary = study_summary(folder)
    table, selection = summary["table"], summary["selection"] or {}
    config = json.loads((Path(folder) / "study.json").read_text(encoding="utf-8"))["config"]
    keep, ks, hidden = table_rows(table, selection)
    caption = _wrap(
        f"Key numbers, {len(keep)} of the {len(table)} rows of `summary.md`'s table: PCA, width {' and '.join(hidden)}"
        f" at k = {' and '.join(map(str, ks))} (the selected model's width and bottleneck, the widest, the largest). "
        f"Means over seeds with {INTERVAL_METHOD}. Unseen = test split; \"PCA projection keeps\" is `nm_reference`, "
        "what the rank-k PCA projection keeps of the noise:")
    return {
        "study-setup": _setup(config),
        "study-verdict": "\n".join(_wrap(line, "- ") for line in summary["lines"]),
        "study-table": caption + "\n\n" + markdown_table(summary["heads"], [summary["rows"][i] for i in keep]),
        "study-widths": _widths_paragraph(table),
        "study-training": _training_paragraph(folder),
    }


# ---------------------------------------------------------------------------------------------------------------
# The command line

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="The default study takes 1-3 minutes on a laptop CPU.")
    parser.add_argument("--readme", type=Path, default=README, help="the README to rewrite (default: %(default)s)")
    parser.add_argument("--study", type=Path, metavar="DIR", help="a finished default study to read (not rerun)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="where to run the default study (default: a temporary folder, removed afterwards; "
                             "a finished study there is reused)")
    parser.add_argument("--only", choices=("python", "study", "remedies", "patches"),
                        help="regenerate one part only (remedies: the default study's, run in a copy of it)")
    parser.add_argument("--check", action="store_true",
                        help=f"write nothing; exit 1 listing what disagrees beyond float tolerance (rtol {RTOL:g} "
                             "plus one unit of the last printed digit)")
    args = parser.parse_args(argv)
    if args.study and args.out:
        parser.error("give --study (reuse a finished study) or --out (run one there), not both")
    return args


def publish_figures(folder, docs=ROOT / "docs"):
    """Copy the study's figures that the README shows into ``docs/``: the noise memorization against capacity and
    over training, and the membership audit of the selected architecture."""
    from autoenc.io import atomic_write
    from analysis import RunSpec

    selection = json.loads((Path(folder) / "selection.json").read_text(encoding="utf-8"))
    chosen = selection.get("autoencoder") if selection.get("model") != "autoencoder" else selection
    figures = {"memorization.png": "memorization.png", "memorization_curves.png": "memorization_curves.png"}
    if isinstance(chosen, dict) and chosen.get("hidden"):  # the audit figure of its first seed
        hidden = tuple(int(w) for w in str(chosen["hidden"]).split("-"))
        figures["audit.png"] = f"audit_{RunSpec(int(chosen['bottleneck']), hidden, 0).run}.png"
    for name, source in figures.items():
        data = (Path(folder) / "figures" / source).read_bytes()
        atomic_write(docs / name, lambda tmp, data=data: Path(tmp).write_bytes(data))
        print(f"docs/{name}: copied from {Path(folder) / 'figures' / source}")


def computed_regions(args, readme_text):
    bodies = {}
    if args.only in (None, "python"):
        bodies.update(python_regions(*run_python_example(python_example_code(readme_text))))
    with tempfile.TemporaryDirectory(prefix="readme-study-") as out:
        if args.only in (None, "study", "remedies"):
            if args.study:
                check_default_study(args.study)
                folder = args.study
            else:
                folder = run_default_study(args.out or Path(out) / "digits")
            if args.only != "remedies":
                bodies.update(study_regions(folder))
                if not args.check:
                    publish_figures(folder)
            if args.only != "study":  # in a copy: the default study's folder stays the default study's
                remedied = readme_studies.run_remedies(folder, Path(out) / "remedies")
                bodies.update(readme_studies.remedies_regions(remedied, _wrap))
                if not args.check:
                    readme_studies.publish(remedied, ROOT / "docs")
        if args.only in (None, "patches"):
            bodies.update(readme_studies.patches_regions(readme_studies.run_patches(Path(out) / "patches"), _wrap))
    return bodies


def main(argv=None):
    args = parse_args(argv)
    text = args.readme.read_text(encoding="utf-8")
    bodies = computed_regions(args, text)
    current = regions(text)
    missing = sorted(set(bodies) - set(current))
    if missing:
        print(f"{args.readme}: no region marked {', '.join(missing)}", file=sys.stderr)
        return 1
    changed = [name for name in bodies if current[name] != bodies[name].strip("\n")]
    if args.check:
        failures = {name: differences(current[name], bodies[name]) for name in changed}
        failures = {name: lines for name, lines in failures.items() if lines}
        for name in changed:
            print(f"{name}: {'DISAGREES' if name in failures else 'agrees within tolerance'}")
            for line in failures.get(name, []):
                print(f"  {line}")
        if not changed:
            print(f"{args.readme}: every region agrees exactly ({', '.join(bodies)})")
        return 1 if failures else 0
    for name in changed:
        print(f"{name}: rewritten")
        diff = difflib.unified_diff(current[name].splitlines(), bodies[name].strip("\n").splitlines(),
                                    "before", "after", lineterm="", n=0)
        print("\n".join("  " + line for line in list(diff)[2:]))
    if changed:
        from autoenc.io import atomic_write

        new_text = replace_regions(text, bodies)
        atomic_write(args.readme, lambda tmp: Path(tmp).write_text(new_text, encoding="utf-8"))
    else:
        print(f"{args.readme}: unchanged ({', '.join(bodies)})")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # the repository's packages, whether installed or not
    sys.exit(main())
