//! Assembling a machine image: the spec documents resources exchange ([`spec`]), content
//! hashes and the assembly format version ([`hash`]), the composition decided at plan
//! time ([`compose`]), LinuxKit's per-image rewriting ([`rewrite`]), writing the
//! artifacts ([`build`]) and what a kernel image must hold ([`kernel`]).

pub mod build;
pub mod compose;
pub mod hash;
pub mod interop;
pub mod kernel;
pub mod rewrite;
pub mod spec;
