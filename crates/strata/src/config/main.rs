//! The `main` section: the HTTP listener and its authentication.

use std::net::SocketAddr;

use base64::Engine as _;
use strata_server::auth::JwtRoles;
pub use strata_server::tls::TlsFiles;

use super::ConfigError;
use super::section::{Section, quote};

/// Listen address of the embedded default (Decision 14). Loopback only, because the
/// embedded default has no authentication.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8082";

pub(super) const MAIN_KEYS: &[&str] = &[
    "addr",
    "jwt-public-key",
    "jwt-roles",
    "https-cert-file",
    "https-key-file",
    "user",
    "group",
    "backend-url",
    "debug",
];

pub(super) const JWT_ROLES_KEYS: &[&str] = &["read", "write"];

pub(super) const DEBUG_KEYS: &[&str] = &["dump-to-file", "gops"];

pub(super) const PRIVILEGE_DROP_NOT_SUPPORTED: &str = "dropping privileges is not supported; start strata as the target user (e.g. systemd User= and Group=)";

pub(super) const BACKEND_URL_NOT_SUPPORTED: &str =
    "the cc-backend node provider is not supported; retention is purely time-based";

pub(super) const GOPS_NOT_SUPPORTED: &str = "the gops agent is specific to Go programs";

/// The `main` section: the HTTP listener and its authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MainSection {
    /// Listen address as `host:port`, never empty. A host name (`localhost:8082`), an IPv4
    /// address or a bracketed IPv6 address; Go's `":8082"` is rewritten to `0.0.0.0:8082`.
    pub addr: String,
    /// Ed25519 public key verifying the JWTs of API requests; `None` = no authentication.
    pub jwt_public_key: Option<[u8; 32]>,
    /// Strata's `jwt-roles`: the roles a token needs per route class; `None` = any valid
    /// token may do anything, as in cc-metric-store.
    pub jwt_roles: Option<JwtRoles>,
    /// `https-cert-file` and `https-key-file`: serve HTTPS on `addr`; `None` = plain HTTP.
    /// Only checked to be both set or both unset here; the files are read at startup.
    pub https: Option<TlsFiles>,
}

pub(super) fn parse_main(section: &Section<'_>) -> Result<MainSection, ConfigError> {
    let addr = section.required("addr", section.string("addr")?)?;
    let addr = validate_addr(addr).map_err(|reason| section.invalid("addr", reason))?;

    let jwt_public_key = match section.non_empty_string("jwt-public-key")? {
        None => None,
        Some(text) => Some(
            decode_public_key(text).map_err(|reason| section.invalid("jwt-public-key", reason))?,
        ),
    };

    let jwt_roles = match section.section("jwt-roles", JWT_ROLES_KEYS)? {
        None => None,
        Some(_) if jwt_public_key.is_none() => {
            return Err(section.invalid(
                "jwt-roles",
                "needs jwt-public-key: without a key no token is checked",
            ));
        }
        Some(roles) => Some(parse_jwt_roles(&roles)?),
    };

    // cc-metric-store serves plain HTTP when one of the two is empty; here that is an error,
    // so that an operator never believes HTTPS is on when it is not.
    let https = match (
        section.path("https-cert-file")?,
        section.path("https-key-file")?,
    ) {
        (Some(cert_file), Some(key_file)) => Some(TlsFiles {
            cert_file,
            key_file,
        }),
        (None, None) => None,
        (Some(_), None) => {
            return Err(section.invalid(
                "https-key-file",
                "must be set with https-cert-file (HTTPS needs both)",
            ));
        }
        (None, Some(_)) => {
            return Err(section.invalid(
                "https-cert-file",
                "must be set with https-key-file (HTTPS needs both)",
            ));
        }
    };
    for key in ["user", "group"] {
        if section.non_empty_string(key)?.is_some() {
            return Err(section.not_supported(key, PRIVILEGE_DROP_NOT_SUPPORTED));
        }
    }
    if section.non_empty_string("backend-url")?.is_some() {
        return Err(section.not_supported("backend-url", BACKEND_URL_NOT_SUPPORTED));
    }
    if let Some(debug) = section.section("debug", DEBUG_KEYS)? {
        parse_debug(&debug)?;
    }

    Ok(MainSection {
        addr,
        jwt_public_key,
        jwt_roles,
        https,
    })
}

/// `jwt-roles`: both classes, each a non-empty list of non-empty role names (an empty list
/// would lock every token out of that class).
fn parse_jwt_roles(section: &Section<'_>) -> Result<JwtRoles, ConfigError> {
    let class = |key: &str| -> Result<Vec<String>, ConfigError> {
        let roles = section.required(key, section.strings(key)?)?;
        if roles.is_empty() || roles.iter().any(|role| role.is_empty()) {
            return Err(section.invalid(
                key,
                "list at least one role, none of them empty (a token needs one of them)",
            ));
        }
        Ok(roles.into_iter().map(str::to_owned).collect())
    };
    Ok(JwtRoles {
        read: class("read")?,
        write: class("write")?,
    })
}

/// Checks a listen address and returns it in a form `TcpListener::bind` accepts.
///
/// Accepted: `ip:port` (`0.0.0.0:8082`, `[::1]:8082`), `hostname:port` (`localhost:8082`),
/// and Go's `:port`, which becomes `0.0.0.0:port` (IPv4 only; write `[::]:port` for IPv6).
/// Port 0 (any free port) is allowed, as in Go; service names (`:http`) are not.
fn validate_addr(addr: &str) -> Result<String, String> {
    if addr.is_empty() {
        return Err("must not be empty; give host:port, e.g. \"0.0.0.0:8082\"".to_owned());
    }
    if addr.parse::<SocketAddr>().is_ok() {
        return Ok(addr.to_owned());
    }
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(format!("expected host:port, found {}", quote(addr)));
    };
    if port.parse::<u16>().is_err() {
        return Err(format!(
            "expected host:port with a port number 0-65535, found {}",
            quote(addr)
        ));
    }
    if host.is_empty() {
        return Ok(format!("0.0.0.0:{port}"));
    }
    let looks_like_ipv6 = host.starts_with('[')
        || (host.contains(':')
            && host
                .bytes()
                .all(|byte| byte.is_ascii_hexdigit() || byte == b':' || byte == b'.'));
    if looks_like_ipv6 {
        return Err(format!(
            "invalid IPv6 address in {} (write it in brackets, e.g. \"[::1]:8082\")",
            quote(addr)
        ));
    }
    let valid_host = host
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'.' || byte == b'_');
    if !valid_host {
        return Err(format!("invalid host name in {}", quote(addr)));
    }
    Ok(addr.to_owned())
}

/// Decodes `jwt-public-key`: standard base64 (with padding, like Go's `StdEncoding`) of
/// exactly the 32 bytes of an Ed25519 public key, one [`strata_server::auth::usable_public_key`].
fn decode_public_key(text: &str) -> Result<[u8; 32], String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|error| format!("not valid standard base64: {error}"))?;
    let length = bytes.len();
    let key = <[u8; 32]>::try_from(bytes).map_err(|_| {
        format!("an Ed25519 public key is 32 bytes, but this decodes to {length} bytes")
    })?;
    if !strata_server::auth::usable_public_key(&key) {
        return Err(
            "not a usable Ed25519 public key: not a curve point, or one of small order \
             (anyone could sign tokens for it)"
                .to_owned(),
        );
    }
    Ok(key)
}

/// `debug` (in `main` and `metric-store`): `dump-to-file` is accepted and ignored, as in
/// cc-metric-store; `gops: true` is not supported.
pub(super) fn parse_debug(section: &Section<'_>) -> Result<(), ConfigError> {
    section.string("dump-to-file")?;
    if section.boolean("gops")? == Some(true) {
        return Err(section.not_supported("gops", GOPS_NOT_SUPPORTED));
    }
    Ok(())
}
