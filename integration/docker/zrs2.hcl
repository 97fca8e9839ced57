# Node zrs2 of docker-compose.yml, in ZooKeeper mode: the three nodes elect
# a primary through the ensemble zk1..zk3; the others replicate from it, and
# one of them acknowledges each commit (synchronous = 1). Mounted read-only
# as /etc/zrs/node.hcl; data lives in the volume at /var/lib/zrs.
name    = "zrs2"
cluster = "main"
storage { path = "/var/lib/zrs/Data.fs" }
zeo { listen = "0.0.0.0:8100" }
replication {
  replicate_to = "0.0.0.0:5000"
  synchronous  = 1
}
# How the other nodes and clients reach this one on the compose network.
advertise {
  zeo         = "zrs2:8100"
  replication = "zrs2:5000"
}
zookeeper {
  servers         = ["zk1:2181", "zk2:2181", "zk3:2181"]
  root            = "/zrs/main"
  session_timeout = "4s"
}
# Equal priorities: the most up-to-date candidate wins an election.
failover { priority = 100 }
log { level = "info" }
