package zeo

import (
	"errors"
	"testing"
)

func TestHandshake(t *testing.T) {
	for _, tc := range []struct {
		in   string
		enc  Encoding
		ruok bool
		ok   bool
	}{
		{"Z5", Pickle, false, true},
		{"M5", Msgpack, false, true},
		{"ruok", 0, true, true},
		{"Z4", 0, false, false},
		{"X5", 0, false, false},
		{"Z51", 0, false, false},
		{"z5", 0, false, false},
		{"RUOK", 0, false, false},
		{"", 0, false, false},
		{"Z", 0, false, false},
		{"\x80\x03", 0, false, false},
	} {
		enc, ruok, err := ParseClientHandshake([]byte(tc.in))
		if tc.ok != (err == nil) || enc != tc.enc || ruok != tc.ruok {
			t.Errorf("%q: got %v, %v, %v", tc.in, enc, ruok, err)
		}
		if err != nil && !errors.Is(err, ErrBadHandshake) {
			t.Errorf("%q: %v does not wrap ErrBadHandshake", tc.in, err)
		}
	}
	for _, tc := range []struct {
		in  string
		enc Encoding
		ok  bool
	}{
		{"Z5", Pickle, true},
		{"M5", Msgpack, true},
		{"Z6", Pickle, true}, // the client settles on min("6", "5")
		{"Z4", 0, false},
		{"Z310", 0, false},
		{"Q5", 0, false},
		{"5", 0, false},
	} {
		enc, err := ParseAnnouncement([]byte(tc.in))
		if tc.ok != (err == nil) || enc != tc.enc || (err != nil && !errors.Is(err, ErrBadHandshake)) {
			t.Errorf("announcement %q: got %v, %v", tc.in, enc, err)
		}
	}
	if string(Pickle.Announcement()) != "Z5" || string(Msgpack.Announcement()) != "M5" || Encoding('x').Announcement() != nil {
		t.Error("Announcement")
	}
	if Pickle.Codec().Encoding() != Pickle || Msgpack.Codec().Encoding() != Msgpack || Encoding(0).Codec() != nil {
		t.Error("Codec")
	}
	if Pickle.String() != "Z" || Encoding(1).String() != "Encoding(0x1)" {
		t.Error("String")
	}
	_, _, err := ParseClientHandshake(make([]byte, 1000))
	if err == nil || len(err.Error()) > 400 {
		t.Errorf("long handshake error not abbreviated: %v", err)
	}
}
