//! Runs the real Terraform binary against the provider binary this test build produced,
//! through `dev_overrides`: the pinned Terraform 1.0.3 (installed into `.tools/bin` by
//! `make test`), or the one `RESIN_TERRAFORM` names (`make test` runs the acceptance tests
//! again with a newer `terraform` found on PATH).

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Whether stdout or stderr contains `needle`, ignoring how Terraform wrapped lines
    /// (diagnostic details are wrapped at 78 columns).
    pub fn says(&self, needle: &str) -> bool {
        let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        let haystack = flat(&format!("{}\n{}", self.stdout, self.stderr));
        haystack.contains(&flat(needle))
    }

    pub fn text(&self) -> String {
        format!("exit code {}\n--- stdout\n{}\n--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

/// A Terraform working directory with its own CLI config, provider cache and Docker config.
pub struct Workspace {
    dir: tempfile::TempDir,
    pub cache_dir: PathBuf,
    pub docker_config_dir: PathBuf,
}

pub fn terraform_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("RESIN_TERRAFORM") {
        return PathBuf::from(path);
    }
    let path = crate::repository().join(".tools/bin/terraform");
    assert!(path.is_file(), "{} is missing: run `make test`, which installs Terraform 1.0.3", path.display());
    path
}

/// The directory of the provider binary built with the running test or benchmark: cargo
/// puts test and benchmark executables in `deps/` of the profile directory that holds the
/// package's binaries.
fn provider_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe.parent().and_then(Path::parent).expect("a test executable in <profile>/deps");
    let provider = dir.join("terraform-provider-resin");
    assert!(provider.is_file(), "{} is missing: cargo builds it with the tests and benchmarks", provider.display());
    dir.to_path_buf()
}

impl Default for Workspace {
    fn default() -> Workspace {
        Workspace::new()
    }
}

impl Workspace {
    pub fn new() -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        let provider_dir = provider_dir();
        std::fs::write(
            dir.path().join("terraformrc"),
            format!(
                "provider_installation {{\n  dev_overrides {{\n    \"resinstack/resin\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
                provider_dir.display()
            ),
        )
        .unwrap();
        let cache_dir = dir.path().join("cache");
        let docker_config_dir = dir.path().join("docker");
        std::fs::create_dir_all(dir.path().join("work")).unwrap();
        std::fs::create_dir_all(&docker_config_dir).unwrap();
        Workspace { dir, cache_dir, docker_config_dir }
    }

    pub fn work_dir(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// Writes `main.tf`: the provider requirement plus `body`.
    pub fn write_config(&self, body: &str) {
        let text = format!(
            "terraform {{\n  required_providers {{\n    resin = {{ source = \"resinstack/resin\" }}\n  }}\n}}\n\n{body}\n"
        );
        std::fs::write(self.work_dir().join("main.tf"), text).unwrap();
    }

    /// Writes `main.tf` as it is given (with its own `terraform` block).
    pub fn write_config_file(&self, text: &str) {
        std::fs::write(self.work_dir().join("main.tf"), text).unwrap();
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_cli_config(&self.dir.path().join("terraformrc"), args)
    }

    /// Runs Terraform with another CLI configuration (e.g. a filesystem mirror).
    pub fn run_with_cli_config(&self, cli_config: &Path, args: &[&str]) -> Output {
        self.run_with(cli_config, args, &[])
    }

    /// Runs Terraform with extra environment variables (e.g. TF_LOG).
    pub fn run_with_env(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        self.run_with(&self.dir.path().join("terraformrc"), args, env)
    }

    fn command(&self, cli_config: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut command = Command::new(terraform_binary());
        command
            .args(args)
            .current_dir(self.work_dir())
            .env("TF_CLI_CONFIG_FILE", cli_config)
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .env("DOCKER_CONFIG", &self.docker_config_dir)
            .env("XDG_CACHE_HOME", self.dir.path().join("xdg-cache"))
            .env_remove("TF_LOG")
            .envs(env.iter().copied());
        command
    }

    /// Starts Terraform without waiting for it (output discarded), e.g. to kill it.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command(&self.dir.path().join("terraformrc"), args, &[])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting terraform")
    }

    fn run_with(&self, cli_config: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        let output = self.command(cli_config, args, env).output().expect("running terraform");
        Output {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn apply(&self) -> Output {
        let output = self.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
        assert_eq!(output.code, 0, "terraform apply failed:\n{}", output.text());
        output
    }

    /// `terraform plan -detailed-exitcode`: 0 no changes, 1 error, 2 changes.
    pub fn plan(&self) -> Output {
        self.run(&["plan", "-detailed-exitcode", "-input=false", "-no-color"])
    }

    /// The resources of the state, by address, read from `terraform.tfstate` (the values
    /// `terraform show -json` prints, without starting Terraform for them).
    pub fn state(&self) -> serde_json::Value {
        let path = self.work_dir().join("terraform.tfstate");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let state: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut by_address = serde_json::Map::new();
        for resource in state["resources"].as_array().cloned().unwrap_or_default() {
            let mode = if resource["mode"] == "data" { "data." } else { "" };
            let address =
                format!("{mode}{}.{}", resource["type"].as_str().unwrap(), resource["name"].as_str().unwrap());
            for instance in resource["instances"].as_array().cloned().unwrap_or_default() {
                let key = match &instance["index_key"] {
                    serde_json::Value::Null => String::new(),
                    index => format!("[{index}]"),
                };
                by_address.insert(format!("{address}{key}"), instance["attributes"].clone());
            }
        }
        serde_json::Value::Object(by_address)
    }

    /// Whether the provider's cache holds blob `digest`.
    pub fn cache_has(&self, digest: &str) -> bool {
        self.cache_dir.join("blobs/sha256").join(digest.strip_prefix("sha256:").unwrap()).is_file()
    }
}
