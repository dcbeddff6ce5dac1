"""The default static embedding model out of the box: installed into the user cache with
``python -m memsilo models pull``, then used by ``memsilo.open`` with no configuration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODEL = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "models" / "potion-base-8M"

GUIDE_SCRIPT = """
import json, sys, memsilo
db = memsilo.open(sys.argv[1])
db.create_namespace("acme")
for text in ["Q3 roadmap: Omega in Sept", "Hiring 4 ML engineers", "Budget: $2.4M allocated"]:
    db.store_memory("acme", text)
print(json.dumps({
    "recruiting": db.recall("acme", "recruiting")[0]["content"],
    "money": db.recall("acme", "how much money do we have")[0]["content"],
    "embedder": db.get_namespace("acme")["embedder"],
}))
"""


def test_a_model_pulled_into_the_cache_is_the_default(tmp_path: Path) -> None:
    assert (MODEL / "model.safetensors").is_file(), f"{MODEL} missing: run `make models`"
    env = dict(os.environ, MEMSILO_CACHE_DIR=str(tmp_path / "cache"), MEMSILO_OFFLINE="1")
    env.pop("MEMSILO_MODEL_DIR", None)
    env.pop("MEMSILO_EMBEDDER", None)
    pulled = subprocess.run(
        [sys.executable, "-m", "memsilo", "models", "pull", "potion-base-8M", "--from", str(MODEL)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert pulled.returncode == 0, pulled.stderr
    assert (tmp_path / "cache" / "models" / "potion-base-8M" / "model.safetensors").is_file()

    ran = subprocess.run(
        [sys.executable, "-c", GUIDE_SCRIPT, str(tmp_path / "data")],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    got = json.loads(ran.stdout)
    assert got == {
        "recruiting": "Hiring 4 ML engineers",
        "money": "Budget: $2.4M allocated",
        "embedder": "potion-base-8M",
    }


def test_without_a_model_it_says_so_once_and_uses_hashing(tmp_path: Path) -> None:
    env = dict(os.environ, MEMSILO_CACHE_DIR=str(tmp_path / "empty"), MEMSILO_OFFLINE="1")
    env.pop("MEMSILO_MODEL_DIR", None)
    env.pop("MEMSILO_EMBEDDER", None)
    ran = subprocess.run(
        [sys.executable, "-c", GUIDE_SCRIPT, str(tmp_path / "data")],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["embedder"] == "memsilo-hash-384-v1"
    assert ran.stderr.count("is not available") == 1, ran.stderr
    assert "memsilo models pull potion-base-8M" in ran.stderr


OPEN_SCRIPT = """
import sys, memsilo
try:
    memsilo.open(sys.argv[1])
except memsilo.InvalidArgumentError as e:
    print(e.field, e)
else:
    print("opened")
"""


def broken_models(tmp_path: Path) -> dict[str, Path]:
    """Copies of the model: one whose matrix has 100 rows (its tokenizer has 29,528 tokens),
    one without tokenizer.json."""
    wrong_shape, no_tokenizer = tmp_path / "wrong-shape", tmp_path / "no-tokenizer"
    for d in (wrong_shape, no_tokenizer):
        d.mkdir()
        (d / "config.json").write_bytes((MODEL / "config.json").read_bytes())
    (wrong_shape / "tokenizer.json").write_bytes((MODEL / "tokenizer.json").read_bytes())
    (no_tokenizer / "model.safetensors").write_bytes((MODEL / "model.safetensors").read_bytes())
    rows, dims = 100, 256
    header = json.dumps(
        {"embeddings": {"dtype": "F32", "shape": [rows, dims], "data_offsets": [0, rows * dims * 4]}}
    ).encode()
    header += b" " * (-len(header) % 8)
    (wrong_shape / "model.safetensors").write_bytes(
        len(header).to_bytes(8, "little") + header + bytes(rows * dims * 4)
    )
    return {"wrong-shape": wrong_shape, "no-tokenizer": no_tokenizer}


def test_a_broken_model_directory_in_memsilo_embedder_fails_open(tmp_path: Path) -> None:
    assert (MODEL / "model.safetensors").is_file(), f"{MODEL} missing: run `make models`"
    says = {
        "wrong-shape": "`embeddings` has 100 rows but tokenizer.json has 29528 tokens",
        "no-tokenizer": "tokenizer.json: cannot read",
    }
    for name, model in broken_models(tmp_path).items():
        env = dict(os.environ, MEMSILO_EMBEDDER=str(model), MEMSILO_OFFLINE="1")
        ran = subprocess.run(
            [sys.executable, "-c", OPEN_SCRIPT, str(tmp_path / f"data-{name}")],
            env=env, capture_output=True, text=True, timeout=120,
        )
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.startswith("embedder ") and says[name] in ran.stdout, ran.stdout
        assert str(model) in ran.stdout, ran.stdout
        # The server refuses to start on it, naming the flag.
        served = subprocess.run(
            [sys.executable, "-m", "memsilo", "serve", "--data", str(tmp_path / "srv"),
             "--listen", "127.0.0.1:0", "--embedder", str(model)],
            env=env, capture_output=True, text=True, timeout=120,
        )
        assert served.returncode != 0 and f"--embedder {model}: " in served.stderr, served.stderr
        assert says[name] in served.stderr, served.stderr


def test_a_broken_model_found_by_name_fails_open_naming_the_file(tmp_path: Path) -> None:
    """A broken copy of the default model in ``MEMSILO_MODEL_DIR`` (found by name, no
    ``MEMSILO_EMBEDDER``) is the same clear error as a broken directory given explicitly,
    not a warning and the hashing embedder."""
    assert (MODEL / "model.safetensors").is_file(), f"{MODEL} missing: run `make models`"
    models = tmp_path / "models"
    models.mkdir()
    broken_models(tmp_path)["wrong-shape"].rename(models / "potion-base-8M")
    env = dict(os.environ, MEMSILO_MODEL_DIR=str(models), MEMSILO_OFFLINE="1",
               MEMSILO_CACHE_DIR=str(tmp_path / "empty"))
    env.pop("MEMSILO_EMBEDDER", None)
    says = "`embeddings` has 100 rows but tokenizer.json has 29528 tokens"
    ran = subprocess.run(
        [sys.executable, "-c", OPEN_SCRIPT, str(tmp_path / "data")],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("embedder ") and says in ran.stdout, ran.stdout
    assert str(models / "potion-base-8M" / "model.safetensors") in ran.stdout, ran.stdout
    assert "is not available" not in ran.stderr, ran.stderr
    served = subprocess.run(
        [sys.executable, "-m", "memsilo", "serve", "--data", str(tmp_path / "srv"),
         "--listen", "127.0.0.1:0"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert served.returncode != 0 and "model potion-base-8M: " in served.stderr, served.stderr
    assert says in served.stderr, served.stderr
