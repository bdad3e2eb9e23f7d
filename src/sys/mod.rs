//! What the proxy asks of the operating system beyond the standard library
//! and glommio: CPU affinity ([`cpus`]), socket calls (`socket`), the
//! descriptor budget ([`fds`]) and freed memory's return ([`memory`]). The
//! crate denies `unsafe` code everywhere else: each `unsafe` block lives
//! here, behind a safe function, with its `SAFETY` argument beside it.
#![allow(unsafe_code)]

pub mod cpus;
pub mod fds;
pub mod memory;
pub(crate) mod socket;
