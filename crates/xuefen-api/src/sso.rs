//! Learners sign in through the province's single sign-on, which hands them
//! a JWT; Xuefen only verifies it.
//!
//! `iss`, `aud` and `exp` are required and checked against the settings.
//! Which claim names the learner, and how, is [`SsoSubject`]: by default
//! `sub` is the unified learner id (`lrn_…`); a provincial SSO that does
//! not know that id names the person by its own id in a configurable claim
//! instead, which is bound to a learner on the first login that carries the
//! person's real-name-verified identity document in another configurable
//! claim (kept as keyed hashes, never in clear; erasure removes the
//! binding). Production uses the SSO's public key (RS256 or ES256, PEM);
//! development and tests use an HS256 secret, with which [`dev_token`] and
//! [`dev_token_with`] sign tokens (`xuefen dev-token`).

use crate::problem_code::ProblemCode;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use xuefen_core::ids::LearnerId;

use crate::AppState;
use crate::problem::{ApiError, Problem};

/// The key tokens are verified with.
#[derive(Clone)]
pub enum SsoKey {
    /// A shared secret (development and tests).
    Hs256(Vec<u8>),
    /// The SSO's RSA public key, PEM.
    Rs256Pem(Vec<u8>),
    /// The SSO's P-256 public key, PEM.
    Es256Pem(Vec<u8>),
}

impl std::fmt::Debug for SsoKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str(match self {
            SsoKey::Hs256(_) => "Hs256(<redacted>)",
            SsoKey::Rs256Pem(_) => "Rs256Pem",
            SsoKey::Es256Pem(_) => "Es256Pem",
        })
    }
}

/// What a token must say and what it is checked with.
#[derive(Debug, Clone)]
pub struct SsoSettings {
    pub issuer: String,
    pub audience: String,
    pub key: SsoKey,
    /// Seconds a token's `exp` may lie in the past and still be accepted,
    /// for the clock skew between the single sign-on and this service.
    pub leeway_seconds: u64,
}

/// How a token names its learner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SsoSubject {
    /// `claim` holds the unified learner id (`lrn_…`): the development
    /// default, for an SSO that stores Xuefen's id.
    LearnerId { claim: String },
    /// `claim` holds the SSO's own stable id of the person. It is bound to a
    /// learner once, on the first login whose `document_claim` holds the
    /// person's identity document (a resident ID number as a string, or
    /// `{"kind": …, "number": …}`), which must be registered; later logins
    /// need only the id.
    Bound {
        claim: String,
        document_claim: Option<String>,
    },
}

impl Default for SsoSubject {
    fn default() -> Self {
        Self::LearnerId { claim: "sub".into() }
    }
}

impl SsoSubject {
    fn claim(&self) -> &str {
        match self {
            Self::LearnerId { claim } | Self::Bound { claim, .. } => claim,
        }
    }
}

/// Verifies learner tokens.
pub struct SsoVerifier {
    key: DecodingKey,
    validation: Validation,
    issuer: String,
    subject: SsoSubject,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iss: String,
    aud: String,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
}

impl SsoVerifier {
    pub fn new(settings: &SsoSettings) -> Result<Self, jsonwebtoken::errors::Error> {
        let (key, alg) = match &settings.key {
            SsoKey::Hs256(secret) => (DecodingKey::from_secret(secret), Algorithm::HS256),
            SsoKey::Rs256Pem(pem) => (DecodingKey::from_rsa_pem(pem)?, Algorithm::RS256),
            SsoKey::Es256Pem(pem) => (DecodingKey::from_ec_pem(pem)?, Algorithm::ES256),
        };
        // One algorithm only: a token cannot pick a weaker one.
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[settings.issuer.as_str()]);
        validation.set_audience(&[settings.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = settings.leeway_seconds;
        Ok(Self {
            key,
            validation,
            issuer: settings.issuer.clone(),
            subject: SsoSubject::default(),
        })
    }

    /// Names the learner by `subject` instead of `sub` holding the unified id.
    pub fn with_subject(mut self, subject: SsoSubject) -> Self {
        self.subject = subject;
        self
    }

    /// The token's claims, once its signature, issuer, audience and expiry
    /// are checked, with the subject claim present as a non-empty string.
    fn claims(&self, token: &str) -> Result<(String, serde_json::Map<String, serde_json::Value>), ApiError> {
        let data =
            jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, &self.key, &self.validation)
                .map_err(|e| {
                    use jsonwebtoken::errors::ErrorKind;
                    let why = match e.kind() {
                        ErrorKind::ExpiredSignature => "the token has expired",
                        ErrorKind::InvalidIssuer => "the token was not issued by the configured single sign-on",
                        ErrorKind::InvalidAudience => "the token is not meant for this service",
                        ErrorKind::InvalidSignature => "the token's signature is not valid",
                        ErrorKind::InvalidAlgorithm => "the token is signed with another algorithm",
                        ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim (iss, aud, exp)",
                        _ => "the token is not a valid JWT",
                    };
                    ApiError::from(unauthorized(why))
                })?;
        let claim = self.subject.claim();
        let subject = data
            .claims
            .get(claim)
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::from(unauthorized(&format!("the token lacks the subject claim `{claim}`"))))?
            .to_owned();
        Ok((subject, data.claims))
    }

    /// The learner a token speaks for, when the subject claim holds the
    /// unified learner id; with a bound subject, use [`Self::learner`].
    pub fn verify(&self, token: &str) -> Result<LearnerId, ApiError> {
        let (subject, _) = self.claims(token)?;
        match &self.subject {
            SsoSubject::LearnerId { .. } => LearnerId::parse_as(subject, "sub")
                .map_err(|_| unauthorized("the token's subject is not a unified learner id").into()),
            SsoSubject::Bound { .. } => Err(unauthorized("the token's subject must be looked up in the store").into()),
        }
    }

    /// The learner a token speaks for, binding the SSO's id of the person on
    /// the first login that carries their identity document. A subject
    /// bound to nobody, without a registered document, is 404
    /// `unknown_learner`.
    pub async fn learner(&self, state: &AppState, token: &str) -> Result<LearnerId, ApiError> {
        let SsoSubject::Bound { claim, document_claim } = &self.subject else {
            return self.verify(token);
        };
        let (subject, claims) = self.claims(token)?;
        let hash = subject_hash(&state.identity_key, &self.issuer, &subject);
        if let Some(learner) = state.pseudonym_store().learner_by_sso_subject(&hash).await? {
            return Ok(learner);
        }
        let document = document_claim.as_deref().and_then(|c| claims.get(c).map(|v| (c, v)));
        let Some((name, value)) = document else {
            return Err(not_bound(&format!(
                "the single sign-on account (`{claim}`) is not bound to a learner yet; the first login must carry the identity document{}",
                document_claim
                    .as_deref()
                    .map(|c| format!(" in `{c}`"))
                    .unwrap_or_default()
            )));
        };
        let document = parse_document(value)
            .map_err(|e| ApiError::from(unauthorized(&format!("the token's `{name}` claim: {}", e.detail))))?;
        let Some((learner, _)) = state
            .store
            .learner_by_document(&document.keyed_hash(&state.identity_key))
            .await?
        else {
            return Err(not_bound(
                "no learner is registered with the identity document of the token",
            ));
        };
        state.pseudonym_store().bind_sso_subject(&hash, &learner).await?;
        tracing::info!("single sign-on subject bound to a learner");
        Ok(learner)
    }
}

fn not_bound(detail: &str) -> ApiError {
    Problem::new(StatusCode::NOT_FOUND, ProblemCode::UnknownLearner, detail).into()
}

/// The identity document a token's document claim holds: a resident ID
/// number, or `{"kind": …, "number": …}`.
fn parse_document(value: &serde_json::Value) -> Result<xuefen_core::identity::Document, xuefen_core::FieldError> {
    use xuefen_core::identity::{Document, DocumentKind};
    match value {
        serde_json::Value::String(number) => Document::parse(DocumentKind::ResidentId, number),
        serde_json::Value::Object(o) => {
            let text = |f: &'static str| {
                o.get(f)
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| xuefen_core::FieldError::new(f, "must be a string"))
            };
            Document::parse(DocumentKind::parse(text("kind")?)?, text("number")?)
        }
        _ => Err(xuefen_core::FieldError::new(
            "document",
            "must be a resident ID number or {\"kind\", \"number\"}",
        )),
    }
}

/// `HMAC-SHA256(identity key, "xuefen/sso-subject/v1\0" ‖ issuer ‖ "\0" ‖ subject)`:
/// how a binding is stored, so that the SSO's id of the person is never
/// kept in clear.
pub fn subject_hash(identity_key: &[u8], issuer: &str, subject: &str) -> [u8; 32] {
    use hmac::Mac;
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(identity_key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"xuefen/sso-subject/v1\0");
    mac.update(issuer.as_bytes());
    mac.update(b"\0");
    mac.update(subject.as_bytes());
    mac.finalize().into_bytes().into()
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, ProblemCode::Unauthorized, detail)
}

/// A token with the given claims besides `iss`, `aud`, `exp` and `iat`,
/// valid for `ttl_seconds`, signed with an HS256 secret: what `xuefen
/// dev-token --subject` prints, in the shape a provincial SSO sends.
pub fn dev_token_with(
    secret: &[u8],
    issuer: &str,
    audience: &str,
    claims: serde_json::Map<String, serde_json::Value>,
    now_unix: u64,
    ttl_seconds: u64,
) -> Result<String, jsonwebtoken::errors::Error> {
    let mut all = claims;
    all.insert("iss".into(), issuer.into());
    all.insert("aud".into(), audience.into());
    all.insert("exp".into(), now_unix.saturating_add(ttl_seconds).into());
    all.insert("iat".into(), now_unix.into());
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &all, &EncodingKey::from_secret(secret))
}

/// A token for `learner`, valid for `ttl_seconds`, signed with an HS256
/// secret: what `xuefen dev-token` prints for development and tests.
pub fn dev_token(
    secret: &[u8],
    issuer: &str,
    audience: &str,
    learner: &LearnerId,
    now_unix: u64,
    ttl_seconds: u64,
) -> Result<String, jsonwebtoken::errors::Error> {
    let claims = Claims {
        sub: learner.to_string(),
        iss: issuer.to_owned(),
        aud: audience.to_owned(),
        exp: now_unix.saturating_add(ttl_seconds),
        iat: Some(now_unix),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
}

/// The learner signed in with a single sign-on token.
#[derive(Debug, Clone)]
pub struct SignedInLearner(pub LearnerId);

impl FromRequestParts<AppState> for SignedInLearner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(verifier) = &state.sso else {
            return Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ProblemCode::SsoNotConfigured,
                "single sign-on is not configured on this service",
            )
            .into());
        };
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::from(unauthorized(
                    "send the single sign-on token as `Authorization: Bearer <jwt>`",
                ))
            })?;
        Ok(Self(verifier.learner(state, token).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A P-256 key pair made for this test only (it signs nothing else).
    const TEST_EC_PRIVATE_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQge7UirPmHTIdqMrUI
fbHG+cp9as8+F8sm3JrFT6C0xKahRANCAAR7NLzy0/YPvX4KGlY/6MxnSx9wFST7
johSwnz1e3aolqFJp2p5NDA+BASVNzBI2zJAHfeiz3cozpyGR1aAq4KP
-----END PRIVATE KEY-----
";
    const TEST_EC_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEezS88tP2D71+ChpWP+jMZ0sfcBUk
+46IUsJ89Xt2qJahSadqeTQwPgQElTcwSNsyQB33os93KM6chkdWgKuCjw==
-----END PUBLIC KEY-----
";

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default()
    }

    fn claims(sub: &str) -> Claims {
        Claims {
            sub: sub.into(),
            iss: "sso.zj.example".into(),
            aud: "xuefen".into(),
            exp: now() + 600,
            iat: None,
        }
    }

    #[test]
    fn an_es256_token_of_the_province_sso_is_verified_with_its_public_key() {
        let verifier = SsoVerifier::new(&SsoSettings {
            issuer: "sso.zj.example".into(),
            audience: "xuefen".into(),
            key: SsoKey::Es256Pem(TEST_EC_PUBLIC.as_bytes().to_vec()),
            leeway_seconds: 5,
        })
        .expect("public key");
        let learner = LearnerId::from_random([7; 16]);
        let key = EncodingKey::from_ec_pem(TEST_EC_PRIVATE_PKCS8.as_bytes()).expect("private key");
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims(learner.as_str()), &key).expect("sign");
        assert_eq!(verifier.verify(&token).ok(), Some(learner.clone()));
        // A token signed with a shared secret is refused by a public-key
        // verifier, whatever the secret: no algorithm confusion.
        let hs = dev_token(b"any secret", "sso.zj.example", "xuefen", &learner, now(), 600).expect("sign");
        assert!(verifier.verify(&hs).is_err());
        // A subject that is not a unified learner id is refused.
        let odd = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims("zhangsan"), &key).expect("sign");
        assert!(verifier.verify(&odd).is_err());
    }

    /// A token that lived one second is refused once the leeway after its
    /// `exp` has passed, and accepted within it.
    #[test]
    fn an_expired_token_is_refused_once_the_leeway_has_passed() {
        let verifier = |leeway_seconds| {
            SsoVerifier::new(&SsoSettings {
                issuer: "sso.zj.example".into(),
                audience: "xuefen".into(),
                key: SsoKey::Hs256(b"a development secret of 32 bytes".to_vec()),
                leeway_seconds,
            })
            .expect("secret")
        };
        let learner = LearnerId::from_random([9; 16]);
        let sign = |issued: u64| {
            dev_token(
                b"a development secret of 32 bytes",
                "sso.zj.example",
                "xuefen",
                &learner,
                issued,
                1,
            )
            .expect("sign")
        };
        // Issued 3 s ago with a 1 s lifetime: expired 2 s ago.
        let expired_2s_ago = sign(now() - 3);
        assert!(verifier(0).verify(&expired_2s_ago).is_err(), "no leeway: refused");
        assert!(
            verifier(1).verify(&expired_2s_ago).is_err(),
            "leeway 1 s has passed: refused"
        );
        assert_eq!(
            verifier(5).verify(&expired_2s_ago).ok(),
            Some(learner.clone()),
            "within 5 s of leeway"
        );
        // Expired 10 s ago: refused with the default leeway of 5 s.
        assert!(verifier(5).verify(&sign(now() - 11)).is_err());
        // Still valid: accepted with no leeway at all.
        assert_eq!(verifier(0).verify(&sign(now())).ok(), Some(learner));
    }
}
