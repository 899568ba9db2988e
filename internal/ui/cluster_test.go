package ui

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/netbootui/netbootui/internal/apitype"
)

// clusterBackend is the fake daemon seen through several heads' sockets:
// its status names the head that answers.
type clusterBackend struct {
	*fakeBackend
	mu     sync.Mutex
	head   string
	quorum bool
}

func (b *clusterBackend) Status(ctx context.Context) (apitype.Status, error) {
	st, err := b.fakeBackend.Status(ctx)
	b.mu.Lock()
	defer b.mu.Unlock()
	st.Cluster = &apitype.ClusterStatus{Head: b.head, Quorum: b.quorum}
	return st, err
}

func (b *clusterBackend) set(head string, quorum bool) {
	b.mu.Lock()
	b.head, b.quorum = head, quorum
	b.mu.Unlock()
}

// TestHeadInTitle: on several heads the title names the head the console
// is on; when its head dies (a call fails) the reconnect reaches the next
// head, the title names it and the status line says the console moved; a
// head without the quorum says so in the title. One head: no note.
func TestHeadInTitle(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		head                  string
		quorum                bool
		title, nowHead, flash string
	}{
		{"moves to h2", "h1", true, "head h1 · rev ", "h2", "head h1 is gone: now on head h2"},
		{"no quorum", "h3", false, "head h3, no quorum · rev ", "h3", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fb := &fakeBackend{nodes: testCluster(5), rev: 7, images: testImages()}
			be := &clusterBackend{fakeBackend: fb}
			be.set(tc.head, tc.quorum)
			hs := &harness{t: t, be: fb, now: epoch}
			hs.m = New(be, Options{Dark: true, Now: func() time.Time { return hs.now }, NoStream: true, TempDir: t.TempDir(), ClockEvery: time.Millisecond})
			t.Cleanup(hs.m.Close)
			hs.send(tea.WindowSizeMsg{Width: 100, Height: 20})
			hs.run(hs.m.Init())
			title := strings.SplitN(hs.screen(), "\n", 2)[0]
			if !strings.Contains(title, tc.title) {
				t.Fatalf("title %q lacks %q", title, tc.title)
			}
			be.set(tc.nowHead, tc.quorum)
			// The head's socket is gone: the reconnect (the harness runs its
			// tick) reaches the next head.
			hs.send(statusMsg{err: errDown})
			screen := hs.screen()
			if title := strings.SplitN(screen, "\n", 2)[0]; !strings.Contains(title, "head "+tc.nowHead) {
				t.Errorf("title after the reconnect %q lacks head %s", title, tc.nowHead)
			}
			if tc.flash != "" && !strings.Contains(screen, tc.flash) {
				t.Errorf("screen lacks %q:\n%s", tc.flash, screen)
			}
			if tc.flash == "" && strings.Contains(screen, "is gone") {
				t.Errorf("a move flashed on the same head:\n%s", screen)
			}
		})
	}
	hs := newHarness(t, 5, 100, 20)
	if title := strings.SplitN(hs.screen(), "\n", 2)[0]; strings.Contains(title, "head ") {
		t.Errorf("a single head's title names a head: %q", title)
	}
}
