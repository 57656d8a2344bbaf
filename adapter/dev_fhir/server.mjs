// TrialBridge's local FHIR R4 server for tests and the demo: Medplum's FhirRouter and an
// in-memory repository behind a small node:http launcher. Not for real patient data.
//
//   node --experimental-websocket server.mjs [--port 8080] [--host 127.0.0.1] [--data FILE]
//        [--log-requests] [--exit-on-stdin-close] [--require-auth ISSUER [--audience AUD]]
//
// Prints exactly one line on stdout once it listens:  dev-fhir ready on http://HOST:PORT/fhir
// (with --port 0 the system picks a free port, and that line says which). Logs go to stderr.
//
// Endpoints: the FHIR API under /fhir, and POST /admin/reset (dev only) to empty the store.
// With --data FILE the store is loaded from FILE at start and saved to it, atomically, after
// every request that changed it.
//
// With --require-auth ISSUER every FHIR request but GET /metadata needs a SMART access token
// from ISSUER whose scopes allow it (guard.mjs); AUD defaults to this server's base URL.
// POST /admin/revoke-tokens (dev only) makes every token issued so far invalid.

import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { allOk, badRequest } from '@medplum/core';
import { loadDefinitions } from './definitions.mjs';
import { DevFhir, etagOf, notFoundOutcome, serverError } from './fhir.mjs';
import { AuthRequired, Guard } from './guard.mjs';
import { DevRepository } from './store.mjs';

const BASE_PATH = '/fhir';
const MAX_BODY_BYTES = 64 * 1024 * 1024;
const FHIR_JSON = 'application/fhir+json; charset=utf-8';

async function main() {
  const { values: options } = parseArgs({
    options: {
      port: { type: 'string', default: '8080' },
      host: { type: 'string', default: '127.0.0.1' },
      data: { type: 'string' },
      'log-requests': { type: 'boolean', default: false },
      'exit-on-stdin-close': { type: 'boolean', default: false },
      'require-auth': { type: 'string' },
      audience: { type: 'string' },
    },
  });
  const port = Number(options.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    fail(`--port must be an integer between 0 and 65535 (got "${options.port}")`);
  }

  loadDefinitions();
  const repo = new DevRepository();
  const store = options.data ? new DataFile(options.data, repo) : undefined;
  store?.load();
  const fhir = new DevFhir(repo);
  let guard;
  if (options['require-auth']) {
    try {
      guard = await Guard.discover(options['require-auth'], options.audience);
    } catch (err) {
      fail(`--require-auth ${options['require-auth']}: ${err.message}`);
    }
  }
  const app = new App({ fhir, repo, store, guard, logRequests: options['log-requests'] });

  const server = createServer((req, res) => app.serve(req, res));
  server.keepAliveTimeout = 30_000;
  server.on('error', (err) => {
    if (err.code === 'EADDRINUSE') {
      fail(`port ${port} is already in use on ${options.host}; choose another with --port (0 picks a free one)`);
    }
    fail(`cannot listen on ${options.host}:${port}: ${err.message}`);
  });
  server.listen(port, options.host, () => {
    const { port: actual } = server.address();
    const host = options.host.includes(':') ? `[${options.host}]` : options.host;
    process.stdout.write(`dev-fhir ready on http://${host}:${actual}${BASE_PATH}\n`);
  });

  const shutdown = () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
  if (options['exit-on-stdin-close']) {
    // The Python side keeps our stdin open; when it goes away (even killed), so do we.
    process.stdin.on('end', shutdown);
    process.stdin.on('error', shutdown);
    process.stdin.resume();
  }
}

function fail(message) {
  process.stderr.write(`dev-fhir: ${message}\n`);
  process.exit(1);
}

/** The `--data FILE` store: loaded once, rewritten atomically (temp file + rename) after changes. */
class DataFile {
  constructor(path, repo) {
    this.path = path;
    this.repo = repo;
    this.savedGeneration = -1;
  }

  load() {
    if (existsSync(this.path)) {
      try {
        this.repo.load(JSON.parse(readFileSync(this.path, 'utf8')));
      } catch (err) {
        fail(`cannot load ${this.path}: ${err.message}`);
      }
    }
    try {
      this.save(); // also proves early that the file can be written
    } catch (err) {
      fail(`cannot write ${this.path}: ${err.message}`);
    }
  }

  saveIfChanged() {
    if (this.repo.generation !== this.savedGeneration) {
      this.save();
    }
  }

  save() {
    const temp = `${this.path}.tmp-${process.pid}`;
    const fd = openSync(temp, 'w');
    try {
      writeSync(fd, JSON.stringify(this.repo.dump()));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, this.path);
    this.savedGeneration = this.repo.generation;
  }
}

class App {
  /** Requests run one at a time: a transaction never interleaves with anything. */
  #queue = Promise.resolve();

  constructor({ fhir, repo, store, guard, logRequests }) {
    this.fhir = fhir;
    this.guard = guard;
    this.repo = repo;
    this.store = store;
    this.logRequests = logRequests;
  }

  exclusive(task) {
    const run = this.#queue.then(task);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async serve(req, res) {
    const started = performance.now();
    let status = 500;
    try {
      status = await this.#handle(req, res);
    } catch (err) {
      console.error(`dev-fhir: unexpected error in ${req.method} ${req.url}:`, err);
      status = 500;
      if (!res.headersSent) {
        send(res, 500, serverError(err));
      }
    }
    if (this.logRequests) {
      const ms = (performance.now() - started).toFixed(1);
      process.stderr.write(`dev-fhir: ${req.method} ${req.url} ${status} ${ms}ms\n`);
    }
  }

  async #handle(req, res) {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const pretty = url.searchParams.get('_pretty') === 'true';
    const body = await readBody(req);
    if (body === undefined) {
      return send(res, 413, badRequestOutcome(`Request body larger than ${MAX_BODY_BYTES} bytes`));
    }

    if (url.pathname === '/admin/reset') {
      if (method !== 'POST') {
        return send(res, 405, badRequestOutcome('Use POST /admin/reset'));
      }
      await this.exclusive(() => {
        this.repo.clear();
        this.store?.saveIfChanged();
      });
      return send(res, 200, info('Store emptied'));
    }
    if (url.pathname === '/admin/revoke-tokens' && method === 'POST' && this.guard) {
      this.guard.revokeAll();
      return send(res, 200, info('Every access token issued so far is revoked'));
    }
    if (url.pathname !== BASE_PATH && !url.pathname.startsWith(`${BASE_PATH}/`)) {
      return send(res, 404, notFoundOutcome(`Nothing at ${url.pathname}: the FHIR API is under ${BASE_PATH}/`));
    }

    let parsed;
    try {
      parsed = parseBody(body, req.headers['content-type']);
    } catch (err) {
      return send(res, 400, badRequestOutcome(`Malformed request body: ${err.message}`));
    }
    const host = req.headers.host ?? `${req.socket.localAddress}:${req.socket.localPort}`;
    const request = {
      method,
      url: url.pathname.slice(BASE_PATH.length) + url.search,
      body: parsed,
      headers: req.headers,
      baseUrl: `http://${host}${BASE_PATH}`,
    };
    const refused = await this.#authorise(request);
    if (refused) {
      return send(res, refused.status, refused.outcome, refused.headers);
    }
    const result = await this.exclusive(async () => {
      try {
        return await this.fhir.dispatch(request);
      } finally {
        this.store?.saveIfChanged();
      }
    });
    return this.#respond(req, res, request, result, pretty);
  }

  /** Undefined when the request may go on; else the refusal to send (401 or 403). */
  async #authorise(request) {
    if (!this.guard || (request.method === 'GET' && request.url.split('?')[0] === '/metadata')) {
      return undefined;
    }
    try {
      const granted = await this.guard.scopes(request.headers, request.baseUrl);
      const missing = this.guard.missing(granted, request);
      if (missing.length === 0) return undefined;
      const text = `The access token's scopes do not allow this request: missing ${[...new Set(missing)].join(', ')}`;
      return { status: 403, outcome: forbidden(text), headers: {} };
    } catch (err) {
      if (!(err instanceof AuthRequired)) throw err;
      return { status: 401, outcome: forbidden(err.message, 'login'), headers: { 'WWW-Authenticate': err.wwwAuthenticate } };
    }
  }

  #respond(req, res, request, { status, outcome, resource }, pretty) {
    const headers = {};
    const stored = resource?.id && resource.meta?.versionId && !isResponseBundle(resource);
    if (stored) {
      headers.ETag = etagOf(resource);
      headers['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
      if (['POST', 'PUT', 'PATCH'].includes(request.method) && status < 300) {
        headers.Location = `${request.baseUrl}/${resource.resourceType}/${resource.id}/_history/${resource.meta.versionId}`;
      }
    }
    const prefer = String(req.headers.prefer ?? '');
    let payload = resource ?? outcome;
    if (status < 300 && resource && request.method !== 'GET') {
      if (prefer.includes('return=minimal')) payload = undefined;
      else if (prefer.includes('return=OperationOutcome')) payload = outcome;
    }
    return send(res, status, req.method === 'HEAD' ? undefined : payload, headers, pretty);
  }
}

function isResponseBundle(resource) {
  return resource.resourceType === 'Bundle' && /(searchset|history|-response)$/.test(resource.type ?? '');
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on('end', () => resolve(size > MAX_BODY_BYTES ? undefined : Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** JSON for FHIR bodies; form fields for POST _search. Throws on malformed JSON. */
function parseBody(text, contentType = '') {
  if (!text.trim()) {
    return undefined;
  }
  if (contentType.startsWith('application/x-www-form-urlencoded')) {
    const fields = {};
    for (const [key, value] of new URLSearchParams(text)) {
      fields[key] = key in fields ? [fields[key], value].flat() : value;
    }
    return fields;
  }
  return JSON.parse(text);
}

function send(res, status, payload, headers = {}, pretty = false) {
  const body = payload === undefined ? '' : JSON.stringify(payload, null, pretty ? 2 : undefined);
  res.writeHead(status, {
    'Content-Type': FHIR_JSON,
    'Content-Length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(body);
  return status;
}

function badRequestOutcome(text) {
  return badRequest(text);
}

function forbidden(text, code = 'forbidden') {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, details: { text } }] };
}

function info(text) {
  return { ...allOk, issue: [{ severity: 'information', code: 'informational', details: { text } }] };
}


await main();
