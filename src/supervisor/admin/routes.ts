/**
 * Every endpoint of the admin API, once: method, path, what it does, the JSON schemas of
 * its parameters and body (validated by the server before the handler runs), whether it
 * needs the token, and the handler over AdminHost. The server (server.ts) registers these
 * rows, the OpenAPI document (openapi.ts) is generated from them, and a unit test checks
 * that the README's API reference lists exactly them.
 */
import type { AluaStateText } from '../../shared/wire/admin-info.ts';
import type { AdminHost } from './node-admin.ts';
import { badRequest, notFound } from './errors.ts';
import { openApiDocument } from './openapi.ts';

export const API_PREFIX = '/api/v1';

/** A JSON schema (the subset these routes use). */
export type JsonSchema = Readonly<Record<string, unknown>>;

export interface RouteRequest {
  readonly params: Readonly<Record<string, string>>;
  readonly body: Readonly<Record<string, unknown>>;
}

/** A handler's answer: the JSON body, and the status when it is not 200. */
export interface RouteReply {
  readonly status?: number;
  readonly body: unknown;
  /** Plain text instead of JSON (the metrics exposition format). */
  readonly text?: { readonly contentType: string; readonly body: string };
}

export interface Route {
  readonly method: 'GET' | 'POST' | 'PUT';
  readonly path: string;
  readonly summary: string;
  /** Health and readiness answer without the token (kubelet probes carry no secret). */
  readonly public?: boolean;
  readonly params?: JsonSchema;
  readonly body?: JsonSchema;
  /** HTTP statuses this route answers with besides 200 and the error ones, for OpenAPI. */
  readonly statuses?: readonly number[];
  readonly handler: (host: AdminHost, req: RouteRequest) => Promise<RouteReply> | RouteReply;
}

const TSIH_PARAMS: JsonSchema = {
  type: 'object',
  properties: { id: { type: 'string', pattern: '^[0-9]{1,5}$', description: 'the session id (its TSIH, decimal)' } },
  required: ['id'],
  additionalProperties: false,
};

const ALUA_STATES: readonly AluaStateText[] = ['active-optimized', 'active-non-optimized', 'standby', 'unavailable', 'transitioning'];

/** The session id of a path: its TSIH, 1-65535 (RFC 7143 11.12.6: 0 is never a session's). */
function tsihOf(req: RouteRequest): number {
  const n = Number(req.params['id']);
  if (!Number.isInteger(n) || n < 1 || n > 0xffff) throw badRequest('id', `session id must be a TSIH 1-65535, got "${req.params['id']}"`);
  return n;
}

export const ROUTES: readonly Route[] = [
  {
    method: 'GET',
    path: `${API_PREFIX}/health`,
    summary: 'Liveness: the process answers (the kubelet liveness probe).',
    public: true,
    handler: (h) => ({ body: h.health() }),
  },
  {
    method: 'GET',
    path: `${API_PREFIX}/ready`,
    summary: 'Readiness: portals bound, workers alive, in a cluster the lease held and the node active. 503 while not ready.',
    public: true,
    statuses: [503],
    handler: (h) => {
      const r = h.readiness();
      return { status: r.ready ? 200 : 503, body: r };
    },
  },
  {
    method: 'GET',
    path: `${API_PREFIX}/status`,
    summary: 'The node at a glance: readiness, portals, workers, counts, long operations, cluster membership.',
    handler: async (h) => ({ body: await h.status() }),
  },
  {
    method: 'GET',
    path: `${API_PREFIX}/targets`,
    summary: 'Targets: portals, LUN maps, ACLs (without secrets), sessions on this node.',
    handler: async (h) => ({ body: await h.targets() }),
  },
  {
    method: 'GET',
    path: `${API_PREFIX}/luns`,
    summary: 'Logical units: size, settings, reservation holder and registrations, ALUA states, long operations with progress, counters.',
    handler: async (h) => ({ body: await h.luns() }),
  },
  {
    method: 'GET',
    path: `${API_PREFIX}/luns/:name`,
    summary: 'One logical unit, by device name.',
    params: { type: 'object', properties: { name: { type: 'string', minLength: 1, maxLength: 128 } }, required: ['name'], additionalProperties: false },
    handler: async (h, req) => {
      const lu = (await h.luns()).find((l) => l.name === req.params['name']);
      if (lu === undefined) throw notFound('name', `no device "${req.params['name']}"`);
      return { body: lu };
    },
  },
  {
    method: 'GET',
    path: `${API_PREFIX}/sessions`,
    summary: 'Connections and sessions: initiator, ISID, TSIH, portal, negotiated keys, digests, commands in flight, counters and rates.',
    handler: async (h) => ({ body: await h.sessions() }),
  },
  {
    method: 'GET',
    path: `${API_PREFIX}/sessions/:id`,
    summary: 'One session, by id (its TSIH).',
    params: TSIH_PARAMS,
    handler: async (h, req) => {
      const tsih = tsihOf(req);
      const s = (await h.sessions()).find((x) => x.tsih === tsih && x.phase !== 'login');
      if (s === undefined) throw notFound('id', `no session ${tsih} on this node`);
      return { body: s };
    },
  },
  {
    method: 'POST',
    path: `${API_PREFIX}/sessions/:id/logout`,
    summary: 'Ask the initiator to log out (iSCSI Async Message, RFC 7143 11.9.1); it may log in again after time2WaitSec. 202: asked.',
    params: TSIH_PARAMS,
    body: {
      type: 'object',
      properties: { time2WaitSec: { type: 'integer', minimum: 0, maximum: 3600, default: 2, description: 'Parameter3: seconds before the initiator may log in again' } },
      additionalProperties: false,
    },
    statuses: [202],
    handler: async (h, req) => {
      const tsih = tsihOf(req);
      const time2WaitSec = (req.body['time2WaitSec'] as number | undefined) ?? 2;
      if (!(await h.logoutSession(tsih, time2WaitSec))) throw notFound('id', `no session ${tsih} in full feature phase on this node`);
      return { status: 202, body: { id: String(tsih), logoutRequested: true, time2WaitSec } };
    },
  },
  {
    method: 'POST',
    path: `${API_PREFIX}/sessions/:id/close`,
    summary: 'Close the session\'s connection now (its commands in flight are lost to the initiator, which recovers as from a network cut).',
    params: TSIH_PARAMS,
    body: {
      type: 'object',
      properties: { reason: { type: 'string', minLength: 1, maxLength: 200, description: 'logged with the close' } },
      additionalProperties: false,
    },
    handler: async (h, req) => {
      const tsih = tsihOf(req);
      const reason = (req.body['reason'] as string | undefined) ?? 'closed through the admin API';
      if (!(await h.closeSession(tsih, reason))) throw notFound('id', `no session ${tsih} in full feature phase on this node`);
      return { body: { id: String(tsih), closed: true } };
    },
  },
  {
    method: 'GET',
    path: `${API_PREFIX}/port-groups`,
    summary: 'Target port groups (ALUA, SPC-4 5.16) with their portals and asymmetric access states.',
    handler: (h) => ({ body: h.portGroups() }),
  },
  {
    method: 'PUT',
    path: `${API_PREFIX}/port-groups/:group`,
    summary:
      'Set a port group\'s asymmetric access state. One node: like `aluaStates` in a reload, until the next reload. Cluster: an explicit state for every node, as SET TARGET PORT GROUPS.',
    params: { type: 'object', properties: { group: { type: 'string', pattern: '^[0-9]{1,5}$' } }, required: ['group'], additionalProperties: false },
    body: {
      type: 'object',
      properties: { state: { type: 'string', enum: ALUA_STATES } },
      required: ['state'],
      additionalProperties: false,
    },
    handler: async (h, req) => {
      const group = Number(req.params['group']);
      if (!Number.isInteger(group) || group < 1 || group > 0xffff) throw badRequest('group', `group must be 1-65535, got "${req.params['group']}"`);
      return { body: await h.setPortGroupState(group, req.body['state'] as AluaStateText) };
    },
  },
  {
    method: 'POST',
    path: `${API_PREFIX}/reload`,
    summary: 'Re-read the configuration file and apply the difference (as SIGHUP). 200: applied or unchanged; 422: refused (problems by field); 500: failed (nothing changed).',
    body: { type: 'object', properties: {}, additionalProperties: false },
    statuses: [422, 500],
    handler: async (h) => {
      const r = await h.reload();
      return { status: r.outcome === 'refused' ? 422 : r.outcome === 'failed' ? 500 : 200, body: r };
    },
  },
  {
    method: 'GET',
    path: '/metrics',
    summary: 'Prometheus metrics (text exposition format).',
    handler: async (h) => ({ body: null, text: { contentType: h.metricsContentType, body: await h.metrics() } }),
  },
  {
    method: 'GET',
    path: `${API_PREFIX}/openapi.json`,
    summary: 'This API as an OpenAPI 3.1 document (generated from these routes).',
    public: true,
    handler: (h) => ({ body: openApiDocument(ROUTES, h.health().version) }),
  },
];
