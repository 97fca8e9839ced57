# Static-mode stand-in for ../zrs2.hcl: a read-only secondary of zrs1.
name = "zrs2"
storage { path = "/var/lib/zrs/Data.fs" }
zeo { listen = "0.0.0.0:8100" }
replication { replicate_from = "zrs1:5000" }
log { level = "info" }
