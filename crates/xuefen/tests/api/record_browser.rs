//! The learner's record in a real browser, used as a person would use it
//! (headless Chromium over the DevTools protocol, `cdp.rs`), on each
//! backend:
//! - on `/me`, signed in through the page's own form, the learner types
//!   their document number into the identity form and downloads the record
//!   with identity objects; the file verifies (`xuefen verify-record`, and
//!   `@digitalbazaar/vc` where installed); another person's number gets the
//!   error page;
//! - the in-browser verification page, saved to disk, checks a record
//!   chosen with the file input and one dropped onto it (and a changed one
//!   dropped: not verified);
//! - in a browser without WebCrypto Ed25519, the page says so and points
//!   to `xuefen verify-record`.
//!
//! Screenshots under `target/tmp/record-browser/<backend>/`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::browser;
use crate::cdp::Browser;
use crate::harness::{Backend, SSO_ISSUER, SSO_SECRET, TestApp, learner_token};
use crate::record::{node_verify, verify_record_cli, wait_sealed};

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_learner_downloads_a_record_with_identity_and_checks_files_in_the_browser() {
        super::record_in_browser(crate::harness::Backend::Postgres).await;
    }
}
mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_learner_downloads_a_record_with_identity_and_checks_files_in_the_browser() {
        super::record_in_browser(crate::harness::Backend::Sqlite).await;
    }
}

/// Makes the page's WebCrypto refuse Ed25519, as a browser without it does
/// (`NotSupportedError` from `importKey`), before any script of the page runs.
const WITHOUT_ED25519: &str = r#"(() => {
  const importKey = SubtleCrypto.prototype.importKey;
  SubtleCrypto.prototype.importKey = function (format, key, algorithm, ...rest) {
    const name = typeof algorithm === "string" ? algorithm : algorithm && algorithm.name;
    if (String(name).toLowerCase() === "ed25519") {
      return Promise.reject(new DOMException("Algorithm: Unrecognized name", "NotSupportedError"));
    }
    return importKey.call(this, format, key, algorithm, ...rest);
  };
})();"#;

async fn record_in_browser(backend: Backend) {
    let Some(chromium) = browser::chromium_or_skip("the record's browser test") else {
        return;
    };
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
    app.learner(&xihu, "x-2", 2).await;
    for (id, code) in [("r1", "TEA-1"), ("r2", "ART-1")] {
        let event = json!({"kind": "completion", "course": code, "learner": {"local_account": "x-1"}, "completed_at": "2026-06-01T02:00:00Z"});
        let (status, body) = app.put(&format!("/v1/events/{id}"), &xihu, event).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    wait_sealed(&app).await;
    let token = learner_token(&learner, SSO_ISSUER, SSO_SECRET, 600);
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
    let out = browser::fresh_output_dir("record-browser", backend);
    std::fs::create_dir_all(out.join("downloads")).expect("output directory");
    let did_doc = out.join("did.json");
    std::fs::write(&did_doc, issuer["did_document"].to_string()).expect("write");

    let mut b = Browser::launch(chromium.program()).await;
    let downloads = out.join("downloads");
    b.browser_call(
        "Browser.setDownloadBehavior",
        json!({"behavior": "allowAndName", "downloadPath": downloads.display().to_string(), "eventsEnabled": true}),
    )
    .await;

    // ------------------------------------------------------------ /me: sign in with the page's form
    b.navigate(&format!("{}/me", app.base)).await;
    assert!(b.dom().await.contains("请使用统一身份认证登录"));
    b.type_into("textarea[name=token]", &token).await;
    b.click("form[action='/me/login'] button[type=submit]").await;
    b.wait_until("location.pathname === '/me' && !!document.getElementById('record-identity')")
        .await;
    let me = b.dom().await;
    for seen in ["茶文化", "书法进阶", "下载带身份信息的凭证", "居民身份证"] {
        assert!(me.contains(seen), "/me lacks {seen}: {me}");
    }

    // The identity form: the learner's own number, typed; the download.
    let number = crate::harness::resident_id(1);
    b.eval("document.getElementById('identity-kind').value = 'resident_id'")
        .await;
    b.type_into("#identity-number", &number).await;
    b.screenshot(&out.join("me-identity-form.png")).await;
    b.click("#download-identity").await;
    let begun = b.wait_event("Browser.downloadWillBegin", |_| true).await;
    assert_eq!(begun["suggestedFilename"], "xuefen-record.json", "{begun}");
    let guid = begun["guid"].as_str().expect("guid").to_owned();
    b.wait_event("Browser.downloadProgress", |p| {
        p["guid"] == guid.as_str() && p["state"] != "inProgress"
    })
    .await
    .get("state")
    .filter(|s| *s == "completed")
    .expect("the download completed");
    let file = downloads.join(&guid);
    let text = std::fs::read_to_string(&file).expect("the downloaded record");
    let record: Value = serde_json::from_str(&text).expect("JSON");
    let ids = record["credentialSubject"]["identifier"]
        .as_array()
        .expect("identity objects in the download");
    assert_eq!(ids.len(), 2, "{record}");
    assert_eq!(ids[0]["identityType"], "name");
    assert_eq!(ids[0]["identityHash"], "测试");
    assert_eq!(ids[1]["identityType"], "nationalIdentityNumber");
    let salt = ids[1]["salt"].as_str().expect("salt");
    let want = {
        use sha2::Digest;
        format!(
            "sha256${}",
            hex::encode(sha2::Sha256::digest(format!("{number}{salt}").as_bytes()))
        )
    };
    assert_eq!(ids[1]["identityHash"], want.as_str(), "an employer's check of the card");
    assert!(!text.contains(&number), "the number itself is not in the record");
    assert_eq!(
        record["credentialSubject"]["achievement"].as_array().map(Vec::len),
        Some(2)
    );
    let saved = out.join("record-identity.json");
    std::fs::write(&saved, &text).expect("write");
    let (code, output) = verify_record_cli(&saved, &did).await;
    assert_eq!(code, 0, "{output}");
    if let Some((verified, output)) = node_verify(&saved, &did_doc).await {
        assert!(verified, "@digitalbazaar/vc refused the downloaded record: {output}");
    }

    // Another person's number: the error page, naming the field; no download.
    b.navigate(&format!("{}/me", app.base)).await;
    b.type_into("#identity-number", &crate::harness::resident_id(2)).await;
    b.click("#download-identity").await;
    b.wait_until("location.pathname === '/me/record' && document.readyState === 'complete'")
        .await;
    let refused = b.dom().await;
    assert!(
        refused.contains("证件与您登记时所用的证件不符") && refused.contains("document"),
        "{refused}"
    );
    b.screenshot(&out.join("me-identity-refused.png")).await;
    // A malformed number: the error page names document/number.
    b.navigate(&format!("{}/me", app.base)).await;
    b.type_into("#identity-number", "123").await;
    b.click("#download-identity").await;
    b.wait_until("location.pathname === '/me/record' && document.readyState === 'complete'")
        .await;
    let refused = b.dom().await;
    assert!(refused.contains("document/number"), "{refused}");
    let files = std::fs::read_dir(&downloads).expect("downloads").count();
    assert_eq!(files, 1, "a refused form downloads nothing");
    // Over HTTP: the status of the refusals, and a body that is no form.
    let post = |body: &'static str| {
        app.client
            .post(format!("{}/me/record", app.base))
            .header("cookie", format!("xf_sso={token}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    for body in ["kind=resident_id&number=123", "kind=visa&number=X1", ""] {
        let resp = post(body).await.expect("POST /me/record");
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .is_ok_and(|c| c.starts_with("text/html"))
        );
    }
    let anonymous = app
        .client
        .post(format!("{}/me/record", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("kind=resident_id&number={number}"))
        .send()
        .await
        .expect("POST /me/record");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // ------------------------------------------------------------ the in-browser verification page, saved to disk
    let changed_text = text.replacen("\"awardedCredits\": \"2.00\"", "\"awardedCredits\": \"3.00\"", 1);
    assert_ne!(changed_text, text);
    let changed = out.join("record-identity-changed.json");
    std::fs::write(&changed, &changed_text).expect("write");
    let page = reqwest::get(format!("{}/verify/offline", app.base))
        .await
        .expect("GET /verify/offline")
        .text()
        .await
        .expect("page");
    let page_file = out.join("verify-offline.html");
    std::fs::write(&page_file, page).expect("write");
    let page_url = format!("file://{}", page_file.canonicalize().expect("path").display());
    let settled = "['ok', 'bad', 'unsupported'].includes(document.getElementById('summary').dataset.state)";
    let state = "document.getElementById('summary').dataset.state";

    // Chosen with the file input.
    b.navigate(&page_url).await;
    b.choose_file("#file", &saved).await;
    b.wait_until(settled).await;
    assert_eq!(b.eval(state).await, "ok", "{}", b.dom().await);
    assert_eq!(b.eval("document.querySelectorAll('tr.line.ok').length").await, 2);
    // Whose record: the name, and the document number checked against the
    // salted hash in the browser (a wrong number, then the right one).
    let id_state = "document.getElementById('id-result').dataset.state";
    assert_eq!(b.eval("document.getElementById('identity').hidden").await, false);
    assert_eq!(
        b.eval("document.getElementById('identity-name').textContent").await,
        "登记姓名：测试"
    );
    b.type_into("#id-number", &crate::harness::resident_id(2)).await;
    b.click("#id-check").await;
    b.wait_until(&format!("{id_state} !== 'idle'")).await;
    assert_eq!(b.eval(id_state).await, "bad");
    b.eval("document.getElementById('id-number').value = ''").await;
    // Typed in lower case with spaces, as a person might.
    let typed = format!("{} {}", &number[..6], number[6..].to_lowercase());
    b.type_into("#id-number", &typed).await;
    b.click("#id-check").await;
    b.wait_until(&format!("{id_state} === 'ok'")).await;
    assert!(b.dom().await.contains("与证件相符"));
    b.screenshot(&out.join("offline-chosen.png")).await;

    // Dropped onto the page: the changed copy fails on line 1, the good one holds.
    b.navigate(&page_url).await;
    b.drop_file("#drop", &changed).await;
    b.wait_until(settled).await;
    let dom = b.dom().await;
    assert_eq!(b.eval(state).await, "bad", "{dom}");
    assert!(dom.contains("签名：未通过核验"), "{dom}");
    assert!(
        dom.contains("class=\"line bad\"") && dom.contains("awardedCredits"),
        "line 1 not verified: {dom}"
    );
    // The identity of a record that does not verify is not to be trusted,
    // even when the number matches.
    assert!(
        b.eval("document.getElementById('identity-name').textContent")
            .await
            .as_str()
            .is_some_and(|t| t.contains("不可信")),
        "{dom}"
    );
    b.type_into("#id-number", &number).await;
    b.click("#id-check").await;
    b.wait_until(&format!("{id_state} !== 'idle'")).await;
    assert_eq!(b.eval(id_state).await, "bad");
    assert!(b.dom().await.contains("号码相符，但记录的签名未通过核验"));
    b.screenshot(&out.join("offline-dropped-changed.png")).await;
    b.navigate(&page_url).await;
    b.drop_file("#drop", &saved).await;
    b.wait_until(settled).await;
    assert_eq!(b.eval(state).await, "ok", "{}", b.dom().await);
    b.screenshot(&out.join("offline-dropped.png")).await;

    // ------------------------------------------------------------ a browser without WebCrypto Ed25519
    b.call(
        "Page.addScriptToEvaluateOnNewDocument",
        json!({"source": WITHOUT_ED25519}),
    )
    .await;
    b.navigate(&page_url).await;
    b.choose_file("#file", &saved).await;
    b.wait_until(settled).await;
    let dom = b.dom().await;
    assert_eq!(b.eval(state).await, "unsupported", "{dom}");
    assert!(
        dom.contains("不支持 Ed25519") && dom.contains("xuefen verify-record"),
        "{dom}"
    );
    assert!(!dom.contains("class=\"line"), "no line is judged: {dom}");
    b.screenshot(&out.join("offline-no-ed25519.png")).await;
    b.close().await;

    for shot in [
        "me-identity-form.png",
        "me-identity-refused.png",
        "offline-chosen.png",
        "offline-dropped-changed.png",
        "offline-dropped.png",
        "offline-no-ed25519.png",
    ] {
        browser::assert_screenshot(&out.join(shot));
    }
    println!("record browser screenshots in {}", out.display());
}
