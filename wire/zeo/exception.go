package zeo

// Exception class paths the ZEO client maps to real exceptions (spec B.6).
const (
	ClassPOSKeyError             = "ZODB.POSException.POSKeyError"
	ClassReadOnlyError           = "ZODB.POSException.ReadOnlyError"
	ClassStorageTransactionError = "ZODB.POSException.StorageTransactionError"
	ClassConflictError           = "ZODB.POSException.ConflictError"
	ClassReadConflictError       = "ZODB.POSException.ReadConflictError"
	ClassBTreesConflictError     = "ZODB.POSException.BTreesConflictError"
	ClassMultipleUndoErrors      = "ZODB.POSException.MultipleUndoErrors"
	ClassKeyError                = "builtins.KeyError"
	ClassTypeError               = "builtins.TypeError"
	ClassValueError              = "builtins.ValueError"
)

// Exception is the payload of an error reply: the dotted path of a Python
// exception class and either its args (a Tuple) or its __dict__ (a *Dict);
// the Python server sends the __dict__ when it is non-empty, else the args.
//
// Exception implements error so that server code can return it and have it
// sent as is.
type Exception struct {
	Class string
	Args  any // Tuple or *Dict
}

// Tuple returns the error reply args (Class, Args).
func (e Exception) Tuple() Tuple { return Tuple{e.Class, e.Args} }

// Error returns "Class(args)" with the args in Python repr.
func (e Exception) Error() string {
	if t, ok := e.Args.(Tuple); ok {
		r := Repr(t)
		if len(t) == 1 { // ('x',) -> ('x')
			r = r[:len(r)-2] + ")"
		}
		return e.Class + r
	}
	return e.Class + "(" + Repr(e.Args) + ")"
}

// ExceptionFromMessage extracts the exception of an error reply. ok is false
// when m is not an error reply or its args are not (str, payload).
func ExceptionFromMessage(m Message) (exc Exception, ok bool) {
	if !m.IsError() {
		return Exception{}, false
	}
	t, ok := AsSeq(m.Args)
	if !ok || len(t) != 2 {
		return Exception{}, false
	}
	class, ok := t[0].(string)
	if !ok {
		return Exception{}, false
	}
	return Exception{Class: class, Args: t[1]}, true
}

// NewException returns an exception sent by its args, as Python does for
// exceptions with an empty __dict__.
func NewException(class string, args ...any) Exception {
	return Exception{Class: class, Args: argsTuple(args)}
}

// POSKeyError is the reply to loading an unknown oid: args (oid,).
func POSKeyError(oid []byte) Exception {
	return NewException(ClassPOSKeyError, oid)
}

// ReadOnlyError is the reply to a write on a read-only storage or
// connection: args ().
func ReadOnlyError() Exception {
	return NewException(ClassReadOnlyError)
}

// StorageTransactionError reports a transaction misuse, for example a second
// tpc_begin on a connection: args (message,).
func StorageTransactionError(message string) Exception {
	return NewException(ClassStorageTransactionError, message)
}

// ConflictError reports a write conflict on oid, committed being the
// current serial and read the one the client based its change on. className
// is the dotted class of the object ("" sends None). The payload is the
// exception's __dict__, in ZODB's attribute order: message, oid,
// class_name, serials.
func ConflictError(oid, committed, read []byte, className string) Exception {
	return Exception{Class: ClassConflictError, Args: conflictDict("database conflict error", oid, committed, read, className)}
}

// ReadConflictError reports that an object read in the transaction (via
// checkCurrentSerialInTransaction) was changed by another one; the shape is
// that of ConflictError with message "database read conflict error".
func ReadConflictError(oid, committed, read []byte) Exception {
	return Exception{Class: ClassReadConflictError, Args: conflictDict("database read conflict error", oid, committed, read, "")}
}

func conflictDict(message string, oid, committed, read []byte, className string) *Dict {
	var cn any
	if className != "" {
		cn = className
	}
	return NewDict(
		"message", message,
		"oid", oid,
		"class_name", cn,
		"serials", Tuple{committed, read},
	)
}

// BTreesConflictError reports a conflict BTrees could not resolve; its
// __dict__ holds p1, p2, p3 and reason.
func BTreesConflictError(p1, p2, p3, reason int64) Exception {
	return Exception{Class: ClassBTreesConflictError, Args: NewDict(
		"p1", p1, "p2", p2, "p3", p3, "reason", reason,
	)}
}

// KeyError is builtins.KeyError(key).
func KeyError(key any) Exception { return NewException(ClassKeyError, key) }

// TypeError is builtins.TypeError(message).
func TypeError(message string) Exception { return NewException(ClassTypeError, message) }

// ValueError is builtins.ValueError(message), for example for register with
// an unknown storage name.
func ValueError(message string) Exception { return NewException(ClassValueError, message) }

// VoteConflict is the entry a vote result carries for a store conflict the
// client must resolve itself (server option client-conflict-resolution):
// {'oid': oid, 'serials': (committed, read), 'data': data}, data being the
// client's rejected pickle.
func VoteConflict(oid, committed, read, data []byte) *Dict {
	return NewDict(
		"oid", oid,
		"serials", Tuple{committed, read},
		"data", data,
	)
}

var _ error = Exception{}
