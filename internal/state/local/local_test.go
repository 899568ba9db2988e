package local_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netbootui/netbootui/internal/state"
	"github.com/netbootui/netbootui/internal/state/local"
	"github.com/netbootui/netbootui/internal/state/statetest"
)

// TestConformance runs internal/state's conformance test on a data
// directory per key.
func TestConformance(t *testing.T) {
	root := t.TempDir()
	statetest.Run(t, func(t *testing.T, key string) state.Store {
		s, err := local.Open(filepath.Join(root, key))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestDataDirFiles: the store keeps the files earlier versions did, so an
// existing data directory keeps working, and a second store on the same
// directory is refused, naming it.
func TestDataDirFiles(t *testing.T) {
	dir := t.TempDir()
	// A rollouts file as an earlier version wrote it.
	old := []byte(`{"version": 1, "next": 0, "rollouts": []}` + "\n")
	os.WriteFile(filepath.Join(dir, "rollouts.json"), old, 0o644)
	s, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, rev, err := s.Documents().Get("rollouts.json")
	if err != nil || string(b) != string(old) || rev == 0 {
		t.Fatalf("existing rollouts.json: %q rev %d, %v", b, rev, err)
	}
	if _, err := s.Documents().Put("rollouts.json", []byte("{}\n"), rev); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{local.StateDB, local.AuditLog, "rollouts.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if _, err := local.Open(dir); err == nil || !strings.Contains(err.Error(), "in use by another netbootui") {
		t.Errorf("second Open of a held data dir: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := local.Open(dir)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s2.Close()
}

// TestDocumentNames: a document name is one plain file name in the folder.
func TestDocumentNames(t *testing.T) {
	d := local.NewDocuments(t.TempDir())
	for _, name := range []string{"", ".", "..", "../x", "a/b", `a\b`, ".rollouts.json.tmp-123"} {
		if _, _, err := d.Get(name); err == nil {
			t.Errorf("Get(%q) accepted", name)
		}
		if _, err := d.Put(name, nil, 0); err == nil || errors.Is(err, state.ErrConflict) {
			t.Errorf("Put(%q) = %v", name, err)
		}
	}
}
