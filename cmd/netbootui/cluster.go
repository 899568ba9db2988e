package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

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
}

func addClusterFlags(fs flagSet) *clusterFlags {
	c := &clusterFlags{}
	fs.StringVar(&c.initial, "cluster", "", "run this head in a cluster of heads: every first member as `NAME=PEER_URL,...` (each head runs an embedded etcd member in DATA/etcd)")
	fs.StringVar(&c.name, "cluster-name", "", "this head's `name` in --cluster (default: the host name)")
	fs.StringVar(&c.peerURL, "cluster-peer-url", "", "`URL` the other heads reach this head's member at (default: this head's entry in --cluster)")
	fs.StringVar(&c.clientURL, "cluster-client-url", "http://127.0.0.1:2379", "`URL` this head's member serves clients at (this head, etcdctl)")
	fs.BoolVar(&c.join, "cluster-join", false, "join a running cluster that already lists this head (etcdctl member add) instead of forming a new one")
	fs.StringVar(&c.endpoints, "etcd-endpoints", "", "share state through an existing etcd at these client `URLs` (comma separated) instead of a member of this head's own")
	fs.StringVar(&c.prefix, "etcd-prefix", "/netbootui/", "key `prefix` of this cluster's state in etcd")
	fs.DurationVar(&c.heartbeat, "cluster-heartbeat", 100*time.Millisecond, "raft heartbeat interval of this head's member")
	fs.DurationVar(&c.election, "cluster-election-timeout", time.Second, "raft election timeout of this head's member (about 10 heartbeats)")
	fs.DurationVar(&c.timeout, "cluster-timeout", 5*time.Second, "how long a change waits for the cluster before it is refused")
	return c
}

// open returns the shared state (nil, nil on a single head).
func (c *clusterFlags) open(dataDir string) (state.Store, error) {
	if c == nil || c.initial == "" && c.endpoints == "" {
		if c.join || c.name != "" || c.peerURL != "" {
			return nil, fmt.Errorf("--cluster-name, --cluster-peer-url and --cluster-join need --cluster")
		}
		return nil, nil
	}
	hc := etcd.HeadConfig{Store: etcd.Options{Prefix: c.prefix, Timeout: c.timeout}}
	if c.name == "" {
		c.name, _ = os.Hostname()
	}
	hc.Store.Head = c.name
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
		InitialCluster: c.initial, Join: c.join, Heartbeat: c.heartbeat, Election: c.election}
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
