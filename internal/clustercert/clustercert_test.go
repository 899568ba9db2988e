package clustercert

import (
	"bytes"
	"crypto/tls"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// handshake runs one TLS exchange from client to server over loopback and
// returns the client's error, else the server's.
func handshake(t *testing.T, server, client *tls.Config) error {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		err = c.(*tls.Conn).Handshake()
		if err == nil {
			_, err = c.Write([]byte("ok"))
		}
		srvErr <- err
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), client)
	if err == nil {
		var b []byte
		b, err = io.ReadAll(c)
		c.Close()
		if err == nil && string(b) != "ok" {
			err = io.ErrUnexpectedEOF
		}
	}
	if serr := <-srvErr; err == nil {
		err = serr
	}
	return err
}

// TestMakeLoadHandshake: Make issues a CA and two heads' certificates
// (keys 0600); each head's server accepts the other's client; a head of
// another cluster (another CA), and a client without a certificate, are
// refused; adding a head keeps the CA.
func TestMakeLoadHandshake(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	if _, err := Make(dir, []Head{{Name: "h1", Hosts: []string{"10.0.0.1"}}, {Name: "h2", Hosts: []string{"head2.example"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Make(other, []Head{{Name: "h1"}}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{CAKeyFile, "h1.key", "h2.key"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, fi.Mode(), err)
		}
	}
	ca, _ := os.ReadFile(filepath.Join(dir, CAFile))
	if _, err := Make(dir, []Head{{Name: "h3"}}); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, CAFile)); !bytes.Equal(ca, again) {
		t.Error("adding a head replaced the CA")
	}
	load := func(dir, head string) *Bundle {
		t.Helper()
		b, err := Load(dir, head)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	h1, h2, h3, stranger := load(dir, "h1"), load(dir, "h2"), load(dir, "h3"), load(other, "h1")
	noCert := h1.Client.Clone()
	noCert.Certificates = nil
	for _, tc := range []struct {
		name           string
		server, client *tls.Config
		ok             bool
	}{
		{"h2 to h1", h1.Server, h2.Client, true},
		{"h3 (added later) to h1", h1.Server, h3.Client, true},
		{"another cluster's head to h1", h1.Server, stranger.Client, false},
		{"h1 to another cluster's head", stranger.Server, h1.Client, false},
		{"no client certificate", h1.Server, noCert, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.client.Clone()
			c.ServerName = "127.0.0.1"
			err := handshake(t, tc.server, c)
			if (err == nil) != tc.ok {
				t.Errorf("handshake: %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// TestLoadRefuses: an open key, a certificate of another CA, a bad name.
func TestLoadRefuses(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	Make(dir, []Head{{Name: "h1"}})
	Make(other, []Head{{Name: "h1"}})
	key := filepath.Join(dir, "h1.key")
	secret, _ := os.ReadFile(key)
	for _, tc := range []struct {
		name string
		prep func()
		load func() (*Bundle, error)
		want string
	}{
		{"open key", func() { os.Chmod(key, 0o644) }, func() (*Bundle, error) { return Load(dir, "h1") }, "open to other users (mode 0644)"},
		{"foreign certificate", func() { os.Chmod(key, 0o600) }, func() (*Bundle, error) {
			return LoadFiles(filepath.Join(dir, CAFile), filepath.Join(other, "h1.crt"), filepath.Join(other, "h1.key"))
		}, "not signed by the cluster's CA"},
		{"bad name", func() {}, func() (*Bundle, error) { return Load(dir, "../h1") }, "head name"},
		{"missing", func() {}, func() (*Bundle, error) { return Load(dir, "h9") }, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.prep()
			_, err := tc.load()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if bytes.Contains([]byte(err.Error()), secret[30:60]) {
				t.Errorf("the error holds key material: %v", err)
			}
		})
	}
	if _, err := Make(dir, []Head{{Name: "a/b"}}); err == nil {
		t.Error("Make took a head name with a slash")
	}
}
