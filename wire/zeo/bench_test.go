package zeo

import (
	"bytes"
	"testing"
)

// A typical loadBefore exchange: the request uses (oid, tid) as msgid and
// the reply carries a 200-byte object record.
func loadBeforeMessages() (req, reply Message) {
	o := []byte{0, 0, 0, 0, 0, 0, 0x12, 0x34}
	tid := []byte{0x03, 0xf6, 0xea, 0xc0, 0x2a, 0xaa, 0xaa, 0xab}
	serial := []byte{0x03, 0xf6, 0xea, 0xc0, 0x08, 0x88, 0x88, 0x88}
	data := append([]byte("\x80\x03cpersistent.mapping\nPersistentMapping\nq\x00.\x80\x03}q\x01X\x04\x00\x00\x00dataq\x02}q\x03"),
		bytes.Repeat([]byte("x"), 140)...)
	msgid := Tuple{o, tid}
	req = Message{MsgID: msgid, Flag: false, Method: "loadBefore", Args: Tuple{o, tid}}
	reply = NewReply(msgid, Tuple{data, serial, nil})
	return req, reply
}

func BenchmarkLoadBefore(b *testing.B) {
	req, reply := loadBeforeMessages()
	for _, c := range []Codec{PickleCodec{}, MsgpackCodec{}} {
		for _, m := range []struct {
			name string
			msg  Message
		}{{"request", req}, {"reply", reply}} {
			b.Run(c.Encoding().String()+"/"+m.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					p, err := c.Encode(m.msg)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := c.Decode(p); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
