/**
 * Portals as the configuration writes them: "host:port", "[ipv6]:port", or a host alone.
 */

import net from 'node:net';
import type { PortalConfig } from '../../shared/config-types.ts';

/** Default iSCSI port (RFC 7143 section 13: the IANA well-known port). */
export const ISCSI_PORT = 3260;

const HOSTNAME_RE =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * Parses "host:port" or "[ipv6]:port"; without ":port" the port is 3260.
 * Returns the portal or a message.
 */
export function parsePortal(text: string): PortalConfig | string {
  const usage = 'portal must be "host:port", e.g. "127.0.0.1:3260" or "[::1]:3260"';
  const s = text.trim();
  let host: string;
  let portText: string | undefined;
  if (s.startsWith('[')) {
    const m = /^\[([^\]]*)\](?::(.*))?$/.exec(s);
    if (m === null) return usage;
    host = m[1] ?? '';
    portText = m[2];
    if (!net.isIPv6(host)) return `${JSON.stringify(host)} in brackets is not an IPv6 address`;
  } else {
    // A bare IPv6 address is refused even without a port: "::1:3260" is itself a valid
    // address, so the operator's intent cannot be told apart.
    const colon = s.lastIndexOf(':');
    if (colon >= 0 && s.indexOf(':') !== colon) {
      return `IPv6 addresses must be in brackets, e.g. "[::1]:3260" or "[::1]"`;
    }
    host = colon >= 0 ? s.slice(0, colon) : s;
    portText = colon >= 0 ? s.slice(colon + 1) : undefined;
    if (host === '') return usage;
    if (!net.isIPv4(host) && !HOSTNAME_RE.test(host)) {
      return `${JSON.stringify(host)} is not an IP address or host name`;
    }
    host = host.toLowerCase();
  }
  let port = ISCSI_PORT;
  if (portText !== undefined) {
    port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
    if (!(port >= 1 && port <= 65535)) return 'port must be an integer 1-65535';
  }
  return { host, port };
}

/** A key identifying the socket address, so "::1" and "0:0:0:0:0:0:0:1" compare equal. */
export function portalKey(p: PortalConfig): string {
  const host = net.isIPv6(p.host) ? new URL(`http://[${p.host}]/`).hostname : p.host;
  return `${host}|${p.port}`;
}

/** "host:port", IPv6 in brackets, as the operator writes it. */
export function displayPortal(p: PortalConfig): string {
  return net.isIPv6(p.host) ? `[${p.host}]:${p.port}` : `${p.host}:${p.port}`;
}
