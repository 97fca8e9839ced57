package client

import (
	"container/list"
	"sync"

	"github.com/zrs-go/zrs/storage"
)

// cache holds current revisions of objects, bounded in bytes, least
// recently used first out. Invalidations remove entries; a load that was
// in flight while its object was invalidated is not cached, because its
// answer may predate the invalidation.
type cache struct {
	mu       sync.Mutex
	entries  map[storage.Oid]*list.Element
	lru      list.List // of *cacheEntry, most recent at the front
	bytes    int
	limit    int
	inflight map[storage.Oid]*loadToken
	// invalidatedTo is the newest tid whose invalidations were applied.
	invalidatedTo storage.Tid
}

type cacheEntry struct {
	oid    storage.Oid
	data   []byte
	serial storage.Tid
}

type loadToken struct {
	count int
	stale bool
}

func newCache(limit int) *cache {
	return &cache{
		entries:  make(map[storage.Oid]*list.Element),
		limit:    limit,
		inflight: make(map[storage.Oid]*loadToken),
	}
}

func (c *cache) get(oid storage.Oid) ([]byte, storage.Tid, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[oid]
	if !ok {
		return nil, 0, false
	}
	c.lru.MoveToFront(el)
	e := el.Value.(*cacheEntry)
	return e.data, e.serial, true
}

// beginLoad registers a load of oid from the server.
func (c *cache) beginLoad(oid storage.Oid) *loadToken {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.inflight[oid]
	if t == nil {
		t = &loadToken{}
		c.inflight[oid] = t
	}
	t.count++
	return t
}

// endLoad finishes a load; data is cached as current unless the object
// was invalidated meanwhile. Pass data nil to only end the load.
func (c *cache) endLoad(oid storage.Oid, t *loadToken, data []byte, serial storage.Tid) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t.count--
	if t.count == 0 && c.inflight[oid] == t {
		delete(c.inflight, oid)
	}
	if data != nil && !t.stale {
		c.putLocked(oid, data, serial)
	}
}

// storeCommitted caches data this client committed at tid, unless a newer
// transaction has already been seen.
func (c *cache) storeCommitted(oid storage.Oid, data []byte, tid storage.Tid) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.invalidatedTo > tid {
		c.removeLocked(oid)
		return
	}
	if t := c.inflight[oid]; t != nil {
		t.stale = true
	}
	c.putLocked(oid, data, tid)
}

func (c *cache) putLocked(oid storage.Oid, data []byte, serial storage.Tid) {
	if c.limit <= 0 || len(data) > c.limit {
		return
	}
	c.removeLocked(oid)
	c.entries[oid] = c.lru.PushFront(&cacheEntry{oid: oid, data: data, serial: serial})
	c.bytes += len(data)
	for c.bytes > c.limit {
		c.removeLocked(c.lru.Back().Value.(*cacheEntry).oid)
	}
}

func (c *cache) removeLocked(oid storage.Oid) {
	if el, ok := c.entries[oid]; ok {
		c.bytes -= len(el.Value.(*cacheEntry).data)
		c.lru.Remove(el)
		delete(c.entries, oid)
	}
}

// invalidate drops oids changed by transaction tid.
func (c *cache) invalidate(tid storage.Tid, oids []storage.Oid) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, oid := range oids {
		c.removeLocked(oid)
		if t := c.inflight[oid]; t != nil {
			t.stale = true
		}
	}
	c.invalidatedTo = max(c.invalidatedTo, tid)
}

// clear empties the cache (the server could not say what changed).
func (c *cache) clear(tid storage.Tid) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries = make(map[storage.Oid]*list.Element)
	c.lru.Init()
	c.bytes = 0
	for _, t := range c.inflight {
		t.stale = true
	}
	c.invalidatedTo = tid
}

// len returns the number of cached objects.
func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
