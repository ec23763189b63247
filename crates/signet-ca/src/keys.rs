//! CA private keys: generation, PKCS#8 PEM (optionally passphrase-encrypted), and files that
//! only their owner can read.
//!
//! Encrypted keys are PKCS#8 `ENCRYPTED PRIVATE KEY` (PBES2, RFC 8018) with PBKDF2-HMAC-SHA256
//! and AES-256-CBC: OpenSSL's own default, so `openssl pkey` reads our keys and we read theirs.
//! (scrypt would be stronger per guess, but OpenSSL refuses scrypt parameters worth having
//! with "memory limit exceeded".) We also read scrypt-protected keys.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::str::FromStr;

use pkcs8::der::Decode;
use pkcs8::{EncryptedPrivateKeyInfo, LineEnding, PrivateKeyInfo};
use rcgen::KeyPair;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::CaError;

/// PBKDF2-HMAC-SHA256 iterations for encrypted keys (OWASP's 2023 recommendation).
const PBKDF2_ITERATIONS: u32 = 600_000;

/// Key types Signet generates for its own CAs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    /// ECDSA P-256 with SHA-256 (the default: fast, universally supported).
    #[default]
    P256,
    /// ECDSA P-384 with SHA-384.
    P384,
    /// Ed25519 (not accepted by every TLS stack as a CA key: check your clients).
    Ed25519,
}

impl KeyType {
    /// Generate a fresh key of this type with ring.
    pub fn generate(self) -> Result<KeyPair, CaError> {
        let alg = match self {
            KeyType::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyType::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyType::Ed25519 => &rcgen::PKCS_ED25519,
        };
        KeyPair::generate_for(alg).map_err(|e| CaError::Key(e.to_string()))
    }
}

impl FromStr for KeyType {
    type Err = CaError;
    fn from_str(s: &str) -> Result<Self, CaError> {
        match s.to_ascii_lowercase().as_str() {
            "p256" | "p-256" | "ecdsa-p256" => Ok(KeyType::P256),
            "p384" | "p-384" | "ecdsa-p384" => Ok(KeyType::P384),
            "ed25519" => Ok(KeyType::Ed25519),
            other => Err(CaError::Key(format!(
                "unknown key type {other:?} (expected p256, p384 or ed25519)"
            ))),
        }
    }
}

/// Key types a client generates for a certificate it requests (`signet certificate`): the
/// CA's own key types and RSA. RSA keys are generated with the `rsa` crate (ring signs with
/// RSA keys but cannot make them) and then held by ring like every other key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LeafKeyType {
    /// ECDSA P-256 (the default).
    #[default]
    P256,
    /// ECDSA P-384.
    P384,
    /// Ed25519.
    Ed25519,
    /// RSA with a 2048-bit modulus.
    Rsa2048,
    /// RSA with a 3072-bit modulus.
    Rsa3072,
    /// RSA with a 4096-bit modulus.
    Rsa4096,
}

impl LeafKeyType {
    /// Every type, as its name is written.
    pub const NAMES: &'static str = "P-256, P-384, Ed25519, RSA-2048, RSA-3072 or RSA-4096";

    /// Generate a fresh key of this type.
    pub fn generate(self) -> Result<KeyPair, CaError> {
        let bits = match self {
            LeafKeyType::P256 => return KeyType::P256.generate(),
            LeafKeyType::P384 => return KeyType::P384.generate(),
            LeafKeyType::Ed25519 => return KeyType::Ed25519.generate(),
            LeafKeyType::Rsa2048 => 2048,
            LeafKeyType::Rsa3072 => 3072,
            LeafKeyType::Rsa4096 => 4096,
        };
        use rsa::pkcs8::EncodePrivateKey;
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits)
            .map_err(|e| CaError::Key(format!("generating an RSA-{bits} key: {e}")))?;
        let der = key
            .to_pkcs8_der()
            .map_err(|e| CaError::Key(format!("encoding the RSA key: {e}")))?;
        KeyPair::try_from(der.as_bytes()).map_err(|e| CaError::Key(e.to_string()))
    }
}

impl FromStr for LeafKeyType {
    type Err = CaError;
    fn from_str(s: &str) -> Result<Self, CaError> {
        let norm: String = s
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect::<String>()
            .to_ascii_lowercase();
        Ok(match norm.as_str() {
            "p256" | "ecdsap256" => LeafKeyType::P256,
            "p384" | "ecdsap384" => LeafKeyType::P384,
            "ed25519" => LeafKeyType::Ed25519,
            "rsa" | "rsa2048" => LeafKeyType::Rsa2048,
            "rsa3072" => LeafKeyType::Rsa3072,
            "rsa4096" => LeafKeyType::Rsa4096,
            _ => {
                return Err(CaError::Key(format!(
                    "unknown key type {s:?} (expected {})",
                    Self::NAMES
                )));
            }
        })
    }
}

impl std::fmt::Display for LeafKeyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LeafKeyType::P256 => "P-256",
            LeafKeyType::P384 => "P-384",
            LeafKeyType::Ed25519 => "Ed25519",
            LeafKeyType::Rsa2048 => "RSA-2048",
            LeafKeyType::Rsa3072 => "RSA-3072",
            LeafKeyType::Rsa4096 => "RSA-4096",
        })
    }
}

/// PKCS#8 PEM of `key`, encrypted when a passphrase is given.
pub fn encode_private_key(
    key: &KeyPair,
    passphrase: Option<&str>,
) -> Result<Zeroizing<String>, CaError> {
    let der = Zeroizing::new(key.serialize_der());
    match passphrase {
        None => {
            let info = interoperable(
                PrivateKeyInfo::from_der(&der).map_err(|e| CaError::Key(e.to_string()))?,
            );
            let doc =
                pkcs8::SecretDocument::try_from(info).map_err(|e| CaError::Key(e.to_string()))?;
            doc.to_pem("PRIVATE KEY", LineEnding::LF)
                .map_err(|e| CaError::Key(e.to_string()))
        }
        Some(pass) => {
            let info = interoperable(
                PrivateKeyInfo::from_der(&der).map_err(|e| CaError::Key(e.to_string()))?,
            );
            let mut salt_iv = [0u8; 32];
            SystemRandom::new()
                .fill(&mut salt_iv)
                .map_err(|_| CaError::Key("the system random number generator failed".into()))?;
            let (salt, iv) = salt_iv.split_at(16);
            let iv: &[u8; 16] = iv
                .try_into()
                .map_err(|_| CaError::Internal("iv length".into()))?;
            let params = pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(
                PBKDF2_ITERATIONS,
                salt,
                iv,
            )
            .map_err(|e| CaError::Key(e.to_string()))?;
            let doc = info
                .encrypt_with_params(params, pass.as_bytes())
                .map_err(|e| CaError::Key(e.to_string()))?;
            doc.to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
                .map_err(|e| CaError::Key(e.to_string()))
        }
    }
}

/// ring writes Ed25519 keys as PKCS#8 v2 (RFC 5958, with the public key), which OpenSSL 3.0
/// cannot read ("unsupported"). Drop the optional public key: the result is the v1 form of
/// RFC 8410 section 7, which OpenSSL, Go and ring (`from_pkcs8_maybe_unchecked`, what rcgen
/// uses to load keys) all read. ECDSA keys carry their public key inside the SEC1
/// structure and are left alone.
fn interoperable(mut info: PrivateKeyInfo<'_>) -> PrivateKeyInfo<'_> {
    const ED25519: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.101.112");
    if info.algorithm.oid == ED25519 {
        info.public_key = None;
    }
    info
}

/// Read a PKCS#8 PEM key, decrypting it with `passphrase` when it is encrypted.
pub fn decode_private_key(pem: &str, passphrase: Option<&str>) -> Result<KeyPair, CaError> {
    let (label, der) = pem_rfc7468::decode_vec(pem.trim().as_bytes())
        .map_err(|e| CaError::Key(format!("not a PEM private key: {e}")))?;
    let der = Zeroizing::new(der);
    let plain: Zeroizing<Vec<u8>> = match label {
        "PRIVATE KEY" => der,
        "ENCRYPTED PRIVATE KEY" => {
            let pass = passphrase.ok_or_else(|| {
                CaError::Key("the key is encrypted: set SIGNET_CA_PASSPHRASE".into())
            })?;
            let enc =
                EncryptedPrivateKeyInfo::from_der(&der).map_err(|e| CaError::Key(e.to_string()))?;
            let doc = enc.decrypt(pass.as_bytes()).map_err(|_| {
                CaError::Key(
                    "could not decrypt the key: wrong passphrase or unsupported cipher".into(),
                )
            })?;
            Zeroizing::new(doc.as_bytes().to_vec())
        }
        "EC PRIVATE KEY" | "RSA PRIVATE KEY" => {
            return Err(CaError::Key(format!(
                "{label} (SEC1/PKCS#1) keys are not read; convert with `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.p8`"
            )));
        }
        other => return Err(CaError::Key(format!("unexpected PEM label {other:?}"))),
    };
    KeyPair::try_from(plain.as_slice())
        .map_err(|e| CaError::Key(format!("unsupported or malformed PKCS#8 key: {e}")))
}

/// Write a secret to a new file readable only by its owner (0600), and fsync it and its
/// directory ([`crate::files::write_new`]). Refuses to overwrite an existing file.
pub fn write_private_key_file(path: &Path, pem: &str) -> Result<(), CaError> {
    crate::files::write_new(path, pem.as_bytes(), 0o600).map_err(|e| CaError::io(path, e))
}

/// Read a key file, refusing one that group or others can read.
pub fn read_private_key_file(path: &Path, passphrase: Option<&str>) -> Result<KeyPair, CaError> {
    let meta = fs::metadata(path).map_err(|e| CaError::io(path, e))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(CaError::KeyFilePermissions {
            path: path.display().to_string(),
            mode,
        });
    }
    let pem = Zeroizing::new(fs::read_to_string(path).map_err(|e| CaError::io(path, e))?);
    decode_private_key(&pem, passphrase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_plain_and_encrypted() {
        for kt in [KeyType::P256, KeyType::P384, KeyType::Ed25519] {
            let key = kt.generate().expect("generate");
            let plain = encode_private_key(&key, None).expect("encode");
            assert!(plain.starts_with("-----BEGIN PRIVATE KEY-----"));
            assert_eq!(
                decode_private_key(&plain, None)
                    .expect("decode")
                    .public_key_raw(),
                key.public_key_raw()
            );

            let enc = encode_private_key(&key, Some("correct horse")).expect("encrypt");
            assert!(enc.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
            assert!(matches!(
                decode_private_key(&enc, None),
                Err(CaError::Key(_))
            ));
            assert!(matches!(
                decode_private_key(&enc, Some("wrong")),
                Err(CaError::Key(_))
            ));
            let back = decode_private_key(&enc, Some("correct horse")).expect("decrypt");
            assert_eq!(back.public_key_raw(), key.public_key_raw());
        }
    }

    /// OpenSSL reads every key type we write, plain and encrypted (Ed25519 included: ring's
    /// own PKCS#8 v2 encoding is unreadable to OpenSSL 3.0).
    #[test]
    fn openssl_reads_our_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        for kt in [KeyType::P256, KeyType::P384, KeyType::Ed25519] {
            let key = kt.generate().expect("generate");
            for pass in [None, Some("correct horse")] {
                let pem = encode_private_key(&key, pass).expect("encode");
                let path = dir.path().join(format!("{kt:?}-{}.pem", pass.is_some()));
                std::fs::write(&path, pem.as_bytes()).expect("write");
                let out = std::process::Command::new("openssl")
                    .args(["pkey", "-noout", "-passin", "pass:correct horse", "-in"])
                    .arg(&path)
                    .output()
                    .expect("openssl must be installed (apt-get install openssl)");
                assert!(
                    out.status.success(),
                    "{kt:?} encrypted={}: {}",
                    pass.is_some(),
                    String::from_utf8_lossy(&out.stderr)
                );
                // And we read back what we wrote, to the same key.
                let back = decode_private_key(&pem, pass).expect("decode");
                assert_eq!(back.public_key_raw(), key.public_key_raw());
            }
        }
    }

    #[test]
    fn leaf_key_types_parse_and_generate_keys_openssl_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, kt, openssl_says) in [
            ("P-256", LeafKeyType::P256, "256 bit"),
            ("p384", LeafKeyType::P384, "384 bit"),
            ("ed25519", LeafKeyType::Ed25519, "ED25519"),
            ("RSA-2048", LeafKeyType::Rsa2048, "2048 bit"),
            ("rsa3072", LeafKeyType::Rsa3072, "3072 bit"),
        ] {
            assert_eq!(name.parse::<LeafKeyType>().expect(name), kt);
            assert_eq!(kt.to_string().parse::<LeafKeyType>().expect(name), kt);
            let key = kt.generate().expect("generate");
            let pem = encode_private_key(&key, None).expect("encode");
            let path = dir.path().join(format!("{kt}.pem"));
            std::fs::write(&path, pem.as_bytes()).expect("write");
            let out = std::process::Command::new("openssl")
                .args(["pkey", "-noout", "-text", "-in"])
                .arg(&path)
                .output()
                .expect("openssl must be installed (apt-get install openssl)");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && text.contains(openssl_says),
                "{kt}: {text}"
            );
            let back = decode_private_key(&pem, None).expect("reads back");
            assert_eq!(back.public_key_raw(), key.public_key_raw());
        }
        for bad in ["rsa1024", "p521", "", "dsa"] {
            assert!(bad.parse::<LeafKeyType>().is_err(), "{bad}");
        }
    }

    #[test]
    fn key_files_are_private_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.pem");
        let key = KeyType::P256.generate().expect("generate");
        write_private_key_file(&path, &encode_private_key(&key, None).expect("encode"))
            .expect("write");
        assert_eq!(
            fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        assert!(
            write_private_key_file(&path, "x").is_err(),
            "never overwrites"
        );
        read_private_key_file(&path, None).expect("readable by owner");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            read_private_key_file(&path, None),
            Err(CaError::KeyFilePermissions { mode: 0o644, .. })
        ));
    }
}
