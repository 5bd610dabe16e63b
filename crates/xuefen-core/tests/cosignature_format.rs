//! Checks the worked example of a witness cosignature
//! (`docs/ledger-format.md`, section 12) against the code: the cosigner's
//! key ID and verifier key, the signed message and the signature line,
//! byte for byte, over the checkpoint of section 7's example.

use ed25519_dalek::SigningKey;
use xuefen_core::witness::{self, Cosigner};

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/ledger-format.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The body of the one fenced block whose info string is `info`.
fn block(doc: &str, info: &str) -> String {
    let mut found = Vec::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        if line.trim() == format!("```{info}") {
            let body: Vec<&str> = lines
                .by_ref()
                .take_while(|l| !l.trim_start().starts_with("```"))
                .collect();
            found.push(format!("{}\n", body.join("\n")));
        }
    }
    assert_eq!(
        found.len(),
        1,
        "docs/ledger-format.md needs exactly one block ```{info}"
    );
    found.remove(0)
}

fn line_value(doc: &str, label: &str) -> String {
    let found: Vec<&str> = doc.lines().filter_map(|l| l.trim().strip_prefix(label)).collect();
    assert_eq!(found.len(), 1, "docs/ledger-format.md needs one line `{label} …`");
    found[0].trim().to_owned()
}

struct Example {
    key_id: String,
    vkey: String,
    message: String,
    line: String,
    cosigned: String,
}

fn compute(doc: &str) -> Example {
    let checkpoint = block(doc, "text log-checkpoint");
    let (text, _) = witness::split_note(&checkpoint).expect("the section 7 checkpoint is a note");
    let name = line_value(doc, "witness-name:");
    let seed: [u8; 32] = hex::decode(line_value(doc, "witness-key-seed:"))
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    let time: u64 = line_value(doc, "witness-time:").parse().expect("time");
    let key = SigningKey::from_bytes(&seed);
    let c = Cosigner {
        name: name.clone(),
        key: key.verifying_key(),
    };
    let line = witness::cosign(&name, &key, &text, time);
    assert_eq!(witness::verify_line(&line, &c, &text), Some(time));
    Example {
        key_id: format!("{:08x}", c.key_id()),
        vkey: c.vkey(),
        message: String::from_utf8(witness::signed_message(time, &text)).expect("utf-8"),
        cosigned: format!("{checkpoint}{line}"),
        line,
    }
}

#[test]
fn the_worked_example_of_a_cosignature_is_what_the_code_makes() {
    let doc = doc();
    let e = compute(&doc);
    assert_eq!(line_value(&doc, "witness-key-id:"), e.key_id);
    assert_eq!(line_value(&doc, "witness-verifier-key:"), e.vkey);
    assert_eq!(block(&doc, "text witness-signed-message"), e.message);
    assert_eq!(block(&doc, "text witness-cosigned-checkpoint"), e.cosigned);
    assert!(e.cosigned.ends_with(&e.line));
}

/// Prints the fragments to paste into the document after a deliberate change.
#[test]
fn witness_fragments() {
    let doc = doc();
    if !doc.contains("witness-name:") {
        return;
    }
    let e = compute(&doc);
    println!("witness-key-id: {}\nwitness-verifier-key: {}\n", e.key_id, e.vkey);
    println!("```text witness-signed-message\n{}```\n", e.message);
    println!("```text witness-cosigned-checkpoint\n{}```", e.cosigned);
}
