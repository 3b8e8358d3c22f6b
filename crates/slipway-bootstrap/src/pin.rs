//! The cluster CA pin a joining machine checks the API against, as kubeadm computes it
//! (`kubeadm token create --print-join-command`): the SHA-256 of the CA certificate's
//! DER-encoded SubjectPublicKeyInfo.

use sha2::{Digest, Sha256};

/// Why a CA certificate could not be pinned.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PinError {
    /// The text holds no PEM `CERTIFICATE` block.
    #[error("the CA is not a PEM certificate: {0}")]
    Pem(String),
    /// The PEM block is not an X.509 certificate.
    #[error("the CA certificate does not parse: {0}")]
    Certificate(String),
}

/// `sha256:<hex>` of the first certificate in `ca_pem`, for kubeadm's `caCertHashes`.
pub fn ca_cert_hash(ca_pem: &str) -> Result<String, PinError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes())
        .map_err(|e| PinError::Pem(e.to_string()))?;
    if pem.label != "CERTIFICATE" {
        return Err(PinError::Pem(format!(
            "found a {:?} block, not CERTIFICATE",
            pem.label
        )));
    }
    let cert = pem
        .parse_x509()
        .map_err(|e| PinError::Certificate(e.to_string()))?;
    let spki = cert.tbs_certificate.subject_pki.raw;
    Ok(format!("sha256:{}", hex::encode(Sha256::digest(spki))))
}

/// Whether `text` has the shape of a pin: "sha256:" and 64 lower-case hex digits.
pub fn is_ca_cert_hash(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // A self-signed P-256 CA made with openssl, and the pin `openssl x509 -pubkey -noout |
    // openssl pkey -pubin -outform der | sha256sum` gives for it.
    const CA: &str = "-----BEGIN CERTIFICATE-----
MIIBijCCATGgAwIBAgIUWLJ4pnkKt1dd0oM5CD7IBwf+CDEwCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPc2xpcHdheS10ZXN0LWNhMCAXDTI2MTEyMTIxMTAyMloYDzIx
MjYxMDI4MjExMDIyWjAaMRgwFgYDVQQDDA9zbGlwd2F5LXRlc3QtY2EwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAAT1xIdu3t2h5EzcZk4AqCbD7e5CnkQFo2HoQsQm
ZPgoEOdL9KtjMUYLVNiU6M/yKHNOMXu8t0OxvPVtjaQLTs+0o1MwUTAdBgNVHQ4E
FgQUqOvYipDfRO5fgcQyrwj85EGi/sowHwYDVR0jBBgwFoAUqOvYipDfRO5fgcQy
rwj85EGi/sowDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiApzvNu
U1PYjpxkSy3+osXtMdTl4QtNvXCh7boylS/8IwIgTygLRD62NdllVEhVXx5HAUBb
GQ3ij+2byun0XdTLONU=
-----END CERTIFICATE-----";
    const PIN: &str = "sha256:54c3a1e817313cec1d9e2de9c341d5b457a0257e73ce3940d6c27fc379271531";

    #[test]
    fn the_pin_is_what_openssl_and_kubeadm_compute() {
        assert_eq!(ca_cert_hash(CA).as_deref(), Ok(PIN));
        assert!(is_ca_cert_hash(PIN));
    }

    #[test]
    fn shape() {
        assert!(is_ca_cert_hash(&format!("sha256:{}", "a".repeat(64))));
        assert!(!is_ca_cert_hash(&"a".repeat(64)));
        assert!(!is_ca_cert_hash(&format!("sha256:{}", "A".repeat(64))));
        assert!(!is_ca_cert_hash("sha256:abc"));
    }

    #[test]
    fn garbage_is_refused() {
        assert!(matches!(ca_cert_hash("hello"), Err(PinError::Pem(_))));
        let truncated: String = CA
            .lines()
            .take(3)
            .chain(CA.lines().last())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(ca_cert_hash(&truncated).is_err(), "a truncated certificate");
    }
}
