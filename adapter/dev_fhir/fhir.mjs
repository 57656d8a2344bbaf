// The FHIR REST interactions, independent of HTTP: Medplum's FhirRouter does the routing and
// the plain interactions (read, vread, create, conditional create/update/delete, patch,
// delete); we replace the handlers it gets wrong for our purposes or lacks: search (paging
// links, fullUrl, unknown parameters rejected), update (201 when it creates), history (all
// three levels, with paging), batch/transaction (see bundles.mjs), and /metadata.

import {
  OperationOutcomeError,
  allOk,
  badRequest,
  created,
  formatSearchQuery,
  getStatus,
  normalizeOperationOutcome,
  notFound,
  parseSearchRequest,
} from '@medplum/core';
import { FhirRouter } from '@medplum/fhir-router';
import { processBundle } from './bundles.mjs';
import { RESOURCE_TYPES, isResourceType, searchParametersOf } from './definitions.mjs';

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 1000;
export const SOFTWARE_NAME = 'TrialBridge dev FHIR server';
export const SOFTWARE_VERSION = '0.1.0';

/** Search parameter types MemoryRepository can match; it silently matches nothing for others. */
const SUPPORTED_SEARCH_TYPES = new Set(['reference', 'string', 'uri', 'token', 'date']);
const INSTANCE_INTERACTIONS = ['read', 'vread', 'update', 'patch', 'delete', 'history-instance'];
const TYPE_INTERACTIONS = ['history-type', 'create', 'search-type'];

export class DevFhir {
  /** @param {import('./store.mjs').DevRepository} repo */
  constructor(repo) {
    this.repo = repo;
    this.router = new FhirRouter();
    this.#setRoute('GET', 'metadata', capabilities, 'capabilities');
    this.#setRoute('POST', '', (req) => processBundle(req, this), 'transaction');
    this.#setRoute('GET', ':resourceType', searchType, 'search-type');
    this.#setRoute('POST', ':resourceType/_search', searchType, 'search-type');
    this.#setRoute('PUT', ':resourceType/:id', update, 'update');
    this.#setRoute('GET', ':resourceType/:id/_history', history, 'history-instance');
    this.#setRoute('GET', ':resourceType/_history', history, 'history-type');
    this.#setRoute('GET', '_history', history, 'history-system');
  }

  /**
   * Runs one interaction. `url` is relative to the FHIR base ("Observation?code=x").
   * Never throws for FHIR errors: returns { status, outcome, resource? }.
   */
  async dispatch({ method, url, body, headers = {}, baseUrl }) {
    const path = url.replace(/^\/+/, '');
    const first = path.split(/[/?]/)[0];
    if (first && !['metadata', '_history'].includes(first) && !first.startsWith('$') && !isResourceType(first)) {
      const outcome = notFoundOutcome(`Unknown resource type "${first}"`);
      return { status: 404, outcome };
    }
    const request = { method, url: path, pathname: '', body, headers, query: {}, params: {}, baseUrl };
    let outcome;
    let resource;
    try {
      [outcome, resource] = await this.router.handleRequest(request, this.repo);
    } catch (err) {
      outcome = normalizeOperationOutcome(err);
    }
    return { status: getStatus(outcome), outcome, resource };
  }

  /** Replaces the router's handler for a route (or adds the route). Errors become outcomes. */
  #setRoute(method, path, handler, interaction) {
    const wrapped = async (req, repo, router, options) => {
      try {
        return await handler(req, repo, router, options);
      } catch (err) {
        if (err instanceof OperationOutcomeError) {
          return [err.outcome];
        }
        console.error(`dev-fhir: unexpected error in ${method} ${req.url}:`, err);
        return [serverError(err)];
      }
    };
    const existing = this.router.router.routes.find(
      (r) => r.method === method && r.path.map((s) => (s.param ? ':' : '') + s.value).join('/') === path
    );
    if (existing) {
      existing.handler = wrapped;
    } else {
      this.router.add(method, path, wrapped, interaction);
    }
  }
}

/** An outcome for a bug in the dev server: HTTP 500, never an HTML page or a dropped connection. */
export function serverError(err) {
  return {
    resourceType: 'OperationOutcome',
    issue: [{ severity: 'fatal', code: 'exception', details: { text: `Internal error: ${err?.message ?? err}` } }],
  };
}

export function notFoundOutcome(text) {
  return {
    resourceType: 'OperationOutcome',
    id: notFound.id,
    issue: [{ severity: 'error', code: 'not-found', details: { text } }],
  };
}

/** The ETag value for a resource version, as FHIR servers send it. */
export function etagOf(resource) {
  return `W/"${resource.meta.versionId}"`;
}

export function parseIfMatch(header) {
  const match = header ? /"([^"]+)"/.exec(header) : null;
  return match ? match[1] : header || undefined;
}

// -- update ---------------------------------------------------------------------------------------

async function update(req, repo) {
  const { resourceType, id } = req.params;
  const resource = req.body;
  if (!resource || typeof resource !== 'object' || resource.resourceType !== resourceType) {
    throw new OperationOutcomeError(
      badRequest(`Body must be a ${resourceType} resource (got "${resource?.resourceType ?? typeof resource}")`)
    );
  }
  if (resource.id !== id) {
    throw new OperationOutcomeError(
      badRequest(`Resource id "${resource.id ?? ''}" does not match the id in the URL "${id}"`, `${resourceType}.id`)
    );
  }
  const existed = repo.exists(resourceType, id);
  const ifMatch = parseIfMatch(singleHeader(req.headers?.['if-match']));
  const result = await repo.updateResource(resource, { ifMatch });
  return [existed ? allOk : created, result];
}

function singleHeader(value) {
  return Array.isArray(value) ? value[0] : value;
}

// -- search ---------------------------------------------------------------------------------------

async function searchType(req, repo) {
  const { resourceType } = req.params;
  const query = req.method === 'POST' ? { ...req.query, ...(req.body ?? {}) } : req.query;
  const searchRequest = parseSearchRequest(resourceType, query);
  checkSearchRequest(searchRequest);
  searchRequest.count = Math.min(searchRequest.count ?? DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
  searchRequest.offset = searchRequest.offset ?? 0;

  const summaryCount = searchRequest.summary === 'count';
  const bundle = await repo.search(summaryCount ? { ...searchRequest, count: 0 } : searchRequest);
  bundle.entry = bundle.entry?.map((entry) => ({
    fullUrl: `${req.baseUrl}/${entry.resource.resourceType}/${entry.resource.id}`,
    ...entry,
  }));
  bundle.id = repo.generateId();
  bundle.meta = { lastUpdated: new Date().toISOString() };
  bundle.link = pageLinks(`${req.baseUrl}/${resourceType}`, searchRequest, bundle.total, (sr) =>
    formatSearchQuery({ ...sr, summary: undefined })
  );
  return [allOk, orderBundle(bundle)];
}

/** Rejects what MemoryRepository would silently answer with nothing, as HAPI does (400). */
function checkSearchRequest(searchRequest) {
  const { resourceType } = searchRequest;
  const params = searchParametersOf(resourceType);
  for (const filter of searchRequest.filters ?? []) {
    const code = filter.code;
    if (code.startsWith('_has')) {
      throw new OperationOutcomeError(badRequest('_has is not supported by the dev server'));
    }
    if (code.includes('.')) {
      continue; // a chained parameter: MemoryRepository resolves those itself
    }
    const param = params[code];
    if (!param) {
      throw new OperationOutcomeError(badRequest(`Unknown search parameter "${code}" for ${resourceType}`));
    }
    if (!SUPPORTED_SEARCH_TYPES.has(param.type)) {
      throw new OperationOutcomeError(
        badRequest(`Search parameter "${code}" (type ${param.type}) is not supported by the dev server`)
      );
    }
  }
  for (const rule of searchRequest.sortRules ?? []) {
    if (!params[rule.code]) {
      throw new OperationOutcomeError(badRequest(`Unknown _sort parameter "${rule.code}" for ${resourceType}`));
    }
  }
}

/** self / first / previous / next links for a page at `offset` of size `count` among `total`. */
function pageLinks(baseUrl, request, total, format) {
  const { offset, count } = request;
  const at = (newOffset) => `${baseUrl}${format({ ...request, offset: newOffset })}`;
  const links = [
    { relation: 'self', url: at(offset) },
    { relation: 'first', url: at(0) },
  ];
  if (offset > 0 && count > 0) {
    links.push({ relation: 'previous', url: at(Math.max(0, offset - count)) });
  }
  if (count > 0 && offset + count < total) {
    links.push({ relation: 'next', url: at(offset + count) });
  }
  return links;
}

/** Puts the Bundle's elements in the usual order (readability of raw JSON only). */
function orderBundle(bundle) {
  const { resourceType, id, meta, type, total, link, entry, ...rest } = bundle;
  return { resourceType, id, meta, type, total, link, ...rest, ...(entry ? { entry } : {}) };
}

// -- history --------------------------------------------------------------------------------------

async function history(req, repo) {
  const { resourceType, id } = req.params;
  const count = Math.min(intParam(req.query, '_count') ?? 100, MAX_PAGE_SIZE);
  const offset = intParam(req.query, '_offset') ?? 0;
  const since = lastValue(req.query._since);
  const all = repo.historyEntries({ resourceType, id, since });
  const page = all.slice(offset, offset + count);

  const path = [resourceType, id, '_history'].filter(Boolean).join('/');
  const format = ({ offset: o }) => {
    const params = new URLSearchParams();
    if (since) params.set('_since', since);
    if (o) params.set('_offset', String(o));
    params.set('_count', String(count));
    return `?${params}`;
  };
  const bundle = {
    resourceType: 'Bundle',
    id: repo.generateId(),
    meta: { lastUpdated: new Date().toISOString() },
    type: 'history',
    total: all.length,
    link: pageLinks(`${req.baseUrl}/${path}`, { offset, count }, all.length, format),
    entry: page.map((e) => ({
      fullUrl: `${req.baseUrl}/${e.resourceType}/${e.id}`,
      ...(e.resource ? { resource: e.resource } : {}),
      request: { method: e.method, url: e.method === 'POST' ? e.resourceType : `${e.resourceType}/${e.id}` },
      response: {
        status: e.method === 'DELETE' ? '204 No Content' : e.versionId === '1' ? '201 Created' : '200 OK',
        etag: `W/"${e.versionId}"`,
        lastModified: e.lastUpdated,
      },
    })),
  };
  return [allOk, bundle];
}

function lastValue(value) {
  return Array.isArray(value) ? value.at(-1) : value;
}

function intParam(query, name) {
  const text = lastValue(query[name]);
  if (text === undefined || text === '') {
    return undefined;
  }
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0) {
    throw new OperationOutcomeError(badRequest(`${name} must be a non-negative integer (got "${text}")`));
  }
  return value;
}

// -- capabilities ---------------------------------------------------------------------------------

async function capabilities(req) {
  const statement = {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    publisher: 'TrialBridge',
    kind: 'instance',
    software: { name: SOFTWARE_NAME, version: SOFTWARE_VERSION },
    implementation: {
      description: 'Local FHIR R4 server for TrialBridge tests and demos (in memory; not for patient data)',
      url: req.baseUrl,
    },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    patchFormat: ['application/json-patch+json'],
    rest: [
      {
        mode: 'server',
        resource: RESOURCE_TYPES.map((type) => ({
          type,
          interaction: [...INSTANCE_INTERACTIONS, ...TYPE_INTERACTIONS].map((code) => ({ code })),
          versioning: 'versioned',
          readHistory: true,
          updateCreate: true,
          conditionalCreate: true,
          conditionalRead: 'not-supported',
          conditionalUpdate: true,
          conditionalDelete: 'single',
          searchInclude: ['*'],
          searchRevInclude: ['*'],
          searchParam: Object.values(searchParametersOf(type))
            .filter((p) => SUPPORTED_SEARCH_TYPES.has(p.type) && p.url?.startsWith('http://hl7.org/fhir/'))
            .map((p) => ({ name: p.code, definition: p.url, type: p.type })),
        })),
        interaction: [{ code: 'transaction' }, { code: 'batch' }, { code: 'history-system' }],
      },
    ],
  };
  return [allOk, statement];
}
