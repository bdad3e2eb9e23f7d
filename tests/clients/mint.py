#!/usr/bin/env python3
"""Makes the guard tests' keys and tokens with PyJWT and `cryptography`.

Usage: mint.py keys DIR
       mint.py token DIR < specs

`keys` writes fresh keys into DIR (which must exist):

    rsa1.pem rsa2.pem   RSA 2048 private keys (PKCS#8 PEM)
    ec1.pem             P-256 private key
    ec2.pem             P-384 private key
    ed1.pem             Ed25519 private key
    rsa1.pub.pem        rsa1's public key (SubjectPublicKeyInfo PEM)
    hs.key              32 random bytes, raw: an HMAC secret
    jwks.json           public JWK set: rsa1 (RS256), ec1 (ES256),
                        ed1 (EdDSA), ec2 (ES384)
    jwks-rsa2.json      rsa1 and rsa2 (RS256 both): the set after a rotation
    jwks-rsa-noalg.json rsa1 without `alg`, so every RSA algorithm fits it

`token` reads one JSON object a line on stdin and prints one token a line,
in the same order:

    {"key": "rsa1", "alg": "RS256", "claims": {"sub": "alice", "exp": "now+3600"},
     "headers": {"typ": "at+jwt"}, "kid": "rsa1", "corrupt": false}

- key: rsa1, rsa2, ec1, ec2, ed1 (signed with DIR/<key>.pem), hs (HMAC
  with DIR/hs.key), none (unsigned, `alg: none`, built by hand), or
  hs-with-rsa1-pub (HMAC, by hand, with the bytes of rsa1.pub.pem as the
  secret: the key-confusion attack, which PyJWT refuses to make).
- alg: the header's `alg` (for `none`, ignored; for hs-with-rsa1-pub,
  HS256 when absent).
- claims: the payload; a string value "now", "now+N" or "now-N" (at any
  depth) becomes the Unix time now plus or minus N seconds.
- headers: extra header fields (optional).
- kid: the header's `kid`; absent means the key's name (rsa1 for
  hs-with-rsa1-pub), null means no `kid`.
- corrupt: true changes the signature's first character, so the signature
  no longer verifies (the first character carries no padding bits, so the
  change always reaches the decoded bytes).

The tests run it with "$SSE_KAFKA_PYTHON" (examples/test.sh installs
PyJWT[crypto] there). It shares no code with the server's verifier: that
is the point.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

SIGNING_KEYS = ("rsa1", "rsa2", "ec1", "ec2", "ed1")
HMAC_DIGESTS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
RELATIVE_TIME = re.compile(r"^now(?:([+-])(\d+))?$")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_uint(n, length=None):
    """An unsigned integer as JWK writes it: big-endian bytes, base64url."""
    if length is None:
        length = max(1, (n.bit_length() + 7) // 8)
    return b64url(n.to_bytes(length, "big"))


def public_jwk(private_key, kid, alg):
    """The public JWK of a private key; no `alg` member when alg is None."""
    public = private_key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        jwk = {"kty": "RSA", "n": b64url_uint(numbers.n), "e": b64url_uint(numbers.e)}
    elif isinstance(public, ec.EllipticCurvePublicKey):
        crv, size = {"secp256r1": ("P-256", 32), "secp384r1": ("P-384", 48)}[public.curve.name]
        numbers = public.public_numbers()
        jwk = {
            "kty": "EC",
            "crv": crv,
            "x": b64url_uint(numbers.x, size),
            "y": b64url_uint(numbers.y, size),
        }
    elif isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
    else:
        raise ValueError(f"no JWK form for {type(public).__name__}")
    jwk["kid"] = kid
    jwk["use"] = "sig"
    if alg is not None:
        jwk["alg"] = alg
    return jwk


def write(dir_, name, data):
    with open(os.path.join(dir_, name), "wb") as f:
        f.write(data)


def write_json(dir_, name, value):
    write(dir_, name, (json.dumps(value, indent=2) + "\n").encode())


def make_keys(dir_):
    private = {
        "rsa1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "rsa2": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec1": ec.generate_private_key(ec.SECP256R1()),
        "ec2": ec.generate_private_key(ec.SECP384R1()),
        "ed1": ed25519.Ed25519PrivateKey.generate(),
    }
    for name, key in private.items():
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write(dir_, f"{name}.pem", pem)
    write(
        dir_,
        "rsa1.pub.pem",
        private["rsa1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    )
    write(dir_, "hs.key", os.urandom(32))
    rsa1 = public_jwk(private["rsa1"], "rsa1", "RS256")
    write_json(
        dir_,
        "jwks.json",
        {
            "keys": [
                rsa1,
                public_jwk(private["ec1"], "ec1", "ES256"),
                public_jwk(private["ed1"], "ed1", "EdDSA"),
                public_jwk(private["ec2"], "ec2", "ES384"),
            ]
        },
    )
    write_json(
        dir_,
        "jwks-rsa2.json",
        {"keys": [rsa1, public_jwk(private["rsa2"], "rsa2", "RS256")]},
    )
    write_json(dir_, "jwks-rsa-noalg.json", {"keys": [public_jwk(private["rsa1"], "rsa1", None)]})


def resolve_times(value, now):
    """Every "now", "now+N", "now-N" string in value, as a Unix time."""
    if isinstance(value, dict):
        return {k: resolve_times(v, now) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_times(v, now) for v in value]
    if isinstance(value, str):
        m = RELATIVE_TIME.match(value)
        if m:
            sign, n = m.groups()
            offset = int(n) if n else 0
            return now - offset if sign == "-" else now + offset
    return value


def compact_json(value):
    return json.dumps(value, separators=(",", ":")).encode()


def by_hand(header, claims, secret):
    """A compact JWS made here: HMAC with `secret`, or none without one."""
    signing_input = f"{b64url(compact_json(header))}.{b64url(compact_json(claims))}"
    if secret is None:
        return signing_input + "."
    digest = HMAC_DIGESTS[header["alg"]]
    mac = hmac.new(secret, signing_input.encode("ascii"), digest).digest()
    return f"{signing_input}.{b64url(mac)}"


def read(dir_, name):
    with open(os.path.join(dir_, name), "rb") as f:
        return f.read()


def corrupted(token):
    head, payload, signature = token.split(".")
    if not signature:
        raise ValueError("an unsigned token has no signature to corrupt")
    flipped = "B" if signature[0] == "A" else "A"
    return f"{head}.{payload}.{flipped}{signature[1:]}"


def mint(dir_, spec, now):
    key = spec["key"]
    claims = resolve_times(spec.get("claims", {}), now)
    extra = spec.get("headers") or {}
    default_kid = "rsa1" if key == "hs-with-rsa1-pub" else key
    kid = spec.get("kid", default_kid)
    if key in ("none", "hs-with-rsa1-pub"):
        alg = "none" if key == "none" else spec.get("alg", "HS256")
        header = {"alg": alg, "typ": "JWT"}
        if kid is not None:
            header["kid"] = kid
        header.update(extra)
        secret = None if key == "none" else read(dir_, "rsa1.pub.pem")
        token = by_hand(header, claims, secret)
    else:
        if key in SIGNING_KEYS:
            signing_key = serialization.load_pem_private_key(read(dir_, f"{key}.pem"), None)
        elif key == "hs":
            signing_key = read(dir_, "hs.key")
        else:
            raise ValueError(f"unknown key {key!r}")
        headers = dict(extra)
        if kid is not None:
            headers["kid"] = kid
        token = jwt.encode(claims, signing_key, algorithm=spec["alg"], headers=headers)
    if spec.get("corrupt"):
        token = corrupted(token)
    return token


def main(argv):
    if len(argv) != 3 or argv[1] not in ("keys", "token"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    dir_ = argv[2]
    if argv[1] == "keys":
        make_keys(dir_)
        return 0
    now = int(time.time())
    for n, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            print(mint(dir_, json.loads(line), now), flush=True)
        except Exception as e:  # noqa: BLE001 - reported with the line it failed on
            print(f"mint: line {n}: {e!r}: {line.strip()}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
