//! Secrets at rest: AES-256-GCM under the installation's key, each bound to the row it
//! belongs to; and keyed MACs (HMAC-SHA256) under keys derived from it with HKDF, one per
//! purpose (fingerprints, one-time codes, the audit chain).
//!
//! The key lives in a file (default `data/secret.key`, created with 256 random bits on
//! first start, readable by the owner only). Losing it makes the stored TOTP secrets
//! unreadable, so back it up with the database.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("secret key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("a stored secret cannot be decrypted (wrong key or damaged data)")]
    Decrypt,
}

/// Encrypts and decrypts small secrets, and makes keyed fingerprints.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
    /// HKDF-SHA256 of the installation key, from which each purpose's MAC key comes.
    derivation: Hkdf<Sha256>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    pub fn new(key: [u8; 32]) -> SecretBox {
        SecretBox {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)),
            derivation: Hkdf::<Sha256>::new(Some(b"dashboard"), &key),
        }
    }

    /// HMAC-SHA256 of `data` under the key HKDF derives for `purpose`, hex. Keys of
    /// different purposes are unrelated, so a MAC made for one never passes for another.
    pub fn mac(&self, purpose: &str, data: &[u8]) -> String {
        let mut key = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's limit of 8,160.
        self.derivation.expand(purpose.as_bytes(), &mut key).unwrap_or_else(|_| unreachable!());
        // HMAC accepts keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap_or_else(|_| unreachable!());
        mac.update(data);
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A fingerprint that matches equal inputs without revealing them (card numbers,
    /// request bodies).
    pub fn fingerprint(&self, data: &[u8]) -> String {
        self.mac("fingerprint", data)
    }

    /// Reads the key file, creating it with a random key when it does not exist.
    pub fn from_key_file(path: &Path) -> Result<SecretBox, CryptoError> {
        let error = |reason: String| CryptoError::KeyFile { path: path.display().to_string(), reason };
        if !path.exists() {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| error(e.to_string()))?;
            }
            let mut key = [0u8; 32];
            rand::rng().fill_bytes(&mut key);
            write_private(path, BASE64.encode(key).as_bytes()).map_err(|e| error(e.to_string()))?;
        }
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        let bytes = BASE64.decode(text.trim()).map_err(|_| error("not base64".to_owned()))?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| error("the key must be 32 bytes".to_owned()))?;
        Ok(SecretBox::new(key))
    }

    /// `v2:` and `base64(nonce ‖ ciphertext)` with a fresh random nonce, bound to
    /// `context` (the row it is stored in, e.g. `totp user 42`): authenticated with it but
    /// not stored, so a sealed secret copied into another row does not open there.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload { msg: plaintext, aad: context.as_bytes() };
        // Encryption into a Vec cannot fail for inputs this small.
        let ciphertext = self.cipher.encrypt(Nonce::from_slice(&nonce), payload).unwrap_or_default();
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        format!("{BOUND}{}", BASE64.encode(sealed))
    }

    /// Opens what [`SecretBox::seal`] sealed for `context`. A secret sealed before
    /// secrets were bound to their rows (no `v2:`) opens without a context; it is bound
    /// when it is next written.
    pub fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>, CryptoError> {
        let (encoded, aad) = match sealed.strip_prefix(BOUND) {
            Some(bound) => (bound, context.as_bytes()),
            None => (sealed, &b""[..]),
        };
        let bytes = BASE64.decode(encoded).map_err(|_| CryptoError::Decrypt)?;
        if bytes.len() < 12 {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let payload = Payload { msg: ciphertext, aad };
        self.cipher.decrypt(Nonce::from_slice(nonce), payload).map_err(|_| CryptoError::Decrypt)
    }
}

/// The prefix of a secret sealed with its context.
const BOUND: &str = "v2:";

#[cfg(unix)]
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?.write_all(contents)
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// Whether two secrets (tokens, MACs) are equal, in time independent of where they differ.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_in_their_row() {
        let secret_box = SecretBox::new([7; 32]);
        let sealed = secret_box.seal("totp user 1", b"totp secret");
        assert_ne!(sealed, secret_box.seal("totp user 1", b"totp secret"), "a fresh nonce each time");
        assert_eq!(secret_box.open("totp user 1", &sealed).expect("opens"), b"totp secret");
        assert!(secret_box.open("totp user 2", &sealed).is_err(), "copied into another user's row");
        assert!(SecretBox::new([8; 32]).open("totp user 1", &sealed).is_err());
        assert!(secret_box.open("totp user 1", "v2:AAAA").is_err());
    }

    #[test]
    fn macs_of_different_purposes_differ() {
        let secret_box = SecretBox::new([7; 32]);
        assert_eq!(secret_box.mac("a", b"x"), secret_box.mac("a", b"x"));
        assert_ne!(secret_box.mac("a", b"x"), secret_box.mac("b", b"x"));
        assert_ne!(secret_box.mac("a", b"x"), SecretBox::new([8; 32]).mac("a", b"x"));
    }

    #[test]
    fn the_key_file_is_created_once_and_reused() {
        let path = std::env::temp_dir().join(format!("dashboard-key-{}", rand::rng().next_u64()));
        let first = SecretBox::from_key_file(&path).expect("created");
        let second = SecretBox::from_key_file(&path).expect("read");
        assert_eq!(second.open("c", &first.seal("c", b"x")).expect("same key"), b"x");
        std::fs::remove_file(path).expect("cleanup");
    }
}
