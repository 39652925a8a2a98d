//! terraform-provider-resin: assembles LinuxKit-style machine images from OCI images.
//!
//! * [`oci`]: references, registries, local layouts and the verified blob cache.
//! * [`container`]: the typed container options of a package and their validation.
//! * [`field`]: what is wrong with a resource's input, and where.
//! * [`publish`]: images as OCI artifacts in a registry, and read back.
//! * [`boot`]: booting what was assembled in a VM and judging its console.
//! * [`resources`]: the Terraform provider and its resources, the only code that knows
//!   about the plugin protocol.
//! * [`plugin_socket`]: the connection Terraform makes to the provider, without Nagle's
//!   algorithm.
//!
//! All of it is the default `provider` feature; without it (the fuzz targets' build) the
//! library is the code that reads untrusted bytes: [`rootfs`], [`initrd`], the blob cache
//! and [`disk::pe`].

#[cfg(feature = "provider")]
pub mod assemble;
#[cfg(feature = "provider")]
pub mod boot;
#[cfg(feature = "provider")]
pub mod container;
pub mod copy;
#[cfg(feature = "provider")]
pub mod disk;
#[cfg(feature = "provider")]
pub mod field;
pub mod initrd;
pub mod log;
#[cfg(feature = "provider")]
pub mod oci;
#[cfg(feature = "provider")]
pub mod plugin_socket;
#[cfg(feature = "provider")]
pub mod publish;
#[cfg(feature = "provider")]
pub mod resources;
pub mod rootfs;
#[cfg(feature = "provider")]
pub mod sparse;
pub mod tempfiles;

/// Without the `provider` feature (the fuzz targets' build): the PE reader and appender.
#[cfg(not(feature = "provider"))]
pub mod disk {
    pub mod pe;
}

/// Without the `provider` feature (the fuzz targets' build): digests and the blob cache
/// (and its downloads' taps) that the layer reader builds on.
#[cfg(not(feature = "provider"))]
pub mod oci {
    pub mod cache;
    pub mod digest;
    pub mod hashing;
    pub mod tap;
}
