#!/usr/bin/env bash
# Builds the Docker images of docker-compose.yml without any image registry:
#
#   zrs/debian-base:bookworm  a Debian bookworm root file system made with
#                             debootstrap (--variant=minbase) from the Debian
#                             mirror apt uses here, then `docker import`ed
#   zrs/zookeeper:latest      the base + Debian's ZooKeeper (libzookeeper-java)
#                             and a headless Java runtime
#   zrs/zrs:latest            the base + our statically linked zrs binary
#
# Idempotent: an image is built only when it is missing or out of date. Each
# derived image carries a label (io.zrs.inputs) hashing what it was built
# from: its Dockerfile and files, the base image's id, and for zrs/zrs the
# binary itself, so a changed binary (or a rebuilt base) rebuilds it.
#
# Usage: scripts/build-images.sh [--force] [--no-base]
#   --force    rebuild every image, the base included
#   --no-base  fail instead of building a missing base (no debootstrap)
# Environment:
#   ZRS_DEBIAN_MIRROR           Debian mirror (default: the one apt uses here,
#                               else http://deb.debian.org/debian)
#   ZRS_DEBIAN_SECURITY_MIRROR  security mirror (default likewise)
#   GO                          the go command (default: go)
#   ZRS_BINARY                  use this statically linked zrs binary instead
#                               of building ./cmd/zrs
#
# Building the base needs root (debootstrap creates device nodes and chroots);
# the script uses sudo for it when it is not run as root.
set -euo pipefail

cd "$(dirname "$0")/.."

BASE_IMAGE=zrs/debian-base:bookworm
ZK_IMAGE=zrs/zookeeper:latest
ZRS_IMAGE=zrs/zrs:latest
SUITE=bookworm
LABEL=io.zrs.inputs

force=0
allow_base=1
for arg in "$@"; do
	case "$arg" in
	--force) force=1 ;;
	--no-base) allow_base=0 ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "build-images: unknown argument $arg (try --help)" >&2
		exit 2
		;;
	esac
done

say() { echo "build-images: $*" >&2; }
die() {
	say "$*"
	exit 1
}

command -v docker >/dev/null 2>&1 || die "docker is not installed"
docker info >/dev/null 2>&1 || die "cannot talk to the Docker daemon (is it running? are you in the docker group?)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/zrs-images.XXXXXX")
cleanup() {
	# debootstrap mounts /proc and /sys inside the target; a failed run may
	# leave them mounted, so unmount before removing anything, and never
	# cross into another file system.
	if [ -d "$tmp" ]; then
		local m
		awk -v t="$tmp/" 'index($2, t) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
			as_root umount -l "$m" 2>/dev/null || true
		done
		if [ -e "$tmp/rootfs" ]; then
			as_root rm -rf --one-file-system "$tmp"
		else
			rm -rf --one-file-system "$tmp"
		fi
	fi
}
trap cleanup EXIT

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "building the base image needs root: run as root or install sudo"
	fi
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
image_label() { docker image inspect -f "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true; }
image_id() { docker image inspect -f '{{.Id}}' "$1"; }
image_size() { docker image inspect -f '{{.Size}}' "$1" | awk '{ printf "%.0f MB", $1 / 1e6 }'; }

# The Debian mirrors apt uses on this machine: first URI of a one-line
# `deb URI bookworm ...` or deb822 stanza whose suites include bookworm
# (resp. bookworm-security). Prints nothing when there is none.
apt_mirror() {
	local suite=$1 f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		awk -v s="$suite" '
			$1 == "deb" {
				uri = ""; hit = 0
				for (i = 2; i <= NF; i++) {
					if ($i ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; continue }
					if (uri == "") { uri = $i; continue }
					if ($i == s) hit = 1
					break
				}
				if (hit && uri ~ /^(https?|file):/) { print uri; exit }
			}' "$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		awk -v s="$suite" '
			BEGIN { RS = ""; FS = "\n" }
			{
				uri = ""; hit = 0; deb = 1
				for (i = 1; i <= NF; i++) {
					if ($i ~ /^URIs:/) { split(substr($i, 6), u, " "); for (k in u) if (u[k] != "") { uri = u[k]; break } }
					if ($i ~ /^Types:/ && $i !~ /[ \t]deb([ \t]|$)/) deb = 0
					if ($i ~ /^Suites:/) { n = split(substr($i, 8), x, " "); for (j = 1; j <= n; j++) if (x[j] == s) hit = 1 }
				}
				if (hit && deb && uri ~ /^(https?|file):/) { print uri; exit }
			}' "$f"
	done | head -n 1
}

mirror=${ZRS_DEBIAN_MIRROR:-$(apt_mirror "$SUITE" | head -n 1)}
mirror=${mirror:-http://deb.debian.org/debian}
mirror=${mirror%/}
security=${ZRS_DEBIAN_SECURITY_MIRROR:-$(apt_mirror "$SUITE-security" | head -n 1)}
security=${security:-http://deb.debian.org/debian-security}
security=${security%/}

# Builds run on the host's network so that apt inside them reaches the
# mirror exactly as apt on the host does (host names from /etc/hosts,
# proxies on loopback).
build() {
	local tag=$1 ctx=$2 hash=$3
	say "building $tag"
	docker build --network host --pull=false --label "$LABEL=$hash" -t "$tag" "$ctx" >"$tmp/build.log" 2>&1 || {
		cat "$tmp/build.log" >&2
		die "building $tag failed"
	}
}

# hash_of FILE... prints one SHA-256 over the names and contents of FILEs
# and the extra words given after a -- argument.
hash_of() {
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		printf '%s %s\n' "$(basename "$1")" "$(sha256sum <"$1" | cut -d' ' -f1)"
		shift
	done
	[ $# -gt 0 ] && shift
	printf '%s\n' "$@"
} 2>/dev/null

# --- the base ---------------------------------------------------------------
build_base() {
	command -v debootstrap >/dev/null 2>&1 || {
		if command -v apt-get >/dev/null 2>&1; then
			say "installing debootstrap"
			as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null ||
				{ as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
		fi
		command -v debootstrap >/dev/null 2>&1 || die "debootstrap is missing: install it (apt-get install debootstrap)"
	}
	local rootfs=$tmp/rootfs keyring=()
	if [ -r /usr/share/keyrings/debian-archive-keyring.gpg ]; then
		keyring=(--keyring=/usr/share/keyrings/debian-archive-keyring.gpg)
	fi
	say "debootstrap $SUITE (minbase) from $mirror"
	local t0=$SECONDS
	as_root debootstrap --variant=minbase "${keyring[@]}" "$SUITE" "$rootfs" "$mirror" >"$tmp/debootstrap.log" 2>&1 || {
		tail -n 40 "$tmp/debootstrap.log" >&2
		[ -r "$rootfs/debootstrap/debootstrap.log" ] && tail -n 40 "$rootfs/debootstrap/debootstrap.log" >&2
		die "debootstrap failed"
	}
	say "debootstrap took $((SECONDS - t0))s"

	# Trim and configure the tree the way Debian's own container images are.
	as_root bash -s "$rootfs" "$mirror" "$security" "$SUITE" <<'EOF'
set -euo pipefail
r=$1 mirror=$2 security=$3 suite=$4
cat >"$r/etc/apt/sources.list" <<SRC
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security $suite-security main
SRC
mkdir -p "$r/etc/dpkg/dpkg.cfg.d" "$r/etc/apt/apt.conf.d"
cat >"$r/etc/dpkg/dpkg.cfg.d/zrs-slim" <<'CFG'
# No documentation, manual pages or translations in these images.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
cat >"$r/etc/apt/apt.conf.d/zrs-slim" <<'CFG'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
# Keep the host's apt settings on metadata dates (a snapshot mirror
# serves Release files whose Valid-Until has passed).
if command -v apt-config >/dev/null 2>&1; then
	apt-config dump | grep -E '^Acquire::Check-(Valid-Until|Date) ' >"$r/etc/apt/apt.conf.d/zrs-host" || rm -f "$r/etc/apt/apt.conf.d/zrs-host"
fi
# Services must not start while images are built.
printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
chmod 755 "$r/usr/sbin/policy-rc.d"
find "$r/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "$r/usr/share/man/"* "$r/usr/share/info/"* "$r/usr/share/groff/"* "$r/usr/share/lintian/"*
find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
rm -rf "$r/var/lib/apt/lists/"* "$r/var/cache/apt/"*.bin "$r/var/cache/apt/archives/"*.deb \
	"$r/var/cache/debconf/"*-old "$r/var/lib/dpkg/"*-old "$r/var/log/"* "$r/tmp/"* "$r/var/tmp/"* \
	"$r/debootstrap"
mkdir -p "$r/var/lib/apt/lists/partial"
: >"$r/etc/machine-id"
rm -f "$r/etc/hostname" "$r/etc/resolv.conf"
EOF
	say "importing $BASE_IMAGE"
	as_root tar --numeric-owner --xattrs -C "$rootfs" -c . |
		docker import \
			--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
			--change 'ENV LANG=C.UTF-8' \
			--change 'CMD ["bash"]' \
			--change "LABEL io.zrs.base.mirror=$mirror io.zrs.base.suite=$SUITE io.zrs.base.built=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
			--message "debootstrap --variant=minbase $SUITE $mirror" \
			- "$BASE_IMAGE" >/dev/null
}

t_all=$SECONDS
if [ "$force" = 1 ] || ! image_exists "$BASE_IMAGE"; then
	[ "$allow_base" = 1 ] || die "$BASE_IMAGE is missing and --no-base was given"
	t0=$SECONDS
	build_base
	say "$BASE_IMAGE built in $((SECONDS - t0))s ($(image_size "$BASE_IMAGE"))"
else
	say "$BASE_IMAGE is present"
fi
base_id=$(image_id "$BASE_IMAGE")

# --- zrs/zookeeper ------------------------------------------------------------
zk_ctx=$tmp/zookeeper
mkdir -p "$zk_ctx"
cp integration/docker/zookeeper/Dockerfile integration/docker/zookeeper/entrypoint.sh \
	integration/docker/zookeeper/zk-health integration/docker/zoo.cfg "$zk_ctx/"
zk_hash=$(hash_of "$zk_ctx"/* -- "base=$base_id" | sha256sum | cut -d' ' -f1)
if [ "$force" = 1 ] || [ "$(image_label "$ZK_IMAGE" "$LABEL")" != "$zk_hash" ]; then
	t0=$SECONDS
	build "$ZK_IMAGE" "$zk_ctx" "$zk_hash"
	say "$ZK_IMAGE built in $((SECONDS - t0))s ($(image_size "$ZK_IMAGE"))"
else
	say "$ZK_IMAGE is up to date"
fi

# --- zrs/zrs ------------------------------------------------------------------
zrs_ctx=$tmp/zrs
mkdir -p "$zrs_ctx"
GO=${GO:-go}
if [ -z "${ZRS_BINARY:-}" ] && ! command -v "$GO" >/dev/null 2>&1; then
	if [ -x /usr/local/go/bin/go ]; then
		GO=/usr/local/go/bin/go
	else
		die "go is not installed (needed to build the zrs binary)"
	fi
fi
if [ -n "${ZRS_BINARY:-}" ]; then
	[ -x "$ZRS_BINARY" ] || die "ZRS_BINARY=$ZRS_BINARY is not an executable file"
	file "$ZRS_BINARY" 2>/dev/null | grep -q 'dynamically linked' && die "ZRS_BINARY=$ZRS_BINARY is dynamically linked; build it with CGO_ENABLED=0"
	cp "$ZRS_BINARY" "$zrs_ctx/zrs"
	say "zrs binary: $ZRS_BINARY"
else
	t0=$SECONDS
	CGO_ENABLED=0 GOOS=linux GOARCH=${ZRS_GOARCH:-$("$GO" env GOARCH)} \
		"$GO" build -trimpath -ldflags='-s -w' -o "$zrs_ctx/zrs" ./cmd/zrs || die "go build ./cmd/zrs failed"
	say "zrs binary built in $((SECONDS - t0))s ($(du -h "$zrs_ctx/zrs" | cut -f1))"
fi
cp integration/docker/zrs/Dockerfile integration/docker/zrs/zrs-health "$zrs_ctx/"
zrs_hash=$(hash_of "$zrs_ctx"/* -- "base=$base_id" | sha256sum | cut -d' ' -f1)
if [ "$force" = 1 ] || [ "$(image_label "$ZRS_IMAGE" "$LABEL")" != "$zrs_hash" ]; then
	t0=$SECONDS
	build "$ZRS_IMAGE" "$zrs_ctx" "$zrs_hash"
	say "$ZRS_IMAGE built in $((SECONDS - t0))s ($(image_size "$ZRS_IMAGE"))"
else
	say "$ZRS_IMAGE is up to date"
fi

# Builds replaced images leave their predecessors untagged; drop ours.
docker image prune -f --filter "label=$LABEL" >/dev/null 2>&1 || true

say "done in $((SECONDS - t_all))s:"
docker image ls --format '  {{.Repository}}:{{.Tag}}\t{{.ID}}\t{{.Size}}' | sed -n 's|^zrs/|  zrs/|p' >&2 || true
