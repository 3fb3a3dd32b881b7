//! TLS for both Postgres connections (`sslmode` in `source.url`), with libpq's semantics:
//! `disable` never, `prefer` (the default) when the server offers it, `require` always or fail.
//! Like libpq's `require`, the server certificate is not verified unless
//! `source.ssl_root_cert` names a CA file: then chain and host name are verified.
//!
//! Invariant: one connector is built per run and shared by every connection, so the snapshot,
//! heartbeat, catalog and replication sessions all negotiate the same way.

use native_tls::{Certificate, TlsConnector};
use postgres_native_tls::MakeTlsConnector;

#[derive(Clone)]
pub(crate) struct PgTls {
    pub(crate) native: TlsConnector,
    pub(crate) make: MakeTlsConnector,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("cannot read source.ssl_root_cert {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("source.ssl_root_cert {path} is not a PEM certificate: {source}")]
    Cert {
        path: String,
        source: native_tls::Error,
    },
    #[error("TLS setup failed: {0}")]
    Setup(#[from] native_tls::Error),
}

impl PgTls {
    pub(crate) fn new(root_cert: Option<&str>) -> Result<PgTls, TlsError> {
        let mut b = TlsConnector::builder();
        match root_cert {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| TlsError::Read {
                    path: path.into(),
                    source: e,
                })?;
                let cert = Certificate::from_pem(&pem).map_err(|e| TlsError::Cert {
                    path: path.into(),
                    source: e,
                })?;
                b.add_root_certificate(cert);
            }
            None => {
                b.danger_accept_invalid_certs(true)
                    .danger_accept_invalid_hostnames(true);
            }
        }
        let native = b.build()?;
        Ok(PgTls {
            make: MakeTlsConnector::new(native.clone()),
            native,
        })
    }
}
