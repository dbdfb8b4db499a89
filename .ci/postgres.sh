# Starts a throwaway PostgreSQL 15 cluster for the tests and exports
# DASHBOARD_TEST_POSTGRES; the cluster is stopped and deleted when the calling shell
# exits. Source it: `source .ci/postgres.sh`. Also handy on a developer machine.
# The tests' cluster skips fsync (nothing in it must survive a crash); PG_DURABLE=1
# keeps PostgreSQL's durable defaults (fsync, synchronous commit), for benchmarks.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_DIR=$(mktemp -d /tmp/dashboard-pg.XXXXXX)
PG_PORT=${PG_PORT:-55432}

# initdb refuses to run as root: run the server as the postgres user then.
if [ "$(id -u)" = 0 ]; then
  chown postgres:postgres "$PG_DIR"
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi

if [ "${PG_DURABLE:-0}" = 1 ]; then
  # Durable, with group commit as a busy production server would have it: a commit
  # waits up to 0.2 ms for others to flush the WAL with (each still waits for its flush).
  PG_SPEED="-c commit_delay=200 -c commit_siblings=4"
else
  PG_SPEED="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
fi

as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres >"$PG_DIR/initdb.log" 2>&1 ||
  { cat "$PG_DIR/initdb.log"; return 1; }
as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w start \
  -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=400 $PG_SPEED" \
  >/dev/null || { cat "$PG_DIR/server.log"; return 1; }

stop_postgres() {
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
}
trap stop_postgres EXIT

# Through the cluster's Unix socket, as a dashboard beside its database connects: a
# statement's round trip costs less than over TCP. (Its folder is the URL's host, with
# its slashes written %2F.)
export DASHBOARD_TEST_POSTGRES="postgres://postgres@${PG_DIR//\//%2F}:$PG_PORT/postgres"
echo "PostgreSQL is running for the tests: $DASHBOARD_TEST_POSTGRES"
