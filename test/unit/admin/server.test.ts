/**
 * The admin API's HTTP layer over a fake node (fastify inject, no socket): the route
 * table, the token check, validation that names the field before any handler runs, JSON
 * errors, and the README's API reference listing exactly the routes.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { bearerMatches, buildAdminApp } from '../../../src/supervisor/admin/server.ts';
import { ROUTES } from '../../../src/supervisor/admin/routes.ts';
import type { AdminHost } from '../../../src/supervisor/admin/node-admin.ts';
import type { PortGroupView, SessionView } from '../../../src/supervisor/admin/views.ts';
import { ApiError } from '../../../src/supervisor/admin/errors.ts';
import { README_PATH } from '../../../src/supervisor/config/docs.ts';

const TOKEN = 'unit-test-token-0123456789';

function fakeHost(calls: string[]): AdminHost {
  const group: PortGroupView = { group: 1, node: 'n', portals: ['127.0.0.1:3260'], state: 'active-optimized' };
  return {
    health: () => ({ status: 'ok', node: 'n', version: '1.2.3', uptimeSec: 1 }),
    readiness: () => ({ ready: false, checks: [{ name: 'started', ok: false, detail: 'starting' }] }),
    status: () => Promise.reject(new Error('disk on fire')),
    targets: () => Promise.resolve([]),
    luns: () => Promise.resolve([]),
    sessions: () => Promise.resolve([{ tsih: 9, phase: 'full-feature' } as SessionView]),
    portGroups: () => [group],
    reload: () => Promise.resolve({ outcome: 'refused', problems: [{ path: 'workers', message: 'changed' }] }),
    logoutSession: (tsih, t2w) => {
      calls.push(`logout ${tsih} ${t2w}`);
      return Promise.resolve(tsih === 9);
    },
    closeSession: (tsih, reason) => {
      calls.push(`close ${tsih} ${reason}`);
      return Promise.resolve(tsih === 9);
    },
    setPortGroupState: (g, state) => {
      calls.push(`alua ${g} ${state}`);
      if (g !== 1) return Promise.reject(new ApiError(404, 'ERR_API_NOT_FOUND', 'no group', 'group'));
      return Promise.resolve({ ...group, state });
    },
    metrics: () => Promise.resolve('spindle_ready 0\n'),
    metricsContentType: 'text/plain; version=0.0.4; charset=utf-8',
    close: () => {},
  };
}

function app(token?: string) {
  const calls: string[] = [];
  return { calls, app: buildAdminApp(fakeHost(calls), token === undefined ? {} : { token }) };
}

describe('bearer token', () => {
  it('matches exactly the token, in the Bearer scheme', () => {
    expect(bearerMatches(`Bearer ${TOKEN}`, TOKEN)).toBe(true);
    expect(bearerMatches(`bearer ${TOKEN}`, TOKEN)).toBe(true);
    expect(bearerMatches(`Bearer ${TOKEN}x`, TOKEN)).toBe(false);
    expect(bearerMatches(`Basic ${TOKEN}`, TOKEN)).toBe(false);
    expect(bearerMatches(undefined, TOKEN)).toBe(false);
    expect(bearerMatches('Bearer ', TOKEN)).toBe(false);
  });
});

describe('admin API routes', () => {
  it('serves readiness as 503 while not ready, health and OpenAPI without the token', async () => {
    const { app: a } = app(TOKEN);
    expect((await a.inject({ method: 'GET', url: '/api/v1/health' })).statusCode).toBe(200);
    const ready = await a.inject({ method: 'GET', url: '/api/v1/ready' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json()).toMatchObject({ ready: false });
    expect((await a.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json().info.version).toBe('1.2.3');
  });

  it('requires the token on every other route when one is configured, and none without', async () => {
    const { app: a, calls } = app(TOKEN);
    for (const r of ROUTES.filter((x) => x.public !== true)) {
      const url = r.path.replace(':name', 'x').replace(':id', '9').replace(':group', '1');
      const res = await a.inject({ method: r.method, url, ...(r.method === 'GET' ? {} : { payload: {} }) });
      expect(res.statusCode, `${r.method} ${url}`).toBe(401);
    }
    expect(calls).toEqual([]);
    const open = app();
    expect((await open.app.inject({ method: 'GET', url: '/metrics' })).body).toBe('spindle_ready 0\n');
  });

  it('validates before acting: the error names the field, the host is never called', async () => {
    const { app: a, calls } = app();
    const bad = [
      { method: 'PUT', url: '/api/v1/port-groups/1', payload: { state: 'nope' }, field: 'state' },
      { method: 'PUT', url: '/api/v1/port-groups/1', payload: { state: 'standby', force: true }, field: 'force' },
      { method: 'PUT', url: '/api/v1/port-groups/x', payload: { state: 'standby' }, field: 'group' },
      { method: 'POST', url: '/api/v1/sessions/9/logout', payload: { time2WaitSec: 'soon' }, field: 'time2WaitSec' },
      { method: 'POST', url: '/api/v1/sessions/9/logout', payload: { time2WaitSec: 3601 }, field: 'time2WaitSec' },
      { method: 'POST', url: '/api/v1/sessions/123456/logout', payload: {}, field: 'id' },
      { method: 'POST', url: '/api/v1/sessions/9/close', payload: [1], field: 'body' },
    ] as const;
    for (const b of bad) {
      const res = await a.inject({ method: b.method, url: b.url, payload: b.payload as object });
      expect(res.statusCode, b.url).toBe(400);
      expect(res.json().error).toMatchObject({ code: 'ERR_API_BAD_REQUEST', field: b.field });
    }
    expect(calls).toEqual([]);
  });

  it('acts, with defaults for what a request leaves out; 404 when the host finds nothing', async () => {
    const { app: a, calls } = app();
    const lo = await a.inject({ method: 'POST', url: '/api/v1/sessions/9/logout' });
    expect(lo.statusCode).toBe(202);
    expect(lo.json()).toEqual({ id: '9', logoutRequested: true, time2WaitSec: 2 });
    const close = await a.inject({ method: 'POST', url: '/api/v1/sessions/9/close', payload: { reason: 'maintenance' } });
    expect(close.json()).toEqual({ id: '9', closed: true });
    const none = await a.inject({ method: 'POST', url: '/api/v1/sessions/8/logout', payload: {} });
    expect(none.statusCode).toBe(404);
    expect(none.json().error.field).toBe('id');
    const put = await a.inject({ method: 'PUT', url: '/api/v1/port-groups/1', payload: { state: 'standby' } });
    expect(put.json()).toMatchObject({ group: 1, state: 'standby' });
    const missing = await a.inject({ method: 'PUT', url: '/api/v1/port-groups/2', payload: { state: 'standby' } });
    expect(missing.statusCode).toBe(404);
    expect(calls).toEqual(['logout 9 2', 'close 9 maintenance', 'logout 8 2', 'alua 1 standby', 'alua 2 standby']);
    expect((await a.inject({ method: 'GET', url: '/api/v1/sessions/9' })).json()).toMatchObject({ tsih: 9 });
    expect((await a.inject({ method: 'GET', url: '/api/v1/sessions/10' })).statusCode).toBe(404);
  });

  it('answers a refused reload with 422 and the report, a host failure with a JSON 500', async () => {
    const { app: a } = app();
    const r = await a.inject({ method: 'POST', url: '/api/v1/reload' });
    expect(r.statusCode).toBe(422);
    expect(r.json()).toEqual({ outcome: 'refused', problems: [{ path: 'workers', message: 'changed' }] });
    const s = await a.inject({ method: 'GET', url: '/api/v1/status' });
    expect(s.statusCode).toBe(500);
    expect(s.json().error).toEqual({ code: 'ERR_API_INTERNAL', message: 'disk on fire' });
  });

  it('is documented route by route in the README API reference', () => {
    const readme = readFileSync(README_PATH, 'utf8');
    const start = readme.indexOf('### Admin API');
    const section = readme.slice(start, readme.indexOf('\n### ', start + 5));
    const listed = [...section.matchAll(/^\| `(GET|POST|PUT) ([^`]+)`/gm)].map((m) => `${m[1]} ${m[2]}`);
    expect(listed.sort()).toEqual(ROUTES.map((r) => `${r.method} ${r.path}`).sort());
  });
});
