//! The initrd: a newc cpio archive ([`newc`]) compressed as one gzip member of separately
//! deflated segments ([`gzip`]), optionally preceded by an uncompressed early-microcode
//! cpio. This module owns the exact bytes of `<name>-initrd.img`.

pub mod gzip;
pub mod newc;
