//! Root filesystems from OCI image layers: reading layers ([`layer`]), normalising paths
//! ([`path`]), the union of an image's layers per the OCI image spec ([`tree`]), and the
//! host files that `file` blocks copy in ([`host`]), and the file data kept from the one
//! read of each layer ([`spool`]).

pub mod host;
pub mod layer;
pub mod path;
pub mod spool;
pub mod tree;
