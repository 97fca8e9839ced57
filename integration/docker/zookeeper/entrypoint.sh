#!/bin/bash
# Entrypoint of the zrs/zookeeper image: renders /conf/zoo.cfg from the
# template and the environment, writes /data/myid and runs ZooKeeper in the
# foreground (logs go to stdout, so `docker compose logs` shows them).
#
# Environment:
#   ZOO_MY_ID        this server's id (1..255), required in an ensemble
#   ZOO_SERVERS      the ensemble, space separated, either
#                    "server.1=zk1:2888:3888;2181 server.2=..." or just host
#                    names "zk1 zk2 zk3" (ids 1.., ports 2888/3888/2181);
#                    empty: a standalone server
#   ZOO_TICK_TIME (1000) ZOO_INIT_LIMIT (10) ZOO_SYNC_LIMIT (5)
#   ZOO_MAX_CLIENT_CNXNS (0) ZOO_4LW_COMMANDS_WHITELIST (ruok,srvr,stat,mntr,conf,cons,wchs,envi)
#   ZOO_STANDALONE_ENABLED (true when ZOO_SERVERS is empty, else false)
#   JVMFLAGS         extra JVM options (default: a 256 MB heap, serial GC)
# Any other argument list is run instead of ZooKeeper (e.g. bash).
set -euo pipefail

: "${ZOO_TICK_TIME:=1000}" "${ZOO_INIT_LIMIT:=10}" "${ZOO_SYNC_LIMIT:=5}"
: "${ZOO_MAX_CLIENT_CNXNS:=0}" "${ZOO_4LW_COMMANDS_WHITELIST:=ruok,srvr,stat,mntr,conf,cons,wchs,envi}"
: "${ZOO_SERVERS:=}" "${ZOO_MY_ID:=1}"
: "${JVMFLAGS:=-Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1}"
if [ -z "$ZOO_SERVERS" ]; then
	: "${ZOO_STANDALONE_ENABLED:=true}"
else
	: "${ZOO_STANDALONE_ENABLED:=false}"
fi
export ZOO_TICK_TIME ZOO_INIT_LIMIT ZOO_SYNC_LIMIT ZOO_MAX_CLIENT_CNXNS ZOO_4LW_COMMANDS_WHITELIST ZOO_STANDALONE_ENABLED

if [ $# -gt 0 ] && [ "$1" != zookeeper ]; then
	exec "$@"
fi

case "$ZOO_MY_ID" in
'' | *[!0-9]*) echo "entrypoint: ZOO_MY_ID must be a number, not '$ZOO_MY_ID'" >&2; exit 2 ;;
esac

cfg=/conf/zoo.cfg
{
	while IFS= read -r line || [ -n "$line" ]; do
		while [[ $line =~ @([A-Z0-9_]+)@ ]]; do
			name=${BASH_REMATCH[1]}
			line=${line//"@$name@"/${!name-}}
		done
		printf '%s\n' "$line"
	done </usr/local/share/zookeeper/zoo.cfg
	id=0
	for s in $ZOO_SERVERS; do
		id=$((id + 1))
		case "$s" in
		server.*=*) printf '%s\n' "$s" ;;
		*) printf 'server.%d=%s:2888:3888;2181\n' "$id" "$s" ;;
		esac
	done
} >"$cfg.tmp"
mv "$cfg.tmp" "$cfg"
mkdir -p /data /datalog
echo "$ZOO_MY_ID" >/data/myid

echo "entrypoint: ZooKeeper server $ZOO_MY_ID with /conf/zoo.cfg:" >&2
grep -v '^#' "$cfg" | sed 's/^/  /' >&2

# The Debian jar's manifest names the libraries it needs; slf4j is bound to
# log4j 1.2, configured by /conf/log4j.properties to log to the console.
# shellcheck disable=SC2086
exec java $JVMFLAGS \
	-Djava.net.preferIPv4Stack=true \
	-Dzookeeper.admin.enableServer=false \
	-Dzookeeper.jmx.log4j.disable=true \
	-Dzookeeper.log.dir=/datalog \
	-cp /conf:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar \
	org.apache.zookeeper.server.quorum.QuorumPeerMain "$cfg"
