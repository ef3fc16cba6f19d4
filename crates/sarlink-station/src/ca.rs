//! The fleet CA: a certificate authority sarlink makes itself (rcgen), the certificates it
//! issues to the ground and the drones (a node's name is the DNS name in its certificate),
//! and the revocation list.
//!
//! A CA directory holds `ca.pem` (the CA certificate, given to every node), `ca.key` (its
//! private key, mode 0600, never leaves the operator's machine), `issued.txt` (one line per
//! certificate: node name and serial number), `revoked.txt` (revoked serials) and
//! `crl.pem` (the revocation list the ground reads). `issue NODE` writes `NODE.pem` and
//! `NODE.key` (mode 0600).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SerialNumber,
};

/// The CA's subject. Issuing rebuilds the CA certificate from this name and the stored key,
/// so it must never change: certificates chain by name and key, not by the PEM bytes.
const CA_NAME: &str = "sarlink fleet CA";

/// Why a CA operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// `init` would overwrite an existing CA.
    #[error("{0} already exists: refusing to replace a fleet CA")]
    Exists(PathBuf),
    /// A private key file is readable by the group or others.
    #[error("{path} is readable by others (mode {mode:o}): run chmod 600 on it")]
    KeyReadable {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A node name that cannot be a certificate's DNS name.
    #[error("{0:?} cannot be a certificate name (letters, digits, '-' and '.' only)")]
    InvalidName(String),
    /// rcgen refused (bad key file, ...).
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// The files do not make a TLS configuration.
    #[error("TLS: {0}")]
    Tls(#[from] sarlink_link::tls::TlsError),
    /// `revoke` of a node never issued.
    #[error("no certificate was issued to {0:?}")]
    NotIssued(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CaError + '_ {
    move |source| CaError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads a private key file, refusing one the group or others can read.
///
/// # Errors
/// [`CaError::KeyReadable`] or [`CaError::Io`].
pub fn read_private_key(path: &Path) -> Result<String, CaError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path).map_err(io(path))?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CaError::KeyReadable {
                path: path.to_owned(),
                mode,
            });
        }
    }
    fs::read_to_string(path).map_err(io(path))
}

fn write_new(path: &Path, contents: &str, mode: u32) -> Result<(), CaError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            CaError::Exists(path.to_owned())
        } else {
            CaError::Io {
                path: path.to_owned(),
                source: e,
            }
        }
    })?;
    f.write_all(contents.as_bytes()).map_err(io(path))
}

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    p.distinguished_name = dn;
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = rcgen::date_time_ymd(2025, 1, 1);
    p.not_after = rcgen::date_time_ymd(2125, 1, 1);
    p
}

/// The fleet CA in `dir`, loaded for issuing.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn load(dir: &Path) -> Result<Ca, CaError> {
    let key = KeyPair::from_pem(&read_private_key(&dir.join("ca.key"))?)?;
    // Same name, same key, same extensions: what it signs chains to the stored ca.pem.
    let cert = ca_params().self_signed(&key)?;
    Ok(Ca { cert, key })
}

/// Creates a fleet CA in `dir` (made if missing): `ca.pem` and `ca.key` (mode 0600).
///
/// # Errors
/// [`CaError::Exists`] when `dir` already holds a CA; I/O and rcgen failures.
pub fn init(dir: &Path) -> Result<(), CaError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    let key = KeyPair::generate()?;
    let cert = ca_params().self_signed(&key)?;
    write_new(&dir.join("ca.key"), &key.serialize_pem(), 0o600)?;
    write_new(&dir.join("ca.pem"), &cert.pem(), 0o644)?;
    write_crl(dir, &Ca { cert, key }, &[])
}

fn valid_name(node: &str) -> bool {
    !node.is_empty()
        && node.len() <= 63
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !node.starts_with(['-', '.'])
        && !node.ends_with(['-', '.'])
}

/// Issues a certificate for `node` (valid as client and server): writes `NODE.pem` and
/// `NODE.key` (mode 0600) in `dir` and records its serial in `issued.txt`. Returns the two
/// paths.
///
/// # Errors
/// [`CaError::InvalidName`], [`CaError::Exists`] when `node` already has files, a CA key
/// readable by others, I/O and rcgen failures.
pub fn issue(dir: &Path, node: &str) -> Result<(PathBuf, PathBuf), CaError> {
    if !valid_name(node) {
        return Err(CaError::InvalidName(node.to_owned()));
    }
    let ca = load(dir)?;
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(vec![node.to_owned()])?;
    p.distinguished_name.push(DnType::CommonName, node);
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.not_before = rcgen::date_time_ymd(2025, 1, 1);
    p.not_after = rcgen::date_time_ymd(2125, 1, 1);
    // Positive and below 2^63: a DER integer without a sign byte surprise.
    let serial = rand::random::<u64>() >> 1;
    p.serial_number = Some(SerialNumber::from(serial));
    let cert = p.signed_by(&key, &ca.cert, &ca.key)?;
    let cert_path = dir.join(format!("{node}.pem"));
    let key_path = dir.join(format!("{node}.key"));
    write_new(&key_path, &key.serialize_pem(), 0o600)?;
    write_new(&cert_path, &cert.pem(), 0o644)?;
    let issued = dir.join("issued.txt");
    let mut f = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&issued)
        .map_err(io(&issued))?;
    writeln!(f, "{node} {serial}").map_err(io(&issued))?;
    Ok((cert_path, key_path))
}

fn lines(path: &Path) -> Result<Vec<String>, CaError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(s.lines().map(str::to_owned).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(CaError::Io {
            path: path.to_owned(),
            source: e,
        }),
    }
}

fn write_crl(dir: &Path, ca: &Ca, serials: &[u64]) -> Result<(), CaError> {
    let now = rcgen::date_time_ymd(2025, 1, 1);
    let params = CertificateRevocationListParams {
        this_update: now,
        next_update: rcgen::date_time_ymd(2125, 1, 1),
        crl_number: SerialNumber::from(serials.len() as u64 + 1),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from(*s),
                revocation_time: now,
                reason_code: Some(RevocationReason::Unspecified),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let pem = params.signed_by(&ca.cert, &ca.key)?.pem()?;
    let path = dir.join("crl.pem");
    let tmp = dir.join("crl.pem.new");
    fs::write(&tmp, pem).map_err(io(&tmp))?;
    fs::rename(&tmp, &path).map_err(io(&path))
}

/// Revokes every certificate issued to `node`: adds their serials to `revoked.txt` and
/// rewrites `crl.pem`. A ground reads the list at start and again on SIGHUP.
///
/// # Errors
/// [`CaError::NotIssued`], a CA key readable by others, I/O and rcgen failures.
pub fn revoke(dir: &Path, node: &str) -> Result<(), CaError> {
    let ca = load(dir)?;
    let serials: Vec<u64> = lines(&dir.join("issued.txt"))?
        .iter()
        .filter_map(|l| l.split_once(' '))
        .filter(|(n, _)| *n == node)
        .filter_map(|(_, s)| s.trim().parse().ok())
        .collect();
    if serials.is_empty() {
        return Err(CaError::NotIssued(node.to_owned()));
    }
    let revoked_path = dir.join("revoked.txt");
    let mut revoked: Vec<u64> = lines(&revoked_path)?
        .iter()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for s in serials {
        if !revoked.contains(&s) {
            revoked.push(s);
        }
    }
    let text: String = revoked.iter().map(|s| format!("{s}\n")).collect();
    fs::write(&revoked_path, text).map_err(io(&revoked_path))?;
    write_crl(dir, &ca, &revoked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn temp_dir(tag: &str) -> PathBuf {
        static N: AtomicU32 = AtomicU32::new(0);
        let d = std::env::temp_dir().join(format!(
            "sarlink-ca-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn init_issue_revoke_and_refusals() {
        let dir = temp_dir("flow");
        init(&dir).unwrap();
        assert!(matches!(init(&dir), Err(CaError::Exists(_))));
        let (cert, key) = issue(&dir, "drone-1").unwrap();
        assert!(
            fs::read_to_string(&cert)
                .unwrap()
                .contains("BEGIN CERTIFICATE")
        );
        assert!(read_private_key(&key).unwrap().contains("PRIVATE KEY"));
        assert!(matches!(issue(&dir, "drone-1"), Err(CaError::Exists(_))));
        assert!(matches!(
            issue(&dir, "bad name"),
            Err(CaError::InvalidName(_))
        ));
        assert!(matches!(revoke(&dir, "nobody"), Err(CaError::NotIssued(_))));
        let before = fs::read_to_string(dir.join("crl.pem")).unwrap();
        revoke(&dir, "drone-1").unwrap();
        let after = fs::read_to_string(dir.join("crl.pem")).unwrap();
        assert_ne!(before, after, "the list now names drone-1's serial");
        let _ = fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn a_key_readable_by_others_is_refused_with_a_clear_error() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("perm");
        init(&dir).unwrap();
        let key = dir.join("ca.key");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let err = issue(&dir, "drone-1").unwrap_err();
        assert!(
            matches!(err, CaError::KeyReadable { mode: 0o644, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"), "{err}");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        issue(&dir, "drone-1").unwrap();
        let _ = fs::remove_dir_all(&dir);
    }
}

fn read(path: &Path) -> Result<Vec<u8>, CaError> {
    fs::read(path).map_err(io(path))
}

/// The ground's TLS from a directory holding `ca.pem`, `NODE.pem`, `NODE.key` (not readable
/// by others) and optionally `crl.pem`. Called at start and again on SIGHUP (for a new
/// revocation list).
///
/// # Errors
/// A missing or unreadable file, a key readable by others, or files that do not fit.
pub fn server_tls(dir: &Path, node: &str) -> Result<sarlink_link::tls::ServerTls, CaError> {
    let crl = match fs::read(dir.join("crl.pem")) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io(&dir.join("crl.pem"))(e)),
    };
    Ok(sarlink_link::tls::ServerTls::from_pem(
        &read(&dir.join("ca.pem"))?,
        &read(&dir.join(format!("{node}.pem")))?,
        read_private_key(&dir.join(format!("{node}.key")))?.as_bytes(),
        &crl,
    )?)
}

/// A drone's TLS from a directory holding `ca.pem`, `NODE.pem` and `NODE.key` (not readable
/// by others); the ground's certificate must carry `ground_name`.
///
/// # Errors
/// A missing or unreadable file, a key readable by others, or files that do not fit.
pub fn client_tls(
    dir: &Path,
    node: &str,
    ground_name: &str,
) -> Result<sarlink_link::tls::ClientTls, CaError> {
    Ok(sarlink_link::tls::ClientTls::from_pem(
        &read(&dir.join("ca.pem"))?,
        &read(&dir.join(format!("{node}.pem")))?,
        read_private_key(&dir.join(format!("{node}.key")))?.as_bytes(),
        ground_name,
    )?)
}

/// `sarlink-ground ca`: manage the fleet CA.
#[derive(Debug, clap::Args)]
pub struct CaArgs {
    /// The CA directory
    #[arg(long, default_value = "fleet-ca")]
    pub dir: PathBuf,
    /// What to do
    #[command(subcommand)]
    pub action: CaAction,
}

/// What `sarlink-ground ca` does.
#[derive(Debug, clap::Subcommand)]
pub enum CaAction {
    /// Create the fleet CA (ca.pem, ca.key)
    Init,
    /// Issue a certificate for a node (NODE.pem, NODE.key): its name is the certificate's
    Issue {
        /// The node's name (the ground's too)
        node: String,
    },
    /// Revoke every certificate of a node and rewrite crl.pem (send the ground SIGHUP)
    Revoke {
        /// The node's name
        node: String,
    },
}

/// Runs a `ca` command and says what it did.
///
/// # Errors
/// See [`CaError`].
pub fn run(args: &CaArgs) -> Result<String, CaError> {
    let dir = &args.dir;
    Ok(match &args.action {
        CaAction::Init => {
            init(dir)?;
            format!(
                "fleet CA created in {}: give ca.pem to every node, keep ca.key here",
                dir.display()
            )
        }
        CaAction::Issue { node } => {
            let (cert, key) = issue(dir, node)?;
            format!("issued {}: {} and {}", node, cert.display(), key.display())
        }
        CaAction::Revoke { node } => {
            revoke(dir, node)?;
            format!(
                "revoked {node}: {} rewritten",
                dir.join("crl.pem").display()
            )
        }
    })
}
