package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/netbootui/netbootui/internal/clustercert"
	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/state"
	"github.com/netbootui/netbootui/internal/state/etcd"
)

// flagSet is what the cluster flags need of a flag set (the standard
// library's and pflag's both have it).
type flagSet interface {
	StringVar(p *string, name, value, usage string)
	BoolVar(p *bool, name string, value bool, usage string)
	DurationVar(p *time.Duration, name string, value time.Duration, usage string)
}

// clusterFlags are serve's flags for several heads. None given: a single
// head, exactly as before.
type clusterFlags struct {
	initial, name, peerURL, clientURL string
	join                              bool
	endpoints, prefix                 string
	heartbeat, election, timeout      time.Duration
	tlsDir, imagesListen, imagesURL   string

	bundle *clustercert.Bundle // loaded by open from tlsDir
}

// defaultClientURL is --cluster-client-url's default (https with
// --cluster-tls).
const defaultClientURL = "http://127.0.0.1:2379"

func addClusterFlags(fs flagSet) *clusterFlags {
	c := &clusterFlags{}
	fs.StringVar(&c.initial, "cluster", "", "run this head in a cluster of heads: every first member as `NAME=PEER_URL,...` (each head runs an embedded etcd member in DATA/etcd)")
	fs.StringVar(&c.name, "cluster-name", "", "this head's `name` in --cluster (default: the host name)")
	fs.StringVar(&c.peerURL, "cluster-peer-url", "", "`URL` the other heads reach this head's member at (default: this head's entry in --cluster)")
	fs.StringVar(&c.clientURL, "cluster-client-url", defaultClientURL, "`URL` this head's member serves clients at (this head, etcdctl); https with --cluster-tls")
	fs.BoolVar(&c.join, "cluster-join", false, "join a running cluster that already lists this head (etcdctl member add) instead of forming a new one")
	fs.StringVar(&c.endpoints, "etcd-endpoints", "", "share state through an existing etcd at these client `URLs` (comma separated) instead of a member of this head's own")
	fs.StringVar(&c.prefix, "etcd-prefix", "/netbootui/", "key `prefix` of this cluster's state in etcd")
	fs.DurationVar(&c.heartbeat, "cluster-heartbeat", 100*time.Millisecond, "raft heartbeat interval of this head's member")
	fs.DurationVar(&c.election, "cluster-election-timeout", time.Second, "raft election timeout of this head's member (about 10 heartbeats)")
	fs.DurationVar(&c.timeout, "cluster-timeout", 5*time.Second, "how long a change waits for the cluster before it is refused")
	fs.StringVar(&c.tlsDir, "cluster-tls", "", "the cluster's certificates (`folder` made by `netbootui cluster certs`: ca.crt, NAME.crt, NAME.key): etcd's peer and client URLs (https) and the heads' generation fetches over mutual TLS; only heads with a certificate of its CA join or read")
	fs.StringVar(&c.imagesListen, "cluster-images-listen", "", "`address` this head serves its image generations to the other heads at, with --cluster-tls (https, mutual TLS), e.g. 10.0.0.1:2382")
	fs.StringVar(&c.imagesURL, "cluster-images-url", "", "base `URL` the other heads reach --cluster-images-listen at (default: https:// and its address)")
	return c
}

// peer is the daemon's PeerOptions (zero without --cluster-tls).
func (c *clusterFlags) peer() daemon.PeerOptions {
	if c == nil || c.bundle == nil {
		return daemon.PeerOptions{}
	}
	return daemon.PeerOptions{TLS: c.bundle, Listen: c.imagesListen, URL: c.imagesURL}
}

// open returns the shared state (nil, nil on a single head).
func (c *clusterFlags) open(dataDir string) (state.Store, error) {
	if c == nil || c.initial == "" && c.endpoints == "" {
		if c.join || c.name != "" || c.peerURL != "" || c.tlsDir != "" || c.imagesListen != "" || c.imagesURL != "" {
			return nil, fmt.Errorf("--cluster-name, --cluster-peer-url, --cluster-join, --cluster-tls and --cluster-images-* need --cluster")
		}
		return nil, nil
	}
	hc := etcd.HeadConfig{Store: etcd.Options{Prefix: c.prefix, Timeout: c.timeout}}
	if c.name == "" {
		c.name, _ = os.Hostname()
	}
	hc.Store.Head = c.name
	if c.tlsDir != "" {
		b, err := clustercert.Load(c.tlsDir, c.name)
		if err != nil {
			return nil, fmt.Errorf("--cluster-tls: %w", err)
		}
		c.bundle, hc.TLS = b, b
		if c.clientURL == defaultClientURL {
			c.clientURL = "https" + strings.TrimPrefix(defaultClientURL, "http")
		}
	} else if c.imagesListen != "" || c.imagesURL != "" {
		return nil, fmt.Errorf("--cluster-images-listen and --cluster-images-url need --cluster-tls")
	}
	if c.initial == "" {
		hc.Endpoints = strings.Split(c.endpoints, ",")
		return etcd.OpenHead(hc)
	}
	if c.endpoints != "" {
		return nil, fmt.Errorf("--cluster and --etcd-endpoints: give one")
	}
	peer, err := peerOf(c.initial, c.name)
	if err != nil {
		return nil, err
	}
	if c.peerURL == "" {
		c.peerURL = peer
	}
	hc.Member = etcd.MemberConfig{Name: c.name, Dir: filepath.Join(dataDir, "etcd"), PeerURL: c.peerURL, ClientURL: c.clientURL,
		InitialCluster: c.initial, Join: c.join, Heartbeat: c.heartbeat, Election: c.election, TLS: c.bundle}
	return etcd.OpenHead(hc)
}

// peerOf returns name's peer URL in an initial-cluster list.
func peerOf(initial, name string) (string, error) {
	for _, m := range strings.Split(initial, ",") {
		n, u, ok := strings.Cut(strings.TrimSpace(m), "=")
		if !ok || n == "" || u == "" {
			return "", fmt.Errorf("--cluster: %q is not NAME=PEER_URL", m)
		}
		if n == name {
			return u, nil
		}
	}
	return "", fmt.Errorf("--cluster does not name this head %q (set --cluster-name)", name)
}

// clusterCmd is `netbootui cluster`: what a cluster of heads needs before
// its heads start.
func clusterCmd() *cobra.Command {
	certs := newVerb("certs DIR NAME[=HOST,...]...", "make the cluster's CA (once) and a certificate for each head, for serve --cluster-tls", argsBetween(2, 64),
		func(fs *pflag.FlagSet) runner {
			return func(ctx context.Context, args []string) error {
				var heads []clustercert.Head
				for _, a := range args[1:] {
					name, hosts, _ := strings.Cut(a, "=")
					h := clustercert.Head{Name: name}
					if hosts != "" {
						h.Hosts = strings.Split(hosts, ",")
					}
					heads = append(heads, h)
				}
				wrote, err := clustercert.Make(args[0], heads)
				if err != nil {
					return err
				}
				for _, f := range wrote {
					fmt.Println("wrote", f)
				}
				fmt.Printf("copy %s, NAME.crt and NAME.key to each head's folder (keys stay 0600) and start it with --cluster-tls FOLDER;\n%s signs new heads: keep it off the heads if you can\n",
					clustercert.CAFile, clustercert.CAKeyFile)
				return nil
			}
		})
	return newGroup("cluster", "a cluster of heads: certs (the cluster's CA and a certificate per head)", certs)
}
