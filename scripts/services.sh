#!/usr/bin/env bash
# Bring up PostgreSQL 15 and RabbitMQ 3.10 (+ management) on 127.0.0.1 without systemd.
# Idempotent: installs from Debian packages only what is missing, starts only what is down.
# Prints the URLs to export. Skips everything when DATABASE_URL and AMQP_URL are both set.
set -euo pipefail

if [ -n "${DATABASE_URL:-}" ] && [ -n "${AMQP_URL:-}" ]; then
  echo "DATABASE_URL and AMQP_URL are set: using those servers, starting nothing." >&2
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# epmd must bind to loopback from its very first start.
export ERL_EPMD_ADDRESS=127.0.0.1
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

need=""
command -v pg_ctlcluster >/dev/null 2>&1 && [ -x /usr/lib/postgresql/15/bin/initdb ] || need="$need postgresql-15 postgresql-client-15"
command -v rabbitmq-server >/dev/null 2>&1 || need="$need rabbitmq-server"
command -v curl >/dev/null 2>&1 || need="$need curl"
if [ -n "$need" ]; then
  echo "installing:$need" >&2
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

# --- PostgreSQL 15, cluster 15/main on 127.0.0.1:5432
$SUDO pg_lsclusters -h | grep -q '^15 main ' || $SUDO pg_createcluster 15 main >/dev/null
echo "listen_addresses = '127.0.0.1'" | $SUDO tee /etc/postgresql/15/main/conf.d/90-turnio.conf >/dev/null
$SUDO pg_ctlcluster 15 main status >/dev/null 2>&1 || $SUDO pg_ctlcluster 15 main start
until pg_isready -h 127.0.0.1 -p 5432 -q; do sleep 0.2; done
(cd /tmp && $SUDO runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -d postgres) <<'SQL'
ALTER USER postgres PASSWORD 'postgres';
SELECT 'CREATE DATABASE turnio' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname='turnio')\gexec
SQL

# --- RabbitMQ with management, node rabbit@localhost, loopback only
$SUDO tee /etc/rabbitmq/rabbitmq.conf >/dev/null <<'CONF'
listeners.tcp.default = 127.0.0.1:5672
management.tcp.ip = 127.0.0.1
management.tcp.port = 15672
CONF
$SUDO tee /etc/rabbitmq/rabbitmq-env.conf >/dev/null <<'CONF'
NODENAME=rabbit@localhost
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
CONF
$SUDO rabbitmq-plugins enable --offline rabbitmq_management >/dev/null
if ! curl -sf -u guest:guest http://127.0.0.1:15672/api/overview >/dev/null 2>&1; then
  $SUDO rabbitmq-diagnostics -q ping >/dev/null 2>&1 || $SUDO rabbitmq-server -detached
  # await_startup fails at once until the node registered with epmd, hence the loop.
  for _ in $(seq 1 300); do
    curl -sf -u guest:guest http://127.0.0.1:15672/api/overview >/dev/null 2>&1 && break
    sleep 0.2
  done
fi
curl -sf -u guest:guest http://127.0.0.1:15672/api/overview >/dev/null || { echo "RabbitMQ did not come up" >&2; exit 1; }

cat <<URLS
export DATABASE_URL=postgresql://postgres:postgres@127.0.0.1:5432/turnio
export AMQP_URL=amqp://guest:guest@127.0.0.1:5672/
export RABBITMQ_MANAGEMENT_URL=http://guest:guest@127.0.0.1:15672/
URLS
