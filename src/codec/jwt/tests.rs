//! The guard's rules over the crate's checks, with tokens signed here by
//! HMAC and Ed25519 (fixed keys). The RSA, PS and ES algorithms are
//! tested end to end with tokens PyJWT mints (tests/guards.rs).

use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;

use super::*;

/// Ed25519 with the seed 00 01 .. 1f: its PKCS#8 DER and public `x`.
const ED_DER: &str = "302e020100300506032b657004220420000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const ED_X: &str = "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg";
/// A 2048-bit RSA public key (its private half was thrown away).
const RSA_N: &str = "lrdWP-u5znC2OJwA6C465zFepnjF_42MJN_QddwP7OuzO5pvypmXjaYYpUUcy8CMBTja4dy6CaPouGnZv7Xvs_6OF6F5OlOPVublpPXRRAlZcsnIQCIK2q0P8an57UNcbNLaPUl0BXxlSz6BccMPghZwYkZpaEjZ2Jk5VdT08hgKjUJaj5ov3HOAmso_P9FFkFjaVkM75Tn9UG5__oq4JTIO8ws8i8svLnDlKtvL_fA9YxJRUkG2TqL9o-d_r8FizjpLGVz0Mzt56S4DMnI-22xmyYjMtMIajw37cduAEW-6VT70_ElLym2gq5nZ1wzGmtQyVmAus8uG92KPmOljeQ";

const SECRET: &[u8] = b"a secret of enough bytes for HS256!";

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn ed_der() -> Vec<u8> {
    (0..ED_DER.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&ED_DER[i..i + 2], 16).unwrap())
        .collect()
}

fn ed_jwk(kid: &str) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": kid})
}

fn rsa_jwk(kid: &str) -> Value {
    json!({"kty": "RSA", "n": RSA_N, "e": "AQAB", "kid": kid})
}

fn ed_token(kid: Option<&str>, claims: &Value) -> Vec<u8> {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, &EncodingKey::from_ed_der(&ed_der()))
        .unwrap()
        .into_bytes()
}

fn hs_token(alg: Algorithm, secret: &[u8], claims: &Value) -> Vec<u8> {
    encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret).unwrap(),
    )
    .unwrap()
    .into_bytes()
}

fn good_claims() -> Value {
    json!({"sub": "alice", "iss": "https://auth.example.com/", "aud": "sse-kafka", "exp": now() + 300})
}

fn rules<'a>(issuers: &'a [String], audiences: &'a [String]) -> Rules<'a> {
    Rules {
        issuers,
        audiences,
        leeway: 60,
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_token_is_expired_on_or_after_its_exp() {
    assert!(!is_expired(100, 0, 99));
    assert!(is_expired(100, 0, 100));
    assert!(!is_expired(100, 5, 104));
    assert!(is_expired(100, 5, 105));
    assert!(!is_expired(u64::MAX, 5, u64::MAX - 1));
}

#[test]
fn a_good_token_gives_its_claims() {
    let keys = KeySet::from_jwk_values(vec![ed_jwk("k1")]).unwrap();
    let (iss, aud) = (names(&["https://auth.example.com/"]), names(&["sse-kafka"]));
    let claims = good_claims();
    let verified = verify(&ed_token(Some("k1"), &claims), &keys, &rules(&iss, &aud)).unwrap();
    assert_eq!(verified.claims["sub"], "alice");
    assert_eq!(verified.expires_at, claims["exp"].as_u64().unwrap());
    // One key: a token without kid is checked against it.
    assert!(verify(&ed_token(None, &claims), &keys, &rules(&iss, &aud)).is_ok());
    // Another kid than the key's is not it.
    assert_eq!(
        verify(&ed_token(Some("k2"), &claims), &keys, &rules(&iss, &aud)),
        Err(TokenError::UnknownKey)
    );
    // A lone key without a kid takes a token of any kid (a secret has none).
    let mut unnamed = ed_jwk("k1");
    unnamed.as_object_mut().unwrap().remove("kid");
    let lone = KeySet::from_jwk_values(vec![unnamed]).unwrap();
    assert!(verify(&ed_token(Some("k2"), &claims), &lone, &rules(&iss, &aud)).is_ok());
}

#[test]
fn each_broken_rule_has_its_reason() {
    let keys = KeySet::from_jwk_values(vec![ed_jwk("k1")]).unwrap();
    let (iss, aud) = (
        names(&["https://auth.example.com/"]),
        names(&["sse-kafka", "other"]),
    );
    let with = |patch: Value| {
        let mut claims = good_claims();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        verify(&ed_token(Some("k1"), &claims), &keys, &rules(&iss, &aud))
    };
    let cases = [
        (
            "expired past leeway",
            json!({"exp": now() - 61}),
            Err(TokenError::Expired),
        ),
        // The leeway is 60 s: at exp + 60 the token is expired (RFC 7519
        // refuses it on or after its exp), a second before it is not.
        (
            "expired at exp plus leeway",
            json!({"exp": now() - 60}),
            Err(TokenError::Expired),
        ),
        ("expired within leeway", json!({"exp": now() - 30}), Ok(())),
        (
            "nbf ahead past leeway",
            json!({"nbf": now() + 120}),
            Err(TokenError::NotYetValid),
        ),
        ("nbf within leeway", json!({"nbf": now() + 30}), Ok(())),
        ("no exp", json!({"exp": null}), Err(TokenError::Claims)),
        (
            "exp not a number",
            json!({"exp": "tomorrow"}),
            Err(TokenError::Claims),
        ),
        (
            "other issuer",
            json!({"iss": "https://evil.example.com/"}),
            Err(TokenError::Issuer),
        ),
        ("no issuer", json!({"iss": null}), Err(TokenError::Claims)),
        (
            "other audience",
            json!({"aud": "billing"}),
            Err(TokenError::Audience),
        ),
        (
            "audience array without ours",
            json!({"aud": ["a", "b"]}),
            Err(TokenError::Audience),
        ),
        (
            "audience array with ours",
            json!({"aud": ["a", "other"]}),
            Ok(()),
        ),
        ("no audience", json!({"aud": null}), Err(TokenError::Claims)),
    ];
    for (what, patch, want) in cases {
        assert_eq!(with(patch).map(|_| ()), want, "{what}");
    }
}

#[test]
fn unchecked_issuer_and_audience_accept_any() {
    let keys = KeySet::from_jwk_values(vec![ed_jwk("k1")]).unwrap();
    let token = ed_token(Some("k1"), &json!({"exp": now() + 60, "aud": "anyone"}));
    assert!(verify(&token, &keys, &rules(&[], &[])).is_ok());
}

#[test]
fn the_algorithm_must_fit_the_key() {
    let rsa = KeySet::from_jwk_values(vec![rsa_jwk("r1")]).unwrap();
    let claims = json!({"exp": now() + 60});
    // HS256 signed with the RSA key's public modulus as its secret: the
    // classic confusion. Refused before any signature is computed.
    let confused = hs_token(Algorithm::HS256, RSA_N.as_bytes(), &claims);
    assert_eq!(
        verify(&confused, &rsa, &rules(&[], &[])),
        Err(TokenError::Algorithm)
    );
    // An Ed25519 token against an RSA set: its kid is unknown; without a
    // kid (one key), its algorithm does not fit.
    assert_eq!(
        verify(&ed_token(Some("k1"), &claims), &rsa, &rules(&[], &[])),
        Err(TokenError::UnknownKey)
    );
    assert_eq!(
        verify(&ed_token(None, &claims), &rsa, &rules(&[], &[])),
        Err(TokenError::Algorithm)
    );
    // A JWK that names its alg takes only that one.
    let mut rs256_only = rsa_jwk("r1");
    rs256_only["alg"] = json!("RS256");
    let keys = KeySet::from_jwk_values(vec![rs256_only]).unwrap();
    assert_eq!(keys.keys[0].algorithms, [Algorithm::RS256]);
    let mut ps = Header::new(Algorithm::PS256);
    ps.kid = Some("r1".into());
    // The signature is garbage, but the algorithm is refused first.
    let fake = format!(
        "{}.{}.AAAA",
        base64_url(&serde_json::to_vec(&ps).unwrap()),
        base64_url(b"{\"exp\": 99999999999}")
    );
    assert_eq!(
        verify(fake.as_bytes(), &keys, &rules(&[], &[])),
        Err(TokenError::Algorithm)
    );
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn alg_none_never_verifies() {
    let keys = KeySet::from_jwk_values(vec![ed_jwk("k1")]).unwrap();
    for header in [
        r#"{"alg":"none"}"#,
        r#"{"alg":"none","kid":"k1"}"#,
        r#"{"alg":"NONE"}"#,
    ] {
        let token = format!(
            "{}.{}.",
            base64_url(header.as_bytes()),
            base64_url(b"{\"exp\": 99999999999}")
        );
        assert_eq!(
            verify(token.as_bytes(), &keys, &rules(&[], &[])),
            Err(TokenError::Algorithm),
            "{header}"
        );
    }
}

#[test]
fn kid_picks_the_key_among_several() {
    let mut other = rsa_jwk("r1");
    other["use"] = json!("sig");
    let keys = KeySet::from_jwk_values(vec![other, ed_jwk("k1")]).unwrap();
    let claims = json!({"exp": now() + 60});
    assert!(verify(&ed_token(Some("k1"), &claims), &keys, &rules(&[], &[])).is_ok());
    assert_eq!(
        verify(&ed_token(Some("k9"), &claims), &keys, &rules(&[], &[])),
        Err(TokenError::UnknownKey)
    );
    assert_eq!(
        verify(&ed_token(None, &claims), &keys, &rules(&[], &[])),
        Err(TokenError::UnknownKey)
    );
    assert!(keys.has_kid("r1") && !keys.has_kid("k9"));
    assert_eq!(
        token_kid(&ed_token(Some("k9"), &claims)).as_deref(),
        Some("k9")
    );
}

#[test]
fn a_bad_signature_or_garbage_is_refused() {
    let keys = KeySet::from_jwk_values(vec![ed_jwk("k1")]).unwrap();
    let token = ed_token(Some("k1"), &json!({"exp": now() + 60}));
    let mut tampered = token.clone();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        verify(&tampered, &keys, &rules(&[], &[])),
        Err(TokenError::Signature)
    );
    for garbage in [
        &b""[..],
        b"abc",
        b"a.b.c",
        b"...",
        &[b'x'; MAX_TOKEN_BYTES + 1],
    ] {
        assert_eq!(
            verify(garbage, &keys, &rules(&[], &[])),
            Err(TokenError::Malformed)
        );
    }
}

#[test]
fn hmac_only_from_a_secret() {
    let keys = KeySet::from_secret(SECRET).unwrap();
    let claims = json!({"exp": now() + 60});
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        assert!(verify(&hs_token(alg, SECRET, &claims), &keys, &rules(&[], &[])).is_ok());
    }
    assert_eq!(
        verify(
            &hs_token(Algorithm::HS256, b"another secret", &claims),
            &keys,
            &rules(&[], &[])
        ),
        Err(TokenError::Signature)
    );
    assert_eq!(
        verify(&ed_token(None, &claims), &keys, &rules(&[], &[])),
        Err(TokenError::Algorithm)
    );
    assert_eq!(KeySet::from_secret(b"").unwrap_err(), KeyError::EmptySecret);
    let oct = json!({"kty": "oct", "k": "c2VjcmV0", "kid": "h"});
    assert!(matches!(
        KeySet::from_jwk_values(vec![oct]).unwrap_err(),
        KeyError::Key { index: 0, why, .. } if why.contains("secret")
    ));
}

#[test]
fn jwks_are_refused_with_the_key_at_fault() {
    let set = |keys: Value| KeySet::from_jwks(json!({"keys": keys}).to_string().as_bytes());
    assert!(matches!(
        KeySet::from_jwks(b"[]"),
        Err(KeyError::NotJwks(_))
    ));
    assert_eq!(set(json!([])).unwrap_err(), KeyError::Empty);
    // Encryption keys are left out: a set of only those has no signing key.
    let mut enc = rsa_jwk("e1");
    enc["use"] = json!("enc");
    assert_eq!(set(json!([enc.clone()])).unwrap_err(), KeyError::Empty);
    assert_eq!(set(json!([enc, ed_jwk("k1")])).unwrap().len(), 1);
    let mut private = ed_jwk("k1");
    private["d"] = json!("AAAA");
    assert!(
        matches!(set(json!([private])).unwrap_err(), KeyError::Key { index: 0, why, .. } if why.contains("private"))
    );
    let mut wrong_alg = ed_jwk("k1");
    wrong_alg["alg"] = json!("RS256");
    assert!(matches!(
        set(json!([ed_jwk("k0"), wrong_alg])).unwrap_err(),
        KeyError::Key { index: 1, .. }
    ));
    assert_eq!(
        set(json!([ed_jwk("k1"), ed_jwk("k1")])).unwrap_err(),
        KeyError::DuplicateKid("k1".into())
    );
    let p521 = json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"});
    assert!(
        matches!(set(json!([p521])).unwrap_err(), KeyError::Key { why, .. } if why.contains("not supported"))
    );
    let many: Vec<Value> = (0..=MAX_KEYS).map(|i| ed_jwk(&format!("k{i}"))).collect();
    assert!(matches!(
        set(json!(many)).unwrap_err(),
        KeyError::TooMany { .. }
    ));
    // The Debug form names the kids and never holds key material.
    let shown = format!("{:?}", KeySet::from_secret(SECRET).unwrap());
    assert!(!shown.contains("secret of"), "{shown}");
}

#[test]
fn claims_by_path_as_text_and_roles() {
    let claims = json!({
        "sub": "alice", "n": 42, "admin": true, "none": null,
        "scope": "orders:read  items:read",
        "realm_access": {"roles": ["a", 5, "b"], "deep": {"x": "y"}},
    });
    let claims = claims.as_object().unwrap();
    assert_eq!(claim_text(claims, "sub").as_deref(), Some("alice"));
    assert_eq!(claim_text(claims, "n").as_deref(), Some("42"));
    assert_eq!(claim_text(claims, "admin").as_deref(), Some("true"));
    assert_eq!(
        claim_text(claims, "realm_access.deep.x").as_deref(),
        Some("y")
    );
    for absent in [
        "none",
        "realm_access",
        "realm_access.roles",
        "nope",
        "sub.x",
        "",
    ] {
        assert_eq!(claim_text(claims, absent), None, "{absent}");
    }
    assert_eq!(claim_roles(claims, "scope"), ["orders:read", "items:read"]);
    assert_eq!(claim_roles(claims, "realm_access.roles"), ["a", "b"]);
    assert!(claim_roles(claims, "n").is_empty());
}
