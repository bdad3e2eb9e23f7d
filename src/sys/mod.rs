//! What the proxy asks of the operating system beyond the standard library
//! and glommio: CPU affinity ([`cpus`]) and socket calls (`socket`). The
//! crate denies `unsafe` code everywhere else: each `unsafe` block lives
//! here, behind a safe function, with its `SAFETY` argument beside it.
#![allow(unsafe_code)]

pub mod cpus;
pub(crate) mod socket;
