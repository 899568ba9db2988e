package etcd_test

import (
	"context"
	"crypto/tls"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netbootui/netbootui/internal/clustercert"
	"github.com/netbootui/netbootui/internal/state/etcd"
	"github.com/netbootui/netbootui/internal/state/etcd/etcdtest"
)

// TestTLSCluster: members given the cluster's trust (clustercert) serve
// https peer and client URLs with mutual TLS. Two heads with the cluster's
// certificates form the cluster; a third whose certificate is of another
// CA cannot join it. A client without a certificate, or with another
// CA's, cannot read; a head with the cluster's certificate reads and
// writes through OpenHead.
func TestTLSCluster(t *testing.T) {
	dir := t.TempDir()
	certs, stranger := filepath.Join(dir, "certs"), filepath.Join(dir, "stranger")
	if _, err := clustercert.Make(certs, []clustercert.Head{{Name: "h1"}, {Name: "h2"}, {Name: "h3"}, {Name: "reader"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := clustercert.Make(stranger, []clustercert.Head{{Name: "h3"}}); err != nil {
		t.Fatal(err)
	}
	load := func(dir, head string) *clustercert.Bundle {
		t.Helper()
		b, err := clustercert.Load(dir, head)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cfgs := etcdtest.Configs(t, 3, filepath.Join(dir, "members"))
	for i := range cfgs {
		c := &cfgs[i]
		c.PeerURL = strings.Replace(c.PeerURL, "http://", "https://", 1)
		c.ClientURL = strings.Replace(c.ClientURL, "http://", "https://", 1)
		c.InitialCluster = strings.ReplaceAll(c.InitialCluster, "http://", "https://")
		c.TLS = load(certs, c.Name)
	}
	cfgs[2].TLS, cfgs[2].StartTimeout = load(stranger, "h3"), 8*time.Second
	if _, err := etcd.StartMember(etcd.MemberConfig{Name: "x", Dir: filepath.Join(dir, "x"), PeerURL: "http://127.0.0.1:1",
		ClientURL: "http://127.0.0.1:2", TLS: cfgs[0].TLS}); err == nil || !strings.Contains(err.Error(), "want https://") {
		t.Errorf("a TLS member on http URLs: %v", err)
	}

	members, errs := etcdtest.StartAll(t, cfgs)
	for i := range 2 {
		if errs[i] != nil {
			t.Fatalf("%s: %v", cfgs[i].Name, errs[i])
		}
	}
	if errs[2] == nil {
		t.Fatal("a member with another CA's certificate joined the cluster")
	}
	t.Logf("the stranger: %v", errs[2])

	url := members[0].ClientURL()
	// A head of the cluster: writes through one member, reads through the
	// other.
	s, err := etcd.OpenHead(etcd.HeadConfig{Endpoints: []string{url}, TLS: load(certs, "reader"), Store: etcd.Options{Head: "reader", Timeout: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Documents().Put("doc", []byte("secret inventory"), 0); err != nil {
		t.Fatal(err)
	}
	c2, err := etcd.NewClientTLS([]string{members[1].ClientURL()}, load(certs, "h2").Client)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if resp, err := c2.Get(ctx, "/netbootui/", clientv3.WithPrefix()); err != nil || resp.Count == 0 {
		t.Fatalf("a head of the cluster reading: %v", err)
	}

	noCert := load(certs, "reader").Client.Clone()
	noCert.Certificates = nil
	for _, tc := range []struct {
		name string
		tls  *tls.Config
	}{
		{"no TLS", nil},
		{"no client certificate", noCert},
		{"another CA's certificate", load(stranger, "h3").Client},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := etcd.NewClientTLS([]string{url}, tc.tls)
			if err != nil {
				return // refused at once
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			if resp, err := c.Get(ctx, "/netbootui/", clientv3.WithPrefix()); err == nil {
				t.Errorf("read %d keys", resp.Count)
			}
		})
	}
}
