//! Guarded routes: a request to a route with a `guard` opens its stream
//! only with a token the guard verifies (`codec::jwt`) that holds the
//! route's roles. The token is found in the request (`token`), checked
//! against the guard's keys as they are now (`keys`, shared by the shards
//! and re-read when their file changes), and remembered per shard until it
//! expires, so a reconnect storm of clients holding a few tokens costs a
//! few signature checks, not one per connection. Refusals are RFC 6750's:
//! 401 with a `Bearer` challenge, `invalid_token` when a token was given,
//! 403 `insufficient_scope` when it lacks a role.
//!
//! - `token`: where a request's token is (header, query, cookie).
//! - `fetch`: the thread that fetches keys from URLs.
//! - `keys`: the guards' keys while the proxy runs.

pub mod fetch;
pub mod keys;
pub mod token;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use crate::codec::http::RequestHead;
use crate::codec::jwt::{self, Rules, TokenError, Verified};
use crate::config::Guard;
use crate::ops::metrics::{Rejection, ShardMetrics};

pub use keys::KeyHolders;
pub use token::Place;

/// The realm of every challenge.
pub const REALM: &str = "sse-kafka";

/// Verified tokens one shard remembers at most (each is its bytes and its
/// claims, about 1-2 KiB).
pub const MAX_CACHED_TOKENS: usize = 4096;

/// A request the guard let through.
#[derive(Debug, Clone)]
pub struct Admitted {
    pub verified: Rc<Verified>,
    pub place: Place,
}

/// Why a guard refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No token anywhere.
    Missing,
    /// A token that does not verify.
    Token(TokenError),
    /// A good token without every role of the route (they are listed).
    Roles(Vec<String>),
    /// A good token without the claim a substitution needs (its message).
    Claim(String),
    /// The guard's keys come from a URL and none were fetched yet.
    Unavailable,
    /// The token names a kid the keys lack and a fetch of them is asked
    /// for: the request waits until fetch number `past + 1` is done, then
    /// is checked again. Not a refusal.
    Fetching { guard: usize, past: u64 },
}

impl Denied {
    pub fn status(&self) -> u16 {
        match self {
            Denied::Missing | Denied::Token(_) => 401,
            Denied::Roles(_) | Denied::Claim(_) => 403,
            Denied::Unavailable | Denied::Fetching { .. } => 503,
        }
    }

    /// The `www-authenticate` value (RFC 6750 §3).
    pub fn challenge(&self) -> String {
        match self {
            Denied::Missing => format!("Bearer realm=\"{REALM}\""),
            Denied::Token(e) => format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{}\"",
                e.describe()
            ),
            Denied::Roles(roles) => format!(
                "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{}\"",
                roles.join(" ")
            ),
            Denied::Claim(_) => format!(
                "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", error_description=\"the token lacks a claim this route needs\""
            ),
            Denied::Unavailable | Denied::Fetching { .. } => format!("Bearer realm=\"{REALM}\""),
        }
    }

    /// The body of the answer.
    pub fn message(&self) -> String {
        match self {
            Denied::Missing => {
                "this route needs a token: Authorization: Bearer, or ?access_token=".into()
            }
            Denied::Token(e) => format!("invalid token: {}", e.describe()),
            Denied::Roles(roles) => format!("the token lacks the roles {}", roles.join(", ")),
            Denied::Claim(why) => why.clone(),
            Denied::Unavailable | Denied::Fetching { .. } => {
                "this route's keys are not loaded yet".into()
            }
        }
    }

    pub fn rejection(&self) -> Rejection {
        match self {
            Denied::Missing => Rejection::Missing,
            Denied::Token(e) => Rejection::Token(*e),
            Denied::Roles(_) | Denied::Claim(_) => Rejection::Scope,
            Denied::Unavailable | Denied::Fetching { .. } => Rejection::Unavailable,
        }
    }
}

/// A verified token a shard remembers.
#[derive(Debug)]
struct Remembered {
    verified: Rc<Verified>,
    /// The key generation it was verified against.
    generation: u64,
}

/// One shard's guard: the shared keys and the tokens it verified.
#[derive(Debug)]
pub struct Gate {
    guards: Vec<Guard>,
    keys: Arc<KeyHolders>,
    metrics: Arc<ShardMetrics>,
    /// Per guard: token bytes → what verifying it gave.
    remembered: RefCell<Vec<HashMap<Box<[u8]>, Remembered>>>,
}

impl Gate {
    pub fn new(guards: &[Guard], keys: Arc<KeyHolders>, metrics: Arc<ShardMetrics>) -> Self {
        Self {
            guards: guards.to_vec(),
            keys,
            metrics,
            remembered: RefCell::new(guards.iter().map(|_| HashMap::new()).collect()),
        }
    }

    /// Guard number `guard`, as configured.
    pub fn guard(&self, guard: usize) -> &Guard {
        &self.guards[guard]
    }

    /// Lets the request through guard number `guard` if its token verifies
    /// and holds every one of `roles`. Every refusal is counted. With
    /// `may_wait`, a token whose kid keys from a URL lack is
    /// [`Denied::Fetching`] (the caller waits, then checks again without).
    pub fn check(
        &self,
        guard: usize,
        roles: &[String],
        head: &RequestHead<'_>,
        may_wait: bool,
    ) -> Result<Admitted, Denied> {
        let result = match self.admit(guard, roles, head) {
            Err(Denied::Token(TokenError::UnknownKey)) if may_wait => {
                match self.keys.ask_fetch(guard) {
                    Some(past) => return Err(Denied::Fetching { guard, past }),
                    None => Err(Denied::Token(TokenError::UnknownKey)),
                }
            }
            other => other,
        };
        if let Err(denied) = &result {
            self.count(denied);
        }
        result
    }

    /// The guards' keys.
    pub fn keys(&self) -> &KeyHolders {
        &self.keys
    }

    /// Counts a refusal decided after [`check`](Self::check) (a claim a
    /// substitution needs).
    pub fn count(&self, denied: &Denied) {
        self.metrics.guard_rejected(denied.rejection());
    }

    fn admit(
        &self,
        guard: usize,
        roles: &[String],
        head: &RequestHead<'_>,
    ) -> Result<Admitted, Denied> {
        let config = &self.guards[guard];
        let token = token::find(head, config.cookie.as_deref()).ok_or(Denied::Missing)?;
        let now = jwt::unix_now();
        let verified = self.verified(guard, &token.bytes, now)?;
        let held = jwt::claim_roles(&verified.claims, &config.roles_claim);
        let lacking: Vec<String> = roles
            .iter()
            .filter(|r| !held.contains(&r.as_str()))
            .cloned()
            .collect();
        if !lacking.is_empty() {
            return Err(Denied::Roles(lacking));
        }
        Ok(Admitted {
            verified,
            place: token.place,
        })
    }

    /// The token verified: remembered, or checked against the keys now.
    fn verified(&self, guard: usize, token: &[u8], now: u64) -> Result<Rc<Verified>, Denied> {
        let config = &self.guards[guard];
        let current = self.keys.current(guard).ok_or(Denied::Unavailable)?;
        let leeway = config.leeway.as_secs();
        let mut remembered = self.remembered.borrow_mut();
        let known = &mut remembered[guard];
        if let Some(r) = known.get(token) {
            if r.generation == current.generation {
                if jwt::is_expired(r.verified.expires_at, leeway, now) {
                    known.remove(token);
                    return Err(Denied::Token(TokenError::Expired));
                }
                self.metrics.guard_cache_hits.inc();
                return Ok(Rc::clone(&r.verified));
            }
        }
        let rules = Rules {
            issuers: &config.issuers,
            audiences: &config.audiences,
            leeway,
        };
        self.metrics.guard_signature_checks.inc();
        let verified = Rc::new(jwt::verify(token, &current.keys, &rules).map_err(Denied::Token)?);
        let total: usize = remembered.iter().map(HashMap::len).sum();
        if total >= MAX_CACHED_TOKENS {
            // Full: the expired go first; if none had, all go (the cache
            // only saves work, and a bound matters more than its hits).
            for (map, g) in remembered.iter_mut().zip(&self.guards) {
                let leeway = g.leeway.as_secs();
                map.retain(|_, r| !jwt::is_expired(r.verified.expires_at, leeway, now));
            }
            if remembered.iter().map(HashMap::len).sum::<usize>() >= MAX_CACHED_TOKENS {
                remembered.iter_mut().for_each(HashMap::clear);
            }
        }
        remembered[guard].insert(
            token.into(),
            Remembered {
                verified: Rc::clone(&verified),
                generation: current.generation,
            },
        );
        Ok(verified)
    }
}
