//! terraform-provider-resin: assembles LinuxKit-style machine images from OCI images.
//!
//! * [`oci`]: references, registries, local layouts and the verified blob cache.
//! * [`container`]: the typed container options of a package and their validation.
//! * [`resources`]: the Terraform provider and its resources, the only code that knows
//!   about the plugin protocol.

pub mod assemble;
pub mod container;
pub mod copy;
pub mod disk;
pub mod initrd;
pub mod log;
pub mod oci;
pub mod resources;
pub mod rootfs;
pub mod sparse;
pub mod tempfiles;
