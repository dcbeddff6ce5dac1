use std::fs;

use super::*;
use crate::ErrorCode;

#[test]
fn a_key_never_shows_its_bytes() {
    let key = Key::from_bytes([0xab; KEY_LEN]);
    assert_eq!(format!("{key:?}"), "Key(..)");
    assert_eq!(key.to_hex(), "ab".repeat(KEY_LEN));
}

#[test]
fn generated_keys_differ() {
    let (a, b) = (Key::generate().unwrap(), Key::generate().unwrap());
    assert_ne!(a, b);
    assert_ne!(a.as_bytes(), &[0u8; KEY_LEN]);
}

#[test]
fn keys_parse_from_hex_and_base64_and_nothing_else() {
    let key = Key::from_bytes(std::array::from_fn(|i| i as u8));
    assert_eq!(Key::parse(&key.to_hex(), "x").unwrap(), key);
    assert_eq!(Key::parse(&key.to_hex().to_uppercase(), "x").unwrap(), key);
    let b64 = base64::engine::general_purpose::STANDARD.encode(key.as_bytes());
    assert_eq!(Key::parse(&format!(" {b64}\n"), "x").unwrap(), key);
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.as_bytes());
    assert_eq!(Key::parse(&url, "x").unwrap(), key);
    for bad in ["", "abcd", &"g".repeat(64), &"ab".repeat(31)] {
        let e = Key::parse(bad, "variable X").unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
        assert!(e.to_string().starts_with("encryption_key_id: variable X is not a key"), "{e}");
    }
}

#[test]
fn key_ids_are_checked_and_errors_name_the_field() {
    for good in ["k", "tenant-acme.2026_01", &"a".repeat(MAX_KEY_ID_LEN)] {
        validate_key_id(good).unwrap();
    }
    for bad in ["", ".hidden", "..", "a/b", "a b", "ключ", &"a".repeat(MAX_KEY_ID_LEN + 1)] {
        let e = validate_key_id(bad).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument, "{bad}");
        assert!(e.to_string().starts_with("encryption_key_id: "), "{e}");
    }
}

#[test]
fn a_keyring_directory_creates_gets_and_destroys_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let ring = KeyringDir::open(tmp.path().join("keys"), None).unwrap();
    assert!(ring.get("acme").unwrap().is_none());
    let key = ring.create("acme").unwrap();
    assert_eq!(ring.get("acme").unwrap().as_ref(), Some(&key));
    // Reopened (another process), the key is the same.
    let again = KeyringDir::open(tmp.path().join("keys"), None).unwrap();
    assert_eq!(again.get("acme").unwrap(), Some(key.clone()));
    // A key is never replaced.
    let e = ring.create("acme").unwrap_err();
    assert_eq!(e.code(), ErrorCode::Conflict, "{e}");
    assert_eq!(ring.get("acme").unwrap(), Some(key.clone()));
    assert_eq!(get_or_create(&ring, "acme").unwrap(), key);
    // Only the key's file is left: no temporary files.
    let names: Vec<_> = fs::read_dir(ring.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["acme"]);
    ring.destroy("acme").unwrap();
    assert!(ring.get("acme").unwrap().is_none());
    assert_eq!(fs::read_dir(ring.path()).unwrap().count(), 0);
    // Destroying again (a repeated, interrupted destruction) succeeds.
    ring.destroy("acme").unwrap();
    let e = ring.get("../acme").unwrap_err();
    assert!(e.to_string().starts_with("encryption_key_id: "), "{e}");
}

#[cfg(unix)]
#[test]
fn keyring_files_and_directory_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let ring = KeyringDir::open(tmp.path().join("keys"), None).unwrap();
    ring.create("acme").unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&ring.path().join("acme")), 0o600);
    assert_eq!(mode(ring.path()), 0o700);
}

#[test]
fn a_keyring_inside_the_data_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    fs::create_dir(&data).unwrap();
    let e = KeyringDir::open(data.join("keys"), Some(&data)).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert!(e.to_string().contains("keys are never written next to the data"), "{e}");
    assert!(!data.join("keys").exists(), "a refused keyring directory is not created");
    let e = KeyringDir::open(&data, Some(&data)).unwrap_err();
    assert!(e.to_string().starts_with("keyring: "), "{e}");
    KeyringDir::open(tmp.path().join("keys"), Some(&data)).unwrap();
    // The same refusal through the setting, whatever the spelling of the path.
    let e = provider_for(&data.join("../data/k"), &data).err().unwrap();
    assert!(e.to_string().contains("inside the data directory"), "{e}");
    assert_eq!(provider_for(Path::new("env:"), &data).unwrap().describe(), EnvKeys.describe());
}

#[test]
fn environment_keys_are_read_only() {
    let key = Key::from_bytes([7; KEY_LEN]);
    assert_eq!(EnvKeys::variable("tenant-acme.v2").unwrap(), "MEMSILO_KEY_TENANT_ACME_V2");
    // This test alone uses these variable names.
    std::env::set_var("MEMSILO_KEY_UNIT_ENV_SET", key.to_hex());
    let env = EnvKeys;
    assert_eq!(env.get("unit-env-set").unwrap(), Some(key.clone()));
    assert_eq!(env.create("unit-env-set").unwrap(), key);
    assert_eq!(get_or_create(&env, "unit-env-set").unwrap(), key);
    assert!(env.get("unit-env-unset").unwrap().is_none());
    let e = env.create("unit-env-unset").unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert!(e.to_string().contains("set MEMSILO_KEY_UNIT_ENV_UNSET"), "{e}");
    let e = env.destroy("unit-env-set").unwrap_err();
    assert!(e.to_string().contains("read-only"), "{e}");
    env.destroy("unit-env-unset").unwrap();
    std::env::set_var("MEMSILO_KEY_UNIT_ENV_BAD", "not a key");
    let e = env.get("unit-env-bad").unwrap_err();
    assert!(e.to_string().contains("environment variable MEMSILO_KEY_UNIT_ENV_BAD"), "{e}");
}

#[test]
fn ids_the_environment_keeps_in_one_variable_are_found_with_both_names() {
    let env = EnvKeys;
    assert_eq!(env.location("acme-key").unwrap(), "variable MEMSILO_KEY_ACME_KEY");
    let shared = shared_location(&env, ["instance", "acme-key", "globex", "Acme.Key"])
        .unwrap()
        .expect("acme-key and Acme.Key share MEMSILO_KEY_ACME_KEY");
    assert_eq!(shared.ids, ["acme-key".to_owned(), "Acme.Key".to_owned()]);
    assert!(shared.to_string().starts_with(
        "keys acme-key and Acme.Key are both kept in variable MEMSILO_KEY_ACME_KEY of environment"
    ));
    // The same id twice is one key, not two; a keyring directory keeps each id apart.
    assert_eq!(shared_location(&env, ["acme-key", "acme-key"]).unwrap(), None);
    let tmp = tempfile::tempdir().unwrap();
    let ring = KeyringDir::open(tmp.path().join("keys"), None).unwrap();
    assert_eq!(shared_location(&ring, ["acme-key", "Acme.Key"]).unwrap(), None);
}
