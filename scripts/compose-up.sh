#!/usr/bin/env bash
# Starts the docker-compose.yml cluster (ZooKeeper ensemble zk1..zk3, zrs
# nodes zrs1..zrs3): builds the images that are missing or out of date
# (scripts/build-images.sh), checks the node configurations with the image's
# own zrs, runs `docker compose up -d`, waits until every container is
# healthy, and prints the cluster's status and how to watch a failover.
#
# Usage: scripts/compose-up.sh [--no-build]
# Environment:
#   COMPOSE         the compose command (default: `docker compose` when the
#                   plugin is there, else docker-compose)
#   ZRS_CONFIG_DIR  directory of zrs1.hcl..zrs3.hcl (default
#                   ./integration/docker; ./integration/docker/static runs
#                   the nodes without ZooKeeper)
#   WAIT_TIMEOUT    seconds to wait for health (default 180)
set -euo pipefail

cd "$(dirname "$0")/.."

build=1
for arg in "$@"; do
	case "$arg" in
	--no-build) build=0 ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "compose-up: unknown argument $arg (try --help)" >&2
		exit 2
		;;
	esac
done

say() { echo "compose-up: $*" >&2; }
die() {
	say "$*"
	exit 1
}

if [ -z "${COMPOSE:-}" ]; then
	if docker compose version >/dev/null 2>&1; then
		COMPOSE="docker compose"
	elif command -v docker-compose >/dev/null 2>&1; then
		COMPOSE=docker-compose
	else
		die "neither 'docker compose' nor docker-compose is installed"
	fi
fi
read -r -a compose <<<"$COMPOSE"

config_dir=${ZRS_CONFIG_DIR:-./integration/docker}
export ZRS_CONFIG_DIR=$config_dir
zk_servers=zk1:2181,zk2:2181,zk3:2181
zk_root=/zrs/main
nodes=(zrs1 zrs2 zrs3)
services=(zk1 zk2 zk3 "${nodes[@]}")

if [ "$build" = 1 ]; then
	bash scripts/build-images.sh
fi

# A configuration the binary rejects would only show as a container that
# exits; check them first with the very binary the nodes run.
for n in "${nodes[@]}"; do
	f=$config_dir/$n.hcl
	[ -r "$f" ] || die "missing node configuration $f"
	out=$(docker run --rm --network none -v "$(realpath "$f"):/etc/zrs/node.hcl:ro" zrs/zrs:latest \
		config check /etc/zrs/node.hcl 2>&1) ||
		die "$f is rejected by zrs/zrs's zrs: $out"
done

say "starting the cluster"
if ! "${compose[@]}" up -d --remove-orphans "${services[@]}"; then
	"${compose[@]}" ps >&2 || true
	"${compose[@]}" logs --tail=30 >&2 || true
	die "'${COMPOSE} up -d' failed; the containers' state and last log lines are above"
fi

deadline=$((SECONDS + ${WAIT_TIMEOUT:-180}))
say "waiting until ${services[*]} are healthy"
while :; do
	pending=()
	for s in "${services[@]}"; do
		id=$("${compose[@]}" ps -q "$s" 2>/dev/null || true)
		state=$([ -n "$id" ] && docker inspect -f '{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id" 2>/dev/null || echo missing/)
		case "$state" in
		running/healthy) ;;
		exited/* | dead/* | missing/)
			"${compose[@]}" logs --tail=30 "$s" >&2 || true
			die "$s is not running ($state); its last log lines are above"
			;;
		*) pending+=("$s:${state#*/}") ;;
		esac
	done
	[ ${#pending[@]} -eq 0 ] && break
	if [ "$SECONDS" -ge "$deadline" ]; then
		for p in "${pending[@]}"; do
			"${compose[@]}" logs --tail=30 "${p%%:*}" >&2 || true
		done
		die "not healthy after ${WAIT_TIMEOUT:-180}s: ${pending[*]}"
	fi
	sleep 2
done
say "all healthy"

echo
echo "ZooKeeper ensemble:"
for z in zk1 zk2 zk3; do
	mode=$("${compose[@]}" exec -T "$z" zk-health srvr 2>/dev/null | sed -n 's/^Mode: //p')
	echo "  $z: ${mode:-unknown}"
done
echo

status_cmd=(zrs status --zookeeper "$zk_servers" --root "$zk_root")
if grep -q '^[[:space:]]*zookeeper[[:space:]]*{' "$config_dir/zrs1.hcl"; then
	# The registry fills in while the nodes register and elect; give it a moment.
	errf=$(mktemp)
	trap 'rm -f "$errf"' EXIT
	for _ in $(seq 1 15); do
		out=$("${compose[@]}" exec -T zrs1 "${status_cmd[@]}" 2>"$errf") && grep -q '^cluster .*: primary ' <<<"$out" && break
		sleep 1
	done
	echo "\$ ${COMPOSE} exec zrs1 ${status_cmd[*]}"
	echo "$out"
	grep -q '^cluster .*: primary ' <<<"$out" || cat "$errf"
	primary=$(sed -n 's/^cluster .*: primary \([^ ]*\) .*/\1/p' <<<"$out")
	primary=${primary:-zrs1}
	# Watch from a node that is not the primary, so that it stays up.
	watcher=zrs2
	for n in "${nodes[@]}"; do
		if [ "$n" != "$primary" ]; then
			watcher=$n
			break
		fi
	done
	cat <<EOF

To watch a failover, in one terminal:
  watch -n 1 ${COMPOSE} exec -T ${watcher} zrs --log-level warn status --zookeeper ${zk_servers} --root ${zk_root}
and in another, follow the election in the nodes' logs:
  ${COMPOSE} logs -f --tail=0 ${nodes[*]}
then stop the primary (${primary}) and bring it back, as a secondary:
  ${COMPOSE} kill ${primary}        # or: ${COMPOSE} pause ${primary} (longer than session_timeout)
  ${COMPOSE} start ${primary}       # (unpause for pause)
Stop everything and delete the data: make compose-down (${COMPOSE} down -v).
EOF
else
	echo "The nodes run without ZooKeeper (configurations from $config_dir), so there is no failover."
	for n in "${nodes[@]}"; do
		echo "  $n: $("${compose[@]}" exec -T "$n" zrs-health -v 2>&1 | head -c 300)"
	done
	echo "Logs: ${COMPOSE} logs -f ${nodes[*]}; stop and delete the data: make compose-down"
fi
