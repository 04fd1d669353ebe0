//! TLS client settings shared by the connectors that dial out with rustls (`mqtt`,
//! `websocket`): the trust roots (`ca_file`, or the system's CA certificates), an optional
//! client certificate (`client_cert`, `client_key`), and which handshake failures retrying
//! cannot fix.
//!
//! The files are read when the connector opens, so a missing or malformed file is a
//! configuration error naming the parameter. rustls runs with the ring provider (the one ureq
//! uses too), never a process-wide default provider.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Params;
use crate::error::ConfigError;

/// The parameters [`TlsSettings::read`] reads.
pub(crate) const TLS_FILE_PARAMS: [&str; 3] = ["ca_file", "client_cert", "client_key"];

/// How a TLS connection to a server is set up.
#[derive(Clone)]
pub struct TlsSettings {
    /// PEM file of the CA certificates that may sign the server's certificate; `None` trusts
    /// the system's CA certificates.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and private key PEM files, for servers that require them.
    pub client_auth: Option<(PathBuf, PathBuf)>,
    /// The rustls configuration built from the files when the connector opened.
    config: Arc<rustls::ClientConfig>,
}

impl PartialEq for TlsSettings {
    fn eq(&self, other: &Self) -> bool {
        // The rustls configuration is derived from the files.
        self.ca_file == other.ca_file && self.client_auth == other.client_auth
    }
}

impl Eq for TlsSettings {}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("ca_file", &self.ca_file)
            .field("client_auth", &self.client_auth)
            .finish()
    }
}

impl TlsSettings {
    /// Reads `ca_file`, `client_cert` and `client_key` and builds the rustls configuration.
    /// `peer` names the other side in messages (`broker`, `server`).
    pub(crate) fn read(
        p: &mut Params<'_>,
        base_dir: &Path,
        peer: &str,
    ) -> Result<TlsSettings, ConfigError> {
        let ca_file = p.optional_path("ca_file", base_dir)?;
        let cert = p.optional_path("client_cert", base_dir)?;
        let key = p.optional_path("client_key", base_dir)?;
        let client_auth = match (cert, key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(p.invalid("client_cert", "is set but `client_key` is not; set both"))
            }
            (None, Some(_)) => {
                return Err(p.invalid("client_key", "is set but `client_cert` is not; set both"))
            }
        };
        let mut roots = rustls::RootCertStore::empty();
        match &ca_file {
            Some(path) => {
                let certs = read_certs(path).map_err(|why| p.invalid("ca_file", why))?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(p.invalid(
                        "ca_file",
                        format!("`{}` holds no usable CA certificate", path.display()),
                    ));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err(p.invalid(
                        "ca_file",
                        format!(
                            "no system CA certificates were found (install `ca-certificates`); \
                             set `ca_file` to the PEM file of the CA that signed the {peer}'s certificate"
                        ),
                    ));
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| p.invalid("tls", format!("cannot set up TLS: {e}")))?
            .with_root_certificates(roots);
        let config = match &client_auth {
            None => builder.with_no_client_auth(),
            Some((cert_path, key_path)) => {
                let certs = read_certs(cert_path).map_err(|why| p.invalid("client_cert", why))?;
                if certs.is_empty() {
                    return Err(p.invalid(
                        "client_cert",
                        format!("`{}` holds no certificate", cert_path.display()),
                    ));
                }
                let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
                    p.invalid(
                        "client_key",
                        format!(
                            "cannot read a private key from `{}`: {e}",
                            key_path.display()
                        ),
                    )
                })?;
                builder.with_client_auth_cert(certs, key).map_err(|e| {
                    p.invalid(
                        "client_key",
                        format!("does not fit `{}`: {e}", cert_path.display()),
                    )
                })?
            }
        };
        Ok(TlsSettings {
            ca_file,
            client_auth,
            config: Arc::new(config),
        })
    }

    /// The rustls client configuration.
    pub(crate) fn config(&self) -> Arc<rustls::ClientConfig> {
        Arc::clone(&self.config)
    }
}

/// The certificates of a PEM file.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let why = |e: rustls::pki_types::pem::Error| {
        format!("cannot read certificates from `{}`: {e}", path.display())
    };
    CertificateDer::pem_file_iter(path)
        .map_err(why)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(why)
}

/// Why a TLS handshake failure comes back on every attempt (the `peer`'s certificate does not
/// verify, it wants a client certificate we lack), as `the TLS handshake: <error> (<hint>)`, or
/// `None` when retrying may help.
pub(crate) fn final_failure(error: &rustls::Error, peer: &str) -> Option<String> {
    let hint = match error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
            format!(" (is `ca_file` the CA that signed the {peer}'s certificate?)")
        }
        rustls::Error::InvalidCertificate(_) => String::new(),
        rustls::Error::AlertReceived(
            rustls::AlertDescription::CertificateRequired
            | rustls::AlertDescription::BadCertificate
            | rustls::AlertDescription::UnknownCA
            | rustls::AlertDescription::HandshakeFailure,
        ) => format!(" (does the {peer} need `client_cert` and `client_key`?)"),
        rustls::Error::NoCertificatesPresented | rustls::Error::PeerIncompatible(_) => {
            String::new()
        }
        _ => return None,
    };
    Some(format!("the TLS handshake: {error}{hint}"))
}

/// The rustls error inside an I/O error, if that is what it carries (rustls streams report
/// handshake failures as `io::ErrorKind::InvalidData` wrapping the [`rustls::Error`]).
pub(crate) fn rustls_error(error: &std::io::Error) -> Option<&rustls::Error> {
    error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
}
