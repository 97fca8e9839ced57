package zeo

import "fmt"

// ReplyMethod is the method name of replies and heartbeats.
const ReplyMethod = ".reply"

// Reply flags as the Python server sends them (an int, not a bool).
const (
	FlagResult int64 = 0 // normal reply
	FlagError  int64 = 2 // error reply: args are (class path, payload)
)

// Message is one ZEO 5 message, the 4-tuple (msgid, flag, method, args) of
// spec B.3.
//
// MsgID and Flag are kept exactly as decoded so that echoing or re-encoding
// them reproduces the peer's bytes: MsgID is usually an int64 but is the
// (oid, tid) Tuple for loadBefore and must be echoed verbatim; Flag is a
// bool in calls (False sync, True async) and an int64 in replies.
type Message struct {
	MsgID  any
	Flag   any
	Method string
	Args   any // a Tuple for calls; the result or error payload for replies
}

// Codec encodes and decodes messages in one encoding. Implementations are
// stateless and safe for concurrent use.
type Codec interface {
	// Encoding returns the handshake letter of the codec.
	Encoding() Encoding
	// Encode returns the frame payload for m, byte-for-byte what the Python
	// implementation produces for the same message.
	Encode(m Message) ([]byte, error)
	// EncodeFrame returns the payload of Encode with its length prefix, a
	// whole frame ready to be written.
	EncodeFrame(m Message) ([]byte, error)
	// Decode parses a frame payload. The result does not alias p.
	Decode(p []byte) (Message, error)
}

// NewCall returns a synchronous call (msgid, False, method, args).
func NewCall(msgid int64, method string, args ...any) Message {
	return Message{MsgID: msgid, Flag: false, Method: method, Args: argsTuple(args)}
}

// NewAsync returns an asynchronous call (0, True, method, args), the form of
// client one-way calls and of server notifications such as
// invalidateTransaction and info.
func NewAsync(method string, args ...any) Message {
	return Message{MsgID: int64(0), Flag: true, Method: method, Args: argsTuple(args)}
}

// NewReply returns the reply (msgid, 0, ".reply", result) to a call whose
// message id was msgid.
func NewReply(msgid, result any) Message {
	return Message{MsgID: msgid, Flag: FlagResult, Method: ReplyMethod, Args: result}
}

// NewErrorReply returns the error reply (msgid, 2, ".reply", (class, args)).
func NewErrorReply(msgid any, exc Exception) Message {
	return Message{MsgID: msgid, Flag: FlagError, Method: ReplyMethod, Args: exc.Tuple()}
}

// NewHeartbeat returns the client keep-alive message (-1, 0, ".reply", None).
func NewHeartbeat() Message {
	return Message{MsgID: int64(-1), Flag: FlagResult, Method: ReplyMethod}
}

func argsTuple(args []any) Tuple {
	if args == nil {
		return Tuple{}
	}
	return Tuple(args)
}

// IsReply reports whether m is a reply (or a heartbeat).
func (m Message) IsReply() bool { return m.Method == ReplyMethod }

// IsHeartbeat reports whether m is the client keep-alive (-1, 0, ".reply",
// None), which a server must ignore.
func (m Message) IsHeartbeat() bool {
	id, ok := toInt64(m.MsgID)
	return ok && id == -1 && m.IsReply()
}

// IsAsync reports whether m is a call with a true flag, i.e. one that gets
// no reply.
func (m Message) IsAsync() bool { return !m.IsReply() && Truthy(m.Flag) }

// IsError reports whether m is an error reply (any truthy reply flag).
func (m Message) IsError() bool { return m.IsReply() && Truthy(m.Flag) }

// String returns the Python repr of the message tuple.
func (m Message) String() string {
	return Repr(Tuple{m.MsgID, m.Flag, m.Method, m.Args})
}

// messageFromValue checks the shape of a decoded top-level value.
func messageFromValue(v any) (Message, error) {
	t, ok := v.(Tuple)
	if !ok || len(t) != 4 {
		return Message{}, fmt.Errorf("top-level %s is not a (msgid, flag, method, args) tuple: %w", describe(v), ErrMalformed)
	}
	method, ok := t[2].(string)
	if !ok {
		return Message{}, fmt.Errorf("method name is a %s, not a str: %w", TypeName(t[2]), ErrMalformed)
	}
	return Message{MsgID: t[0], Flag: t[1], Method: method, Args: t[3]}, nil
}

func describe(v any) string {
	switch v := v.(type) {
	case Tuple:
		return fmt.Sprintf("tuple of length %d", len(v))
	case List:
		return fmt.Sprintf("list of length %d", len(v))
	}
	return TypeName(v)
}
