// Package lru is a bounded map that forgets its least recently used entry
// first, safe for concurrent use.
package lru

import (
	"container/list"
	"sync"
)

// Cache holds at most its size of entries.
type Cache[K comparable, V any] struct {
	max     int
	mu      sync.Mutex
	entries map[K]*list.Element
	recent  list.List // of *entry[K, V], most recently used first
}

type entry[K comparable, V any] struct {
	key   K
	value V
}

// New returns a cache of at most max entries.
func New[K comparable, V any](max int) *Cache[K, V] {
	return &Cache[K, V]{max: max, entries: make(map[K]*list.Element)}
}

// Get returns the value of key and marks it used.
func (c *Cache[K, V]) Get(key K) (v V, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.entries[key]
	if el == nil {
		return v, false
	}
	c.recent.MoveToFront(el)
	return el.Value.(*entry[K, V]).value, true
}

// Add sets the value of key, forgetting the least recently used entry if
// the cache is full.
func (c *Cache[K, V]) Add(key K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.entries[key]; el != nil {
		el.Value.(*entry[K, V]).value = v
		c.recent.MoveToFront(el)
		return
	}
	c.entries[key] = c.recent.PushFront(&entry[K, V]{key, v})
	for len(c.entries) > c.max {
		oldest := c.recent.Back()
		c.recent.Remove(oldest)
		delete(c.entries, oldest.Value.(*entry[K, V]).key)
	}
}

// Remove forgets key.
func (c *Cache[K, V]) Remove(key K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.entries[key]; el != nil {
		c.recent.Remove(el)
		delete(c.entries, key)
	}
}

// Len returns how many entries the cache holds.
func (c *Cache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
