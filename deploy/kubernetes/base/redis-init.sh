#!/bin/sh
# Writes redis.conf and sentinel.conf for this pod of the spindle-redis StatefulSet
# (redis.yaml). The first pod starts as the master; every later start, of any pod, asks
# the Sentinels who the master is now (after a failover it may be any pod) and joins it as
# a replica. Sentinels and replicas announce stable DNS names, not pod IPs.
set -eu
DOMAIN="spindle-redis.${POD_NAMESPACE}.svc.cluster.local"
SELF="$(hostname).${DOMAIN}"
MASTER=""
for i in 0 1 2; do
  if [ "spindle-redis-$i" = "$(hostname)" ]; then continue; fi
  MASTER="$(redis-cli -h "spindle-redis-$i.${DOMAIN}" -p 26379 --no-auth-warning \
    sentinel get-master-addr-by-name spindle 2>/dev/null | head -n 1 || true)"
  if [ -n "$MASTER" ]; then break; fi
done
if [ -z "$MASTER" ]; then MASTER="spindle-redis-0.${DOMAIN}"; fi

OUT="${REDIS_RUN_DIR:-/etc/redis-run}"
mkdir -p "$OUT"
cat > "$OUT/redis.conf" <<CONF
port 6379
dir /data
# Reservations and leases must not be lost by a crash (DESIGN.md "Cluster").
appendonly yes
appendfsync always
requirepass ${REDIS_PASSWORD}
masterauth ${REDIS_PASSWORD}
replica-announce-ip ${SELF}
CONF
if [ "$MASTER" != "$SELF" ]; then echo "replicaof ${MASTER} 6379" >> "$OUT/redis.conf"; fi

cat > "$OUT/sentinel.conf" <<CONF
port 26379
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip ${SELF}
sentinel monitor spindle ${MASTER} 6379 2
sentinel auth-pass spindle ${REDIS_PASSWORD}
sentinel down-after-milliseconds spindle 5000
sentinel failover-timeout spindle 30000
sentinel parallel-syncs spindle 1
CONF
