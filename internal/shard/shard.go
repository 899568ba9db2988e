// Package shard splits work (nodes to poll) over the live heads by
// rendezvous hashing, a consistent hash: each key goes to the head with
// the highest hash of (head, key), so every head computes the same owner
// from the same list of heads, and when a head joins or leaves only the
// keys it gains or held move.
package shard

import "hash/fnv"

// Owner returns the head that owns key among heads ("" when there are
// none).
func Owner(key string, heads []string) string {
	var best string
	var bestW uint64
	for _, h := range heads {
		if w := weight(h, key); best == "" || w > bestW || (w == bestW && h < best) {
			best, bestW = h, w
		}
	}
	return best
}

// Mine returns the keys that head owns among heads. A head that is not in
// heads (it cannot see itself among the live heads: it is cut off) owns
// every key: work that is only read (power status) is better done twice
// than not at all.
func Mine[T any](items []T, key func(T) string, head string, heads []string) []T {
	found := false
	for _, h := range heads {
		found = found || h == head
	}
	if !found {
		return items
	}
	var out []T
	for _, it := range items {
		if Owner(key(it), heads) == head {
			out = append(out, it)
		}
	}
	return out
}

// weight mixes head and key (FNV-1a, then a 64-bit finalizer so that
// close names spread).
func weight(head, key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(head))
	h.Write([]byte{0})
	h.Write([]byte(key))
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
