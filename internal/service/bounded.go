package service

// boundedMap is a map with a bound on its entries and on their total size,
// for the service's caches (cache.go): whatever callers ask for, the
// memory a cache holds stays under the bound.
//
// Two generations bound it without per-entry bookkeeping, as in
// verifiedCache: entries go to cur; when cur reaches half of either bound
// it becomes prev and the old prev is dropped. Lookups see both, so an
// entry lives between half a bound's and a whole bound's worth of inserts.
// Dropped generations are new maps, not cleared ones: clear() keeps a Go
// map's buckets, so a map that once held a flood would hold its memory for
// ever.
//
// It is not safe for concurrent use; cache.mu guards it. get does not
// write, so readers may share a read lock.
type boundedMap[K comparable, V any] struct {
	halfEntries int
	halfBytes   int
	size        func(K, V) int // bytes an entry holds (approximately)

	cur, prev           map[K]V
	curBytes, prevBytes int
}

func newBoundedMap[K comparable, V any](maxEntries, maxBytes int, size func(K, V) int) *boundedMap[K, V] {
	return &boundedMap[K, V]{halfEntries: max(maxEntries/2, 1), halfBytes: max(maxBytes/2, 1), size: size, cur: map[K]V{}}
}

func (m *boundedMap[K, V]) get(k K) (V, bool) {
	if v, ok := m.cur[k]; ok {
		return v, true
	}
	v, ok := m.prev[k]
	return v, ok
}

// put stores k; an entry bigger than half the byte bound is not stored.
func (m *boundedMap[K, V]) put(k K, v V) {
	n := m.size(k, v)
	if n > m.halfBytes {
		return
	}
	if old, ok := m.cur[k]; ok {
		m.curBytes -= m.size(k, old)
	} else if len(m.cur) >= m.halfEntries || m.curBytes+n > m.halfBytes {
		m.prev, m.prevBytes = m.cur, m.curBytes
		m.cur, m.curBytes = map[K]V{}, 0
	}
	m.cur[k] = v
	m.curBytes += n
}

// reset drops every entry.
func (m *boundedMap[K, V]) reset() {
	m.cur, m.prev = map[K]V{}, nil
	m.curBytes, m.prevBytes = 0, 0
}

// len is the number of entries held (an entry may be counted in both
// generations).
func (m *boundedMap[K, V]) len() int { return len(m.cur) + len(m.prev) }

// bytes is the size of the entries held.
func (m *boundedMap[K, V]) bytes() int { return m.curBytes + m.prevBytes }
