package integration

import (
	"strings"
	"testing"
	"time"
)

// TestZKHarness checks the ZooKeeper harness itself: a standalone server
// that stops and starts again, and an ensemble that elects a new leader
// when its leader is killed.
func TestZKHarness(t *testing.T) {
	t.Run("standalone", func(t *testing.T) {
		start := time.Now()
		zk := ZKStandalone(t)
		t.Logf("standalone serving after %s", time.Since(start).Round(time.Millisecond))
		if m := zk.Mode(0); m != "standalone" {
			t.Fatalf("mode %q, want standalone", m)
		}
		if zk.Leader() != 0 {
			t.Fatalf("Leader() = %d, want 0", zk.Leader())
		}
		zk.Stop(0)
		if out, err := ZKCommand(zk.Server(0), "ruok"); err == nil {
			t.Fatalf("stopped server answered ruok: %q", out)
		}
		start = time.Now()
		zk.Start(0)
		t.Logf("restarted after %s", time.Since(start).Round(time.Millisecond))
		if out, err := ZKCommand(zk.Server(0), "ruok"); err != nil || out != "imok" {
			t.Fatalf("ruok after restart: %q, %v", out, err)
		}
		if !strings.Contains(zk.Log(0), "start #2") {
			t.Fatalf("log does not record the restart:\n%s", zk.Log(0))
		}
	})
	t.Run("ensemble", func(t *testing.T) {
		start := time.Now()
		zk := ZKEnsemble(t, 3)
		t.Logf("ensemble serving after %s", time.Since(start).Round(time.Millisecond))
		if len(zk.Servers()) != 3 {
			t.Fatalf("Servers() = %v", zk.Servers())
		}
		leader := zk.Leader()
		if leader < 0 {
			t.Fatal("no leader")
		}
		zk.Kill(leader)
		start = time.Now()
		zk.WaitServing(ZKStartTimeout)
		next := zk.Leader()
		t.Logf("server %d took over from %d after %s", next, leader, time.Since(start).Round(time.Millisecond))
		if next == leader || next < 0 {
			t.Fatalf("leader after killing %d: %d", leader, next)
		}
		zk.Start(leader)
		if m := zk.Mode(leader); m != "follower" {
			t.Fatalf("restarted old leader is %q, want follower", m)
		}
	})
}
