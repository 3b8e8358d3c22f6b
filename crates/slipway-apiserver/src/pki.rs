//! First-start security material in the data directory: a CA and serving certificate for
//! HTTPS, the admin bearer token (kept only as a SHA-256 hash) and `admin.kubeconfig`.
//!
//! Layout:
//! - `pki/ca.crt`, `pki/ca.key`: the cluster CA (generated once, never rotated here);
//! - `pki/server.crt`, `pki/server.key`: the serving certificate, re-issued by the CA when
//!   the names it must cover change;
//! - `auth/tokens`: one line per token, `sha256:<hex> <user> <group>`;
//! - `admin.kubeconfig`: server URL, CA and the admin token, for kubectl and kube-rs.

use std::fs;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificate generation: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Write a file readable only by its owner, atomically (temp file + rename).
fn write_private(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let tmp = path.with_extension("tmp");
    {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(io(&tmp))?;
        f.write_all(contents).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io(path))
}

/// TLS material for the server.
pub struct ServingCert {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "slipway-ca");
    dn.push(DnType::OrganizationName, "Slipway");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2125, 1, 1);
    params
}

/// The names the serving certificate covers for a listen address.
pub fn serving_names(listen: SocketAddr) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let ip = listen.ip();
    if !ip.is_unspecified() && !names.contains(&ip.to_string()) {
        names.push(ip.to_string());
    }
    names
}

/// Load the CA and serving certificate from `dir/pki`, creating what is missing and
/// re-issuing the serving certificate when it does not cover `names`.
pub fn ensure_serving_cert(dir: &Path, names: &[String]) -> Result<ServingCert, PkiError> {
    let pki = dir.join("pki");
    let (ca_crt, ca_key) = (pki.join("ca.crt"), pki.join("ca.key"));
    let (srv_crt, srv_key, srv_names) = (
        pki.join("server.crt"),
        pki.join("server.key"),
        pki.join("server.names"),
    );
    let (ca_pem, ca_key_pair) = if ca_crt.exists() && ca_key.exists() {
        let pem = fs::read_to_string(&ca_crt).map_err(io(&ca_crt))?;
        let key_pem = fs::read_to_string(&ca_key).map_err(io(&ca_key))?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| PkiError::Invalid {
            path: ca_key.clone(),
            message: e.to_string(),
        })?;
        (pem, key)
    } else {
        let key = KeyPair::generate()?;
        let cert = ca_params().self_signed(&key)?;
        write_private(&ca_key, key.serialize_pem().as_bytes())?;
        write_private(&ca_crt, cert.pem().as_bytes())?;
        (cert.pem(), key)
    };
    let wanted = names.join(",");
    let current = fs::read_to_string(&srv_names).unwrap_or_default();
    if !(srv_crt.exists() && srv_key.exists() && current.trim() == wanted) {
        let issuer = Issuer::new(ca_params(), &ca_key_pair);
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.to_vec())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "slipway-apiserver");
        params.distinguished_name = dn;
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = rcgen::date_time_ymd(2025, 1, 1);
        params.not_after = rcgen::date_time_ymd(2125, 1, 1);
        let cert = params.signed_by(&key, &issuer)?;
        write_private(&srv_key, key.serialize_pem().as_bytes())?;
        write_private(&srv_crt, cert.pem().as_bytes())?;
        write_private(&srv_names, wanted.as_bytes())?;
    }
    Ok(ServingCert {
        ca_pem,
        cert_pem: fs::read_to_string(&srv_crt).map_err(io(&srv_crt))?,
        key_pem: fs::read_to_string(&srv_key).map_err(io(&srv_key))?,
    })
}

/// A user the server knows by token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

/// The token authenticator: SHA-256 hashes of valid bearer tokens.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    entries: Vec<([u8; 32], User)>,
}

pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    pub fn load(path: &Path) -> Result<Self, PkiError> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(PkiError::Io {
                    path: path.to_path_buf(),
                    source: e,
                });
            }
        };
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let invalid = |message: &str| PkiError::Invalid {
                path: path.to_path_buf(),
                message: format!("line {}: {message}", n + 1),
            };
            let hash = parts
                .next()
                .and_then(|h| h.strip_prefix("sha256:"))
                .ok_or_else(|| invalid("expected sha256:<hex>"))?;
            let bytes = hex::decode(hash).map_err(|_| invalid("bad hex"))?;
            let hash: [u8; 32] = bytes
                .try_into()
                .map_err(|_| invalid("hash must be 32 bytes"))?;
            let name = parts
                .next()
                .ok_or_else(|| invalid("missing user name"))?
                .to_string();
            let groups = parts
                .next()
                .map(|g| g.split(',').map(str::to_string).collect())
                .unwrap_or_default();
            entries.push((hash, User { name, groups }));
        }
        Ok(Self { entries })
    }

    /// The user a bearer token belongs to. Compares hashes in constant time.
    pub fn authenticate(&self, token: &str) -> Option<&User> {
        let presented = hash_token(token);
        let mut found = None;
        for (hash, user) in &self.entries {
            let diff = hash
                .iter()
                .zip(presented.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 {
                found = Some(user);
            }
        }
        found
    }

    /// An authenticator knowing one token, by the hex SHA-256 hash of it.
    pub fn single(hash_hex: &str, user: User) -> Option<Self> {
        let hash: [u8; 32] = hex::decode(hash_hex).ok()?.try_into().ok()?;
        Some(Self {
            entries: vec![(hash, user)],
        })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Make sure an admin token exists and `admin.kubeconfig` points at `server_url` with it.
/// The token is read back from an existing kubeconfig when it still matches a stored hash;
/// otherwise a new one is generated and its hash appended to `auth/tokens`.
pub fn ensure_admin_kubeconfig(
    dir: &Path,
    server_url: &str,
    ca_pem: &str,
) -> Result<(Tokens, PathBuf), PkiError> {
    let tokens_path = dir.join("auth").join("tokens");
    let kubeconfig_path = dir.join("admin.kubeconfig");
    let mut tokens = Tokens::load(&tokens_path)?;
    let existing = fs::read_to_string(&kubeconfig_path)
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.trim()
                    .strip_prefix("token: ")
                    .map(|t| t.trim().to_string())
            })
        })
        .filter(|t| tokens.authenticate(t).is_some());
    let token = match existing {
        Some(t) => t,
        None => {
            let raw: [u8; 32] = rand::random();
            let token = hex::encode(raw);
            let mut text = fs::read_to_string(&tokens_path).unwrap_or_default();
            text.push_str(&format!(
                "sha256:{} admin system:masters\n",
                hex::encode(hash_token(&token))
            ));
            write_private(&tokens_path, text.as_bytes())?;
            tokens = Tokens::load(&tokens_path)?;
            token
        }
    };
    let kubeconfig = render_kubeconfig("slipway", server_url, ca_pem, "admin", &token);
    write_private(&kubeconfig_path, kubeconfig.as_bytes())?;
    Ok((tokens, kubeconfig_path))
}

/// A kubeconfig with one cluster, one token user and one context (named `name`, namespace
/// `default`), trusting `ca_pem`.
pub fn render_kubeconfig(
    name: &str,
    server_url: &str,
    ca_pem: &str,
    user: &str,
    token: &str,
) -> String {
    let ca_b64 = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: {server_url}\n    certificate-authority-data: {ca_b64}\nusers:\n- name: {user}\n  user:\n    token: {token}\ncontexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {user}\n    namespace: default\ncurrent-context: {name}\n"
    )
}

/// The URL clients should use for a listen address (loopback for wildcard binds).
pub fn client_url(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        ip if ip.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
        ip => ip,
    };
    match ip {
        IpAddr::V4(v4) => format!("https://{v4}:{}", listen.port()),
        IpAddr::V6(v6) => format!("https://[{v6}]:{}", listen.port()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_generates_and_second_start_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let names = serving_names("127.0.0.1:6443".parse().unwrap());
        let a = ensure_serving_cert(dir.path(), &names).unwrap();
        let b = ensure_serving_cert(dir.path(), &names).unwrap();
        assert_eq!(a.ca_pem, b.ca_pem);
        assert_eq!(a.cert_pem, b.cert_pem);
        let (tokens, path) =
            ensure_admin_kubeconfig(dir.path(), "https://127.0.0.1:6443", &a.ca_pem).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let token = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("token: "))
            .unwrap()
            .to_string();
        assert!(tokens.authenticate(&token).is_some());
        assert!(tokens.authenticate("wrong").is_none());
        // The token file holds only the hash.
        let stored = fs::read_to_string(dir.path().join("auth/tokens")).unwrap();
        assert!(!stored.contains(&token));
        // A restart keeps the same token.
        let (_, _) =
            ensure_admin_kubeconfig(dir.path(), "https://127.0.0.1:7443", &a.ca_pem).unwrap();
        let again = fs::read_to_string(&path).unwrap();
        assert!(again.contains(&token));
        assert!(again.contains("https://127.0.0.1:7443"));
    }

    #[test]
    fn new_names_reissue_the_serving_cert_under_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        let a = ensure_serving_cert(dir.path(), &["localhost".into()]).unwrap();
        let b = ensure_serving_cert(dir.path(), &["localhost".into(), "10.0.0.1".into()]).unwrap();
        assert_eq!(a.ca_pem, b.ca_pem);
        assert_ne!(a.cert_pem, b.cert_pem);
    }
}
