//! What the proxy asks of the operating system beyond the standard library
//! and glommio: CPU affinity ([`cpus`]), socket calls (`socket`), the
//! descriptor budget ([`fds`]), freed memory's return ([`memory`]) and the
//! process's own figures ([`process`]). The
//! crate denies `unsafe` code everywhere else: each `unsafe` block lives
//! here, behind a safe function, with its `SAFETY` argument beside it.
#![allow(unsafe_code)]

pub mod cpus;
pub mod fds;
pub mod memory;
pub mod process;
pub(crate) mod socket;
