//! Secure Boot signing identities: an X.509 certificate and what signs with its key.
//!
//! * a PEM private key, given as a (sensitive) value or a file: RSA (2048 bits or more,
//!   PKCS#1 or PKCS#8) signing with PKCS#1 v1.5, or ECDSA P-256 (SEC1 or PKCS#8) with
//!   RFC 6979 nonces; both give the same signature for the same digest every time, so
//!   a signed UKI's bytes stay a function of its inputs;
//! * an external signer command, for keys in an HSM or a KMS: it is run with the SHA-256
//!   digest to sign (32 bytes) on its standard input, and writes the signature to its
//!   standard output, as `openssl pkeyutl -sign -pkeyopt digest:sha256` does (RSA: the
//!   PKCS#1 v1.5 signature; ECDSA: the DER signature).
//!
//! Every signature is verified with the certificate's public key before it is used: a key
//! that is not the certificate's, or a signer that returns something else, is an error,
//! never a UKI that firmware would refuse.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::SystemTime;

use anyhow::{anyhow, bail, Context, Result};
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _};
use rsa::signature::hazmat::{PrehashSigner as _, PrehashVerifier as _};
use rsa::traits::PublicKeyParts as _;
use sha2::Sha256;
use x509_cert::der::{Decode as _, DecodePem as _, Encode as _};
use x509_cert::Certificate;

/// `rsaEncryption`.
const RSA: &str = "1.2.840.113549.1.1.1";
/// `id-ecPublicKey`, and the P-256 curve.
const EC: &str = "1.2.840.10045.2.1";
const P256: &str = "1.2.840.10045.3.1.7";
/// `id-kp-codeSigning`.
const CODE_SIGNING: &str = "1.3.6.1.5.5.7.3.3";
/// The smallest RSA key signed with.
const MIN_RSA_BITS: usize = 2048;

/// The signature algorithm of a certificate's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// RSA with PKCS#1 v1.5 padding and SHA-256.
    Rsa,
    /// ECDSA on P-256 with SHA-256.
    EcdsaP256,
}

/// Where the private key is.
#[derive(Clone, Debug)]
pub enum KeySource<'a> {
    /// PEM text.
    Pem(&'a str),
    /// A PEM file, read when signing.
    File(&'a Path),
    /// A program and its arguments that sign a digest (see the module doc).
    Command(&'a [String]),
}

enum Key {
    Rsa(Box<rsa::pkcs1v15::SigningKey<Sha256>>),
    EcdsaP256(p256::ecdsa::SigningKey),
    Command(Vec<String>),
}

/// A certificate and what signs with its key.
pub struct Signer {
    certificate: Certificate,
    algorithm: Algorithm,
    key: Key,
}

/// Which input a signing error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Certificate,
    Key,
}

/// An error in a signing input, with the input it is about.
#[derive(Debug, thiserror::Error)]
#[error("{error:#}")]
pub struct SigningError {
    pub fault: Fault,
    pub error: anyhow::Error,
}

/// Signing with the key failed (a signer command that failed or returned something else):
/// the context of such an error, which callers find with `downcast_ref`.
#[derive(Debug, thiserror::Error)]
#[error("the signing key could not sign")]
pub struct KeyFailed;

fn fault(fault: Fault) -> impl FnOnce(anyhow::Error) -> SigningError {
    move |error| SigningError { fault, error }
}

/// Parses a PEM certificate and the algorithm of its key.
pub fn parse_certificate(pem: &str) -> Result<(Certificate, Algorithm)> {
    let certificate = Certificate::from_pem(pem.trim().as_bytes())
        .map_err(|e| anyhow!("not a PEM X.509 certificate (-----BEGIN CERTIFICATE-----): {e}"))?;
    let key = certificate.tbs_certificate().subject_public_key_info();
    let algorithm = match key.algorithm.oid.to_string().as_str() {
        RSA => {
            let public = rsa::PublicKey::from_public_key_der(&key.to_der()?)
                .map_err(|e| anyhow!("the certificate's RSA key cannot be read: {e}"))?;
            let bits = public.size() * 8;
            if bits < MIN_RSA_BITS {
                bail!(
                    "the certificate's RSA key has {bits} bits; Secure Boot signing keys need at least {MIN_RSA_BITS}"
                );
            }
            Algorithm::Rsa
        }
        EC => {
            let curve = key
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<x509_cert::der::asn1::ObjectIdentifier>().ok());
            if curve.map(|c| c.to_string()).as_deref() != Some(P256) {
                bail!("the certificate's EC key is not on P-256, the one curve signed with");
            }
            Algorithm::EcdsaP256
        }
        other => bail!("the certificate's key is {other}, neither RSA nor ECDSA P-256"),
    };
    Ok((certificate, algorithm))
}

/// Parses a PEM private key of `algorithm`.
fn parse_key(pem: &str, algorithm: Algorithm) -> Result<Key> {
    let pem = pem.trim();
    let label = pem.lines().next().unwrap_or_default();
    if label.contains("ENCRYPTED") {
        bail!("an encrypted private key cannot be read here: give it unencrypted (as a sensitive value or a file only the signer can read), or sign with signing_command");
    }
    match algorithm {
        Algorithm::Rsa => {
            let key = rsa::PrivateKey::from_pkcs8_pem(pem)
                .or_else(|_| rsa::PrivateKey::from_pkcs1_pem(pem))
                .map_err(|_| anyhow!("not a PEM RSA private key (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`), as the certificate's key is RSA"))?;
            Ok(Key::Rsa(Box::new(rsa::pkcs1v15::SigningKey::new(key))))
        }
        Algorithm::EcdsaP256 => {
            let key = p256::SecretKey::from_pkcs8_pem(pem)
                .or_else(|_| p256::SecretKey::from_sec1_pem(pem))
                .map_err(|_| anyhow!("not a PEM P-256 private key (PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`), as the certificate's key is ECDSA P-256"))?;
            Ok(Key::EcdsaP256(p256::ecdsa::SigningKey::from(key)))
        }
    }
}

impl Signer {
    /// The certificate `certificate_pem` and the key at `key`. A key given as PEM or a
    /// file is read and checked to be the certificate's now; a command is checked when it
    /// signs.
    pub fn new(certificate_pem: &str, key: KeySource<'_>) -> Result<Signer, SigningError> {
        let (certificate, algorithm) = parse_certificate(certificate_pem).map_err(fault(Fault::Certificate))?;
        let key = match key {
            KeySource::Pem(pem) => parse_key(pem, algorithm).map_err(fault(Fault::Key))?,
            KeySource::File(path) => {
                let pem = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the private key file {}", path.display()))
                    .map_err(fault(Fault::Key))?;
                parse_key(&pem, algorithm)
                    .with_context(|| format!("the private key file {}", path.display()))
                    .map_err(fault(Fault::Key))?
            }
            KeySource::Command(argv) => {
                if argv.is_empty() || argv[0].is_empty() {
                    return Err(SigningError { fault: Fault::Key, error: anyhow!("the signer command is empty") });
                }
                Key::Command(argv.to_vec())
            }
        };
        let signer = Signer { certificate, algorithm, key };
        if !matches!(signer.key, Key::Command(_)) {
            // A key that is not the certificate's signs what the certificate cannot verify.
            let probe = crate::oci::digest::sha256(b"resin: is this the certificate's key?");
            let digest: [u8; 32] = hex::decode(probe.digest()).expect("hex").try_into().expect("32 bytes");
            signer.sign(&digest).map_err(|_| SigningError {
                fault: Fault::Key,
                error: anyhow!("the private key is not the one of the certificate (its signatures do not verify with the certificate's public key)"),
            })?;
        }
        Ok(signer)
    }

    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Signs `digest` (SHA-256) and checks the signature with the certificate's key.
    pub fn sign(&self, digest: &[u8; 32]) -> Result<Vec<u8>> {
        self.sign_checked(digest).map_err(|e| e.context(KeyFailed))
    }

    fn sign_checked(&self, digest: &[u8; 32]) -> Result<Vec<u8>> {
        let signature = match &self.key {
            Key::Rsa(key) => {
                let signature: rsa::pkcs1v15::Signature = key.sign_prehash(digest)?;
                Box::<[u8]>::from(signature).into_vec()
            }
            Key::EcdsaP256(key) => {
                let signature: p256::ecdsa::Signature = key.sign_prehash(digest)?;
                signature.to_der().as_bytes().to_vec()
            }
            Key::Command(argv) => run_signer(argv, digest)?,
        };
        self.verify(digest, &signature).with_context(|| match &self.key {
            Key::Command(argv) => format!(
                "the signer command {:?} returned {} bytes that are not a signature of the digest by the certificate's key",
                argv[0],
                signature.len()
            ),
            _ => "the key's signature does not verify with the certificate".to_string(),
        })?;
        Ok(signature)
    }

    /// Checks `signature` of `digest` with the certificate's public key.
    pub fn verify(&self, digest: &[u8; 32], signature: &[u8]) -> Result<()> {
        let public = self.certificate.tbs_certificate().subject_public_key_info().to_der()?;
        match self.algorithm {
            Algorithm::Rsa => {
                let key = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(rsa::PublicKey::from_public_key_der(&public)?);
                let signature = rsa::pkcs1v15::Signature::try_from(signature)?;
                key.verify_prehash(digest, &signature)?;
            }
            Algorithm::EcdsaP256 => {
                let key = p256::ecdsa::VerifyingKey::from_public_key_der(&public)?;
                let signature = p256::ecdsa::Signature::from_der(signature)?;
                key.verify_prehash(digest, &signature)?;
            }
        }
        Ok(())
    }

    /// What is worth a warning about the certificate at `now`: an expired or not yet
    /// valid certificate, one whose extended key usage leaves out code signing.
    pub fn warnings(&self, now: SystemTime) -> Vec<String> {
        let tbs = self.certificate.tbs_certificate();
        let mut warnings = Vec::new();
        let validity = tbs.validity();
        if validity.not_after.to_system_time() < now {
            warnings.push(format!(
                "the signing certificate expired on {}: UEFI firmware does not check expiry (it has no trusted clock) and still boots what it signs, but other verifiers refuse it",
                validity.not_after
            ));
        }
        if validity.not_before.to_system_time() > now {
            warnings.push(format!("the signing certificate is not valid before {}", validity.not_before));
        }
        if let Ok(Some((_, usage))) = tbs.get_extension::<x509_cert::ext::pkix::ExtendedKeyUsage>() {
            if !usage.0.iter().any(|oid| oid.to_string() == CODE_SIGNING) {
                warnings.push(
                    "the signing certificate's extended key usage leaves out code signing: UEFI firmware accepts it, other verifiers may not"
                        .to_string(),
                );
            }
        }
        warnings
    }

    /// The certificate's DER bytes.
    pub fn certificate_der(&self) -> Result<Vec<u8>> {
        Ok(self.certificate.to_der()?)
    }
}

/// Runs the signer command `argv` with `digest` on its standard input; its standard output
/// is the signature.
fn run_signer(argv: &[String], digest: &[u8; 32]) -> Result<Vec<u8>> {
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .env("RESIN_SIGNING_DIGEST", hex::encode(digest))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting the signer command {:?}", argv[0]))?;
    // A signer may not read its input (it can take RESIN_SIGNING_DIGEST, or fail first): a
    // closed pipe is not the failure, its exit status and standard error say what is.
    match child.stdin.take().context("the signer's standard input")?.write_all(digest) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(e).with_context(|| format!("writing the digest to the signer command {:?}", argv[0]));
        }
        _ => {}
    }
    let mut signature = Vec::new();
    child.stdout.take().context("the signer's standard output")?.read_to_end(&mut signature)?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last: Vec<&str> = stderr.lines().rev().take(5).collect();
        bail!(
            "the signer command {:?} failed ({}): {}",
            argv[0],
            output.status,
            last.into_iter().rev().collect::<Vec<_>>().join(" / ")
        );
    }
    if signature.is_empty() {
        bail!("the signer command {:?} wrote no signature", argv[0]);
    }
    Ok(signature)
}

/// A certificate's DER parsed back (for tests of what was written).
pub fn certificate_from_der(der: &[u8]) -> Result<Certificate> {
    Ok(Certificate::from_der(der)?)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A self-signed RSA 2048 certificate and its key, made by openssl once per call.
    pub fn rsa_identity(dir: &Path, name: &str) -> (String, String) {
        identity(dir, name, &["-newkey", "rsa:2048"])
    }

    pub fn identity(dir: &Path, name: &str, key: &[&str]) -> (String, String) {
        let (cert, keyfile) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        let status = Command::new("openssl")
            .args(["req", "-x509", "-nodes", "-days", "3650", "-subj", &format!("/CN={name}")])
            .args(key)
            .arg("-keyout")
            .arg(&keyfile)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        (std::fs::read_to_string(cert).unwrap(), std::fs::read_to_string(keyfile).unwrap())
    }

    #[test]
    fn keys_sign_deterministically_and_only_the_certificates_key_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = rsa_identity(dir.path(), "db");
        let (_, other_key) = rsa_identity(dir.path(), "other");
        let signer = Signer::new(&cert, KeySource::Pem(&key)).unwrap();
        assert_eq!(signer.algorithm(), Algorithm::Rsa);
        let digest = [7u8; 32];
        assert_eq!(signer.sign(&digest).unwrap(), signer.sign(&digest).unwrap(), "PKCS#1 v1.5 is deterministic");
        let error = Signer::new(&cert, KeySource::Pem(&other_key)).err().unwrap();
        assert_eq!(error.fault, Fault::Key);
        assert!(error.to_string().contains("not the one of the certificate"), "{error}");
        let error = Signer::new("not a certificate", KeySource::Pem(&key)).err().unwrap();
        assert_eq!(error.fault, Fault::Certificate);
        let error = Signer::new(&cert, KeySource::File(&dir.path().join("missing.key"))).err().unwrap();
        assert!(error.to_string().contains("missing.key"), "{error}");
        // An external signer gives the same bytes as the key itself (openssl, as a KMS would).
        let keyfile = dir.path().join("db.key").display().to_string();
        let argv: Vec<String> =
            ["openssl", "pkeyutl", "-sign", "-inkey", &keyfile, "-pkeyopt", "digest:sha256"].map(String::from).to_vec();
        let command = Signer::new(&cert, KeySource::Command(&argv)).unwrap();
        assert_eq!(command.sign(&digest).unwrap(), signer.sign(&digest).unwrap());
        // One that fails, or returns garbage.
        let failing: Vec<String> = ["sh", "-c", "echo no HSM here >&2; exit 3"].map(String::from).to_vec();
        let error = Signer::new(&cert, KeySource::Command(&failing)).unwrap().sign(&digest).unwrap_err();
        assert!(format!("{error:#}").contains("no HSM here"), "{error:#}");
        // One that exits before reading the digest: its own failure, not a broken pipe.
        let early: Vec<String> = ["sh", "-c", "exec 0<&-; echo refused early >&2; exit 4"].map(String::from).to_vec();
        for _ in 0..20 {
            let error = Signer::new(&cert, KeySource::Command(&early)).unwrap().sign(&digest).unwrap_err();
            assert!(format!("{error:#}").contains("refused early"), "{error:#}");
        }
        let garbage: Vec<String> = ["sh", "-c", "cat >/dev/null; echo garbage"].map(String::from).to_vec();
        let error = Signer::new(&cert, KeySource::Command(&garbage)).unwrap().sign(&digest).unwrap_err();
        assert!(format!("{error:#}").contains("not a signature of the digest"), "{error:#}");
    }

    #[test]
    fn p256_keys_sign_and_small_rsa_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = identity(dir.path(), "ec", &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
        let signer = Signer::new(&cert, KeySource::Pem(&key)).unwrap();
        assert_eq!(signer.algorithm(), Algorithm::EcdsaP256);
        let digest = [9u8; 32];
        assert_eq!(signer.sign(&digest).unwrap(), signer.sign(&digest).unwrap(), "RFC 6979 nonces");
        let (small, small_key) = identity(dir.path(), "small", &["-newkey", "rsa:1024"]);
        let error = Signer::new(&small, KeySource::Pem(&small_key)).err().unwrap();
        assert!(error.to_string().contains("1024 bits"), "{error}");
        assert!(signer.warnings(SystemTime::now()).is_empty());
        let later = SystemTime::now() + std::time::Duration::from_secs(20 * 365 * 86400);
        assert!(signer.warnings(later)[0].contains("expired"), "{:?}", signer.warnings(later));
        // A certificate for TLS servers only: usable, with a warning.
        let (server, server_key) =
            identity(dir.path(), "server", &["-newkey", "rsa:2048", "-addext", "extendedKeyUsage=serverAuth"]);
        let signer = Signer::new(&server, KeySource::Pem(&server_key)).unwrap();
        let warnings = signer.warnings(SystemTime::now());
        assert!(warnings.len() == 1 && warnings[0].contains("leaves out code signing"), "{warnings:?}");
    }
}
