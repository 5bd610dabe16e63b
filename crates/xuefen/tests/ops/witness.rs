//! Witnesses on loopback: the service and two `xuefen witness` processes
//! (C2SP tlog-witness). The service gets both cosignatures on its own
//! cadence and serves them on `/checkpoint` and the deposit feed; `xuefen
//! bank pull --witness … --quorum 2` accepts that log. A forked log (the
//! same key and origin over other entries) and a rolled-back one (an
//! earlier checkpoint of the witnessed log) are refused by both witnesses
//! with the spec's status codes, leave their state unchanged, and are
//! refused by `bank pull`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ed25519_dalek::{SigningKey, VerifyingKey};
use reqwest::{Method, StatusCode};
use sha2::Digest;
use xuefen_core::merkle;
use xuefen_core::tlog::{self, LogCheckpoint, Tiles};
use xuefen_core::witness::{self, AddCheckpoint, Cosigner};

use crate::server::{Backend, Server, XUEFEN, backends, completion};

const ORIGIN: &str = "xuefen.test/ledger";

struct WitnessProc {
    child: Child,
    url: String,
    cosigner: Cosigner,
}

impl Drop for WitnessProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_witness(dir: &Path, name: &str, log_key: &VerifyingKey) -> WitnessProc {
    let mut child = Command::new(XUEFEN)
        .args(["witness", "--name", name, "--listen", "127.0.0.1:0", "--log"])
        .arg(format!("{ORIGIN}={}", hex::encode(log_key.as_bytes())))
        .arg("--key-file")
        .arg(dir.join(format!("{}.key", name.replace('/', "_"))))
        .arg("--state")
        .arg(dir.join(format!("{}.json", name.replace('/', "_"))))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start xuefen witness");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut key = None;
    let url = loop {
        let line = lines.next().expect("the witness printed its address").expect("line");
        if let Some(k) = line.strip_prefix(&format!("witness {name} public key ")) {
            key = Some(k.trim().to_owned());
        } else if let Some(a) = line.strip_prefix("listening on ") {
            break a.trim().to_owned();
        }
    };
    // Keep draining its stdout.
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    let key = key.expect("the witness printed its key");
    let cosigner = Cosigner::parse(&format!("{name}={key}")).expect("witness key");
    WitnessProc { child, url, cosigner }
}

async fn get_text(client: &reqwest::Client, url: &str) -> (StatusCode, String) {
    let resp = client.get(url).send().await.expect("GET");
    let status = resp.status();
    (status, resp.text().await.expect("body"))
}

async fn add_checkpoint(
    client: &reqwest::Client,
    w: &WitnessProc,
    req: &AddCheckpoint,
) -> (StatusCode, String, String) {
    let resp = client
        .post(format!("{}/add-checkpoint", w.url))
        .body(req.body())
        .send()
        .await
        .expect("POST add-checkpoint");
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, ct, resp.text().await.expect("body"))
}

/// The witness's latest cosigned checkpoint for the log, parsed.
async fn witness_view(client: &reqwest::Client, w: &WitnessProc) -> LogCheckpoint {
    let hash = hex::encode(sha2::Sha256::digest(ORIGIN.as_bytes()));
    let (s, note) = get_text(client, &format!("{}/{hash}/checkpoint", w.url)).await;
    assert_eq!(s, StatusCode::OK, "{note}");
    let (text, lines) = witness::split_note(&note).expect("note");
    assert_eq!(
        witness::cosignatures(lines, std::slice::from_ref(&w.cosigner), &text).len(),
        1,
        "the witness serves its own cosignature: {note}"
    );
    LogCheckpoint::parse_body(&text).expect("checkpoint body")
}

async fn fetch_tiles(client: &reqwest::Client, base: &str, ids: &[(tlog::TileId, u64)]) -> Tiles {
    let mut tiles = Tiles::new();
    for (id, width) in ids {
        let resp = client
            .get(format!("{base}/{}", tlog::tile_path(*id, *width)))
            .send()
            .await
            .expect("tile");
        assert!(resp.status().is_success());
        let bytes = resp.bytes().await.expect("tile bytes");
        tiles.insert(*id, tlog::tile_from_bytes(&bytes).expect("hashes"));
    }
    tiles
}

async fn post_completions(server: &Server, key: &str, prefix: &str, n: u32) {
    for i in 0..n {
        let (s, body) = server
            .call(
                Method::PUT,
                &format!("/v1/events/{prefix}-{i}"),
                Some(key),
                Some(completion(&format!("{}", 5 + i))),
            )
            .await;
        assert!(s.is_success(), "{body}");
    }
}

async fn bank_key(server: &Server) -> String {
    let (s, body) = server
        .call(Method::POST, "/v1/bank/keys", Some(&server.admin), None)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    body["secret"].as_str().expect("secret").to_owned()
}

fn pull(server: &Server, bank: &str, state: &Path, log_pub: &VerifyingKey, extra: &[String]) -> (bool, String) {
    let out = Command::new(XUEFEN)
        .args(["bank", "pull", "--url", &server.base, "--public-key"])
        .arg(hex::encode(log_pub.as_bytes()))
        .arg("--state")
        .arg(state)
        .args(extra)
        .env("XUEFEN_BANK_KEY", bank)
        .output()
        .expect("run bank pull");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn two_witnesses_cosign_and_refuse_a_forked_or_rolled_back_log() {
    for backend in backends() {
        scenario(backend).await;
    }
}

async fn scenario(backend: Backend) {
    let dir: PathBuf = std::env::temp_dir().join(format!("xuefen-witness-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let log_key = SigningKey::from_bytes(&[7; 32]);
    let log_pub = log_key.verifying_key();
    let w1 = start_witness(&dir, "w1.test/witness", &log_pub);
    let w2 = start_witness(&dir, "w2.test/witness", &log_pub);
    let witnesses_setting = [&w1, &w2]
        .iter()
        .map(|w| {
            format!(
                "{}={}@{}",
                w.cosigner.name,
                hex::encode(w.cosigner.key.as_bytes()),
                w.url
            )
        })
        .collect::<Vec<_>>()
        .join(",");
    let common = vec![
        ("XUEFEN_CHECKPOINT_KEY", hex::encode(log_key.to_bytes())),
        ("XUEFEN_LOG_ORIGIN", ORIGIN.to_owned()),
        ("XUEFEN_CHECKPOINT_INTERVAL_MS", "50".to_owned()),
    ];
    let mut env_a = common.clone();
    env_a.push(("XUEFEN_WITNESSES", witnesses_setting));
    env_a.push(("XUEFEN_WITNESS_INTERVAL_SECONDS", "1".to_owned()));
    let a = Server::start(backend, &env_a, &[]).await;
    let site = a.fixture().await;
    post_completions(&a, &site, "a", 6).await;
    let client = reqwest::Client::new();

    // The service witnesses on its own: wait until /checkpoint carries both
    // cosignatures and stays put over more than a witnessing round.
    let started = Instant::now();
    let mut last: Option<String> = None;
    let note = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no cosigned checkpoint on {backend:?}; last {last:?}; log: {}",
            a.log()
        );
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let (s, note) = get_text(&client, &format!("{}/checkpoint", a.base)).await;
        if s != StatusCode::OK {
            continue;
        }
        let (text, lines) = witness::split_note(&note).expect("note");
        let n = witness::cosignatures(lines, &[w1.cosigner.clone(), w2.cosigner.clone()], &text).len();
        if n == 2 && last.as_deref().map(|l| witness::split_note(l).map(|x| x.0)) == Some(Some(text.clone())) {
            break note;
        }
        last = Some(note);
    };
    let (text, _) = witness::split_note(&note).expect("note");
    let held = LogCheckpoint::open(&note, ORIGIN, &log_pub).expect("the log's signature verifies");
    assert!(held.size >= 6, "{note}");
    for w in [&w1, &w2] {
        assert_eq!(
            witness_view(&client, w).await,
            held,
            "the witness holds the served checkpoint"
        );
    }
    assert_eq!(LogCheckpoint::parse_body(&text), Some(held.clone()));

    // The deposit feed carries the same cosigned checkpoint.
    let bank = bank_key(&a).await;
    let (s, page) = a.call(Method::GET, "/v1/deposits?limit=100", Some(&bank), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["checkpoint"].as_str(), Some(note.as_str()));
    assert!(page["deposits"].as_array().is_some_and(|d| !d.is_empty()), "{page}");

    // A forked log: the same key and origin over other entries, larger.
    let b = Server::start(backend, &common, &[]).await;
    let site_b = b.fixture().await;
    post_completions(&b, &site_b, "b", 9).await;
    let fork = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (s, note) = get_text(&client, &format!("{}/checkpoint", b.base)).await;
        if s == StatusCode::OK {
            let cp = LogCheckpoint::open(&note, ORIGIN, &log_pub).expect("fork note");
            if cp.size > held.size {
                break (note, cp);
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the fork never grew: {}",
            b.log()
        );
    };
    let (fork_note, fork_cp) = fork;
    let fork_tiles = fetch_tiles(&client, &b.base, &tlog::consistency_tiles(held.size, fork_cp.size)).await;
    let fork_proof = tlog::consistency_proof(held.size, fork_cp.size, &fork_tiles).expect("proof");
    // An earlier checkpoint of the witnessed log, signed by its key: a rollback.
    let a_tiles = fetch_tiles(&client, &a.base, &tlog::root_tiles(held.size - 1)).await;
    let earlier = LogCheckpoint {
        origin: ORIGIN.into(),
        size: held.size - 1,
        root: tlog::root(held.size - 1, &a_tiles).expect("root"),
    };
    let earlier_note = earlier.sign(&log_key).expect("sign");
    let same_size_fork = LogCheckpoint {
        origin: ORIGIN.into(),
        size: held.size,
        root: [0x42; 32],
    }
    .sign(&log_key)
    .expect("sign");
    let forged = LogCheckpoint {
        origin: ORIGIN.into(),
        size: held.size + 1,
        root: [0x43; 32],
    }
    .sign(&SigningKey::from_bytes(&[8; 32]))
    .expect("sign");
    let unknown = LogCheckpoint {
        origin: "other.test/log".into(),
        size: 1,
        root: [1; 32],
    }
    .sign(&log_key)
    .expect("sign");
    for w in [&w1, &w2] {
        let cases: Vec<(AddCheckpoint, u16, &str)> = vec![
            // Asked from 0: 409 with the witness's size.
            (
                AddCheckpoint {
                    old_size: 0,
                    proof: vec![],
                    note: fork_note.clone(),
                },
                409,
                "fork from 0",
            ),
            // From the witnessed size with the fork's own proof: 422.
            (
                AddCheckpoint {
                    old_size: held.size,
                    proof: fork_proof.clone(),
                    note: fork_note.clone(),
                },
                422,
                "fork",
            ),
            // The same size with another root: 422.
            (
                AddCheckpoint {
                    old_size: held.size,
                    proof: vec![],
                    note: same_size_fork.clone(),
                },
                422,
                "same-size fork",
            ),
            // Rolled back: the old size above the checkpoint's is 400 …
            (
                AddCheckpoint {
                    old_size: held.size,
                    proof: vec![],
                    note: earlier_note.clone(),
                },
                400,
                "rollback",
            ),
            // … and from its own size, 409.
            (
                AddCheckpoint {
                    old_size: earlier.size,
                    proof: vec![],
                    note: earlier_note.clone(),
                },
                409,
                "rollback from its size",
            ),
            (
                AddCheckpoint {
                    old_size: held.size,
                    proof: vec![],
                    note: forged.clone(),
                },
                403,
                "another key",
            ),
            (
                AddCheckpoint {
                    old_size: 0,
                    proof: vec![],
                    note: unknown.clone(),
                },
                404,
                "unknown origin",
            ),
        ];
        for (req, want, what) in cases {
            let (status, ct, body) = add_checkpoint(&client, w, &req).await;
            assert_eq!(status.as_u16(), want, "{what} at {}: {body}", w.cosigner.name);
            if want == 409 {
                assert_eq!(ct, witness::SIZE_CONTENT_TYPE, "{what}");
                assert_eq!(body, format!("{}\n", held.size), "{what}");
            }
        }
        assert_eq!(
            witness_view(&client, w).await,
            held,
            "a refused checkpoint changes nothing"
        );
    }
    // The fork's consistency proof is a real one of its own tree, so it is
    // the witness's memory that refuses it.
    assert!(!merkle::verify_consistency(
        held.size,
        fork_cp.size,
        &held.root,
        &fork_cp.root,
        &fork_proof
    ));

    // The bank requires both witnesses: accepted. (Its acknowledgements
    // are entries, so the witnessed log grows after this.)
    let quorum: Vec<String> = [&w1, &w2]
        .iter()
        .flat_map(|w| {
            [
                "--witness".to_owned(),
                format!("{}={}", w.cosigner.name, w.cosigner.vkey()),
            ]
        })
        .chain(["--quorum".to_owned(), "2".to_owned()])
        .collect();
    let state_a = dir.join("bank-a.json");
    let (ok, out) = pull(&a, &bank, &state_a, &log_pub, &quorum);
    assert!(ok, "bank pull with a quorum of the witnessed log: {out}");
    assert!(out.contains("done:"), "{out}");
    // A witness it does not know cannot make up the quorum.
    let stranger = SigningKey::from_bytes(&[9; 32]).verifying_key();
    let (ok, out) = pull(
        &a,
        &bank,
        &dir.join("bank-a2.json"),
        &log_pub,
        &[
            "--witness".into(),
            format!("w1.test/witness={}", hex::encode(stranger.as_bytes())),
        ],
    );
    assert!(!ok && out.contains("cosignatures"), "{out}");

    // bank pull refuses the fork: with a quorum it lacks cosignatures …
    let bank_b = bank_key(&b).await;
    let (ok, out) = pull(&b, &bank_b, &dir.join("bank-b.json"), &log_pub, &quorum);
    assert!(
        !ok && out.contains("STOPPED") && out.contains("0 of the named witnesses"),
        "{out}"
    );
    // … and having verified the witnessed log, it finds it is not an extension.
    let state_b = dir.join("bank-from-a.json");
    std::fs::copy(&state_a, &state_b).expect("copy state");
    let (ok, out) = pull(&b, &bank_b, &state_b, &log_pub, &[]);
    assert!(!ok && out.contains("forked"), "{out}");

    drop(b);
    drop(a);
    let _ = std::fs::remove_dir_all(&dir);
}
