package clustertest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/netbootui/netbootui/internal/clustertest"
	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/image"
)

// TestImagesFollow: a generation imported and published on one head is
// fetched by the two others from it, checked against its manifest, and
// becomes their current one too (a node's boot script on the third head
// names it); a generation whose files do not match the manifest a head
// announced is refused, and never enters the other heads' stores.
func TestImagesFollow(t *testing.T) {
	heads := clustertest.Start(t, 3, inv, clustertest.Options{})
	dir := t.TempDir()
	files := map[string]string{}
	for _, f := range image.BootFiles {
		files[f] = filepath.Join(dir, f)
		os.WriteFile(files[f], bytes.Repeat([]byte(f), 20000), 0o644)
	}
	src := heads[0].Env.D.Images()
	m, err := src.Import("img", files, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Publish("img", m.ID); err != nil {
		t.Fatal(err)
	}
	for _, h := range heads[1:] {
		clustertest.Eventually(t, h.Name+" has the generation, current", func() bool {
			cur, _ := h.Env.D.Images().Current("img")
			return cur == m.ID
		})
		for _, f := range image.BootFiles {
			p, err := h.Env.D.Images().Path("img", m.ID, f)
			if err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, bytes.Repeat([]byte(f), 20000)) {
				t.Errorf("%s's %s differs (%v)", h.Name, f, err)
			}
		}
	}
	resp, err := http.Get(heads[2].Env.HTTPBase() + "/boot/52:54:00:aa:00:01.ipxe")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), m.ID) {
		t.Errorf("n1's boot script on h3 does not name %s:\n%s", m.ID, body)
	}

	// A head announces a generation whose bytes are not what it says.
	var tries atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tries.Add(1)
		w.Write(bytes.Repeat([]byte("x"), 20000))
	}))
	defer evil.Close()
	fake := *m
	fake.ID = "00000000000000aa"
	docs := heads[0].Store.Documents()
	clustertest.Eventually(t, "the fake generation is announced", func() bool {
		data, rev, err := docs.Get(daemon.ImagesDocument)
		if err != nil {
			return false
		}
		var doc map[string]any
		if json.Unmarshal(data, &doc) != nil {
			return false
		}
		gens := doc["generations"].(map[string]any)
		gens["img/"+fake.ID] = map[string]any{"manifest": fake, "heads": map[string]string{"evil": evil.URL}}
		b, _ := json.Marshal(doc)
		_, err = docs.Put(daemon.ImagesDocument, b, rev)
		return err == nil
	})
	// Every head tries it (none has it), each more than once.
	clustertest.Eventually(t, "the heads try the fake generation", func() bool { return tries.Load() >= 6 })
	for _, h := range heads {
		if _, err := h.Env.D.Images().Generation("img", fake.ID); err == nil {
			t.Errorf("%s took the generation whose files do not match its manifest", h.Name)
		}
		if cur, _ := h.Env.D.Images().Current("img"); cur != m.ID {
			t.Errorf("%s's current generation is %s", h.Name, cur)
		}
	}
}
