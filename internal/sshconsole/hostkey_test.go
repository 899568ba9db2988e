package sshconsole

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"
)

func TestHostKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", HostKeyFile)
	first, err := LoadOrCreateHostKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if first.PublicKey().Type() != gossh.KeyAlgoED25519 {
		t.Fatalf("host key type %s", first.PublicKey().Type())
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("host key file: %v %v", st.Mode(), err)
	}
	again, err := LoadOrCreateHostKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if gossh.FingerprintSHA256(again.PublicKey()) != gossh.FingerprintSHA256(first.PublicKey()) {
		t.Fatal("host key changed on reload")
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Fatalf("files beside the host key: %v", ents)
	}

	for _, tc := range []struct {
		name string
		data string
		mode os.FileMode
		err  string
	}{
		{name: "open to others", mode: 0o644, err: "mode 0644 is open to group or others"},
		{name: "garbage", data: "not a key\n", mode: 0o600, err: "no key found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), HostKeyFile)
			data := tc.data
			if data == "" {
				b, _ := os.ReadFile(path)
				data = string(b)
			}
			os.WriteFile(p, []byte(data), tc.mode)
			os.Chmod(p, tc.mode)
			_, err := LoadOrCreateHostKey(p)
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), p) {
				t.Fatalf("error %v, want %q naming %s", err, tc.err, p)
			}
			if b, _ := os.ReadFile(p); string(b) != data {
				t.Fatal("a bad host key file was rewritten")
			}
		})
	}
}
