//! `signet inspect FILE|-`: print what a certificate, chain, CSR, CRL or OCSP response says
//! (PEM or DER, detected), as text or as JSON (`--json`); with `--ocsp`, also ask the OCSP
//! responder named in a certificate's AIA for its status, verified.
//!
//! Decoding lives in `signet_ca::inspect` (it is a parser of untrusted input, fuzzed there);
//! this module only reads the input and prints. Every string from the input is printed with
//! control characters replaced, so a hostile file cannot drive the terminal.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use signet_ca::{
    CertStatusKind, CertificateView, CrlView, CsrView, Inspected, MAX_INSPECT_LEN,
    OcspResponseSigner, OcspResponseView, PublicKeyView,
};

use super::Refused;
use crate::client::{parse_certificates, sanitize};
use signet_agent::staple::{DEFAULT_TIMEOUT, MAX_TIMEOUT, fetch_staple};
use signet_agent::workload::{ExitWith, exit};

#[derive(Debug, Args)]
#[command(after_long_help = "\
Exit status: 0 shown (and with --ocsp, the certificate is good); 2 the input is not readable \
or the flags are wrong; 5 with --ocsp, the responder says revoked or unknown; 1 with --ocsp, \
no verified answer.")]
pub struct InspectArgs {
    /// The file to read, PEM (any number of blocks) or DER; `-` reads standard input.
    #[arg(value_name = "FILE|-")]
    file: PathBuf,
    /// Print JSON: {"objects": [...]} with one object per certificate, CSR, CRL or OCSP
    /// response, tagged by "kind" (and "ocsp" with --ocsp).
    #[arg(long)]
    json: bool,
    /// For the first certificate: ask the OCSP responder in its AIA (or --url) for its
    /// status and verify the answer. Needs the issuer: the next certificate in FILE, or
    /// --issuer.
    #[arg(long)]
    ocsp: bool,
    /// The issuer's certificate for --ocsp (PEM or DER).
    #[arg(long, value_name = "FILE", requires = "ocsp")]
    issuer: Option<PathBuf>,
    /// The OCSP responder for --ocsp, instead of the certificate's AIA (http:// only).
    #[arg(long, value_name = "URL", requires = "ocsp")]
    url: Option<String>,
    /// With --ocsp: give up after this long (at most 5m).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, requires = "ocsp")]
    timeout: Duration,
}

/// The verified OCSP answer for the first certificate, as printed.
#[derive(Debug, Serialize)]
struct OcspCheck {
    url: String,
    status: String,
    revoked_at: Option<String>,
    revocation_reason: Option<String>,
    produced_at: String,
    this_update: String,
    next_update: Option<String>,
    /// `issuer`, or `delegated` with the responder certificate's serial.
    signer: String,
    signer_serial: Option<String>,
}

#[derive(Debug, Serialize)]
struct Output<'a> {
    objects: &'a [Inspected],
    #[serde(skip_serializing_if = "Option::is_none")]
    ocsp: Option<&'a OcspCheck>,
}

fn usage(message: impl Into<String>) -> anyhow::Error {
    Refused(message.into()).into()
}

/// Read FILE or standard input, at most [`MAX_INSPECT_LEN`] bytes.
fn read_input(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let limit = u64::try_from(MAX_INSPECT_LEN).unwrap_or(u64::MAX) + 1;
    let mut data = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .take(limit)
            .read_to_end(&mut data)
            .context("reading standard input")?;
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(limit).read_to_end(&mut data))
            .with_context(|| format!("reading {}", path.display()))
            .map_err(|e| usage(crate::cmd::describe(&e)))?;
    }
    if data.len() > MAX_INSPECT_LEN {
        return Err(usage(format!(
            "{} is larger than {MAX_INSPECT_LEN} bytes",
            path.display()
        )));
    }
    Ok(data)
}

pub async fn run(args: InspectArgs) -> anyhow::Result<()> {
    if args.timeout.is_zero() || args.timeout > MAX_TIMEOUT {
        return Err(usage(format!(
            "--timeout must be between 1s and {} (the default is {})",
            humantime::format_duration(MAX_TIMEOUT),
            humantime::format_duration(DEFAULT_TIMEOUT)
        )));
    }
    let input = read_input(&args.file)?;
    let name = if args.file.as_os_str() == "-" {
        "standard input".to_string()
    } else {
        args.file.display().to_string()
    };
    let objects = signet_ca::inspect(&input).map_err(|e| usage(format!("{name}: {e}")))?;

    let ocsp = if args.ocsp {
        Some(check_ocsp(&args, &input, &objects).await?)
    } else {
        None
    };

    if args.json {
        let out = Output {
            objects: &objects,
            ocsp: ocsp.as_ref(),
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&out).context("encoding JSON")?
        );
    } else {
        print!("{}", render(&objects, ocsp.as_ref()));
    }
    match ocsp {
        Some(check) if check.status != "good" => Err(ExitWith::error(
            exit::NOT_GOOD,
            format!(
                "the OCSP responder says the certificate is {}",
                check.status
            ),
        )),
        _ => Ok(()),
    }
}

/// Fetch and verify the OCSP status of the first certificate.
async fn check_ocsp(
    args: &InspectArgs,
    input: &[u8],
    objects: &[Inspected],
) -> anyhow::Result<OcspCheck> {
    let certs = certificates_der(input)?;
    let Some(leaf) = certs.first() else {
        return Err(usage(
            "--ocsp needs a certificate, and the input holds none",
        ));
    };
    if !matches!(objects.first(), Some(Inspected::Certificate(_))) {
        return Err(usage(
            "--ocsp: the first object in the input is not a certificate",
        ));
    }
    let issuer = match &args.issuer {
        Some(path) => {
            let bytes = read_input(path)?;
            certificates_der(&bytes)?
                .into_iter()
                .next()
                .ok_or_else(|| usage(format!("{} holds no certificate", path.display())))?
        }
        None => certs.get(1).cloned().ok_or_else(|| {
            usage(
                "--ocsp needs the issuer's certificate: put the chain in the file (as \
                 `signet issue` writes it) or pass --issuer FILE",
            )
        })?,
    };
    let staple = fetch_staple(leaf, &issuer, args.url.as_deref(), args.timeout)
        .await
        .map_err(|e| ExitWith::error(exit::FAILED, crate::cmd::describe(&e)))?;
    let r = &staple.response;
    let (status, revoked_at, revocation_reason) = match &r.status {
        CertStatusKind::Good => ("good", None, None),
        CertStatusKind::Unknown => ("unknown", None, None),
        CertStatusKind::Revoked { at, reason } => (
            "revoked",
            Some(signet_ca::rfc3339(*at)),
            reason.map(reason_name),
        ),
    };
    let (signer, signer_serial) = match &r.signer {
        OcspResponseSigner::Issuer => ("issuer".to_string(), None),
        OcspResponseSigner::Delegated { serial, .. } => {
            ("delegated".to_string(), Some(serial.to_hex()))
        }
    };
    Ok(OcspCheck {
        url: staple.url.clone(),
        status: status.to_string(),
        revoked_at,
        revocation_reason,
        produced_at: signet_ca::rfc3339(r.produced_at),
        this_update: signet_ca::rfc3339(r.this_update),
        next_update: r.next_update.map(signet_ca::rfc3339),
        signer,
        signer_serial,
    })
}

fn reason_name(code: u8) -> String {
    signet_ca::RevocationReason::from_code(code)
        .map_or_else(|_| format!("reason {code}"), |r| r.name().to_string())
}

/// The certificates of PEM input, or a DER certificate.
fn certificates_der(input: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    let pem = parse_certificates(input).unwrap_or_default();
    if !pem.is_empty() {
        return Ok(pem.into_iter().map(|c| c.to_vec()).collect());
    }
    match signet_ca::describe_certificate(input) {
        Ok(_) => Ok(vec![input.to_vec()]),
        Err(_) => Ok(Vec::new()),
    }
}

/// Text made safe for a terminal.
fn t(s: &str) -> String {
    sanitize(s, 4096)
}

struct Lines(String);

impl Lines {
    fn field(&mut self, label: &str, value: impl AsRef<str>) {
        let value = value.as_ref();
        if !value.is_empty() {
            self.0
                .push_str(&format!("  {:<20}{}\n", format!("{label}:"), t(value)));
        }
    }

    fn list(&mut self, label: &str, items: &[String]) {
        self.field(label, items.join(", "));
    }
}

fn key_text(k: &PublicKeyView) -> String {
    let mut s = k.algorithm.clone();
    if let Some(c) = &k.curve {
        s.push(' ');
        s.push_str(c);
    }
    if let Some(b) = k.bits {
        s.push_str(&format!(" ({b} bits)"));
    }
    s
}

fn critical(list: &[signet_ca::ExtensionView], name: &str) -> &'static str {
    if list.iter().any(|e| e.name == name && e.critical) {
        " (critical)"
    } else {
        ""
    }
}

fn render_certificate(out: &mut Lines, c: &CertificateView) {
    out.field("Subject", &c.subject);
    out.field("Issuer", &c.issuer);
    out.field("Serial", &c.serial);
    out.field("Not before", &c.not_before);
    out.field("Not after", &c.not_after);
    out.field("Public key", key_text(&c.public_key));
    out.field("Signature", &c.signature_algorithm);
    out.list("Names (SAN)", &c.subject_alt_names);
    if !c.key_usage.is_empty() {
        out.field(
            "Key usage",
            format!(
                "{}{}",
                c.key_usage.join(", "),
                critical(&c.extensions, "keyUsage")
            ),
        );
    }
    out.list("Extended usage", &c.extended_key_usage);
    if let Some(bc) = &c.basic_constraints {
        let mut s = format!("CA:{}", if bc.ca { "TRUE" } else { "FALSE" });
        if let Some(n) = bc.path_len {
            s.push_str(&format!(", pathlen:{n}"));
        }
        s.push_str(critical(&c.extensions, "basicConstraints"));
        out.field("Basic constraints", s);
    }
    out.list("OCSP", &c.authority_info_access.ocsp);
    out.list("CA issuers", &c.authority_info_access.ca_issuers);
    out.list("CRL", &c.crl_distribution_points);
    out.field("Subject key id", c.subject_key_id.as_deref().unwrap_or(""));
    out.field(
        "Authority key id",
        c.authority_key_id.as_deref().unwrap_or(""),
    );
    if c.self_signed {
        out.field("Self-signed", "yes");
    }
    out.field("SHA-256", &c.fingerprints.sha256);
    out.field("SHA-1", &c.fingerprints.sha1);
    let other: Vec<String> = c
        .extensions
        .iter()
        .filter(|e| !KNOWN.contains(&e.name.as_str()))
        .map(|e| {
            let name = if e.name.is_empty() { &e.oid } else { &e.name };
            format!("{name}{}", if e.critical { " (critical)" } else { "" })
        })
        .collect();
    out.list("Other extensions", &other);
    out.list("Problems", &c.problems);
}

/// Extensions the text output shows in their own lines.
const KNOWN: [&str; 8] = [
    "subjectAltName",
    "keyUsage",
    "extendedKeyUsage",
    "basicConstraints",
    "authorityInfoAccess",
    "cRLDistributionPoints",
    "subjectKeyIdentifier",
    "authorityKeyIdentifier",
];

fn render_csr(out: &mut Lines, c: &CsrView) {
    out.field("Subject", &c.subject);
    out.field("Public key", key_text(&c.public_key));
    out.field(
        "Signature",
        format!(
            "{} ({})",
            c.signature_algorithm,
            if c.signature_valid {
                "verifies"
            } else {
                "DOES NOT VERIFY"
            }
        ),
    );
    out.list("Names (SAN)", &c.subject_alt_names);
    out.list("Key usage", &c.key_usage);
    out.list("Extended usage", &c.extended_key_usage);
    if let Some(bc) = &c.basic_constraints {
        out.field(
            "Basic constraints",
            format!("CA:{}", if bc.ca { "TRUE" } else { "FALSE" }),
        );
    }
    out.list("Problems", &c.problems);
}

fn render_crl(out: &mut Lines, c: &CrlView) {
    out.field("Issuer", &c.issuer);
    out.field("CRL number", c.crl_number.as_deref().unwrap_or(""));
    out.field("This update", &c.this_update);
    out.field("Next update", c.next_update.as_deref().unwrap_or("(none)"));
    out.field("Signature", &c.signature_algorithm);
    out.field(
        "Authority key id",
        c.authority_key_id.as_deref().unwrap_or(""),
    );
    out.field("SHA-256", &c.fingerprints.sha256);
    out.field("Revoked", c.revoked.len().to_string());
    for e in &c.revoked {
        out.0.push_str(&format!(
            "    {}  {}  {}\n",
            t(&e.serial),
            t(&e.revoked_at),
            t(e.reason.as_deref().unwrap_or("-"))
        ));
    }
    out.list("Problems", &c.problems);
}

fn render_ocsp(out: &mut Lines, o: &OcspResponseView) {
    out.field("Response status", &o.response_status);
    out.field("Produced at", o.produced_at.as_deref().unwrap_or(""));
    out.field("Responder", o.responder_id.as_deref().unwrap_or(""));
    out.field("Signature", o.signature_algorithm.as_deref().unwrap_or(""));
    out.field("Nonce", o.nonce.as_deref().unwrap_or(""));
    for r in &o.responses {
        out.0.push_str(&format!("  Serial {}:\n", t(&r.serial)));
        let mut status = r.status.clone();
        if let Some(at) = &r.revoked_at {
            status.push_str(&format!(" at {at}"));
        }
        if let Some(reason) = &r.revocation_reason {
            status.push_str(&format!(" ({reason})"));
        }
        out.field("  Status", status);
        out.field("  This update", &r.this_update);
        out.field(
            "  Next update",
            r.next_update.as_deref().unwrap_or("(none)"),
        );
        out.field(
            "  CertID",
            format!(
                "{} name hash {}, key hash {}",
                r.hash_algorithm, r.issuer_name_hash, r.issuer_key_hash
            ),
        );
    }
    for c in &o.certificates {
        out.0.push_str("  Responder certificate:\n");
        let mut inner = Lines(String::new());
        render_certificate(&mut inner, c);
        for line in inner.0.lines() {
            out.0.push_str(&format!("  {line}\n"));
        }
    }
    out.list("Problems", &o.problems);
}

fn render(objects: &[Inspected], ocsp: Option<&OcspCheck>) -> String {
    let mut out = Lines(String::new());
    let total = objects.len();
    for (i, obj) in objects.iter().enumerate() {
        if i > 0 {
            out.0.push('\n');
        }
        let kind = match obj {
            Inspected::Certificate(_) => "Certificate".to_string(),
            Inspected::Csr(_) => "Certificate request".to_string(),
            Inspected::Crl(_) => "CRL".to_string(),
            Inspected::OcspResponse(_) => "OCSP response".to_string(),
            Inspected::Other { label } => format!("PEM block {} (not shown)", t(label)),
            _ => "Object".to_string(),
        };
        if total > 1 {
            out.0.push_str(&format!("{kind} ({} of {total})\n", i + 1));
        } else {
            out.0.push_str(&format!("{kind}\n"));
        }
        match obj {
            Inspected::Certificate(c) => render_certificate(&mut out, c),
            Inspected::Csr(c) => render_csr(&mut out, c),
            Inspected::Crl(c) => render_crl(&mut out, c),
            Inspected::OcspResponse(o) => render_ocsp(&mut out, o),
            _ => {}
        }
    }
    if let Some(o) = ocsp {
        out.0.push_str("\nOCSP status of the first certificate\n");
        out.field("Responder", &o.url);
        let mut status = o.status.clone();
        if let Some(at) = &o.revoked_at {
            status.push_str(&format!(" at {at}"));
        }
        if let Some(reason) = &o.revocation_reason {
            status.push_str(&format!(" ({reason})"));
        }
        out.field("Status", status);
        out.field("Produced at", &o.produced_at);
        out.field("This update", &o.this_update);
        out.field("Next update", o.next_update.as_deref().unwrap_or("(none)"));
        let signer = match &o.signer_serial {
            Some(s) => format!("{} responder, serial {s}", o.signer),
            None => "the issuer".to_string(),
        };
        out.field("Signed by", signer);
    }
    out.0
}
