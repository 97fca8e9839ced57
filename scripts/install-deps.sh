#!/usr/bin/env bash
# Installs what the tests need beyond Go on a Debian-like machine, and only
# what is missing: Apache ZooKeeper (Debian's `zookeeper` package; the
# tests start their own servers on free ports) and a Java runtime for it. Safe to run again: it does nothing when
# everything is present. Needs root (or sudo) only when it installs.
set -euo pipefail

zk_jar=/usr/share/java/zookeeper.jar
missing=()
if [ ! -f "$zk_jar" ] && [ -z "${ZRS_ZK_CLASSPATH:-}" ]; then
	missing+=(zookeeper)
fi
if ! command -v java >/dev/null 2>&1 && ! { [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; }; then
	missing+=(default-jre-headless)
fi

if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: ZooKeeper and java are present"
	exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-deps: missing ${missing[*]}, and there is no apt-get here;" >&2
	echo "install-deps: install ZooKeeper and a Java runtime yourself (ZRS_ZK_CLASSPATH can point the tests at a ZooKeeper classpath)" >&2
	exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		sudo=(sudo)
	else
		echo "install-deps: missing ${missing[*]}; run this script as root to install them" >&2
		exit 1
	fi
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
