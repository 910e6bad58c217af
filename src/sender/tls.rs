//! What `send --ca-cert` trusts: the public roots, the file's certificates
//! as roots, and a self-signed certificate of the file that is itself
//! marked a CA as the server's own. `openssl req -x509` makes such a
//! certificate by default and curl's `--cacert` takes it, but webpki
//! refuses a CA certificate as a server's (`CaUsedAsEndEntity`), so the
//! README's self-signed setup failed with it.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// A client configuration trusting the public roots and `pem`'s
/// certificates (one or a bundle).
pub fn trusting(pem: &[u8]) -> Result<ClientConfig, String> {
    let own = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("it is not a PEM certificate file: {e}"))?;
    if own.is_empty() {
        return Err("it holds no PEM certificate".into());
    }
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for cert in &own {
        roots
            .add(cert.clone())
            .map_err(|e| format!("a certificate in it cannot be a root: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chains = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| e.to_string())?;
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(OwnOrChained { chains, own }))
        .with_no_client_auth())
}

/// Verifies as webpki does, but takes a CA certificate of the file as the
/// server's own when the server presents exactly it.
#[derive(Debug)]
struct OwnOrChained {
    chains: Arc<WebPkiServerVerifier>,
    own: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for OwnOrChained {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.chains.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        match verified {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(ref why)))
                if matches!(
                    why.0.downcast_ref::<webpki::Error>(),
                    Some(webpki::Error::CaUsedAsEndEntity)
                ) && self.own.iter().any(|c| c == end_entity) =>
            {
                // Its own root, so the chain is the certificate itself,
                // signed by the key the handshake proves; what is left to
                // check is the name.
                webpki::EndEntityCert::try_from(end_entity)
                    .and_then(|cert| cert.verify_is_valid_for_subject_name(server_name))
                    .map_err(|_| {
                        rustls::Error::InvalidCertificate(CertificateError::NotValidForName)
                    })?;
                Ok(ServerCertVerified::assertion())
            }
            verified => verified,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chains.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chains.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chains.supported_verify_schemes()
    }
}
