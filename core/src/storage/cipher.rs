//! The page ciphers of encrypted environments, and how each is recorded.
//!
//! Both are computed by aws-lc (`aws-lc-rs`: assembly for AES-NI, PCLMULQDQ and AVX2, several
//! times faster per page than the portable Rust implementations), behind the `RustCrypto`
//! `aead` traits heed3 calls the cipher through. Both are standard AEADs (RFC 8452 and RFC
//! 8439) with 12-byte nonces and 16-byte tags, so a page sealed by any other implementation
//! of the same cipher opens here and the other way round (the tests check it against the
//! `RustCrypto` crates, which sealed the pages of earlier versions).

use std::marker::PhantomData;
use std::path::Path;

use aead::consts::{U0, U12, U16, U32};
use aead::{AeadCore, AeadInPlace, KeyInit, KeySizeUser, Nonce, Tag};
use aws_lc_rs::aead::{Aad, Algorithm, LessSafeKey, Nonce as LcNonce, UnboundKey};

use crate::error::{Error, Result};

/// The page cipher of an encrypted environment: authenticated, so a page that fails its tag
/// is an error (`MDB_CRYPTO_FAIL`), never garbage. Recorded beside the environment (the data
/// directory's `storage.json` for the catalog and the shared shards, an environment's own
/// `encryption.json` for the others), so an environment is always opened with the cipher it
/// was created with. The nonce of a page is its page number and the low 32 bits of its txnid,
/// which can repeat under one key (see docs/src/encryption.md, "Nonces"): new environments
/// use [`Cipher::NEW`], for which a repeat is harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cipher {
    /// ChaCha20-Poly1305: environments created before AES-256-GCM-SIV. A repeated nonce
    /// exposes the XOR of the two pages' plaintexts.
    ChaCha20Poly1305,
    /// AES-256-GCM-SIV (RFC 8452), nonce-misuse resistant: a repeated nonce shows only
    /// whether the two pages are equal.
    Aes256GcmSiv,
}

impl Cipher {
    /// The cipher of environments created now.
    pub(crate) const NEW: Cipher = Cipher::Aes256GcmSiv;

    /// The name recorded beside an environment.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Cipher::ChaCha20Poly1305 => "chacha20-poly1305",
            Cipher::Aes256GcmSiv => "aes-256-gcm-siv",
        }
    }

    /// The cipher `file` records as `name`. A name this version does not know (a file written
    /// by a newer version, or damaged) is refused with `invalid_argument` naming the file and
    /// the name, as a data directory in a format this version does not open is: the
    /// environment is not opened, and nothing is guessed.
    pub(crate) fn recorded(name: &str, file: &Path) -> Result<Cipher> {
        Cipher::ALL.into_iter().find(|c| c.name() == name).ok_or_else(|| {
            let known: Vec<&str> = Cipher::ALL.iter().map(|c| c.name()).collect();
            Error::invalid(
                "path",
                format!(
                    "{} names cipher {name:?}, unknown to this version of memsilo (it knows {})",
                    file.display(),
                    known.join(", ")
                ),
            )
        })
    }

    /// Every cipher, in the order they were introduced.
    const ALL: [Cipher; 2] = [Cipher::ChaCha20Poly1305, Cipher::Aes256GcmSiv];
}

/// An aws-lc AEAD algorithm with a 32-byte key, a 12-byte nonce and a 16-byte tag.
pub(crate) trait LcAlgorithm {
    fn algorithm() -> &'static Algorithm;
}

/// AES-256-GCM-SIV ([`Cipher::Aes256GcmSiv`]).
pub(crate) struct GcmSiv;

impl LcAlgorithm for GcmSiv {
    fn algorithm() -> &'static Algorithm {
        &aws_lc_rs::aead::AES_256_GCM_SIV
    }
}

/// ChaCha20-Poly1305 ([`Cipher::ChaCha20Poly1305`]).
pub(crate) struct ChaChaPoly;

impl LcAlgorithm for ChaChaPoly {
    fn algorithm() -> &'static Algorithm {
        &aws_lc_rs::aead::CHACHA20_POLY1305
    }
}

/// aws-lc's `A` as a `RustCrypto` AEAD, which heed3 makes from the environment's key for each
/// page it seals or opens.
pub(crate) struct LcAead<A> {
    /// `None` only if aws-lc refused the key (it takes any 32 bytes): every page then fails.
    key: Option<LessSafeKey>,
    algorithm: PhantomData<A>,
}

impl<A> KeySizeUser for LcAead<A> {
    type KeySize = U32;
}

impl<A: LcAlgorithm> KeyInit for LcAead<A> {
    fn new(key: &aead::Key<Self>) -> Self {
        let key = UnboundKey::new(A::algorithm(), key).ok().map(LessSafeKey::new);
        LcAead { key, algorithm: PhantomData }
    }
}

impl<A> AeadCore for LcAead<A> {
    type NonceSize = U12;
    type TagSize = U16;
    type CiphertextOverhead = U0;
}

impl<A> AeadInPlace for LcAead<A> {
    fn encrypt_in_place_detached(
        &self,
        nonce: &Nonce<Self>,
        aad: &[u8],
        buffer: &mut [u8],
    ) -> aead::Result<Tag<Self>> {
        let key = self.key.as_ref().ok_or(aead::Error)?;
        let nonce = LcNonce::assume_unique_for_key((*nonce).into());
        let tag = key
            .seal_in_place_separate_tag(nonce, Aad::from(aad), buffer)
            .map_err(|_| aead::Error)?;
        Ok(Tag::<Self>::clone_from_slice(tag.as_ref()))
    }

    fn decrypt_in_place_detached(
        &self,
        nonce: &Nonce<Self>,
        aad: &[u8],
        buffer: &mut [u8],
        tag: &Tag<Self>,
    ) -> aead::Result<()> {
        let key = self.key.as_ref().ok_or(aead::Error)?;
        let nonce = LcNonce::assume_unique_for_key((*nonce).into());
        key.open_in_place_separate_tag(nonce, Aad::from(aad), tag.as_slice(), buffer)
            .map(|_| ())
            .map_err(|_| aead::Error)
    }
}

#[cfg(test)]
mod tests {
    use aead::{AeadInPlace, KeyInit};

    use super::*;

    /// Seals a page-sized buffer with `A` and opens it with `B` (same key and nonce), and
    /// checks both give the same ciphertext and tag; a flipped bit fails the tag.
    fn interchangeable<A, B>()
    where
        A: AeadInPlace + KeyInit + AeadCore<NonceSize = U12>,
        B: AeadInPlace + KeyInit + AeadCore<NonceSize = U12>,
    {
        let key = [0x5a; 32];
        let plain: Vec<u8> = (0..4064u32).map(|i| (i * 31 % 251) as u8).collect();
        for nonce_byte in [0u8, 1, 0xff] {
            let nonce = [nonce_byte; 12];
            let a = A::new_from_slice(&key).unwrap();
            let b = B::new_from_slice(&key).unwrap();
            let mut sealed_a = plain.clone();
            let tag_a = a.encrypt_in_place_detached((&nonce).into(), &[], &mut sealed_a).unwrap();
            let mut sealed_b = plain.clone();
            let tag_b = b.encrypt_in_place_detached((&nonce).into(), &[], &mut sealed_b).unwrap();
            assert_eq!((&sealed_a, tag_a.as_slice()), (&sealed_b, tag_b.as_slice()));
            assert_ne!(sealed_a, plain);
            let mut opened = sealed_a.clone();
            let tag = aead::Tag::<B>::clone_from_slice(&tag_a);
            b.decrypt_in_place_detached((&nonce).into(), &[], &mut opened, &tag).unwrap();
            assert_eq!(opened, plain);
            let mut tampered = sealed_a.clone();
            tampered[100] ^= 1;
            assert!(b
                .decrypt_in_place_detached((&nonce).into(), &[], &mut tampered, &tag)
                .is_err());
        }
    }

    #[test]
    fn aws_lc_seals_as_the_rustcrypto_crates_do() {
        interchangeable::<LcAead<GcmSiv>, aes_gcm_siv::Aes256GcmSiv>();
        interchangeable::<LcAead<ChaChaPoly>, chacha20poly1305::ChaCha20Poly1305>();
    }

    /// `plain` sealed by `a` under nonce `nonce`.
    fn sealed<A>(a: &A, nonce: &[u8; 12], plain: &[u8]) -> Vec<u8>
    where
        A: AeadInPlace + AeadCore<NonceSize = U12>,
    {
        let mut b = plain.to_vec();
        a.encrypt_in_place_detached(nonce.into(), &[], &mut b).unwrap();
        b
    }

    fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
        a.iter().zip(b).map(|(x, y)| x ^ y).collect()
    }

    /// The point of AES-256-GCM-SIV here: two different pages sealed under one key and
    /// nonce do not share a keystream (the XOR of the ciphertexts is not that of the
    /// plaintexts), and equal pages seal equally. ChaCha20-Poly1305 does share it (checked, so
    /// the test would see a cipher that does not).
    #[test]
    fn a_repeated_nonce_exposes_no_xor_of_pages_with_gcm_siv() {
        let (key, nonce) = ([9u8; 32], [3u8; 12]);
        let p1 = vec![0u8; 4064];
        let p2: Vec<u8> = (0..4064u32).map(|i| (i % 256) as u8).collect();
        let siv = LcAead::<GcmSiv>::new(&key.into());
        let (s1, s2) = (sealed(&siv, &nonce, &p1), sealed(&siv, &nonce, &p2));
        assert_ne!(xor(&s1, &s2), xor(&p1, &p2), "GCM-SIV shared its keystream");
        assert_eq!(sealed(&siv, &nonce, &p1), s1, "equal pages seal equally");
        let chacha = LcAead::<ChaChaPoly>::new(&key.into());
        let (c1, c2) = (sealed(&chacha, &nonce, &p1), sealed(&chacha, &nonce, &p2));
        assert_eq!(xor(&c1, &c2), xor(&p1, &p2), "ChaCha20 shares its keystream");
    }
}
