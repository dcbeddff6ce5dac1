//! [`EnvKeys`]: read-only keys given in the process environment.

use zeroize::Zeroize;

use super::{validate_key_id, Key, KeyProvider, ENV_PREFIX, FIELD};
use crate::error::{Error, Result};

/// Keys from the process environment: key `id` is the variable `MEMSILO_KEY_<ID>`, where
/// `<ID>` is the id in upper case with `-` and `.` written as `_`, holding 64 hex digits or
/// base64 of 32 bytes. Read-only: `create` succeeds only for a key already there (returning
/// it) and `destroy` is refused while it is set.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnvKeys;

impl EnvKeys {
    /// The variable holding key `id`.
    pub fn variable(id: &str) -> Result<String> {
        validate_key_id(id)?;
        let name: String = id
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
            .collect();
        Ok(format!("{ENV_PREFIX}{name}"))
    }
}

impl KeyProvider for EnvKeys {
    fn get(&self, id: &str) -> Result<Option<Key>> {
        let var = Self::variable(id)?;
        match std::env::var(&var) {
            Ok(mut text) => {
                let key = Key::parse(&text, &format!("environment variable {var}"));
                text.zeroize();
                key.map(Some)
            }
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::invalid(
                FIELD,
                format!("environment variable {var} is not a key: not UTF-8"),
            )),
        }
    }

    fn create(&self, id: &str) -> Result<Key> {
        let var = Self::variable(id)?;
        self.get(id)?.ok_or_else(|| {
            Error::invalid(
                FIELD,
                format!(
                    "key {id} is not in the environment and the environment keyring is read-only: set {var} (64 hex digits) or use a keyring directory"
                ),
            )
        })
    }

    fn destroy(&self, id: &str) -> Result<()> {
        let var = Self::variable(id)?;
        if std::env::var_os(&var).is_none() {
            return Ok(());
        }
        Err(Error::invalid(
            FIELD,
            format!(
                "key {id} comes from the environment and the environment keyring is read-only: unset {var} where it is configured to destroy it"
            ),
        ))
    }

    fn describe(&self) -> String {
        format!("environment ({ENV_PREFIX}<ID>)")
    }

    fn location(&self, id: &str) -> Result<String> {
        Ok(format!("variable {}", Self::variable(id)?))
    }
}
