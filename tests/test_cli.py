"""The command lines: help with defaults and choices, one-line errors, data-loading hints, clipped defaults, the
installed console commands."""
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from analysis import StudyConfig
from autoenc import ACTIVATIONS, load, load_dataset
from autoenc.data import scale_warning
from autoenc_cli import compare, plot, study, train
from autoenc_cli.study import _fit_bottlenecks, _line_progress, build_config, default_bottlenecks, parse_args

TINY = ["--epochs", "2", "--widths", "8", "--seeds", "0", "--no-memorization", "--latent", "none", "--jobs", "1",
        "--no-report"]


def help_text(main, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # unwrapped: argparse breaks lines at the terminal width


def one_line_error(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


def low_rank(rng, n_samples, n_features, rank=3):
    return rng.standard_normal((n_samples, rank)) @ rng.standard_normal((rank, n_features))


# ---------------------------------------------------------------- help

def test_study_help_shows_the_study_config_defaults_and_choices(capsys):
    text = help_text(study.main, capsys)
    default = StudyConfig()
    for option, value in [("--noise-std STD", default.noise_std), ("--seed N", default.seed),
                          ("--epochs N", default.train.epochs), ("--batch-size N", default.train.batch_size),
                          ("--lr RATE", f"{default.train.lr:g}"), ("--tolerance FRACTION", default.tolerance)]:
        assert option in text
        after = text.split(option, 2)[2]  # skip the usage line, read the option's own help
        assert f"(default {value}" in after.split(" --")[0], option
    assert f"default {','.join(map(str, default.bottlenecks))}" in text
    assert "--activation {" + ",".join(ACTIVATIONS) + "}" in text
    assert "--data PATH" in text and "--dataset NAME" in text and "--label-column NAME" in text
    assert "--scale {none,standard,minmax}" in text


def test_train_and_plot_help(capsys):
    text = help_text(train.main, capsys)
    for shown in ["--epochs N training epochs (default 100)", "--lr RATE Adam learning rate (default 0.001)",
                  "--batch-size N minibatch size (default 64)", "--noise-std STD", "(default 0.2)",
                  "--seed N", "--data PATH", "--dataset NAME", "--label-column NAME",
                  "--activation {" + ",".join(ACTIVATIONS) + "}"]:
        assert shown in text, shown
    assert "DIR" in help_text(plot.main, capsys)


# ---------------------------------------------------------------- errors: one line, exit status 2, plain words

@pytest.mark.parametrize("main, argv", [(study.main, ["--widths", "8,x"]), (study.main, ["--bottlenecks", "2;4"]),
                                        (train.main, ["--hidden", "big"])])
def test_a_bad_list_is_one_plain_line(main, argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = one_line_error(capsys)
    assert f"expected whole numbers separated by commas, like '2,4,8', got {argv[1]!r}" in err
    assert "int_list" not in err and "invalid" not in err


def test_other_mistakes_are_one_line(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        study.main(["--activation", "relux"])
    assert exit_.value.code == 2 and "relux" in one_line_error(capsys)
    assert study.main(["--epochs", "0", "--out", str(tmp_path)]) == 2
    assert "epochs" in one_line_error(capsys)
    assert plot.main([str(tmp_path / "none")]) == 2
    assert "has no results.csv" in one_line_error(capsys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_an_absent_gpu_stops_both_commands_before_any_work(capsys, tmp_path):
    assert study.main(["--device", "cuda", "--out", str(tmp_path / "study")] + TINY) == 2
    assert "device='cuda' but CUDA is not available here" in one_line_error(capsys)
    assert not (tmp_path / "study").exists()
    assert train.main(["--device", "cuda:0", "--out", str(tmp_path / "model")]) == 2
    assert "CUDA is not available" in one_line_error(capsys) and not (tmp_path / "model").exists()
    assert study.main(["--device", "tpu", "--out", str(tmp_path / "study")] + TINY) == 2
    assert "device must be one of" in one_line_error(capsys)


def test_device_auto_trains_where_it_can_and_is_recorded(tmp_path, capsys):
    assert study.main(["--device", "auto", "--out", str(tmp_path), "--no-report"] + TINY) == 0
    assert json.loads((tmp_path / "study.json").read_text())["config"]["train"]["device"] == "auto"
    assert train.main(["--device", "auto", "--epochs", "1", "--quiet", "--out", str(tmp_path / "m")]) == 0


def test_a_misspelled_dataset_gets_did_you_mean(capsys, tmp_path):
    with pytest.raises(ValueError, match=r"unknown dataset 'digts'.*did you mean 'digits'\?"):
        load_dataset("digts")
    with pytest.raises(ValueError, match=r"unknown dataset 'swisroll'.*did you mean 'swissroll'\?"):
        load_dataset("swisroll")
    with pytest.raises(ValueError, match=r"unknown dataset 'cifar'[^?]*$"):  # nothing close: no guess
        load_dataset("cifar")
    assert study.main(["--dataset", "mnist1", "--out", str(tmp_path)] + TINY) == 2
    assert "did you mean 'mnist1d'?" in one_line_error(capsys)
    assert train.main(["--dataset", "digts"]) == 2
    assert "did you mean 'digits'?" in one_line_error(capsys)


# ---------------------------------------------------------------- labels in a CSV

def write_table(path, rng, label="target", n_samples=60):
    """Four features on one scale and integer classes 0..2 in the column ``label``."""
    X = low_rank(rng, n_samples, 4)
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(4)])
    frame[label] = np.arange(n_samples) % 3
    frame.to_csv(path, index=False)
    return X


@pytest.mark.parametrize("name", ["target", "Label", "CLASS", "y"])
def test_a_label_like_column_warns_and_names_the_flag(tmp_path, rng, name):
    write_table(tmp_path / "t.csv", rng, label=name)
    with pytest.warns(UserWarning, match=rf"column '{name}' of .*t\.csv looks like labels.*--label-column {name}"):
        data = load_dataset(tmp_path / "t.csv")
    assert data.X.shape == (60, 5) and data.y is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_dataset(tmp_path / "t.csv", label_column=name)
    assert data.X.shape == (60, 4)
    np.testing.assert_array_equal(data.y, np.arange(60) % 3)


def test_columns_that_are_no_labels_do_not_warn(tmp_path, rng):
    pd.DataFrame({"x": rng.standard_normal(40), "y": rng.standard_normal(40)}).to_csv(tmp_path / "xy.csv", index=False)
    np.savetxt(tmp_path / "raw.csv", rng.standard_normal((10, 3)), delimiter=",")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_dataset(tmp_path / "xy.csv").X.shape == (40, 2)  # a coordinate named y
        assert load_dataset(tmp_path / "raw.csv").X.shape == (10, 3)  # no header at all


def test_train_takes_the_label_column_out_of_the_features(tmp_path, rng, capsys):
    write_table(tmp_path / "t.csv", rng)
    base = ["--data", str(tmp_path / "t.csv"), "--bottleneck", "2", "--hidden", "8", "--epochs", "1", "--quiet"]
    assert train.main(base + ["--out", str(tmp_path / "plain")]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: column 'target'") and "--label-column target" in err
    assert load(tmp_path / "plain").config.input_dim == 5  # the labels were learned as a feature
    assert train.main(base + ["--label-column", "target", "--out", str(tmp_path / "labelled")]) == 0
    assert "column 'target'" not in capsys.readouterr().err
    assert load(tmp_path / "labelled").config.input_dim == 4
    assert train.main(["--dataset", "digits", "--label-column", "target"]) == 2  # only files have columns
    assert "label_column" in one_line_error(capsys)


def test_study_maps_the_label_column_flag(tmp_path):
    config = build_config(parse_args(["--data", str(tmp_path / "t.csv"), "--label-column", "target"]))
    assert config.label_column == "target" and config.dataset == str(tmp_path / "t.csv")
    assert build_config(parse_args([])).label_column is None


# ---------------------------------------------------------------- feature scales

def test_scale_warning_fires_on_scales_orders_of_magnitude_apart(rng):
    X = rng.standard_normal((200, 3)) * np.array([1.0, 10.0, 1000.0])
    message = scale_warning(X)
    assert "--scale standard" in message and "\n" not in message
    ratio = X.std(axis=0).max() / X.std(axis=0).min()
    assert f"factor of {ratio:,.0f}" in message
    assert scale_warning(X[:, :2]) is None  # a factor of 10 is no reason
    assert scale_warning(X, ratio=2000) is None
    constant = np.column_stack([X[:, :2], np.full(200, 5e6)])
    assert scale_warning(constant) is None  # a constant column has no scale to compare


def test_scale_warning_ignores_almost_empty_columns(rng):
    X = rng.uniform(0, 1, (500, 6))
    X[:, 0] = 0.0
    X[7, 0] = 1 / 255  # one faint pixel: a tiny std, but one unit with the others
    assert scale_warning(X) is None
    assert scale_warning(load_dataset("digits").X) is None


def test_train_warns_about_unscaled_features_unless_scaled(tmp_path, rng, capsys):
    np.save(tmp_path / "raw.npy", rng.standard_normal((60, 5)) * np.array([1, 1, 1, 1, 5000.0]))
    base = ["--data", str(tmp_path / "raw.npy"), "--bottleneck", "2", "--hidden", "8", "--epochs", "1", "--quiet"]
    assert train.main(base + ["--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: feature scales differ") and "--scale standard" in err
    assert train.main(base + ["--scale", "standard", "--out", str(tmp_path / "b")]) == 0
    out = capsys.readouterr()
    assert "feature scales" not in out.err and "scale standard" in out.out


# ---------------------------------------------------------------- bottlenecks that fit the data

@pytest.mark.parametrize("n_features, expected", [(64, (2, 4, 8, 16, 32)), (32, (2, 4, 8, 16)), (10, (2, 4, 8)),
                                                  (3, (2,)), (2, (1,)), (1, (1,))])
def test_default_bottlenecks_stay_below_the_number_of_features(n_features, expected):
    assert default_bottlenecks(n_features) == expected
    assert all(k < n_features for k in expected) or expected == (1,)


def test_a_study_of_ten_features_needs_no_flags(tmp_path, rng, capsys):
    np.save(tmp_path / "features.npy", low_rank(rng, 80, 10) + 0.1 * rng.standard_normal((80, 10)))
    argv = ["--data", str(tmp_path / "features.npy"), "--out", str(tmp_path / "study")] + TINY
    assert study.main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("bottlenecks 2,4,8: the defaults below the 10 features")
    results = pd.read_csv(tmp_path / "study" / "results.csv")
    assert set(results["bottleneck"]) == {2, 4, 8}
    assert set(results["model"]) == {"autoencoder", "pca"}
    # not a terminal: one line per finished group, counting up to every model trained (PCA too), then the summary
    progress = [line for line in out.splitlines() if line.startswith("trained ")]
    assert progress and progress[-1].startswith("trained 6/6 models (")
    assert all(line.split()[1].endswith("/6") for line in progress)
    assert "runs: 6 trained, 0 reused" in out
    # the one-sentence answer first, then the verdict and the key numbers, all within 100 columns
    shown = out[out.index("Answer: "):out.index("runs: ")].splitlines()
    assert shown[0].startswith("Answer: ") and any(line == "Verdict:" for line in shown)
    assert max(map(len, shown)) <= 100 and any("Student t on the log scale" in line for line in shown)
    assert study.main(argv) == 0  # the rerun trains nothing and says so
    out = capsys.readouterr().out
    assert "runs: 0 trained, 6 reused" in out and "trained 0/" not in out
    # a bottleneck the user asks for is checked, not clipped
    assert study.main(argv[:4] + ["--bottlenecks", "2,16"] + TINY) == 2
    err = one_line_error(capsys)
    assert "16" in err and "10" in err


def test_bottlenecks_from_a_config_file_are_not_clipped(tmp_path, rng):
    np.save(tmp_path / "f.npy", low_rank(rng, 40, 10))
    (tmp_path / "set.toml").write_text(f'dataset = "{tmp_path / "f.npy"}"\nbottlenecks = [2, 16]\n')
    (tmp_path / "unset.json").write_text(f'{{"dataset": "{tmp_path / "f.npy"}", "noise_std": 0.1}}')
    for name, expected in [("set.toml", (2, 16)), ("unset.json", (2, 4, 8))]:
        args = parse_args(["--config", str(tmp_path / name)])
        config, note = _fit_bottlenecks(build_config(args), args)
        assert config.bottlenecks == expected and (note is None) == (name == "set.toml")
    args = parse_args(["--config", str(tmp_path / "unset.json"), "--bottlenecks", "4,32"])
    assert _fit_bottlenecks(build_config(args), args)[0].bottlenecks == (4, 32)


def test_line_progress_prints_flushed_lines(capsys):
    _line_progress(12, 60, ["ae-k32-h1024-s0", "ae-k32-h1024-s1", "ae-k32-h1024-s2"])
    _line_progress(13, 60, ["pca-k2"])
    assert capsys.readouterr().out.splitlines() == [
        "trained 12/60 models (ae-k32-h1024-s0, ae-k32-h1024-s1 ...)", "trained 13/60 models (pca-k2)"]


# ---------------------------------------------------------------- installed commands

def test_console_commands_are_installed_and_run_the_same_code():
    bin_dir = Path(sys.executable).parent
    for name in ("autoenc-study", "autoenc-train", "autoenc-plot", "autoenc-compare"):
        assert (bin_dir / name).is_file(), f"{name} is not installed; pip install -e . creates it"
    out = subprocess.run([str(bin_dir / "autoenc-study"), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: autoenc-study") and "--label-column NAME" in out.stdout
    from importlib.metadata import entry_points

    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts") if ep.name.startswith("autoenc-")}
    assert scripts == {"autoenc-study": "autoenc_cli:study_main", "autoenc-train": "autoenc_cli.train:main",
                       "autoenc-plot": "autoenc_cli.plot:main", "autoenc-compare": "autoenc_cli.compare:main"}


def test_scripts_are_shims_over_the_package():
    import runpy

    root = Path(__file__).resolve().parents[1]
    for name, module in (("study", study), ("train", train), ("plot", plot), ("compare", compare)):
        namespace = runpy.run_path(str(root / "scripts" / f"{name}.py"))
        assert namespace["main"] is module.main


def test_convolutions_get_channel_widths_by_default(tmp_path):
    """1024 channels on 8 x 8 digits (the MLP's widths read as channels) took 9 minutes and 9.5 GB."""
    from analysis.study.config import CONV_WIDTHS, MLP_WIDTHS

    assert build_config(parse_args([])).widths == MLP_WIDTHS
    assert build_config(parse_args(["--architecture", "conv"])).widths == CONV_WIDTHS == (4, 16, 64, 256)
    assert build_config(parse_args(["--architecture", "conv", "--widths", "8,32"])).widths == (8, 32)
    assert StudyConfig(architecture="conv").widths == CONV_WIDTHS
    assert StudyConfig(architecture="conv", widths=(512,)).widths == (512,)  # given widths are kept
    (tmp_path / "c.toml").write_text('architecture = "conv"\nwidths = [16, 1024]\n')
    assert build_config(parse_args(["--config", str(tmp_path / "c.toml")])).widths == (16, 1024)
    (tmp_path / "m.toml").write_text('bottlenecks = [2]\n')
    assert build_config(parse_args(["--config", str(tmp_path / "m.toml"), "--architecture", "conv"])).widths == \
        CONV_WIDTHS


def test_train_a_convolutional_autoencoder_on_the_image_shape(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert train.main(["--architecture", "conv", "--hidden", "4,8", "--kernel-size", "5", "--epochs", "1",
                       "--quiet"]) == 0
    model = load(tmp_path / "runs" / "models" / "digits-k8-c4-8")  # named like the study's run ids
    assert (model.config.kind, model.config.input_shape, model.config.kernel_size) == ("conv", (1, 8, 8), 5)
    assert "autoencoder  test" in capsys.readouterr().out


@pytest.mark.parametrize("lines", [True, False])
def test_the_report_code_is_imported_once_at_the_first_finished_group(monkeypatch, capsys, lines):
    """The drawing code is imported after the tasks are out (at the first finished group, on a thread), once; the
    lines for a log are printed as before."""
    import threading

    imported = []
    monkeypatch.setattr(study.importlib, "import_module", imported.append)
    hook = study._ProgressHook(lines, report=True)
    assert imported == []  # not at the start
    hook(1, 4, ["ae-k2-h16-s0"])
    hook(2, 4, ["ae-k2-h16-s1", "ae-k2-h16-s2", "ae-k4-h16-s0"])
    for thread in threading.enumerate():
        if thread.name == "autoenc-report-import":
            thread.join(timeout=10)
    assert imported == ["analysis.report.html"]
    expected = "trained 1/4 models (ae-k2-h16-s0)\ntrained 2/4 models (ae-k2-h16-s1, ae-k2-h16-s2 ...)\n"
    assert capsys.readouterr().out == (expected if lines else "")
