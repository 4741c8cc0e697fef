//! Custom trust roots: a token endpoint behind a certificate from a private CA (made
//! here with rcgen) is rejected by default and accepted once the app adds that CA's
//! root with `AuthConfig::add_root_certificate`, as PEM or DER.

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokenkeeper::{AuthClient, AuthConfig, AuthError, RetryPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

struct PrivateCa {
    root_pem: String,
    root_der: Vec<u8>,
    leaf: CertificateDer<'static>,
    leaf_key: PrivateKeyDer<'static>,
}

fn private_ca() -> PrivateCa {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "tokenkeeper test root CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    PrivateCa {
        root_pem: ca.pem(),
        root_der: ca.der().to_vec(),
        leaf: leaf.der().clone(),
        leaf_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    }
}

/// An HTTPS token endpoint on 127.0.0.1 that answers every request with a token.
/// Returns its URL and the count of requests it answered (after a TLS handshake).
async fn tls_token_endpoint(ca: &PrivateCa) -> (String, Arc<AtomicUsize>) {
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![ca.leaf.clone()], ca.leaf_key.clone_key())
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/oauth2/token", listener.local_addr().unwrap());
    let answered = Arc::new(AtomicUsize::new(0));
    let count = answered.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let count = count.clone();
            tokio::spawn(async move {
                // A client that does not trust us aborts the handshake: nothing to answer.
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let body = r#"{"access_token":"from-the-private-ca","token_type":"Bearer","expires_in":600}"#;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                count.fetch_add(1, Ordering::SeqCst);
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (url, answered)
}

fn config(url: &str) -> AuthConfig {
    AuthConfig::new(url, "tls-client").retry_policy(RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    })
}

#[tokio::test]
async fn a_server_signed_by_a_private_ca_is_rejected_without_its_root_and_accepted_with_it() {
    let ca = private_ca();
    let (url, answered) = tls_token_endpoint(&ca).await;

    // Default trust (the compiled-in Mozilla roots): the handshake fails.
    let error = AuthClient::new(config(&url))
        .unwrap()
        .client_credentials_session()
        .access_token()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, AuthError::TemporarilyUnavailable { status: None, .. }),
        "{error:?}"
    );
    assert_eq!(
        answered.load(Ordering::SeqCst),
        0,
        "no request went over an untrusted connection"
    );

    // The same server, trusted through the app's root: PEM, then DER.
    for root in [ca.root_pem.clone().into_bytes(), ca.root_der.clone()] {
        let client = AuthClient::new(config(&url).add_root_certificate(root)).unwrap();
        let token = client.client_credentials_session().access_token().await.unwrap();
        assert_eq!(tokenkeeper::ExposeSecret::expose_secret(&token), "from-the-private-ca");
    }
    assert_eq!(answered.load(Ordering::SeqCst), 2);
}

#[test]
fn an_unreadable_root_certificate_fails_the_build_with_a_clear_error() {
    for bad in [
        b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n".to_vec(),
        b"\x30\x03\x02\x01\x00".to_vec(),
        Vec::new(),
    ] {
        let error = AuthClient::new(config("https://as.example.com/token").add_root_certificate(bad)).unwrap_err();
        assert!(
            matches!(&error, AuthError::InvalidConfig { .. }) && error.to_string().contains("root certificate #1"),
            "{error:?}"
        );
    }
}
