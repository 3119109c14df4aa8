/**
 * The admin HTTP API of one node (fastify): the route table (routes.ts) over an AdminHost
 * (node-admin.ts), on the address of config `api.listen`.
 *
 * Why fastify rather than node:http: the API needs routing with path parameters, JSON
 * body parsing with a size limit and content-type checks, schema validation that names
 * the offending field, and an OpenAPI document; fastify does each of these from the one
 * route table (JSON schemas validated by ajv) where node:http would need all of them
 * written and tested by hand. It is loaded only when the `api` section is present.
 *
 * Security: bound to loopback by default. A token (config `api.tokenFile`/`tokenEnv`),
 * required by the configuration off loopback, must then come with every request as
 * `Authorization: Bearer TOKEN`, except health, readiness and the OpenAPI document,
 * which kubelet probes reach without secrets and which reveal nothing. The comparison is
 * constant-time (over SHA-256 digests, so the lengths do not leak either).
 *
 * Errors are JSON: `{ "error": { "code", "message", "field" } }`, 4xx for requests that
 * are wrong (the field named), 5xx for the node's own failures. Validation runs before
 * any handler, so a bad request changes nothing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import type { Logger } from '../../shared/logging.ts';
import type { ApiConfig } from '../../shared/config-types.ts';
import { errorMessage } from '../../shared/control/errors.ts';
import { displayPortal } from '../config/portals.ts';
import { ApiError, ApiErrorCode } from './errors.ts';
import type { AdminHost } from './node-admin.ts';
import { ROUTES, type RouteRequest } from './routes.ts';
import type { ErrorView } from './views.ts';

const BODY_LIMIT = 64 * 1024;

export interface AdminServer {
  /** "host:port" actually bound (port 0 in the config picks one). */
  readonly address: string;
  readonly port: number;
  close(): Promise<void>;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Whether the Authorization header carries `token` (constant time). */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  const given = m?.[1] ?? '';
  return timingSafeEqual(digest(given), digest(token)) && given !== '';
}

function errorBody(code: string, message: string, field?: string): ErrorView {
  return { error: { code, message, ...(field === undefined ? {} : { field }) } };
}

/**
 * The field a fastify/ajv validation error is about: the missing or unknown property, or
 * the path of the bad value, prefixed with where it was (body, params).
 */
function validationField(err: FastifyError): string | undefined {
  const v = err.validation?.[0];
  if (v === undefined) return undefined;
  const params = v.params as { missingProperty?: string; additionalProperty?: string };
  const inner = params.missingProperty ?? params.additionalProperty ?? v.instancePath.replace(/^\//, '').replaceAll('/', '.');
  const where = err.validationContext ?? 'body';
  return inner === '' ? where : inner;
}

/** Build the fastify instance (not listening): tests use inject(). */
export function buildAdminApp(host: AdminHost, opts: { token?: string; log?: Logger }): FastifyInstance {
  const app = Fastify({
    logger: false,
    bodyLimit: BODY_LIMIT,
    // Unknown body fields are errors (never silently dropped), and types are not coerced:
    // a request that is not exactly right is refused before anything happens.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: true, allErrors: false } },
    return503OnClosing: true,
  });
  const token = opts.token;
  const log = opts.log;

  // A POST without a body is an empty object (curl -X POST ...), not a validation error.
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: BODY_LIMIT }, (_req, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') {
      done(null, {});
      return;
    }
    try {
      done(null, JSON.parse(text));
    } catch (err) {
      done(new ApiError(400, ApiErrorCode.BAD_REQUEST, `the body is not JSON: ${errorMessage(err)}`, 'body'), undefined);
    }
  });

  app.setErrorHandler((err: FastifyError | ApiError, _req, reply) => {
    if (err instanceof ApiError) {
      void reply.code(err.status).send(errorBody(err.code, err.message, err.field));
      return;
    }
    if (err.validation !== undefined) {
      const field = validationField(err);
      const where = err.validationContext ?? 'body';
      const at = field === undefined || field === where ? where : `${where}.${field}`;
      void reply.code(400).send(errorBody(ApiErrorCode.BAD_REQUEST, `${at}: ${err.validation[0]?.message ?? err.message}`, field));
      return;
    }
    const status = err.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      // fastify's own 4xx: unsupported media type, body too large, bad JSON.
      void reply.code(status).send(errorBody(ApiErrorCode.BAD_REQUEST, err.message, 'body'));
      return;
    }
    log?.error({ err: errorMessage(err) }, 'admin API: request failed');
    void reply.code(500).send(errorBody(ApiErrorCode.INTERNAL, errorMessage(err)));
  });

  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(errorBody(ApiErrorCode.NOT_FOUND, `no such endpoint: ${req.method} ${req.url.split('?')[0]} (see GET /api/v1/openapi.json)`));
  });

  for (const route of ROUTES) {
    app.route({
      method: route.method,
      url: route.path,
      schema: {
        ...(route.params === undefined ? {} : { params: route.params }),
        ...(route.body === undefined ? {} : { body: route.body }),
      },
      onRequest: (req, reply, done) => {
        if (token !== undefined && route.public !== true && !bearerMatches(req.headers.authorization, token)) {
          void reply
            .code(401)
            .header('www-authenticate', 'Bearer realm="spindle"')
            .send(errorBody(ApiErrorCode.UNAUTHORIZED, 'this endpoint needs the API token: Authorization: Bearer TOKEN (config api.tokenFile or api.tokenEnv)'));
          return;
        }
        done();
      },
      // A POST without a body (curl -X POST URL) means "no options": validated as {}.
      preValidation: (req, _reply, done) => {
        if (route.body !== undefined && (req.body === undefined || req.body === null)) req.body = {};
        done();
      },
      handler: async (req, reply) => {
        const request: RouteRequest = {
          params: (req.params ?? {}) as Record<string, string>,
          body: (req.body ?? {}) as Record<string, unknown>,
        };
        const r = await route.handler(host, request);
        if (route.method !== 'GET') log?.info({ method: route.method, url: req.url, status: r.status ?? 200 }, 'admin API action');
        if (r.text !== undefined) return reply.code(r.status ?? 200).header('content-type', r.text.contentType).send(r.text.body);
        return reply.code(r.status ?? 200).send(r.body);
      },
    });
  }
  return app;
}

/** Start the API on `config.listen`; rejects when the address cannot be bound. */
export async function startAdminServer(host: AdminHost, config: ApiConfig, log: Logger): Promise<AdminServer> {
  const app = buildAdminApp(host, { ...(config.token === undefined ? {} : { token: config.token }), log });
  try {
    await app.listen({ host: config.listen.host, port: config.listen.port });
  } catch (err) {
    await app.close().catch(() => undefined);
    throw new Error(`admin API: cannot listen on ${displayPortal(config.listen)}: ${errorMessage(err)}`, { cause: err });
  }
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : config.listen.port;
  const address = displayPortal({ host: config.listen.host, port });
  log.info({ api: address, auth: config.token === undefined ? 'none (loopback)' : 'bearer token' }, `admin API listening on http://${address}/api/v1`);
  return { address, port, close: () => app.close() };
}
