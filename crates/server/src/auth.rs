//! JWT authentication as cc-metric-store does it (COMPAT.md §1.2): `Authorization: Bearer`
//! tokens signed with EdDSA (Ed25519), checked against one configured public key; `exp`, `nbf`
//! and `iat` are validated when present, exactly as golang-jwt v4's `MapClaims` does (see
//! [`time_claim`]); other claims are ignored unless `main.jwt-roles` is set (see
//! [`JwtRoles`]).
//!
//! # Why `ed25519-dalek` and not `jsonwebtoken`
//!
//! Only verification is needed, so this is the JWS compact form verified directly with
//! `ed25519-dalek` (the Ed25519 implementation `jsonwebtoken`'s RustCrypto backend itself
//! uses). `jsonwebtoken`'s `Validation` cannot express golang-jwt v4's claim rules, which
//! cc-metric-store's clients rely on: it treats an `exp`/`nbf` it cannot parse (`"never"`,
//! `null`) as absent where v4 refuses the token; `exp: 0` is a real (past) expiry where v4
//! reads it as unset; a fractional second is rounded where v4 truncates; a token is valid
//! up to and including its `exp` second where v4 wants strictly before it; `iat` is not
//! checked; claims must decode to an object (v4 accepts `null`); and the clock is its own, so
//! the cache cannot re-check an expiry at the caller's time. Turning its checks off and
//! keeping ours would leave it only the signature, which is this crate's call anyway.
//!
//! # Signatures
//!
//! [`VerifyingKey::verify_strict`]: the signature's `s` must be canonical (`s < ℓ`, so
//! `s + ℓ` is no second valid signature of the same token), its `R` must not be of small
//! order, and a small-order public key (against which anyone can forge a signature for any
//! claims) is refused when the server starts ([`Authenticator::new`]).
//!
//! # Where secrets are compared
//!
//! Tokens are secrets, and the token cache is the only place one is compared with another:
//! it is keyed by the SHA-256 digest of the token (so the raw token is never kept), and
//! digests are compared with `subtle`'s constant-time equality ([`TokenDigest`]), so the
//! time a lookup takes says nothing about how much of a cached token a guess matched. The
//! signature check compares the recomputed `R` with the signature's `R`, both public. No other
//! secret is compared anywhere in Strata: NATS and remote-write credentials are sent, never
//! checked.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, VerifyingKey};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use subtle::ConstantTimeEq;

/// Most validated tokens remembered; beyond it expired ones are evicted, then all.
const CACHE_TOKENS_MAX: usize = 1024;

/// Longest token accepted; a bound on work done for garbage headers.
const TOKEN_BYTES_MAX: usize = 8 * 1024;

/// The class of a route for `main.jwt-roles`: what a token needs to call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `/api/query`, `/api/debug`, `/api/healthcheck`, `/api/remote-write`.
    Read,
    /// `/api/write`, `/api/free` and the InfluxDB write routes.
    Write,
}

impl Access {
    /// The configuration key that lists the roles this class needs.
    pub fn config_key(self) -> &'static str {
        match self {
            Self::Read => "main.jwt-roles.read",
            Self::Write => "main.jwt-roles.write",
        }
    }
}

/// `main.jwt-roles` (Strata's): a token must carry one of `read` in its `roles` claim to
/// call a read route and one of `write` to call a write route ([`Access`]). Without it any
/// valid token may do anything, as in cc-metric-store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtRoles {
    pub read: Vec<String>,
    pub write: Vec<String>,
}

impl JwtRoles {
    /// What a token with `claims` may do: `roles` must be an array; its non-string
    /// entries count for nothing.
    fn grants(&self, claims: &serde_json::Map<String, serde_json::Value>) -> Grants {
        let roles: Vec<&str> = claims
            .get("roles")
            .and_then(serde_json::Value::as_array)
            .map(|roles| roles.iter().filter_map(serde_json::Value::as_str).collect())
            .unwrap_or_default();
        let any_of = |needed: &[String]| needed.iter().any(|role| roles.contains(&role.as_str()));
        Grants {
            read: any_of(&self.read),
            write: any_of(&self.write),
        }
    }
}

/// What a verified token may do, decided once and kept in the cache with its expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Grants {
    read: bool,
    write: bool,
}

impl Grants {
    const ALL: Self = Self {
        read: true,
        write: true,
    };

    fn allow(self, access: Access) -> bool {
        match access {
            Access::Read => self.read,
            Access::Write => self.write,
        }
    }
}

/// A validated token as the cache keeps it.
#[derive(Debug, Clone, Copy)]
struct Verified {
    /// The `exp` claim, re-checked on every use.
    exp: Option<i64>,
    grants: Grants,
}

/// The cache's key: the SHA-256 digest of a token, compared in constant time.
#[derive(Debug, Clone, Copy, Eq)]
struct TokenDigest([u8; 32]);

impl TokenDigest {
    fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }
}

impl PartialEq for TokenDigest {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::hash::Hash for TokenDigest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

/// Why a token was refused. The text is what the client sees in the 401 (or 403) body:
/// golang-jwt v4's generic texts, never anything of the token, the key or the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    MissingBearer,
    Malformed,
    UnsupportedAlgorithm,
    BadSignature,
    Expired,
    NotYetValid,
    IssuedInFuture,
    /// A valid token without a role `main.jwt-roles` asks for this class of route: 403.
    MissingRole(Access),
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            // cc-metric-store's exact body for a missing header.
            Self::MissingBearer => "Use JWT Authentication",
            Self::Malformed => "token is malformed",
            Self::UnsupportedAlgorithm => "only Ed25519/EdDSA supported",
            Self::BadSignature => "signature is invalid",
            Self::Expired => "token is expired",
            Self::NotYetValid => "token is not valid yet",
            Self::IssuedInFuture => "token used before issued",
            Self::MissingRole(access) => {
                return write!(
                    f,
                    "the token has none of the roles in {}",
                    access.config_key()
                );
            }
        })
    }
}

/// Verifies bearer tokens against one Ed25519 public key.
#[derive(Debug)]
pub struct Authenticator {
    key: VerifyingKey,
    /// `main.jwt-roles`; `None` = every valid token may do anything.
    roles: Option<JwtRoles>,
    /// Validated tokens, by digest.
    cache: Mutex<HashMap<TokenDigest, Verified>>,
}

impl Authenticator {
    /// `None` when the 32 bytes are no [usable key](usable_public_key).
    pub fn new(public_key: &[u8; 32], roles: Option<JwtRoles>) -> Option<Self> {
        let key = VerifyingKey::from_bytes(public_key)
            .ok()
            .filter(|key| !key.is_weak())?;
        Some(Self {
            key,
            roles,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Checks an `Authorization` header value for a route of class `access` at time `now_s`.
    pub fn check(&self, header: Option<&str>, access: Access, now_s: i64) -> Result<(), AuthError> {
        let token = header
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or(AuthError::MissingBearer)?;
        self.check_token(token, access, now_s)
    }

    /// Checks a token however it arrived (the InfluxDB endpoints take it from several
    /// places, see [`scheme_token`] and [`basic_password`]): same validation, same cache.
    /// An invalid token is a 401 error whatever the route; a valid one without the route's
    /// role is [`AuthError::MissingRole`].
    pub fn check_token(&self, token: &str, access: Access, now_s: i64) -> Result<(), AuthError> {
        let token = token.trim();
        if token.len() > TOKEN_BYTES_MAX {
            return Err(AuthError::Malformed);
        }
        let digest = TokenDigest::of(token);
        let cached = self.cache.lock().get(&digest).copied();
        let verified = match cached {
            Some(verified) if verified.exp.is_some_and(|exp| is_expired(exp, now_s)) => {
                return Err(AuthError::Expired);
            }
            Some(verified) => verified,
            None => {
                let verified = self.verify(token, now_s)?;
                self.remember(digest, verified, now_s);
                verified
            }
        };
        if verified.grants.allow(access) {
            Ok(())
        } else {
            Err(AuthError::MissingRole(access))
        }
    }

    fn remember(&self, digest: TokenDigest, verified: Verified, now_s: i64) {
        let mut cache = self.cache.lock();
        if cache.len() >= CACHE_TOKENS_MAX {
            cache.retain(|_, cached| cached.exp.is_none_or(|exp| !is_expired(exp, now_s)));
            if cache.len() >= CACHE_TOKENS_MAX {
                cache.clear();
            }
        }
        cache.insert(digest, verified);
    }

    /// Verifies signature and time claims; returns the `exp` claim and what the token may do.
    fn verify(&self, token: &str, now_s: i64) -> Result<Verified, AuthError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        let header: serde_json::Value = decode_json(header)?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("EdDSA") {
            return Err(AuthError::UnsupportedAlgorithm);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| AuthError::Malformed)?;
        let signature = Signature::from_slice(&signature).map_err(|_| AuthError::Malformed)?;
        let signed = &token[..header_and_payload_len(token)];
        self.key
            .verify_strict(signed.as_bytes(), &signature)
            .map_err(|_| AuthError::BadSignature)?;
        let claims = match decode_json(payload)? {
            serde_json::Value::Object(claims) => claims,
            // Go decodes `null` into MapClaims without an error: no claims.
            serde_json::Value::Null => serde_json::Map::new(),
            _ => return Err(AuthError::Malformed),
        };
        // golang-jwt v4 checks exp, iat, nbf in this order and reports the last failure.
        let reached = |name| time_claim(&claims, name).is_ok_and(|t| t.is_none_or(|t| now_s >= t));
        if !reached("nbf") {
            return Err(AuthError::NotYetValid);
        }
        if !reached("iat") {
            return Err(AuthError::IssuedInFuture);
        }
        let exp = time_claim(&claims, "exp").map_err(|()| AuthError::Expired)?;
        if exp.is_some_and(|exp| is_expired(exp, now_s)) {
            return Err(AuthError::Expired);
        }
        let grants = self
            .roles
            .as_ref()
            .map_or(Grants::ALL, |roles| roles.grants(&claims));
        Ok(Verified { exp, grants })
    }
}

/// Whether 32 bytes are an Ed25519 public key tokens can be checked against: a valid point
/// and not one of small order (a weak key, for which anyone can make a signature verify).
pub fn usable_public_key(public_key: &[u8; 32]) -> bool {
    VerifyingKey::from_bytes(public_key).is_ok_and(|key| !key.is_weak())
}

/// The credentials of an `Authorization` header value `<scheme> <credentials>` when its
/// scheme is one of `schemes`, compared case-insensitively (RFC 9110 §11.1).
pub fn scheme_token<'a>(header: &'a str, schemes: &[&str]) -> Option<&'a str> {
    let (scheme, credentials) = header.trim_start().split_once(' ')?;
    schemes
        .iter()
        .any(|s| s.eq_ignore_ascii_case(scheme))
        .then(|| credentials.trim())
}

/// The password of an `Authorization: Basic base64(user:password)` header value (RFC 7617),
/// `None` when the scheme differs, the base64 is invalid or there is no colon. InfluxDB 1.x
/// clients send their credentials this way; Strata takes the password as the token.
pub fn basic_password(header: &str) -> Option<String> {
    let encoded = scheme_token(header, &["Basic"])?;
    let mut decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    // The user name ends at the first colon; the password may contain more.
    let colon = decoded.iter().position(|b| *b == b':')?;
    decoded.drain(..=colon);
    String::from_utf8(decoded).ok()
}

/// golang-jwt v4: a token is valid strictly before its `exp` second (`now.Before(exp)`).
fn is_expired(exp: i64, now_s: i64) -> bool {
    now_s >= exp
}

/// A time claim as golang-jwt v4's `MapClaims` reads it: absent or `0` is unset; a number is
/// that second (a fraction is cut off, as `NumericDate` truncates to seconds); any other JSON
/// value (`"never"`, `null`, `true`, …) fails the claim. A number outside the `i64` range
/// fails it too (Go's float-to-int conversion is platform-dependent there).
fn time_claim(
    claims: &serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<Option<i64>, ()> {
    match claims.get(name) {
        None => Ok(None),
        Some(serde_json::Value::Number(number)) => {
            let value = number.as_f64().ok_or(())?;
            // v4 tests the float for 0 before cutting the fraction: 0.5 is the epoch.
            let seconds = value.floor();
            if value == 0.0 {
                Ok(None)
            } else if (i64::MIN as f64..i64::MAX as f64).contains(&seconds) {
                Ok(Some(seconds as i64))
            } else {
                Err(())
            }
        }
        Some(_) => Err(()),
    }
}

fn decode_json(part: &str) -> Result<serde_json::Value, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)
}

/// Length of `header.payload`, the signed part of a compact JWS.
fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(token.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use ed25519_dalek::{Signer, SigningKey, Verifier};

    /// The test key pair and token from cc-metric-store's docs (COMPAT.md §1.2).
    const DOCS_PUBLIC_KEY: &str = "kzfYrYy+TzpanWZHJ5qSdMj5uKUWgq74BWhQG6copP0=";
    const DOCS_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSJ9.eyJ1c2VyIjoiYWRtaW4iLCJyb2xlcyI6WyJST0xFX0FETUlOIiwiUk9MRV9BTkFMWVNUIiwiUk9MRV9VU0VSIl19.d-3_3FZTsadPjDEdsWrrQ7nS0edMAR4zjl-eK7rJU3HziNBfI9PDHDIpJVHTNN5E5SlLGLFXctWyKAkwhXL-Dw";

    fn docs_key() -> Authenticator {
        let bytes: [u8; 32] = STANDARD
            .decode(DOCS_PUBLIC_KEY)
            .unwrap()
            .try_into()
            .unwrap();
        Authenticator::new(&bytes, None).unwrap()
    }

    fn sign(key: &SigningKey, header: &str, claims: &str) -> String {
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let signature = key.sign(signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }

    fn own_key() -> (SigningKey, Authenticator) {
        let signing = SigningKey::from_bytes(&[7u8; 32]);
        let auth = Authenticator::new(signing.verifying_key().as_bytes(), None).unwrap();
        (signing, auth)
    }

    const EDDSA: &str = r#"{"alg":"EdDSA","typ":"JWT"}"#;

    #[test]
    fn accepts_the_documented_test_token() {
        let auth = docs_key();
        let header = format!("Bearer {DOCS_TOKEN}");
        assert_eq!(
            auth.check(Some(&header), Access::Write, 1_800_000_000),
            Ok(())
        );
        // Served from the cache the second time.
        assert_eq!(
            auth.check(Some(&header), Access::Write, 1_800_000_000),
            Ok(())
        );
    }

    #[test]
    fn refuses_missing_or_non_bearer_headers() {
        let auth = docs_key();
        assert_eq!(
            auth.check(None, Access::Write, 0),
            Err(AuthError::MissingBearer)
        );
        assert_eq!(
            auth.check(Some("Basic abc"), Access::Write, 0),
            Err(AuthError::MissingBearer)
        );
    }

    #[test]
    fn refuses_a_token_signed_by_another_key() {
        let (signing, _) = own_key();
        let token = sign(&signing, EDDSA, r#"{"sub":"x"}"#);
        let header = format!("Bearer {token}");
        assert_eq!(
            docs_key().check(Some(&header), Access::Write, 0),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn refuses_a_tampered_payload() {
        let tampered = DOCS_TOKEN.replacen(".eyJ1", ".eyJ2", 1);
        let header = format!("Bearer {tampered}");
        assert!(docs_key().check(Some(&header), Access::Write, 0).is_err());
    }

    #[test]
    fn checks_time_claims() {
        let (signing, auth) = own_key();
        let expired = sign(&signing, EDDSA, r#"{"exp":1000}"#);
        assert_eq!(
            auth.check(Some(&format!("Bearer {expired}")), Access::Write, 2000),
            Err(AuthError::Expired)
        );
        let valid = sign(&signing, EDDSA, r#"{"exp":3000,"iat":500,"nbf":500}"#);
        let header = format!("Bearer {valid}");
        assert_eq!(auth.check(Some(&header), Access::Write, 2000), Ok(()));
        // A cached token still expires.
        assert_eq!(
            auth.check(Some(&header), Access::Write, 4000),
            Err(AuthError::Expired)
        );
        let early = sign(&signing, EDDSA, r#"{"nbf":5000}"#);
        assert_eq!(
            auth.check(Some(&format!("Bearer {early}")), Access::Write, 2000),
            Err(AuthError::NotYetValid)
        );
        let future = sign(&signing, EDDSA, r#"{"iat":5000}"#);
        assert_eq!(
            auth.check(Some(&format!("Bearer {future}")), Access::Write, 2000),
            Err(AuthError::IssuedInFuture)
        );
    }

    /// golang-jwt v4 `MapClaims` (what cc-metric-store uses): a time claim must be a JSON
    /// number; `0` means unset; `exp` is valid strictly before its second, `nbf` and `iat`
    /// from theirs; the claims must be a JSON object (`null` decodes to no claims).
    #[test]
    fn time_claims_follow_golang_jwt_v4_map_claims() {
        let (signing, auth) = own_key();
        let check = |claims: &str, now_s: i64| {
            let token = sign(&signing, EDDSA, claims);
            auth.check(Some(&format!("Bearer {token}")), Access::Write, now_s)
        };
        for exp in [r#""never""#, "null", "true", "[1]", r#"{"a":1}"#, "1e300"] {
            let claims = format!(r#"{{"exp":{exp}}}"#);
            assert_eq!(check(&claims, 1000), Err(AuthError::Expired), "{claims}");
        }
        assert_eq!(check(r#"{"nbf":"x"}"#, 1000), Err(AuthError::NotYetValid));
        assert_eq!(
            check(r#"{"iat":null}"#, 1000),
            Err(AuthError::IssuedInFuture)
        );
        // Of several failures the last one checked (nbf) is reported, as v4 does.
        assert_eq!(
            check(r#"{"exp":1,"iat":"x","nbf":"y"}"#, 1000),
            Err(AuthError::NotYetValid)
        );
        for payload in ["[]", "[1]", "42", r#""claims""#, "true"] {
            assert_eq!(check(payload, 1000), Err(AuthError::Malformed), "{payload}");
        }
        assert_eq!(check("null", 1000), Ok(()));
        assert_eq!(check(r#"{"exp":0,"nbf":0,"iat":0}"#, 1000), Ok(()));
        assert_eq!(check(r#"{"exp":1000}"#, 999), Ok(()));
        assert_eq!(check(r#"{"exp":1000}"#, 1000), Err(AuthError::Expired));
        assert_eq!(check(r#"{"exp":1000.9}"#, 1000), Err(AuthError::Expired));
        assert_eq!(check(r#"{"exp":0.5}"#, 1000), Err(AuthError::Expired));
        assert_eq!(check(r#"{"nbf":1000,"iat":1000.5}"#, 1000), Ok(()));
        assert_eq!(check(r#"{"nbf":1001}"#, 1000), Err(AuthError::NotYetValid));
    }

    #[test]
    fn refuses_other_algorithms_and_garbage() {
        let (signing, auth) = own_key();
        let hs256 = sign(&signing, r#"{"alg":"HS256"}"#, "{}");
        assert_eq!(
            auth.check(Some(&format!("Bearer {hs256}")), Access::Write, 0),
            Err(AuthError::UnsupportedAlgorithm)
        );
        for garbage in ["", "a.b", "a.b.c.d", "!!!.???.***", "e30.e30.AAAA"] {
            let result = auth.check(Some(&format!("Bearer {garbage}")), Access::Write, 0);
            assert!(result.is_err(), "{garbage:?}");
        }
    }

    /// The group order ℓ = 2^252 + 27742317777372353535851937790883648493, little-endian.
    const ELL: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];

    /// Goal: a signature whose `s` is the valid one plus ℓ (the same point equation, other
    /// bytes: a second "valid" token from one signature) is refused, and the original still
    /// verifies. ed25519-dalek refuses it unless its `legacy_compatibility` feature is on;
    /// this keeps it so, whatever feature unification brings.
    #[test]
    fn refuses_a_malleated_signature() {
        let (signing, auth) = own_key();
        let token = sign(&signing, EDDSA, r#"{"sub":"collector"}"#);
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
        let mut carry = 0_u16;
        for (byte, ell) in bytes[32..].iter_mut().zip(ELL) {
            let sum = u16::from(*byte) + u16::from(ell) + carry;
            *byte = sum as u8;
            carry = sum >> 8;
        }
        assert_eq!(carry, 0, "s + ℓ fits in 256 bits");
        let malleated = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&bytes));
        assert_eq!(
            auth.check_token(&malleated, Access::Write, 0),
            Err(AuthError::BadSignature)
        );
        assert_eq!(auth.check_token(&token, Access::Write, 0), Ok(()));
        // Once the original is cached, the malleated form is still no hit.
        assert_eq!(
            auth.check_token(&malleated, Access::Write, 0),
            Err(AuthError::BadSignature)
        );
    }

    /// Goal: a public key of small order is refused: with the identity as key, `R = B`,
    /// `s = 1` is a signature of every message under ed25519-dalek's plain `verify` (which
    /// the old code used), so anyone could sign any claims.
    #[test]
    fn refuses_small_order_keys_against_which_anyone_can_sign() {
        let mut identity = [0_u8; 32];
        identity[0] = 1;
        let mut basepoint = [0x66_u8; 32];
        basepoint[0] = 0x58;
        let mut forged = [0_u8; 64];
        forged[..32].copy_from_slice(&basepoint);
        forged[32] = 1;
        let forged = Signature::from_bytes(&forged);
        let weak = VerifyingKey::from_bytes(&identity).unwrap();
        for message in [&b"any claims"[..], b"other claims"] {
            assert!(weak.verify(message, &forged).is_ok(), "the forgery works");
            assert!(weak.verify_strict(message, &forged).is_err());
        }
        // The eight points of small order that have a canonical encoding.
        let small_order = [
            "0100000000000000000000000000000000000000000000000000000000000000",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0000000000000000000000000000000000000000000000000000000000000080",
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        ];
        for hex in small_order {
            let key: [u8; 32] = std::array::from_fn(|index| {
                u8::from_str_radix(&hex[2 * index..2 * index + 2], 16).unwrap()
            });
            assert!(!usable_public_key(&key), "{hex}");
            assert!(Authenticator::new(&key, None).is_none(), "{hex}");
        }
        assert!(usable_public_key(own_key().1.key.as_bytes()));
    }

    fn with_roles() -> (SigningKey, Authenticator) {
        let signing = SigningKey::from_bytes(&[7u8; 32]);
        let roles = JwtRoles {
            read: vec!["api".to_owned(), "admin".to_owned()],
            write: vec!["collector".to_owned(), "admin".to_owned()],
        };
        let auth = Authenticator::new(signing.verifying_key().as_bytes(), Some(roles)).unwrap();
        (signing, auth)
    }

    /// Goal: with `main.jwt-roles`, a valid token may call a route class only with one of its
    /// roles; the answer is the same from the cache; an invalid token is still a 401 error
    /// (checked before roles), and a `roles` claim that is not an array grants nothing.
    #[test]
    fn roles_grant_route_classes() {
        let (signing, auth) = with_roles();
        let check = |claims: &str, access| {
            let token = sign(&signing, EDDSA, claims);
            auth.check_token(&token, access, 1000)
        };
        let backend = r#"{"sub":"cc-backend","roles":["api"]}"#;
        let collector = r#"{"sub":"cc-metric-collector","roles":["collector"]}"#;
        let admin = r#"{"roles":["user","admin"]}"#;
        for _ in 0..2 {
            assert_eq!(check(backend, Access::Read), Ok(()));
            assert_eq!(
                check(backend, Access::Write),
                Err(AuthError::MissingRole(Access::Write))
            );
            assert_eq!(check(collector, Access::Write), Ok(()));
            assert_eq!(
                check(collector, Access::Read),
                Err(AuthError::MissingRole(Access::Read))
            );
            assert_eq!(check(admin, Access::Read), Ok(()));
            assert_eq!(check(admin, Access::Write), Ok(()));
        }
        for claims in [
            "{}",
            "null",
            r#"{"roles":"collector"}"#,
            r#"{"roles":[["collector"]]}"#,
            r#"{"roles":{"collector":true}}"#,
            r#"{"role":["collector"]}"#,
            r#"{"roles":["Collector"]}"#,
        ] {
            assert_eq!(
                check(claims, Access::Write),
                Err(AuthError::MissingRole(Access::Write)),
                "{claims}"
            );
        }
        assert_eq!(
            check(r#"{"roles":["collector"],"exp":1000}"#, Access::Write),
            Err(AuthError::Expired)
        );
        let other = sign(&SigningKey::from_bytes(&[8u8; 32]), EDDSA, collector);
        assert_eq!(
            auth.check_token(&other, Access::Write, 1000),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            AuthError::MissingRole(Access::Write).to_string(),
            "the token has none of the roles in main.jwt-roles.write"
        );
    }

    /// Goal: without `main.jwt-roles` (cc-metric-store's behaviour) any valid token may call
    /// every route, whatever its `roles`.
    #[test]
    fn without_roles_any_valid_token_may_do_anything() {
        let (signing, auth) = own_key();
        for claims in ["{}", r#"{"roles":["api"]}"#, r#"{"roles":"nothing"}"#] {
            let token = sign(&signing, EDDSA, claims);
            for access in [Access::Read, Access::Write] {
                assert_eq!(auth.check_token(&token, access, 0), Ok(()), "{claims}");
            }
        }
    }

    /// Goal: the cache keeps digests, not tokens, and two tokens are one entry only when they
    /// are equal (surrounding whitespace aside).
    #[test]
    fn the_cache_holds_digests_of_tokens() {
        let (signing, auth) = own_key();
        let token = sign(&signing, EDDSA, r#"{"exp":2000}"#);
        assert_eq!(
            auth.check_token(&format!(" {token} "), Access::Read, 0),
            Ok(())
        );
        assert_eq!(auth.check_token(&token, Access::Read, 0), Ok(()));
        let cache = auth.cache.lock();
        assert_eq!(cache.len(), 1);
        let (digest, verified) = cache.iter().next().unwrap();
        assert_eq!(
            *digest,
            TokenDigest(Sha256::digest(token.as_bytes()).into())
        );
        assert_ne!(*digest, TokenDigest::of(&format!("{token}x")));
        assert_eq!(verified.exp, Some(2000));
    }
}
