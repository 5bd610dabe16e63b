//! The committed contract in `openapi/xuefen.json` must equal what the code
//! generates. After a reviewed API change, regenerate it with
//! `XUEFEN_UPDATE_OPENAPI=1 cargo test -p xuefen-api --test openapi`.

#[test]
fn the_committed_openapi_document_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi/xuefen.json");
    let generated = xuefen_api::openapi::json();
    if std::env::var_os("XUEFEN_UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &generated).expect("write openapi/xuefen.json");
    }
    let committed = std::fs::read_to_string(path).expect("read openapi/xuefen.json");
    assert!(
        committed == generated,
        "openapi/xuefen.json drifted from the code; review the change and regenerate it with \
         XUEFEN_UPDATE_OPENAPI=1 cargo test -p xuefen-api --test openapi"
    );
}

#[test]
fn every_operation_has_an_id_and_every_error_is_a_problem() {
    let doc: serde_json::Value = serde_json::from_str(&xuefen_api::openapi::json()).expect("json");
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("operations") {
            assert!(op["operationId"].is_string(), "{method} {path} has no operationId");
            // The browser pages answer their errors as HTML pages.
            let page = op["tags"].as_array().is_some_and(|t| t.iter().any(|t| t == "pages"));
            for (status, resp) in op["responses"].as_object().expect("responses") {
                if page && (status.starts_with('4') || status.starts_with('5')) {
                    assert!(
                        resp["content"]["text/html"].is_object(),
                        "{method} {path} {status} is not text/html"
                    );
                } else if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        resp["content"]["application/problem+json"].is_object(),
                        "{method} {path} {status} is not application/problem+json"
                    );
                }
            }
        }
    }
}
