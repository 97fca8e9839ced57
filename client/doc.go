// Package client is a Go client for ZEO 5 servers such as zrs nodes.
//
// A Client keeps one connection to a server found through an
// AddressSource, reconnects with backoff when it is lost, and keeps an
// in-memory cache of current object revisions that invalidations from the
// server (and getInvalidations after a reconnect) keep valid: a Load never
// returns data older than an invalidation the client has received.
//
// # Clusters
//
// DialCluster follows a ZooKeeper-coordinated zrs cluster (see
// ../design/cluster.md, "Clients"): a read-write client connects to the
// primary named by the primary znode and moves as soon as it changes; a
// read-only client is spread over the secondaries, with the primary as a
// fallback. ZKSource is the AddressSource behind it; any source may also
// implement WatchingSource (tell the client when to move) and EpochSource
// (tell it the cluster's epoch).
//
//	c, err := client.DialCluster(ctx, registry.Default("prod", "zk1:2181", "zk2:2181"),
//		client.Options{Logger: log})
//
// On every connection the client asks the server for its epoch (get_info,
// "zrs_epoch") and refuses, with a *StaleServerError, a server whose epoch
// is lower than the highest it has seen (a deposed primary) or whose last
// transaction is older than the newest it has seen (it lost data; see
// Options.AllowOlderServer). It then tries the next address, or again
// after a backoff.
//
// # Errors and retries
//
// Reads (Load, LoadBefore, NewOids, Ping) wait for a connection and are
// retried transparently after a reconnection, within the caller's
// context. A commit is not retried: it fails with a
// *storage.ConflictError, a *NotCommittedError (certainly not committed)
// or an *OutcomeUnknownError (maybe committed: check before retrying).
// IsRetryable (errors.Is(err, ErrRetryable)) is true for lost
// connections, interrupted commits, commits refused by a server demoted
// during a failover, and the server's StorageTransientError (a fenced
// primary, or a commit its synchronous replicas did not acknowledge).
package client
