// Verifies a learner's record with Digital Bazaar's @digitalbazaar/vc and
// the eddsa-rdfc-2022 and eddsa-jcs-2022 cryptosuites (the record's proof
// set), offline: every JSON-LD context comes
// from the repository's bundled files (or, for the DID and Multikey
// contexts, from their npm packages), and the issuer's did:key resolves to
// the DID document given. Prints one JSON line {verified, error}; exit 0
// when verified, 1 when not, 2 when it could not run.
//
// Usage: node verify-record.mjs RECORD.json CONTEXTS_DIR DID_DOCUMENT.json
import fs from 'node:fs';
import path from 'node:path';
import * as vc from '@digitalbazaar/vc';
import {DataIntegrityProof} from '@digitalbazaar/data-integrity';
import {cryptosuite} from '@digitalbazaar/eddsa-rdfc-2022-cryptosuite';
import {createVerifyCryptosuite} from '@digitalbazaar/eddsa-jcs-2022-cryptosuite';
import didContext from 'did-context';
import multikeyContext from '@digitalbazaar/multikey-context';

const [recordPath, contextsDir, didDocPath] = process.argv.slice(2);
if(!recordPath || !contextsDir || !didDocPath) {
  console.error('usage: verify-record.mjs RECORD CONTEXTS_DIR DID_DOCUMENT');
  process.exit(2);
}
const read = f => JSON.parse(fs.readFileSync(f, 'utf8'));
const documents = new Map([
  ['https://www.w3.org/ns/credentials/v2', read(path.join(contextsDir, 'credentials-v2.jsonld'))],
  ['https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json', read(path.join(contextsDir, 'ob-v3p0-context-3.0.3.json'))],
  ['urn:xuefen:context:record:v1', read(path.join(contextsDir, 'xuefen-record-v1.jsonld'))],
  [didContext.constants.DID_CONTEXT_URL, didContext.contexts.get(didContext.constants.DID_CONTEXT_URL)],
  [multikeyContext.CONTEXT_URL, multikeyContext.CONTEXT],
]);
const didDocument = read(didDocPath);

const documentLoader = async url => {
  if(documents.has(url)) {
    return {contextUrl: null, documentUrl: url, document: documents.get(url)};
  }
  const [did, fragment] = url.split('#');
  if(did === didDocument.id) {
    if(!fragment) {
      return {contextUrl: null, documentUrl: url, document: didDocument};
    }
    const method = didDocument.verificationMethod.find(m => m.id === url);
    if(method) {
      return {contextUrl: null, documentUrl: url,
        document: {'@context': multikeyContext.CONTEXT_URL, ...method}};
    }
  }
  throw new Error(`offline loader: no document for ${url}`);
};

const credential = read(recordPath);
// The record carries a proof set: both proofs are checked, each by its suite.
const suite = [new DataIntegrityProof({cryptosuite}), new DataIntegrityProof({cryptosuite: createVerifyCryptosuite()})];
try {
  const result = await vc.verifyCredential({credential, suite, documentLoader});
  const error = result.verified ? null :
    JSON.stringify(result.error ?? result.results ?? result, (k, v) => v instanceof Error ? {message: v.message, stack: undefined} : v).slice(0, 2000);
  console.log(JSON.stringify({verified: result.verified, error}));
  process.exit(result.verified ? 0 : 1);
} catch(e) {
  console.log(JSON.stringify({verified: false, error: String(e && e.stack || e)}));
  process.exit(1);
}
