//! Checks the worked example of `docs/ledger-format.md` against the code.
//!
//! The document is what an independent verifier is written from, so its
//! example must be exactly what [`EntryBody::encode`] and [`entry_hash`]
//! produce. The machine-readable parts of the document are:
//!
//! - fenced blocks whose info string is `hex <name>` (for example
//!   `hex canonical seq=1`): bytes in hex, whitespace ignored;
//! - fenced blocks `text fields seq=N`: the same canonical bytes, one field
//!   per line, written `<hex> # <field> ...`;
//! - lines `hash seq=N: <64 hex digits>`;
//! - the table under the heading `### Field values`, one row per field:
//!   `` | `field` | `value of seq 1` ... | `value of seq 2` ... | ``.
//!
//! The document has two worked examples, one per format version: section 6
//! (version 1) and section 6b (version 2), whose block names and hash lines
//! carry ` v2` after their name (`hex canonical v2 seq=1`,
//! `hash v2 seq=1: …`, the table under `### Field values (version 2)`).
//!
//! After a deliberate change of the example, print the fragments to paste
//! into the document with
//! `cargo test -p xuefen-core --test ledger_format -- --nocapture fragments`.

use sha2::{Digest, Sha256};
use xuefen_core::amount::{Credits, Hours, Score};
use xuefen_core::entry::{
    COMMITMENT_TAG, DOMAIN_TAG, DOMAIN_TAG_V1, Entry, EntryBody, EntryKind, FORMAT_V1, FORMAT_VERSION, GENESIS,
    entry_hash, learner_commitment,
};
use xuefen_core::event::{Millis, Reason};
use xuefen_core::ids::SiteStatus;
use xuefen_core::ids::{Category, CourseCode, EventId, GroupId, LearnerId, Position, SiteId};
use xuefen_core::site_log::{ALLIANCE_CHAIN, SiteChange, SiteChangeEntry};
use xuefen_core::verify::{ChainVerifier, Fault, VerifyError};

/// The chain of the worked example.
const CHAIN: u32 = 5;

/// The two format versions the document has an example of.
const VERSIONS: [u8; 2] = [FORMAT_V1, FORMAT_VERSION];

/// The learner secret of the version-2 example: bytes 0x00 to 0x1f.
fn example_secret() -> [u8; 32] {
    std::array::from_fn(|i| u8::try_from(i).expect("small index"))
}

/// The name of a block or line of the example of version `v`:
/// `canonical seq=1` for version 1, `canonical v2 seq=1` for version 2.
fn label(v: u8, name: &str, seq: Option<u64>) -> String {
    let version = if v == FORMAT_V1 {
        String::new()
    } else {
        format!(" v{v}")
    };
    match seq {
        Some(seq) => format!("{name}{version} seq={seq}"),
        None => format!("{name}{version}"),
    }
}

/// The domain tag of version `v`.
fn tag(v: u8) -> &'static [u8] {
    if v == FORMAT_V1 { DOMAIN_TAG_V1 } else { DOMAIN_TAG }
}

/// Field names in canonical order, as the document spells them for version `v`.
fn field_names(v: u8) -> [&'static str; 18] {
    let mut names = FIELDS;
    if v != FORMAT_V1 {
        names[4] = "learner_commitment";
    }
    names
}

/// Field names in canonical order (version 1), as the document spells them.
const FIELDS: [&str; 18] = [
    "version",
    "kind",
    "site",
    "event_id",
    "learner",
    "course",
    "category",
    "credits",
    "occurred_at",
    "recorded_at",
    "score",
    "hours",
    "rule_version",
    "refers_to",
    "target_event",
    "reason",
    "recognition_group",
    "withheld",
];

// ---------------------------------------------------------------------------
// The example, built with the public API.
// ---------------------------------------------------------------------------

/// The award (seq 1) and its reversal (seq 2) in version `v`. In version
/// 2 the learner is a commitment under [`example_secret`], the reason a
/// code, and the free text the reversal's note (outside the bytes).
fn example_bodies(v: u8) -> [EntryBody; 2] {
    let [award, reversal] = example_bodies_v1();
    if v == FORMAT_V1 {
        return [award, reversal];
    }
    let at = |seq| learner_commitment(&example_secret(), Position { chain: CHAIN, seq });
    let award = EntryBody {
        learner: LearnerId::nobody(),
        commitment: Some(at(1)),
        ..award
    };
    let reversal = EntryBody {
        learner: LearnerId::nobody(),
        commitment: Some(at(2)),
        reason: Reason::code("score_error", "reason").expect("example reason code"),
        ..reversal
    };
    [award, reversal]
}

/// The version-1 example.
fn example_bodies_v1() -> [EntryBody; 2] {
    let site = SiteId::parse("hangzhou-xihu").expect("example site id");
    let learner = LearnerId::parse("lrn_3f9a2c417be04d5a8c16e2b7d90f4a61").expect("example learner id");
    let course = CourseCode::parse("PY-101").expect("example course code");
    let category = Category::parse("vocational").expect("example category");
    let award_event = EventId::parse("hzxh-2025-000123").expect("example award event id");
    let group = GroupId::parse("zj-py101").expect("example recognition group");
    let award = EntryBody {
        kind: EntryKind::Awarded,
        site: site.clone(),
        event_id: award_event.clone(),
        learner: learner.clone(),
        commitment: None,
        course: course.clone(),
        category: category.clone(),
        credits: Credits::from_cents(250),
        // 2025-06-30T02:00:00.000Z
        occurred_at: Millis(1_751_248_800_000),
        // 2025-06-30T08:15:30.250Z
        recorded_at: Millis(1_751_271_330_250),
        score: Some(Score::from_cents(8650)),
        hours: Some(Hours::from_cents(1200)),
        rule_version: 3,
        refers_to: None,
        target_event: None,
        reason: Reason::default(),
        note: None,
        recognition_group: Some(group.clone()),
        withheld: None,
    };
    let reversal = EntryBody {
        kind: EntryKind::Reversal,
        site,
        event_id: EventId::parse("hzxh-2025-000187").expect("example reversal event id"),
        learner,
        commitment: None,
        course,
        category,
        credits: award.credits.negated(),
        occurred_at: award.occurred_at,
        // 2025-07-02T01:00:00.000Z
        recorded_at: Millis(1_751_418_000_000),
        score: None,
        hours: None,
        rule_version: award.rule_version,
        refers_to: Some(Position { chain: CHAIN, seq: 1 }),
        target_event: Some(award_event),
        reason: Reason::parse("成绩录入错误", "reason").expect("example reason"),
        note: None,
        recognition_group: Some(group),
        withheld: None,
    };
    [award, reversal]
}

/// The example of version `v` sealed into chain 5 from genesis.
fn example(v: u8) -> Vec<Entry> {
    let mut prev = GENESIS;
    let mut entries = Vec::new();
    for (i, body) in example_bodies(v).into_iter().enumerate() {
        let seq = u64::try_from(i).expect("small index") + 1;
        let entry = Entry::seal(Position { chain: CHAIN, seq }, prev, body);
        prev = entry.hash;
        entries.push(entry);
    }
    entries
}

// ---------------------------------------------------------------------------
// An independent, field-by-field encoder written from the document.
// ---------------------------------------------------------------------------

/// One field of the canonical encoding.
struct Field {
    name: &'static str,
    /// The bytes of the field, in parts (length and content, flag and
    /// value) so that the document can show them apart.
    parts: Vec<Vec<u8>>,
    /// The value as the document's table writes it.
    value: String,
    /// What the value means, for people.
    note: String,
}

impl Field {
    fn new(name: &'static str, parts: Vec<Vec<u8>>, value: String, note: String) -> Self {
        Self {
            name,
            parts,
            value,
            note,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        self.parts.concat()
    }

    fn hex(&self) -> String {
        self.parts.iter().map(hex::encode).collect::<Vec<_>>().join(" ")
    }
}

/// A string: u32 big-endian byte length, then the UTF-8 bytes.
fn string(name: &'static str, s: &str) -> Field {
    let len = u32::try_from(s.len()).expect("string fits a u32 length");
    let note = format!("{} bytes", s.len());
    Field::new(
        name,
        vec![len.to_be_bytes().to_vec(), s.as_bytes().to_vec()],
        quoted(s),
        note,
    )
}

/// A signed 64-bit integer, big-endian (two's complement).
fn int64(name: &'static str, v: i64, note: String) -> Field {
    Field::new(name, vec![v.to_be_bytes().to_vec()], v.to_string(), note)
}

/// An optional value: `00` when absent, `01` then the value when present.
fn optional(name: &'static str, value: Option<Field>) -> Field {
    match value {
        None => Field::new(name, vec![vec![0x00]], "none".to_owned(), "absent".to_owned()),
        Some(f) => {
            let mut parts = vec![vec![0x01]];
            parts.extend(f.parts);
            Field::new(name, parts, f.value, format!("present: {}", f.note))
        }
    }
}

fn quoted(s: &str) -> String {
    format!("\"{s}\"")
}

fn hundredths(cents: i64, unit: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02} {unit}", abs / 100, abs % 100)
}

/// Each field of `body` in canonical order, written from the document
/// rather than from `EntryBody::encode`.
fn fields(body: &EntryBody) -> Vec<Field> {
    let time = |name, at: Millis| int64(name, at.0, at.to_rfc3339());
    let version = body.version();
    let learner = match &body.commitment {
        None => string("learner", body.learner.as_str()),
        Some(c) => Field::new(
            "learner_commitment",
            vec![c.to_vec()],
            hex::encode(c),
            "32 bytes, no length".to_owned(),
        ),
    };
    let out = vec![
        Field::new(
            "version",
            vec![vec![version]],
            version.to_string(),
            "format version".to_owned(),
        ),
        Field::new(
            "kind",
            vec![vec![body.kind.code()]],
            body.kind.code().to_string(),
            body.kind.as_str().to_owned(),
        ),
        string("site", body.site.as_str()),
        string("event_id", body.event_id.as_str()),
        learner,
        string("course", body.course.as_str()),
        string("category", body.category.as_str()),
        int64(
            "credits",
            body.credits.cents(),
            hundredths(body.credits.cents(), "credits"),
        ),
        time("occurred_at", body.occurred_at),
        time("recorded_at", body.recorded_at),
        optional(
            "score",
            body.score
                .map(|v| int64("score", v.cents(), hundredths(v.cents(), "points"))),
        ),
        optional(
            "hours",
            body.hours
                .map(|v| int64("hours", v.cents(), hundredths(v.cents(), "hours"))),
        ),
        Field::new(
            "rule_version",
            vec![body.rule_version.to_be_bytes().to_vec()],
            body.rule_version.to_string(),
            "u32".to_owned(),
        ),
        optional(
            "refers_to",
            body.refers_to.map(|p| {
                Field::new(
                    "refers_to",
                    vec![p.chain.to_be_bytes().to_vec(), p.seq.to_be_bytes().to_vec()],
                    p.to_string(),
                    format!("chain {} seq {}", p.chain, p.seq),
                )
            }),
        ),
        optional(
            "target_event",
            body.target_event.as_ref().map(|e| string("target_event", e.as_str())),
        ),
        string("reason", body.reason.as_str()),
        optional(
            "recognition_group",
            body.recognition_group
                .as_ref()
                .map(|g| string("recognition_group", g.as_str())),
        ),
        optional(
            "withheld",
            body.withheld
                .map(|v| int64("withheld", v.cents(), hundredths(v.cents(), "credits"))),
        ),
    ];
    assert_eq!(out.iter().map(|f| f.name).collect::<Vec<_>>(), field_names(version));
    out
}

/// `DOMAIN_TAG ‖ chain ‖ seq ‖ prev_hash`: what is hashed before the
/// canonical bytes.
fn hash_prefix(tag: &[u8], position: Position, prev_hash: &[u8; 32]) -> Vec<u8> {
    [
        tag,
        &position.chain.to_be_bytes(),
        &position.seq.to_be_bytes(),
        prev_hash,
    ]
    .concat()
}

// ---------------------------------------------------------------------------
// Reading the document.
// ---------------------------------------------------------------------------

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/ledger-format.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Every fenced code block as (info string, body).
fn fenced_blocks(doc: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in doc.lines() {
        let fence = line.trim_start().strip_prefix("```");
        match (open.as_mut(), fence) {
            (Some(_), Some(_)) => blocks.extend(open.take()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, Some(info)) => open = Some((info.trim().to_owned(), String::new())),
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "docs/ledger-format.md has an unterminated fenced block");
    blocks
}

/// The body of the one fenced block whose info string is `info`.
fn block(doc: &str, info: &str) -> String {
    let mut found = fenced_blocks(doc).into_iter().filter(|(i, _)| i == info);
    let body = found
        .next()
        .unwrap_or_else(|| panic!("docs/ledger-format.md has no block ```{info}"));
    assert!(
        found.next().is_none(),
        "docs/ledger-format.md has several blocks ```{info}"
    );
    body.1
}

fn decode_hex(text: &str, what: &str) -> Vec<u8> {
    let digits: String = text.split_whitespace().collect();
    hex::decode(&digits).unwrap_or_else(|e| panic!("{what} is not hex: {e}"))
}

/// The bytes of the block ```` ```hex <name> ````.
fn hex_block(doc: &str, name: &str) -> Vec<u8> {
    decode_hex(&block(doc, &format!("hex {name}")), &format!("block `hex {name}`"))
}

/// The block ```` ```text fields seq=N ```` as (field name, bytes) per line.
fn fields_block(doc: &str, v: u8, seq: u64) -> Vec<(String, Vec<u8>)> {
    let info = format!("text {}", label(v, "fields", Some(seq)));
    block(doc, &info)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (bytes, comment) = line
                .split_once('#')
                .unwrap_or_else(|| panic!("line `{line}` of block `{info}` has no `# field`"));
            let name = comment.split_whitespace().next().unwrap_or_default();
            let name = name.trim_end_matches([':', '=']).to_owned();
            (name, decode_hex(bytes, &format!("line `{line}` of block `{info}`")))
        })
        .collect()
}

/// The hash given by the line `hash seq=N: <hex>`.
fn doc_hash(doc: &str, v: u8, seq: u64) -> [u8; 32] {
    let label = format!("{}:", label(v, "hash", Some(seq)));
    let mut found = doc.lines().filter_map(|l| l.trim().strip_prefix(label.as_str()));
    let value = found
        .next()
        .unwrap_or_else(|| panic!("docs/ledger-format.md has no line `{label} <hex>`"));
    assert!(
        found.next().is_none(),
        "docs/ledger-format.md has several lines `{label}`"
    );
    decode_hex(value, &label)
        .try_into()
        .unwrap_or_else(|b: Vec<u8>| panic!("`{label}` has {} bytes, not 32", b.len()))
}

/// The rows of the table under `### Field values`: the first backticked
/// span of each cell.
fn value_table(doc: &str, v: u8) -> Vec<Vec<String>> {
    let heading = if v == FORMAT_V1 {
        "### Field values".to_owned()
    } else {
        format!("### Field values (version {v})")
    };
    let start = doc
        .lines()
        .position(|l| l.trim() == heading)
        .unwrap_or_else(|| panic!("docs/ledger-format.md has a heading `{heading}`"));
    doc.lines()
        .skip(start + 1)
        .take_while(|l| !l.starts_with('#'))
        .filter(|l| l.trim_start().starts_with('|'))
        .filter_map(|row| {
            let cells: Vec<String> = row
                .trim()
                .trim_matches('|')
                .split('|')
                .filter_map(|cell| cell.split('`').nth(1).map(str::to_owned))
                .collect();
            (!cells.is_empty()).then_some(cells)
        })
        .collect()
}

/// The example as the document gives it: canonical bytes decoded, with the
/// positions and hashes the document states.
fn doc_entries(doc: &str, v: u8) -> Vec<Entry> {
    let mut prev = GENESIS;
    let mut entries = Vec::new();
    for seq in 1..=2 {
        let name = label(v, "canonical", Some(seq));
        let bytes = hex_block(doc, &name);
        let body = EntryBody::decode(&bytes).unwrap_or_else(|e| panic!("{name} does not decode: {e}"));
        let hash = doc_hash(doc, v, seq);
        entries.push(Entry {
            position: Position { chain: CHAIN, seq },
            prev_hash: prev,
            hash,
            body,
        });
        prev = hash;
    }
    entries
}

fn verify(entries: &[Entry], head_seq: u64, head_hash: &[u8; 32]) -> Result<u64, VerifyError> {
    let mut verifier = ChainVerifier::new(CHAIN);
    for entry in entries {
        verifier.push(entry)?;
    }
    verifier.finish(head_seq, head_hash)
}

// ---------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------

#[test]
fn the_documented_bytes_are_what_the_encoder_writes() {
    let doc = doc();
    for v in VERSIONS {
        for entry in example(v) {
            let seq = entry.position.seq;
            let expected = entry.body.encode();
            assert_eq!(expected[0], v);
            let name = label(v, "canonical", Some(seq));
            let documented = hex_block(&doc, &name);
            assert_eq!(
                hex::encode(&documented),
                hex::encode(&expected),
                "{name} in the document differs from EntryBody::encode"
            );
            let length = format!("Canonical bytes ({} bytes", expected.len());
            assert_eq!(doc.matches(&length).count(), 1, "the document states `{length}` once");
        }
    }
}

#[test]
fn the_documented_hashes_are_what_the_chain_rule_gives() {
    let doc = doc();
    assert_eq!(
        hex_block(&doc, "domain-tag"),
        DOMAIN_TAG_V1,
        "documented DOMAIN_TAG of version 1"
    );
    assert_eq!(
        hex_block(&doc, "domain-tag v2"),
        DOMAIN_TAG,
        "documented DOMAIN_TAG of version 2"
    );
    for v in VERSIONS {
        for entry in example(v) {
            let seq = entry.position.seq;
            assert_eq!(
                hex::encode(doc_hash(&doc, v, seq)),
                hex::encode(entry.hash),
                "{}",
                label(v, "hash", Some(seq))
            );
            let recomputed = entry_hash(entry.position, &entry.prev_hash, &entry.body.encode());
            assert_eq!(
                recomputed, entry.hash,
                "entry_hash agrees with Entry::seal at seq={seq}"
            );
        }
    }
}

/// The document is consistent on its own: SHA-256 over its prefix block and
/// its canonical bytes gives its hash, and the prefix is the domain tag, the
/// position and the previous hash it states.
#[test]
fn the_documented_hashes_follow_from_the_documented_bytes() {
    let doc = doc();
    for v in VERSIONS {
        let tag = hex_block(&doc, &label(v, "domain-tag", None));
        let mut prev = GENESIS;
        for seq in 1..=2 {
            let name = label(v, "hash-prefix", Some(seq));
            let prefix = hex_block(&doc, &name);
            let expected_prefix = hash_prefix(&tag, Position { chain: CHAIN, seq }, &prev);
            assert_eq!(hex::encode(&prefix), hex::encode(expected_prefix), "{name}");
            let canonical = hex_block(&doc, &label(v, "canonical", Some(seq)));
            let hash: [u8; 32] = Sha256::new()
                .chain_update(&prefix)
                .chain_update(&canonical)
                .finalize()
                .into();
            assert_eq!(
                hex::encode(hash),
                hex::encode(doc_hash(&doc, v, seq)),
                "SHA-256 of {name}"
            );
            prev = hash;
        }
    }
}

/// The version-2 commitments of the document follow from its secret: the
/// HMAC message it shows, and HMAC-SHA256 under the secret.
#[test]
fn the_documented_commitments_follow_from_the_documented_secret() {
    use hmac::{Hmac, Mac};
    let doc = doc();
    assert_eq!(hex_block(&doc, "learner-secret v2"), example_secret());
    assert_eq!(hex_block(&doc, "commitment-tag v2"), COMMITMENT_TAG);
    for entry in example(FORMAT_VERSION) {
        let seq = entry.position.seq;
        let message = hex_block(&doc, &label(FORMAT_VERSION, "commitment-message", Some(seq)));
        assert_eq!(
            message,
            [COMMITMENT_TAG, &CHAIN.to_be_bytes(), &seq.to_be_bytes()].concat(),
            "commitment-message v2 seq={seq}"
        );
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&example_secret()).expect("any key length");
        mac.update(&message);
        let independent: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(Some(independent), entry.body.commitment, "commitment of seq={seq}");
    }
}

#[test]
fn the_documented_bytes_decode_to_the_example() {
    let doc = doc();
    for v in VERSIONS {
        let expected = example(v);
        let documented = doc_entries(&doc, v);
        assert_eq!(documented, expected, "version {v}");
        for entry in &documented {
            assert_eq!(EntryBody::decode(&entry.body.encode()).as_ref(), Ok(&entry.body));
        }
    }
}

#[test]
fn the_documented_field_breakdown_matches_an_independent_encoder() {
    let doc = doc();
    for v in VERSIONS {
        for entry in example(v) {
            let seq = entry.position.seq;
            let independent = fields(&entry.body);
            let joined: Vec<u8> = independent.iter().flat_map(Field::bytes).collect();
            assert_eq!(hex::encode(&joined), hex::encode(entry.body.encode()), "v{v} seq={seq}");
            let documented = fields_block(&doc, v, seq);
            let documented_names: Vec<&str> = documented.iter().map(|f| f.0.as_str()).collect();
            assert_eq!(documented_names, field_names(v), "field names of v{v} seq={seq}");
            for ((name, bytes), expected) in documented.iter().zip(&independent) {
                let expected = expected.bytes();
                assert_eq!(
                    hex::encode(bytes),
                    hex::encode(expected),
                    "field {name} of v{v} seq={seq}"
                );
            }
        }
    }
}

#[test]
fn the_documented_field_values_are_the_example() {
    let doc = doc();
    for v in VERSIONS {
        let [award, reversal] = example_bodies(v);
        let (award, reversal) = (fields(&award), fields(&reversal));
        let mut expected = vec![vec!["position".to_owned(), format!("{CHAIN}:1"), format!("{CHAIN}:2")]];
        expected.extend(
            award
                .into_iter()
                .zip(reversal)
                .map(|(one, two)| vec![one.name.to_owned(), one.value, two.value]),
        );
        assert_eq!(value_table(&doc, v), expected, "the table of the version-{v} example");
    }
}

#[test]
fn a_chain_verifier_accepts_the_documented_chain() {
    let doc = doc();
    for v in VERSIONS {
        let entries = doc_entries(&doc, v);
        let head = doc_hash(&doc, v, 2);
        assert_eq!(verify(&entries, 2, &head), Ok(2), "version {v}");
    }
}

/// The failures the document describes, on its own example.
#[test]
fn a_chain_verifier_names_tampering_with_the_documented_chain() {
    let doc = doc();
    let at = |seq| Position { chain: CHAIN, seq };
    for v in VERSIONS {
        let entries = doc_entries(&doc, v);
        let head = doc_hash(&doc, v, 2);

        let mut altered = entries.clone();
        altered[0].body.credits = Credits::from_cents(500);
        let err = verify(&altered, 2, &head).expect_err("altered credits");
        assert_eq!((err.position, err.fault), (at(1), Fault::HashMismatch));

        let removed_first = &entries[1..];
        let err = verify(removed_first, 2, &head).expect_err("first entry removed");
        assert_eq!((err.position, err.fault), (at(1), Fault::Gap { found: 2 }));

        let removed_last = &entries[..1];
        let err = verify(removed_last, 2, &head).expect_err("last entry removed");
        assert_eq!((err.position, err.fault), (at(2), Fault::HeadMismatch { head_seq: 2 }));

        let mut swapped = vec![entries[1].clone(), entries[0].clone()];
        swapped[0].position = at(1);
        swapped[1].position = at(2);
        let err = verify(&swapped, 2, &head).expect_err("entries swapped");
        assert_eq!((err.position, err.fault), (at(1), Fault::BrokenLink));
    }
}

/// A version-2 entry verifies without its note and without its learner id:
/// erasure removes both and every hash still holds.
#[test]
fn a_version_two_chain_verifies_without_notes_or_learner_ids() {
    let mut entries = example(FORMAT_VERSION);
    entries[1].body.note = Some(xuefen_core::note::Note::seal(
        &[7; 32],
        entries[1].position,
        "成绩录入错误",
    ));
    let head = entries[1].hash;
    assert_eq!(verify(&entries, 2, &head), Ok(2));
    for e in &mut entries {
        e.body.note = None;
        e.body.learner = LearnerId::from_random([0xee; 16]);
    }
    assert_eq!(verify(&entries, 2, &head), Ok(2));
}

/// Prints the fragments of the document's worked examples.
#[test]
fn fragments() {
    for v in VERSIONS {
        let entries = example(v);
        let heading = if v == FORMAT_V1 {
            "### Field values".to_owned()
        } else {
            format!("### Field values (version {v})")
        };
        println!("{heading}\n");
        println!("| Field | seq 1 (award) | seq 2 (reversal) |");
        println!("|---|---|---|");
        println!("| `position` | `{}` | `{}` |", entries[0].position, entries[1].position);
        for (one, two) in fields(&entries[0].body).into_iter().zip(fields(&entries[1].body)) {
            let cell = |f: &Field| format!("`{}` ({})", f.value, f.note);
            println!("| `{}` | {} | {} |", one.name, cell(&one), cell(&two));
        }
        println!(
            "\n```hex {}\n{}\n```",
            label(v, "domain-tag", None),
            hex::encode(tag(v))
        );
        if v != FORMAT_V1 {
            println!("\n```hex learner-secret v{v}\n{}\n```", hex::encode(example_secret()));
            println!("\n```hex commitment-tag v{v}\n{}\n```", hex::encode(COMMITMENT_TAG));
            for entry in &entries {
                let seq = entry.position.seq;
                let message = [COMMITMENT_TAG, &CHAIN.to_be_bytes(), &seq.to_be_bytes()].concat();
                println!(
                    "\n```hex {}\n{}\n```",
                    label(v, "commitment-message", Some(seq)),
                    hex::encode(message)
                );
            }
        }
        for entry in &entries {
            let seq = entry.position.seq;
            println!("\n```text {}", label(v, "fields", Some(seq)));
            for field in fields(&entry.body) {
                println!("{:<44} # {}", field.hex(), field.name);
            }
            println!("```");
            println!("\nCanonical bytes ({} bytes, 32 a line):", entry.body.encode().len());
            println!("\n```hex {}", label(v, "canonical", Some(seq)));
            for line in entry.body.encode().chunks(32) {
                println!("{}", hex::encode(line));
            }
            println!("```");
            println!("\n```hex {}", label(v, "hash-prefix", Some(seq)));
            for line in hash_prefix(tag(v), entry.position, &entry.prev_hash).chunks(32) {
                println!("{}", hex::encode(line));
            }
            println!("```");
            println!("\n{}: {}", label(v, "hash", Some(seq)), hex::encode(entry.hash));
        }
    }
}

// ---------------------------------------------------------------------------
// Section 3b: a site change in the alliance chain.
// ---------------------------------------------------------------------------

/// The site change of the document: `hangzhou-xihu` suspended by an admin key.
fn example_site_change() -> SiteChange {
    SiteChange {
        site: SiteId::parse("hangzhou-xihu").expect("example site id"),
        from: Some(SiteStatus::Active),
        to: SiteStatus::Suspended,
        actor: "key_3f9a2c417be0".into(),
        reason: Reason::parse("连续三个月未更新", "reason").expect("example reason"),
        // 2025-07-01T00:00:00.000Z
        at: Millis(1_751_328_000_000),
        // 2024-01-01T00:00:00.000+08:00 and three years (1,096 days) later
        agreement_starts_at: Millis(1_704_038_400_000),
        agreement_ends_at: Millis(1_704_038_400_000 + 1_096 * 86_400_000),
    }
}

#[test]
fn the_documented_site_change_is_what_the_encoder_writes() {
    let doc = doc();
    let change = example_site_change();
    let documented = hex_block(&doc, "canonical site-change");
    assert_eq!(
        hex::encode(&documented),
        hex::encode(change.encode()),
        "canonical site-change"
    );
    assert_eq!(SiteChange::decode(&documented), Ok(change.clone()));
    let sealed = SiteChangeEntry::seal(1, GENESIS, change);
    let label = "hash site-change:";
    let line = doc
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .expect("docs/ledger-format.md has a line `hash site-change: <hex>`");
    assert_eq!(line.trim(), hex::encode(sealed.hash));
    assert_eq!(
        sealed.position,
        Position {
            chain: ALLIANCE_CHAIN,
            seq: 1
        }
    );
    let mut v = ChainVerifier::new(ALLIANCE_CHAIN);
    v.push_sealed(sealed.position, &sealed.prev_hash, &sealed.hash, &documented)
        .expect("the documented site change verifies");
}

/// Prints the fragments of the document's site-change example.
#[test]
fn site_change_fragments() {
    let change = example_site_change();
    println!("\n```hex canonical site-change");
    for line in change.encode().chunks(32) {
        println!("{}", hex::encode(line));
    }
    println!("```");
    println!(
        "\nhash site-change: {}",
        hex::encode(SiteChangeEntry::seal(1, GENESIS, change).hash)
    );
}

/// A chain begun in version 1 and continued in version 2 (a ledger written
/// before migration 0007 and after it) verifies entry by entry, each under
/// its own domain tag.
#[test]
fn a_chain_that_changes_version_midway_verifies() {
    let [award_v1, _] = example_bodies(FORMAT_V1);
    let [_, reversal_v2] = example_bodies(FORMAT_VERSION);
    let first = Entry::seal(Position { chain: CHAIN, seq: 1 }, GENESIS, award_v1);
    let second = Entry::seal(Position { chain: CHAIN, seq: 2 }, first.hash, reversal_v2);
    assert_eq!(first.body.version(), FORMAT_V1);
    assert_eq!(second.body.version(), FORMAT_VERSION);
    let entries = [first, second];
    assert_eq!(verify(&entries, 2, &entries[1].hash), Ok(2));
    let mut altered = entries.clone();
    altered[1].body.reason = Reason::code("other", "reason").expect("code");
    let err = verify(&altered, 2, &entries[1].hash).expect_err("altered reason code");
    assert_eq!(err.fault, Fault::HashMismatch);
}

/// The sealed note of the version-2 reversal (section 3d) follows from the
/// documented secret by the documented construction, written here apart
/// from `xuefen_core::note`, and the code seals and opens the same value.
#[test]
fn the_documented_note_follows_from_the_documented_secret() {
    use base64::Engine as _;
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    use chacha20poly1305::{XChaCha20Poly1305, XNonce};
    use hmac::{Hmac, Mac};
    use xuefen_core::note::Note;
    let hmac = |key: &[u8], parts: &[&[u8]]| -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    };
    let doc = doc();
    let text = "成绩录入错误";
    let key = hmac(&example_secret(), &[b"xuefen/note-key/v1"]);
    let bound = [
        b"xuefen/note/v1\0".as_slice(),
        &CHAIN.to_be_bytes(),
        &2u64.to_be_bytes(),
    ]
    .concat();
    let nonce = hmac(&key, &[b"nonce\0", &bound, text.as_bytes()]);
    let nonce = &nonce[..24];
    let sealed = XChaCha20Poly1305::new((&key).into())
        .encrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: text.as_bytes(),
                aad: &bound,
            },
        )
        .expect("seals");
    let stored = format!(
        "xfr1:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode([nonce, &sealed].concat())
    );
    assert_eq!(hex_block(&doc, "note-key v2"), key);
    assert_eq!(hex_block(&doc, "note-bound v2 seq=2"), bound);
    assert_eq!(hex_block(&doc, "note-nonce v2 seq=2"), nonce);
    assert_eq!(block(&doc, "text note v2 seq=2").trim(), stored);
    let at = Position { chain: CHAIN, seq: 2 };
    assert_eq!(Note::seal(&example_secret(), at, text).stored(), stored);
    let back = Note::from_stored(stored, "reason_note").expect("sealed");
    assert_eq!(back.open(Some(&example_secret()), at).as_deref(), Some(text));
}
