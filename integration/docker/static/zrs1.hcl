# Static-mode stand-in for ../zrs1.hcl (no ZooKeeper, no failover): zrs1 is
# the primary and zrs2, zrs3 replicate from it. For trying the compose
# cluster with a zrs binary that predates ZooKeeper mode:
#   ZRS_CONFIG_DIR=./integration/docker/static docker-compose up -d
name = "zrs1"
storage { path = "/var/lib/zrs/Data.fs" }
zeo { listen = "0.0.0.0:8100" }
replication { replicate_to = "0.0.0.0:5000" }
log { level = "info" }
