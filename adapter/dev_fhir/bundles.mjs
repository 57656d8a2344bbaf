// Batch and transaction Bundles (POST to the FHIR base).
//
// Medplum's own transaction mode refuses more than 8 conditional entries or 50 PUTs and
// cannot roll back a MemoryRepository, so transactions are done here:
//  1. entries run in the order the FHIR spec prescribes: DELETE, POST, PUT/PATCH, GET/HEAD;
//  2. before any write, every POST and PUT is given its final identity: a new id, or the one
//     found by its conditional create (ifNoneExist) or conditional update URL (0 matches ->
//     create, 1 -> update, more -> 412), so `urn:uuid:` fullUrls and conditional references
//     (`Patient?identifier=...`) can be rewritten in every resource first;
//  3. any failure rolls the store back to where it was (repo.savepoint/rollback): all or
//     nothing. The server runs one request at a time, so nothing else sees the partial state.
// A batch runs each entry as an independent request, in order, each with its own outcome.

import {
  OperationOutcomeError,
  allOk,
  badRequest,
  getStatus,
  multipleMatches,
  normalizeOperationOutcome,
  parseSearchRequest,
} from '@medplum/core';
import { isResourceType } from './definitions.mjs';

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];
const PHASE = { DELETE: 0, POST: 1, PUT: 2, PATCH: 2, GET: 3, HEAD: 3 };
const REASONS = {
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  304: 'Not Modified',
  400: 'Bad Request',
  404: 'Not Found',
  409: 'Conflict',
  410: 'Gone',
  412: 'Precondition Failed',
  422: 'Unprocessable Entity',
  500: 'Internal Server Error',
};

/** Router handler for POST [base]: dispatches on Bundle.type. */
export async function processBundle(req, fhir) {
  const bundle = req.body;
  if (!bundle || typeof bundle !== 'object' || bundle.resourceType !== 'Bundle') {
    throw new OperationOutcomeError(badRequest('POST to the FHIR base expects a Bundle of type batch or transaction'));
  }
  if (bundle.type !== 'transaction' && bundle.type !== 'batch') {
    throw new OperationOutcomeError(
      badRequest(`Bundle.type must be "transaction" or "batch" (got "${bundle.type ?? ''}")`, 'Bundle.type')
    );
  }
  if (bundle.entry !== undefined && !Array.isArray(bundle.entry)) {
    throw new OperationOutcomeError(badRequest('Bundle.entry must be an array', 'Bundle.entry'));
  }
  const entries = bundle.entry ?? [];
  entries.forEach(checkEntry);
  const prefer = String(req.headers?.prefer ?? '');
  const context = {
    fhir,
    repo: fhir.repo,
    baseUrl: req.baseUrl,
    representation: /return=representation/.test(prefer),
  };
  const response =
    bundle.type === 'transaction' ? await transaction(entries, context) : await batch(entries, context);
  return [allOk, { resourceType: 'Bundle', id: fhir.repo.generateId(), type: `${bundle.type}-response`, ...response }];
}

function checkEntry(entry, index) {
  const where = `Bundle.entry[${index}]`;
  const method = entry?.request?.method;
  if (!METHODS.includes(method)) {
    throw new OperationOutcomeError(
      badRequest(`${where}.request.method must be one of ${METHODS.join(', ')} (got "${method ?? ''}")`, `${where}.request.method`)
    );
  }
  if (typeof entry.request.url !== 'string' || entry.request.url === '') {
    throw new OperationOutcomeError(badRequest(`${where}.request.url is required`, `${where}.request.url`));
  }
  if ((method === 'POST' || method === 'PUT') && (!entry.resource || typeof entry.resource !== 'object')) {
    throw new OperationOutcomeError(badRequest(`${where}.resource is required for ${method}`, `${where}.resource`));
  }
}

// -- batch ----------------------------------------------------------------------------------------

async function batch(entries, context) {
  const { fhir, repo } = context;
  const responses = [];
  for (const entry of entries) {
    const savepoint = repo.savepoint();
    const result = await fhir.dispatch(entryRequest(entry, context));
    if (result.status >= 400) {
      repo.rollback(savepoint); // an entry is atomic even in a batch
      responses.push({ response: { status: statusLine(result.status), outcome: result.outcome } });
    } else {
      responses.push(entryResponse(entry.request.method, result, context));
    }
  }
  return { entry: responses };
}

function entryRequest(entry, { baseUrl }, url = entry.request.url, resource = entry.resource) {
  const { method, ifNoneExist, ifMatch } = entry.request;
  const headers = {};
  if (ifNoneExist) headers['if-none-exist'] = ifNoneExist;
  if (ifMatch) headers['if-match'] = ifMatch;
  const body = method === 'PATCH' ? patchBody(entry) : resource;
  return { method: method === 'HEAD' ? 'GET' : method, url: relativeUrl(url, baseUrl), body, headers, baseUrl };
}

/** A PATCH entry carries its JSON Patch as a Binary (base64) or a FHIRPath Parameters resource. */
function patchBody(entry) {
  const resource = entry.resource;
  if (resource?.resourceType === 'Binary' && resource.data) {
    return JSON.parse(Buffer.from(resource.data, 'base64').toString('utf8'));
  }
  return resource;
}

function relativeUrl(url, baseUrl) {
  if (baseUrl && url.startsWith(baseUrl + '/')) {
    return url.slice(baseUrl.length + 1);
  }
  return url.replace(/^\/+/, '');
}

// -- transaction ----------------------------------------------------------------------------------

class EntryFailure extends Error {
  constructor(index, status, outcome) {
    super(`entry ${index} failed with ${status}`);
    this.index = index;
    this.status = status;
    this.outcome = outcome;
  }
}

async function transaction(entries, context) {
  const { repo } = context;
  const savepoint = repo.savepoint();
  try {
    return await runTransaction(entries, context);
  } catch (err) {
    repo.rollback(savepoint);
    if (err instanceof EntryFailure) {
      throw new OperationOutcomeError(describeFailure(err));
    }
    const outcome = normalizeOperationOutcome(err);
    if (!(err instanceof OperationOutcomeError)) {
      console.error('dev-fhir: unexpected error in transaction:', err);
    }
    throw new OperationOutcomeError(outcome);
  }
}

/** The failing entry's outcome, each issue prefixed with where it happened. Keeps its HTTP status. */
function describeFailure({ index, outcome }) {
  const where = `Bundle.entry[${index}]`;
  return {
    ...outcome,
    issue: (outcome.issue ?? []).map((issue) => ({
      ...issue,
      details: { ...issue.details, text: `${where}: ${issue.details?.text ?? issue.diagnostics ?? issue.code}` },
      // "Observation.status" inside entry 3 is "Bundle.entry[3].resource.status".
      expression: (issue.expression ?? [where]).map((e) =>
        e.startsWith('Bundle.') ? e : `${where}.resource${e.replace(/^[A-Z][A-Za-z]*/, '')}`
      ),
    })),
  };
}

async function runTransaction(entries, context) {
  const { repo } = context;
  const order = [...entries.keys()].sort(
    (a, b) => PHASE[entries[a].request.method] - PHASE[entries[b].request.method] || a - b
  );
  const responses = new Array(entries.length);
  const plans = new Array(entries.length);
  const identities = new Map(); // fullUrl -> "Type/id"

  // 1. DELETEs first, so that conditional matches below see their effect.
  for (const i of order.filter((i) => entries[i].request.method === 'DELETE')) {
    responses[i] = await runDispatched(i, entries[i], context);
  }

  // 2. Decide every POST's and PUT's identity before writing anything.
  const conditionalCreates = new Map(); // "Type?query" -> plan, so a bundle creates a match once
  for (const i of order) {
    const entry = entries[i];
    const { method } = entry.request;
    if (method === 'POST') {
      plans[i] = await planCreate(i, entry, context, conditionalCreates);
    } else if (method === 'PUT') {
      plans[i] = await planUpdate(i, entry, context);
    } else {
      continue;
    }
    if (entry.fullUrl) {
      identities.set(entry.fullUrl, `${plans[i].resourceType}/${plans[i].id}`);
    }
  }

  // 3. Rewrite urn:uuid and conditional references, then run the rest in order.
  for (const i of order) {
    const entry = entries[i];
    const { method } = entry.request;
    if (method === 'DELETE') {
      continue;
    }
    if (method === 'POST' || method === 'PUT') {
      const resource = await resolveReferences(i, structuredClone(entry.resource), identities, context);
      responses[i] = await runWrite(i, entry, plans[i], resource, context);
    } else {
      const url = identities.get(entry.request.url) ?? entry.request.url;
      responses[i] = await runDispatched(i, entry, context, url);
    }
  }
  return { entry: responses };
}

function entryType(i, entry, context) {
  const url = relativeUrl(entry.request.url, context.baseUrl);
  const type = url.split(/[/?]/)[0];
  if (!isResourceType(type)) {
    throw new EntryFailure(i, 400, badRequest(`Unknown resource type "${type}" in request.url`));
  }
  if (entry.resource.resourceType !== type) {
    throw new EntryFailure(
      i,
      400,
      badRequest(`resource.resourceType "${entry.resource.resourceType}" does not match request.url "${entry.request.url}"`)
    );
  }
  return { type, url };
}

/** Finds the resources matching a conditional URL ("Type?query"); never more than 2. */
async function conditionalMatches(i, type, query, { repo }) {
  let search;
  try {
    search = parseSearchRequest(`${type}?${query}`);
  } catch (err) {
    throw new EntryFailure(i, 400, normalizeOperationOutcome(err));
  }
  if (!search.filters?.length) {
    throw new EntryFailure(i, 400, badRequest(`Conditional URL "${type}?${query}" has no search criteria`));
  }
  const matches = await repo.searchResources({ ...search, count: 2, sortRules: undefined });
  if (matches.length > 1) {
    throw new EntryFailure(i, 412, multipleMatches);
  }
  return matches;
}

async function planCreate(i, entry, context, conditionalCreates) {
  const { type } = entryType(i, entry, context);
  const ifNoneExist = entry.request.ifNoneExist;
  if (ifNoneExist) {
    const key = `${type}?${ifNoneExist}`;
    if (conditionalCreates.has(key)) {
      return { ...conditionalCreates.get(key), duplicate: true };
    }
    const [match] = await conditionalMatches(i, type, ifNoneExist.replace(/^.*\?/, ''), context);
    const plan = match
      ? { kind: 'exists', resourceType: type, id: match.id }
      : { kind: 'create', resourceType: type, id: context.repo.generateId() };
    conditionalCreates.set(key, plan);
    return plan;
  }
  return { kind: 'create', resourceType: type, id: context.repo.generateId() };
}

async function planUpdate(i, entry, context) {
  const { type, url } = entryType(i, entry, context);
  const queryStart = url.indexOf('?');
  if (queryStart >= 0) {
    const [match] = await conditionalMatches(i, type, url.slice(queryStart + 1), context);
    if (match && entry.resource.id && entry.resource.id !== match.id) {
      throw new EntryFailure(i, 400, badRequest('Resource id does not match the resource found by the conditional URL'));
    }
    return { kind: 'put', resourceType: type, id: match?.id ?? entry.resource.id ?? context.repo.generateId() };
  }
  const id = url.split('/')[1];
  if (!id || url.split('/').length !== 2) {
    throw new EntryFailure(i, 400, badRequest(`PUT request.url must be "Type/id" or "Type?criteria" (got "${url}")`));
  }
  if (entry.resource.id !== undefined && entry.resource.id !== id) {
    throw new EntryFailure(i, 400, badRequest(`Resource id "${entry.resource.id}" does not match request.url "${url}"`));
  }
  return { kind: 'put', resourceType: type, id };
}

/** Rewrites every Reference.reference that names another entry's fullUrl or a search. */
async function resolveReferences(i, resource, identities, context) {
  const pending = [];
  const visit = (node) => {
    if (Array.isArray(node)) {
      node.forEach(visit);
    } else if (node && typeof node === 'object') {
      if (typeof node.reference === 'string') {
        pending.push(node);
      }
      Object.values(node).forEach(visit);
    }
  };
  visit(resource);
  for (const node of pending) {
    const ref = node.reference;
    if (identities.has(ref)) {
      node.reference = identities.get(ref);
    } else if (ref.startsWith('urn:uuid:') || ref.startsWith('urn:oid:')) {
      throw new EntryFailure(i, 400, badRequest(`Reference "${ref}" does not match the fullUrl of any entry`));
    } else if (/^[A-Z][A-Za-z]+\?/.test(ref)) {
      const type = ref.slice(0, ref.indexOf('?'));
      const matches = await conditionalMatches(i, type, ref.slice(ref.indexOf('?') + 1), context);
      if (matches.length === 0) {
        throw new EntryFailure(i, 400, badRequest(`Conditional reference "${ref}" matches no resource`));
      }
      node.reference = `${type}/${matches[0].id}`;
    }
  }
  return resource;
}

async function runWrite(i, entry, plan, resource, context) {
  const { repo, fhir } = context;
  if (plan.kind === 'exists' || plan.duplicate) {
    const existing = await repo.readResource(plan.resourceType, plan.id);
    return entryResponse('POST', { status: 200, resource: existing }, context);
  }
  if (plan.kind === 'create') {
    try {
      const stored = await repo.createResource({ ...resource, id: plan.id }, { assignedId: true });
      return entryResponse('POST', { status: 201, resource: stored }, context);
    } catch (err) {
      const outcome = normalizeOperationOutcome(err);
      throw new EntryFailure(i, getStatus(outcome), outcome);
    }
  }
  const url = `${plan.resourceType}/${plan.id}`;
  const result = await fhir.dispatch(entryRequest(entry, context, url, { ...resource, id: plan.id }));
  if (result.status >= 400) {
    throw new EntryFailure(i, result.status, result.outcome);
  }
  return entryResponse('PUT', result, context);
}

async function runDispatched(i, entry, context, url = entry.request.url) {
  const result = await context.fhir.dispatch(entryRequest(entry, context, url));
  if (result.status >= 400) {
    throw new EntryFailure(i, result.status, result.outcome);
  }
  return entryResponse(entry.request.method, result, context);
}

// -- responses ------------------------------------------------------------------------------------

function statusLine(status) {
  return `${status} ${REASONS[status] ?? ''}`.trim();
}

/** A response entry: status, and for a stored resource its location, ETag and lastModified. */
function entryResponse(method, { status, resource, outcome }, { baseUrl, representation }) {
  const response = { status: statusLine(status) };
  const versioned = resource?.id && resource.meta?.versionId && !['GET', 'HEAD'].includes(method);
  if (versioned) {
    response.location = `${resource.resourceType}/${resource.id}/_history/${resource.meta.versionId}`;
    response.etag = `W/"${resource.meta.versionId}"`;
    response.lastModified = resource.meta.lastUpdated;
  } else if (method === 'DELETE' && outcome) {
    response.outcome = outcome;
  }
  const withResource = method === 'GET' || (method !== 'HEAD' && representation && resource);
  return {
    ...(resource?.id && resource.resourceType && versioned
      ? { fullUrl: `${baseUrl}/${resource.resourceType}/${resource.id}` }
      : {}),
    ...(withResource && resource ? { resource } : {}),
    response,
  };
}

