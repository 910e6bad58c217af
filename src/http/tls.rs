//! The HTTPS certificate chain and private key (`TLS_CERT_PATH`,
//! `TLS_KEY_PATH`), read so that a startup error names the one setting
//! whose file is wrong. axum-server's own loader reads both at once and
//! reports rustls' words alone ("failed to parse certificate"), leaving
//! the operator to guess which file it meant.

use std::path::Path;

use axum_server::tls_rustls::RustlsConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The server's TLS configuration from a PEM certificate chain (leaf
/// first) and a PEM private key; the error is one sentence naming the
/// setting and its file.
pub async fn load(cert_path: &Path, key_path: &Path) -> Result<RustlsConfig, String> {
    let cert_error =
        |why: String| format!("cannot load TLS_CERT_PATH {}: {why}", cert_path.display());
    let key_error = |why: String| format!("cannot load TLS_KEY_PATH {}: {why}", key_path.display());

    let pem = tokio::fs::read(cert_path)
        .await
        .map_err(|e| cert_error(e.to_string()))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .map(|cert| cert.map(|c| c.as_ref().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(format!("not a PEM certificate chain ({e})")))?;
    if chain.is_empty() {
        return Err(cert_error(
            "it holds no PEM certificate (BEGIN CERTIFICATE)".into(),
        ));
    }

    let pem = tokio::fs::read(key_path)
        .await
        .map_err(|e| key_error(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| key_error(format!("it holds no usable PEM private key ({e})")))?;

    RustlsConfig::from_der(chain, key.secret_der().to_vec())
        .await
        .map_err(|e| {
            format!(
                "TLS_KEY_PATH {} is not the key of TLS_CERT_PATH {}'s certificate, or rustls cannot use it: {e}",
                key_path.display(),
                cert_path.display()
            )
        })
}
