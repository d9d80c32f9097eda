package boltstore

import "time"

// abandonJournal stops s's journal as a crash would: the applier stops,
// nothing more is applied, the file is closed.
func abandonJournal(s *Store) {
	if s.j == nil {
		return
	}
	s.closeOnce.Do(func() {}) // a later Close must not apply
	s.j.mu.Lock()
	s.j.closed = true
	s.j.mu.Unlock()
	s.j.wmu.Lock()
	close(s.j.stop)
	<-s.j.stopped
	_ = s.j.f.Close()
	s.j.wmu.Unlock()
	s.mergeMu.Lock()
	s.closed = true
	s.mergeMu.Unlock()
	s.mergeWG.Wait()
}

// holdApplies keeps s's applier from applying on its own: only a reader's
// sync, a direct write, a full journal or Close apply.
func holdApplies(s *Store) {
	s.j.mu.Lock()
	s.j.applyAt, s.j.delay = 1<<30, time.Hour
	s.j.mu.Unlock()
}
