package storage

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"time"
)

// Tid is a ZODB transaction id: two big-endian uint32s encoding a UTC time
// (see TidFromTime). Tids of a storage are strictly increasing.
type Tid uint64

// Oid is a ZODB object id.
type Oid uint64

// MaxTid is the largest tid ZODB uses as "no upper bound" in loadBefore.
const MaxTid Tid = 0x7fffffffffffffff

// Bytes returns the 8-byte big-endian form used on disk and on the wire.
func (t Tid) Bytes() []byte { return u64bytes(uint64(t)) }

// String returns the 16 hex digits ZODB tools print.
func (t Tid) String() string { return hex.EncodeToString(t.Bytes()) }

// Bytes returns the 8-byte big-endian form used on disk and on the wire.
func (o Oid) Bytes() []byte { return u64bytes(uint64(o)) }

// String returns the 16 hex digits ZODB tools print.
func (o Oid) String() string { return hex.EncodeToString(o.Bytes()) }

func u64bytes(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

// ParseTid parses 16 hex digits.
func ParseTid(s string) (Tid, error) {
	v, err := parseHex64(s)
	return Tid(v), err
}

// ParseOid parses 16 hex digits.
func ParseOid(s string) (Oid, error) {
	v, err := parseHex64(s)
	return Oid(v), err
}

// MarshalText writes the 16 hex digits ZODB tools show, so that a Tid in
// JSON (logs, status) reads like everywhere else rather than as a number.
func (t Tid) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText parses 16 hex digits.
func (t *Tid) UnmarshalText(b []byte) error {
	v, err := parseHex64(string(b))
	*t = Tid(v)
	return err
}

// MarshalText writes the 16 hex digits ZODB tools show.
func (o Oid) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText parses 16 hex digits.
func (o *Oid) UnmarshalText(b []byte) error {
	v, err := parseHex64(string(b))
	*o = Oid(v)
	return err
}

func parseHex64(s string) (uint64, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 8 {
		return 0, fmt.Errorf("%q is not 16 hex digits", s)
	}
	return binary.BigEndian.Uint64(b), nil
}

// secondsPerUnit is TimeStamp's SCONV: the low word counts 60/2^32 seconds.
const secondsPerUnit = 60.0 / 65536 / 65536

// TidFromTime builds the tid of t exactly as persistent.TimeStamp does from
// gmtime fields and a float second: minutes since 1900 in a calendar whose
// months all have 31 days, and the second-within-minute in units of 60/2^32 s.
func TidFromTime(t time.Time) Tid {
	t = t.UTC()
	sec := float64(t.Second()) + float64(t.Nanosecond())/1e9
	return makeTid(t.Year(), int(t.Month()), t.Day(), t.Hour(), t.Minute(), sec)
}

func makeTid(year, month, day, hour, minute int, second float64) Tid {
	hi := (((year-1900)*12+month-1)*31+day-1)*24 + hour
	hi = hi*60 + minute
	lo := uint32(second / secondsPerUnit)
	return Tid(uint64(uint32(hi))<<32 | uint64(lo))
}

// tidFromUnix is newTid's stamp for a float epoch time (time.time()), split
// like gmtime(now)[:5] + (now % 60,).
func tidFromUnix(now float64) Tid {
	whole := math.Floor(now)
	t := time.Unix(int64(whole), 0).UTC()
	return makeTid(t.Year(), int(t.Month()), t.Day(), t.Hour(), t.Minute(), math.Mod(now, 60))
}

// fields decodes the calendar fields of a tid (TimeStamp's unpacking).
func (t Tid) fields() (year, month, day, hour, minute int, second float64) {
	hi := uint32(t >> 32)
	minute = int(hi % 60)
	hour = int(hi / 60 % 24)
	day = int(hi/1440%31) + 1
	month = int(hi/44640%12) + 1
	year = int(hi/535680) + 1900
	second = float64(uint32(t)) * secondsPerUnit
	return
}

// Time returns the UTC time the tid encodes, to the nanosecond nearest to
// TimeStamp.timeTime().
func (t Tid) Time() time.Time {
	y, mo, d, h, mi, s := t.fields()
	base := time.Date(y, time.Month(mo), d, h, mi, 0, 0, time.UTC)
	return base.Add(time.Duration(math.Round(s * 1e9)))
}

// Seconds returns the tid's time as float seconds since the epoch, as
// TimeStamp.timeTime() does (history and undoLog report it).
func (t Tid) Seconds() float64 {
	y, mo, d, h, mi, s := t.fields()
	base := time.Date(y, time.Month(mo), d, h, mi, 0, 0, time.UTC)
	return float64(base.Unix()) + s
}

// LaterThan returns t if it is greater than last, else the smallest tid
// greater than last (TimeStamp.laterThan): the low word is incremented, and
// when it overflows the minute advances on the real calendar.
func (t Tid) LaterThan(last Tid) Tid {
	if t > last {
		return t
	}
	if uint32(last) != math.MaxUint32 {
		return last + 1
	}
	y, mo, d, h, mi, _ := last.fields()
	next := time.Date(y, time.Month(mo), d, h, mi, 0, 0, time.UTC).Add(time.Minute)
	return makeTid(next.Year(), int(next.Month()), next.Day(), next.Hour(), next.Minute(), 0)
}

// NewTid returns the tid for a commit starting at now that must follow last
// (ZODB's newTid / BaseStorage.tpc_begin).
func NewTid(now time.Time, last Tid) Tid {
	epoch := float64(now.UnixNano()) / 1e9
	return tidFromUnix(epoch).LaterThan(last)
}
