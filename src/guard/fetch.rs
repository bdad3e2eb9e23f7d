//! The key fetcher: one thread of the process, off the shards, that
//! fetches the guards' keys from their URLs — at start, every `refresh`
//! (sooner when the answer's `cache-control: max-age` says so, never
//! sooner than `min_refresh`), and when a request asks because its token
//! names a kid the keys lack. A failed fetch keeps the last good keys and
//! is tried again after `min_refresh`; failures are logged once until a
//! fetch succeeds again. Answers are bounded (1 MiB, 10 s).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::warn;

use super::keys::KeyHolders;
use crate::codec::jwt::KeySet;

/// The largest key set answer read.
pub const MAX_ANSWER_BYTES: u64 = 1 << 20;

/// How long one fetch may take, connection and answer.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the fetcher if a guard has keys from a URL.
pub fn spawn(holders: Arc<KeyHolders>) -> Option<std::thread::JoinHandle<()>> {
    let urls = holders.urls();
    if urls.is_empty() {
        return None;
    }
    let thread = std::thread::Builder::new()
        .name("key-fetcher".into())
        .spawn(move || run(&holders, &urls))
        .expect("a thread for the key fetcher");
    Some(thread)
}

/// One URL's schedule.
struct Due {
    next: Instant,
    /// The last fetch failed (logged; not again until one succeeds).
    failing: bool,
}

fn run(holders: &KeyHolders, urls: &[(usize, String, Duration, Duration)]) {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(FETCH_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .new_agent();
    let start = Instant::now();
    let mut due: Vec<Due> = urls
        .iter()
        .map(|_| Due {
            next: start,
            failing: false,
        })
        .collect();
    loop {
        for ((guard, url, refresh, min_refresh), due) in urls.iter().zip(&mut due) {
            let now = Instant::now();
            if now < due.next && !holders.is_asked(*guard) {
                continue;
            }
            holders.fetch_starts(*guard);
            match fetch(&agent, url) {
                Ok((keys, max_age)) => {
                    let wait = max_age
                        .map_or(*refresh, |m| m.min(*refresh))
                        .max(*min_refresh);
                    due.next = Instant::now() + wait;
                    due.failing = false;
                    holders.fetched(*guard, Some(keys));
                }
                Err(why) => {
                    if !due.failing {
                        warn!(url = %url, error = %why,
                            "cannot fetch a guard's keys; its last keys stay, tried again every min_refresh");
                    }
                    due.failing = true;
                    due.next = Instant::now() + *min_refresh;
                    holders.fetched(*guard, None);
                }
            }
        }
        let next = due
            .iter()
            .map(|d| d.next)
            .min()
            .unwrap_or_else(Instant::now);
        holders.wait_asked(next.saturating_duration_since(Instant::now()));
    }
}

/// The key set at `url`, and its answer's `max-age`.
fn fetch(agent: &ureq::Agent, url: &str) -> Result<(KeySet, Option<Duration>), String> {
    let mut answer = agent.get(url).call().map_err(|e| e.to_string())?;
    let status = answer.status();
    if !status.is_success() {
        return Err(format!("answered {status}"));
    }
    let max_age = answer
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .and_then(max_age);
    let bytes = answer
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_vec()
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => {
                format!("the answer is larger than {MAX_ANSWER_BYTES} bytes")
            }
            e => e.to_string(),
        })?;
    let keys = KeySet::from_jwks(&bytes).map_err(|e| e.to_string())?;
    Ok((keys, max_age))
}

/// `max-age=N` of a `cache-control` value.
fn max_age(value: &str) -> Option<Duration> {
    value.split(',').find_map(|directive| {
        let (name, secs) = directive.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("max-age") {
            return None;
        }
        secs.trim()
            .trim_matches('"')
            .parse()
            .ok()
            .map(Duration::from_secs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_of_cache_control() {
        let s = Duration::from_secs;
        assert_eq!(max_age("public, max-age=300"), Some(s(300)));
        assert_eq!(max_age("Max-Age = \"60\", must-revalidate"), Some(s(60)));
        assert_eq!(max_age("no-cache"), None);
        assert_eq!(max_age("max-age=soon"), None);
        assert_eq!(max_age("s-maxage=5"), None);
    }
}
