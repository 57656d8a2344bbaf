// TrialBridge's local authorization server for tests and the secure demo: `oidc-provider`
// (a certified OpenID Connect / OAuth 2.0 server, written by others) configured for SMART
// backend services: clients authenticate with private_key_jwt (their public keys as a JWKS),
// use the client_credentials grant, and get short-lived JWT access tokens carrying SMART v2
// system scopes. Loopback only. Not for real patient data.
//
//   node auth.mjs --clients FILE [--port 0] [--host 127.0.0.1] [--audience AUD] [--token-ttl 300]
//
// FILE is JSON: [{"client_id": "...", "jwks": {"keys": [...]}, "scope": "system/Observation.cu ..."}].
// AUD is the access tokens' audience (the FHIR server's identifier; default: none, so the
// FHIR server's own base URL must be given). Prints one line on stdout once it listens:
//   dev-auth ready on http://HOST:PORT (token endpoint http://HOST:PORT/token)
// GET /dev/stats answers {"tokens_issued": N, "refusals": [{"error", "description"}...]}.

import { createServer } from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import Provider, { errors } from 'oidc-provider';

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

async function main() {
  const { values: options } = parseArgs({
    options: {
      clients: { type: 'string' },
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      audience: { type: 'string' },
      'token-ttl': { type: 'string', default: '300' },
      'exit-on-stdin-close': { type: 'boolean', default: false },
    },
  });
  if (!options.clients) fail('--clients FILE is required (JSON list of client_id, jwks, scope)');
  if (!LOOPBACK.has(options.host)) fail(`--host ${options.host}: the dev authorization server listens on the loopback only`);
  if (!options.audience) fail('--audience is required: the FHIR server the tokens are for (its base URL)');
  const ttl = Number(options['token-ttl']);
  if (!Number.isInteger(ttl) || ttl < 1) fail(`--token-ttl must be a positive number of seconds (got "${options['token-ttl']}")`);
  let clients;
  try {
    clients = JSON.parse(readFileSync(options.clients, 'utf8'));
  } catch (err) {
    fail(`cannot read --clients ${options.clients}: ${err.message}`);
  }

  const stats = { tokens_issued: 0, refusals: [] };
  const server = createServer();
  server.on('error', (err) => fail(`cannot listen on ${options.host}:${options.port}: ${err.message}`));
  await new Promise((resolve) => server.listen(Number(options.port), options.host, resolve));
  const { port } = server.address();
  const issuer = `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}`;
  const provider = new Provider(issuer, configuration(clients, options.audience, ttl));
  provider.on('grant.success', () => { stats.tokens_issued += 1; });
  provider.on('grant.error', (_ctx, err) => record(stats, err));
  provider.on('server_error', (_ctx, err) => record(stats, err));
  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (req.url === '/dev/stats') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(stats));
      return;
    }
    callback(req, res);
  });
  process.stdout.write(`dev-auth ready on ${issuer} (token endpoint ${issuer}/token)\n`);

  const shutdown = () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
  if (options['exit-on-stdin-close']) {
    process.stdin.on('end', shutdown);
    process.stdin.on('error', shutdown);
    process.stdin.resume();
  }
}

function configuration(clients, audience, ttl) {
  const allScopes = [...new Set(clients.flatMap((c) => String(c.scope ?? '').split(/\s+/).filter(Boolean)))];
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    clients: clients.map((c) => ({
      client_id: c.client_id,
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: c.jwks,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: c.scope,
    })),
    clientAuthMethods: ['private_key_jwt'],
    enabledJWA: { clientAuthSigningAlgValues: ['RS384', 'ES384', 'RS256', 'ES256'] },
    jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'dev-auth-1', use: 'sig', alg: 'RS256' }] },
    scopes: allScopes,
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => audience,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, indicator) => {
          if (indicator !== audience) throw new errors.InvalidTarget(`unknown resource ${indicator}`);
          return {
            audience,
            scope: allScopes.join(' '),
            accessTokenTTL: ttl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    ttl: { ClientCredentials: ttl },
  };
}

function record(stats, err) {
  stats.refusals.push({ error: err.error ?? err.name, description: err.error_detail ?? err.error_description ?? err.message });
  stats.refusals = stats.refusals.slice(-50);
}

function fail(message) {
  process.stderr.write(`dev-auth: ${message}\n`);
  process.exit(1);
}

await main();
