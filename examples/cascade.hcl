# A cascading secondary: it replicates from secondary.hcl (zrs2) rather
# than from the primary, and serves its own stream to further secondaries,
# e.g. in a second data centre, so that only one stream crosses the WAN.
#
# zc.zrs equivalent:
#   <zrs>
#     replicate-from zrs2.example.com:5000
#     replicate-to 5000
#     <filestorage>
#       path /var/lib/zrs/Data.fs
#     </filestorage>
#   </zrs>

name = "zrs3"

storage {
  path = "/var/lib/zrs/Data.fs"
}

zeo {
  listen = "0.0.0.0:8100"
}

replication {
  # Upstream: another secondary (or the primary).
  replicate_from = "zrs2.example.com:5000"
  # Downstream: secondaries of this node connect here. Must differ from
  # replicate_from.
  replicate_to     = "0.0.0.0:5000"
  keep_alive_delay = "60s"
}

log {
  level = "info"
}

http {
  listen = "127.0.0.1:8200"
}
