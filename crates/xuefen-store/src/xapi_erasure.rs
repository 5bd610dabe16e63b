//! What erasing a learner removes of the xAPI door, decided alike on every
//! backend: the agent keys ([`xuefen_core::xapi::Ifi::key`]) under which a
//! site names the learner, and which stored statement bodies name them.
//! Each store runs the SQL in the erasure's transaction (its
//! `xapi/erasure.rs`); this module holds everything decided from keys and
//! bodies, so that both decide from the same code.
//!
//! A site names the learner by:
//! - one of the learner's local accounts under the site's account home page
//!   (`account|<home page>|<local account>`; the home page as stored, and
//!   with and without a trailing slash, since the door matches home pages
//!   with trailing slashes ignored);
//! - an `mbox_sha1sum` the site registered for one of those accounts;
//! - a clear `mbox` whose SHA-1 is such a sum. The SHA-1 is computed here
//!   (SQLite has none), of the mailbox as written in a statement body and
//!   of its lower-case form (the stored agent key, which is all a document
//!   keeps).
//!
//! A statement names the learner when its actor or any agent it relates to
//! has one of those keys, or when its body holds an agent (anywhere: actor,
//! object, authority, context, a Group's members, a SubStatement, 2.0.0
//! context agents) that does.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sha1::{Digest as _, Sha1};

/// The account home page of a site that declared none (the door's
/// `xuefen_api::xapi::DEFAULT_HOME_PAGE_PREFIX`; tests/api/xapi_erasure.rs
/// checks that both are the same).
pub const DEFAULT_HOME_PAGE_PREFIX: &str = "https://xuefen.invalid/sites/";

/// How every agent key of a clear mailbox begins.
pub const MBOX_KEY_PREFIX: &str = "mbox|";

/// The home page under which a site names its accounts: the declared one
/// (`PUT /v1/xapi/profile`), or the default.
pub fn home_page(site: &str, declared: Option<&str>) -> String {
    declared.map_or_else(|| format!("{DEFAULT_HOME_PAGE_PREFIX}{site}"), str::to_owned)
}

/// The agent keys of a site's local account under its home page: the home
/// page as stored, without its trailing slashes and with one.
pub fn account_keys(home_page: &str, account: &str) -> BTreeSet<String> {
    let trimmed = home_page.trim_end_matches('/');
    [home_page.to_owned(), trimmed.to_owned(), format!("{trimmed}/")]
        .into_iter()
        .map(|home| format!("account|{home}|{account}"))
        .collect()
}

/// Lower-case hex SHA-1 (what `mbox_sha1sum` holds).
pub fn sha1_hex(bytes: &[u8]) -> String {
    hex::encode(Sha1::digest(bytes))
}

/// What names one learner, and what erasure finds of them. An agent key
/// names the same agent on every site (an account is its home page and
/// name, a mailbox is the person's), so the keys of all the learner's
/// accounts and sums are matched on every site.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LearnerAgents {
    /// The keys that name the learner: their accounts, their registered
    /// sums, and the clear mailboxes found to hash to one of those.
    keys: BTreeSet<String>,
    /// Account keys that are also the site's own authority (a local account
    /// spelled like the site id): the authority of every statement of the
    /// site, so they name the learner only as a statement's actor or a
    /// document's agent, never as a related agent.
    actor_only: BTreeSet<String>,
    /// The learner's mailbox hashes, lower-case hex.
    sums: BTreeSet<String>,
    /// The clear mailbox keys found (also in `keys`), each with the sum it
    /// hashes to.
    mailboxes: BTreeMap<String, String>,
}

impl LearnerAgents {
    /// Adds one of the learner's local accounts on `site`, named under
    /// `home_page` ([`home_page`]).
    pub fn add_account(&mut self, site: &str, home_page: &str, account: &str) {
        let authority = account_keys(home_page, site);
        for key in account_keys(home_page, account) {
            if authority.contains(&key) {
                self.actor_only.insert(key);
            } else {
                self.keys.insert(key);
            }
        }
    }

    /// Adds an `mbox_sha1sum` a site registered for one of the learner's
    /// accounts.
    pub fn add_sum(&mut self, sum: &str) {
        let sum = sum.to_ascii_lowercase();
        self.keys.insert(format!("mbox_sha1sum|{sum}"));
        self.sums.insert(sum);
    }

    /// The learner's mailbox hashes (lower-case hex).
    pub fn sums(&self) -> Vec<String> {
        self.sums.iter().cloned().collect()
    }

    /// The learner's agents as matched on a site that registered some of
    /// the learner's sums (`foreign`) for an account of another learner
    /// (one mailbox shared by two people): on that site those sums, and
    /// the clear mailboxes that hash to them, name the other learner.
    pub fn on_site(&self, foreign: &BTreeSet<String>) -> Self {
        if foreign.is_empty() {
            return self.clone();
        }
        let mut out = self.clone();
        for sum in foreign {
            out.sums.remove(sum);
            out.keys.remove(&format!("mbox_sha1sum|{sum}"));
        }
        out.mailboxes.retain(|_, sum| !foreign.contains(sum));
        for (key, _) in self.mailboxes.iter().filter(|(_, sum)| foreign.contains(*sum)) {
            out.keys.remove(key);
        }
        out
    }

    /// Takes in the clear mailboxes another copy ([`LearnerAgents::on_site`])
    /// found.
    pub fn absorb(&mut self, found: &Self) {
        for (key, sum) in &found.mailboxes {
            self.keys.insert(key.clone());
            self.mailboxes.insert(key.clone(), sum.clone());
        }
    }

    /// Whether nothing names the learner (no account, no sum).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.actor_only.is_empty()
    }

    /// Whether the learner has registered sums, so that statements naming
    /// agents by a clear `mbox` must be read to be matched.
    pub fn has_sums(&self) -> bool {
        !self.sums.is_empty()
    }

    /// The keys a related agent (`xapi_statement_related`) is matched
    /// against.
    pub fn related_keys(&self) -> Vec<String> {
        self.keys.iter().cloned().collect()
    }

    /// The keys a statement's actor (`xapi_statements.agent`) and a
    /// document's agent are matched against.
    pub fn actor_keys(&self) -> Vec<String> {
        self.keys.union(&self.actor_only).cloned().collect()
    }

    /// Adds a stored `mbox|…` key (of a statement or a document) when the
    /// SHA-1 of its mailbox is one of the learner's sums; whether it does.
    pub fn add_if_mbox_matches(&mut self, key: &str) -> bool {
        let Some(mbox) = key.strip_prefix(MBOX_KEY_PREFIX) else {
            return false;
        };
        let sum = sha1_hex(mbox.as_bytes());
        if self.sums.contains(&sum) {
            self.keys.insert(key.to_owned());
            self.mailboxes.insert(key.to_owned(), sum);
            return true;
        }
        false
    }

    /// Whether a statement body (JSON) names the learner anywhere; adds the
    /// keys of the clear mailboxes in it that hash to one of the learner's
    /// sums. A body that is not JSON names no one.
    pub fn scan_body(&mut self, body: &str) -> bool {
        let Ok(value) = serde_json::from_str::<Value>(body) else {
            return false;
        };
        let actor_only = value
            .get("actor")
            .and_then(key_of)
            .is_some_and(|key| self.actor_only.contains(&key));
        self.walk(&value) | actor_only
    }

    fn walk(&mut self, v: &Value) -> bool {
        match v {
            Value::Object(members) => {
                let mut named = self.names(v);
                for child in members.values() {
                    named |= self.walk(child);
                }
                named
            }
            Value::Array(items) => {
                let mut named = false;
                for child in items {
                    named |= self.walk(child);
                }
                named
            }
            _ => false,
        }
    }

    /// Whether one JSON object, read as an Agent or Group, is the learner.
    fn names(&mut self, v: &Value) -> bool {
        if let Some(mbox) = v.get("mbox").and_then(Value::as_str) {
            let key = format!("{MBOX_KEY_PREFIX}{}", mbox.to_ascii_lowercase());
            let hashed = [
                sha1_hex(mbox.as_bytes()),
                sha1_hex(mbox.to_ascii_lowercase().as_bytes()),
            ];
            if let Some(sum) = hashed.into_iter().find(|h| self.sums.contains(h)) {
                self.keys.insert(key.clone());
                self.mailboxes.insert(key, sum);
                return true;
            }
            return self.keys.contains(&key);
        }
        key_of(v).is_some_and(|key| self.keys.contains(&key))
    }
}

/// The agent key of a JSON object read as an Agent or identified Group
/// (as the door computes it: `crates/xuefen-core/src/xapi/related.rs`).
fn key_of(v: &Value) -> Option<String> {
    let s = |k: &str| v.get(k).and_then(Value::as_str);
    if let Some(m) = s("mbox") {
        return Some(format!("{MBOX_KEY_PREFIX}{}", m.to_ascii_lowercase()));
    }
    if let Some(m) = s("mbox_sha1sum") {
        return Some(format!("mbox_sha1sum|{}", m.to_ascii_lowercase()));
    }
    if let Some(o) = s("openid") {
        return Some(format!("openid|{o}"));
    }
    let account = v.get("account")?;
    let home = account.get("homePage")?.as_str()?;
    let name = account.get("name")?.as_str()?;
    Some(format!("account|{home}|{name}"))
}

/// The SHA-256 (lower-case hex) of every attachment a statement body
/// declares (`attachments[].sha2`): the stored attachment bytes a deleted
/// statement may leave unreferenced.
pub fn attachment_hashes(body: &str) -> Vec<String> {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        return Vec::new();
    };
    let Some(Value::Array(list)) = value.get("attachments") else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|a| a.get("sha2").and_then(Value::as_str))
        .map(str::to_ascii_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agents() -> LearnerAgents {
        let mut a = LearnerAgents::default();
        assert!(a.is_empty());
        a.add_account("xihu", "https://lms.example/", "u-1");
        a.add_account("xihu", "https://lms.example/", "xihu");
        a.add_sum(&sha1_hex(b"mailto:Li.Hua@example.edu").to_ascii_uppercase());
        assert!(!a.is_empty());
        a
    }

    #[test]
    fn accounts_sums_and_the_authority_give_their_keys() {
        let a = agents();
        assert!(a.related_keys().contains(&"account|https://lms.example|u-1".to_owned()));
        assert!(
            a.related_keys()
                .contains(&"account|https://lms.example/|u-1".to_owned())
        );
        assert!(
            a.related_keys()
                .contains(&format!("mbox_sha1sum|{}", sha1_hex(b"mailto:Li.Hua@example.edu")))
        );
        assert!(
            !a.related_keys().iter().any(|k| k.ends_with("|xihu")),
            "the site's own authority is no related key"
        );
        assert!(a.actor_keys().contains(&"account|https://lms.example|xihu".to_owned()));
        assert_eq!(home_page("xihu", None), "https://xuefen.invalid/sites/xihu");
        assert_eq!(home_page("xihu", Some("https://lms.example")), "https://lms.example");
    }

    #[test]
    fn a_clear_mailbox_is_matched_by_its_sha1_as_written_and_in_lower_case() {
        let mut a = agents();
        assert!(a.has_sums());
        assert!(!a.add_if_mbox_matches("mbox|mailto:someone@example.edu"));
        assert!(!a.add_if_mbox_matches("account|x|y"));
        // As written (the door hashes that) in a team's members.
        let body = r#"{"actor":{"mbox":"mailto:t@example.edu"},"context":{"team":{"objectType":"Group","member":[{"name":"李华","mbox":"mailto:Li.Hua@example.edu"}]}}}"#;
        assert!(a.scan_body(body));
        assert!(a.actor_keys().contains(&"mbox|mailto:li.hua@example.edu".to_owned()));
        // The lower-case key now names the learner wherever it appears.
        assert!(a.scan_body(r#"{"actor":{"mbox":"mailto:li.hua@example.edu"}}"#));
        let mut lower = LearnerAgents::default();
        lower.add_sum(&sha1_hex(b"mailto:wang@example.edu"));
        assert!(lower.add_if_mbox_matches("mbox|mailto:wang@example.edu"));
        assert!(lower.scan_body(r#"{"object":{"objectType":"Agent","mbox":"mailto:WANG@example.edu"}}"#));
        assert!(!lower.scan_body(r#"{"actor":{"mbox":"mailto:zhang@example.edu"}}"#));
        assert!(!lower.scan_body("not json"));
    }

    #[test]
    fn a_mailbox_another_site_registered_for_someone_else_is_left_there() {
        let mut a = agents();
        let sum = sha1_hex(b"mailto:Li.Hua@example.edu");
        let foreign: BTreeSet<String> = [sum.clone()].into();
        let mut there = a.on_site(&foreign);
        assert!(!there.has_sums());
        let body = r#"{"actor":{"mbox":"mailto:Li.Hua@example.edu"}}"#;
        assert!(!there.scan_body(body), "the other site's learner of that mailbox");
        assert!(!there.related_keys().contains(&format!("mbox_sha1sum|{sum}")));
        assert!(a.on_site(&BTreeSet::new()).scan_body(body));
        assert!(a.scan_body(body));
        let mut copy = LearnerAgents::default();
        copy.absorb(&a);
        assert!(
            copy.related_keys()
                .contains(&"mbox|mailto:li.hua@example.edu".to_owned())
        );
        assert!(
            !a.on_site(&foreign)
                .related_keys()
                .contains(&"mbox|mailto:li.hua@example.edu".to_owned()),
            "a mailbox found elsewhere is not matched where its sum is someone else's"
        );
        assert_eq!(a.sums(), vec![sum]);
    }

    #[test]
    fn the_authority_names_the_learner_only_as_the_actor() {
        let mut a = agents();
        let authority = r#"{"actor":{"account":{"homePage":"https://lms.example","name":"u-2"}},
            "authority":{"account":{"homePage":"https://lms.example","name":"xihu"}}}"#;
        assert!(!a.scan_body(authority));
        let acting = r#"{"actor":{"account":{"homePage":"https://lms.example/","name":"xihu"}}}"#;
        assert!(a.scan_body(acting));
        let extension = r#"{"actor":{"openid":"https://id.example/x"},
            "context":{"contextAgents":[{"objectType":"contextAgent","agent":{"account":{"homePage":"https://lms.example","name":"u-1"}}}]}}"#;
        assert!(a.scan_body(extension), "a 2.0.0 context agent is found in the body");
    }

    #[test]
    fn attachments_are_named_by_their_sha2() {
        let body = r#"{"attachments":[{"sha2":"ABCD"},{"sha2":"ef01"},{"length":1}]}"#;
        assert_eq!(attachment_hashes(body), vec!["abcd".to_owned(), "ef01".to_owned()]);
        assert!(attachment_hashes(r#"{"n":1}"#).is_empty());
    }
}
