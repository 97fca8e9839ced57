# Static-mode stand-in for ../zrs3.hcl: a read-only secondary of zrs1.
name = "zrs3"
storage { path = "/var/lib/zrs/Data.fs" }
zeo { listen = "0.0.0.0:8100" }
replication { replicate_from = "zrs1:5000" }
log { level = "info" }
