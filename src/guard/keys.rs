//! The guards' keys while the proxy runs: one holder per guard, shared by
//! the shards. A key file is looked at again at most once a second, when a
//! request needs its keys, and read again when it changed (its modification
//! time, length or inode: an editor's write or an atomic rename). A file
//! that no longer parses keeps the last good keys and is logged once per
//! change, so a half-written file never opens or closes anything. Keys
//! from a URL are fetched by the key fetcher (`fetch`), off the shards;
//! a request whose token names a kid they lack asks for a fetch, at most
//! once per `min_refresh`, and waits for it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use tracing::{info, warn};

use crate::codec::jwt::KeySet;
use crate::config::{read_key_file, Guard, KeySource};
use crate::ops::metrics::ShardMetrics;

/// How often a key file is looked at, at most.
pub const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Every guard's keys, by the guard's index in the config.
#[derive(Debug)]
pub struct KeyHolders {
    holders: Vec<KeyHolder>,
    /// What the look-up times count from.
    epoch: Instant,
    /// Told when some guard has keys from a URL and none yet.
    shards: Arc<[Arc<ShardMetrics>]>,
    /// Wakes the key fetcher: a request asked for a fetch.
    asked: (Mutex<()>, Condvar),
}

/// The keys of a guard and where they come from.
#[derive(Debug)]
struct KeyHolder {
    guard: String,
    source: KeySource,
    loaded: RwLock<Loaded>,
    /// Milliseconds since `epoch` when the file may be looked at again.
    next_look: AtomicU64,
    /// Keys from a URL: a request asked for a fetch that has not started.
    fetch_asked: AtomicBool,
    /// Milliseconds since `epoch` when the last fetch started; `u64::MAX`
    /// before the first.
    fetch_started: AtomicU64,
    /// Fetches finished, good or not: a request that asked waits for this
    /// to rise.
    fetches: AtomicU64,
}

#[derive(Debug)]
struct Loaded {
    /// `None` only for keys from a URL not fetched yet.
    keys: Option<Arc<KeySet>>,
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
    /// The guards' keys as the config read them; `shards` are told while
    /// a guard with keys from a URL has none.
    pub fn new(guards: &[Guard], shards: Arc<[Arc<ShardMetrics>]>) -> Self {
        let holders = guards
            .iter()
            .map(|g| KeyHolder {
                guard: g.name.clone(),
                source: g.source.clone(),
                loaded: RwLock::new(Loaded {
                    keys: g.keys.clone(),
                    generation: 0,
                    stamp: None,
                }),
                next_look: AtomicU64::new(0),
                fetch_asked: AtomicBool::new(false),
                fetch_started: AtomicU64::new(u64::MAX),
                fetches: AtomicU64::new(0),
            })
            .collect();
        let holders = Self {
            holders,
            epoch: Instant::now(),
            shards,
            asked: (Mutex::new(()), Condvar::new()),
        };
        holders.tell_shards();
        holders
    }

    /// Guard number `guard`'s keys (`None`: from a URL, not fetched yet),
    /// a key file looked at again first when it is due (blocking file I/O
    /// on the caller's thread: a `stat` a second, and a read of at most
    /// 1 MiB when the file changed).
    pub fn current(&self, guard: usize) -> Option<CurrentKeys> {
        let holder = &self.holders[guard];
        if let KeySource::Jwks(path) | KeySource::Secret(path) = &holder.source {
            let now = self.now_ms();
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
        loaded.keys.as_ref().map(|keys| CurrentKeys {
            keys: Arc::clone(keys),
            generation: loaded.generation,
        })
    }

    /// For a token whose kid guard number `guard`'s keys lack: asks the
    /// fetcher for the keys again, unless they are not from a URL or the
    /// last fetch started less than `min_refresh` ago (then `None`: the
    /// token is refused as it is). Returns the count of fetches to wait
    /// past ([`fetches`](Self::fetches)); requests that ask while a fetch
    /// is asked for share it.
    pub fn ask_fetch(&self, guard: usize) -> Option<u64> {
        let holder = &self.holders[guard];
        let KeySource::Url { min_refresh, .. } = &holder.source else {
            return None;
        };
        let done = holder.fetches.load(Ordering::Acquire);
        if holder.fetch_asked.load(Ordering::Acquire) {
            return Some(done);
        }
        let started = holder.fetch_started.load(Ordering::Acquire);
        if started != u64::MAX
            && self.now_ms().saturating_sub(started) < min_refresh.as_millis() as u64
        {
            return None;
        }
        holder.fetch_asked.store(true, Ordering::Release);
        let _guard = self.asked.0.lock().unwrap_or_else(|p| p.into_inner());
        self.asked.1.notify_all();
        Some(done)
    }

    /// Fetches of guard number `guard`'s keys finished so far.
    pub fn fetches(&self, guard: usize) -> u64 {
        self.holders[guard].fetches.load(Ordering::Acquire)
    }

    /// The guards with keys from a URL: (index, url, refresh, min_refresh).
    pub(super) fn urls(&self) -> Vec<(usize, String, Duration, Duration)> {
        self.holders
            .iter()
            .enumerate()
            .filter_map(|(i, h)| match &h.source {
                KeySource::Url {
                    url,
                    refresh,
                    min_refresh,
                } => Some((i, url.clone(), *refresh, *min_refresh)),
                _ => None,
            })
            .collect()
    }

    /// The fetcher starts a fetch of guard number `guard`'s keys: it
    /// answers whoever asked for one.
    pub(super) fn fetch_starts(&self, guard: usize) {
        let holder = &self.holders[guard];
        holder.fetch_started.store(self.now_ms(), Ordering::Release);
        holder.fetch_asked.store(false, Ordering::Release);
    }

    /// Whether a request asked for a fetch of guard number `guard`'s keys.
    pub(super) fn is_asked(&self, guard: usize) -> bool {
        self.holders[guard].fetch_asked.load(Ordering::Acquire)
    }

    /// The fetcher's fetch of guard number `guard`'s keys ended, with
    /// these keys if it got a usable set (else the last ones stay).
    pub(super) fn fetched(&self, guard: usize, keys: Option<KeySet>) {
        let holder = &self.holders[guard];
        if let Some(keys) = keys {
            let mut loaded = holder.loaded.write().unwrap_or_else(|p| p.into_inner());
            let count = keys.len();
            if loaded.install(keys) {
                info!(guard = %holder.guard, keys = count, "guard keys fetched");
            }
        }
        holder.fetches.fetch_add(1, Ordering::AcqRel);
        self.tell_shards();
    }

    /// Waits until a request asks for a fetch, or `timeout`.
    pub(super) fn wait_asked(&self, timeout: Duration) {
        let lock = self.asked.0.lock().unwrap_or_else(|p| p.into_inner());
        if self
            .holders
            .iter()
            .any(|h| h.fetch_asked.load(Ordering::Acquire))
        {
            return;
        }
        let _ = self.asked.1.wait_timeout(lock, timeout);
    }

    /// Tells the shards whether a guard still has no keys.
    fn tell_shards(&self) {
        let missing = self.holders.iter().any(|h| {
            h.loaded
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .keys
                .is_none()
        });
        for m in self.shards.iter() {
            m.keys_missing.store(missing, Ordering::Relaxed);
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
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
                let count = keys.len();
                // The first look after start reads what the config read.
                let first = loaded.generation == 0;
                if loaded.install(keys) || !first {
                    info!(guard = %self.guard, file = %path.display(), keys = count,
                        "guard keys read again");
                }
            }
            Err(why) => warn!(guard = %self.guard, error = %why,
                "the guard's key file changed but cannot be used; its last keys stay"),
        }
    }
}

impl Loaded {
    /// Puts `keys` in place, a new generation; returns whether their kids
    /// differ from the last keys' (or there were none).
    fn install(&mut self, keys: KeySet) -> bool {
        let changed = !self
            .keys
            .as_deref()
            .is_some_and(|old| old.kids().eq(keys.kids()));
        self.keys = Some(Arc::new(keys));
        self.generation += 1;
        changed
    }
}
