"""Content hashes and safe paths: the same content hashes the same anywhere, any damage is named, no escape."""
import hashlib
import os

import numpy as np
import pytest

from analysis.study.integrity import (array_fingerprint, file_digest, folder_checksums, safe_child, safe_relative,
                                verify_checksums)


# --- digests and fingerprints ------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, 2**20, 3 * 2**20 + 17])  # empty, tiny, exactly one chunk, several
def test_file_digest_is_sha256_of_the_bytes(tmp_path, rng, size):
    data = rng.integers(0, 256, size=size, dtype=np.uint8).tobytes()
    (tmp_path / "f").write_bytes(data)
    assert file_digest(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def test_fingerprint_is_the_same_for_the_same_content_under_another_path(tmp_path, rng):
    X, y = rng.standard_normal((300, 7)).astype(np.float32), rng.integers(0, 10, 300)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    np.save(tmp_path / "a" / "data.npy", X)
    np.save(tmp_path / "b" / "renamed.npy", X)
    from_a = np.load(tmp_path / "a" / "data.npy")
    from_b = np.load(tmp_path / "b" / "renamed.npy", mmap_mode="r")  # memory-mapped: hashed without a copy
    assert array_fingerprint(from_a, y) == array_fingerprint(from_b, y) == array_fingerprint(X, y.copy())
    assert array_fingerprint(X) == array_fingerprint(np.asfortranarray(X))  # memory layout is not content
    assert array_fingerprint(X) == array_fingerprint(X.astype(X.dtype.newbyteorder(">")))  # nor byte order


def test_fingerprint_changes_with_content(rng):
    X = rng.random((50, 4))
    base = array_fingerprint(X)
    Y = X.copy()
    Y[49, 3] = np.nextafter(Y[49, 3], 2)  # one ulp in the last value
    changed = [X * 100 + 5, Y, X.astype(np.float32), X.reshape(100, 2), X[::-1], X[:-1]]
    digests = [array_fingerprint(c) for c in changed]
    assert base not in digests and len(set(digests)) == len(digests)
    # the arrays' boundaries and order count: (a, b) is neither (b, a) nor a's rows followed by b's
    a, b = X[:25], X[25:]
    assert len({array_fingerprint(a, b), array_fingerprint(b, a), array_fingerprint(X), array_fingerprint(a, None, b),
                array_fingerprint(a, b, None)}) == 5


def test_fingerprint_of_strided_and_large_arrays_equals_that_of_their_copies(rng):
    big = rng.random((3000, 100))  # 2.4 MB: hashed in several chunks
    assert array_fingerprint(big) == array_fingerprint(big.copy())
    view = big[::3, 1::2]
    assert array_fingerprint(view) == array_fingerprint(np.ascontiguousarray(view))
    assert array_fingerprint(np.zeros((0, 5))) != array_fingerprint(np.zeros((5, 0)))  # empty: shape still counts
    assert array_fingerprint(np.float64(2.5)) == array_fingerprint(np.array(2.5))


def test_fingerprint_refuses_non_numeric_arrays():
    with pytest.raises(TypeError, match=r"arrays\[1\] must be numeric or boolean, got dtype object"):
        array_fingerprint(np.zeros(3), np.array([{}, 1], dtype=object))


# --- checksums ---------------------------------------------------------------------------------------------------

@pytest.fixture
def run(tmp_path, rng):
    folder = tmp_path / "run"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text('{"a": 1}')
    (folder / "weights.safetensors").write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (folder / "sub" / "extra.csv").write_text("x\n1\n")
    return folder


NAMES = ["config.json", "weights.safetensors", "sub/extra.csv"]


def test_checksums_of_an_untouched_folder_verify(run):
    checksums = folder_checksums(run, NAMES)
    assert checksums["weights.safetensors"] == {
        "bytes": 5000, "sha256": hashlib.sha256((run / "weights.safetensors").read_bytes()).hexdigest()}
    assert verify_checksums(run, checksums) == []
    moved = run.parent / "moved"
    run.rename(moved)  # checksums are about content: the folder may move
    assert verify_checksums(moved, checksums) == []


def test_checksums_detect_truncation_change_and_loss(run):
    checksums = folder_checksums(run, NAMES)
    weights = run / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1])
    assert verify_checksums(run, checksums) == [
        "weights.safetensors is 4999 bytes, expected 5000 (truncated or replaced)"]
    data = bytearray((run / "config.json").read_bytes())
    data[6] ^= 1  # same size, one bit
    (run / "config.json").write_bytes(bytes(data))
    (run / "sub" / "extra.csv").unlink()
    assert verify_checksums(run, checksums) == [
        "config.json has changed (its SHA-256 differs from the one recorded)",
        "weights.safetensors is 4999 bytes, expected 5000 (truncated or replaced)",
        "sub/extra.csv is missing",
    ]


@pytest.mark.parametrize("checksums, problem", [
    (None, "are missing or malformed"),
    ([], "are missing or malformed"),
    ({}, "are missing or malformed"),
    ({"config.json": "abc"}, "config.json: its checksum entry is malformed"),
    ({"config.json": {"bytes": "8", "sha256": "x"}}, "config.json: its checksum entry is malformed"),
    ({"../outside.txt": {"bytes": 3, "sha256": "x"}}, "unsafe name '..'"),
    ({"/etc/passwd": {"bytes": 3, "sha256": "x"}}, "unsafe name ''"),
])
def test_malformed_or_hostile_checksums_are_problems_never_reads(run, checksums, problem):
    (run.parent / "outside.txt").write_text("abc")
    problems = verify_checksums(run, checksums)
    assert len(problems) == 1 and problem in problems[0]


def test_folder_checksums_refuses_missing_or_unsafe_names(run):
    with pytest.raises(FileNotFoundError, match="cannot checksum .*nothing.bin"):
        folder_checksums(run, ["nothing.bin"])
    with pytest.raises(ValueError, match="unsafe name '..'"):
        folder_checksums(run, ["../run/config.json"])


# --- safe paths --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../../x", "..", ".", "", "/abs", "a/b", "a\\b", "..\\x", "C:x", "a\0b", "a\nb",
                                  "/", 17, None, b"run"])
def test_safe_child_refuses_anything_but_one_plain_component(tmp_path, name):
    with pytest.raises(ValueError, match="unsafe name"):
        safe_child(tmp_path, name)


@pytest.mark.parametrize("name", ["ae-k8-h64-s0", "pca-k2", "..hidden", "a..b", "run with spaces", "é"])
def test_safe_child_accepts_plain_names(tmp_path, name):
    assert safe_child(tmp_path, name) == tmp_path / name
    assert safe_child(tmp_path, name).parent == tmp_path


def test_safe_child_refuses_a_symbolic_link(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "models").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "models" / "ae-k8-h64-s0")
    with pytest.raises(ValueError, match="is a symbolic link"):
        safe_child(tmp_path / "models", "ae-k8-h64-s0")


def test_safe_relative_checks_every_component(tmp_path):
    assert safe_relative(tmp_path, "models/ae-k8-h64-s0/config.json") == tmp_path / "models/ae-k8-h64-s0/config.json"
    for bad in ["models/../../x", "models//x", "/models/x", "models/x/", 3]:
        with pytest.raises(ValueError, match="unsafe"):
            safe_relative(tmp_path, bad)
