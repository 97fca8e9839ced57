// Package node runs one zrs node: its configuration, the FileStorage it
// holds, and the ZEO 5 service through which clients use it.
//
// A node promises that every client connection sees commits in tid order,
// receives the invalidations of a commit before any answer computed from
// it, and that a bad client (malformed frames, unknown methods) only loses
// its own connection.
package node
