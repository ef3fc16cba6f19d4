//! Pre-shared-key authentication (spec section 4, step 4).
//!
//! Both MACs are HMAC-SHA256 over a role label followed by the client's and the server's
//! nonce. Verification goes through [`hmac::Mac::verify_slice`], which compares in constant
//! time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Length of a handshake nonce in bytes.
pub const NONCE_LEN: usize = 16;
/// Length of a MAC in bytes.
pub const MAC_LEN: usize = 32;
/// The shortest pre-shared key the protocol allows, in bytes.
pub const MIN_KEY_LEN: usize = 16;

const CLIENT_LABEL: &[u8] = b"sarlink/1 client";
const SERVER_LABEL: &[u8] = b"sarlink/1 server";

/// A pre-shared key of at least [`MIN_KEY_LEN`] bytes.
///
/// Its `Debug` output never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct PreSharedKey(Vec<u8>);

/// The key given to [`PreSharedKey::new`] is too short.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pre-shared key is {len} bytes, at least {min} are required", min = MIN_KEY_LEN)]
pub struct KeyTooShort {
    /// Length of the rejected key.
    pub len: usize,
}

impl PreSharedKey {
    /// Wraps `key` after checking its length.
    ///
    /// # Errors
    /// [`KeyTooShort`] when `key` has fewer than [`MIN_KEY_LEN`] bytes.
    pub fn new(key: impl Into<Vec<u8>>) -> Result<Self, KeyTooShort> {
        let key = key.into();
        if key.len() < MIN_KEY_LEN {
            return Err(KeyTooShort { len: key.len() });
        }
        Ok(Self(key))
    }

    /// Reads a key file: its contents with one trailing newline (`\n` or `\r\n`) removed.
    ///
    /// # Errors
    /// [`KeyFileError`] when the file cannot be read or the key is too short.
    pub fn from_file(path: &std::path::Path) -> Result<Self, KeyFileError> {
        let mut bytes = std::fs::read(path).map_err(|source| KeyFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        if bytes.ends_with(b"\n") {
            bytes.pop();
            if bytes.ends_with(b"\r") {
                bytes.pop();
            }
        }
        Ok(Self::new(bytes)?)
    }

    fn mac(
        &self,
        label: &[u8],
        client_nonce: &[u8; NONCE_LEN],
        server_nonce: &[u8; NONCE_LEN],
    ) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("hmac takes any key length");
        mac.update(label);
        mac.update(client_nonce);
        mac.update(server_nonce);
        mac
    }

    /// The MAC the client sends in `auth`.
    pub fn client_mac(
        &self,
        client_nonce: &[u8; NONCE_LEN],
        server_nonce: &[u8; NONCE_LEN],
    ) -> [u8; MAC_LEN] {
        self.mac(CLIENT_LABEL, client_nonce, server_nonce)
            .finalize()
            .into_bytes()
            .into()
    }

    /// The MAC the server sends in `welcome`.
    pub fn server_mac(
        &self,
        client_nonce: &[u8; NONCE_LEN],
        server_nonce: &[u8; NONCE_LEN],
    ) -> [u8; MAC_LEN] {
        self.mac(SERVER_LABEL, client_nonce, server_nonce)
            .finalize()
            .into_bytes()
            .into()
    }

    /// Checks a client's MAC in constant time.
    pub fn verify_client(
        &self,
        client_nonce: &[u8; NONCE_LEN],
        server_nonce: &[u8; NONCE_LEN],
        mac: &[u8],
    ) -> bool {
        self.mac(CLIENT_LABEL, client_nonce, server_nonce)
            .verify_slice(mac)
            .is_ok()
    }

    /// Checks a server's MAC in constant time.
    pub fn verify_server(
        &self,
        client_nonce: &[u8; NONCE_LEN],
        server_nonce: &[u8; NONCE_LEN],
        mac: &[u8],
    ) -> bool {
        self.mac(SERVER_LABEL, client_nonce, server_nonce)
            .verify_slice(mac)
            .is_ok()
    }
}

impl std::fmt::Debug for PreSharedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PreSharedKey(<{} bytes redacted>)", self.0.len())
    }
}

/// A key file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file could not be read.
    #[error("cannot read key file {path}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The key in the file is too short.
    #[error(transparent)]
    TooShort(#[from] KeyTooShort),
}

#[cfg(test)]
mod tests {
    use super::*;

    const CN: [u8; 16] = [1; 16];
    const SN: [u8; 16] = [2; 16];

    #[test]
    fn short_keys_are_refused() {
        assert_eq!(
            PreSharedKey::new(vec![0u8; 15]),
            Err(KeyTooShort { len: 15 })
        );
        assert!(PreSharedKey::new(vec![0u8; 16]).is_ok());
    }

    #[test]
    fn macs_match_an_independent_hmac_computation() {
        // HMAC-SHA256(key, "sarlink/1 client" || cn || sn), computed by hand from the
        // HMAC definition over the sha2 primitive, so a label or order mistake shows.
        use sha2::Digest;
        let key = PreSharedKey::new(b"0123456789abcdef".to_vec()).unwrap();
        let hmac = |label: &[u8]| {
            let mut k = [0u8; 64];
            k[..16].copy_from_slice(b"0123456789abcdef");
            let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
            let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
            let inner = Sha256::new()
                .chain_update(&ipad)
                .chain_update(label)
                .chain_update(CN)
                .chain_update(SN)
                .finalize();
            let outer: [u8; 32] = Sha256::new()
                .chain_update(&opad)
                .chain_update(inner)
                .finalize()
                .into();
            outer
        };
        assert_eq!(key.client_mac(&CN, &SN), hmac(b"sarlink/1 client"));
        assert_eq!(key.server_mac(&CN, &SN), hmac(b"sarlink/1 server"));
        assert_ne!(key.client_mac(&CN, &SN), key.server_mac(&CN, &SN));
    }

    #[test]
    fn verification_rejects_wrong_key_nonce_role_and_length() {
        let key = PreSharedKey::new(vec![7u8; 32]).unwrap();
        let other = PreSharedKey::new(vec![8u8; 32]).unwrap();
        let mac = key.client_mac(&CN, &SN);
        assert!(key.verify_client(&CN, &SN, &mac));
        assert!(!other.verify_client(&CN, &SN, &mac));
        assert!(!key.verify_client(&SN, &CN, &mac));
        assert!(!key.verify_server(&CN, &SN, &mac));
        assert!(!key.verify_client(&CN, &SN, &mac[..31]));
        let mut flipped = mac;
        flipped[31] ^= 1;
        assert!(!key.verify_client(&CN, &SN, &flipped));
    }

    #[test]
    fn debug_does_not_leak_the_key() {
        let key = PreSharedKey::new(b"supersecretkey!!".to_vec()).unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains("supersecret"), "{shown}");
    }

    #[test]
    fn key_file_trailing_newline_is_stripped() {
        let dir = std::env::temp_dir().join(format!("sarlink-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k");
        std::fs::write(&path, b"0123456789abcdef\r\n").unwrap();
        assert_eq!(
            PreSharedKey::from_file(&path).unwrap(),
            PreSharedKey::new(b"0123456789abcdef".to_vec()).unwrap()
        );
        std::fs::write(&path, b"short\n").unwrap();
        assert!(matches!(
            PreSharedKey::from_file(&path),
            Err(KeyFileError::TooShort(KeyTooShort { len: 5 }))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
