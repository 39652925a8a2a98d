//! Reading manifests and blobs from a registry over the distribution API, and pushing
//! them ([`push`]: blobs it lacks, then manifests, with a push authorisation).
//!
//! `oci-client` performs the authentication handshake (the `/v2/` challenge and the bearer
//! token exchange, or basic auth); the manifest and blob requests themselves are made here
//! with reqwest, so that their status codes and headers are ours to act on. Every request
//! (the handshake included) goes through [`super::retry`]: 5xx, 429 (after its
//! `Retry-After`), connection failures, timeouts and answers cut off part way are retried
//! a bounded number of times; anything else fails at once. Failures end up as the three
//! [`FetchError`] kinds callers act on (not found, unauthorised, unreachable).
//!
//! A request answered 401 authenticates again once and is repeated: bearer tokens expire
//! during long pulls, and a handshake may have missed the registry's challenge.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use futures_util::TryStreamExt as _;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use thiserror::Error;

use super::auth::{credentials_for, Credentials, DockerConfig, RegistrySettings};
use super::cache::{BlobCache, VerifyError};
use super::manifest::ACCEPTED_MANIFEST_TYPES;
use super::reference::{Digest, RegistryReference};
use super::retry::{parse_retry_after, with_retries, Attempt, RetryError};
use super::FetchError;

mod push;
pub use push::{BlobSource, ManifestPushed, Pushed};

/// How long a registry request may wait for a connection, or between two reads of its
/// answer, before it is abandoned and retried, unless the provider says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest manifest read (distribution itself refuses manifests over 4 MiB).
const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// A registry client shared by every resource of one provider instance. Credentials are
/// looked up once per registry host, authorisation once per repository.
pub struct RegistryClient {
    /// The authentication handshake only.
    auth_client: Client,
    http: reqwest::Client,
    plain_http: Vec<String>,
    registries: Arc<Vec<RegistrySettings>>,
    docker_config: Arc<DockerConfig>,
    credentials: Mutex<BTreeMap<String, RegistryAuth>>,
    /// `Authorization` header value (or none) per `registry/repository`.
    authorizations: Mutex<BTreeMap<String, Option<String>>>,
}

/// A failure of the connection or of reading an answer's body.
#[derive(Debug, Error)]
#[error("{detail}")]
struct TransportError {
    transient: bool,
    detail: String,
}

/// The first bytes of an error answer that are read (they are summarised on one line).
const MAX_ERROR_BODY_BYTES: u64 = 64 << 10;

/// A request that got no (whole) answer: retried when that may pass.
fn transport_failure<T>(error: reqwest::Error) -> Attempt<T> {
    if let Some(unresolved) = unresolved_host(&error) {
        return Attempt::Failed(unresolved.into());
    }
    if transport_is_transient(&error) {
        Attempt::Retry { reason: error_chain(&error), after: None }
    } else {
        let registry = error.url().map(|url| {
            let host = url.host_str().unwrap_or_default();
            url.port().map_or_else(|| host.to_string(), |port| format!("{host}:{port}"))
        });
        let hint = registry.as_deref().and_then(|registry| plain_http_hint(&error, registry));
        let error = anyhow::Error::new(error);
        Attempt::Failed(match hint {
            Some(hint) => error.context(hint),
            None => error,
        })
    }
}

/// What to do when TLS failed because the registry answered in plain HTTP (rustls read a
/// record that is not TLS), if that is why.
fn plain_http_hint(error: &(dyn std::error::Error + 'static), registry: &str) -> Option<String> {
    fn answered_in_plain_text(cause: &(dyn std::error::Error + 'static)) -> bool {
        if let Some(rustls::Error::InvalidMessage(_)) = cause.downcast_ref::<rustls::Error>() {
            return true;
        }
        let inner = cause.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
        inner.is_some_and(|inner| answered_in_plain_text(inner)) || cause.source().is_some_and(answered_in_plain_text)
    }
    answered_in_plain_text(error).then(|| {
        format!(
            "registry {registry} does not speak TLS (it answered in plain text): if it serves plain HTTP, say so in the provider block: registry {{ address = \"{registry}\" plain_http = true }}"
        )
    })
}

/// Reads an answer's body, at most `limit` bytes; `true` when there was more.
async fn read_capped(mut response: reqwest::Response, limit: u64) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if bytes.len() as u64 + chunk.len() as u64 > limit {
            let room = usize::try_from(limit).unwrap_or(usize::MAX).saturating_sub(bytes.len());
            bytes.extend_from_slice(&chunk[..room]);
            return Ok((bytes, true));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok((bytes, false))
}

/// What a request is authorised for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    Pull,
    /// Push (and pull: uploads check what is there first).
    Push,
    /// Delete a manifest, with a push authorisation.
    Delete,
}

impl Operation {
    fn registry_operation(self) -> RegistryOperation {
        match self {
            Operation::Pull => RegistryOperation::Pull,
            Operation::Push | Operation::Delete => RegistryOperation::Push,
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Operation::Pull => "fetching",
            Operation::Push => "pushing",
            Operation::Delete => "deleting",
        }
    }
}

/// The key an authorisation is kept under: `registry/repository`, and `push` for pushes.
fn authorization_key(reference: &RegistryReference, operation: Operation) -> String {
    let key = format!("{}/{}", reference.registry(), reference.repository());
    match operation {
        Operation::Pull => key,
        Operation::Push | Operation::Delete => format!("{key} push"),
    }
}

/// What a finished request said, when it was not a success.
enum Refusal {
    NotFound,
    Unauthorized(String),
    /// 401: the authorisation may have expired, or the handshake missed a challenge.
    Reauthenticate(String),
    Other(String),
}

impl RegistryClient {
    pub fn new(registries: Vec<RegistrySettings>, docker_config: DockerConfig, timeout: Duration) -> RegistryClient {
        install_crypto_provider();
        let plain_http: Vec<String> = registries.iter().filter(|r| r.plain_http).map(|r| r.address.clone()).collect();
        let user_agent = concat!("terraform-provider-resin/", env!("CARGO_PKG_VERSION"));
        let connect_timeout = timeout;
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(plain_http.clone()),
            connect_timeout: Some(connect_timeout),
            read_timeout: Some(timeout),
            user_agent,
            ..Default::default()
        };
        let http = reqwest::Client::builder()
            .user_agent(user_agent)
            .connect_timeout(connect_timeout)
            .read_timeout(timeout)
            .build()
            .expect("a reqwest client with rustls and the installed crypto provider");
        RegistryClient {
            auth_client: Client::new(config),
            http,
            plain_http,
            registries: Arc::new(registries),
            docker_config: Arc::new(docker_config),
            credentials: Mutex::new(BTreeMap::new()),
            authorizations: Mutex::new(BTreeMap::new()),
        }
    }

    async fn auth_for(&self, host: &str) -> Result<RegistryAuth> {
        if let Some(auth) = self.credentials.lock().expect("credentials lock").get(host) {
            return Ok(auth.clone());
        }
        // A credential helper is a program that may take its time (a keychain): off the
        // async runtime.
        let (registries, docker_config, owned_host) =
            (self.registries.clone(), self.docker_config.clone(), host.to_string());
        let credentials =
            tokio::task::spawn_blocking(move || credentials_for(&owned_host, &registries, &docker_config)).await??;
        let auth = match credentials {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic { username, password } => RegistryAuth::Basic(username, password),
            // The registry's token server trades an identity token like a password.
            Credentials::IdentityToken(token) => RegistryAuth::Basic("<token>".into(), token),
        };
        crate::log::debug(
            "registry credentials",
            &[
                ("registry", host.to_string()),
                (
                    "kind",
                    match &auth {
                        RegistryAuth::Anonymous => "anonymous",
                        RegistryAuth::Basic(..) => "basic",
                        RegistryAuth::Bearer(_) => "bearer",
                    }
                    .to_string(),
                ),
            ],
        );
        self.credentials.lock().expect("credentials lock").insert(host.to_string(), auth.clone());
        Ok(auth)
    }

    /// `scheme://host/v2/<repository>/`.
    fn base_url(&self, reference: &RegistryReference) -> String {
        let host = reference.resolve_registry();
        let scheme = if self.plain_http.iter().any(|h| h == host) { "http" } else { "https" };
        format!("{scheme}://{host}/v2/{}/", reference.repository())
    }

    /// The `Authorization` header for `operation` on the reference's repository: a bearer
    /// token from the registry's token server, basic credentials, or none.
    async fn authorization(&self, reference: &RegistryReference, operation: Operation) -> Result<Option<String>> {
        let key = authorization_key(reference, operation);
        if let Some(header) = self.authorizations.lock().expect("authorizations lock").get(&key) {
            return Ok(header.clone());
        }
        let auth = self.auth_for(reference.registry()).await?;
        let what = format!("authentication with {}", reference.registry());
        let token = with_retries(&what, || async {
            match self.auth_client.auth(reference, &auth, operation.registry_operation()).await {
                Ok(token) => Attempt::Done(token),
                Err(e) => match transient(&e) {
                    Some(reason) => Attempt::Retry { reason, after: None },
                    None => Attempt::Failed(classify_auth(e, reference.registry())),
                },
            }
        })
        .await
        .map_err(|e| self.retry_error(e, reference.registry()))?;
        let header = match (token, &auth) {
            (Some(token), _) => Some(format!("Bearer {token}")),
            (None, RegistryAuth::Basic(user, password)) => {
                use base64::Engine as _;
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
                ))
            }
            (None, _) => None,
        };
        self.authorizations.lock().expect("authorizations lock").insert(key, header.clone());
        Ok(header)
    }

    fn forget_authorization(&self, reference: &RegistryReference, operation: Operation) {
        self.authorizations.lock().expect("authorizations lock").remove(&authorization_key(reference, operation));
    }

    fn retry_error(&self, error: RetryError, registry: &str) -> anyhow::Error {
        match error {
            RetryError::Failed(e) => e,
            RetryError::GaveUp(gave_up) => {
                FetchError::Unreachable { registry: registry.to_string(), detail: gave_up.to_string() }.into()
            }
        }
    }

    /// Sends a GET: the response when it succeeded, else the attempt's outcome (a retry
    /// when the failure is transient, or what the registry refused), which the caller
    /// returns as it is.
    async fn get<T>(
        &self,
        url: &str,
        accept: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<reqwest::Response, Attempt<Result<T, Refusal>>> {
        let mut request = self.http.get(url);
        if let Some(accept) = accept {
            request = request.header(reqwest::header::ACCEPT, accept);
        }
        self.send(request, authorization).await
    }

    /// Sends a request (with `authorization`), as [`Self::get`] does.
    async fn send<T>(
        &self,
        mut request: reqwest::RequestBuilder,
        authorization: Option<&str>,
    ) -> Result<reqwest::Response, Attempt<Result<T, Refusal>>> {
        if let Some(authorization) = authorization {
            request = request.header(reqwest::header::AUTHORIZATION, authorization);
        }
        let response = request.send().await.map_err(transport_failure)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        // Only the start of an error body is shown, so only that much is read.
        let body = read_capped(response, MAX_ERROR_BODY_BYTES).await.map(|(bytes, _)| bytes).unwrap_or_default();
        let detail = format!("HTTP {}{}", status.as_u16(), summary(&String::from_utf8_lossy(&body)));
        Err(match status.as_u16() {
            429 | 500..=599 => Attempt::Retry { reason: detail, after: retry_after },
            404 => Attempt::Done(Err(Refusal::NotFound)),
            // Maybe an expired token, or a handshake that missed the registry's challenge.
            401 => Attempt::Done(Err(Refusal::Reauthenticate(detail))),
            403 => Attempt::Done(Err(Refusal::Unauthorized(detail))),
            _ => Attempt::Done(Err(Refusal::Other(detail))),
        })
    }

    /// Runs one pull request (`attempt` gets the authorisation header) with retries, and
    /// turns what the registry refused into a [`FetchError`] for `what`.
    async fn request<T, F, Fut>(&self, reference: &RegistryReference, what: &str, attempt: F) -> Result<T>
    where
        F: Fn(Option<String>) -> Fut,
        Fut: std::future::Future<Output = Attempt<Result<T, Refusal>>>,
    {
        self.request_as(reference, Operation::Pull, what, attempt).await
    }

    /// [`Self::request`] for `operation`.
    async fn request_as<T, F, Fut>(
        &self,
        reference: &RegistryReference,
        operation: Operation,
        what: &str,
        attempt: F,
    ) -> Result<T>
    where
        F: Fn(Option<String>) -> Fut,
        Fut: std::future::Future<Output = Attempt<Result<T, Refusal>>>,
    {
        let mut reauthenticated = false;
        loop {
            let authorization = self.authorization(reference, operation).await?;
            let outcome = with_retries(what, || attempt(authorization.clone()))
                .await
                .map_err(|e| self.retry_error(e, reference.registry()))?;
            let refusal = match outcome {
                Ok(value) => return Ok(value),
                Err(refusal) => refusal,
            };
            let registry = reference.registry().to_string();
            return Err(match refusal {
                Refusal::Reauthenticate(_) if !reauthenticated => {
                    // The token may have expired: one new handshake, then the request again.
                    self.forget_authorization(reference, operation);
                    reauthenticated = true;
                    continue;
                }
                Refusal::Reauthenticate(detail) | Refusal::Unauthorized(detail) => {
                    FetchError::Unauthorized { registry, detail }.into()
                }
                Refusal::NotFound => FetchError::NotFound { what: what.to_string() }.into(),
                Refusal::Other(detail) => anyhow::anyhow!("{} {what}: {detail}", operation.verb()),
            });
        }
    }

    /// Fetches the manifest named by `reference` (by `digest` when given, else by its own
    /// digest or tag). Returns the bytes and their digest; a pinned digest is verified.
    pub async fn fetch_manifest(
        &self,
        reference: &RegistryReference,
        digest: Option<&Digest>,
    ) -> Result<(Vec<u8>, Digest)> {
        let pinned = match digest {
            Some(digest) => Some(digest.clone()),
            None => reference.digest().map(super::digest::parse).transpose()?,
        };
        let (name, what) = match (&pinned, reference.tag()) {
            (Some(digest), _) => {
                (digest.to_string(), format!("{}/{}@{digest}", reference.registry(), reference.repository()))
            }
            (None, tag) => {
                let tag = tag.unwrap_or("latest");
                (tag.to_string(), format!("{}/{}:{tag}", reference.registry(), reference.repository()))
            }
        };
        let url = format!("{}manifests/{name}", self.base_url(reference));
        let accept = ACCEPTED_MANIFEST_TYPES.join(", ");
        let bytes = self
            .request(reference, &what, |authorization| {
                let (url, accept) = (url.clone(), accept.clone());
                async move {
                    let response = match self.get(&url, Some(&accept), authorization.as_deref()).await {
                        Ok(response) => response,
                        Err(outcome) => return outcome,
                    };
                    if response.content_length().is_some_and(|n| n > MAX_MANIFEST_BYTES) {
                        return Attempt::Failed(anyhow::anyhow!(
                            "the manifest is larger than {MAX_MANIFEST_BYTES} bytes"
                        ));
                    }
                    match read_capped(response, MAX_MANIFEST_BYTES).await {
                        Ok((_, true)) => {
                            Attempt::Failed(anyhow::anyhow!("the manifest is larger than {MAX_MANIFEST_BYTES} bytes"))
                        }
                        Ok((bytes, false)) => Attempt::Done(Ok(bytes)),
                        Err(e) => transport_failure(e),
                    }
                }
            })
            .await?;
        // The digest is computed here, not taken from a header: it is what gets pinned.
        let actual = super::digest::sha256(&bytes);
        if let Some(expected) = pinned {
            if actual != expected {
                return Err(super::cache::VerifyError::Digest { expected, actual }.into());
            }
        }
        Ok((bytes, actual))
    }

    /// Streams one blob into the cache, verified against `digest` and `size`. An answer cut
    /// off part way is fetched again from the start.
    pub async fn fetch_blob(
        &self,
        reference: &RegistryReference,
        digest: &Digest,
        size: u64,
        cache: &BlobCache,
    ) -> Result<()> {
        let url = format!("{}blobs/{digest}", self.base_url(reference));
        let what = format!("{}/{}@{digest}", reference.registry(), reference.repository());
        self.request(reference, &what, |authorization| {
            let url = url.clone();
            async move {
                let response = match self.get(&url, None, authorization.as_deref()).await {
                    Ok(response) => response,
                    Err(outcome) => return outcome,
                };
                let stream = response
                    .bytes_stream()
                    .map_err(|e| TransportError { transient: transport_is_transient(&e), detail: error_chain(&e) });
                match cache.insert_stream(digest, Some(size), stream).await {
                    Ok(_) => Attempt::Done(Ok(())),
                    Err(e) => {
                        let transport = e.chain().find_map(|c| c.downcast_ref::<TransportError>());
                        let short = e.chain().find_map(|c| match c.downcast_ref::<VerifyError>() {
                            Some(VerifyError::Size { expected, actual, .. }) if actual < expected => {
                                Some((*actual, *expected))
                            }
                            _ => None,
                        });
                        match (transport, short) {
                            (Some(transport), _) if transport.transient => Attempt::Retry {
                                reason: format!("the answer was cut off: {}", transport.detail),
                                after: None,
                            },
                            // The connection ended cleanly, but early.
                            (None, Some((actual, expected))) => Attempt::Retry {
                                reason: format!("the answer was cut off after {actual} of {expected} bytes"),
                                after: None,
                            },
                            _ => Attempt::Failed(e),
                        }
                    }
                }
            }
        })
        .await
    }
}

/// Installs ring as the process's TLS crypto provider (shared by the registry client and
/// the plugin server) unless one is installed already.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Whether a failed request (no answer, or an answer that broke off) is worth another
/// try: timeouts, refused or reset connections, bodies cut off. Not a malformed request,
/// a redirect loop, or TLS refusing the registry's certificate (or TLS spoken to a plain
/// HTTP registry): asking again gives the same answer.
fn transport_is_transient(error: &reqwest::Error) -> bool {
    if error.is_builder() || error.is_redirect() || is_name_resolution(error) {
        return false;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if is_tls(cause) {
            return false;
        }
        source = cause.source();
    }
    error.is_timeout() || error.is_connect() || error.is_request() || error.is_body() || error.is_decode()
}

/// Whether `error` is a host name that did not resolve (the system resolver's
/// "failed to lookup address information", which hyper reports as a "dns error"). Not
/// retried: a misspelt host or a machine without DNS is not mended in the 9 s the retries
/// take, and a registry that is only briefly down fails to connect instead.
fn is_name_resolution(error: &(dyn std::error::Error + 'static)) -> bool {
    let text = error.to_string();
    if text == "dns error" || text.starts_with("failed to lookup address information") {
        return true;
    }
    // io::Errors that wrap another error do not return it as their source.
    let inner = error.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
    inner.is_some_and(|inner| is_name_resolution(inner)) || error.source().is_some_and(is_name_resolution)
}

/// A registry whose host name did not resolve, as the unreachable registry it is (refresh
/// keeps the state with a warning), said at once.
fn unresolved_host(error: &reqwest::Error) -> Option<FetchError> {
    if !is_name_resolution(error) {
        return None;
    }
    let host = error.url().and_then(|url| url.host_str()).unwrap_or("the registry").to_string();
    let detail = format!(
        "its host name {host} does not resolve ({}): check the name, and the DNS of the machine running Terraform (not retried)",
        error_chain(error)
    );
    Some(FetchError::Unreachable { registry: host, detail })
}

/// Whether `cause` is TLS failing: a rustls error, which tokio-rustls wraps in an io::Error
/// of kind InvalidData, itself wrapped in further io::Errors (whose `source` skips what
/// they wrap, so they are opened here). Refused, reset or cut-off connections and
/// timeouts have kinds of their own.
fn is_tls(cause: &(dyn std::error::Error + 'static)) -> bool {
    if cause.downcast_ref::<rustls::Error>().is_some() {
        return true;
    }
    match cause.downcast_ref::<std::io::Error>() {
        Some(io) if io.kind() == std::io::ErrorKind::InvalidData => true,
        Some(io) => io.get_ref().is_some_and(|inner| is_tls(inner)),
        None => false,
    }
}

/// Why a handshake failure is worth retrying, if it is.
fn transient(error: &OciDistributionError) -> Option<String> {
    match error {
        OciDistributionError::RequestError(e) => transport_is_transient(e).then(|| error_chain(e)),
        OciDistributionError::IoError(e) => Some(e.to_string()),
        OciDistributionError::ServerError { code, message, .. } if *code == 429 || *code >= 500 => {
            Some(format!("HTTP {code}{}", summary(message)))
        }
        _ => None,
    }
}

/// Sorts a handshake failure into the kinds callers act on.
fn classify_auth(error: OciDistributionError, registry: &str) -> anyhow::Error {
    let unauthorized = |detail: String| FetchError::Unauthorized { registry: registry.to_string(), detail };
    match &error {
        OciDistributionError::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied)) =>
        {
            unauthorized(envelope.to_string()).into()
        }
        OciDistributionError::ServerError { code: 401 | 403, message, .. } => unauthorized(message.clone()).into(),
        OciDistributionError::UnauthorizedError { url } => unauthorized(format!("{url} answered 401")).into(),
        OciDistributionError::AuthenticationFailure(detail) => unauthorized(detail.clone()).into(),
        OciDistributionError::RequestError(e) if unresolved_host(e).is_some() => {
            unresolved_host(e).expect("checked").into()
        }
        OciDistributionError::RequestError(e) if plain_http_hint(e, registry).is_some() => {
            let hint = plain_http_hint(e, registry).expect("checked");
            anyhow::Error::new(error).context(hint)
        }
        _ => anyhow::Error::new(error).context(format!("authenticating with registry {registry}")),
    }
}

/// `: <first line of the body>`, when there is one worth showing.
fn summary(body: &str) -> String {
    let line = body.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    if line.is_empty() {
        String::new()
    } else {
        format!(": {}", line.chars().take(200).collect::<String>())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_summarised_on_one_line() {
        assert_eq!(summary(""), "");
        assert_eq!(summary("\n  upstream timed out\nmore"), ": upstream timed out");
        assert_eq!(summary(&"x".repeat(500)).len(), 202);
    }

    #[tokio::test]
    async fn a_registry_host_that_does_not_resolve_fails_at_once_as_unreachable() {
        // `.invalid` never resolves (RFC 2606); a machine without DNS fails the same way.
        let client = RegistryClient::new(
            vec![RegistrySettings {
                address: "registry.resin-test.invalid".into(),
                username: None,
                password: None,
                plain_http: true,
            }],
            DockerConfig::default(),
            DEFAULT_TIMEOUT,
        );
        let reference = match "registry.resin-test.invalid/a/b:t".parse::<super::super::reference::ImageReference>() {
            Ok(super::super::reference::ImageReference::Registry(r)) => r,
            other => panic!("{other:?}"),
        };
        let error = client.fetch_manifest(&reference, None).await.unwrap_err();
        let message = format!("{error:#}");
        assert!(super::super::is_unreachable(&error), "{message}");
        assert!(message.contains("its host name registry.resin-test.invalid does not resolve"), "{message}");
        assert!(!message.contains("gave up after"), "not retried: {message}");
    }

    #[test]
    fn urls_use_docker_hubs_registry_host_and_plain_http_only_when_listed() {
        let client = RegistryClient::new(
            vec![RegistrySettings {
                address: "127.0.0.1:5000".into(),
                username: None,
                password: None,
                plain_http: true,
            }],
            DockerConfig::default(),
            DEFAULT_TIMEOUT,
        );
        let reference = |text: &str| match text.parse::<super::super::reference::ImageReference>().unwrap() {
            super::super::reference::ImageReference::Registry(r) => r,
            _ => unreachable!(),
        };
        assert_eq!(client.base_url(&reference("alpine")), "https://index.docker.io/v2/library/alpine/");
        assert_eq!(client.base_url(&reference("127.0.0.1:5000/a/b:t")), "http://127.0.0.1:5000/v2/a/b/");
        assert_eq!(client.base_url(&reference("127.0.0.1:5001/a/b:t")), "https://127.0.0.1:5001/v2/a/b/");
    }
}
