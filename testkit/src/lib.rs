//! What the provider's tests, benchmarks and boot-fixture builder share, as code:
//!
//! * [`fixtures`]: deterministic OCI image layouts (the one layout writer) and the golden
//!   initrd's digest;
//! * [`registry`]: the real OCI registry on loopback (anonymous, basic or bearer-token auth
//!   through [`token_server`]);
//! * [`terraform`]: Terraform workspaces that run the provider binary the tests built;
//! * [`measure`]: CPU time and peak memory of processes, and real files to pack.

pub mod fixtures;
pub mod measure;
pub mod registry;
pub mod terraform;
pub mod token_server;

use std::path::{Path, PathBuf};

/// The provider's repository (where `.tools/` is).
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("testkit/ is in the repository").to_path_buf()
}
