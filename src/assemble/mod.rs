//! Assembling a machine image: the spec documents resources exchange ([`spec`]), the
//! composition decided at plan time ([`compose`]), LinuxKit's per-image rewriting
//! ([`rewrite`]) and writing the artifacts ([`build`]).

pub mod build;
pub mod compose;
pub mod interop;
pub mod rewrite;
pub mod spec;
