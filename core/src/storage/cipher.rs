//! The page ciphers of encrypted environments, and how each is recorded.
//!
//! Both are computed by aws-lc (`aws-lc-rs`: assembly for AES-NI, PCLMULQDQ and AVX2, several
//! times faster per page than the portable Rust implementations). Both are standard AEADs (RFC
//! 8452 and RFC 8439) with 12-byte nonces and 16-byte tags, so a page sealed by any other
//! implementation of the same cipher opens here and the other way round (the tests check it
//! against the `RustCrypto` crates, which sealed the pages of earlier versions).
//!
//! LMDB calls [`PageCipher`] itself, not through heed3: heed3's cipher function makes the cipher
//! from the key for every page and copies each page into its output before sealing or opening it
//! there. heed3 opens the environment; memsilo's patched LMDB installs the cipher handed to it on
//! the same thread (`mdb_env_encrypt_pend`, third_party/lmdb-master3-sys/PATCHES.md, eighth
//! change), made once per environment, which seals a page where it is written from and opens it
//! straight from the file into the cache of decrypted pages.

use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use aead::consts::{U0, U1, U12, U16};
use aead::{AeadCore, AeadInPlace, KeyInit, KeySizeUser, Nonce, Tag};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce as LcNonce, UnboundKey};
use heed3::{EncryptedEnv, EnvOpenOptions, WithoutTls};
use lmdb_master3_sys::{mdb_env_encrypt_pend, mdb_env_encrypt_unpend, MDB_val};

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

/// The cipher of an encrypted environment, made from its key once, when the environment is
/// opened, and kept by LMDB until it closes it. The key lives in aws-lc's context only (wiped
/// when freed); LMDB keeps no copy of it.
pub(crate) struct PageCipher {
    key: LessSafeKey,
}

/// Bytes of a page's nonce: the first 12 of the 16 LMDB passes (its page number and the low 32
/// bits of its txnid), as heed3 took them.
const NONCE_LEN: usize = 12;
/// Bytes of a page's tag, at the end of the page (heed3 gives LMDB the cipher's tag size).
const TAG_LEN: usize = 16;

impl PageCipher {
    pub(crate) fn new(cipher: Cipher, key: &[u8; 32]) -> Result<PageCipher> {
        let algorithm = match cipher {
            Cipher::ChaCha20Poly1305 => &aws_lc_rs::aead::CHACHA20_POLY1305,
            Cipher::Aes256GcmSiv => &aws_lc_rs::aead::AES_256_GCM_SIV,
        };
        let key = UnboundKey::new(algorithm, key)
            .map_err(|_| Error::Internal(format!("aws-lc refused a {} key", cipher.name())))?;
        Ok(PageCipher { key: LessSafeKey::new(key) })
    }

    /// Seals `page` where it is, writing its tag into `tag`.
    fn seal(&self, nonce: [u8; NONCE_LEN], page: &mut [u8], tag: &mut [u8]) -> Option<()> {
        let nonce = LcNonce::assume_unique_for_key(nonce);
        let sealed = self.key.seal_in_place_separate_tag(nonce, Aad::empty(), page).ok()?;
        tag.copy_from_slice(sealed.as_ref());
        Some(())
    }

    /// Opens `sealed` into `page`, or fails if its tag `tag` does not verify.
    fn open(
        &self,
        nonce: [u8; NONCE_LEN],
        sealed: &[u8],
        tag: &[u8],
        page: &mut [u8],
    ) -> Option<()> {
        let nonce = LcNonce::assume_unique_for_key(nonce);
        self.key.open_separate_gather(nonce, Aad::empty(), sealed, tag, page).ok()
    }
}

/// LMDB's cipher function for environments of [`PageCipher`] (`MDB_enc_func`): `key[0]` holds
/// the cipher (`mv_data`), `key[1]` the page's nonce, `key[2]` its tag. LMDB seals a page in
/// place (`src` is `dst`, the page it writes) and opens a page from the file's mapping into
/// the cache of decrypted pages (`src` is not `dst`). Returns nonzero when it fails: a tag
/// that does not verify, or arguments not as described (then nothing is written).
unsafe extern "C" fn page_cipher(
    src: *const MDB_val,
    dst: *mut MDB_val,
    key: *const MDB_val,
    encdec: c_int,
) -> c_int {
    // Nothing below panics; should it, the page fails rather than unwind into C.
    let done = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: LMDB passes three values in `key` (its `MDB_enc_func` contract), of which
        // `key[0].mv_data` is the `PageCipher` given to `mdb_env_encrypt_pend`, alive until
        // LMDB releases it when the environment closes, after its last call here.
        let (cipher, iv, tag) =
            unsafe { (&*((*key).mv_data as *const PageCipher), *key.add(1), *key.add(2)) };
        // SAFETY: as above; `src` and `dst` are single values.
        let (src, dst) = unsafe { (*src, *dst) };
        if iv.mv_size < NONCE_LEN || tag.mv_size != TAG_LEN || src.mv_size != dst.mv_size {
            return None;
        }
        // SAFETY: LMDB's nonce is the 16 bytes of the page's header; checked long enough.
        let nonce: [u8; NONCE_LEN] =
            unsafe { std::slice::from_raw_parts(iv.mv_data as *const u8, NONCE_LEN) }
                .try_into()
                .ok()?;
        // SAFETY: LMDB passes the page's tag bytes (16, checked), which nothing else reads
        // or writes meanwhile: the tail of the page being sealed or opened.
        let tag_bytes = tag.mv_data.cast::<u8>();
        if encdec == 1 {
            if src.mv_data != dst.mv_data {
                return None;
            }
            // SAFETY: `dst` is the writer's page being sealed, `mv_size` bytes no other
            // thread touches; the tag follows it, so the two slices do not overlap.
            let (page, tag) = unsafe {
                (
                    std::slice::from_raw_parts_mut(dst.mv_data.cast::<u8>(), dst.mv_size),
                    std::slice::from_raw_parts_mut(tag_bytes, TAG_LEN),
                )
            };
            cipher.seal(nonce, page, tag)
        } else {
            let (from, to) = (src.mv_data as usize, dst.mv_data as usize);
            if from < to + dst.mv_size && to < from + src.mv_size {
                return None;
            }
            // SAFETY: `src` is the sealed page in the file's mapping and its tag follows
            // it (read only), `dst` a slot of the cache of decrypted pages this thread has
            // claimed (PATCHES.md, fifth change): disjoint, checked.
            let (sealed, tag, page) = unsafe {
                (
                    std::slice::from_raw_parts(src.mv_data as *const u8, src.mv_size),
                    std::slice::from_raw_parts(tag_bytes.cast_const(), TAG_LEN),
                    std::slice::from_raw_parts_mut(dst.mv_data.cast::<u8>(), dst.mv_size),
                )
            };
            cipher.open(nonce, sealed, tag, page)
        }
    }));
    match done {
        Ok(Some(())) => 0,
        _ => 1,
    }
}

/// Drops the [`PageCipher`] LMDB was given, when the environment closes.
unsafe extern "C" fn release(cipher: *mut c_void) {
    // SAFETY: `cipher` is the box `open_encrypted` leaked for `mdb_env_encrypt_pend`,
    // released by LMDB once (mdb.c, `mdb_env_enckey_release`).
    drop(unsafe { Box::from_raw(cipher.cast::<PageCipher>()) });
}

/// Opens (creating if needed) the encrypted environment in directory `path` through heed3,
/// with [`Unused`] as heed3's cipher, so that LMDB seals and opens its pages with a
/// [`PageCipher`] of `cipher` and `key` instead. An environment opened without it is an error
/// (and is closed: no transaction has run on it).
///
/// # Safety
///
/// As [`EnvOpenOptions::open`]: the path is opened once per process and its files are never
/// truncated while mapped.
pub(crate) unsafe fn open_encrypted(
    options: &EnvOpenOptions<WithoutTls>,
    path: &Path,
    cipher: Cipher,
    key: &[u8; 32],
) -> Result<EncryptedEnv<WithoutTls>> {
    /// This thread's pending cipher, taken back when dropped (after heed3's open, or if it
    /// panics).
    struct Pending;
    impl Pending {
        /// Whether LMDB took the cipher (else it is dropped).
        fn taken(self) -> bool {
            // SAFETY: called on the thread that set it; a pointer not taken is still ours.
            let left = unsafe { mdb_env_encrypt_unpend() };
            std::mem::forget(self);
            if left.is_null() {
                return true;
            }
            drop(unsafe { Box::from_raw(left.cast::<PageCipher>()) });
            false
        }
    }
    impl Drop for Pending {
        fn drop(&mut self) {
            Pending.taken();
        }
    }

    let cipher = Box::into_raw(Box::new(PageCipher::new(cipher, key)?));
    // SAFETY: `page_cipher` and `release` take the `PageCipher` `cipher` points at; LMDB owns
    // it once an environment takes it, else `Pending` takes it back.
    if unsafe { mdb_env_encrypt_pend(Some(page_cipher), cipher.cast(), Some(release)) } != 0 {
        // SAFETY: not pending, so still ours.
        drop(unsafe { Box::from_raw(cipher) });
        return Err(Error::Internal("a page cipher was pending on this thread already".into()));
    }
    let pending = Pending;
    // SAFETY: as this function's. heed3's open calls `mdb_env_set_encrypt` once, on this
    // thread, for the one environment it opens (and opens nothing else).
    let opened =
        unsafe { options.open_encrypted::<Unused, _>(aead::Key::<Unused>::default(), path) };
    if !pending.taken() {
        opened?;
        return Err(Error::Internal(
            "LMDB opened an encrypted environment without memsilo's page cipher".into(),
        ));
    }
    Ok(opened?)
}

/// The cipher heed3 is given to open an encrypted environment with: LMDB never calls it,
/// using [`PageCipher`] instead ([`open_encrypted`]), and it fails every page should it be
/// called, so no page is ever sealed under another key. Its key (one byte) is not a key.
pub(crate) struct Unused;

impl KeySizeUser for Unused {
    type KeySize = U1;
}

impl KeyInit for Unused {
    fn new(_: &aead::Key<Self>) -> Self {
        Unused
    }
}

impl AeadCore for Unused {
    type NonceSize = U12;
    /// The tag size heed3 gives LMDB: [`TAG_LEN`], the size of the pages' tags.
    type TagSize = U16;
    type CiphertextOverhead = U0;
}

impl AeadInPlace for Unused {
    fn encrypt_in_place_detached(
        &self,
        _: &Nonce<Self>,
        _: &[u8],
        _: &mut [u8],
    ) -> aead::Result<Tag<Self>> {
        Err(aead::Error)
    }

    fn decrypt_in_place_detached(
        &self,
        _: &Nonce<Self>,
        _: &[u8],
        _: &mut [u8],
        _: &Tag<Self>,
    ) -> aead::Result<()> {
        Err(aead::Error)
    }
}

#[cfg(test)]
mod tests {
    use aead::{AeadInPlace, KeyInit};

    use super::*;

    const KEY: [u8; 32] = [0x5a; 32];

    /// A page as LMDB hands it to [`page_cipher`]: its 16-byte header (the nonce), then the
    /// body, then the tag's 16 bytes.
    fn page(header: [u8; 16], body: &[u8]) -> Vec<u8> {
        [&header[..], body, &[0; TAG_LEN]].concat()
    }

    /// `MDB_val`s of `page`'s body and of its header and tag (`key[1]`, `key[2]`), as LMDB
    /// passes them, with `cipher` as `key[0]`.
    fn vals(cipher: &PageCipher, page: &mut [u8]) -> (MDB_val, [MDB_val; 3]) {
        let body = page.len() - 16 - TAG_LEN;
        let base = page.as_mut_ptr();
        let val = |at: usize, size: usize| MDB_val {
            mv_size: size,
            mv_data: unsafe { base.add(at) }.cast(),
        };
        let cipher = MDB_val { mv_size: 0, mv_data: std::ptr::from_ref(cipher).cast_mut().cast() };
        (val(16, body), [cipher, val(0, 16), val(16 + body, TAG_LEN)])
    }

    /// [`page_cipher`] called as LMDB calls it; its return value.
    fn call(src: MDB_val, mut dst: MDB_val, keys: &[MDB_val; 3], encdec: c_int) -> c_int {
        unsafe { page_cipher(&raw const src, &raw mut dst, keys.as_ptr(), encdec) }
    }

    /// Seals `page` in place through [`page_cipher`], as LMDB's flush does; its return value.
    fn seal(cipher: &PageCipher, page: &mut [u8]) -> c_int {
        let (body, keys) = vals(cipher, page);
        call(body, body, &keys, 1)
    }

    /// Opens the sealed `page` through [`page_cipher`] into a buffer of its own, as LMDB's
    /// cache of decrypted pages does: the body, or `None` if it failed.
    fn open(cipher: &PageCipher, page: &mut [u8]) -> Option<Vec<u8>> {
        let (body, keys) = vals(cipher, page);
        let mut plain = vec![0u8; body.mv_size];
        let out = MDB_val { mv_size: plain.len(), mv_data: plain.as_mut_ptr().cast() };
        (call(body, out, &keys, 0) == 0).then_some(plain)
    }

    /// LMDB's pages sealed by [`PageCipher`] are the bytes `R` seals (same key, and the
    /// first 12 bytes of the header as the nonce, as heed3 took them), and `R`'s open; a
    /// flipped bit fails the tag.
    fn interchangeable<R: AeadInPlace + KeyInit + AeadCore<NonceSize = U12, TagSize = U16>>(
        cipher: Cipher,
    ) {
        let ours = PageCipher::new(cipher, &KEY).unwrap();
        let theirs = R::new_from_slice(&KEY).unwrap();
        let body: Vec<u8> = (0..4064u32).map(|i| (i * 31 % 251) as u8).collect();
        for header in [[0u8; 16], [1; 16], [0xff; 16], std::array::from_fn(|i| i as u8)] {
            let mut sealed = page(header, &body);
            assert_eq!(seal(&ours, &mut sealed), 0);
            let mut expected = body.clone();
            let tag = theirs
                .encrypt_in_place_detached((&header[..12]).into(), &[], &mut expected)
                .unwrap();
            assert_eq!(sealed, [&header[..], &expected, &tag].concat());
            assert_eq!(open(&ours, &mut sealed).as_deref(), Some(&body[..]));
            let mut tampered = sealed.clone();
            tampered[100] ^= 1;
            assert_eq!(open(&ours, &mut tampered), None);
            let mut other_page = sealed.clone();
            other_page[0] ^= 1;
            assert_eq!(open(&ours, &mut other_page), None, "the header is the nonce");
        }
    }

    #[test]
    fn pages_seal_as_the_rustcrypto_crates_do() {
        interchangeable::<aes_gcm_siv::Aes256GcmSiv>(Cipher::Aes256GcmSiv);
        interchangeable::<chacha20poly1305::ChaCha20Poly1305>(Cipher::ChaCha20Poly1305);
    }

    /// What LMDB never passes is refused and left untouched: a page sealed into another
    /// buffer, opened onto itself, or with a tag of another size.
    #[test]
    fn the_cipher_function_refuses_other_arguments() {
        let ours = PageCipher::new(Cipher::NEW, &KEY).unwrap();
        let body = vec![7u8; 4064];
        let mut p = page([3; 16], &body);
        let (src, mut keys) = vals(&ours, &mut p);
        let mut other = vec![0u8; body.len()];
        let out = MDB_val { mv_size: other.len(), mv_data: other.as_mut_ptr().cast() };
        assert_eq!(call(src, out, &keys, 1), 1);
        assert_eq!(other, vec![0; body.len()]);
        assert_eq!(call(src, src, &keys, 0), 1);
        keys[2].mv_size = 8;
        assert_eq!(call(src, src, &keys, 1), 1);
        assert_eq!(p, page([3; 16], &body));
    }

    /// The point of AES-256-GCM-SIV here: two different pages sealed under one key and
    /// nonce do not share a keystream (the XOR of the ciphertexts is not that of the
    /// plaintexts), and equal pages seal equally. ChaCha20-Poly1305 does share it (checked, so
    /// the test would see a cipher that does not).
    #[test]
    fn a_repeated_nonce_exposes_no_xor_of_pages_with_gcm_siv() {
        let sealed = |cipher: &PageCipher, body: &[u8]| {
            let mut p = page([3; 16], body);
            assert_eq!(seal(cipher, &mut p), 0);
            p[16..16 + body.len()].to_vec()
        };
        let xor = |a: &[u8], b: &[u8]| -> Vec<u8> { a.iter().zip(b).map(|(x, y)| x ^ y).collect() };
        let p1 = vec![0u8; 4064];
        let p2: Vec<u8> = (0..4064u32).map(|i| (i % 256) as u8).collect();
        let siv = PageCipher::new(Cipher::Aes256GcmSiv, &[9; 32]).unwrap();
        let (s1, s2) = (sealed(&siv, &p1), sealed(&siv, &p2));
        assert_ne!(xor(&s1, &s2), xor(&p1, &p2), "GCM-SIV shared its keystream");
        assert_eq!(sealed(&siv, &p1), s1, "equal pages seal equally");
        let chacha = PageCipher::new(Cipher::ChaCha20Poly1305, &[9; 32]).unwrap();
        let (c1, c2) = (sealed(&chacha, &p1), sealed(&chacha, &p2));
        assert_eq!(xor(&c1, &c2), xor(&p1, &p2), "ChaCha20 shares its keystream");
    }
}
