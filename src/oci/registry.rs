//! Reading manifests and blobs from a registry over the distribution API, through
//! `oci-client`. This module owns the mapping from client errors to [`FetchError`], the
//! three kinds callers act on (not found, unauthorised, unreachable).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::auth::{credentials_for, Credentials, DockerConfig, RegistrySettings};
use super::cache::BlobCache;
use super::manifest::ACCEPTED_MANIFEST_TYPES;
use super::reference::{Digest, RegistryReference};
use super::FetchError;

/// A registry client shared by every resource of one provider instance. Credentials are
/// looked up once per registry host.
pub struct RegistryClient {
    client: Client,
    registries: Arc<Vec<RegistrySettings>>,
    docker_config: Arc<DockerConfig>,
    credentials: Mutex<BTreeMap<String, RegistryAuth>>,
}

impl RegistryClient {
    pub fn new(registries: Vec<RegistrySettings>, docker_config: DockerConfig) -> RegistryClient {
        install_crypto_provider();
        let plain_http: Vec<String> = registries
            .iter()
            .filter(|r| r.plain_http)
            .map(|r| r.address.clone())
            .collect();
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(plain_http),
            connect_timeout: Some(std::time::Duration::from_secs(15)),
            read_timeout: Some(std::time::Duration::from_secs(60)),
            user_agent: concat!("terraform-provider-resin/", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        };
        RegistryClient {
            client: Client::new(config),
            registries: Arc::new(registries),
            docker_config: Arc::new(docker_config),
            credentials: Mutex::new(BTreeMap::new()),
        }
    }

    async fn auth_for(&self, host: &str) -> Result<RegistryAuth> {
        if let Some(auth) = self.credentials.lock().expect("credentials lock").get(host) {
            return Ok(auth.clone());
        }
        // A credential helper is a program that may take its time (a keychain): off the
        // async runtime.
        let (registries, docker_config, owned_host) = (self.registries.clone(), self.docker_config.clone(), host.to_string());
        let credentials = tokio::task::spawn_blocking(move || credentials_for(&owned_host, &registries, &docker_config)).await??;
        let auth = match credentials {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic { username, password } => RegistryAuth::Basic(username, password),
            // The registry's token server trades an identity token like a password.
            Credentials::IdentityToken(token) => RegistryAuth::Basic("<token>".into(), token),
        };
        crate::log::debug(
            "registry credentials",
            &[("registry", host.to_string()), ("kind", match &auth {
                RegistryAuth::Anonymous => "anonymous",
                RegistryAuth::Basic(..) => "basic",
                RegistryAuth::Bearer(_) => "bearer",
            }.to_string())],
        );
        self.credentials
            .lock()
            .expect("credentials lock")
            .insert(host.to_string(), auth.clone());
        Ok(auth)
    }

    fn client_reference(reference: &RegistryReference, digest: Option<&Digest>) -> Reference {
        let registry = reference.registry.clone();
        let repository = reference.repository.clone();
        match (digest.or(reference.digest.as_ref()), &reference.tag) {
            (Some(digest), _) => Reference::with_digest(registry, repository, digest.to_string()),
            (None, Some(tag)) => Reference::with_tag(registry, repository, tag.clone()),
            (None, None) => Reference::with_tag(registry, repository, "latest".into()),
        }
    }

    /// Fetches the manifest named by `reference` (by `digest` when given, else by its own
    /// digest or tag). Returns the bytes and their digest; a pinned digest is verified.
    pub async fn fetch_manifest(
        &self,
        reference: &RegistryReference,
        digest: Option<&Digest>,
    ) -> Result<(Vec<u8>, Digest)> {
        let auth = self.auth_for(&reference.registry).await?;
        let client_ref = Self::client_reference(reference, digest);
        let (bytes, _) = self
            .client
            .pull_manifest_raw(&client_ref, &auth, &ACCEPTED_MANIFEST_TYPES)
            .await
            .map_err(|e| classify(e, &reference.registry, &client_ref.whole()))?;
        // The digest is computed here, not taken from a header: it is what gets pinned.
        let actual = Digest::of(&bytes);
        if let Some(expected) = digest.or(reference.digest.as_ref()) {
            if &actual != expected {
                return Err(super::cache::VerifyError::Digest {
                    expected: expected.clone(),
                    actual,
                }
                .into());
            }
        }
        Ok((bytes.to_vec(), actual))
    }

    /// Streams one blob into the cache, verified against `digest` and `size`.
    pub async fn fetch_blob(
        &self,
        reference: &RegistryReference,
        digest: &Digest,
        size: u64,
        cache: &BlobCache,
    ) -> Result<()> {
        let auth = self.auth_for(&reference.registry).await?;
        let client_ref = Self::client_reference(reference, None);
        // Makes sure the token for this repository is stored before the blob request.
        self.client
            .store_auth_if_needed(client_ref.resolve_registry(), &auth)
            .await;
        let descriptor = OciDescriptor {
            digest: digest.to_string(),
            size: size as i64,
            ..Default::default()
        };
        let what = format!("{}/{}@{}", reference.registry, reference.repository, digest);
        let stream = self
            .client
            .pull_blob_stream(&client_ref, &descriptor)
            .await
            .map_err(|e| classify(e, &reference.registry, &what))?;
        cache.insert_stream(digest, Some(size), stream.stream).await?;
        Ok(())
    }
}

/// Installs ring as the process's TLS crypto provider (shared by the registry client and
/// the plugin server) unless one is installed already.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Sorts a client error into the kinds callers act on.
fn classify(error: OciDistributionError, registry: &str, what: &str) -> anyhow::Error {
    let not_found = || FetchError::NotFound {
        what: what.to_string(),
    };
    let unauthorized = |detail: String| FetchError::Unauthorized {
        registry: registry.to_string(),
        detail,
    };
    let unreachable = |detail: String| FetchError::Unreachable {
        registry: registry.to_string(),
        detail,
    };
    let kind = match &error {
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NotFound
                )
            }) {
                not_found()
            } else if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                unauthorized(envelope.to_string())
            } else {
                return anyhow::Error::new(error).context(format!("fetching {what}"));
            }
        }
        OciDistributionError::ServerError { code: 404, .. }
        | OciDistributionError::ImageManifestNotFoundError(_) => not_found(),
        OciDistributionError::ServerError { code: 401 | 403, message, .. } => {
            unauthorized(message.clone())
        }
        OciDistributionError::UnauthorizedError { url } => unauthorized(format!("{url} answered 401")),
        OciDistributionError::AuthenticationFailure(detail) => unauthorized(detail.clone()),
        OciDistributionError::ServerError { code, message, .. } if *code >= 500 => {
            unreachable(format!("HTTP {code}: {message}"))
        }
        OciDistributionError::RequestError(e) => unreachable(error_chain(e)),
        OciDistributionError::IoError(e) => unreachable(e.to_string()),
        _ => return anyhow::Error::new(error).context(format!("fetching {what}")),
    };
    kind.into()
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
