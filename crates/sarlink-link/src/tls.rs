//! TLS 1.3 with mutual authentication under the session (rustls through its sans-IO
//! connection API: the blocking driver moves the bytes, no async runtime).
//!
//! Both ends hold a certificate issued by the fleet CA. A node's name is the DNS name in its
//! certificate: the server refuses a `hello` whose `node` its client certificate is not
//! valid for, and the client checks that the server's certificate is valid for the ground's
//! name. Frames inside TLS are unchanged.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName};
use rustls::{ClientConnection, RootCertStore, ServerConnection};

/// Why a TLS configuration could not be built, or a peer's certificate does not name it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM input held no certificate (`what` says which).
    #[error("no certificate in the {what}")]
    NoCertificate {
        /// Which input.
        what: &'static str,
    },
    /// A PEM input could not be parsed.
    #[error("cannot parse the {what}: {detail}")]
    Pem {
        /// Which input.
        what: &'static str,
        /// The parser's complaint.
        detail: String,
    },
    /// rustls refused the configuration (bad key, bad CA, bad revocation list...).
    #[error("invalid TLS configuration: {0}")]
    Config(String),
    /// A name that cannot be a DNS name, so no certificate can carry it.
    #[error("{0:?} cannot be a certificate name")]
    InvalidName(String),
    /// The peer's certificate is not valid for the name it claims.
    #[error("the peer's certificate is not for {0:?}")]
    NameMismatch(String),
}

fn certs(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { what });
    }
    Ok(certs)
}

fn key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsError::Pem {
        what: "private key",
        detail: e.to_string(),
    })
}

fn roots(ca_pem: &[u8]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs(ca_pem, "CA certificate")? {
        roots
            .add(cert)
            .map_err(|e| TlsError::Config(e.to_string()))?;
    }
    Ok(roots)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server's TLS settings: its certificate and key, the fleet CA its clients must chain
/// to, and the revoked certificates. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
}

impl ServerTls {
    /// From PEM: the fleet CA certificate, our certificate chain, our private key, and
    /// revocation lists (possibly none).
    ///
    /// # Errors
    /// [`TlsError`] when an input does not parse or rustls refuses the combination.
    pub fn from_pem(
        ca: &[u8],
        cert_chain: &[u8],
        key_pem: &[u8],
        crls: &[u8],
    ) -> Result<ServerTls, TlsError> {
        let crls = CertificateRevocationListDer::pem_slice_iter(crls)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Pem {
                what: "revocation list",
                detail: e.to_string(),
            })?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots(ca)?),
            provider(),
        )
        .with_crls(crls)
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs(cert_chain, "certificate chain")?, key(key_pem)?)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        Ok(ServerTls {
            config: Arc::new(config),
        })
    }

    /// A rustls server connection with these settings, for a driver of one's own (the
    /// server's event loop makes one when a client first speaks).
    ///
    /// # Errors
    /// When rustls cannot start a handshake with this configuration.
    pub fn connection(&self) -> Result<ServerConnection, rustls::Error> {
        ServerConnection::new(Arc::clone(&self.config))
    }
}

/// The client's TLS settings: its certificate and key, the fleet CA, and the name the
/// server's certificate must carry. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
}

impl ClientTls {
    /// From PEM: the fleet CA certificate, our certificate chain and private key, and the
    /// ground's node name, which its certificate must carry.
    ///
    /// # Errors
    /// [`TlsError`] when an input does not parse, the name cannot be a certificate name, or
    /// rustls refuses the combination.
    pub fn from_pem(
        ca: &[u8],
        cert_chain: &[u8],
        key_pem: &[u8],
        server_name: &str,
    ) -> Result<ClientTls, TlsError> {
        let server_name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| TlsError::InvalidName(server_name.to_owned()))?;
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots(ca)?)
            .with_client_auth_cert(certs(cert_chain, "certificate chain")?, key(key_pem)?)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        Ok(ClientTls {
            config: Arc::new(config),
            server_name,
        })
    }

    /// A rustls client connection with these settings, for a driver of one's own (rustls's
    /// API is sans-IO: feed it the socket's bytes with `read_tls` and `write_tls`).
    ///
    /// # Errors
    /// When rustls cannot start a handshake with this configuration.
    pub fn connection(&self) -> Result<ClientConnection, rustls::Error> {
        ClientConnection::new(Arc::clone(&self.config), self.server_name.clone())
    }
}

/// Checks that `cert` (already verified against the fleet CA by the handshake) is valid for
/// the node name `node`.
///
/// # Errors
/// [`TlsError::InvalidName`] or [`TlsError::NameMismatch`].
pub fn check_name(cert: &CertificateDer<'_>, node: &str) -> Result<(), TlsError> {
    let name = ServerName::try_from(node).map_err(|_| TlsError::InvalidName(node.to_owned()))?;
    let ee = webpki::EndEntityCert::try_from(cert)
        .map_err(|_| TlsError::NameMismatch(node.to_owned()))?;
    ee.verify_is_valid_for_subject_name(&name)
        .map_err(|_| TlsError::NameMismatch(node.to_owned()))
}
