//! The learner's record as a verifiable credential: issued over HTTP
//! (`/v1/me/record`, `/v1/learners/{id}/record`), checked by `xuefen
//! verify-record`, by Digital Bazaar's `@digitalbazaar/vc` with the
//! `eddsa-rdfc-2022` cryptosuite (node, offline), by the verification page
//! over HTTP and in headless Chromium; each with a tampered copy that must
//! fail. On each backend.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::browser::{self, FormPages};
use crate::harness::{Backend, SSO_ISSUER, SSO_SECRET, TestApp, learner_token};

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_record_is_a_credential_that_others_verify_and_a_changed_one_fails() {
        super::record_verifies(crate::harness::Backend::Postgres).await;
    }
}
mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_record_is_a_credential_that_others_verify_and_a_changed_one_fails() {
        super::record_verifies(crate::harness::Backend::Sqlite).await;
    }
}

/// Waits until every committed entry is sealed (bounded: 30 s).
pub(crate) async fn wait_sealed(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let resp = app
            .client
            .get(format!("{}/checkpoint", app.base))
            .send()
            .await
            .expect("GET /checkpoint");
        if resp.status() == StatusCode::OK {
            let note = resp.text().await.expect("note");
            let size: i64 = note.lines().nth(1).and_then(|s| s.parse().ok()).unwrap_or(-1);
            if size == app.scalar("select count(*) from ledger_entries").await {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the log did not seal every entry");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn contexts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../xuefen-record/contexts")
}

pub(crate) async fn verify_record_cli(file: &Path, did: &str) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_xuefen"))
        .arg("verify-record")
        .arg(file)
        .args(["--public-key", did])
        .env_remove("DATABASE_URL")
        .output()
        .await
        .expect("run xuefen verify-record");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Runs the npm verifier on `record`: Some((verified, output)), or None
/// (printed SKIPPED) without the npm folder that scripts/test.sh installs.
pub(crate) async fn node_verify(record: &Path, did_document: &Path) -> Option<(bool, String)> {
    let Some(dir) = std::env::var_os("XUEFEN_NODE_VC_DIR") else {
        browser::skipped(
            "SKIPPED: independent verification with @digitalbazaar/vc: XUEFEN_NODE_VC_DIR is not set (scripts/test.sh installs it with npm)",
            "XUEFEN_REQUIRE_NODE_VC",
        );
        return None;
    };
    let dir = PathBuf::from(dir);
    let script = dir.join("verify-record.mjs");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/verify-record.mjs"),
        &script,
    )
    .expect("copy the node script");
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(&script)
        .arg(record)
        .arg(contexts_dir())
        .arg(did_document)
        .current_dir(&dir)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("node finished within 120 s")
        .expect("run node");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "the node verifier could not run: {text}"
    );
    Some((out.status.code() == Some(0), text))
}

fn form_body(name: &str, value: &str) -> String {
    let encoded: String = value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("{name}={encoded}")
}

async fn post_verify(app: &TestApp, record: &str) -> (StatusCode, String) {
    let resp = app
        .client
        .post(format!("{}/verify", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body("record", record))
        .send()
        .await
        .expect("POST /verify");
    let status = resp.status();
    (status, resp.text().await.expect("body"))
}

async fn record_verifies(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let xihu = app.site("xihu").await;
    let course = |title: &str, credits: &str| json!({"title": title, "category": "community", "rule": {"kind": "fixed", "credits": credits}});
    for (code, title, credits) in [("TEA-1", "茶文化", "2"), ("ART-1", "书法进阶", "3")] {
        let (status, body) = app
            .put(&format!("/v1/courses/{code}"), &xihu, course(title, credits))
            .await;
        assert!(status.is_success(), "{body}");
    }
    let learner = app.learner(&xihu, "x-1", 1).await;
    for (id, code) in [("r1", "TEA-1"), ("r2", "ART-1")] {
        let event = json!({"kind": "completion", "course": code, "learner": {"local_account": "x-1"}, "completed_at": "2026-06-01T02:00:00Z"});
        let (status, body) = app.put(&format!("/v1/events/{id}"), &xihu, event).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    wait_sealed(&app).await;
    let token = learner_token(&learner, SSO_ISSUER, SSO_SECRET, 600);

    // ------------------------------------------------------------ issued over HTTP
    let resp = app
        .client
        .get(format!("{}/v1/me/record", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET /v1/me/record");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/vc+ld+json");
    let text = resp.text().await.expect("record");
    let record: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(record["type"], json!(["VerifiableCredential", "ClrCredential"]));
    assert_eq!(record["proof"][0]["cryptosuite"], "eddsa-rdfc-2022");
    assert_eq!(record["proof"][1]["cryptosuite"], "eddsa-jcs-2022");
    let lines = record["credentialSubject"]["achievement"]
        .as_array()
        .expect("achievements");
    assert_eq!(lines.len(), 2, "{record}");
    let names: Vec<&str> = lines.iter().filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(names, ["茶文化", "书法进阶"]);
    assert_eq!(lines[0]["awardedCredits"], "2.00");
    assert_eq!(lines[0]["creator"]["name"], "xihu 学习网");
    assert_eq!(lines[0]["entryStatus"], "awarded");
    for a in lines {
        let ev = &a["ledgerEvidence"];
        assert_eq!(ev["sealed"], true, "{a}");
        assert!(ev["logIndex"].is_u64() && ev["inclusionProof"].is_array(), "{a}");
        // No personal data in the evidence: the entry names the learner by
        // commitment only.
        let bytes = hex::decode(ev["entryBytes"].as_str().expect("hex")).expect("hex");
        assert!(!String::from_utf8_lossy(&bytes).contains(&learner), "{a}");
    }
    assert!(
        record["ledgerCheckpoint"]
            .as_str()
            .is_some_and(|n| n.contains("\n\n— ")),
        "{record}"
    );

    // The admin reads it too; a site may not.
    let (status, admin_view) = app.get(&format!("/v1/learners/{learner}/record"), &app.admin).await;
    assert_eq!(status, StatusCode::OK, "{admin_view}");
    assert_eq!(
        admin_view["credentialSubject"]["achievement"].as_array().map(Vec::len),
        Some(2)
    );
    let (status, _) = app.get(&format!("/v1/learners/{learner}/record"), &xihu).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app.get("/v1/learners/lrn_nobody/record", &app.admin).await;
    assert!(
        matches!(status, StatusCode::NOT_FOUND | StatusCode::UNPROCESSABLE_ENTITY),
        "{body}"
    );

    // The issuer is published.
    let issuer: Value = app
        .client
        .get(format!("{}/v1/record/issuer", app.base))
        .send()
        .await
        .expect("issuer")
        .json()
        .await
        .expect("JSON");
    let did = issuer["did"].as_str().expect("did").to_owned();
    assert!(did.starts_with("did:key:z6Mk"), "{issuer}");
    assert_eq!(record["issuer"]["id"], did.as_str());
    assert_eq!(record["logVerifierKey"], issuer["log_verifier_key"]);

    // The files an outsider gets: the record, a changed copy (one character:
    // the first line's credits 2.00 → 3.00), the DID document.
    let out = browser::output_dir("record", backend);
    let good = out.join("record.json");
    std::fs::write(&good, &text).expect("write");
    let changed_text = text.replacen("\"awardedCredits\": \"2.00\"", "\"awardedCredits\": \"3.00\"", 1);
    assert_ne!(changed_text, text);
    let changed = out.join("record-changed.json");
    std::fs::write(&changed, &changed_text).expect("write");
    let did_doc = out.join("did.json");
    std::fs::write(&did_doc, issuer["did_document"].to_string()).expect("write");

    // ------------------------------------------------------------ xuefen verify-record
    let (code, output) = verify_record_cli(&good, &did).await;
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("record verified: 2 lines"), "{output}");
    assert_eq!(output.matches("included in the checkpoint").count(), 2, "{output}");
    let (code, output) = verify_record_cli(&changed, &did).await;
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("BAD  proof"), "{output}");
    assert!(
        output.contains("BAD  line 1") && output.contains("awardedCredits differs"),
        "{output}"
    );
    assert!(output.contains("first bad line urn:xuefen:entry:"), "{output}");
    // The DID document file and the wrong key.
    let (code, output) = verify_record_cli(&good, did_doc.to_str().expect("path")).await;
    assert_eq!(code, 0, "{output}");
    let other = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    let (code, output) = verify_record_cli(&good, &hex::encode(other.as_bytes())).await;
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("not the issuer key"), "{output}");

    // ------------------------------------------------------------ @digitalbazaar/vc (node)
    if let Some((verified, output)) = node_verify(&good, &did_doc).await {
        assert!(verified, "@digitalbazaar/vc refused the record: {output}");
        let (verified, output) = node_verify(&changed, &did_doc).await.expect("ran once");
        assert!(!verified, "@digitalbazaar/vc accepted a changed record: {output}");
        println!("@digitalbazaar/vc: the record verifies, the changed copy does not");
    }

    // ------------------------------------------------------------ the verification page
    let page = app
        .client
        .get(format!("{}/verify", app.base))
        .send()
        .await
        .expect("GET /verify");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.expect("body").contains("学习记录核验"));
    let (status, body) = post_verify(&app, &text).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("凭证有效"), "{body}");
    assert_eq!(body.matches("data-state=\"verified\"").count(), 2, "{body}");
    let (status, body) = post_verify(&app, &changed_text).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("凭证未通过核验"), "{body}");
    assert!(body.contains("data-state=\"failed\""), "{body}");
    let (status, body) = post_verify(&app, "not json").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("不是 JSON"), "{body}");

    // /me: the download link and the QR code of the verification page; the
    // download (the page's cookie) is a record that verifies.
    let me = app
        .client
        .get(format!("{}/me", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET /me")
        .text()
        .await
        .expect("body");
    assert!(
        me.contains("id=\"download-record\"") && me.contains("href=\"/me/record\""),
        "{me}"
    );
    assert!(me.contains("id=\"verify-qr\"") && me.contains("<svg"), "{me}");
    // The address under the code (escaped as the template writes it).
    let address = format!("{}/verify/offline", app.base).replace('/', "&#x2f;");
    assert!(me.contains(&address), "{me}");
    let download = app
        .client
        .get(format!("{}/me/record", app.base))
        .header("cookie", format!("xf_sso={token}"))
        .send()
        .await
        .expect("GET /me/record");
    assert_eq!(download.status(), StatusCode::OK);
    assert!(
        download.headers()["content-disposition"]
            .to_str()
            .is_ok_and(|d| d.starts_with("attachment")),
    );
    let downloaded = out.join("downloaded.json");
    std::fs::write(&downloaded, download.text().await.expect("body")).expect("write");
    let (code, output) = verify_record_cli(&downloaded, &did).await;
    assert_eq!(code, 0, "{output}");
    let anonymous = app
        .client
        .get(format!("{}/me/record", app.base))
        .send()
        .await
        .expect("GET /me/record");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // ------------------------------------------------------------ identity objects
    // The learner gives the document they registered with; the record then
    // says whose it is (OB3 IdentityObjects: the name, the document number
    // as a salted hash), while the ledger evidence stays without either.
    let number = crate::harness::resident_id(1);
    let post_record = |document: Value| {
        app.client
            .post(format!("{}/v1/me/record", app.base))
            .bearer_auth(&token)
            .json(&json!({ "document": document }))
            .send()
    };
    let resp = post_record(json!({"kind": "resident_id", "number": number}))
        .await
        .expect("POST /v1/me/record");
    assert_eq!(resp.status(), StatusCode::OK);
    let id_text = resp.text().await.expect("record");
    let with_id: Value = serde_json::from_str(&id_text).expect("JSON");
    let ids = with_id["credentialSubject"]["identifier"]
        .as_array()
        .expect("identifier");
    assert_eq!(ids.len(), 2, "{with_id}");
    assert_eq!(ids[0]["identityType"], "name");
    assert_eq!(ids[0]["identityHash"], "测试");
    assert_eq!(ids[1]["identityType"], "nationalIdentityNumber");
    assert_eq!(ids[1]["hashed"], true);
    let salt = ids[1]["salt"].as_str().expect("salt");
    let want = {
        use sha2::Digest;
        format!(
            "sha256${}",
            hex::encode(sha2::Sha256::digest(format!("{number}{salt}").as_bytes()))
        )
    };
    assert_eq!(ids[1]["identityHash"], want.as_str(), "an employer's check of the card");
    assert!(!id_text.contains(&number), "the number itself is not in the record");
    for a in with_id["credentialSubject"]["achievement"].as_array().expect("lines") {
        let bytes = hex::decode(a["ledgerEvidence"]["entryBytes"].as_str().expect("hex")).expect("hex");
        let bytes = String::from_utf8_lossy(&bytes).into_owned();
        assert!(!bytes.contains("测试") && !bytes.contains(salt), "{a}");
        assert!(!a["ledgerEvidence"].to_string().contains("测试"), "{a}");
    }
    let id_file = out.join("record-identity.json");
    std::fs::write(&id_file, &id_text).expect("write");
    let (code, output) = verify_record_cli(&id_file, &did).await;
    assert_eq!(code, 0, "{output}");
    if let Some((verified, output)) = node_verify(&id_file, &did_doc).await {
        assert!(
            verified,
            "@digitalbazaar/vc refused the record with identity objects: {output}"
        );
    }
    // Another person's document, or a malformed one, is refused by field.
    for document in [
        json!({"kind": "resident_id", "number": crate::harness::resident_id(2)}),
        json!({"kind": "resident_id", "number": "123"}),
    ] {
        let resp = post_record(document).await.expect("POST /v1/me/record");
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let problem: Value = resp.json().await.expect("problem");
        assert!(problem.to_string().contains("document"), "{problem}");
    }

    // ------------------------------------------------------------ in a real browser
    let Some(chromium) = browser::chromium_or_skip("browser part of the record test") else {
        return;
    };
    // A page that posts a record to the verification page, as a person
    // pasting it would; each path its record.
    let (good, changed) = (text.clone(), changed_text.clone());
    let helper = FormPages::start(&app.base, move |path| {
        let record = if path == "/changed" { &changed } else { &good };
        ("/verify", vec![("record".to_owned(), record.clone())])
    })
    .await;
    let dom = chromium.dump_dom(&helper.url("/good")).await;
    assert!(dom.contains("凭证有效"), "{dom}");
    assert_eq!(dom.matches("已核验").count(), 2, "both lines verified: {dom}");
    chromium.screenshot(&helper.url("/good"), &out.join("verify.png")).await;
    let dom = chromium.dump_dom(&helper.url("/changed")).await;
    assert!(dom.contains("凭证未通过核验") && dom.contains("未通过核验"), "{dom}");
    chromium
        .screenshot(&helper.url("/changed"), &out.join("verify-changed.png"))
        .await;
    for shot in ["verify.png", "verify-changed.png"] {
        let len = std::fs::metadata(out.join(shot)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 10_000, "{shot} is {len} bytes");
    }

    // The static page that checks in the browser (WebCrypto), from the
    // service and saved to disk (file://, no network): the record comes in
    // the link's fragment, which the browser never sends anywhere.
    let page = reqwest::get(format!("{}/verify/offline", app.base))
        .await
        .expect("GET /verify/offline");
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(
        csp.contains("script-src 'sha256-") && csp.contains("connect-src 'none'"),
        "{csp}"
    );
    let saved = out.join("verify-offline.html");
    let page_text = page.text().await.expect("page");
    // Saved to disk it keeps its own policy: no network from the page.
    assert!(
        page_text.contains("http-equiv=\"Content-Security-Policy\"") && page_text.contains("connect-src 'none'"),
        "the page carries its CSP"
    );
    std::fs::write(&saved, &page_text).expect("write");
    let file_url = format!("file://{}", saved.canonicalize().expect("path").display());
    for (base, tag) in [
        (file_url.as_str(), "file"),
        (&*format!("{}/verify/offline", app.base), "served"),
    ] {
        let good_url = format!("{base}#record={}", base64url(text.as_bytes()));
        let dom = chromium.dump_dom(&good_url).await;
        assert!(dom.contains("id=\"summary\" data-state=\"ok\""), "{tag}: {dom}");
        assert_eq!(
            dom.matches("class=\"line ok\"").count(),
            2,
            "{tag}: both lines verified: {dom}"
        );
        assert!(!dom.contains("line bad"), "{tag}: {dom}");
        assert!(
            dom.contains("签名：已核验") && dom.contains("检查点：已核验"),
            "{tag}: {dom}"
        );
        chromium
            .screenshot(&good_url, &out.join(format!("offline-{tag}.png")))
            .await;
        let changed_url = format!("{base}#record={}", base64url(changed_text.as_bytes()));
        let dom = chromium.dump_dom(&changed_url).await;
        assert!(dom.contains("id=\"summary\" data-state=\"bad\""), "{tag}: {dom}");
        assert!(dom.contains("签名：未通过核验"), "{tag}: {dom}");
        assert!(
            dom.contains("class=\"line bad\"") && dom.contains("awardedCredits"),
            "{tag}: line 1 not verified: {dom}"
        );
        chromium
            .screenshot(&changed_url, &out.join(format!("offline-{tag}-changed.png")))
            .await;
        for shot in [format!("offline-{tag}.png"), format!("offline-{tag}-changed.png")] {
            let len = std::fs::metadata(out.join(&shot)).map(|m| m.len()).unwrap_or(0);
            assert!(len > 10_000, "{shot} is {len} bytes");
        }
    }
    println!("record files and screenshots in {}", out.display());
}

/// Base64url without padding (RFC 4648 section 5).
fn base64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}
