//! TLS to PostgreSQL as libpq does it: a store URL's `sslmode` and `sslrootcert` decide
//! whether the session is encrypted and whose certificate it trusts.
//!
//! tokio-postgres reads `sslmode` only up to `require` and knows no `sslrootcert`, so both are
//! taken off the URL here and the rest is left to it. What each mode means is libpq's:
//!
//! | sslmode | encrypted | the server's certificate |
//! |---|---|---|
//! | `disable` | never | - |
//! | `allow`, `prefer` (the default) | when the server offers it | not checked |
//! | `require` | always | not checked; checked as `verify-full` when `sslrootcert` is given |
//! | `verify-full` | always | signed by `sslrootcert` (else the system's roots) and naming the host |
//!
//! `verify-ca` (the chain without the host name) is refused with a pointer to `verify-full`,
//! rather than quietly checking more or less than it says.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// What a store URL asks of TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub mode: SslMode,
    /// `sslrootcert`: the PEM file of the certificates to trust.
    pub root: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyFull,
}

impl Tls {
    /// Whether the server's certificate is checked.
    fn verifies(&self) -> bool {
        self.mode == SslMode::VerifyFull || (self.mode == SslMode::Require && self.root.is_some())
    }
}

/// Splits a `postgres://` URL into what tokio-postgres reads (its `sslmode` one it knows) and
/// the TLS it asks for. The error is the reason, for `StoreError::Location`.
pub fn split(url: &str) -> Result<(postgres::Config, Tls), String> {
    let mut parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
    let mut tls = Tls {
        mode: SslMode::Prefer,
        root: None,
    };
    // The other parameters are kept as they were written (not decoded and encoded again).
    let mut kept = Vec::new();
    for segment in parsed.query().unwrap_or("").split('&') {
        let (key, value) = segment.split_once('=').unwrap_or((segment, ""));
        let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
        match key {
            "sslmode" => {
                tls.mode = match &*value {
                    "disable" => SslMode::Disable,
                    "allow" | "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-full" => SslMode::VerifyFull,
                    "verify-ca" => {
                        return Err("sslmode=verify-ca is not supported: use verify-full, \
                                    which checks the certificate's host name too"
                            .into());
                    }
                    other => {
                        return Err(format!(
                            "sslmode=`{other}`: expected disable, allow, prefer, require or verify-full"
                        ));
                    }
                }
            }
            "sslrootcert" => tls.root = Some(PathBuf::from(&*value)),
            "" => {}
            _ => kept.push(segment),
        }
    }
    let query = kept.join("&");
    parsed.set_query((!query.is_empty()).then_some(&query));
    let mut config: postgres::Config = parsed
        .as_str()
        .parse()
        .map_err(|e: postgres::Error| e.to_string())?;
    config.ssl_mode(match tls.mode {
        SslMode::Disable => postgres::config::SslMode::Disable,
        SslMode::Prefer => postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyFull => postgres::config::SslMode::Require,
    });
    Ok((config, tls))
}

/// The connector for `tls`; an error names the root file that could not be used.
pub fn connector(tls: &Tls) -> Result<MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = if tls.verifies() {
        let mut roots = RootCertStore::empty();
        match &tls.root {
            Some(path) => {
                let shown = path.display();
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("sslrootcert `{shown}`: {e}"))?;
                if certs.is_empty() {
                    return Err(format!("sslrootcert `{shown}` holds no certificate"));
                }
                for cert in certs {
                    roots
                        .add(cert)
                        .map_err(|e| format!("sslrootcert `{shown}`: {e}"))?;
                }
            }
            None => {
                // Certificates the system store cannot parse are skipped, as browsers do.
                let _ =
                    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
            .with_no_client_auth()
    };
    Ok(MakeRustlsConnect::new(config))
}

/// libpq's `prefer` and `require` without a root file: encrypted, whoever the server is. The
/// handshake's signatures are still checked (the session key is the certificate's).
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_parameters_are_taken_off_and_the_rest_kept() {
        let (config, tls) =
            split("postgres://u:pw@db:5433/prelabel?sslmode=verify-full&sslrootcert=/ca.pem&connect_timeout=5")
                .expect("parses");
        assert_eq!(
            tls,
            Tls {
                mode: SslMode::VerifyFull,
                root: Some("/ca.pem".into())
            }
        );
        assert!(tls.verifies());
        assert_eq!(config.get_ssl_mode(), postgres::config::SslMode::Require);
        assert_eq!(config.get_dbname(), Some("prelabel"));
        assert_eq!(
            config.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(5))
        );
        let (config, tls) = split("postgres://u@db/p").expect("parses");
        assert_eq!(tls.mode, SslMode::Prefer);
        assert!(!tls.verifies());
        assert_eq!(config.get_ssl_mode(), postgres::config::SslMode::Prefer);
        let (_, tls) =
            split("postgres://u@db/p?sslmode=require&sslrootcert=ca.pem").expect("parses");
        assert!(
            tls.verifies(),
            "require with a root file checks, as libpq does"
        );
        // Other parameters reach tokio-postgres as written: `+` is not a space there.
        let (config, tls) =
            split("postgres://u@db/p?sslrootcert=%2Fetc%2Fca%2Bold.pem&application_name=a+b")
                .expect("parses");
        assert_eq!(tls.root, Some(PathBuf::from("/etc/ca+old.pem")));
        assert_eq!(config.get_application_name(), Some("a+b"));
        for (url, named) in [
            ("postgres://u@db/p?sslmode=verify-ca", "verify-full"),
            ("postgres://u@db/p?sslmode=always", "`always`"),
        ] {
            let e = split(url).expect_err(url);
            assert!(e.contains(named), "{url}: {e}");
        }
    }

    #[test]
    fn a_root_file_that_is_not_one_is_named() {
        let dir = std::env::temp_dir().join(format!("prelabel-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a folder");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("written");
        for path in [empty, dir.join("missing.pem")] {
            let tls = Tls {
                mode: SslMode::VerifyFull,
                root: Some(path.clone()),
            };
            let e = connector(&tls).err().expect("refused");
            assert!(e.contains(&path.display().to_string()), "{e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
