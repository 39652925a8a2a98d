//! Root filesystems from OCI image layers: reading layers ([`layer`]), normalising paths
//! ([`path`]) and the union of an image's layers per the OCI image spec ([`tree`]).

pub mod layer;
pub mod path;
pub mod tree;
