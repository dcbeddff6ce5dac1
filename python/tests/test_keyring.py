"""Keyrings and tenants' own keys from Python: ``open(path, keyring=...)`` (sync and async),
``create_tenant(encryption_key_id=...)`` and crypto-shredding on tenant deletion."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import memsilo


def test_a_tenant_key_is_made_in_the_keyring_and_destroyed_with_the_tenant(
    tmp_path: Path,
) -> None:
    keys = tmp_path / "keys"
    db = memsilo.open(tmp_path / "data", keyring=keys)
    tenant = db.create_tenant(
        "py_keyed", isolation_mode="hybrid", encryption_key_id="py-tenant-key"
    )
    assert tenant["encryption_key_id"] == "py-tenant-key"
    assert db.get_tenant(tenant["id"])["encryption_key_id"] == "py-tenant-key"
    assert (keys / "py-tenant-key").is_file()

    with pytest.raises(memsilo.InvalidArgumentError) as refused:
        db.create_tenant("py_shared", isolation_mode="logical", encryption_key_id="other")
    assert "encryption_key_id" in str(refused.value)
    with pytest.raises(memsilo.ConflictError):
        db.create_tenant("py_copy", isolation_mode="physical", encryption_key_id="py-tenant-key")

    db.delete_tenant(tenant["id"])
    # The background purge removes the tenant's file, then its key.
    for _ in range(100):
        if not (keys / "py-tenant-key").exists():
            break
        time.sleep(0.1)
    assert not (keys / "py-tenant-key").exists(), "the key is destroyed with the tenant"


def test_without_a_keyring_a_tenant_key_is_refused_saying_why(tmp_path: Path) -> None:
    db = memsilo.open(tmp_path / "data")
    with pytest.raises(memsilo.InvalidArgumentError) as refused:
        db.create_tenant("py_nokeys", isolation_mode="physical", encryption_key_id="k")
    assert "a keyring is needed" in str(refused.value)


def test_a_keyring_inside_the_data_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(memsilo.InvalidArgumentError) as refused:
        memsilo.open(tmp_path / "data", keyring=tmp_path / "data" / "keys")
    assert "keys are never written next to the data" in str(refused.value)


def test_the_async_open_takes_a_keyring(tmp_path: Path) -> None:
    async def run() -> None:
        db = memsilo.aio.open(tmp_path / "data", keyring=str(tmp_path / "keys"))
        tenant = await db.create_tenant(
            "py_async_keyed", isolation_mode="physical", encryption_key_id="py-async-key"
        )
        assert tenant["encryption_key_id"] == "py-async-key"

    asyncio.run(run())
    assert (tmp_path / "keys" / "py-async-key").is_file()


def test_a_key_rotation_is_started_and_polled_until_done(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    db = memsilo.open(tmp_path / "data", keyring=keys)
    tenant = db.create_tenant("py_rotated", isolation_mode="hybrid", encryption_key_id="py-old")
    db.create_namespace("py-rotated-ns", tenant_id=tenant["id"])
    db.store_memory("py-rotated-ns", "kept across the rotation")
    started = db.rotate_tenant_key(tenant["id"], new_key_id="py-new")
    assert (started["old_key_id"], started["new_key_id"]) == ("py-old", "py-new")
    assert started["environments_total"] == 1
    # Another tenant cannot take the key (whether the rotation is still under way or done:
    # a one-file rotation may finish before the next call; core's tests hold one open).
    other = db.create_tenant("py_other", isolation_mode="hybrid")
    with pytest.raises(memsilo.ConflictError):
        db.rotate_tenant_key(other["id"], new_key_id="py-new")
    for _ in range(100):
        if db.get_key_rotation(tenant["id"])["state"] == "done" and not (keys / "py-old").exists():
            break
        time.sleep(0.1)
    assert db.get_key_rotation(tenant["id"])["environments_done"] == 1
    assert not (keys / "py-old").exists(), "the old key is destroyed once no file uses it"
    assert db.get_tenant(tenant["id"])["encryption_key_id"] == "py-new"
    assert db.count_memories("py-rotated-ns") == 1


def test_the_instance_key_is_rotated_and_polled_until_the_old_one_is_destroyed(
    tmp_path: Path,
) -> None:
    keys = tmp_path / "keys"
    db = memsilo.open(tmp_path / "data", keyring=keys)
    db.create_namespace("py-instance-ns")
    db.store_memory("py-instance-ns", "kept across the instance key's rotation")
    started = db.rotate_instance_key(new_key_id="py-instance-2")
    assert (started["old_key_id"], started["new_key_id"]) == ("instance", "py-instance-2")
    assert started["environments_total"] >= 2, "a shard and the catalog at least"
    with pytest.raises(memsilo.ConflictError):
        db.create_tenant("py_thief", isolation_mode="hybrid", encryption_key_id="py-instance-2")
    for _ in range(100):
        status = db.get_instance_key_rotation()
        if status["state"] == "done" and not (keys / "instance").exists():
            break
        time.sleep(0.1)
    assert status["environments_done"] == status["environments_total"]
    assert not (keys / "instance").exists(), "the old instance key is destroyed"
    assert db.count_memories("py-instance-ns") == 1

    async def run() -> None:
        adb = memsilo.aio.open(tmp_path / "data", keyring=keys)
        assert (await adb.get_instance_key_rotation())["state"] == "done"

    asyncio.run(run())


def test_a_plain_directory_has_no_instance_key_to_rotate(db: memsilo.Memsilo) -> None:
    with pytest.raises(memsilo.InvalidArgumentError) as refused:
        db.rotate_instance_key()
    assert "not encrypted" in str(refused.value)
