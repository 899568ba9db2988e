package main

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/clustercert"
	"github.com/netbootui/netbootui/internal/clustertest"
)

// TestServeClusterTLS: `netbootui cluster certs` makes the cluster's CA and
// three heads' certificates (keys 0600); three `serve --cluster
// --cluster-tls` processes form a cluster over https peer and client URLs
// (mutual TLS); a generation imported on the first reaches the others
// through the first's generation server, which a head's certificate reads
// and no certificate, or another CA's, does not; a head with another CA's
// certificate cannot read the cluster's state (serve fails), and no key
// shows in its error.
func TestServeClusterTLS(t *testing.T) {
	dir := t.TempDir()
	certs, stranger := filepath.Join(dir, "certs"), filepath.Join(dir, "stranger")
	out, errOut, code := runCLI(t, "cluster", "certs", certs, "h1=127.0.0.1", "h2", "h3")
	if code != 0 || !strings.Contains(out, "wrote "+filepath.Join(certs, "h1.key")) {
		t.Fatalf("cluster certs: %d\n%s%s", code, out, errOut)
	}
	if _, _, code := runCLI(t, "cluster", "certs", stranger, "h3"); code != 0 {
		t.Fatal("cluster certs of the stranger")
	}
	for _, f := range []string{"ca.key", "h1.key", "h2.key", "h3.key"} {
		if fi, err := os.Stat(filepath.Join(certs, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, fi.Mode(), err)
		}
	}
	if _, errOut, code := runCLI(t, "cluster", "certs", certs, "../x"); code == 0 || !strings.Contains(errOut, "head name") {
		t.Errorf("a bad head name: %d %s", code, errOut)
	}

	imagesPorts := freePorts(t, 3)
	inv, _ := clustertest.StormInventory(3)
	sc := startServeClusterWith(t, []byte(inv), nil, clusterOptions{tls: certs, imagesPorts: imagesPorts})
	st := sc.sts[1]
	if st.Cluster == nil || len(st.Cluster.Members) != 3 {
		t.Fatalf("status of h2: %+v", st.Cluster)
	}
	for _, m := range st.Cluster.Members {
		if len(m.PeerURLs) != 1 || !strings.HasPrefix(m.PeerURLs[0], "https://") {
			t.Errorf("member %s peer URLs %v", m.Name, m.PeerURLs)
		}
	}
	m := importGeneration(t, apiclient.New(sc.procs[0].socket), "img", "", 20000, true)
	for _, p := range sc.procs[1:] {
		waitGenerations(t, apiclient.New(p.socket), m.ID)
	}

	// The first head's generation server.
	f := m.Files[0]
	u := fmt.Sprintf("https://127.0.0.1:%d/images/img/%s/%s", imagesPorts[0], m.ID, f.Name)
	bundle := func(dir, head string) *clustercert.Bundle {
		b, err := clustercert.Load(dir, head)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	get := func(tc *tls.Config) (string, error) {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
		resp, err := c.Get(u)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		h := sha256.New()
		if _, err := io.Copy(h, resp.Body); err != nil {
			return "", err
		}
		return fmt.Sprint(resp.StatusCode, " ", hex.EncodeToString(h.Sum(nil))), nil
	}
	if got, err := get(bundle(certs, "h2").Client); err != nil || got != "200 "+f.SHA256 {
		t.Errorf("h2 reading h1's %s: %q %v", f.Name, got, err)
	}
	noCert := bundle(certs, "h2").Client.Clone()
	noCert.Certificates = nil
	for name, tc := range map[string]*tls.Config{"no certificate": noCert, "another CA's": bundle(stranger, "h3").Client} {
		if got, err := get(tc); err == nil {
			t.Errorf("%s read h1's generation server: %s", name, got)
		}
	}

	// A head with another CA's certificate, on the first head's client URL.
	client := st.Cluster.Members[0].ClientURLs[0]
	for _, m := range st.Cluster.Members {
		if m.Name == "h1" {
			client = m.ClientURLs[0]
		}
	}
	sdir := filepath.Join(dir, "strange-head")
	os.MkdirAll(sdir, 0o755)
	os.WriteFile(filepath.Join(sdir, "nodes.yaml"), []byte(inv), 0o644)
	out, errOut, code = runCLIWithin(t, 90*time.Second, "serve", "--inventory", filepath.Join(sdir, "nodes.yaml"), "--data", filepath.Join(sdir, "data"),
		"--api-socket", filepath.Join(sdir, "api.sock"), "--http-listen", "127.0.0.1:0", "--tftp-listen", "", "--power-poll", "0",
		"--etcd-endpoints", client, "--cluster-tls", stranger, "--cluster-name", "h3", "--cluster-timeout", "3s")
	if code == 0 {
		t.Fatalf("a head of another CA served:\n%s%s", out, errOut)
	}
	key, _ := os.ReadFile(filepath.Join(stranger, "h3.key"))
	if strings.Contains(errOut, "PRIVATE KEY") || strings.Contains(errOut, string(key[40:80])) {
		t.Errorf("a key in serve's output:\n%s", errOut)
	}
	t.Logf("the stranger head: %s", strings.TrimSpace(errOut))
}
