/**
 * A listening or connecting address, `host:port` in the configuration file: portals,
 * Sentinels, the admin API. Its own module because both the top-level configuration
 * (config-types.ts) and its cluster section (cluster-config.ts) use it, and the first
 * includes the second.
 */
export interface PortalConfig {
  readonly host: string;
  readonly port: number;
}
