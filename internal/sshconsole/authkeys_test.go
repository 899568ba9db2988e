package sshconsole

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"

	"github.com/netbootui/netbootui/internal/apitype"
)

func newKey(t testing.TB) (gossh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, strings.TrimSpace(string(gossh.MarshalAuthorizedKey(s.PublicKey())))
}

func TestParseAuthorizedKeys(t *testing.T) {
	a, aLine := newKey(t)
	b, bLine := newKey(t)
	for _, tc := range []struct {
		name, in string
		want     []string // fingerprint + " " + comment of each key
		roles    []apitype.Role
		err      string
	}{
		{name: "empty", in: ""},
		{name: "comments and blanks", in: "# admins\n\n   \n# " + aLine + "\n"},
		{name: "two keys", in: aLine + " alice@laptop\n" + bLine + "\n",
			want:  []string{gossh.FingerprintSHA256(a.PublicKey()) + " alice@laptop", gossh.FingerprintSHA256(b.PublicKey()) + " "},
			roles: []apitype.Role{apitype.RoleViewer, apitype.RoleViewer}},
		{name: "roles", in: `netbootui-role="operator" ` + aLine + " op\nnetbootui-role=admin " + bLine + " root\n",
			want:  []string{gossh.FingerprintSHA256(a.PublicKey()) + " op", gossh.FingerprintSHA256(b.PublicKey()) + " root"},
			roles: []apitype.Role{apitype.RoleOperator, apitype.RoleAdmin}},
		{name: "unknown role", in: `netbootui-role="root" ` + aLine + "\n", err: `keys:1:1: role "root": want viewer, operator or admin`},
		{name: "role and another option", in: `netbootui-role="admin",from="10.0.0.1" ` + aLine + "\n", err: "keys:1:1: key options are not supported"},
		{name: "indented, CRLF", in: "  " + aLine + " alice\r\n",
			want: []string{gossh.FingerprintSHA256(a.PublicKey()) + " alice"}},
		{name: "comment with spaces", in: aLine + " Alice Admin (laptop)\n",
			want: []string{gossh.FingerprintSHA256(a.PublicKey()) + " Alice Admin (laptop)"}},
		{name: "garbage", in: aLine + "\nnot a key\n", err: "keys:2:1: not a public key"},
		{name: "bad base64 col", in: "\n   ssh-ed25519 AAAA!!!\n", err: "keys:2:4: not a public key"},
		{name: "options refused", in: `from="10.0.0.1" ` + aLine + "\n", err: "keys:1:1: key options are not supported (from=\"10.0.0.1\")"},
		{name: "restrict refused", in: bLine + "\nrestrict,command=\"ls\" " + aLine + "\n", err: "keys:2:1: key options are not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := ParseAuthorizedKeys("keys", []byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				if keys != nil {
					t.Fatalf("keys returned with an error: %v", keys)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, k := range keys {
				got = append(got, k.Fingerprint+" "+k.Comment)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			for i, r := range tc.roles {
				if keys[i].Role != r {
					t.Errorf("key %d: role %q, want %q", i, keys[i].Role, r)
				}
			}
		})
	}
}

func TestWho(t *testing.T) {
	a, _ := newKey(t)
	fp := gossh.FingerprintSHA256(a.PublicKey())
	if !strings.HasPrefix(fp, "SHA256:") {
		t.Fatalf("fingerprint %q", fp)
	}
	for _, tc := range []struct {
		comment, want string
	}{
		{"", "ssh " + fp},
		{"alice@laptop", "ssh " + fp + " (alice@laptop)"},
	} {
		if got := (AuthorizedKey{Key: a.PublicKey(), Fingerprint: fp, Comment: tc.comment}).Who(); got != tc.want {
			t.Errorf("Who() = %q, want %q", got, tc.want)
		}
	}
}

// FuzzParseAuthorizedKeys: any input parses or fails with a positioned
// error, never panics, and every key it accepts round-trips.
func FuzzParseAuthorizedKeys(f *testing.F) {
	_, line := newKey(f)
	f.Add([]byte(line + " a@b\n"))
	f.Add([]byte("# c\n\n" + line))
	f.Add([]byte(`command="x" ` + line))
	f.Add([]byte("ssh-rsa AAAA\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		keys, err := ParseAuthorizedKeys("f", in)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f:") {
				t.Fatalf("error without position: %v", err)
			}
			return
		}
		for _, k := range keys {
			back, err := gossh.ParsePublicKey(k.Key.Marshal())
			if err != nil || gossh.FingerprintSHA256(back) != k.Fingerprint {
				t.Fatalf("key on line %d does not round-trip: %v", k.Line, err)
			}
		}
	})
}

func TestOpenAuthorizedKeys(t *testing.T) {
	_, aLine := newKey(t)
	for _, tc := range []struct {
		name string
		data string
		mode os.FileMode
		err  string
	}{
		{name: "missing", err: "file does not exist"},
		{name: "group writable", data: aLine + "\n", mode: 0o620, err: "mode 0620 is writable by group or others"},
		{name: "invalid", data: "\n\nssh-ed25519\n", mode: 0o600, err: ":3:1: not a public key"},
		{name: "ok", data: aLine + " a\n", mode: 0o644},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "authorized_keys")
			if tc.mode != 0 {
				os.WriteFile(p, []byte(tc.data), tc.mode)
				os.Chmod(p, tc.mode)
			}
			a, err := OpenAuthorizedKeys(p, nil)
			if tc.err == "" {
				if err != nil || len(a.Keys()) != 1 {
					t.Fatalf("open: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), p) {
				t.Fatalf("error %v, want %q naming %s", err, tc.err, p)
			}
		})
	}
}

// A reload that fails keeps the keys in force; a removed file allows nobody.
func TestAuthorizedKeysReload(t *testing.T) {
	a, aLine := newKey(t)
	b, bLine := newKey(t)
	p := filepath.Join(t.TempDir(), "authorized_keys")
	write := func(data string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(p+".tmp", []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p+".tmp", mode)
		if err := os.Rename(p+".tmp", p); err != nil {
			t.Fatal(err)
		}
	}
	write(aLine+"\n", 0o600)
	ak, err := OpenAuthorizedKeys(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name         string
		data         string
		mode         os.FileMode
		remove       bool
		wantA, wantB bool
	}{
		{name: "initial", data: aLine + "\n", mode: 0o600, wantA: true},
		{name: "b added", data: aLine + "\n" + bLine + " b\n", mode: 0o600, wantA: true, wantB: true},
		{name: "broken keeps both", data: aLine + "\nbroken\n", mode: 0o600, wantA: true, wantB: true},
		{name: "world-writable keeps both", data: bLine + "\n", mode: 0o666, wantA: true, wantB: true},
		{name: "only b", data: bLine + "\n", mode: 0o600, wantB: true},
		{name: "removed", remove: true},
		{name: "back", data: aLine + "\n", mode: 0o600, wantA: true},
	}
	for _, st := range steps {
		if st.remove {
			os.Remove(p)
		} else {
			write(st.data, st.mode)
		}
		_, gotA := ak.Lookup(a.PublicKey())
		_, gotB := ak.Lookup(b.PublicKey())
		if gotA != st.wantA || gotB != st.wantB {
			t.Fatalf("%s: a=%v b=%v, want a=%v b=%v", st.name, gotA, gotB, st.wantA, st.wantB)
		}
	}
	if _, ok := ak.Lookup(nil); ok {
		t.Fatal("nil key admitted")
	}
}
