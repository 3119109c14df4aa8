/**
 * The admin API as an OpenAPI 3.1 document, generated from the route table (routes.ts) so
 * it cannot drift from what the server validates and serves.
 */

/**
 * What the document needs of a route (routes.ts `Route` is one): declared here rather
 * than imported, since routes.ts serves this document and would otherwise import its
 * own importer.
 */
export interface DocumentedRoute {
  readonly method: string;
  readonly path: string;
  readonly summary: string;
  readonly public?: boolean;
  readonly params?: Readonly<Record<string, unknown>>;
  readonly body?: Readonly<Record<string, unknown>>;
  readonly statuses?: readonly number[];
}

const ERROR_SCHEMA = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: { code: { type: 'string' }, message: { type: 'string' }, field: { type: 'string' } },
      required: ['code', 'message'],
    },
  },
  required: ['error'],
} as const;

/** `/api/v1/luns/:name` -> `/api/v1/luns/{name}`. */
function openApiPath(path: string): string {
  return path.replace(/:([A-Za-z]+)/g, '{$1}');
}

export function openApiDocument(routes: readonly DocumentedRoute[], version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const params = r.params as { properties?: Record<string, Record<string, unknown>> } | undefined;
    const responses: Record<string, unknown> = {
      '200': r.path === '/metrics' ? { description: 'OK', content: { 'text/plain': { schema: { type: 'string' } } } } : { description: 'OK', content: { 'application/json': { schema: { type: 'object' } } } },
    };
    for (const s of r.statuses ?? []) responses[String(s)] = { description: s === 202 ? 'Accepted' : 'see the summary', content: { 'application/json': { schema: { type: 'object' } } } };
    if (r.params !== undefined || r.body !== undefined) responses['400'] = { description: 'Bad request: the error names the field', content: { 'application/json': { schema: ERROR_SCHEMA } } };
    if (r.public !== true) responses['401'] = { description: 'Missing or wrong bearer token', content: { 'application/json': { schema: ERROR_SCHEMA } } };
    if (r.params !== undefined) responses['404'] = { description: 'Not found', content: { 'application/json': { schema: ERROR_SCHEMA } } };
    (paths[openApiPath(r.path)] ??= {})[r.method.toLowerCase()] = {
      summary: r.summary,
      ...(r.public === true ? { security: [] } : {}),
      ...(params?.properties === undefined
        ? {}
        : { parameters: Object.entries(params.properties).map(([name, schema]) => ({ name, in: 'path', required: true, schema })) }),
      ...(r.body === undefined ? {} : { requestBody: { required: false, content: { 'application/json': { schema: r.body } } } }),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'spindle admin API', version },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    security: [{ bearer: [] }],
    paths,
  };
}
