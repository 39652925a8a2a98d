//! Registry credentials: explicit `registry` blocks first, then Docker's `config.json` as
//! `docker login` writes it.
//!
//! For a registry host, the first of these that has an entry wins:
//! 1. a provider `registry` block with that address and a username;
//! 2. `credHelpers[<host>]` in config.json: `docker-credential-<helper> get`;
//! 3. `auths[<host>]` in config.json (`auth` is base64 `user:password`, or
//!    `username`/`password` fields); Docker Hub is also found under
//!    `https://index.docker.io/v1/`;
//! 4. `credsStore`: the default helper for every host;
//! 5. anonymous.
//!
//! config.json is `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. A missing
//! file means no credentials; an unreadable or malformed one is an error, because silently
//! pulling anonymously would hide the mistake behind an "unauthorized" later.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use serde::Deserialize;

use super::reference::DOCKER_HUB;

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth2 identity token, traded for a bearer token by the registry's auth server.
    IdentityToken(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => write!(f, "Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credentials::IdentityToken(_) => write!(f, "IdentityToken(***)"),
        }
    }
}

/// A `registry` block of the provider configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrySettings {
    pub address: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Talk plain HTTP to this registry (loopback test registries).
    pub plain_http: bool,
}

/// Docker's `config.json`, the parts that matter here.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    /// Where `docker-credential-*` programs are looked up instead of `PATH` (tests).
    #[serde(skip)]
    helper_search_path: Option<std::ffi::OsString>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

impl DockerConfig {
    /// The default location: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
            return Some(PathBuf::from(dir).join("config.json"));
        }
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json"))
    }

    /// Loads `path`; a missing file is an empty configuration.
    pub fn load(path: &Path) -> Result<DockerConfig> {
        match std::fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).with_context(|| format!("parsing Docker config {}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DockerConfig::default()),
            Err(e) => Err(e).with_context(|| format!("reading Docker config {}", path.display())),
        }
    }

    fn auth_entry(&self, host: &str) -> Option<&DockerAuth> {
        let mut keys = vec![host.to_string(), format!("https://{host}"), format!("http://{host}")];
        if host == DOCKER_HUB {
            keys.extend(["https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io"].map(String::from));
        }
        keys.iter().find_map(|k| self.auths.get(k).or_else(|| self.auths.get(&format!("{k}/"))))
    }

    fn helper_for(&self, host: &str) -> Option<&str> {
        self.cred_helpers
            .get(host)
            .or_else(|| (host == DOCKER_HUB).then(|| self.cred_helpers.get("index.docker.io")).flatten())
            .map(String::as_str)
    }
}

/// Finds the credentials for `host`.
pub fn credentials_for(host: &str, registries: &[RegistrySettings], docker: &DockerConfig) -> Result<Credentials> {
    if let Some(block) = registries.iter().find(|r| r.address == host) {
        if let Some(username) = &block.username {
            return Ok(Credentials::Basic {
                username: username.clone(),
                password: block.password.clone().unwrap_or_default(),
            });
        }
    }
    if let Some(helper) = docker.helper_for(host) {
        return run_credential_helper(helper, host, docker.helper_search_path.as_deref());
    }
    if let Some(entry) = docker.auth_entry(host) {
        if let Some(token) = entry.identitytoken.as_ref().filter(|t| !t.is_empty()) {
            return Ok(Credentials::IdentityToken(token.clone()));
        }
        if let Some(encoded) = entry.auth.as_ref().filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .with_context(|| format!("decoding the auth of {host} in Docker config"))?;
            let decoded = String::from_utf8(decoded)
                .with_context(|| format!("the auth of {host} in Docker config is not UTF-8"))?;
            let Some((username, password)) = decoded.split_once(':') else {
                bail!("the auth of {host} in Docker config is not user:password");
            };
            return Ok(Credentials::Basic { username: username.to_string(), password: password.to_string() });
        }
        if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
            return Ok(Credentials::Basic { username: username.clone(), password: password.clone() });
        }
    }
    if let Some(store) = &docker.creds_store {
        return run_credential_helper(store, host, docker.helper_search_path.as_deref());
    }
    Ok(Credentials::Anonymous)
}

/// Runs `docker-credential-<helper> get` with the server URL on stdin, per the
/// docker-credential-helpers protocol. "credentials not found" means anonymous.
fn run_credential_helper(helper: &str, host: &str, search_path: Option<&std::ffi::OsStr>) -> Result<Credentials> {
    #[derive(Deserialize)]
    struct HelperAnswer {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let program = format!("docker-credential-{helper}");
    let server = if host == DOCKER_HUB { "https://index.docker.io/v1/".to_string() } else { host.to_string() };
    let mut command = Command::new(&program);
    if let Some(search_path) = search_path {
        // A PATH set for the child is also where the program is looked up.
        command.env("PATH", search_path);
    }
    let mut child = command
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running credential helper {program} for {host}"))?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(server.as_bytes())
        .with_context(|| format!("writing to credential helper {program}"))?;
    let output = child.wait_with_output().with_context(|| format!("waiting for credential helper {program}"))?;
    if !output.status.success() {
        let message =
            String::from_utf8_lossy(&output.stdout).trim().to_string() + String::from_utf8_lossy(&output.stderr).trim();
        if message.contains("credentials not found") {
            return Ok(Credentials::Anonymous);
        }
        bail!("credential helper {program} failed for {host}: {message}");
    }
    let answer: HelperAnswer = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("parsing the answer of credential helper {program}"))?;
    if answer.username == "<token>" {
        return Ok(Credentials::IdentityToken(answer.secret));
    }
    Ok(Credentials::Basic { username: answer.username, password: answer.secret })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> DockerConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn reads_auths_as_docker_login_writes_them() {
        let docker = config(
            r#"{"auths": {
                "https://index.docker.io/v1/": {"auth": "aHViOnNlY3JldA=="},
                "ghcr.io": {"username": "u", "password": "p"},
                "quay.io": {"identitytoken": "tok"}
            }}"#,
        );
        let basic = |u: &str, p: &str| Credentials::Basic { username: u.into(), password: p.into() };
        assert_eq!(credentials_for("docker.io", &[], &docker).unwrap(), basic("hub", "secret"));
        assert_eq!(credentials_for("ghcr.io", &[], &docker).unwrap(), basic("u", "p"));
        assert_eq!(credentials_for("quay.io", &[], &docker).unwrap(), Credentials::IdentityToken("tok".into()));
        assert_eq!(credentials_for("example.com", &[], &docker).unwrap(), Credentials::Anonymous);
    }

    #[test]
    fn registry_blocks_win() {
        let docker = config(r#"{"auths": {"ghcr.io": {"auth": "YTpi"}}}"#);
        let blocks = [RegistrySettings {
            address: "ghcr.io".into(),
            username: Some("block".into()),
            password: Some("pw".into()),
            plain_http: false,
        }];
        assert_eq!(
            credentials_for("ghcr.io", &blocks, &docker).unwrap(),
            Credentials::Basic { username: "block".into(), password: "pw".into() }
        );
    }

    #[test]
    fn credential_helpers_follow_the_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-resintest");
        // A real executable speaking the helper protocol: reads the server on stdin.
        std::fs::write(
            &helper,
            "#!/bin/sh\nread server\nif [ \"$server\" = reg.example ]; then\n  printf '{\"ServerURL\":\"%s\",\"Username\":\"hu\",\"Secret\":\"hs\"}' \"$server\"\nelse\n  echo 'credentials not found in native keychain'; exit 1\nfi\n",
        )
        .unwrap();
        std::process::Command::new("chmod").arg("+x").arg(&helper).status().unwrap();
        // The helper's directory first, then the usual PATH (the helper is a shell script);
        // the process's own PATH is left alone, other tests run meanwhile.
        let path = format!("{}:{}", dir.path().display(), std::env::var("PATH").unwrap_or_default());
        let mut docker = config(r#"{"credHelpers": {"reg.example": "resintest"}, "credsStore": "resintest"}"#);
        docker.helper_search_path = Some(path.into());
        assert_eq!(
            credentials_for("reg.example", &[], &docker).unwrap(),
            Credentials::Basic { username: "hu".into(), password: "hs".into() }
        );
        assert_eq!(credentials_for("other.example", &[], &docker).unwrap(), Credentials::Anonymous);
    }

    #[test]
    fn malformed_auth_is_an_error() {
        let docker = config(r#"{"auths": {"ghcr.io": {"auth": "!!!"}}}"#);
        let err = credentials_for("ghcr.io", &[], &docker).unwrap_err();
        assert!(format!("{err:#}").contains("ghcr.io"));
    }
}
