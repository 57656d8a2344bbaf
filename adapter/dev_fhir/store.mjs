// The dev server's store: Medplum's MemoryRepository with the behaviour a real FHIR server
// (HAPI) has and the adapter relies on:
//  * versions are integers ("1", "2", ...) and every write, deletes included, is kept in an
//    append-only history log (MemoryRepository keeps random version ids, records no deletes,
//    and its readHistory() reverses the stored array in place on every call);
//  * an update whose content did not change keeps its version and lastUpdated (like HAPI);
//  * every write is validated (structure + required code bindings, see definitions.mjs);
//  * savepoints: a transaction can be undone completely, by replaying the log backwards;
//  * the whole state can be dumped to / loaded from JSON (the `--data FILE` option).
//
// MemoryRepository's search (matching, includes, chained filters) works on `this.resources`,
// its own map of current resources; we keep that map in step with the log.

import {
  OperationOutcomeError,
  badRequest,
  deepClone,
  evalFhirPath,
  getSearchParameter,
  gone,
  matchesSearchRequest,
  notFound,
  Operator,
  preconditionFailed,
} from '@medplum/core';
import { MemoryRepository, getExtraEntries } from '@medplum/fhir-router';
import { validateForStorage } from './definitions.mjs';

const STORE_FORMAT = 'trialbridge-dev-fhir/1';

export class DevRepository extends MemoryRepository {
  /** Every write ever made, oldest first: { resourceType, id, versionId, lastUpdated, method, resource? }. */
  #log = [];
  /** "Type/id" -> that resource's entries in #log, oldest first. */
  #versions = new Map();
  /** "Type|system|value" -> ids of current resources with that identifier (see #indexedMatches). */
  #identifiers = new Map();
  /** Bumped on every change, so the server knows when to save. */
  generation = 0;

  clear() {
    super.clear();
    this.#log = [];
    this.#versions = new Map();
    this.#identifiers = new Map();
    this.generation++;
  }

  // -- writes ---------------------------------------------------------------------------------

  async createResource(resource, options) {
    const candidate = deepClone(resource);
    // Like HAPI, a plain create ignores a client id; transactions pass assignedId for the ids
    // they allocated up front so that urn:uuid references can be rewritten first.
    if (!options?.assignedId || !candidate.id) {
      candidate.id = this.generateId();
    }
    if (this.#versions.has(keyOf(candidate))) {
      throw new OperationOutcomeError(badRequest(`Assigned ID is already in use: ${keyOf(candidate)}`));
    }
    validateForStorage(candidate);
    return deepClone(this.#append(candidate, 'POST'));
  }

  async updateResource(resource, options) {
    if (!resource.id) {
      throw new OperationOutcomeError(badRequest('Missing id'));
    }
    const candidate = deepClone(resource);
    validateForStorage(candidate);
    const current = this.#current(candidate.resourceType, candidate.id);
    if (options?.ifMatch && current?.meta?.versionId !== options.ifMatch) {
      throw new OperationOutcomeError(preconditionFailed);
    }
    if (current && sameContent(current, candidate)) {
      return deepClone(current);
    }
    return deepClone(this.#append(candidate, 'PUT'));
  }

  async deleteResource(resourceType, id, options) {
    const current = this.#current(resourceType, id);
    if (!current) {
      if (this.#versions.has(`${resourceType}/${id}`)) {
        return; // already deleted: deleting again is a no-op, as in HAPI
      }
      throw new OperationOutcomeError(notFound);
    }
    if (options?.ifMatch && current.meta?.versionId !== options.ifMatch) {
      throw new OperationOutcomeError(preconditionFailed);
    }
    this.#append({ resourceType, id }, 'DELETE');
  }

  async conditionalCreate(resource, search, options) {
    // MemoryRepository's own version writes through a private path that would skip our
    // validation and versioning; the generic one in FhirRepository uses createResource().
    return Object.getPrototypeOf(MemoryRepository.prototype).conditionalCreate.call(this, resource, search, options);
  }

  async expungeResources() {
    throw new OperationOutcomeError(badRequest('$expunge is not supported by the dev server'));
  }

  // -- reads ----------------------------------------------------------------------------------

  /** True when the resource exists now (not deleted). */
  exists(resourceType, id) {
    return this.#current(resourceType, id) !== undefined;
  }

  async readResource(resourceType, id) {
    const current = this.#current(resourceType, id);
    if (!current) {
      throw new OperationOutcomeError(this.#versions.has(`${resourceType}/${id}`) ? gone : notFound);
    }
    return deepClone(current);
  }

  async readVersion(resourceType, id, versionId) {
    const versions = this.#versions.get(`${resourceType}/${id}`);
    const entry = versions?.find((v) => v.versionId === versionId);
    if (!entry) {
      throw new OperationOutcomeError(notFound);
    }
    if (!entry.resource) {
      throw new OperationOutcomeError(gone);
    }
    return deepClone(entry.resource);
  }

  /**
   * History entries, newest first. With `id`, one resource's; with only `resourceType`, a
   * type's; with neither, the whole server's. `since` is an instant (string), inclusive.
   */
  historyEntries({ resourceType, id, since } = {}) {
    let entries;
    if (id) {
      entries = this.#versions.get(`${resourceType}/${id}`);
      if (!entries) {
        throw new OperationOutcomeError(notFound);
      }
    } else {
      entries = resourceType ? this.#log.filter((e) => e.resourceType === resourceType) : this.#log;
    }
    const sinceMs = since ? Date.parse(since) : undefined;
    if (since && Number.isNaN(sinceMs)) {
      throw new OperationOutcomeError(badRequest(`Invalid _since: ${since}`));
    }
    return entries.filter((e) => sinceMs === undefined || Date.parse(e.lastUpdated) >= sinceMs).reverse();
  }

  async readHistory(resourceType, id) {
    return {
      resourceType: 'Bundle',
      type: 'history',
      entry: this.historyEntries({ resourceType, id }).map((e) => ({ resource: e.resource && deepClone(e.resource) })),
    };
  }

  /**
   * Search with the matching of MemoryRepository, but with a multi-key `_sort` that
   * understands dates (MemoryRepository sorts by the JSON text of each rule in turn, so the
   * last rule wins and time zones are ignored), and `total` counting all matches.
   */
  async search(searchRequest) {
    const { sortRules, offset = 0, count } = searchRequest;
    const filterOnly = {
      ...searchRequest,
      sortRules: undefined,
      offset: undefined,
      count: undefined,
      include: undefined,
      revInclude: undefined,
    };
    let entries = this.#indexedMatches(filterOnly) ?? this.searchSync(filterOnly).entry ?? [];
    if (sortRules?.length) {
      entries = sortEntries(entries, sortRules);
    }
    const total = entries.length;
    entries = entries.slice(offset, count === undefined ? undefined : offset + count);
    if ((searchRequest.include || searchRequest.revInclude) && entries.length > 0) {
      await getExtraEntries(
        this,
        searchRequest,
        entries.map((e) => e.resource),
        entries
      );
    }
    return { resourceType: 'Bundle', type: 'searchset', total, ...(entries.length ? { entry: entries } : {}) };
  }

  // -- transactions ---------------------------------------------------------------------------

  /** A point the store can be rolled back to. Cheap: the length of the log. */
  savepoint() {
    return this.#log.length;
  }

  /** Undoes every write made after `savepoint`, newest first. */
  rollback(savepoint) {
    while (this.#log.length > savepoint) {
      const entry = this.#log.pop();
      const key = keyOf(entry);
      const versions = this.#versions.get(key);
      versions.pop();
      if (versions.length === 0) {
        this.#versions.delete(key);
        this.#setCurrent(entry.resourceType, entry.id, undefined);
      } else {
        this.#setCurrent(entry.resourceType, entry.id, versions.at(-1).resource);
      }
    }
    this.generation++;
  }

  // -- persistence ----------------------------------------------------------------------------

  /** The whole store as a JSON-able object (the log is the state). */
  dump() {
    return { format: STORE_FORMAT, log: this.#log };
  }

  /** Replaces the store with a dump() made earlier. */
  load(data) {
    if (data?.format !== STORE_FORMAT || !Array.isArray(data.log)) {
      throw new Error(`not a dev-fhir data file (expected format "${STORE_FORMAT}")`);
    }
    this.clear();
    for (const entry of data.log) {
      this.#log.push(entry);
      const key = keyOf(entry);
      const versions = this.#versions.get(key) ?? [];
      versions.push(entry);
      this.#versions.set(key, versions);
      this.#setCurrent(entry.resourceType, entry.id, entry.resource);
    }
  }

  // -- internals ------------------------------------------------------------------------------

  #current(resourceType, id) {
    return this.resources.get(resourceType)?.get(id);
  }

  #setCurrent(resourceType, id, resource) {
    let byId = this.resources.get(resourceType);
    if (!byId) {
      byId = new Map();
      this.resources.set(resourceType, byId);
    }
    for (const key of identifierKeys(byId.get(id))) {
      this.#identifiers.get(key)?.delete(id);
    }
    if (resource) {
      byId.set(id, resource);
      for (const key of identifierKeys(resource)) {
        const ids = this.#identifiers.get(key) ?? new Set();
        ids.add(id);
        this.#identifiers.set(key, ids);
      }
    } else {
      byId.delete(id);
    }
  }

  /**
   * Trimming made a scan ~30x cheaper, but every conditional update in a transaction still
   * scanned every resource of its type (~75 ms among 10,000 Observations). A search with an
   * exact `identifier=system|value` is answered from an index instead; the candidates still
   * go through Medplum's matcher for all filters, so results are the same as a scan.
   * Returns undefined when the search cannot use the index.
   */
  #indexedMatches(searchRequest) {
    const { resourceType, filters = [] } = searchRequest;
    // One token or several joined by "," (OR); escaped values (backslash) take the scan.
    const byIdentifier = filters.find(
      (f) =>
        f.code === 'identifier' &&
        f.operator === Operator.EQUALS &&
        /^[^|,\\]+\|[^|,\\]+(,[^|,\\]+\|[^|,\\]+)*$/.test(f.value)
    );
    // Or one literal subject reference (`subject=Patient/123`): the report's per-subject reads.
    const bySubject = filters.find(
      (f) => f.code === 'subject' && f.operator === Operator.EQUALS && /^[A-Za-z]+\/[A-Za-z0-9\-.]+$/.test(f.value)
    );
    if (
      !(byIdentifier || bySubject) ||
      filters.some((f) => f.code.includes('.') || f.code.startsWith('_has')) ||
      (byIdentifier &&
        getSearchParameter(resourceType, 'identifier')?.expression !== `${resourceType}.identifier`) ||
      (!byIdentifier && getSearchParameter(resourceType, 'subject')?.expression !== `${resourceType}.subject`)
    ) {
      return undefined;
    }
    const byId = this.resources.get(resourceType);
    const tokens = byIdentifier ? byIdentifier.value.split(',') : [`subject|${bySubject.value}`];
    const ids = new Set(tokens.flatMap((token) => [...(this.#identifiers.get(`${resourceType}|${token}`) ?? [])]));
    return [...ids]
      .map((id) => byId.get(id))
      .filter((resource) => matchesSearchRequest(resource, searchRequest))
      .map((resource) => ({ search: { mode: 'match' }, resource: deepClone(resource) }));
  }

  /** Appends a new version (or a deletion when method is DELETE) and returns the stored resource. */
  #append(resource, method) {
    const { resourceType, id } = resource;
    const key = keyOf(resource);
    const versions = this.#versions.get(key) ?? [];
    const versionId = String(versions.length > 0 ? Number(versions.at(-1).versionId) + 1 : 1);
    const lastUpdated = new Date().toISOString();
    let stored;
    if (method !== 'DELETE') {
      const meta = { ...resource.meta, versionId, lastUpdated };
      stored = { ...resource, meta };
    }
    const entry = { resourceType, id, versionId, lastUpdated, method, ...(stored ? { resource: stored } : {}) };
    this.#log.push(entry);
    versions.push(entry);
    this.#versions.set(key, versions);
    this.#setCurrent(resourceType, id, stored);
    this.generation++;
    return stored;
  }
}

/**
 * Index keys of a resource: "Type|system|value" for its top-level identifiers, and
 * "Type|subject|Patient/id" for its subject (the last "Type/id" of the reference, so an
 * absolute reference is indexed too).
 */
function identifierKeys(resource) {
  const identifiers = Array.isArray(resource?.identifier) ? resource.identifier : [];
  const keys = identifiers
    .filter((i) => i?.system && i.value)
    .map((i) => `${resource.resourceType}|${i.system}|${i.value}`);
  const subject = /([A-Za-z]+\/[A-Za-z0-9\-.]+)$/.exec(resource?.subject?.reference ?? '');
  if (subject) {
    keys.push(`${resource.resourceType}|subject|${subject[1]}`);
  }
  return keys;
}

function keyOf(resource) {
  return `${resource.resourceType}/${resource.id}`;
}

/** Compares two resources ignoring meta.versionId and meta.lastUpdated, and key order. */
function sameContent(a, b) {
  return canonical(withoutVersion(a)) === canonical(withoutVersion(b));
}

function withoutVersion(resource) {
  const { meta, ...rest } = resource;
  const { versionId: _v, lastUpdated: _l, ...otherMeta } = meta ?? {};
  return Object.keys(otherMeta).length > 0 ? { ...rest, meta: otherMeta } : rest;
}

function canonical(value) {
  if (Array.isArray(value)) {
    return `[${value.map(canonical).join(',')}]`;
  }
  if (value && typeof value === 'object') {
    const keys = Object.keys(value)
      .filter((k) => value[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

// -- sorting ------------------------------------------------------------------------------------

function sortEntries(entries, sortRules) {
  const keyed = entries.map((entry) => ({
    entry,
    keys: sortRules.map((rule) => sortKey(entry.resource, rule)),
  }));
  keyed.sort((a, b) => {
    for (let i = 0; i < sortRules.length; i++) {
      const order = compareKeys(a.keys[i], b.keys[i], sortRules[i].descending);
      if (order !== 0) {
        return order;
      }
    }
    return 0;
  });
  return keyed.map((k) => k.entry);
}

/** Missing values sort last in both directions. */
function compareKeys(a, b, descending) {
  if (a === undefined || b === undefined) {
    return a === b ? 0 : a === undefined ? 1 : -1;
  }
  const order = typeof a === 'number' && typeof b === 'number' ? a - b : String(a).localeCompare(String(b));
  return descending ? -order : order;
}

/** One sortable value per resource: per the spec, the lowest value ascending, the highest descending. */
function sortKey(resource, rule) {
  const param = getSearchParameter(resource.resourceType, rule.code);
  if (!param?.expression) {
    return undefined;
  }
  const values = evalFhirPath(param.expression, resource)
    .flatMap((value) => sortValues(value, param.type))
    .filter((v) => v !== undefined);
  if (values.length === 0) {
    return undefined;
  }
  values.sort((a, b) => compareKeys(a, b, false));
  return rule.descending ? values.at(-1) : values[0];
}

function sortValues(value, type) {
  if (value === undefined || value === null) {
    return [];
  }
  if (type === 'date') {
    if (typeof value === 'string') {
      return [instant(value)];
    }
    return [instant(value.start ?? value.end)]; // Period (or Timing-like objects)
  }
  if (typeof value !== 'object') {
    return [value];
  }
  if (value.coding) {
    return value.coding.map((c) => c.code);
  }
  if ('code' in value || 'value' in value) {
    return [value.code ?? value.value];
  }
  if ('reference' in value) {
    return [value.reference];
  }
  if ('family' in value || 'given' in value) {
    return [[value.family, ...(value.given ?? [])].filter(Boolean).join(' ')];
  }
  return [JSON.stringify(value)];
}

function instant(text) {
  if (typeof text !== 'string') {
    return undefined;
  }
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? text : ms;
}

