/**
 * The key under which the node-wide failed-authentication throttle
 * (supervisor/auth-throttle.ts) counts a login's failures; session workers compute it.
 */

/**
 * The throttle key of a login: InitiatorName (case-insensitive, RFC 7143 4.2.7.2 names
 * are compared in lower case) and the remote IP address. Pass the address alone
 * (`socket.remoteAddress`), not address:port: the port changes with every connection.
 */
export function authThrottleKey(initiatorName: string, remoteAddress: string): string {
  // NUL cannot occur in either (RFC 7143 6.1 text values, IP address strings).
  return `${initiatorName.toLowerCase()}\u0000${remoteAddress}`;
}
