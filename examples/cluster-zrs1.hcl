# Node zrs1 of a three-node cluster in ZooKeeper mode (zrs1..zrs3, each
# with this file and its own name and advertise addresses). The nodes
# elect a primary through ZooKeeper; the others replicate from it, and a
# new primary is elected within seconds when it fails. The primary
# advertises its ZEO address in zc.zkzeo's layout under the root, so
# clients using zc.zkzeo follow it.
#
# Watch it with: zrs status --zookeeper zk1:2181,zk2:2181,zk3:2181 --root /zrs/main

# Unique in the cluster; no slashes or spaces.
name = "zrs1"
# The cluster's name; the default ZooKeeper root is /zrs/<cluster>.
cluster = "main"

storage {
  path = "/var/lib/zrs/Data.fs"
}

zeo {
  listen = "0.0.0.0:8100"
}

replication {
  # Required: any node may become the primary that the others replicate
  # from. No replicate_from: the upstream comes from ZooKeeper.
  replicate_to = "0.0.0.0:5000"
  # A commit is acknowledged once this many secondaries hold it durably;
  # 0 is asynchronous (a failover may lose the last commits).
  synchronous = 1
  # false: when too few secondaries acknowledge, commits continue
  # asynchronously rather than wait. true: they wait up to commit_timeout,
  # then the client gets a retryable error.
  synchronous_strict = false
  commit_timeout     = "10s"
  # Cascading: replicate from this node while it is alive, else from the
  # primary.
  # upstream = "zrs2"
}

zookeeper {
  servers = ["zk1.example.com:2181", "zk2.example.com:2181", "zk3.example.com:2181"]
  # Default "/zrs/<cluster>".
  root = "/zrs/main"
  # A primary whose session expires is fenced and demoted; failover takes
  # a little longer than this.
  session_timeout = "4s"
}

failover {
  # Among equally fresh candidates, the highest priority wins.
  priority = 100
  # true: this node never becomes primary (e.g. a reporting replica).
  no_failover = false
  # How long a candidate waits for peers to publish their last tid before
  # running for primary.
  settle_delay = "500ms"
  # Asynchronous mode only: how far behind the lost primary's last commit
  # (a duration or seconds) a new primary may be. "0": only the freshest
  # node may win.
  max_lag_on_failover = "0"
}

# How peers and clients reach this node, when the listen addresses do not
# say (0.0.0.0, NAT, containers). Default: the host name with the listen
# port.
advertise {
  zeo         = "zrs1.example.com:8100"
  replication = "zrs1.example.com:5000"
}

log {
  level = "info"
  json  = true
}

# /primary answers 200 only on the primary: point a load balancer's health
# check at it to send writers to the right node.
http {
  listen = "0.0.0.0:8200"
}
