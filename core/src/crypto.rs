//! Secrets at rest: AES-256-GCM under the installation's key.
//!
//! The key lives in a file (default `data/secret.key`, created with 256 random bits on
//! first start, readable by the owner only). Losing it makes the stored TOTP secrets
//! unreadable, so back it up with the database.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

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
    /// A separate key for HMAC, derived from the same installation key.
    mac_key: [u8; 32],
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    pub fn new(key: [u8; 32]) -> SecretBox {
        let mut derivation = Sha256::new();
        derivation.update(b"dashboard fingerprint key\0");
        derivation.update(key);
        SecretBox { cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)), mac_key: derivation.finalize().into() }
    }

    /// HMAC-SHA256 of `data` under the installation's key, hex: a fingerprint that
    /// matches equal inputs without revealing them (card numbers, request bodies).
    pub fn fingerprint(&self, data: &[u8]) -> String {
        // HMAC accepts keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.mac_key).unwrap_or_else(|_| unreachable!());
        mac.update(data);
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
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

    /// `base64(nonce ‖ ciphertext)` with a fresh random nonce.
    pub fn seal(&self, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        // Encryption into a Vec cannot fail for inputs this small.
        let ciphertext = self.cipher.encrypt(Nonce::from_slice(&nonce), plaintext).unwrap_or_default();
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        BASE64.encode(sealed)
    }

    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, CryptoError> {
        let bytes = BASE64.decode(sealed).map_err(|_| CryptoError::Decrypt)?;
        if bytes.len() < 12 {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        self.cipher.decrypt(Nonce::from_slice(nonce), ciphertext).map_err(|_| CryptoError::Decrypt)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key() {
        let secret_box = SecretBox::new([7; 32]);
        let sealed = secret_box.seal(b"totp secret");
        assert_ne!(sealed, secret_box.seal(b"totp secret"), "a fresh nonce each time");
        assert_eq!(secret_box.open(&sealed).expect("opens"), b"totp secret");
        assert!(SecretBox::new([8; 32]).open(&sealed).is_err());
        assert!(secret_box.open("AAAA").is_err());
    }

    #[test]
    fn the_key_file_is_created_once_and_reused() {
        let path = std::env::temp_dir().join(format!("dashboard-key-{}", rand::rng().next_u64()));
        let first = SecretBox::from_key_file(&path).expect("created");
        let second = SecretBox::from_key_file(&path).expect("read");
        assert_eq!(second.open(&first.seal(b"x")).expect("same key"), b"x");
        std::fs::remove_file(path).expect("cleanup");
    }
}
