package zrs

import (
	"testing"

	"github.com/zrs-go/zrs/storage"
)

// benchTxn is a 10-record transaction with 300-byte records.
func benchTxn() *storage.TxnRecord {
	txn := testTxn(0x03f58e0000000010, 10)
	for i := range txn.Records {
		txn.Records[i].Data = make([]byte, 300)
		txn.Records[i].DataTxn = 0
	}
	return txn
}

func txnBytes(txn *storage.TxnRecord) int64 {
	n := 0
	for _, r := range txn.Records {
		n += len(r.Data)
	}
	return int64(n)
}

// BenchmarkZRS20 encodes a 10-record transaction into zc.zrs frames and
// feeds them to a receiver.
func BenchmarkZRS20(b *testing.B) {
	txn := benchTxn()
	enc := NewTxnEncoder(0)
	rcv := NewReceiver(0, ReceiverOptions{})
	var frames [][]byte
	b.SetBytes(txnBytes(txn))
	b.ReportAllocs()
	for b.Loop() {
		frames = frames[:0]
		if err := enc.Encode(txn, func(p []byte) error {
			frames = append(frames, append([]byte(nil), p...))
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		var got *storage.TxnRecord
		for _, p := range frames {
			t, err := rcv.Feed(p)
			if err != nil {
				b.Fatal(err)
			}
			if t != nil {
				got = t
			}
		}
		if got == nil || len(got.Records) != 10 {
			b.Fatal("no transaction")
		}
	}
}

// BenchmarkGo1 encodes and decodes a 10-record transaction as one
// zrs-go/1 Txn message.
func BenchmarkGo1(b *testing.B) {
	txn := benchTxn()
	var buf []byte
	b.SetBytes(txnBytes(txn))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendGo1(buf[:0], &Txn{Record: txn}); err != nil {
			b.Fatal(err)
		}
		m, err := DecodeGo1(buf)
		if err != nil || len(m.(*Txn).Record.Records) != 10 {
			b.Fatal(err)
		}
	}
}

// BenchmarkTxnHash hashes a 10-record transaction.
func BenchmarkTxnHash(b *testing.B) {
	txn := benchTxn()
	b.SetBytes(txnBytes(txn))
	b.ReportAllocs()
	for b.Loop() {
		TxnHash(txn)
	}
}
