//! Assembling a machine image, without Terraform. The public API is what this module
//! re-exports; `resources/` uses nothing else.
//!
//! * [`spec`]: the documents `resin_kernel` and `resin_package` hand to `resin_image`.
//! * [`hash`]: content hashes and the assembly format version.
//! * [`compose`]: the composition, decided at plan time without reading a layer.
//! * [`interop`]: the LinuxKit YAML and SPDX SBOM of a composition.
//! * [`build`]: writing the artifacts: [`segments`] plans the initrd's segments, [`union`]
//!   unions and extracts an image's layers, [`kernel`] extracts the kernel's files,
//!   [`rewrite`] applies LinuxKit's per-image rewriting, [`segment_writer`] writes new
//!   segments (with [`crate::initrd::segments`]) into the [`segment_cache`], which keeps
//!   them between applies, and [`artifacts`] publishes the artifacts and tells drift.
//!   [`prefetch`] reads the images of later segments while earlier ones are written;
//!   [`early`] reads a new package's image while Terraform still applies the others.

mod artifacts;
mod build;
mod compose;
mod early;
#[cfg(test)]
pub(crate) mod golden;
mod hash;
mod interop;
mod kernel;
mod prefetch;
mod remote_segments;
mod rewrite;
mod segment_cache;
mod segment_keys;
mod segment_writer;
mod segments;
mod spec;
mod union;
mod warning;
pub use union::{read_image_file, read_pulled_file, Downloads};

pub use artifacts::{
    check, file_digest, publish as rename_into_place, remove_if_written, temporary, write_artifact, write_documents,
    Access, Artifact, ArtifactKind, Document, FileStamp, Removal, TEMPORARY_PREFIX,
};
pub use build::{build, Artifacts};
pub use compose::{compose, file_kind, Composition, Compression, FileKind, FileSpec, ImageInputs, Section};
pub use early::EarlyReads;
pub use hash::{content_hash, ASSEMBLY_FORMAT};
pub use interop::{linuxkit_yaml, sbom_bytes};
pub use kernel::{check_kernel_files, NamedFile};
pub use remote_segments::{RemoteSegments, RemoteSettings};
pub use segment_cache::SegmentCache;
pub use segment_keys::{PublicKey, SigningKey};
pub use spec::{
    check_cmdline, EfiStubSpec, ImageDefaults, ImageSpec, InitrdPart, KernelSpec, PackageSpec, Published, SPEC_VERSION,
};
pub use warning::Warning;
