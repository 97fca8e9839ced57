// Package client is a Go client for ZEO 5 servers such as zrs nodes.
//
// A Client keeps one connection to a server found through an
// AddressSource, reconnects with backoff when it is lost, and keeps an
// in-memory cache of current object revisions that invalidations from the
// server (and getInvalidations after a reconnect) keep valid: a Load never
// returns data older than an invalidation the client has received.
//
// A commit whose outcome a lost connection made unknown fails with an
// *OutcomeUnknownError, so callers can tell "maybe committed" from
// "certainly not committed".
package client
