package local_test

import (
	"encoding/hex"
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

// TestTokenKeyFile: token.key is made once with mode 0600, read back as
// written, and refused when others may read it or it is not hex.
func TestTokenKeyFile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content string // "" leaves the file to be made
		mode    os.FileMode
		want    string // error text; "" for success
	}{
		{"made", "", 0, ""},
		{"existing", "00112233445566778899aabbccddeeff\n", 0o600, ""},
		{"group readable", "00112233445566778899aabbccddeeff\n", 0o640, "mode 0640, must be 0600"},
		{"not hex", "not a key\n", 0o600, "not a hex key"},
		{"too short for tokens is still read", "0011\n", 0o600, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, local.TokenKey)
			if tc.content != "" {
				os.WriteFile(path, []byte(tc.content), tc.mode)
				os.Chmod(path, tc.mode)
			}
			s, err := local.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			key, err := s.TokenKey()
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("TokenKey = %x, %v; want %q", key, err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("token.key: %v %v", fi, err)
			}
			b, _ := os.ReadFile(path)
			if got := hex.EncodeToString(key) + "\n"; got != string(b) {
				t.Errorf("key %q, file %q", got, b)
			}
		})
	}
}

// SetTokenKey (a restore) writes the key of a folder that has none at mode
// 0600, accepts the same key again and refuses another.
func TestSetTokenKey(t *testing.T) {
	dir := t.TempDir()
	s, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	key := []byte("0123456789abcdef0123456789abcdef")
	if err := s.SetTokenKey(key); err != nil {
		t.Fatal(err)
	}
	if got, err := s.TokenKey(); err != nil || string(got) != string(key) {
		t.Fatalf("TokenKey after SetTokenKey: %x %v", got, err)
	}
	if st, err := os.Stat(filepath.Join(dir, local.TokenKey)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token.key: %v %v", st, err)
	}
	if err := s.SetTokenKey(key); err != nil {
		t.Fatalf("the same key again: %v", err)
	}
	if err := s.SetTokenKey([]byte("another key")); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("another key: %v", err)
	}
	if got, _ := s.TokenKey(); string(got) != string(key) {
		t.Fatal("the key changed")
	}
}
