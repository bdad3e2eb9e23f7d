//! The guards' keys while the proxy runs: one holder per guard, shared by
//! the shards. A key file is looked at again at most once a second, when a
//! request needs its keys, and read again when it changed (its modification
//! time, length or inode: an editor's write or an atomic rename). A file
//! that no longer parses keeps the last good keys and is logged once per
//! change, so a half-written file never opens or closes anything.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use tracing::{info, warn};

use crate::codec::jwt::KeySet;
use crate::config::{read_key_file, Guard, KeySource};

/// How often a key file is looked at, at most.
pub const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Every guard's keys, by the guard's index in the config.
#[derive(Debug)]
pub struct KeyHolders {
    holders: Vec<KeyHolder>,
    /// What the look-up times count from.
    epoch: Instant,
}

/// The keys of a guard and where they come from.
#[derive(Debug)]
struct KeyHolder {
    guard: String,
    source: KeySource,
    loaded: RwLock<Loaded>,
    /// Milliseconds since `epoch` when the file may be looked at again.
    next_look: AtomicU64,
}

#[derive(Debug)]
struct Loaded {
    keys: Arc<KeySet>,
    /// Rises with every new set: a verified token remembered under an
    /// older generation is verified again (its key may be gone).
    generation: u64,
    /// What the file looked like when last read; `None` until the first
    /// look after start, which reads it again (it may have changed since
    /// the config was read).
    stamp: Option<Stamp>,
}

/// What tells a changed file from the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode: meta.ino(),
        }
    }
}

/// A guard's keys as of now, and their generation.
#[derive(Debug, Clone)]
pub struct CurrentKeys {
    pub keys: Arc<KeySet>,
    pub generation: u64,
}

impl KeyHolders {
    /// The guards' keys as the config read them.
    pub fn new(guards: &[Guard]) -> Self {
        let holders = guards
            .iter()
            .map(|g| KeyHolder {
                guard: g.name.clone(),
                source: g.source.clone(),
                loaded: RwLock::new(Loaded {
                    keys: Arc::clone(&g.keys),
                    generation: 0,
                    stamp: None,
                }),
                next_look: AtomicU64::new(0),
            })
            .collect();
        Self {
            holders,
            epoch: Instant::now(),
        }
    }

    /// Guard number `guard`'s keys, the file looked at again first when it
    /// is due (blocking file I/O on the caller's thread: a `stat` a second,
    /// and a read of at most 1 MiB when the file changed).
    pub fn current(&self, guard: usize) -> CurrentKeys {
        let holder = &self.holders[guard];
        if let KeySource::Jwks(path) | KeySource::Secret(path) = &holder.source {
            let now = self.epoch.elapsed().as_millis() as u64;
            let due = holder.next_look.load(Ordering::Relaxed);
            // One caller looks; the others go on with the keys they have.
            if now >= due
                && holder
                    .next_look
                    .compare_exchange(
                        due,
                        now + LOOK_EVERY.as_millis() as u64,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    )
                    .is_ok()
            {
                holder.look(path, matches!(holder.source, KeySource::Secret(_)));
            }
        }
        let loaded = holder.loaded.read().unwrap_or_else(|p| p.into_inner());
        CurrentKeys {
            keys: Arc::clone(&loaded.keys),
            generation: loaded.generation,
        }
    }
}

impl KeyHolder {
    /// Reads the file again if it changed since it was last read.
    fn look(&self, path: &std::path::Path, secret: bool) {
        let stamp = match std::fs::metadata(path) {
            Ok(meta) => Stamp::of(&meta),
            Err(e) => {
                let mut loaded = self.loaded.write().unwrap_or_else(|p| p.into_inner());
                // Logged once, when the file goes; the keys stay.
                if loaded.stamp.is_some() {
                    warn!(guard = %self.guard, file = %path.display(), error = %e,
                        "cannot read the guard's key file; its last keys stay");
                }
                loaded.stamp = None;
                return;
            }
        };
        {
            let loaded = self.loaded.read().unwrap_or_else(|p| p.into_inner());
            if loaded.stamp == Some(stamp) {
                return;
            }
        }
        let read = read_key_file(path, secret);
        let mut loaded = self.loaded.write().unwrap_or_else(|p| p.into_inner());
        loaded.stamp = Some(stamp);
        match read {
            Ok(keys) => {
                if loaded.generation > 0 || !same_kids(&keys, &loaded.keys) {
                    info!(guard = %self.guard, file = %path.display(), keys = keys.len(),
                        "guard keys read again");
                }
                loaded.keys = Arc::new(keys);
                loaded.generation += 1;
            }
            Err(why) => warn!(guard = %self.guard, error = %why,
                "the guard's key file changed but cannot be used; its last keys stay"),
        }
    }
}

fn same_kids(a: &KeySet, b: &KeySet) -> bool {
    a.kids().eq(b.kids())
}
