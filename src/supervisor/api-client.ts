/**
 * The CLI's client of a node's admin API (admin/server.ts): where it listens and its token
 * come from the same configuration file the node runs with (config `api`), so
 * `spindle status --config FILE` needs nothing else. Failures are sorted into what the
 * exit codes distinguish: unreachable (EXIT.unreachable), timed out (EXIT.timeout), or an
 * HTTP answer the caller judges.
 */
import type { ApiConfig } from '../shared/config-types.ts';

export class ApiUnreachable extends Error {
  override readonly name = 'ApiUnreachable';
}

export class ApiTimeout extends Error {
  override readonly name = 'ApiTimeout';
}

export interface ApiResponse<T = unknown> {
  readonly status: number;
  readonly body: T;
}

/** An error body of the API (`{ error: { code, message, field } }`). */
export interface ApiErrorBody {
  error: { code: string; message: string; field?: string };
}

export function isApiError(body: unknown): body is ApiErrorBody {
  return typeof body === 'object' && body !== null && typeof (body as ApiErrorBody).error?.message === 'string';
}

/** The address to connect to for a listen address: a wildcard means this host. */
export function connectHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::' || host === '0:0:0:0:0:0:0:0') return '::1';
  return host;
}

export class ApiClient {
  readonly baseUrl: string;
  readonly #token: string | undefined;
  readonly #timeoutMs: number;

  constructor(api: ApiConfig, timeoutMs: number) {
    const host = connectHost(api.listen.host);
    this.baseUrl = `http://${host.includes(':') ? `[${host}]` : host}:${api.listen.port}`;
    this.#token = api.token;
    this.#timeoutMs = timeoutMs;
  }

  get<T>(path: string): Promise<ApiResponse<T>> {
    return this.#send<T>('GET', path, undefined);
  }

  post<T>(path: string, body: unknown = {}): Promise<ApiResponse<T>> {
    return this.#send<T>('POST', path, body);
  }

  put<T>(path: string, body: unknown): Promise<ApiResponse<T>> {
    return this.#send<T>('PUT', path, body);
  }

  async #send<T>(method: string, path: string, body: unknown): Promise<ApiResponse<T>> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.#token !== undefined) headers['authorization'] = `Bearer ${this.#token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      if (e.name === 'TimeoutError' || e.name === 'AbortError') throw new ApiTimeout(`${this.baseUrl}: no answer within ${this.#timeoutMs / 1000}s`);
      throw new ApiUnreachable(`${this.baseUrl}: ${e.cause?.code ?? e.cause?.message ?? e.message} (is spindle serving with this configuration's api section?)`);
    }
    const text = await res.text();
    let parsed: unknown = text;
    if ((res.headers.get('content-type') ?? '').includes('json')) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    return { status: res.status, body: parsed as T };
  }
}
