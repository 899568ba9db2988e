package shard

import (
	"fmt"
	"testing"
)

func keys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("n%05d", i)
	}
	return out
}

// TestBalanceAndMovement: 10,000 nodes over three heads are split within
// 10% of a third each; when a head leaves, only its nodes move, and when
// it comes back they move back.
func TestBalanceAndMovement(t *testing.T) {
	nodes := keys(10000)
	three := []string{"h1", "h2", "h3"}
	count := map[string]int{}
	before := map[string]string{}
	for _, k := range nodes {
		o := Owner(k, three)
		count[o]++
		before[k] = o
	}
	for _, h := range three {
		if c := count[h]; c < 3000 || c > 3667 {
			t.Errorf("%s owns %d of 10000 nodes", h, c)
		}
	}
	two := []string{"h1", "h3"}
	for _, k := range nodes {
		after := Owner(k, two)
		if before[k] != "h2" && after != before[k] {
			t.Fatalf("%s moved from %s to %s though %s is still alive", k, before[k], after, before[k])
		}
		if after == "h2" {
			t.Fatalf("%s still on the dead head", k)
		}
		if back := Owner(k, three); back != before[k] {
			t.Fatalf("%s: %s when h2 is back, was %s", k, back, before[k])
		}
	}
}

// TestMine: every node is owned by exactly one live head; a head that does
// not see itself among the live heads keeps every node.
func TestMine(t *testing.T) {
	nodes := keys(300)
	heads := []string{"a", "b", "c"}
	seen := map[string]int{}
	for _, h := range heads {
		for _, k := range Mine(nodes, func(s string) string { return s }, h, heads) {
			seen[k]++
		}
	}
	for _, k := range nodes {
		if seen[k] != 1 {
			t.Fatalf("%s owned %d times", k, seen[k])
		}
	}
	for _, tc := range []struct {
		name  string
		heads []string
		want  int
	}{
		{"cut off", []string{"a", "b"}, 300},
		{"none known", nil, 300},
		{"alone", []string{"c"}, 300},
	} {
		if got := len(Mine(nodes, func(s string) string { return s }, "c", tc.heads)); got != tc.want {
			t.Errorf("%s: c owns %d, want %d", tc.name, got, tc.want)
		}
	}
	if Owner("x", nil) != "" {
		t.Error("an owner among no heads")
	}
}
