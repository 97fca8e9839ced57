package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Sizes of the frames the network baseline exchanges: those of a pickled
// loadBefore call and of its reply for a 100-byte object, so that the
// baseline moves what a load moves.
const (
	baselineRequest = 60
	baselineReply   = 150
)

// pingPong measures what this machine allows a request/response protocol
// in Go over network ("tcp": loopback; "unix": a socket created in dir),
// with nothing else in the way: conns connections, each running one round
// trip at a time of a small length-prefixed request and reply. Each side
// is one goroutine per connection that reads a frame and writes its
// answer inline, one system call each way, so no server can do fewer
// system calls or goroutine switches per round trip. It returns the round
// trips per second.
func pingPong(ctx context.Context, network, dir string, conns int, d time.Duration) (float64, error) {
	addr := "127.0.0.1:0"
	if network == "unix" {
		sockDir, err := os.MkdirTemp(dir, "zrs-bench-net-")
		if err != nil {
			return 0, err
		}
		defer os.RemoveAll(sockDir)
		addr = filepath.Join(sockDir, "ping.sock")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				_ = echoFrames(nc, baselineReply)
			}()
		}
	}()

	clients := make([]net.Conn, conns)
	defer func() {
		for _, nc := range clients {
			if nc != nil {
				nc.Close()
			}
		}
	}()
	var dialer net.Dialer
	for i := range clients {
		if clients[i], err = dialer.DialContext(ctx, network, ln.Addr().String()); err != nil {
			return 0, err
		}
	}
	var (
		cwg      sync.WaitGroup
		mu       sync.Mutex
		total    int
		firstErr error
	)
	start := time.Now()
	end := start.Add(d)
	for _, nc := range clients {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			n, err := pingFrames(ctx, nc, end)
			mu.Lock()
			defer mu.Unlock()
			total += n
			if firstErr == nil {
				firstErr = err
			}
		}()
	}
	cwg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(total) / elapsed.Seconds(), nil
}

// pingFrames sends requests and reads their replies until end.
func pingFrames(ctx context.Context, nc net.Conn, end time.Time) (int, error) {
	req := frameOf(baselineRequest)
	br := bufio.NewReaderSize(nc, 32<<10)
	var buf []byte
	n := 0
	for ctx.Err() == nil && time.Now().Before(end) {
		if _, err := nc.Write(req); err != nil {
			return n, err
		}
		var err error
		if buf, err = readFrameInto(br, buf); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// echoFrames answers every frame read from nc with a reply of replySize
// bytes, until the peer closes the connection.
func echoFrames(nc net.Conn, replySize int) error {
	reply := frameOf(replySize)
	br := bufio.NewReaderSize(nc, 32<<10)
	var buf []byte
	for {
		var err error
		if buf, err = readFrameInto(br, buf); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if _, err := nc.Write(reply); err != nil {
			return err
		}
	}
}

// frameOf returns a frame with a payload of n bytes.
func frameOf(n int) []byte {
	f := make([]byte, 4+n)
	binary.BigEndian.PutUint32(f, uint32(n))
	return f
}

// readFrameInto reads one length-prefixed frame, reusing buf.
func readFrameInto(br *bufio.Reader, buf []byte) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return buf, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	if n > 1<<20 {
		return buf, fmt.Errorf("network baseline: frame of %d bytes", n)
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(br, buf); err != nil {
		return buf, err
	}
	return buf, nil
}
