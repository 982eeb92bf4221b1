//! The CA: what it signs verifies, what its key signs outside its hosts does not,
//! and its files are made, reloaded and refused as they should be.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, Error as TlsError};

use super::files::verifier_for;
use super::*;

const DAY: Duration = Duration::from_secs(24 * 3600);

fn zoom_hosts() -> Vec<String> {
    vec!["zoom.us".to_owned(), "api.zoom.us".to_owned()]
}

fn ca() -> Authority {
    Authority::generate(&zoom_hosts()).expect("generate")
}

/// What a client trusting only `ca_der` says of `chain` presented for `name`.
fn verify(
    ca_der: &CertificateDer<'_>,
    chain: &[CertificateDer<'_>],
    name: &str,
) -> Result<(), TlsError> {
    let verifier = verifier_for(ca_der).expect("verifier");
    let name = ServerName::try_from(name).expect("server name").to_owned();
    let (leaf, intermediates) = chain.split_first().expect("a chain");
    verifier
        .verify_server_cert(leaf, intermediates, &name, &[], UnixTime::now())
        .map(|_| ())
}

/// A leaf for `name` signed by `issuer`, with none of `Authority::leaf`'s checks.
fn forged_leaf(name: &str, issuer: &Issuer<'_, KeyPair>) -> CertificateDer<'static> {
    let mut params = leaf_params(name).expect("params");
    let now = SystemTime::now();
    set_validity(&mut params, now, now + DAY).expect("validity");
    let key = KeyPair::generate().expect("key");
    params.signed_by(&key, issuer).expect("sign").der().clone()
}

/// A CA without name constraints: the control, showing the rig accepts the same
/// forged leaves when nothing constrains their issuer.
fn unconstrained_ca() -> (CertificateDer<'static>, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "control CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("self-sign");
    (cert.der().clone(), Issuer::new(params, key))
}

/// The webpki error inside rustls's `Other`, by name.
fn other_error(result: Result<(), TlsError>) -> String {
    match result {
        Err(TlsError::InvalidCertificate(CertificateError::Other(other))) => other.to_string(),
        other => panic!("expected a webpki error passed through as Other, got {other:?}"),
    }
}

#[test]
fn a_leaf_for_api_zoom_us_verifies_under_the_ca_alone() {
    let ca = ca();
    let leaf = ca.leaf("api.zoom.us", DAY).expect("leaf");
    assert_eq!(leaf.cert.len(), 2, "chain is [leaf, ca]");
    assert_eq!(leaf.cert[1], ca.cert_der);
    verify(&ca.cert_der, &leaf.cert, "api.zoom.us").expect("verifies");
    verify(&ca.cert_der, &leaf.cert[..1], "api.zoom.us").expect("verifies without the CA sent");
    let apex = ca.leaf("zoom.us", DAY).expect("leaf");
    verify(&ca.cert_der, &apex.cert, "zoom.us").expect("verifies");
    // The SAN is the host alone: the api leaf is no good for the apex.
    let wrong = verify(&ca.cert_der, &leaf.cert, "zoom.us");
    assert!(
        matches!(
            wrong,
            Err(TlsError::InvalidCertificate(
                CertificateError::NotValidForNameContext { .. }
            ))
        ),
        "{wrong:?}"
    );
}

#[test]
fn the_ca_key_cannot_vouch_for_names_outside_its_constraints() {
    let ca = ca();
    let (control_der, control) = unconstrained_ca();
    for name in [
        "example.com",
        "evil.zoom.us.attacker.com",
        "bank.example",
        "zoom.us.com",
        "notzoom.us",
    ] {
        let forged = forged_leaf(name, &ca.issuer);
        let error = other_error(verify(&ca.cert_der, &[forged], name));
        println!("{name}: rejected with {error}");
        assert!(error.contains("NameConstraintViolation"), "{name}: {error}");

        let control_leaf = forged_leaf(name, &control);
        verify(&control_der, &[control_leaf], name)
            .expect("the same leaf from an unconstrained CA verifies");
    }
}

#[test]
fn the_ca_key_cannot_vouch_for_ip_addresses() {
    let ca = ca();
    let (control_der, control) = unconstrained_ca();
    for ip in ["203.0.113.7", "2001:db8::1"] {
        let forged = forged_leaf(ip, &ca.issuer);
        let error = other_error(verify(&ca.cert_der, &[forged], ip));
        println!("{ip}: rejected with {error}");
        assert!(error.contains("NameConstraintViolation"), "{ip}: {error}");
        verify(&control_der, &[forged_leaf(ip, &control)], ip).expect("control verifies");
    }
}

/// RFC 5280: a dNSName constraint `zoom.us` permits its subdomains too. Pinned
/// here so that the reach of a leaked key is written down, not assumed.
#[test]
fn a_subdomain_of_a_permitted_host_is_within_the_constraints() {
    let ca = ca();
    let forged = forged_leaf("files.zoom.us", &ca.issuer);
    verify(&ca.cert_der, &[forged], "files.zoom.us").expect("within zoom.us");
    assert!(matches!(
        ca.leaf("files.zoom.us", DAY),
        Err(CaError::HostNotPermitted { .. })
    ));
}

/// An intermediate the key signs is still held to the CA's constraints. (webpki
/// keeps only a trust anchor's name, key and name constraints, so it does not
/// enforce the CA's pathlen 0 as OpenSSL and Go do; the constraints it does keep
/// are what bound a leaked key.)
#[test]
fn an_intermediate_under_the_ca_is_still_bound_by_its_constraints() {
    let ca = ca();
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "sneaky intermediate");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let now = SystemTime::now();
    set_validity(&mut params, now, now + DAY).expect("validity");
    let key = KeyPair::generate().expect("key");
    let intermediate = params
        .signed_by(&key, &ca.issuer)
        .expect("sign")
        .der()
        .clone();
    let issuer = Issuer::new(params, key);
    for name in ["example.com", "bank.example"] {
        let leaf = forged_leaf(name, &issuer);
        let error = other_error(verify(&ca.cert_der, &[leaf, intermediate.clone()], name));
        println!("{name} via an intermediate: rejected with {error}");
        assert!(error.contains("NameConstraintViolation"), "{error}");
    }
}

#[test]
fn leaf_is_refused_for_hosts_outside_the_list_and_odd_lifetimes() {
    let ca = ca();
    for host in ["example.com", "zoom.us.example.com", "", "203.0.113.7"] {
        match ca.leaf(host, DAY) {
            Err(CaError::HostNotPermitted { host: h, .. }) => assert_eq!(h, host),
            other => panic!("{host:?}: {:?}", other.map(|_| "a leaf")),
        }
    }
    let upper = ca
        .leaf("API.Zoom.US", DAY)
        .expect("SNI is case-insensitive");
    verify(&ca.cert_der, &upper.cert, "api.zoom.us").expect("verifies");
    for lifetime in [
        Duration::ZERO,
        Duration::from_secs(59),
        MAX_LEAF_LIFETIME + DAY,
    ] {
        assert!(
            matches!(
                ca.leaf("api.zoom.us", lifetime),
                Err(CaError::LeafLifetime { .. })
            ),
            "{lifetime:?}"
        );
    }
}

#[test]
fn generate_refuses_what_is_no_host_to_constrain_to() {
    assert!(matches!(Authority::generate(&[]), Err(CaError::NoHosts)));
    for host in [
        "*.zoom.us",
        "203.0.113.7",
        "::1",
        "us",
        "",
        "zoom..us",
        "zoom us",
    ] {
        let result = Authority::generate(&[host.to_owned()]);
        assert!(
            matches!(result, Err(CaError::InvalidHost { .. })),
            "{host:?}: {result:?}"
        );
    }
    let ca = Authority::generate(&["API.Zoom.us.".to_owned(), "api.zoom.us".to_owned()])
        .expect("normalized");
    assert_eq!(ca.hosts(), ["api.zoom.us"]);
}

#[test]
fn the_ca_certificate_says_what_it_is() {
    let ca = ca();
    let parsed = der::parse(&ca.cert_der).expect("parses");
    assert!(parsed.is_ca());
    let basic = parsed
        .extension(der::OID_BASIC_CONSTRAINTS)
        .expect("basicConstraints");
    // SEQUENCE { BOOLEAN TRUE, INTEGER 0 }: a CA with pathlen 0.
    assert_eq!(
        basic.value,
        [0x30, 0x06, 0x01, 0x01, 0xff, 0x02, 0x01, 0x00]
    );
    let constraints = parsed
        .extension(der::OID_NAME_CONSTRAINTS)
        .expect("name constraints");
    assert!(constraints.critical, "name constraints must be critical");
    assert!(constraints.value.windows(7).any(|w| w == b"zoom.us"));
    assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert_eq!(ca.fingerprint().len(), 32 * 3 - 1);
    // A leaf is not a CA.
    let leaf = ca.leaf("zoom.us", DAY).expect("leaf");
    assert!(!der::parse(&leaf.cert[0]).expect("parses").is_ca());
}

// --- files ---

fn paths(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    (dir.join("nested/ca.crt"), dir.join("nested/ca.key"))
}

fn write(path: &Path, contents: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, contents).expect("write");
}

#[test]
fn load_or_create_makes_the_files_once_then_loads_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = paths(dir.path());
    let made = Authority::load_or_create(&cert, &key, &zoom_hosts()).expect("create");
    let mode = std::fs::metadata(&key)
        .expect("key file")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "key file mode {mode:o}");
    assert_eq!(
        std::fs::read_to_string(&cert).expect("cert file"),
        made.cert_pem()
    );

    let loaded = Authority::load_or_create(&cert, &key, &zoom_hosts()).expect("load");
    assert_eq!(loaded.cert_pem(), made.cert_pem());
    assert_eq!(loaded.fingerprint(), made.fingerprint());
    // The loaded key signs leaves that verify under the certificate made first.
    let leaf = loaded.leaf("api.zoom.us", DAY).expect("leaf");
    verify(&made.cert_der, &leaf.cert, "api.zoom.us").expect("verifies");
    let names: Vec<_> = std::fs::read_dir(cert.parent().expect("dir"))
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 2, "no temporary files left: {names:?}");
}

#[test]
fn load_or_create_takes_the_hosts_in_any_order_or_case() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = paths(dir.path());
    let made = Authority::load_or_create(&cert, &key, &zoom_hosts()).expect("create");
    let reordered = vec![
        "API.ZOOM.US".to_owned(),
        "zoom.us".to_owned(),
        "zoom.us.".to_owned(),
    ];
    let loaded = Authority::load_or_create(&cert, &key, &reordered).expect("load");
    assert_eq!(loaded.cert_pem(), made.cert_pem());
}

#[test]
fn load_or_create_refuses_one_file_without_the_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = paths(dir.path());
    let ca = ca();
    for (present, missing) in [(&cert, &key), (&key, &cert)] {
        write(present, ca.cert_pem());
        let error = Authority::load_or_create(&cert, &key, &zoom_hosts()).expect_err("refused");
        assert!(matches!(error, CaError::OneFileMissing { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains(&*cert.to_string_lossy()), "{message}");
        assert!(message.contains(&*key.to_string_lossy()), "{message}");
        assert!(!missing.exists(), "nothing written in its place");
        std::fs::remove_file(present).expect("clean");
    }
}

#[test]
fn load_or_create_refuses_a_key_that_is_not_the_certificates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = paths(dir.path());
    write(&cert, ca().cert_pem());
    write(&key, &KeyPair::generate().expect("key").serialize_pem());
    let error = Authority::load_or_create(&cert, &key, &zoom_hosts()).expect_err("refused");
    assert!(matches!(error, CaError::KeyMismatch { .. }), "{error:?}");
}

#[test]
fn load_or_create_refuses_what_is_not_a_grantmux_ca_for_these_hosts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = paths(dir.path());
    let case = |cert_pem: &str, key_pem: &str, hosts: &[String]| {
        write(&cert, cert_pem);
        write(&key, key_pem);
        Authority::load_or_create(&cert, &key, hosts).expect_err("refused")
    };
    let ca = ca();
    let ca_key = ca.issuer.key().serialize_pem();

    // A leaf and its key: a matching pair, but no CA.
    let leaf_key = KeyPair::generate().expect("key");
    let mut params = leaf_params("api.zoom.us").expect("params");
    let leaf = params.signed_by(&leaf_key, &ca.issuer).expect("sign");
    let error = case(&leaf.pem(), &leaf_key.serialize_pem(), &zoom_hosts());
    assert!(matches!(error, CaError::NotACa { .. }), "{error:?}");

    // Some other CA, with its key.
    let other_key = KeyPair::generate().expect("key");
    params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "someone else's CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let other = params.self_signed(&other_key).expect("sign");
    let error = case(&other.pem(), &other_key.serialize_pem(), &zoom_hosts());
    assert!(matches!(error, CaError::ForeignCa { .. }), "{error:?}");

    // grantmux's CA, asked for other hosts.
    for hosts in [
        vec!["zoom.us".to_owned()],
        vec!["zoom.us".to_owned(), "zoom.com".to_owned()],
    ] {
        let error = case(ca.cert_pem(), &ca_key, &hosts);
        assert!(
            matches!(error, CaError::HostsDiffer { .. }),
            "{hosts:?}: {error:?}"
        );
    }

    let error = case("not a certificate", &ca_key, &zoom_hosts());
    assert!(matches!(error, CaError::CertPem { .. }), "{error:?}");
    let error = case(ca.cert_pem(), "not a key", &zoom_hosts());
    assert!(matches!(error, CaError::KeyPem { .. }), "{error:?}");
}

/// Every 16 characters of the key's base64, at every 4th offset: none may appear
/// in what an error or `Debug` prints.
fn assert_no_key_material(printed: &str, key_pem: &str) {
    let body: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let chars: Vec<char> = body.chars().collect();
    for window in chars.windows(16).step_by(4) {
        let window: String = window.iter().collect();
        assert!(
            !printed.contains(&window),
            "key material {window:?} in {printed}"
        );
    }
}

#[test]
fn neither_debug_nor_any_error_shows_the_key() {
    let ca = ca();
    let key_pem = ca.issuer.key().serialize_pem();
    assert_no_key_material(&format!("{ca:?}"), &key_pem);
    assert!(format!("{ca:?}").contains(ca.fingerprint()));

    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = paths(dir.path());
    // A key with one base64 character broken: decoders like to quote those.
    let mut broken = key_pem.clone().into_bytes();
    broken[40] = b'!';
    let broken = String::from_utf8(broken).expect("ascii");
    let truncated = &key_pem[..key_pem.len() / 2];
    let mut lines: Vec<&str> = key_pem.lines().collect();
    lines.remove(2);
    let without_a_middle_line = lines.join("\n");
    let cases: [(&str, &str); 5] = [
        (ca.cert_pem(), &broken),
        (ca.cert_pem(), truncated),
        (&key_pem, &key_pem),      // the key in both files
        (&key_pem, ca.cert_pem()), // the files swapped
        (ca.cert_pem(), &without_a_middle_line),
    ];
    let mut errors = Vec::new();
    for (cert_text, key_text) in cases {
        write(&cert, cert_text);
        write(&key, key_text);
        errors.push(Authority::load_or_create(&cert, &key, &zoom_hosts()).expect_err("refused"));
    }
    write(&key, &KeyPair::generate().expect("key").serialize_pem());
    write(&cert, ca.cert_pem());
    errors.push(Authority::load_or_create(&cert, &key, &zoom_hosts()).expect_err("mismatch"));
    std::fs::remove_file(&cert).expect("rm");
    errors.push(Authority::load_or_create(&cert, &key, &zoom_hosts()).expect_err("one missing"));
    errors.push(ca.leaf("example.com", DAY).expect_err("not permitted"));
    for error in &errors {
        println!("{error}");
        assert_no_key_material(&format!("{error} {error:?}"), &key_pem);
    }
}

#[test]
fn export_bundle_writes_system_roots_then_the_ca() {
    let ca = ca();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("out/bundle.pem");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, "stale").expect("stale bundle");
    match ca.export_bundle(&path) {
        // A machine without a CA store: nothing to write, and nothing written.
        Err(CaError::NoSystemRoots { detail }) => {
            println!("no system roots here: {detail}");
            assert_eq!(std::fs::read_to_string(&path).expect("read"), "stale");
        }
        Err(other) => panic!("{other}"),
        Ok(()) => {
            let bundle = std::fs::read_to_string(&path).expect("read");
            assert!(bundle.ends_with(ca.cert_pem()), "the CA comes last");
            assert_eq!(bundle.matches(ca.cert_pem()).count(), 1);
            let certs: Vec<_> = CertificateDer::pem_slice_iter(bundle.as_bytes())
                .collect::<Result<_, _>>()
                .expect("every block parses");
            println!("{} certificates in the bundle", certs.len());
            assert!(certs.len() > 1, "system roots as well as the CA");
            assert_eq!(
                std::fs::read_dir(path.parent().expect("dir"))
                    .expect("ls")
                    .count(),
                1
            );
        }
    }
}
