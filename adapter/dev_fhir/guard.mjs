// The dev FHIR server's door when started with --require-auth ISSUER: every FHIR request but
// GET /metadata must carry a bearer access token (a JWT) issued by ISSUER, for this server
// (its audience), not expired, whose SMART scopes allow each interaction it asks for.
//
//   401 + WWW-Authenticate (RFC 6750 §3) when the token is missing, malformed, expired, for
//       another audience, signed by a key the issuer's JWKS does not hold;
//   403 + an OperationOutcome naming the scope that is missing.
//
// Scopes follow SMART App Launch v2 (resource scopes: `system/Observation.cu`, `system/*.rs`,
// letters c r u d s) and the v1 forms (`.read` = rs, `.write` = cud, `.*` = cruds); `user/`
// scopes are read like `system/` ones here (the dev server has no users). `patient/` scopes
// are not honoured: they would need compartment checks this server does not make.
// Verification uses `jose` (the JOSE library oidc-provider itself uses); the issuer's JWKS is
// found through its discovery document and cached by jose's remote key set.

import { createRemoteJWKSet, errors as joseErrors, jwtVerify } from 'jose';

const INTERACTIONS = { POST: 'c', GET: 'r', PUT: 'u', PATCH: 'u', DELETE: 'd' };
const V1 = { read: 'rs', write: 'cud', '*': 'cruds' };

export class AuthRequired extends Error {
  constructor(status, text, wwwAuthenticate) {
    super(text);
    this.status = status;
    this.wwwAuthenticate = wwwAuthenticate;
  }
}

export class Guard {
  static async discover(issuer, audience) {
    const response = await fetch(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`);
    if (!response.ok) {
      throw new Error(`the issuer ${issuer} has no discovery document (HTTP ${response.status})`);
    }
    const metadata = await response.json();
    return new Guard(metadata.issuer, audience, createRemoteJWKSet(new URL(metadata.jwks_uri)));
  }

  constructor(issuer, audience, keys) {
    this.issuer = issuer;
    this.audience = audience;
    this.keys = keys;
    this.seen = new Set(); // token ids presented so far
    this.revoked = new Set(); // POST /admin/revoke-tokens: every token presented until then
  }

  revokeAll() {
    this.revoked = new Set(this.seen);
  }

  /** The granted scopes of the request's token; throws AuthRequired. */
  async scopes(headers, ownUrl) {
    const match = /^Bearer\s+(\S+)$/i.exec(String(headers.authorization ?? ''));
    if (!match) {
      throw unauthorized('no bearer token: this server requires a SMART access token', 'invalid_request');
    }
    let payload;
    try {
      ({ payload } = await jwtVerify(match[1], this.keys, {
        issuer: this.issuer,
        audience: this.audience ?? ownUrl,
      }));
    } catch (err) {
      throw unauthorized(describe(err), 'invalid_token');
    }
    if (this.revoked.has(payload.jti)) {
      throw unauthorized('the access token was revoked', 'invalid_token');
    }
    this.seen.add(payload.jti);
    return parseScopes(String(payload.scope ?? ''));
  }

  /** Every (resourceType, letter) the request needs that the scopes do not grant. */
  missing(granted, request) {
    return needs(request)
      .filter(([type, letter]) => !allows(granted, type, letter))
      .map(([type, letter]) => `system/${type}.${letter}`);
  }
}

function unauthorized(text, code) {
  const safe = text.replaceAll('"', "'");
  return new AuthRequired(401, text, `Bearer realm="dev-fhir", error="${code}", error_description="${safe}"`);
}

function describe(err) {
  if (err instanceof joseErrors.JWTExpired) return 'the access token has expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `the access token's ${err.claim} claim is not accepted here`;
  if (err instanceof joseErrors.JWKSNoMatchingKey) return "the access token's key is not in the issuer's JWKS";
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return "the access token's signature does not verify";
  return `the access token is not valid (${err.code ?? err.name})`;
}

/** "system/Observation.cu system/*.rs" -> Map(type -> Set(letters)). */
export function parseScopes(text) {
  const granted = new Map();
  for (const scope of text.split(/\s+/).filter(Boolean)) {
    const match = /^(system|user)\/([A-Za-z*]+)\.([a-z*]+)(\?.*)?$/.exec(scope);
    if (!match) continue;
    const [, , type, rights] = match;
    const letters = V1[rights] ?? (/^c?r?u?d?s?$/.test(rights) ? rights : '');
    const set = granted.get(type) ?? new Set();
    for (const letter of letters) set.add(letter);
    granted.set(type, set);
  }
  return granted;
}

function allows(granted, type, letter) {
  return Boolean(granted.get(type)?.has(letter) || granted.get('*')?.has(letter));
}

/** The (resourceType, letter) pairs one HTTP request asks for; a transaction asks for each entry's. */
function needs({ method, url, body }) {
  const [path, query] = url.split('?');
  const parts = path.split('/').filter(Boolean);
  if (parts.length === 0 && method === 'POST' && body?.resourceType === 'Bundle') {
    return (body.entry ?? []).flatMap((entry) =>
      entry.request ? needs({ method: entry.request.method, url: `/${entry.request.url}`, body: entry.resource }) : [],
    );
  }
  const type = parts[0];
  if (!type) return [];
  if (method === 'GET' && (parts.length === 1 || parts[1] === '_search')) return [[type, 's']];
  if (method === 'POST' && parts[1] === '_search') return [[type, 's']];
  if (method === 'GET' && query === undefined && parts.length >= 2) return [[type, 'r']];
  const letter = INTERACTIONS[method];
  return letter ? [[type, letter]] : [];
}
