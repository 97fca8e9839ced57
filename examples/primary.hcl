# The primary of a static (zc.zrs-style) replicated pair: it serves ZEO
# clients read-write and streams every committed transaction to the
# secondaries that connect to replicate_to. See secondary.hcl and
# cascade.hcl. Failover is manual here: to promote a secondary, remove its
# replicate_from and restart it. For automatic failover, use ZooKeeper
# mode (cluster-zrs1.hcl).
#
# This is the <zrs> section of zc.zrs:
#   <zrs>
#     replicate-to 5000
#     <filestorage>
#       path /var/lib/zrs/Data.fs
#     </filestorage>
#   </zrs>
# `zrs config import zeo.conf` converts such a file.

name = "zrs1"

storage {
  path = "/var/lib/zrs/Data.fs"
}

zeo {
  listen = "0.0.0.0:8100"
}

replication {
  # Where secondaries connect. The same port serves zc.zrs's zrs2.0 stream
  # (stock zc.zrs secondaries) and zrs's own.
  replicate_to = "0.0.0.0:5000"
}

log {
  level = "info"
}

http {
  listen = "127.0.0.1:8200"
}
