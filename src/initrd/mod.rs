//! The initrd: a newc cpio archive ([`newc`]), compressed as gzip members ([`gzip`], the
//! pieces of a long entry made to go on by [`continued`]) or zstd frames ([`zstd`]) that
//! each end with an entry, or not at all, optionally preceded by an uncompressed early-microcode cpio. This module
//! owns the exact bytes of `<name>-initrd.img`: how it is compressed ([`compression`]) and
//! how its segments are written, in parallel, and joined ([`segments`]).

pub mod compression;
pub mod continued;
pub mod gzip;
pub mod newc;
pub mod segments;
pub mod zstd;

pub use compression::Compression;
