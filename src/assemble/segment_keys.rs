//! The ed25519 keys that sign entries of the shared segment cache
//! ([`super::remote_segments`]), written as Nix writes binary-cache keys: `name:base64`,
//! a public key of 32 bytes, a secret key of 64 (the seed, then the public key; a bare
//! 32-byte seed is read too). `nix-store --generate-binary-cache-key` makes such a pair, and
//! so does `terraform-provider-resin segment-cache-key <name>`.
//!
//! A signature covers an entry's key (what its bytes are a function of) and the digest and
//! size of the entry as the registry stores it: a reader that trusts the signer knows the
//! entry is what that writer built for that key, which it could not check otherwise
//! without building the segment itself.

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ED25519};

use crate::oci::digest::Digest;

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A key readers trust.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    pub name: String,
    bytes: [u8; 32],
}

/// A writer's key.
#[derive(Debug)]
pub struct SigningKey {
    pub name: String,
    pair: Ed25519KeyPair,
}

/// `name:base64`: the name and the decoded bytes.
fn split(text: &str, what: &str) -> Result<(String, Vec<u8>)> {
    let Some((name, encoded)) = text.trim().split_once(':') else {
        bail!("a {what} is written name:base64 (as nix-store --generate-binary-cache-key writes it)");
    };
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("{name:?} is not a key name");
    }
    let bytes = BASE64.decode(encoded.trim()).with_context(|| format!("the {what} {name} is not base64"))?;
    Ok((name.to_string(), bytes))
}

impl PublicKey {
    pub fn parse(text: &str) -> Result<PublicKey> {
        let (name, bytes) = split(text, "public key")?;
        let Ok(bytes) = <[u8; 32]>::try_from(bytes.as_slice()) else {
            bail!("the public key {name} has {} bytes, not an ed25519 key's 32", bytes.len());
        };
        Ok(PublicKey { name, bytes })
    }

    /// Whether `signature` (base64) is this key's over `message`.
    pub fn verifies(&self, message: &[u8], signature: &str) -> bool {
        let Ok(signature) = BASE64.decode(signature) else { return false };
        UnparsedPublicKey::new(&ED25519, &self.bytes).verify(message, &signature).is_ok()
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, BASE64.encode(self.bytes))
    }
}

impl SigningKey {
    pub fn parse(text: &str) -> Result<SigningKey> {
        let (name, bytes) = split(text, "signing key")?;
        let pair = match bytes.len() {
            64 => Ed25519KeyPair::from_seed_and_public_key(&bytes[..32], &bytes[32..])
                .map_err(|_| anyhow::anyhow!("the signing key {name}'s public half does not match its seed"))?,
            32 => Ed25519KeyPair::from_seed_unchecked(&bytes)
                .map_err(|_| anyhow::anyhow!("the signing key {name} is not an ed25519 seed"))?,
            n => bail!("the signing key {name} has {n} bytes, not 64 (seed and public key) or 32 (seed)"),
        };
        Ok(SigningKey { name, pair })
    }

    pub fn public(&self) -> PublicKey {
        let bytes = <[u8; 32]>::try_from(self.pair.public_key().as_ref()).expect("an ed25519 public key has 32 bytes");
        PublicKey { name: self.name.clone(), bytes }
    }

    /// The signature of `message`, base64.
    pub fn sign(&self, message: &[u8]) -> String {
        BASE64.encode(self.pair.sign(message).as_ref())
    }

    /// A new key named `name`: the secret (`name:base64` of seed and public key) and the
    /// public key.
    pub fn generate(name: &str) -> Result<(String, PublicKey)> {
        let mut seed = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
            .map_err(|_| anyhow::anyhow!("no random numbers from the system"))?;
        let mut secret = seed.to_vec();
        let key = SigningKey::parse(&format!("{name}:{}", BASE64.encode(seed)))?;
        secret.extend_from_slice(key.pair.public_key().as_ref());
        Ok((format!("{name}:{}", BASE64.encode(&secret)), key.public()))
    }
}

/// What a signature of the entry stored for `key` covers.
pub fn signed_message(key: &Digest, entry: &Digest, size: u64) -> Vec<u8> {
    format!("resin-segment-signature v1\nkey {key}\nentry {entry} {size}\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sign_and_verify_and_bad_ones_do_not_parse() {
        let (secret, public) = SigningKey::generate("ci-1").unwrap();
        let key = SigningKey::parse(&secret).unwrap();
        assert_eq!(key.public(), public);
        assert_eq!(PublicKey::parse(&public.to_string()).unwrap(), public);
        let message = signed_message(&crate::oci::digest::sha256(b"k"), &crate::oci::digest::sha256(b"e"), 5);
        let signature = key.sign(&message);
        assert!(public.verifies(&message, &signature));
        assert!(!public.verifies(b"another message", &signature));
        let (_, other) = SigningKey::generate("ci-2").unwrap();
        assert!(!other.verifies(&message, &signature), "another key's signature");
        assert!(!public.verifies(&message, "not base64!"));
        // The seed alone is a key too: the same one.
        let seed = BASE64.encode(&BASE64.decode(secret.split_once(':').unwrap().1).unwrap()[..32]);
        assert_eq!(SigningKey::parse(&format!("ci-1:{seed}")).unwrap().public(), public);

        for (text, says) in [
            ("no-colon", "name:base64"),
            (":AAAA", "is not a key name"),
            ("k:???", "is not base64"),
            ("k:AAAA", "has 3 bytes"),
        ] {
            let error = PublicKey::parse(text).unwrap_err().to_string();
            assert!(error.contains(says), "{text}: {error}");
        }
        // A secret whose public half is another key's.
        let mut bytes = BASE64.decode(secret.split_once(':').unwrap().1).unwrap();
        bytes[40] ^= 1;
        let error = SigningKey::parse(&format!("ci-1:{}", BASE64.encode(&bytes))).unwrap_err().to_string();
        assert!(error.contains("does not match its seed"), "{error}");
    }
}
