package storage

import (
	"encoding/json"
	"testing"
	"time"
)

func TestTidFromTime(t *testing.T) {
	tests := []struct {
		time time.Time
		want string
	}{
		// Spec A.11 reference value.
		{time.Date(2024, 1, 1, 0, 0, 30, 0, time.UTC), "03f58e0080000000"},
		// Fixture tids: 2024-01-01T00:00:00Z + n seconds.
		{time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), "03f58e0000000000"},
		{time.Date(2024, 1, 1, 0, 0, 1, 0, time.UTC), "03f58e0004444444"},
		{time.Date(2024, 1, 1, 0, 0, 22, 0, time.UTC), "03f58e005ddddddd"},
		{time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC), "03f63c6000000000"},
	}
	for _, tt := range tests {
		if got := TidFromTime(tt.time).String(); got != tt.want {
			t.Errorf("TidFromTime(%s) = %s, want %s", tt.time, got, tt.want)
		}
	}
}

func TestTidTimeRoundTrip(t *testing.T) {
	for _, s := range []string{"03f58e0000000000", "03f58e0004444444", "03f58e005ddddddd", "03f63c6500000000"} {
		tid, err := ParseTid(s)
		if err != nil {
			t.Fatal(err)
		}
		back := TidFromTime(tid.Time())
		if d := int64(back) - int64(tid); d < -1 || d > 1 {
			t.Errorf("%s -> %s -> %s", tid, tid.Time(), back)
		}
	}
	tid, _ := ParseTid("03f58e0004444444")
	if got, want := tid.Seconds(), 1704067201.0; got < want-1e-6 || got > want+1e-6 {
		t.Errorf("Seconds() = %f, want %f", got, want)
	}
}

func TestLaterThan(t *testing.T) {
	mustTid := func(s string) Tid {
		tid, err := ParseTid(s)
		if err != nil {
			t.Fatal(err)
		}
		return tid
	}
	tests := []struct {
		name    string
		t, last Tid
		want    Tid
	}{
		{"newer wins", mustTid("03f58e0080000000"), mustTid("03f58e0000000000"), mustTid("03f58e0080000000")},
		{"equal bumps low word", mustTid("03f58e0080000000"), mustTid("03f58e0080000000"), mustTid("03f58e0080000001")},
		{"older bumps last", mustTid("03f58e0000000000"), mustTid("03f58e00ffff0000"), mustTid("03f58e00ffff0001")},
		// Low word full: the minute advances (23:59 on Jan 31 rolls into Feb 1).
		{"minute rollover", 0, TidFromTime(time.Date(2024, 1, 31, 23, 59, 0, 0, time.UTC)) | 0xffffffff,
			TidFromTime(time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC))},
	}
	for _, tt := range tests {
		if got := tt.t.LaterThan(tt.last); got != tt.want {
			t.Errorf("%s: %s.LaterThan(%s) = %s, want %s", tt.name, tt.t, tt.last, got, tt.want)
		}
	}
}

func TestNewTidStrictlyIncreasesWhenClockStepsBack(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	last := NewTid(now, 0)
	for i := 0; i < 100; i++ {
		next := NewTid(now.Add(-time.Duration(i)*time.Second), last)
		if next <= last {
			t.Fatalf("tid %s not after %s", next, last)
		}
		last = next
	}
}

func TestTidAndOidJSON(t *testing.T) {
	type rec struct {
		Tid Tid `json:"tid"`
		Oid Oid `json:"oid"`
	}
	in := rec{Tid: 0x040d6f24c1c55a11, Oid: 7}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"tid":"040d6f24c1c55a11","oid":"0000000000000007"}`; string(b) != want {
		t.Fatalf("JSON %s, want %s", b, want)
	}
	var out rec
	if err := json.Unmarshal(b, &out); err != nil || out != in {
		t.Fatalf("round trip: %+v %v", out, err)
	}
	if err := json.Unmarshal([]byte(`{"tid":"xyz"}`), &out); err == nil {
		t.Fatal("a tid that is not 16 hex digits was accepted")
	}
}
