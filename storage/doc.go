// Package storage is a Go implementation of ZODB's FileStorage: an
// append-only transaction log on disk, byte-compatible with the files that
// Python ZODB reads and writes (FS30, and FS21 on read).
//
// The package promises:
//
//   - Files written by ZODB open and serve the same data, history and
//     iteration results as ZODB gives; files written here open in ZODB, and
//     replaying a file's transactions with TpcBegin(tid, status) + Restore
//     reproduces it byte for byte.
//   - A commit is visible to readers (Load, LastTransaction, iterators) only
//     once TpcFinish has made it durable; readers never wait for a commit in
//     progress.
//   - Opening never panics on damaged input: an interrupted commit at the end
//     of the file is moved aside to NAME.trN and cut off (as ZODB does), and
//     damage in the middle of the file is reported as a *FormatError naming
//     the byte offset, instead of silently dropping committed transactions.
//   - Transactions are serializable in tid order. The commit lock is held
//     from TpcBegin through TpcVote only; voted transactions finish (become
//     durable and visible) in vote order, and a transaction waits for an
//     earlier voted one's outcome only when it touches the same objects
//     (votes.go). Finishing transactions share fsyncs (group commit).
//
// Pack is not implemented yet; the iterator, the backpointer helpers and
// the commit path are shaped so that it can be added without redesign.
package storage
