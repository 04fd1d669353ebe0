//! rustls server configuration from PEM files.

use std::path::Path;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsFiles;
use crate::error::HttpError;

fn tls_error(listener: &str, path: &Path, reason: impl ToString) -> HttpError {
    HttpError::Tls {
        listener: listener.to_string(),
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn certificates(listener: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, HttpError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_error(listener, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(listener, path, e))?;
    if certs.is_empty() {
        return Err(tls_error(listener, path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

/// The server configuration for `files`: HTTP/1.1 over TLS 1.2 or 1.3 with the ring
/// provider, and client certificates required when `client_ca` is set.
pub(crate) fn server_config(
    listener: &str,
    files: &TlsFiles,
) -> Result<Arc<rustls::ServerConfig>, HttpError> {
    let certs = certificates(listener, &files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        tls_error(
            listener,
            &files.key,
            format!("no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}"),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(listener, &files.cert, e))?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(listener, ca)? {
                roots.add(cert).map_err(|e| tls_error(listener, ca, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| tls_error(listener, ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        tls_error(
            listener,
            &files.key,
            format!("does not match the certificate: {e}"),
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
