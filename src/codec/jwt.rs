//! JSON Web Tokens (RFC 7519) checked against a guard's keys: a pure
//! function of the token's bytes, the key set and the clock.
//!
//! Signatures are checked by the `jsonwebtoken` crate (its pure-Rust
//! backend); what this file adds are the rules a guard promises on top of
//! it, which are easy to get wrong when left to a library's defaults:
//!
//! - `alg: none` never verifies (the crate does not even parse it), and an
//!   HMAC token never verifies against a public key: the algorithm must fit
//!   the key — equal the key's own `alg` when the JWK names one, else be of
//!   the key type's family (RSA: RS*/PS*; an EC key: its curve's ES*; OKP:
//!   EdDSA). HMAC keys come only from a guard's `secret`, never from a JWKS.
//! - With more than one key, the token's `kid` picks one; a token without
//!   `kid` verifies only against a set of one key.
//! - `exp` is required; `nbf` is enforced when present; `iss` and `aud`,
//!   when the guard names them, are required too and must match one name
//!   (the crate alone lets a token without `iss` pass an issuer check).
//!   All within the guard's leeway.

use std::borrow::Cow;
use std::fmt;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde_json::{Map, Value};

/// The longest token looked at. Tokens arrive in a request head, which is
/// bounded already; this keeps a long one from being decoded at all.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Keys a JWKS may hold at most: a set rotates through two or three; an
/// identity provider with many tenants rarely holds more than a few dozen.
pub const MAX_KEYS: usize = 256;

/// One verification key.
struct Key {
    kid: Option<String>,
    /// The algorithms a token signed with this key may name.
    algorithms: Vec<Algorithm>,
    decoding: DecodingKey,
}

/// The keys a guard verifies tokens with: the public keys of a JWK set,
/// or one HMAC secret.
pub struct KeySet {
    keys: Vec<Key>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key material: a secret must not reach a log line.
        f.debug_struct("KeySet")
            .field("kids", &self.kids().collect::<Vec<_>>())
            .finish()
    }
}

/// Why a key set could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a JWK set: {0}")]
    NotJwks(String),
    #[error("the JWK set holds no signing key")]
    Empty,
    #[error("the JWK set holds {count} keys; at most {limit}")]
    TooMany { count: usize, limit: usize },
    #[error("key {index}{}: {why}", kid.as_ref().map(|k| format!(" (kid {k:?})")).unwrap_or_default())]
    Key {
        index: usize,
        kid: Option<String>,
        why: String,
    },
    #[error("two keys have kid {0:?}; a token's kid must pick one")]
    DuplicateKid(String),
    #[error("the secret is empty")]
    EmptySecret,
}

impl KeySet {
    /// The keys of a JWK set (RFC 7517 §5: `{"keys": [...]}`), as a file, a
    /// URL or the config holds it. Keys marked for encryption (`use: enc`)
    /// are left out, as verifiers do; every other key must be a public key
    /// this proxy can verify with, or the set is refused, so that a typo in
    /// a key is found when the set is loaded, not by the first client.
    pub fn from_jwks(json: &[u8]) -> Result<KeySet, KeyError> {
        #[derive(serde::Deserialize)]
        struct Set {
            keys: Vec<Value>,
        }
        let set: Set =
            serde_json::from_slice(json).map_err(|e| KeyError::NotJwks(e.to_string()))?;
        Self::from_jwk_values(set.keys)
    }

    /// [`from_jwks`](Self::from_jwks) of the list of keys alone.
    pub fn from_jwk_values(values: Vec<Value>) -> Result<KeySet, KeyError> {
        if values.len() > MAX_KEYS {
            return Err(KeyError::TooMany {
                count: values.len(),
                limit: MAX_KEYS,
            });
        }
        let mut keys = Vec::with_capacity(values.len());
        for (index, value) in values.into_iter().enumerate() {
            let kid = value.get("kid").and_then(Value::as_str).map(str::to_owned);
            let fail = |why: String| KeyError::Key {
                index,
                kid: kid.clone(),
                why,
            };
            if value.get("d").is_some() {
                return Err(fail(
                    "a private key (it has \"d\"); publish only the public part".into(),
                ));
            }
            let jwk: Jwk = serde_json::from_value(value).map_err(|e| fail(e.to_string()))?;
            if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
                continue;
            }
            let algorithms = key_algorithms(&jwk).map_err(fail)?;
            let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| fail(e.to_string()))?;
            if let Some(kid) = &kid {
                if keys.iter().any(|k: &Key| k.kid.as_ref() == Some(kid)) {
                    return Err(KeyError::DuplicateKid(kid.clone()));
                }
            }
            keys.push(Key {
                kid,
                algorithms,
                decoding,
            });
        }
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(KeySet { keys })
    }

    /// One HMAC secret (HS256, HS384, HS512), its bytes as they are.
    pub fn from_secret(secret: &[u8]) -> Result<KeySet, KeyError> {
        if secret.is_empty() {
            return Err(KeyError::EmptySecret);
        }
        let decoding = DecodingKey::from_secret(secret).map_err(|_| KeyError::EmptySecret)?;
        Ok(KeySet {
            keys: vec![Key {
                kid: None,
                algorithms: vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512],
                decoding,
            }],
        })
    }

    /// The `kid` of every key, in order (`None` for a key without one).
    pub fn kids(&self) -> impl Iterator<Item = Option<&str>> {
        self.keys.iter().map(|k| k.kid.as_deref())
    }

    /// True if the set has a key with this `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The algorithms a JWK verifies: its `alg` alone when it names one (which
/// must fit its type), else every algorithm of its type (an EC key's
/// curve decides its one algorithm).
fn key_algorithms(jwk: &Jwk) -> Result<Vec<Algorithm>, String> {
    let of_type: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa.algorithms().to_vec(),
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            ref other => return Err(format!("curve {other:?} is not supported (P-256, P-384)")),
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
            ref other => return Err(format!("curve {other:?} is not supported (Ed25519)")),
        },
        AlgorithmParameters::OctetKey(_) => {
            return Err(
                "a symmetric key (kty oct); an HMAC secret goes in the guard's `secret`".into(),
            )
        }
        _ => return Err("unsupported key type".into()),
    };
    let Some(named) = jwk.common.key_algorithm else {
        return Ok(of_type);
    };
    let named =
        key_algorithm(named).ok_or_else(|| format!("alg {named} cannot verify a signature"))?;
    if !of_type.contains(&named) {
        return Err(format!("alg {named:?} does not fit the key's type"));
    }
    Ok(vec![named])
}

fn key_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// What a token must say besides a good signature and a time window.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// `iss` must equal one of these; empty: not checked.
    pub issuers: &'a [String],
    /// `aud` (a string or an array) must hold one of these; empty: not
    /// checked, and a token that names an audience is still accepted.
    pub audiences: &'a [String],
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway: u64,
}

/// Why a token was refused: each is a 401 `invalid_token`, and the label
/// of its count in `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenError {
    /// Not three base64url parts of JSON, or longer than [`MAX_TOKEN_BYTES`].
    Malformed,
    /// An algorithm the key does not verify (`none`, HMAC against a
    /// public key, another family than the key's).
    Algorithm,
    /// No key with the token's `kid`, or no `kid` with several keys.
    UnknownKey,
    Signature,
    Expired,
    NotYetValid,
    Issuer,
    Audience,
    /// `exp` (or `iss`, `aud` when checked) missing or not of its type.
    Claims,
}

impl TokenError {
    pub const ALL: [TokenError; 9] = [
        TokenError::Malformed,
        TokenError::Algorithm,
        TokenError::UnknownKey,
        TokenError::Signature,
        TokenError::Expired,
        TokenError::NotYetValid,
        TokenError::Issuer,
        TokenError::Audience,
        TokenError::Claims,
    ];

    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::Algorithm => "algorithm",
            TokenError::UnknownKey => "unknown_key",
            TokenError::Signature => "signature",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::Issuer => "issuer",
            TokenError::Audience => "audience",
            TokenError::Claims => "claims",
        }
    }

    /// The `error_description` of the 401: what is wrong, never why in
    /// more detail than a client may know.
    pub fn describe(self) -> &'static str {
        match self {
            TokenError::Malformed => "the token is not a JWT",
            TokenError::Algorithm => "the token's algorithm does not fit the key",
            TokenError::UnknownKey => "no key for the token's kid",
            TokenError::Signature => "the signature does not verify",
            TokenError::Expired => "the token expired",
            TokenError::NotYetValid => "the token is not valid yet",
            TokenError::Issuer => "the token's issuer is not accepted",
            TokenError::Audience => "the token is not for this audience",
            TokenError::Claims => "the token lacks exp, or a claim has the wrong type",
        }
    }
}

/// The `kid` a token names, if it is a JWT at all: what a key server is
/// asked about when the set does not know it.
pub fn token_kid(token: &[u8]) -> Option<String> {
    if token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    jsonwebtoken::decode_header(token).ok()?.kid
}

/// A token that verified: its claims.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub claims: Map<String, Value>,
    /// `exp`, in seconds since the epoch.
    pub expires_at: u64,
}

/// Verifies `token` (the compact form, `header.payload.signature`) against
/// `keys` and `rules` at the clock's time now.
pub fn verify(token: &[u8], keys: &KeySet, rules: &Rules<'_>) -> Result<Verified, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|e| {
        // `alg: none` and unknown algorithms fail to parse as a header.
        if format!("{e}").contains("unknown variant") {
            TokenError::Algorithm
        } else {
            TokenError::Malformed
        }
    })?;
    // A lone key without a kid (an HMAC secret, a one-key set) is the
    // token's whatever kid it names: there is no other to mean.
    let lone = match keys.keys.as_slice() {
        [only] => Some(only),
        _ => None,
    };
    let key = match &header.kid {
        Some(kid) => keys
            .keys
            .iter()
            .find(|k| k.kid.as_deref() == Some(kid))
            .or(lone.filter(|k| k.kid.is_none())),
        None => lone,
    }
    .ok_or(TokenError::UnknownKey)?;
    if !key.algorithms.contains(&header.alg) {
        return Err(TokenError::Algorithm);
    }
    let mut validation = Validation::new(header.alg);
    validation.leeway = rules.leeway;
    validation.validate_nbf = true;
    let mut required = vec!["exp"];
    if !rules.issuers.is_empty() {
        validation.set_issuer(rules.issuers);
        required.push("iss");
    }
    if rules.audiences.is_empty() {
        validation.validate_aud = false;
    } else {
        validation.set_audience(rules.audiences);
        required.push("aud");
    }
    validation.set_required_spec_claims(&required);
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation)
        .map_err(|e| token_error(e.kind()))?;
    let expires_at = data
        .claims
        .get("exp")
        .and_then(|exp| exp.as_u64().or_else(|| exp.as_f64().map(|f| f as u64)))
        .ok_or(TokenError::Claims)?;
    // jsonwebtoken still takes a token in the second of its `exp`.
    if is_expired(expires_at, rules.leeway, unix_now()) {
        return Err(TokenError::Expired);
    }
    Ok(Verified {
        claims: data.claims,
        expires_at,
    })
}

/// Seconds since the epoch, as `exp` and `nbf` count them.
pub fn unix_now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Whether a token of `exp` is expired at `now` (seconds since the epoch)
/// with `leeway`: RFC 7519 §4.1.4 refuses it *on or after* its `exp`.
pub fn is_expired(exp: u64, leeway: u64, now: u64) -> bool {
    now >= exp.saturating_add(leeway)
}

fn token_error(kind: &jsonwebtoken::errors::ErrorKind) -> TokenError {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::InvalidSignature => TokenError::Signature,
        K::ExpiredSignature => TokenError::Expired,
        K::ImmatureSignature => TokenError::NotYetValid,
        K::InvalidIssuer => TokenError::Issuer,
        K::InvalidAudience => TokenError::Audience,
        K::MissingRequiredClaim(_) | K::InvalidClaimFormat(_) => TokenError::Claims,
        K::InvalidAlgorithm | K::InvalidAlgorithmName | K::UnsupportedAlgorithm => {
            TokenError::Algorithm
        }
        // A key that does not parse as its type's key fails at its first
        // use; to the client it is a token that does not verify.
        K::InvalidEcdsaKey | K::InvalidEddsaKey | K::InvalidRsaKey(_) | K::InvalidKeyFormat => {
            TokenError::Signature
        }
        _ => TokenError::Malformed,
    }
}

/// The claim at a dotted `path` (`sub`, `realm_access.roles`): each dot
/// steps into an object.
pub fn claim<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut value = claims.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// A claim as text for a substitution: a string's own text, a number's or
/// boolean's JSON text; `None` for null, arrays and objects, which have no
/// one text to match on.
pub fn claim_text<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<Cow<'a, str>> {
    match claim(claims, path)? {
        Value::String(s) => Some(Cow::Borrowed(s)),
        v @ (Value::Number(_) | Value::Bool(_)) => Some(Cow::Owned(v.to_string())),
        _ => None,
    }
}

/// The roles a claim holds: a space-separated string (OAuth's `scope`) or
/// an array of strings (`realm_access.roles`); nothing for anything else.
pub fn claim_roles<'a>(claims: &'a Map<String, Value>, path: &str) -> Vec<&'a str> {
    match claim(claims, path) {
        Some(Value::String(s)) => s.split_ascii_whitespace().collect(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
