package zeo

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Hostile inputs of about 1 MiB must be decoded (or refused) in time and
// memory roughly linear in their size.
func TestAdversarialInputs(t *testing.T) {
	const n = 200_000
	rep := strings.Repeat
	u32 := func(v int) string {
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], uint32(v))
		return string(b[:])
	}
	long := make([]byte, 1<<20)
	for i := range long {
		long[i] = byte(i)
	}
	pickles := map[string][]byte{
		"huge tuple key": pk("}(" + rep("K\x01", n) + "tK\x01s"),
		"deep tuple key": pk("}" + "X" + u32(1<<19) + rep("x", 1<<19) + rep("\x85", MaxDepth-1) + "K\x01s"),
		"many dict keys": pk("}(" + strings.Join(func() []string {
			s := make([]string, n/4)
			for i := range s {
				s[i] = "J" + u32(i) + "N"
			}
			return s
		}(), "") + "u"),
		"same key many times":      pk("}(" + rep("K\x01N", n) + "u"),
		"nested marks":             pk(rep("(", n) + rep("t", n)),
		"nested lists":             pk(rep("]", n) + rep("a", n-1)),
		"many SETITEMS batches":    pk("}" + rep("(K\x01K\x02u", n/4)),
		"LONG4 of 1 MiB":           pk("\x8b" + u32(len(long)) + string(long)),
		"many LONG1":               pk("(" + rep("\x8a\xff"+rep("\x7f", 255), 4000) + "l"),
		"memo writes":              pk("N" + rep("q\x00", n)),
		"BINUNICODE of 1 MiB":      pk("X" + u32(1<<20) + rep("\xc3\xa9", 1<<19)),
		"lists appended to a list": pk("](" + rep("]", n) + "e"),
		"one big bytes read often": pk("(B" + u32(1<<18) + rep("x", 1<<18) + "q\x00" + rep("h\x00", n) + "t"),
		"one tuple read often":     pk("(" + rep("N", 1000) + "tq\x00(" + rep("h\x00", n) + "t"),
	}
	for name, p := range pickles {
		start := time.Now()
		_, err := PickleCodec{}.DecodeValue(p)
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("pickle %s (%d bytes): %v (err %v)", name, len(p), d, err)
		} else {
			t.Logf("pickle %s (%d bytes): %v (err %v)", name, len(p), d, err)
		}
	}
	var mp bytes.Buffer
	mp.WriteString("\xdd" + "\x00\x03\x0d\x40") // array32 of 200000
	for range n {
		mp.WriteString("\x81\xa1k\xc0") // {'k': None}
	}
	msgpacks := map[string][]byte{
		"array of maps": mp.Bytes(),
		"map of distinct keys": func() []byte {
			var b bytes.Buffer
			b.WriteString("\xdf\x00\x00\xc3\x50") // map32 of 50000
			for i := range 50000 {
				b.WriteString(fmt.Sprintf("\xa7k%06d\xc0", i))
			}
			return b.Bytes()
		}(),
		"nested arrays": []byte(rep("\x91", 1<<20) + "\xc0"),
	}
	for name, p := range msgpacks {
		start := time.Now()
		_, err := MsgpackCodec{}.DecodeValue(p)
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("msgpack %s (%d bytes): %v (err %v)", name, len(p), d, err)
		} else {
			t.Logf("msgpack %s (%d bytes): %v (err %v)", name, len(p), d, err)
		}
	}
}
