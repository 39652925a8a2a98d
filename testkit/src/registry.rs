//! A real OCI registry (Debian's `docker-registry`, distribution 2.8) on a free loopback
//! port, started per test and stopped by PID when dropped. Its access log (a line per
//! request) is kept in a file, for tests that count what was fetched.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Registry {
    child: Child,
    pub address: String,
    pub storage: PathBuf,
    pub credentials: Option<(String, String)>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Registry {
    /// Starts an anonymous registry, or one with basic auth for `credentials`.
    pub fn start(credentials: Option<(&str, &str)>) -> Registry {
        Registry::start_with(credentials, false)
    }

    /// Starts a registry that wants bearer tokens from a token server, which hands them out
    /// for `user`/`password`.
    pub fn start_with_token_auth(user: &str, password: &str) -> Registry {
        Registry::start_with(Some((user, password)), true)
    }

    /// Starts an anonymous pull-through mirror of `remote` (which must want bearer tokens:
    /// distribution's proxy authenticates to no other kind), as a boot network would run
    /// one: it fetches a blob from `remote` once, with `remote`'s credentials, and serves
    /// it from its own storage after that.
    pub fn start_mirror(remote: &Registry) -> Registry {
        let (user, password) = remote.credentials.clone().expect("a remote with credentials");
        let proxy =
            format!("proxy: {{ remoteurl: \"http://{}\", username: {user}, password: {password} }}\n", remote.address);
        Registry::start_with_config(None, false, &proxy)
    }

    fn start_with(credentials: Option<(&str, &str)>, token_auth: bool) -> Registry {
        Registry::start_with_config(credentials, token_auth, "")
    }

    fn start_with_config(credentials: Option<(&str, &str)>, token_auth: bool, extra: &str) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage");
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog: {{ level: error, accesslog: {{ disabled: false }} }}\nstorage: {{ filesystem: {{ rootdirectory: {} }}, delete: {{ enabled: true }} }}\nhttp: {{ addr: 127.0.0.1:{port} }}\n{extra}",
            storage.display()
        );
        if let (true, Some((user, password))) = (token_auth, credentials) {
            let cert = dir.path().join("token-cert.pem");
            let server = crate::token_server::TokenServer::start(user, password, &cert);
            config.push_str(&format!(
                "auth: {{ token: {{ realm: \"{}\", service: {}, issuer: {}, rootcertbundle: {} }} }}\n",
                server.realm,
                crate::token_server::SERVICE,
                crate::token_server::ISSUER,
                cert.display()
            ));
        } else if let Some((user, password)) = credentials {
            let htpasswd = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd (apache2-utils) is installed by make test");
            assert!(htpasswd.status.success());
            let path = dir.path().join("htpasswd");
            std::fs::write(&path, htpasswd.stdout).unwrap();
            config.push_str(&format!("auth: {{ htpasswd: {{ realm: resin-test, path: {} }} }}\n", path.display()));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = dir.path().join("registry.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::from(log_file.try_clone().unwrap()))
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("docker-registry is installed by make test");
        let registry = Registry {
            child,
            address: format!("127.0.0.1:{port}"),
            storage,
            credentials: credentials.map(|(u, p)| (u.to_string(), p.to_string())),
            log,
            _dir: dir,
        };
        registry.wait_ready();
        registry
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut stream) = TcpStream::connect(&self.address) {
                let request = format!("GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", self.address);
                if stream.write_all(request.as_bytes()).is_ok() {
                    let mut answer = String::new();
                    let _ = stream.read_to_string(&mut answer);
                    if answer.starts_with("HTTP/1.") {
                        return;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("registry on {} did not become ready", self.address);
    }

    /// Stops the registry (the address then refuses connections).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Pushes `tag` of the OCI layout at `layout` to `<repository>:<tag>` with skopeo;
    /// `docker_media_types` converts to Docker v2 schema 2.
    pub fn push(&self, layout: &Path, tag: &str, repository: &str, docker_media_types: bool) {
        let mut command = Command::new("skopeo");
        command.args(["copy", "--quiet", "--all", "--dest-tls-verify=false"]);
        if docker_media_types {
            command.args(["--format", "v2s2"]);
        } else {
            // The registry then serves exactly the layout's bytes and digests.
            command.arg("--preserve-digests");
        }
        if let Some((user, password)) = &self.credentials {
            command.arg(format!("--dest-creds={user}:{password}"));
        }
        command.arg(format!("oci:{}:{tag}", layout.display()));
        command.arg(format!("docker://{}/{repository}:{tag}", self.address));
        let output = command.output().expect("skopeo is installed by make test");
        assert!(output.status.success(), "skopeo push failed: {}", String::from_utf8_lossy(&output.stderr));
    }

    /// The access log so far: a line per request (`"GET /v2/... HTTP/1.1" 200 <bytes>`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The blobs the registry stores, with their sizes.
    pub fn blobs(&self) -> std::collections::BTreeMap<String, u64> {
        let root = self.storage.join("docker/registry/v2/blobs/sha256");
        let mut blobs = std::collections::BTreeMap::new();
        for prefix in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            for blob in std::fs::read_dir(prefix.path()).into_iter().flatten().flatten() {
                if let Ok(meta) = std::fs::metadata(blob.path().join("data")) {
                    blobs.insert(format!("sha256:{}", blob.file_name().to_string_lossy()), meta.len());
                }
            }
        }
        blobs
    }

    /// Where the registry stores blob `digest` (to corrupt it on purpose).
    pub fn blob_data_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.storage.join("docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data")
    }

    /// The digest of the manifest the registry serves for `repository:tag` (an index stays
    /// an index): skopeo fetches it raw, as the provider would, and it is hashed here.
    pub fn manifest_digest(&self, repository: &str, tag: &str) -> String {
        use sha2::Digest as _;
        let mut command = Command::new("skopeo");
        command.args(["inspect", "--raw", "--tls-verify=false"]);
        if let Some((user, password)) = &self.credentials {
            command.arg(format!("--creds={user}:{password}"));
        }
        command.arg(format!("docker://{}/{repository}:{tag}", self.address));
        let output = command.output().expect("skopeo is installed by make test");
        assert!(
            output.status.success(),
            "no manifest for {repository}:{tag}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(&output.stdout)))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}
