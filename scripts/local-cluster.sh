#!/usr/bin/env bash
# Brings up a local zrs cluster on this machine: one ZooKeeper server
# (Debian's package, installed when missing) and three zrs nodes in
# ZooKeeper mode with synchronous replication. Runs in the foreground;
# Ctrl-C stops everything. Data lives under $ZRS_CLUSTER_DIR (default
# ./zrs-data/cluster) and survives restarts.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${ZRS_CLUSTER_DIR:-$root/zrs-data/cluster}
zk_port=${ZRS_ZK_PORT:-2181}
zrs=$root/bin/zrs

bash "$root/scripts/install-deps.sh"
(cd "$root" && go build -o bin/zrs ./cmd/zrs)

mkdir -p "$dir/zk/data"
pids=()
node_pids=()
node_only=()
stop() {
	trap - INT TERM EXIT
	echo
	echo "local-cluster: stopping"
	# Nodes first, so that the primary can resign while ZooKeeper is up.
	for p in "${node_only[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${node_only[@]}"; do wait "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap stop INT TERM EXIT

if (echo ruok | timeout 1 bash -c "cat > /dev/tcp/127.0.0.1/$zk_port") 2>/dev/null; then
	echo "local-cluster: port $zk_port is taken (another ZooKeeper?); set ZRS_ZK_PORT" >&2
	exit 1
fi
cat > "$dir/zk/zoo.cfg" <<CFG
tickTime=500
dataDir=$dir/zk/data
clientPort=$zk_port
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,stat,mntr
CFG
cat > "$dir/zk/log4j.properties" <<'CFG'
log4j.rootLogger=WARN, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p %m%n
CFG
cp="$dir/zk:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar"
java -cp "$cp" org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zk/zoo.cfg" >"$dir/zk/zookeeper.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
	if [ "$( (exec 3<>/dev/tcp/127.0.0.1/$zk_port && echo ruok >&3 && cat <&3) 2>/dev/null)" = imok ]; then break; fi
	sleep 0.2
done
echo "local-cluster: ZooKeeper serving on 127.0.0.1:$zk_port (log $dir/zk/zookeeper.log)"

for i in 1 2 3; do
	mkdir -p "$dir/zrs$i"
	cat > "$dir/zrs$i/node.hcl" <<CFG
name    = "zrs$i"
cluster = "main"
storage { path = "$dir/zrs$i/Data.fs" }
zeo { listen = "127.0.0.1:810$i" }
replication {
  replicate_to = "127.0.0.1:510$i"
  synchronous  = 1
}
zookeeper {
  servers         = ["127.0.0.1:$zk_port"]
  session_timeout = "4s"
}
CFG
	"$zrs" node --config "$dir/zrs$i/node.hcl" 2>"$dir/zrs$i/node.log" &
	pids+=($!)
	node_only+=($!)
	node_pids+=("zrs$i=$!")
done
# The first election follows the sessions and the settle delay.
for _ in $(seq 60); do
	if "$zrs" status --zookeeper "127.0.0.1:$zk_port" --root /zrs/main --timeout 2s 2>/dev/null | grep -q '^cluster .*: primary '; then break; fi
	sleep 0.25
done

cat <<MSG

local-cluster: three nodes are up; logs in $dir/zrs{1,2,3}/node.log
  ZEO:         127.0.0.1:8101, 127.0.0.1:8102, 127.0.0.1:8103 (one is the primary; the others are read-only)
  ZooKeeper:   127.0.0.1:$zk_port, cluster root /zrs/main (zc.zkzeo clients: /zrs/main/providers)

Watch the cluster:    $zrs status --zookeeper 127.0.0.1:$zk_port --root /zrs/main
Watch a failover:     kill -9 the primary's process (PIDs: ${node_pids[*]}), then run
                      status again: within about 5 s (the session timeout plus the
                      settle delay) another node is primary under a new epoch; the
                      killed node's data stays in $dir.
Ctrl-C stops the cluster.
MSG
"$zrs" status --zookeeper "127.0.0.1:$zk_port" --root /zrs/main --timeout 10s 2>/dev/null || true
wait
