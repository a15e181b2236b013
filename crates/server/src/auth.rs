//! JWT authentication as cc-metric-store does it (COMPAT.md §1.2): `Authorization: Bearer`
//! tokens signed with EdDSA (Ed25519), checked against one configured public key; `exp`, `nbf`
//! and `iat` are validated when present, exactly as golang-jwt v4's `MapClaims` does (see
//! [`time_claim`]); other claims are ignored.
//!
//! Only verification is needed, so this is the JWS compact form verified directly with
//! `ed25519-dalek` rather than a general JWT library.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fmt;

/// Most validated tokens remembered; beyond it expired ones are evicted, then all.
const CACHE_TOKENS_MAX: usize = 1024;

/// Longest token accepted; a bound on work done for garbage headers.
const TOKEN_BYTES_MAX: usize = 8 * 1024;

/// Why a token was refused. The text is what the client sees in the 401 body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    MissingBearer,
    Malformed,
    UnsupportedAlgorithm,
    BadSignature,
    Expired,
    NotYetValid,
    IssuedInFuture,
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
        })
    }
}

/// Verifies bearer tokens against one Ed25519 public key.
#[derive(Debug)]
pub struct Authenticator {
    key: VerifyingKey,
    /// Validated tokens and their `exp` claim.
    cache: Mutex<HashMap<String, Option<i64>>>,
}

impl Authenticator {
    /// `None` when the 32 bytes are not a valid Ed25519 point.
    pub fn new(public_key: &[u8; 32]) -> Option<Self> {
        Some(Self {
            key: VerifyingKey::from_bytes(public_key).ok()?,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Checks an `Authorization` header value at time `now_s`.
    pub fn check(&self, header: Option<&str>, now_s: i64) -> Result<(), AuthError> {
        let token = header
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or(AuthError::MissingBearer)?;
        self.check_token(token, now_s)
    }

    /// Checks a token however it arrived (the InfluxDB endpoints take it from several
    /// places, see [`scheme_token`] and [`basic_password`]): same validation, same cache.
    pub fn check_token(&self, token: &str, now_s: i64) -> Result<(), AuthError> {
        let token = token.trim();
        if let Some(expiry) = self.cache.lock().get(token) {
            return match expiry {
                Some(exp) if is_expired(*exp, now_s) => Err(AuthError::Expired),
                _ => Ok(()),
            };
        }
        let expiry = self.verify(token, now_s)?;
        let mut cache = self.cache.lock();
        if cache.len() >= CACHE_TOKENS_MAX {
            cache.retain(|_, exp| exp.is_none_or(|exp| !is_expired(exp, now_s)));
            if cache.len() >= CACHE_TOKENS_MAX {
                cache.clear();
            }
        }
        cache.insert(token.to_owned(), expiry);
        Ok(())
    }

    /// Verifies signature and time claims; returns the `exp` claim.
    fn verify(&self, token: &str, now_s: i64) -> Result<Option<i64>, AuthError> {
        if token.len() > TOKEN_BYTES_MAX {
            return Err(AuthError::Malformed);
        }
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
            .verify(signed.as_bytes(), &signature)
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
        Ok(exp)
    }
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
    use ed25519_dalek::{Signer, SigningKey};

    /// The test key pair and token from cc-metric-store's docs (COMPAT.md §1.2).
    const DOCS_PUBLIC_KEY: &str = "kzfYrYy+TzpanWZHJ5qSdMj5uKUWgq74BWhQG6copP0=";
    const DOCS_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSJ9.eyJ1c2VyIjoiYWRtaW4iLCJyb2xlcyI6WyJST0xFX0FETUlOIiwiUk9MRV9BTkFMWVNUIiwiUk9MRV9VU0VSIl19.d-3_3FZTsadPjDEdsWrrQ7nS0edMAR4zjl-eK7rJU3HziNBfI9PDHDIpJVHTNN5E5SlLGLFXctWyKAkwhXL-Dw";

    fn docs_key() -> Authenticator {
        let bytes: [u8; 32] = STANDARD
            .decode(DOCS_PUBLIC_KEY)
            .unwrap()
            .try_into()
            .unwrap();
        Authenticator::new(&bytes).unwrap()
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
        let auth = Authenticator::new(signing.verifying_key().as_bytes()).unwrap();
        (signing, auth)
    }

    const EDDSA: &str = r#"{"alg":"EdDSA","typ":"JWT"}"#;

    #[test]
    fn accepts_the_documented_test_token() {
        let auth = docs_key();
        let header = format!("Bearer {DOCS_TOKEN}");
        assert_eq!(auth.check(Some(&header), 1_800_000_000), Ok(()));
        // Served from the cache the second time.
        assert_eq!(auth.check(Some(&header), 1_800_000_000), Ok(()));
    }

    #[test]
    fn refuses_missing_or_non_bearer_headers() {
        let auth = docs_key();
        assert_eq!(auth.check(None, 0), Err(AuthError::MissingBearer));
        assert_eq!(
            auth.check(Some("Basic abc"), 0),
            Err(AuthError::MissingBearer)
        );
    }

    #[test]
    fn refuses_a_token_signed_by_another_key() {
        let (signing, _) = own_key();
        let token = sign(&signing, EDDSA, r#"{"sub":"x"}"#);
        let header = format!("Bearer {token}");
        assert_eq!(
            docs_key().check(Some(&header), 0),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn refuses_a_tampered_payload() {
        let tampered = DOCS_TOKEN.replacen(".eyJ1", ".eyJ2", 1);
        let header = format!("Bearer {tampered}");
        assert!(docs_key().check(Some(&header), 0).is_err());
    }

    #[test]
    fn checks_time_claims() {
        let (signing, auth) = own_key();
        let expired = sign(&signing, EDDSA, r#"{"exp":1000}"#);
        assert_eq!(
            auth.check(Some(&format!("Bearer {expired}")), 2000),
            Err(AuthError::Expired)
        );
        let valid = sign(&signing, EDDSA, r#"{"exp":3000,"iat":500,"nbf":500}"#);
        let header = format!("Bearer {valid}");
        assert_eq!(auth.check(Some(&header), 2000), Ok(()));
        // A cached token still expires.
        assert_eq!(auth.check(Some(&header), 4000), Err(AuthError::Expired));
        let early = sign(&signing, EDDSA, r#"{"nbf":5000}"#);
        assert_eq!(
            auth.check(Some(&format!("Bearer {early}")), 2000),
            Err(AuthError::NotYetValid)
        );
        let future = sign(&signing, EDDSA, r#"{"iat":5000}"#);
        assert_eq!(
            auth.check(Some(&format!("Bearer {future}")), 2000),
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
            auth.check(Some(&format!("Bearer {token}")), now_s)
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
            auth.check(Some(&format!("Bearer {hs256}")), 0),
            Err(AuthError::UnsupportedAlgorithm)
        );
        for garbage in ["", "a.b", "a.b.c.d", "!!!.???.***", "e30.e30.AAAA"] {
            let result = auth.check(Some(&format!("Bearer {garbage}")), 0);
            assert!(result.is_err(), "{garbage:?}");
        }
    }
}
