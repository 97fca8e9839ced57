# A read-only secondary of primary.hcl (static, zc.zrs-style replication).
# It applies every transaction of the primary with the same tid, serves
# read-only ZEO clients (for reporting, search indexing, or a hot standby),
# and reconnects by itself when the connection drops.
#
# zc.zrs equivalent:
#   <zrs>
#     replicate-from zrs1.example.com:5000
#     keep-alive-delay 60
#     <filestorage>
#       path /var/lib/zrs/Data.fs
#     </filestorage>
#   </zrs>

name = "zrs2"

storage {
  path = "/var/lib/zrs/Data.fs"
}

zeo {
  # Clients of a secondary are read-only, whatever read_only says.
  listen = "0.0.0.0:8100"
}

replication {
  # The primary's replicate_to address.
  replicate_from = "zrs1.example.com:5000"
  # How often an idle stream carries a keep-alive, so that firewalls and
  # NAT keep the connection open.
  keep_alive_delay = "60s"
  # "zrs" when the primary runs zrs; "zrs2.0" when it is a stock zc.zrs
  # primary (the stream zc.zrs speaks, which a zrs primary serves too).
  protocol = "zrs"
}

log {
  level = "info"
}

http {
  # /replica?max_lag=5s answers 200 while this node is at most 5 s behind.
  listen = "127.0.0.1:8200"
}
