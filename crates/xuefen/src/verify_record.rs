//! `xuefen verify-record FILE`: checks a learner's record offline: the
//! credential's `eddsa-rdfc-2022` proof, the checkpoint's signature and every
//! line's entry bytes and inclusion proof. No database, no network.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use ed25519_dalek::VerifyingKey;
use xuefen_record::record::{self, LineOutcome};

#[derive(Args)]
pub(crate) struct VerifyRecordArgs {
    /// The record (JSON) as `GET /v1/me/record` gives it; `-` reads standard input.
    file: PathBuf,
    /// The issuer's key: a `did:key`, a Multikey (`z6Mk…`), an Ed25519 public
    /// key in hex, or a file holding the DID document (`GET
    /// /v1/record/issuer`'s `did_document`, or the whole answer). Without
    /// it the proof is checked under the key the record names, and the
    /// output says so.
    #[arg(long)]
    public_key: Option<String>,
    /// The log's C2SP verifier key (`origin+id+base64`); without it, the one
    /// named inside the signed record.
    #[arg(long)]
    log_key: Option<String>,
}

fn issuer_key(given: &str) -> Result<VerifyingKey, String> {
    if let Ok(k) = xuefen_record::proof::parse_did_key(given) {
        return Ok(k);
    }
    if given.len() == 64
        && let Some(raw) = hex::decode(given)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
    {
        return VerifyingKey::from_bytes(&raw).map_err(|e| format!("--public-key: {e}"));
    }
    let text = std::fs::read_to_string(given)
        .map_err(|e| format!("--public-key is no did:key, Multikey or hex key, nor a readable file ({e})"))?;
    let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("--public-key file: {e}"))?;
    let doc = doc.get("did_document").unwrap_or(&doc);
    let mb = doc
        .pointer("/verificationMethod/0/publicKeyMultibase")
        .and_then(serde_json::Value::as_str)
        .ok_or("--public-key file: no verificationMethod[0].publicKeyMultibase")?;
    xuefen_record::proof::parse_did_key(mb).map_err(|e| format!("--public-key file: {e}"))
}

pub(crate) fn run(args: VerifyRecordArgs) -> ExitCode {
    let text = if args.file.as_os_str() == "-" {
        let mut s = String::new();
        if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut s) {
            eprintln!("error: standard input: {e}");
            return ExitCode::from(2);
        }
        s
    } else {
        match std::fs::read_to_string(&args.file) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {}: {e}", args.file.display());
                return ExitCode::from(2);
            }
        }
    };
    let doc: serde_json::Value = match serde_json::from_str(&text) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {} is not JSON: {e}", args.file.display());
            return ExitCode::from(2);
        }
    };
    let issuer = match args.public_key.as_deref().map(issuer_key).transpose() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let log = match args.log_key.as_deref() {
        None => None,
        Some(v) => match record::parse_verifier_key(v) {
            Some(k) => Some(k),
            None => {
                eprintln!("error: --log-key is not a C2SP Ed25519 verifier key");
                return ExitCode::from(2);
            }
        },
    };
    let report = record::verify(&doc, issuer.as_ref(), log.as_ref().map(|(o, k)| (o.as_str(), k)));
    let did = report.issuer.clone().unwrap_or_else(|| "(none)".into());
    match &report.proof {
        Ok(()) if issuer.is_some() => println!("ok   proof: eddsa-rdfc-2022 by {did} (the key given)"),
        Ok(()) => {
            println!("ok   proof: eddsa-rdfc-2022 by {did} (the key the record names; pass --public-key to pin it)")
        }
        Err(e) => println!("BAD  proof: {e}"),
    }
    match &report.checkpoint {
        Ok(Some(cp)) => println!("ok   checkpoint: {} at size {}, signature verified", cp.origin, cp.size),
        Ok(None) => println!("--   checkpoint: none (nothing sealed when issued)"),
        Err(e) => println!("BAD  checkpoint: {e}"),
    }
    for (n, l) in report.lines.iter().enumerate() {
        let n = n + 1;
        match &l.outcome {
            LineOutcome::Verified { log_index } => {
                println!(
                    "ok   line {n} {} {} {}: log index {log_index}, included in the checkpoint",
                    l.id, l.name, l.credits
                )
            }
            LineOutcome::NotSealed => println!(
                "--   line {n} {} {} {}: entry hash holds, not sealed yet",
                l.id, l.name, l.credits
            ),
            LineOutcome::Failed(why) => println!("BAD  line {n} {} {} {}: {why}", l.id, l.name, l.credits),
        }
    }
    if report.ok() {
        println!("record verified: {} lines", report.lines.len());
        ExitCode::SUCCESS
    } else {
        match report.first_bad() {
            Some(l) => println!("record NOT verified: first bad line {}", l.id),
            None => println!("record NOT verified"),
        }
        ExitCode::from(1)
    }
}
