//! TLS and mutual TLS on a real listener, with throwaway certificates made by rcgen and a
//! rustls client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use varpulis_http::axum::routing::get;
use varpulis_http::axum::Router;
use varpulis_http::{HttpConfig, HttpError, Server, TlsFiles};

struct Pki {
    ca_pem: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca cert");
    let server_key = KeyPair::generate().expect("server key");
    let server = CertificateParams::new(vec!["localhost".to_string()])
        .expect("server params")
        .signed_by(&server_key, &ca, &ca_key)
        .expect("server cert");
    let client_key = KeyPair::generate().expect("client key");
    let client = CertificateParams::new(vec!["client".to_string()])
        .expect("client params")
        .signed_by(&client_key, &ca, &ca_key)
        .expect("client cert");
    Pki {
        ca_pem: ca.pem(),
        server_cert: server.pem(),
        server_key: server_key.serialize_pem(),
        client_cert: client.pem(),
        client_key: client_key.serialize_pem(),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write pem");
    path
}

fn router() -> Router {
    Router::new().route("/hello", get(|| async { "hello over tls" }))
}

fn der(pem: &str) -> CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes()).expect("pem cert")
}

fn client(pki: &Pki, with_cert: bool) -> Arc<ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = RootCertStore::empty();
    roots.add(der(&pki.ca_pem)).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = if with_cert {
        let key = PrivateKeyDer::from_pem_slice(pki.client_key.as_bytes()).expect("key");
        builder
            .with_client_auth_cert(vec![der(&pki.client_cert)], key)
            .expect("client cert")
    } else {
        builder.with_no_client_auth()
    };
    Arc::new(config)
}

fn get_over_tls(addr: SocketAddr, config: Arc<ClientConfig>) -> std::io::Result<String> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let name = ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"GET /hello HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")?;
    let mut out = Vec::new();
    match tls.read_to_end(&mut out) {
        Ok(_) => {}
        // Some servers close without close_notify after `connection: close`.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
        Err(e) => return Err(e),
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn https_serves_with_a_certificate_and_plain_http_is_refused() {
    let pki = pki();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = HttpConfig::new("tls", "127.0.0.1:0");
    config.tls = Some(TlsFiles {
        cert: write(dir.path(), "cert.pem", &pki.server_cert),
        key: write(dir.path(), "key.pem", &pki.server_key),
        client_ca: None,
    });
    let server = Server::start(config, router()).expect("start");
    assert!(server.url().starts_with("https://"));
    let answer = get_over_tls(server.address(), client(&pki, false)).expect("tls request");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("hello over tls"));
    // Plain HTTP on a TLS port fails the handshake, and is counted.
    let mut plain = TcpStream::connect(server.address()).expect("connect");
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    plain
        .write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
        .expect("write");
    let mut buf = Vec::new();
    let _ = plain.read_to_end(&mut buf);
    assert!(!String::from_utf8_lossy(&buf).contains("hello over tls"));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(server.stats().tls_failures, 1);
}

#[test]
fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let pki = pki();
    let dir = tempfile::tempdir().expect("tempdir");
    // With client certificates required, a public address needs no API key.
    let mut config = HttpConfig::new("mtls", "0.0.0.0:0");
    config.tls = Some(TlsFiles {
        cert: write(dir.path(), "cert.pem", &pki.server_cert),
        key: write(dir.path(), "key.pem", &pki.server_key),
        client_ca: Some(write(dir.path(), "ca.pem", &pki.ca_pem)),
    });
    let server = Server::start(config, router()).expect("start");
    let addr = SocketAddr::from(([127, 0, 0, 1], server.address().port()));
    let answer = get_over_tls(addr, client(&pki, true)).expect("mtls request");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let refused = get_over_tls(addr, client(&pki, false));
    assert!(
        refused
            .as_ref()
            .map_or(true, |a| !a.contains("hello over tls")),
        "{refused:?}"
    );
}

#[test]
fn missing_or_wrong_tls_files_are_named() {
    let pki = pki();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = HttpConfig::new("tls", "127.0.0.1:0");
    config.tls = Some(TlsFiles {
        cert: dir.path().join("missing.pem"),
        key: write(dir.path(), "key.pem", &pki.server_key),
        client_ca: None,
    });
    let err = Server::start(config.clone(), router())
        .err()
        .expect("error");
    assert!(matches!(err, HttpError::Tls { .. }), "{err}");
    assert!(err.to_string().contains("missing.pem"), "{err}");
    // A key that is not the certificate's.
    let other = KeyPair::generate().expect("key").serialize_pem();
    config.tls = Some(TlsFiles {
        cert: write(dir.path(), "cert.pem", &pki.server_cert),
        key: write(dir.path(), "other.pem", &other),
        client_ca: None,
    });
    let err = Server::start(config, router()).err().expect("error");
    assert!(err.to_string().contains("does not match"), "{err}");
}
