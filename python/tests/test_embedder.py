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
