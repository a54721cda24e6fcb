//! `custos trail verify`: checks a trail offline and says, in plain words, what is proven —
//! integrity (the hash chain), origin (signatures over chain heads), time (RFC 3161 tokens),
//! and completeness (a seal covering the end-of-trail marker) — and what is not.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Context;
use custos_evidence::envelope::recipients;
use custos_evidence::signature::{
    SignatureInfo, certificates_from_pem, check_issued_by, verify_detached,
};
use custos_evidence::timestamp::{TimestampInfo, verify_token};
use custos_trail::{TrailReader, Verification};
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;

use crate::trail_cli::{KeyArgs, open_with_keys, stream_name};

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The trail file.
    trail: PathBuf,
    /// PEM certificates to trust as issuers of the signing and time-stamping certificates
    /// (repeatable). Without it, signatures are checked but their signers are not vouched for.
    #[arg(long = "ca", value_name = "PEM")]
    ca: Vec<PathBuf>,
    /// Also decrypt with these keys and check every encrypted record.
    #[command(flatten)]
    keys: KeyArgs,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, Default)]
struct Report {
    file: String,
    format_version: u16,
    session_id: Option<String>,
    /// "complete", "incomplete" or "tampered".
    integrity: &'static str,
    problem: Option<String>,
    incomplete: Option<String>,
    segments: u64,
    records: u64,
    /// Session time (seconds) of the first and last record.
    recorded_from_s: Option<f64>,
    recorded_to_s: Option<f64>,
    encryption: Vec<String>,
    unread_encrypted_segments: u64,
    seals: usize,
    signatures_valid: usize,
    timestamps_valid: usize,
    signers: Vec<String>,
    time_stamping_authorities: Vec<String>,
    /// Trust in the signers and TSAs under --ca: "trusted", "untrusted: …", "not checked".
    trust: Vec<String>,
    proven: Vec<String>,
    not_proven: Vec<String>,
}

fn seconds(micros: u64) -> f64 {
    micros as f64 / 1_000_000.0
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

pub fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let mut reader = if args.keys.keys.is_empty() {
        TrailReader::open(&args.trail)
            .with_context(|| format!("opening {}", args.trail.display()))?
    } else {
        open_with_keys(&args.trail, &args.keys, &[])?
    };
    let trusted = trusted_certificates(&args.ca)?;
    let v = reader.verify()?;
    let report = build_report(&args, &reader, &v, &trusted);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    let code = match report.integrity {
        "complete" if report.problem.is_none() => 0,
        "incomplete" if report.problem.is_none() => 3,
        _ => 1,
    };
    if code != 0 {
        std::process::exit(code);
    }
    Ok(())
}

fn trusted_certificates(paths: &[PathBuf]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for path in paths {
        let pem =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        out.extend(certificates_from_pem(&pem).with_context(|| format!("{}", path.display()))?);
    }
    Ok(out)
}

/// Checks every seal's signature and token; returns them per seal, `Err` with the reason.
type SealCheck = (
    Option<Result<SignatureInfo, String>>,
    Option<Result<TimestampInfo, String>>,
);

fn check_seals(v: &Verification) -> Vec<SealCheck> {
    v.seals
        .iter()
        .map(|seal| {
            let statement = seal.head.statement();
            let digest: [u8; 32] = Sha256::digest(statement).into();
            let signature = (!seal.signature.is_empty())
                .then(|| verify_detached(&seal.signature, &statement).map_err(|e| e.to_string()));
            let timestamp = (!seal.timestamp.is_empty())
                .then(|| verify_token(&seal.timestamp, &digest).map_err(|e| e.to_string()));
            (signature, timestamp)
        })
        .collect()
}

fn build_report(
    args: &VerifyArgs,
    reader: &TrailReader,
    v: &Verification,
    trusted: &[Vec<u8>],
) -> Report {
    let header = reader.header();
    let mut r = Report {
        file: args.trail.display().to_string(),
        format_version: v.version,
        session_id: header
            .pointer("/session/recording/session_id")
            .or_else(|| header.get("session_id"))
            .and_then(|s| s.as_str())
            .map(str::to_string),
        problem: v.problem.clone(),
        incomplete: v.incomplete.clone(),
        segments: v.segments,
        records: v.records,
        recorded_from_s: v.first_micros.map(seconds),
        recorded_to_s: v.last_micros.map(seconds),
        unread_encrypted_segments: v.unread_segments,
        seals: v.seals.len(),
        ..Report::default()
    };
    for key in reader.key_envelopes() {
        let who = recipients(&key.envelope)
            .map(|groups| {
                groups
                    .iter()
                    .map(|g| g.join(" + "))
                    .collect::<Vec<_>>()
                    .join(" | ")
            })
            .unwrap_or_else(|e| format!("unreadable envelope: {e}"));
        r.encryption.push(format!(
            "{} is encrypted to: {who}",
            stream_name(key.stream)
        ));
    }
    let checks = check_seals(v);
    let mut signer_certs = BTreeSet::new();
    let mut tsa_certs = BTreeSet::new();
    let mut last_valid: Option<usize> = None;
    let mut seal_problem: Option<String> = None;
    for (i, (signature, timestamp)) in checks.iter().enumerate() {
        let mut ok = true;
        match signature {
            Some(Ok(info)) => {
                r.signatures_valid += 1;
                signer_certs.insert((
                    info.signer_subject.clone(),
                    info.signer_certificate_der.clone(),
                ));
            }
            Some(Err(e)) => {
                ok = false;
                seal_problem.get_or_insert(format!(
                    "seal {}: the signature does not verify: {e}",
                    v.seals[i].seq
                ));
            }
            None => {}
        }
        match timestamp {
            Some(Ok(info)) => {
                r.timestamps_valid += 1;
                tsa_certs.insert((info.tsa_subject.clone(), info.tsa_certificate_der.clone()));
            }
            Some(Err(e)) => {
                ok = false;
                seal_problem.get_or_insert(format!(
                    "seal {}: the time-stamp does not verify: {e}",
                    v.seals[i].seq
                ));
            }
            None => {}
        }
        if ok {
            last_valid = Some(i);
        }
    }
    r.signers = signer_certs.iter().map(|(s, _)| s.clone()).collect();
    r.time_stamping_authorities = tsa_certs.iter().map(|(s, _)| s.clone()).collect();
    if signer_certs.len() > 1 {
        seal_problem.get_or_insert("the seals are signed by different certificates".into());
    }
    for (role, certs) in [
        ("signer", &signer_certs),
        ("time-stamping authority", &tsa_certs),
    ] {
        for (subject, der) in certs {
            if trusted.is_empty() {
                r.trust
                    .push(format!("{role} {subject}: not checked (no --ca given)"));
                continue;
            }
            match check_issued_by(der, trusted) {
                Ok(ca) => r
                    .trust
                    .push(format!("{role} {subject}: trusted (issued by {ca})")),
                Err(e) => {
                    r.trust.push(format!("{role} {subject}: NOT trusted: {e}"));
                    seal_problem
                        .get_or_insert(format!("the {role} {subject} is not trusted under --ca"));
                }
            }
        }
    }
    if r.problem.is_none() {
        r.problem = seal_problem;
    }
    r.integrity = if r.problem.is_some() {
        "tampered"
    } else if v.complete {
        "complete"
    } else {
        "incomplete"
    };
    statements(&mut r, v, &checks, last_valid);
    r
}

/// The "proven" and "not proven" sentences.
fn statements(r: &mut Report, v: &Verification, checks: &[SealCheck], last_valid: Option<usize>) {
    if let Some(problem) = &r.problem {
        r.not_proven.push(format!("nothing: {problem}"));
        return;
    }
    match r.integrity {
        "complete" => r.proven.push(format!(
            "integrity: all {} segments chain from the header to the trailer; nothing was \
             altered, removed, reordered or inserted since they were written",
            v.segments
        )),
        _ => r.proven.push(format!(
            "integrity of the first {} segments; the trail then ends early ({})",
            v.segments,
            v.incomplete.as_deref().unwrap_or("cut short")
        )),
    }
    let Some(i) = last_valid else {
        r.not_proven.push(
            "origin and time: the trail carries no seal, so anyone able to write the file \
             could have recomputed its chain"
                .into(),
        );
        return;
    };
    let seal = &v.seals[i];
    let (signature, timestamp) = &checks[i];
    let scope = if seal.covers_end {
        "the complete trail (its end-of-trail marker included)".to_string()
    } else {
        format!(
            "the recording up to {:.3} s into the session ({} of {} segments)",
            seconds(seal.covers_micros),
            seal.head.covered,
            v.segments
        )
    };
    if let Some(Ok(info)) = signature {
        let when = info
            .signing_time
            .map(|t| format!(", signing time {}", rfc3339(t)))
            .unwrap_or_default();
        r.proven.push(format!(
            "origin: {scope} was signed by {}{when}",
            info.signer_subject
        ));
    }
    if let Some(Ok(info)) = timestamp {
        r.proven.push(format!(
            "time: {scope} existed at {} (RFC 3161 token of {}, policy {})",
            rfc3339(info.time),
            info.tsa_subject,
            info.policy
        ));
    }
    if let Some(first) = checks
        .iter()
        .find_map(|(_, t)| t.as_ref().and_then(|t| t.as_ref().ok()))
    {
        r.proven.push(format!(
            "the earliest sealed part existed at {}",
            rfc3339(first.time)
        ));
    }
    if signature.is_none() {
        r.not_proven
            .push("origin: the seals are time-stamped but not signed".into());
    }
    if timestamp.is_none() {
        r.not_proven
            .push("time: the last valid seal has no time-stamp".into());
    }
    if !seal.covers_end {
        r.not_proven.push(format!(
            "completeness: no seal covers the end of the trail; {} segment(s) after the last \
             seal are protected by the chain only",
            v.segments.saturating_sub(seal.head.covered)
        ));
    }
    if v.unread_segments > 0 {
        r.not_proven.push(format!(
            "{} encrypted segment(s) were checked by their chain values only (no key given \
             for their records)",
            v.unread_segments
        ));
    }
}

fn print_report(r: &Report) {
    println!("trail:      {} (format {})", r.file, r.format_version);
    if let Some(id) = &r.session_id {
        println!("session:    {id}");
    }
    println!("integrity:  {}", r.integrity);
    if let Some(p) = &r.problem {
        println!("problem:    {p}");
    }
    if let Some(why) = &r.incomplete {
        println!("incomplete: {why}");
    }
    let range = match (r.recorded_from_s, r.recorded_to_s) {
        (Some(a), Some(b)) => format!(", recorded {a:.3}–{b:.3} s"),
        _ => String::new(),
    };
    println!(
        "contents:   {} segments, {} records{range}",
        r.segments, r.records
    );
    for line in &r.encryption {
        println!("encryption: {line}");
    }
    println!(
        "seals:      {} ({} signatures valid, {} time-stamps valid)",
        r.seals, r.signatures_valid, r.timestamps_valid
    );
    for line in &r.trust {
        println!("trust:      {line}");
    }
    for line in &r.proven {
        println!("proven:     {line}");
    }
    for line in &r.not_proven {
        println!("not proven: {line}");
    }
}
