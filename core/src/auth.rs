//! Keys and principals, and the ONE function that decides every `(principal, action, resource)`.
//!
//! Key text: `msk_<16 hex id>_<40 base62 secret><6 base62 checksum>`. The checksum (CRC-32 of
//! everything before it) lets clients and secret scanners reject a mistyped or truncated key
//! without a lookup. Only the SHA-256 of the secret is stored; comparison is constant-time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};
use crate::records::NamespaceRecord;
pub use crate::records::{Access, Grant, Role};

const KEY_PREFIX: &str = "msk_";
const ID_LEN: usize = 16;
const SECRET_LEN: usize = 40;
const CHECK_LEN: usize = 6;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The embedded owner or the server's admin key: may do anything.
    Root,
    /// A member-role key: its role over every namespace of one tenant.
    Member {
        /// The key's id.
        key_id: String,
        /// The tenant.
        tenant_id: String,
        /// The role in force (read live from the member record, capped by the issuer's).
        role: Role,
        /// The member the key is bound to: the member it was issued to, else the member
        /// whose key minted it (`None` for a tenant key the root minted). Keys this principal
        /// mints are bound to the same member.
        member_id: Option<String>,
    },
    /// A key limited to a list of namespaces.
    Scoped {
        /// The key's id.
        key_id: String,
        /// The tenant the key belongs to, if any (rate limits apply to it).
        tenant_id: Option<String>,
        /// The namespaces it may reach.
        grants: Vec<Grant>,
    },
}

impl Principal {
    /// The tenant whose quotas and rate limit apply to this principal's calls.
    pub fn tenant_id(&self) -> Option<&str> {
        match self {
            Principal::Root => None,
            Principal::Member { tenant_id, .. } => Some(tenant_id),
            Principal::Scoped { tenant_id, .. } => tenant_id.as_deref(),
        }
    }

    /// The only namespace a scoped key can reach, if it has exactly one.
    pub fn only_namespace(&self) -> Option<&str> {
        match self {
            Principal::Scoped { grants, .. } if grants.len() == 1 => Some(&grants[0].namespace),
            _ => None,
        }
    }
}

/// What a principal wants to do.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// Read memories or the graph of a namespace (`record` is `None` when it does not exist).
    ReadNamespace(&'a str, Option<&'a NamespaceRecord>),
    /// Change memories or the graph of a namespace.
    WriteNamespace(&'a str, Option<&'a NamespaceRecord>),
    /// See, reconfigure or delete a namespace itself.
    ManageNamespace(&'a str, Option<&'a NamespaceRecord>),
    /// Create a namespace in a tenant (`None`: outside any tenant).
    CreateNamespace(Option<&'a str>),
    /// Read a tenant's record.
    ReadTenant(&'a str),
    /// Administer a tenant's members, keys and namespace listing (`None`: tenant-less ones).
    AdministerTenant(Option<&'a str>),
    /// Create, update or delete tenants; list every tenant.
    ManageTenants,
    /// Mint a key of a tenant that acts with at most this role.
    IssueKey(Option<&'a str>, Role),
    /// Rotate a key and receive its new secret.
    RotateKey(&'a KeyOwner<'a>),
    /// Change what belongs to the whole instance (rotate the instance key): root only.
    ManageInstance,
}

/// Whose a key is, for [`Action::RotateKey`].
#[derive(Debug, Clone, Copy)]
pub struct KeyOwner<'a> {
    /// The key's id.
    pub key_id: &'a str,
    /// Its tenant.
    pub tenant_id: Option<&'a str>,
    /// The member it is bound to (issued to, else minted by).
    pub member_id: Option<&'a str>,
}

/// The three levels of access to one namespace, for code that picks one before the lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceAction {
    /// [`Action::ReadNamespace`].
    Read,
    /// [`Action::WriteNamespace`].
    Write,
    /// [`Action::ManageNamespace`].
    Manage,
}

impl NamespaceAction {
    /// The [`Action`] on a namespace.
    pub fn on<'a>(self, name: &'a str, rec: Option<&'a NamespaceRecord>) -> Action<'a> {
        match self {
            NamespaceAction::Read => Action::ReadNamespace(name, rec),
            NamespaceAction::Write => Action::WriteNamespace(name, rec),
            NamespaceAction::Manage => Action::ManageNamespace(name, rec),
        }
    }
}

/// Decides whether `principal` may perform `action`. Deny by default: every case that is not
/// explicitly allowed below is refused. For namespaces, a non-root principal is told
/// `forbidden` whether or not the namespace exists; only root learns `not_found`.
pub fn authorize(principal: &Principal, action: Action<'_>) -> Result<()> {
    match (principal, action) {
        (
            Principal::Root,
            Action::ReadNamespace(name, rec)
            | Action::WriteNamespace(name, rec)
            | Action::ManageNamespace(name, rec),
        ) => rec.map(|_| ()).ok_or_else(|| Error::not_found("namespace", name)),
        (Principal::Root, _) => Ok(()),

        (Principal::Scoped { grants, .. }, Action::ReadNamespace(name, rec)) => {
            scoped_namespace(grants, name, rec, Access::Read)
        }
        (Principal::Scoped { grants, .. }, Action::WriteNamespace(name, rec)) => {
            scoped_namespace(grants, name, rec, Access::Write)
        }
        (Principal::Scoped { .. }, Action::ManageNamespace(name, _)) => {
            Err(Error::namespace_forbidden(name))
        }

        (Principal::Member { tenant_id, role, .. }, Action::ReadNamespace(name, rec)) => {
            member_namespace(tenant_id, *role, Role::Viewer, name, rec)
        }
        (Principal::Member { tenant_id, role, .. }, Action::WriteNamespace(name, rec)) => {
            member_namespace(tenant_id, *role, Role::Editor, name, rec)
        }
        (Principal::Member { tenant_id, role, .. }, Action::ManageNamespace(name, rec)) => {
            member_namespace(tenant_id, *role, Role::Admin, name, rec)
        }
        (
            Principal::Member { tenant_id, role: Role::Admin, .. },
            Action::CreateNamespace(Some(t))
            | Action::AdministerTenant(Some(t))
            | Action::ReadTenant(t),
        ) if tenant_id == t => Ok(()),
        // A member never mints a key stronger than its own role.
        // Minting is tenant administration, and never yields more than the minter's role.
        (Principal::Member { tenant_id, role, .. }, Action::IssueKey(Some(t), want))
            if tenant_id == t && *role == Role::Admin && want <= *role =>
        {
            Ok(())
        }
        // Rotation hands out the new secret: a tenant admin may rotate its own key and keys
        // bound to its own member, never another member's (it may revoke those instead).
        (
            Principal::Member { key_id, tenant_id, role: Role::Admin, member_id },
            Action::RotateKey(owner),
        ) if owner.tenant_id == Some(tenant_id.as_str())
            && (owner.key_id == key_id
                || (owner.member_id.is_some() && owner.member_id == member_id.as_deref())) =>
        {
            Ok(())
        }
        (Principal::Member { .. }, Action::RotateKey(_)) => Err(Error::forbidden(
            "a tenant admin may rotate only its own keys; revoke another member's key instead",
        )),

        _ => Err(Error::forbidden("Key not authorized for this operation")),
    }
}

fn scoped_namespace(
    grants: &[Grant],
    name: &str,
    rec: Option<&NamespaceRecord>,
    need: Access,
) -> Result<()> {
    let allowed = rec.is_some_and(|rec| {
        grants.iter().any(|g| g.namespace_id == rec.id && g.namespace == name && g.access >= need)
    });
    if allowed {
        Ok(())
    } else {
        Err(Error::namespace_forbidden(name))
    }
}

fn member_namespace(
    tenant_id: &str,
    role: Role,
    need: Role,
    name: &str,
    rec: Option<&NamespaceRecord>,
) -> Result<()> {
    let in_tenant = rec.is_some_and(|r| r.tenant_id.as_deref() == Some(tenant_id));
    if in_tenant && role >= need {
        Ok(())
    } else {
        Err(Error::namespace_forbidden(name))
    }
}

/// The member whose key minted a key, as it stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issuer {
    /// No member minted it (the root did).
    Nobody,
    /// A member who still holds this role.
    Member(Role),
    /// A member who is no longer one.
    Gone,
}

/// The most a key minted by `issuer` may do: `None` for no bound (the root minted it), the
/// minting member's live role otherwise. A key whose minting member is gone is revoked with
/// that membership.
pub fn issuer_bound(issuer: Issuer) -> Result<Option<Role>> {
    match issuer {
        Issuer::Nobody => Ok(None),
        Issuer::Member(role) => Ok(Some(role)),
        Issuer::Gone => Err(Error::Unauthorized("API key revoked".into())),
    }
}

/// The role a tenant key acts with: `own` (its role, or its member's live role under the
/// key's cap), never more than its [`issuer_bound`].
pub fn bound_role(own: Role, bound: Option<Role>) -> Role {
    bound.map_or(own, |b| own.min(b))
}

/// The access a scoped key's grant gives under its [`issuer_bound`] (a viewer's keys only
/// read).
pub fn bound_access(access: Access, bound: Option<Role>) -> Access {
    match bound {
        Some(Role::Viewer) => Access::Read,
        _ => access,
    }
}

/// A parsed key: its id and the hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedKey {
    pub id: String,
    pub secret_hash: [u8; 32],
}

/// A freshly generated key: the text (shown once) and what is stored.
pub(crate) struct NewKey {
    pub text: String,
    pub parsed: ParsedKey,
}

pub(crate) fn hash_secret(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

/// Constant-time equality of two secrets given as text (compared by their SHA-256).
pub fn secrets_equal(a: &str, b: &str) -> bool {
    hashes_equal(&hash_secret(a.as_bytes()), &hash_secret(b.as_bytes()))
}

/// Constant-time equality of two hashes.
pub(crate) fn hashes_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

fn random_base62(n: usize) -> Result<String> {
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        getrandom::fill(&mut buf).map_err(|e| Error::internal_from("random source", e))?;
        // Rejection sampling keeps the distribution uniform (248 = 4 * 62).
        for b in buf.iter().filter(|b| **b < 248) {
            if out.len() == n {
                break;
            }
            out.push(char::from(BASE62[usize::from(*b % 62)]));
        }
    }
    Ok(out)
}

fn checksum(body: &str) -> String {
    let mut n = u64::from(crc32(body.as_bytes()));
    let mut out = [b'0'; CHECK_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8_lossy(&out).into_owned()
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

fn crc32(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(0xFFFF_FFFFu32, |crc, &b| {
        CRC_TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8)
    })
}

/// Generates a new key with a fresh id.
pub(crate) fn generate_key() -> Result<NewKey> {
    let mut id = [0u8; ID_LEN / 2];
    getrandom::fill(&mut id).map_err(|e| Error::internal_from("random source", e))?;
    let id = to_hex(&id);
    generate_secret_for(&id)
}

/// Generates a new secret for an existing key id (rotation).
pub(crate) fn generate_secret_for(id: &str) -> Result<NewKey> {
    let secret = random_base62(SECRET_LEN)?;
    let body = format!("{KEY_PREFIX}{id}_{secret}");
    let text = format!("{body}{}", checksum(&body));
    let parsed = ParsedKey { id: id.to_owned(), secret_hash: hash_secret(secret.as_bytes()) };
    Ok(NewKey { text, parsed })
}

/// A new key for a key table kept outside this engine's catalog (the cluster's control plane
/// in etcd): `(id, text, SHA-256 of the secret)`. The text is the only copy of the secret.
pub fn issue_external_key() -> Result<(String, String, [u8; 32])> {
    let key = generate_key()?;
    Ok((key.parsed.id, key.text, key.parsed.secret_hash))
}

/// A new secret for key `id` of an external key table (rotation in the cluster's control
/// plane): `(text, SHA-256 of the secret)`. The text is the only copy of the secret.
pub fn issue_external_secret_for(id: &str) -> Result<(String, [u8; 32])> {
    let key = generate_secret_for(id)?;
    Ok((key.text, key.parsed.secret_hash))
}

/// Parses and checksums key text for an external key table: `(id, SHA-256 of the secret)`,
/// or `unauthorized` for any defect. Compare the hash with [`hashes_match`].
pub fn parse_external_key(text: &str) -> Result<(String, [u8; 32])> {
    let parsed = parse_key(text)?;
    Ok((parsed.id, parsed.secret_hash))
}

/// Constant-time equality of two secret hashes.
pub fn hashes_match(a: &[u8; 32], b: &[u8; 32]) -> bool {
    hashes_equal(a, b)
}

/// The displayable prefix of a key (safe to show and log). Public for external key tables
/// (the cluster's control plane), which show keys as [`crate::ApiKey`] too.
pub fn display_prefix(id: &str) -> String {
    format!("{KEY_PREFIX}{id}")
}

/// Parses and checksums key text. Any defect is `unauthorized` with one message, so the
/// answer reveals nothing about which part was wrong.
pub(crate) fn parse_key(text: &str) -> Result<ParsedKey> {
    let malformed = || Error::Unauthorized("malformed API key".into());
    let rest = text.strip_prefix(KEY_PREFIX).ok_or_else(malformed)?;
    if rest.len() != ID_LEN + 1 + SECRET_LEN + CHECK_LEN || !rest.is_ascii() {
        return Err(malformed());
    }
    let (id, rest) = rest.split_at(ID_LEN);
    let rest = rest.strip_prefix('_').ok_or_else(malformed)?;
    let (secret, check) = rest.split_at(SECRET_LEN);
    let id_ok = id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let secret_ok = secret.bytes().chain(check.bytes()).all(|b| b.is_ascii_alphanumeric());
    if !id_ok || !secret_ok {
        return Err(malformed());
    }
    let body = &text[..text.len() - CHECK_LEN];
    if checksum(body) != check {
        return Err(malformed());
    }
    Ok(ParsedKey { id: id.to_owned(), secret_hash: hash_secret(secret.as_bytes()) })
}

/// Lower-case hex of `bytes` (key ids, hashes as stored).
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The 32 bytes a 64-digit hex string spells (`None` for anything else).
pub(crate) fn from_hex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_any_single_change_is_rejected() {
        let key = generate_key().unwrap();
        assert_eq!(parse_key(&key.text).unwrap(), key.parsed);
        assert!(key.text.starts_with("msk_"));
        for i in 4..key.text.len() {
            let mut bytes = key.text.clone().into_bytes();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let mutated = String::from_utf8(bytes).unwrap();
            if mutated != key.text {
                assert!(parse_key(&mutated).is_err(), "mutation at {i} accepted");
            }
        }
        assert!(parse_key(&key.text[..key.text.len() - 1]).is_err());
        assert!(parse_key("").is_err());
        assert!(parse_key("Bearer x").is_err());
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn rotation_keeps_the_id_and_changes_the_secret() {
        let a = generate_key().unwrap();
        let b = generate_secret_for(&a.parsed.id).unwrap();
        assert_eq!(a.parsed.id, b.parsed.id);
        assert!(!hashes_equal(&a.parsed.secret_hash, &b.parsed.secret_hash));
    }
}
