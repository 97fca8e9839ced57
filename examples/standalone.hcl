# A single zrs node: a drop-in replacement for a ZEO server (`runzeo`)
# serving one FileStorage, without replication.
#
# Install as /etc/zrs/node.hcl and run it with examples/zrs.service, or by
# hand: zrs node --config standalone.hcl
# Check it with: zrs config check standalone.hcl

# The node's name, used in logs. Defaults to the host name.
name = "zeo1"

storage {
  # The data file; created when missing. Its .index and .lock files live
  # next to it, so the directory must be writable.
  path = "/var/lib/zrs/Data.fs"
  # The storage name clients register, e.g. ZEO.DB(addr, storage="1").
  # "1" is ZEO's default.
  name = "1"
}

zeo {
  # Where ZEO clients connect: host:port, ":port" or "0.0.0.0:port" for
  # every interface, or a Unix socket path.
  listen = "0.0.0.0:8100"
  # true refuses every commit (ZEO's read-only).
  read_only = false
  # "pickle" is what stock ZEO 5 clients speak; "msgpack" matches a ZEO
  # server configured with `msgpack true`.
  protocol = "pickle"
  # Close the connection of a client that votes and then holds the commit
  # lock longer than this (ZEO's transaction-timeout). Unset: no limit.
  transaction_timeout = "30s"
}

log {
  # trace, debug, info, warn or error. Logs go to stderr (the journal under
  # systemd).
  level = "info"
  # One JSON object a line, for log shippers.
  json = false
}

# Health checks, status and Prometheus metrics: /health, /primary,
# /replica?max_lag=5s, /status, /metrics. Keep it off public networks.
http {
  listen = "127.0.0.1:8200"
}
