//! Root filesystems from OCI image layers: reading layers ([`layer`]), normalising paths
//! ([`path`]), the union of an image's layers per the OCI image spec ([`tree`]), and the
//! host files that `file` blocks copy in ([`host`]).

pub mod host;
pub mod layer;
pub mod path;
pub mod tree;
