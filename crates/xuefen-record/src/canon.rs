//! JSON-LD to RDF (the `json-ld` crate) and RDF Dataset Canonicalization
//! RDFC-1.0 (the `rdf-canon` crate), with the context documents bundled:
//! nothing is fetched.

use std::collections::HashMap;

use iref::IriBuf;
use json_ld::syntax::Parse;
use json_ld::{JsonLdProcessor, RemoteDocument};

/// The W3C Verifiable Credentials 2.0 context.
pub const VC_V2: &str = "https://www.w3.org/ns/credentials/v2";
/// The 1EdTech Open Badges 3.0 context (version 3.0.3).
pub const OB_V3: &str = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json";
/// This service's context: the CLR 2.0 credential and subject types and the
/// ledger-evidence terms (`contexts/xuefen-record-v1.jsonld`).
pub const XUEFEN_V1: &str = "urn:xuefen:context:record:v1";

/// Every context document a record may name, by URL, as bundled.
pub const CONTEXTS: [(&str, &str); 3] = [
    (VC_V2, include_str!("../contexts/credentials-v2.jsonld")),
    (OB_V3, include_str!("../contexts/ob-v3p0-context-3.0.3.json")),
    (XUEFEN_V1, include_str!("../contexts/xuefen-record-v1.jsonld")),
];

/// Why a document could not be canonicalised.
#[derive(Debug, thiserror::Error)]
pub enum CanonError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("JSON-LD to RDF failed: {0}")]
    ToRdf(String),
    #[error("RDF term refused: {0}")]
    Term(String),
    #[error("canonicalisation failed: {0}")]
    Canon(String),
}

fn loader() -> Result<HashMap<IriBuf, RemoteDocument>, CanonError> {
    let mut map = HashMap::new();
    for (url, text) in CONTEXTS {
        let iri = IriBuf::new(url.to_owned()).map_err(|e| CanonError::ToRdf(format!("context URL {url}: {e:?}")))?;
        let (value, _) =
            json_ld::syntax::Value::parse_str(text).map_err(|e| CanonError::Json(format!("context {url}: {e}")))?;
        map.insert(iri.clone(), RemoteDocument::new(Some(iri), None, value));
    }
    Ok(map)
}

fn id_subject(id: &rdf_types::Id) -> Result<oxrdf::Subject, CanonError> {
    Ok(match id {
        rdf_types::Id::Iri(i) => oxrdf::NamedNode::new(i.as_str())
            .map_err(|e| CanonError::Term(e.to_string()))?
            .into(),
        rdf_types::Id::Blank(b) => blank(b.as_str())?.into(),
    })
}

fn blank(label: &str) -> Result<oxrdf::BlankNode, CanonError> {
    oxrdf::BlankNode::new(label.strip_prefix("_:").unwrap_or(label)).map_err(|e| CanonError::Term(e.to_string()))
}

fn term(t: &rdf_types::Term) -> Result<oxrdf::Term, CanonError> {
    Ok(match t {
        rdf_types::Term::Id(id) => match id_subject(id)? {
            oxrdf::Subject::NamedNode(n) => n.into(),
            oxrdf::Subject::BlankNode(b) => b.into(),
            #[allow(unreachable_patterns)]
            other => return Err(CanonError::Term(format!("unexpected subject {other}"))),
        },
        rdf_types::Term::Literal(l) => match &l.type_ {
            rdf_types::LiteralType::Any(dt) => oxrdf::Literal::new_typed_literal(
                l.value.clone(),
                oxrdf::NamedNode::new(dt.as_str()).map_err(|e| CanonError::Term(e.to_string()))?,
            )
            .into(),
            rdf_types::LiteralType::LangString(tag) => {
                oxrdf::Literal::new_language_tagged_literal(l.value.clone(), tag.as_str())
                    .map_err(|e| CanonError::Term(e.to_string()))?
                    .into()
            }
        },
    })
}

/// The RDF dataset a JSON-LD document denotes, as canonical N-Quads
/// (RDFC-1.0, SHA-256).
pub fn canonical_nquads(doc: &serde_json::Value) -> Result<String, CanonError> {
    let text = serde_json::to_string(doc).map_err(|e| CanonError::Json(e.to_string()))?;
    let (value, _) = json_ld::syntax::Value::parse_str(&text).map_err(|e| CanonError::Json(e.to_string()))?;
    let input = RemoteDocument::new(None, None, value);
    let loader = loader()?;
    let mut generator = rdf_types::generator::Blank::new();
    let mut rdf = futures::executor::block_on(input.to_rdf(&mut generator, &loader))
        .map_err(|e| CanonError::ToRdf(e.to_string()))?;
    let mut dataset = oxrdf::Dataset::new();
    for rdf_types::Quad(s, p, o, g) in rdf.cloned_quads() {
        let subject = id_subject(&s)?;
        let predicate = oxrdf::NamedNode::new(p.as_str()).map_err(|e| CanonError::Term(e.to_string()))?;
        let object = term(&o)?;
        let graph = match g {
            None => oxrdf::GraphName::DefaultGraph,
            Some(rdf_types::Id::Iri(i)) => oxrdf::NamedNode::new(i.as_str())
                .map_err(|e| CanonError::Term(e.to_string()))?
                .into(),
            Some(rdf_types::Id::Blank(b)) => blank(b.as_str())?.into(),
        };
        dataset.insert(&oxrdf::Quad::new(subject, predicate, object, graph));
    }
    rdf_canon::canonicalize(&dataset).map_err(|e| CanonError::Canon(e.to_string()))
}
