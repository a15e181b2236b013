//! HTTPS: the certificate and key of `main.https-cert-file` and `main.https-key-file`,
//! served with rustls (TLS 1.2 and 1.3, rustls' default cipher suites, ALPN `http/1.1`, no
//! client certificates), and reloaded without a restart.
//!
//! [`Certificates`] is the rustls certificate resolver: a reload swaps the pair that new
//! handshakes get, and open connections keep the one they were made with. A reload happens on
//! SIGHUP and when either file changed ([`spawn_reloader`]); a pair that cannot be loaded
//! (missing file, bad PEM, key not matching the certificate) is logged once per change of
//! the files, counted in `strata_tls_reloads_total{outcome="failed"}`, and the old pair
//! stays in use. cc-metric-store reads the files once, at startup.

use crate::App;
use crate::telemetry::OutcomeLabel;
use parking_lot::{Mutex, RwLock};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// How often the files' metadata is compared with the loaded pair's. A changed pair is
/// loaded once it has stayed the same for one interval, so that a writer replacing the two
/// files one after the other is not caught between them.
pub const FILES_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// The ALPN protocol offered: HTTP/1.1 only, the one protocol the server speaks.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The two files of `main`, both PEM: the certificate chain (server certificate first) and
/// its private key (PKCS#8, PKCS#1 RSA or SEC1 EC). Relative paths are relative to the
/// working directory, as in cc-metric-store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Why a pair cannot be used; the message names the configuration key and the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// The certificate and key in use, and what the files looked like when they were loaded.
#[derive(Debug)]
pub struct Certificates {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    watch: Mutex<Watch>,
}

/// Change detection for [`Certificates::check`].
#[derive(Debug)]
struct Watch {
    /// The files when the pair in use was read.
    loaded: Fingerprint,
    /// The files at the previous check.
    seen: Fingerprint,
    /// The files when a load last failed: not tried (nor logged) again until they change.
    failed: Option<Fingerprint>,
}

/// Device, inode, size and modification time of each file (`None`: cannot be read). The
/// inode catches a file replaced by a rename, the usual way certificates are renewed.
type Fingerprint = [Option<(u64, u64, u64, i64, i64)>; 2];

fn fingerprint(files: &TlsFiles) -> Fingerprint {
    [&files.cert_file, &files.key_file].map(|path| {
        std::fs::metadata(path).ok().map(|meta| {
            (
                meta.dev(),
                meta.ino(),
                meta.size(),
                meta.mtime(),
                meta.mtime_nsec(),
            )
        })
    })
}

impl Certificates {
    /// Loads the pair; an error is a configuration error.
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let files_now = fingerprint(&files);
        let pair = read_pair(&files, &provider)?;
        Ok(Arc::new(Self {
            files,
            provider,
            current: RwLock::new(Arc::new(pair)),
            watch: Mutex::new(Watch {
                loaded: files_now,
                seen: files_now,
                failed: None,
            }),
        }))
    }

    /// The files, for log lines.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The acceptor for the listener: rustls' safe defaults (TLS 1.2 and 1.3 with its
    /// default cipher suites and key exchanges), this pair, ALPN `http/1.1`.
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError(format!("TLS configuration: {error}")))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Reloads the pair when `forced` (SIGHUP), or when the files changed and then stayed
    /// unchanged since the previous check, unless loading these very files failed before.
    /// `None` when nothing was tried.
    pub fn check(&self, forced: bool) -> Option<Result<(), TlsError>> {
        let now = fingerprint(&self.files);
        let mut watch = self.watch.lock();
        let settled = now == watch.seen;
        watch.seen = now;
        if !forced && (now == watch.loaded || !settled || watch.failed == Some(now)) {
            return None;
        }
        match read_pair(&self.files, &self.provider) {
            Ok(pair) => {
                *self.current.write() = Arc::new(pair);
                watch.loaded = now;
                watch.failed = None;
                Some(Ok(()))
            }
            Err(error) => {
                watch.failed = Some(now);
                Some(Err(error))
            }
        }
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().clone())
    }
}

/// Reads and checks the pair: at least one certificate, a key rustls can sign with, and
/// the key belonging to the first certificate.
fn read_pair(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let cert_error = |why: String| {
        TlsError(format!(
            "main.https-cert-file {}: {why}",
            files.cert_file.display()
        ))
    };
    let key_error = |why: String| {
        TlsError(format!(
            "main.https-key-file {}: {why}",
            files.key_file.display()
        ))
    };
    let chain = CertificateDer::pem_file_iter(&files.cert_file)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|error| cert_error(pem_reason(&error, &files.cert_file)))?;
    if chain.is_empty() {
        return Err(cert_error(
            "no certificate (-----BEGIN CERTIFICATE-----) in the file".to_owned(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key_file).map_err(|error| match error {
        pem::Error::NoItemsFound => key_error(
            "no private key (-----BEGIN PRIVATE KEY-----, RSA or EC PRIVATE KEY) in the file"
                .to_owned(),
        ),
        error => key_error(pem_reason(&error, &files.key_file)),
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|error| match error {
        rustls::Error::InconsistentKeys(_) => key_error(format!(
            "the key does not belong to the certificate in main.https-cert-file {}",
            files.cert_file.display()
        )),
        rustls::Error::InvalidCertificate(error) => {
            cert_error(format!("not a usable certificate: {error}"))
        }
        error => key_error(format!("not a usable private key: {error}")),
    })
}

/// What is wrong with a PEM file, in words that quote nothing of its contents (a key file's
/// bytes must never reach a log line).
fn pem_reason(error: &pem::Error, path: &Path) -> String {
    match error {
        pem::Error::Io(error) => format!("cannot read: {error}"),
        pem::Error::NoItemsFound => "nothing usable in the file".to_owned(),
        pem::Error::SectionTooLarge => "a PEM section is larger than 256 MB".to_owned(),
        pem::Error::MissingSectionEnd { .. } => "a PEM section has no END line".to_owned(),
        _ => format!("not valid PEM ({} bytes)", file_len(path)),
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |meta| meta.len())
}

/// Reloads `certificates` on SIGHUP and checks the files every [`FILES_CHECK_INTERVAL`].
pub fn spawn_reloader(app: Arc<App>, certificates: Arc<Certificates>) -> JoinHandle<()> {
    use tokio::signal::unix::{SignalKind, signal};
    for outcome in ["ok", "failed"] {
        let _ = app
            .telemetry
            .tls_reloads
            .get_or_create(&OutcomeLabel { outcome });
    }
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(hangup) => Some(hangup),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; TLS files are reloaded when they change");
            None
        }
    };
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(FILES_CHECK_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let forced = tokio::select! {
                _ = ticker.tick() => false,
                Some(()) = async {
                    match &mut hangup {
                        Some(hangup) => hangup.recv().await,
                        None => std::future::pending().await,
                    }
                } => true,
            };
            let checking = certificates.clone();
            let outcome = tokio::task::spawn_blocking(move || checking.check(forced)).await;
            let files = certificates.files();
            let (cert_file, key_file) = (files.cert_file.display(), files.key_file.display());
            let outcome = match outcome {
                Ok(None) => continue,
                Ok(Some(Ok(()))) => {
                    tracing::info!(%cert_file, %key_file, forced, "TLS certificate reloaded");
                    "ok"
                }
                Ok(Some(Err(error))) => {
                    tracing::error!(
                        %error,
                        "TLS certificate not reloaded; still serving the previous one"
                    );
                    "failed"
                }
                Err(error) => {
                    tracing::error!(%error, "TLS certificate check failed");
                    "failed"
                }
            };
            app.telemetry
                .tls_reloads
                .get_or_create(&OutcomeLabel { outcome })
                .inc();
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_testkit::first_certificate;

    fn files(dir: &Path) -> TlsFiles {
        TlsFiles {
            cert_file: dir.join("server.crt"),
            key_file: dir.join("server.key"),
        }
    }

    /// The DER of the certificate new handshakes get.
    fn served(certificates: &Certificates) -> Vec<u8> {
        certificates.current.read().cert[0].to_vec()
    }

    fn load_error(files: TlsFiles) -> String {
        Certificates::load(files).unwrap_err().to_string()
    }

    /// Goal: every way a pair can be unusable is an error naming the key, the file and why.
    #[test]
    fn bad_pairs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        strata_testkit::make_certificates(d);
        let good = files(d);
        Certificates::load(good.clone()).unwrap();

        let missing = TlsFiles {
            cert_file: d.join("absent.crt"),
            ..good.clone()
        };
        let message = load_error(missing);
        assert!(
            message.starts_with(&format!(
                "main.https-cert-file {}: cannot read: No such file",
                d.join("absent.crt").display()
            )),
            "{message}"
        );

        std::fs::write(d.join("empty.crt"), "not a certificate\n").unwrap();
        let message = load_error(TlsFiles {
            cert_file: d.join("empty.crt"),
            ..good.clone()
        });
        assert!(message.ends_with("no certificate (-----BEGIN CERTIFICATE-----) in the file"));

        // A certificate given as the key, and a key whose base64 is broken: nothing of the
        // file's contents is quoted.
        let message = load_error(TlsFiles {
            key_file: good.cert_file.clone(),
            ..good.clone()
        });
        assert!(message.contains("no private key"), "{message}");
        let key = std::fs::read_to_string(&good.key_file).unwrap();
        let broken = key.replacen('M', "!", 1);
        std::fs::write(d.join("broken.key"), &broken).unwrap();
        let message = load_error(TlsFiles {
            key_file: d.join("broken.key"),
            ..good.clone()
        });
        assert!(message.contains("not valid PEM"), "{message}");
        for line in key.lines().filter(|line| !line.starts_with("-----")) {
            assert!(!message.contains(line), "{message}");
        }

        // The client certificate's key: valid, but not the server certificate's.
        let message = load_error(TlsFiles {
            key_file: d.join("client.key"),
            ..good.clone()
        });
        assert_eq!(
            message,
            format!(
                "main.https-key-file {}: the key does not belong to the certificate in \
                 main.https-cert-file {}",
                d.join("client.key").display(),
                good.cert_file.display()
            )
        );
    }

    /// Goal: a changed pair is loaded once it settled; a broken one is tried (and so logged
    /// and counted) once per change and leaves the old pair in use; SIGHUP always tries.
    #[test]
    fn reload_follows_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        strata_testkit::make_certificates(first.path());
        strata_testkit::make_certificates(second.path());
        let place = |from: &Path| {
            for name in ["server.crt", "server.key"] {
                // A rename, as certificate tools do: the inode changes with the contents.
                std::fs::copy(from.join(name), dir.path().join("next")).unwrap();
                std::fs::rename(dir.path().join("next"), dir.path().join(name)).unwrap();
            }
        };
        place(first.path());
        let certificates = Certificates::load(files(dir.path())).unwrap();
        let first_der = first_certificate(&first.path().join("server.crt"));
        let second_der = first_certificate(&second.path().join("server.crt"));
        assert_eq!(served(&certificates), first_der);
        assert_eq!(certificates.check(false), None, "nothing changed");

        place(second.path());
        assert_eq!(
            certificates.check(false),
            None,
            "changed: waits one interval"
        );
        assert_eq!(certificates.check(false), Some(Ok(())));
        assert_eq!(served(&certificates), second_der);
        assert_eq!(certificates.check(false), None);

        // Only the key replaced (the first pair's): a mismatch, tried once.
        std::fs::copy(
            first.path().join("server.key"),
            dir.path().join("server.key.new"),
        )
        .unwrap();
        std::fs::rename(
            dir.path().join("server.key.new"),
            dir.path().join("server.key"),
        )
        .unwrap();
        assert_eq!(certificates.check(false), None);
        let failure = certificates.check(false);
        assert!(
            matches!(&failure, Some(Err(error)) if error.to_string().contains("does not belong")),
            "{failure:?}"
        );
        for _ in 0..3 {
            assert_eq!(certificates.check(false), None, "the same failure again");
        }
        assert_eq!(served(&certificates), second_der, "the old pair stays");
        assert!(
            matches!(certificates.check(true), Some(Err(_))),
            "SIGHUP retries"
        );

        // Removed files: a failure; put back, a reload.
        std::fs::remove_file(dir.path().join("server.crt")).unwrap();
        assert_eq!(certificates.check(false), None);
        assert!(matches!(certificates.check(false), Some(Err(_))));
        place(first.path());
        assert_eq!(certificates.check(true), Some(Ok(())));
        assert_eq!(served(&certificates), first_der);
    }
}
