package node

import (
	"errors"

	"github.com/zrs-go/zrs/storage"
	"github.com/zrs-go/zrs/wire/zeo"
)

// errorReply maps an error to the (class name, args) pair of a ZEO error
// reply, in the shapes ZEO clients turn back into exceptions (spec B.6).
func errorReply(err error) zeo.Tuple {
	var (
		noObj    *storage.NoObjectError
		conflict *storage.ConflictError
		valErr   *valueError
		typeErr  *typeError
		undoErr  *storage.UndoError
	)
	switch {
	case errors.As(err, &noObj):
		return zeo.Tuple{"ZODB.POSException.POSKeyError", zeo.Tuple{noObj.Oid.Bytes()}}
	case errors.As(err, &conflict):
		name, msg := "ZODB.POSException.ConflictError", "database conflict error"
		if conflict.Read {
			name, msg = "ZODB.POSException.ReadConflictError", "database read conflict error"
		}
		return zeo.Tuple{name, zeo.NewDict(
			"message", msg,
			"oid", conflict.Oid.Bytes(),
			"class_name", nil,
			"serials", zeo.Tuple{conflict.Committed.Bytes(), conflict.Given.Bytes()},
		)}
	case errors.Is(err, ErrTransient), errors.Is(err, storage.ErrNotAcknowledged), errors.Is(err, ErrSyncTimeout):
		return zeo.Tuple{"ZODB.POSException.StorageTransientError", zeo.Tuple{err.Error()}}
	case errors.Is(err, storage.ErrReadOnly):
		return zeo.Tuple{"ZODB.POSException.ReadOnlyError", zeo.Tuple{}}
	case errors.Is(err, storage.ErrWrongTransaction):
		return zeo.Tuple{"ZODB.POSException.StorageTransactionError", zeo.Tuple{err.Error()}}
	case errors.As(err, &undoErr):
		var oid any
		if len(undoErr.Oids) > 0 {
			oid = undoErr.Oids[0].Bytes()
		}
		return zeo.Tuple{"ZODB.POSException.UndoError", zeo.NewDict("_reason", undoErr.Reason, "_oid", oid)}
	case errors.As(err, &valErr):
		return zeo.Tuple{"builtins.ValueError", zeo.Tuple{valErr.msg}}
	case errors.As(err, &typeErr):
		return zeo.Tuple{"builtins.TypeError", zeo.Tuple{typeErr.msg}}
	}
	return zeo.Tuple{"ZODB.POSException.StorageError", zeo.Tuple{err.Error()}}
}
