package registry

import "time"

// SetUpdateEvery stretches the node record's rate limit for a test; call
// the returned function to restore it.
func SetUpdateEvery(d time.Duration) (restore func()) {
	old := updateEvery
	updateEvery = d
	return func() { updateEvery = old }
}

// SetWaitLog changes when Connect logs that it is still waiting.
func SetWaitLog(first, every time.Duration) (restore func()) {
	old := waitLog
	waitLog = [2]time.Duration{first, every}
	return func() { waitLog = old }
}

// MarkPast pretends that session id was an earlier session of s.
func (s *Session) MarkPast(id int64) {
	s.mu.Lock()
	s.past[id] = true
	s.mu.Unlock()
}
